#include "siplb/net/nat.h"

#include "siplb/net/checksum.h"

namespace siplb::net {

bool rewrite_endpoint(uint8_t* frame, const PacketView& v, NatSide side, const Endpoint& to) noexcept {
    bool v4 = v.ip_version == 4;
    if (v4 != to.ip.is_v4()) return false;
    uint8_t* ip = frame + v.l3_offset;
    uint8_t* udp = frame + v.l4_offset;
    uint8_t* addr = frame + (side == NatSide::source ? v.src_addr_offset() : v.dst_addr_offset());
    uint8_t* port = udp + (side == NatSide::source ? 0 : 2);
    size_t alen = v.addr_len();

    uint8_t new_port[2];
    store_be16(new_port, to.port);
    // The address is in the IPv4 header's sum and in the pseudo-header's.
    const uint32_t addr_delta = checksum_delta(addr, to.ip.bytes.data(), alen);
    const uint32_t l4_delta = addr_delta + static_cast<uint16_t>(~load_be16(port)) + to.port;
    if (v.ip_proto == kIpProtoTcp) {
        // TCP always has a checksum; 0x0000 and 0xFFFF both verify.
        store_be16(udp + 16, checksum_apply(load_be16(udp + 16), l4_delta));
    } else if (uint16_t udp_csum = load_be16(udp + 6); udp_csum != 0) {
        // UDP over IPv4 without checksum: nothing to maintain. Over IPv6 the
        // parser already refused a zero checksum.
        udp_csum = checksum_apply(udp_csum, l4_delta);
        if (udp_csum == 0) udp_csum = 0xFFFF;
        store_be16(udp + 6, udp_csum);
    }
    if (v4) store_be16(ip + 10, checksum_apply(load_be16(ip + 10), addr_delta));
    std::memcpy(addr, to.ip.bytes.data(), alen);
    port[0] = new_port[0];
    port[1] = new_port[1];
    return true;
}

bool decrement_ttl(uint8_t* frame, const PacketView& v) noexcept {
    uint8_t* ip = frame + v.l3_offset;
    if (v.ip_version == 4) {
        uint8_t ttl = ip[8];
        if (ttl <= 1) return false;
        uint16_t old_word = load_be16(ip + 8);  // TTL, protocol
        ip[8] = static_cast<uint8_t>(ttl - 1);
        store_be16(ip + 10, checksum_update16(load_be16(ip + 10), old_word, load_be16(ip + 8)));
        return true;
    }
    if (ip[7] <= 1) return false;
    ip[7] = static_cast<uint8_t>(ip[7] - 1);
    return true;
}

void write_tunnel_header(uint8_t* outer, const IpAddress& src, const IpAddress& dst, uint8_t inner_ip_version,
                         uint16_t inner_len) noexcept {
    const uint8_t proto = inner_ip_version == 4 ? 4 : 41;
    if (dst.is_v4()) {
        std::memset(outer, 0, kIpv4MinHeaderLen);
        outer[0] = 0x45;
        store_be16(outer + 2, static_cast<uint16_t>(kIpv4MinHeaderLen + inner_len));
        outer[8] = 64;
        outer[9] = proto;
        std::memcpy(outer + 12, src.bytes.data(), 4);
        std::memcpy(outer + 16, dst.bytes.data(), 4);
        store_be16(outer + 10, ipv4_header_checksum(outer, kIpv4MinHeaderLen));
    } else {
        std::memset(outer, 0, kIpv6HeaderLen);
        outer[0] = 0x60;
        store_be16(outer + 4, inner_len);
        outer[6] = proto;
        outer[7] = 64;
        std::memcpy(outer + 8, src.bytes.data(), 16);
        std::memcpy(outer + 24, dst.bytes.data(), 16);
    }
}

void write_ethernet(uint8_t* l2, const MacAddress& dst, const MacAddress& src, uint16_t vlan_id,
                    uint16_t ethertype) noexcept {
    std::memcpy(l2, dst.bytes.data(), 6);
    std::memcpy(l2 + 6, src.bytes.data(), 6);
    if (vlan_id) {
        store_be16(l2 + 12, kEtherTypeVlan);
        store_be16(l2 + 14, static_cast<uint16_t>(vlan_id & 0x0FFF));
        store_be16(l2 + 16, ethertype);
    } else {
        store_be16(l2 + 12, ethertype);
    }
}

}  // namespace siplb::net
