#include "siplb/net/icmp.h"

#include <cstring>

#include "siplb/net/checksum.h"

namespace siplb::net {

namespace {

bool is_error_type(uint8_t version, uint8_t type) noexcept {
    if (version == 4) return type == kIcmpDestUnreachable || type == kIcmpTimeExceeded || type == kIcmpParameterProblem;
    return type == kIcmpv6DestUnreachable || type == kIcmpv6PacketTooBig || type == kIcmpv6TimeExceeded ||
           type == kIcmpv6ParameterProblem;
}

uint16_t icmpv4_checksum(const uint8_t* msg, size_t len) noexcept {
    uint32_t sum = checksum_accumulate(msg, 2);
    if (len > 4) sum = checksum_accumulate(msg + 4, len - 4, sum);
    return checksum_finish(sum);
}

uint16_t icmp_checksum(uint8_t version, const uint8_t* ip, const uint8_t* msg, size_t len) noexcept {
    return version == 4 ? icmpv4_checksum(msg, len) : icmpv6_checksum(ip + 8, ip + 24, msg, len);
}

// A fresh IP header at `ip` for an ICMP message of `icmp_len` bytes.
size_t write_ip_header(uint8_t* ip, uint8_t version, const uint8_t* src, const uint8_t* dst, size_t icmp_len) noexcept {
    if (version == 4) {
        std::memset(ip, 0, kIpv4MinHeaderLen);
        ip[0] = 0x45;
        ip[1] = 0xC0;  // internetwork control, as hosts mark their ICMP
        store_be16(ip + 2, static_cast<uint16_t>(kIpv4MinHeaderLen + icmp_len));
        ip[8] = 64;
        ip[9] = kIpProtoIcmp;
        std::memcpy(ip + 12, src, 4);
        std::memcpy(ip + 16, dst, 4);
        store_be16(ip + 10, ipv4_header_checksum(ip, kIpv4MinHeaderLen));
        return kIpv4MinHeaderLen;
    }
    std::memset(ip, 0, 8);
    ip[0] = 0x60;
    store_be16(ip + 4, static_cast<uint16_t>(icmp_len));
    ip[6] = kIpProtoIcmpv6;
    ip[7] = 64;
    std::memmove(ip + 8, src, 16);
    std::memmove(ip + 24, dst, 16);
    return kIpv6HeaderLen;
}

}  // namespace

std::optional<IcmpView> parse_icmp(const uint8_t* frame, const PacketView& v) noexcept {
    const uint8_t expect_proto = v.ip_version == 4 ? kIpProtoIcmp : kIpProtoIcmpv6;
    if ((v.ip_version != 4 && v.ip_version != 6) || v.ip_proto != expect_proto) return std::nullopt;
    if (v.l4_offset + kIcmpHeaderLen > v.l3_end) return std::nullopt;
    IcmpView m;
    m.offset = v.l4_offset;
    m.len = static_cast<uint16_t>(v.l3_end - v.l4_offset);
    const uint8_t* msg = frame + m.offset;
    m.type = msg[0];
    m.code = msg[1];
    if (icmp_checksum(v.ip_version, frame + v.l3_offset, msg, m.len) != load_be16(msg + 2)) return std::nullopt;
    m.is_error = is_error_type(v.ip_version, m.type);
    return m;
}

size_t write_echo_reply(uint8_t* frame, const PacketView& v, const IcmpView& m) noexcept {
    uint8_t* ip = frame + v.l3_offset;
    const size_t ip_hdr = v.ip_version == 4 ? kIpv4MinHeaderLen : kIpv6HeaderLen;
    const size_t alen = v.addr_len();
    uint8_t src[16], dst[16];
    std::memcpy(src, frame + v.dst_addr_offset(), alen);  // swapped
    std::memcpy(dst, frame + v.src_addr_offset(), alen);
    // Options / extension headers are not echoed: the message moves up.
    uint8_t* msg = ip + ip_hdr;
    if (frame + m.offset != msg) std::memmove(msg, frame + m.offset, m.len);
    write_ip_header(ip, v.ip_version, src, dst, m.len);
    msg[0] = v.ip_version == 4 ? kIcmpEchoReply : kIcmpv6EchoReply;
    msg[1] = 0;
    store_be16(msg + 2, icmp_checksum(v.ip_version, ip, msg, m.len));
    return ip_hdr + m.len;
}

size_t write_icmp_error(uint8_t* frame, const PacketView& v, uint8_t type, uint8_t code, const IpAddress& source,
                        size_t room, uint32_t rest) noexcept {
    const bool v4 = v.ip_version == 4;
    if (v4 != source.is_v4()) return 0;
    uint8_t* ip = frame + v.l3_offset;
    const size_t ip_hdr = v4 ? kIpv4MinHeaderLen : kIpv6HeaderLen;
    const size_t head = ip_hdr + kIcmpHeaderLen;
    const size_t limit = v4 ? kIcmpv4ErrorMax : kIcmpv6ErrorMax;
    const size_t original = static_cast<size_t>(v.l3_end - v.l3_offset);
    const size_t original_hdr = static_cast<size_t>(v.l4_offset - v.l3_offset);
    if (room < head + original_hdr + 8) return 0;
    size_t quote = original;
    if (head + quote > limit) quote = limit - head;
    if (head + quote > room) quote = room - head;
    uint8_t dst[16];
    std::memcpy(dst, frame + v.src_addr_offset(), v.addr_len());
    std::memmove(ip + head, ip, quote);
    const size_t icmp_len = kIcmpHeaderLen + quote;
    write_ip_header(ip, v.ip_version, source.bytes.data(), dst, icmp_len);
    uint8_t* msg = ip + ip_hdr;
    msg[0] = type;
    msg[1] = code;
    std::memset(msg + 2, 0, 2);
    store_be16(msg + 4, static_cast<uint16_t>(rest >> 16));
    store_be16(msg + 6, static_cast<uint16_t>(rest));
    store_be16(msg + 2, icmp_checksum(v.ip_version, ip, msg, icmp_len));
    return ip_hdr + icmp_len;
}

std::optional<QuotedUdp> parse_quoted_udp(const uint8_t* frame, const PacketView& v, const IcmpView& m) noexcept {
    if (!m.is_error) return std::nullopt;
    QuotedUdp q;
    q.l3 = static_cast<uint16_t>(m.offset + kIcmpHeaderLen);
    q.end = v.l3_end;
    const uint8_t* ip = frame + q.l3;
    size_t avail = q.end > q.l3 ? q.end - q.l3 : 0;
    if (v.ip_version == 4) {
        if (avail < kIpv4MinHeaderLen || (ip[0] >> 4) != 4) return std::nullopt;
        size_t ihl = static_cast<size_t>(ip[0] & 0x0F) * 4;
        if (ihl < kIpv4MinHeaderLen || ip[9] != kIpProtoUdp || (load_be16(ip + 6) & 0x1FFF) != 0)
            return std::nullopt;  // not UDP, or not the first fragment (no UDP header)
        if (avail < ihl + kUdpHeaderLen) return std::nullopt;
        q.l4 = static_cast<uint16_t>(q.l3 + ihl);
        q.src.ip = IpAddress{IpAddress::Family::v4, {}};
        q.dst.ip = q.src.ip;
        std::memcpy(q.src.ip.bytes.data(), ip + 12, 4);
        std::memcpy(q.dst.ip.bytes.data(), ip + 16, 4);
    } else {
        // What we send carries no extension headers: the quote of one of our
        // datagrams has UDP right after the fixed header.
        if (avail < kIpv6HeaderLen + kUdpHeaderLen || (ip[0] >> 4) != 6 || ip[6] != kIpProtoUdp) return std::nullopt;
        q.l4 = static_cast<uint16_t>(q.l3 + kIpv6HeaderLen);
        q.src.ip = IpAddress{IpAddress::Family::v6, {}};
        q.dst.ip = q.src.ip;
        std::memcpy(q.src.ip.bytes.data(), ip + 8, 16);
        std::memcpy(q.dst.ip.bytes.data(), ip + 24, 16);
    }
    q.src.port = load_be16(frame + q.l4);
    q.dst.port = load_be16(frame + q.l4 + 2);
    return q;
}

bool redirect_icmp_error(uint8_t* frame, const PacketView& v, const IcmpView& m, const QuotedUdp& q,
                         const Endpoint& backend) noexcept {
    const bool v4 = v.ip_version == 4;
    if (v4 != backend.ip.is_v4()) return false;
    const size_t alen = v.addr_len();
    uint8_t* inner_ip = frame + q.l3;
    uint8_t* inner_udp = frame + q.l4;
    uint8_t* inner_src = inner_ip + (v4 ? 12 : 8);
    uint8_t new_port[2];
    store_be16(new_port, backend.port);
    uint16_t udp_csum = load_be16(inner_udp + 6);
    if (udp_csum != 0) {
        udp_csum = checksum_update_bytes(udp_csum, inner_src, backend.ip.bytes.data(), alen);
        udp_csum = checksum_update_bytes(udp_csum, inner_udp, new_port, 2);
        if (udp_csum == 0) udp_csum = 0xFFFF;
        store_be16(inner_udp + 6, udp_csum);
    }
    if (v4)
        store_be16(inner_ip + 10,
                   checksum_update_bytes(load_be16(inner_ip + 10), inner_src, backend.ip.bytes.data(), 4));
    std::memcpy(inner_src, backend.ip.bytes.data(), alen);
    inner_udp[0] = new_port[0];
    inner_udp[1] = new_port[1];
    uint8_t* outer_ip = frame + v.l3_offset;
    uint8_t* outer_dst = frame + v.dst_addr_offset();
    if (v4)
        store_be16(outer_ip + 10,
                   checksum_update_bytes(load_be16(outer_ip + 10), outer_dst, backend.ip.bytes.data(), 4));
    std::memcpy(outer_dst, backend.ip.bytes.data(), alen);
    uint8_t* msg = frame + m.offset;
    store_be16(msg + 2, icmp_checksum(v.ip_version, outer_ip, msg, m.len));
    return true;
}

}  // namespace siplb::net
