#include "siplb/net/ndp.h"

#include <cstring>

#include "siplb/net/checksum.h"

namespace siplb::net {

std::optional<NdpMessage> parse_ndp(const uint8_t* frame, const PacketView& v) noexcept {
    if (v.ip_version != 6 || v.ip_proto != 58 || v.l4_offset == 0) return std::nullopt;
    const uint8_t* ip = frame + v.l3_offset;
    const uint8_t* icmp = frame + v.l4_offset;
    if (v.l3_end < v.l4_offset + 24u) return std::nullopt;
    const size_t len = v.l3_end - v.l4_offset;
    if (ip[7] != 255 || icmp[1] != 0) return std::nullopt;  // must not have crossed a router
    if (icmp[0] != kIcmpv6NeighborSolicitation && icmp[0] != kIcmpv6NeighborAdvertisement) return std::nullopt;
    if (icmpv6_checksum(ip + 8, ip + 24, icmp, len) != load_be16(icmp + 2)) return std::nullopt;
    NdpMessage m;
    m.type = icmp[0];
    m.source = IpAddress::from_v6(ip + 8);
    m.target = IpAddress::from_v6(icmp + 8);
    if (m.target.bytes[0] == 0xff) return std::nullopt;  // never a multicast target
    m.solicited = icmp[4] & 0x40;
    m.override_flag = icmp[4] & 0x20;
    const uint8_t want = m.type == kIcmpv6NeighborSolicitation ? 1 : 2;
    for (size_t off = 24; off + 2 <= len;) {
        const uint8_t type = icmp[off], units = icmp[off + 1];
        if (units == 0 || off + units * 8u > len) return std::nullopt;  // malformed option
        if (type == want && units == 1) {
            MacAddress mac;
            std::memcpy(mac.bytes.data(), icmp + off + 2, 6);
            m.link_addr = mac;
        }
        off += units * 8u;
    }
    return m;
}

IpAddress solicited_node_address(const IpAddress& target) noexcept {
    uint8_t b[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0};
    b[13] = target.bytes[13];
    b[14] = target.bytes[14];
    b[15] = target.bytes[15];
    return IpAddress::from_v6(b);
}

MacAddress ipv6_multicast_mac(const IpAddress& group) noexcept {
    return MacAddress{{0x33, 0x33, group.bytes[12], group.bytes[13], group.bytes[14], group.bytes[15]}};
}

namespace {
void write_ipv6(uint8_t* ip, const IpAddress& src, const IpAddress& dst) noexcept {
    std::memset(ip, 0, kIpv6HeaderLen);
    ip[0] = 0x60;
    store_be16(ip + 4, kNdpMessageLen);
    ip[6] = 58;
    ip[7] = 255;
    std::memcpy(ip + 8, src.bytes.data(), 16);
    std::memcpy(ip + 24, dst.bytes.data(), 16);
}
void finish(uint8_t* ip) noexcept {
    uint8_t* icmp = ip + kIpv6HeaderLen;
    store_be16(icmp + 2, icmpv6_checksum(ip + 8, ip + 24, icmp, kNdpMessageLen));
}
}  // namespace

void write_neighbor_solicitation(uint8_t* ip, const IpAddress& source, const MacAddress& source_mac,
                                 const IpAddress& target) noexcept {
    write_ipv6(ip, source, solicited_node_address(target));
    uint8_t* icmp = ip + kIpv6HeaderLen;
    std::memset(icmp, 0, kNdpMessageLen);
    icmp[0] = kIcmpv6NeighborSolicitation;
    std::memcpy(icmp + 8, target.bytes.data(), 16);
    icmp[24] = 1;  // source link-layer address
    icmp[25] = 1;
    std::memcpy(icmp + 26, source_mac.bytes.data(), 6);
    finish(ip);
}

void write_neighbor_advertisement(uint8_t* ip, const IpAddress& source, const IpAddress& destination,
                                  const MacAddress& target_mac, bool solicited) noexcept {
    write_ipv6(ip, source, destination);
    uint8_t* icmp = ip + kIpv6HeaderLen;
    std::memset(icmp, 0, kNdpMessageLen);
    icmp[0] = kIcmpv6NeighborAdvertisement;
    icmp[4] = static_cast<uint8_t>((solicited ? 0x40 : 0) | 0x20);  // override
    std::memcpy(icmp + 8, source.bytes.data(), 16);
    icmp[24] = 2;  // target link-layer address
    icmp[25] = 1;
    std::memcpy(icmp + 26, target_mac.bytes.data(), 6);
    finish(ip);
}

}  // namespace siplb::net
