// Builds Ethernet/IP/UDP (and TCP) frames for tests and benchmarks, and checks
// checksums with a deliberately naive byte-by-byte computation independent
// of src/net. Header-only: scripts/fuzz compiles targets that include it
// without meson.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "siplb/common/endpoint.h"

namespace siplb::test {

// Straightforward RFC 1071 sum: 16-bit big-endian words, end-around carry.
inline uint16_t naive_checksum(const std::vector<uint8_t>& bytes) {
    uint32_t sum = 0;
    for (size_t i = 0; i < bytes.size(); i += 2) {
        uint32_t word = static_cast<uint32_t>(bytes[i]) << 8;
        if (i + 1 < bytes.size()) word |= bytes[i + 1];
        sum += word;
        while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
    }
    return static_cast<uint16_t>(~sum & 0xFFFF);
}

struct FrameSpec {
    MacAddress src_mac{{0x02, 0, 0, 0, 0, 0x01}};
    MacAddress dst_mac{{0x02, 0, 0, 0, 0, 0x02}};
    uint16_t vlan = 0;
    Endpoint src;
    Endpoint dst;
    uint8_t ttl = 64;
    std::vector<uint8_t> ipv4_options;  // multiple of 4 bytes
    bool ipv6_hop_by_hop = false;       // insert an 8-byte hop-by-hop header
    bool udp_checksum = true;           // false: IPv4 UDP checksum 0
    std::string_view payload;
};

struct Frame {
    std::vector<uint8_t> bytes;
    size_t l3 = 0;
    size_t l4 = 0;
};

inline void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
    b[at] = static_cast<uint8_t>(v >> 8);
    b[at + 1] = static_cast<uint8_t>(v);
}
inline uint16_t get16(const std::vector<uint8_t>& b, size_t at) {
    return static_cast<uint16_t>((b[at] << 8) | b[at + 1]);
}

// Independent UDP checksum of the datagram in `f` (checksum field ignored).
inline uint16_t naive_udp_checksum(const std::vector<uint8_t>& frame, size_t l3, size_t l4, bool v6) {
    std::vector<uint8_t> pseudo;
    size_t alen = v6 ? 16 : 4;
    size_t src = l3 + (v6 ? 8 : 12), dst = l3 + (v6 ? 24 : 16);
    pseudo.insert(pseudo.end(), frame.begin() + src, frame.begin() + src + alen);
    pseudo.insert(pseudo.end(), frame.begin() + dst, frame.begin() + dst + alen);
    size_t ip_end = v6 ? l3 + 40 + get16(frame, l3 + 4) : l3 + get16(frame, l3 + 2);
    size_t udp_len = ip_end - l4;
    if (v6) {
        pseudo.insert(pseudo.end(),
                      {0, 0, static_cast<uint8_t>(udp_len >> 8), static_cast<uint8_t>(udp_len), 0, 0, 0, 17});
    } else {
        pseudo.insert(pseudo.end(), {0, 17, static_cast<uint8_t>(udp_len >> 8), static_cast<uint8_t>(udp_len)});
    }
    std::vector<uint8_t> udp(frame.begin() + l4, frame.begin() + ip_end);
    udp[6] = udp[7] = 0;
    pseudo.insert(pseudo.end(), udp.begin(), udp.end());
    uint16_t c = naive_checksum(pseudo);
    return c == 0 ? 0xFFFF : c;
}

// ICMP / ICMPv6 checksum of the message f[l4, end) with its checksum field
// taken as zero; ICMPv6 adds the pseudo-header of the IPv6 header at f[l3].
inline uint16_t naive_icmp_checksum(const std::vector<uint8_t>& f, size_t l3, size_t l4, size_t end, bool v6) {
    std::vector<uint8_t> msg(f.begin() + static_cast<long>(l4), f.begin() + static_cast<long>(end));
    msg[2] = msg[3] = 0;
    if (!v6) return naive_checksum(msg);
    std::vector<uint8_t> pseudo(f.begin() + static_cast<long>(l3) + 8, f.begin() + static_cast<long>(l3) + 40);
    pseudo.insert(pseudo.end(),
                  {0, 0, static_cast<uint8_t>(msg.size() >> 8), static_cast<uint8_t>(msg.size()), 0, 0, 0, 58});
    pseudo.insert(pseudo.end(), msg.begin(), msg.end());
    return naive_checksum(pseudo);
}

inline uint16_t naive_ipv4_checksum(const std::vector<uint8_t>& frame, size_t l3) {
    size_t ihl = (frame[l3] & 0x0F) * 4u;
    std::vector<uint8_t> h(frame.begin() + l3, frame.begin() + l3 + ihl);
    h[10] = h[11] = 0;
    return naive_checksum(h);
}

// Ethernet header (802.1Q tag when `vlan` is not 0) appended to `b`.
inline void append_ethernet(std::vector<uint8_t>& b, const MacAddress& dst, const MacAddress& src, uint16_t vlan,
                            uint16_t ether_type) {
    b.insert(b.end(), dst.bytes.begin(), dst.bytes.end());
    b.insert(b.end(), src.bytes.begin(), src.bytes.end());
    if (vlan) b.insert(b.end(), {0x81, 0x00, static_cast<uint8_t>(vlan >> 8), static_cast<uint8_t>(vlan)});
    b.insert(b.end(), {static_cast<uint8_t>(ether_type >> 8), static_cast<uint8_t>(ether_type)});
}

inline Frame build_frame(const FrameSpec& s) {
    Frame f;
    auto& b = f.bytes;
    bool v6 = s.src.ip.is_v6();
    append_ethernet(b, s.dst_mac, s.src_mac, s.vlan, v6 ? 0x86DD : 0x0800);
    f.l3 = b.size();
    size_t udp_len = 8 + s.payload.size();
    if (!v6) {
        size_t ihl = 20 + s.ipv4_options.size();
        b.resize(b.size() + ihl);
        b[f.l3] = static_cast<uint8_t>(0x40 | (ihl / 4));
        put16(b, f.l3 + 2, static_cast<uint16_t>(ihl + udp_len));
        put16(b, f.l3 + 4, 0x1234);
        put16(b, f.l3 + 6, 0x4000);  // DF
        b[f.l3 + 8] = s.ttl;
        b[f.l3 + 9] = 17;
        std::copy(s.src.ip.bytes.begin(), s.src.ip.bytes.begin() + 4, b.begin() + f.l3 + 12);
        std::copy(s.dst.ip.bytes.begin(), s.dst.ip.bytes.begin() + 4, b.begin() + f.l3 + 16);
        std::copy(s.ipv4_options.begin(), s.ipv4_options.end(), b.begin() + f.l3 + 20);
        put16(b, f.l3 + 10, naive_ipv4_checksum(b, f.l3));
    } else {
        size_t ext = s.ipv6_hop_by_hop ? 8 : 0;
        b.resize(b.size() + 40 + ext);
        b[f.l3] = 0x60;
        put16(b, f.l3 + 4, static_cast<uint16_t>(ext + udp_len));
        b[f.l3 + 6] = s.ipv6_hop_by_hop ? 0 : 17;
        b[f.l3 + 7] = s.ttl;
        std::copy(s.src.ip.bytes.begin(), s.src.ip.bytes.end(), b.begin() + f.l3 + 8);
        std::copy(s.dst.ip.bytes.begin(), s.dst.ip.bytes.end(), b.begin() + f.l3 + 24);
        if (ext) {
            b[f.l3 + 40] = 17;  // next header UDP, length 0 => 8 bytes, PadN option
            b[f.l3 + 41] = 0;
            b[f.l3 + 42] = 1;
            b[f.l3 + 43] = 4;
        }
    }
    f.l4 = b.size();
    b.resize(b.size() + 8);
    put16(b, f.l4, s.src.port);
    put16(b, f.l4 + 2, s.dst.port);
    put16(b, f.l4 + 4, static_cast<uint16_t>(udp_len));
    b.insert(b.end(), s.payload.begin(), s.payload.end());
    if (s.udp_checksum || v6) put16(b, f.l4 + 6, naive_udp_checksum(b, f.l3, f.l4, v6));
    return f;
}

// A TCP segment (IPv4 or IPv6 by the source address), for the TCP path's
// tests, fuzzer and benchmarks.
struct TcpFrameSpec {
    MacAddress src_mac{{0x02, 0, 0, 0, 0, 0x01}};
    MacAddress dst_mac{{0x02, 0, 0, 0, 0, 0x02}};
    uint16_t vlan = 0;
    Endpoint src;
    Endpoint dst;
    uint8_t ttl = 64;
    uint8_t flags = 0x02;  // SYN
    uint32_t seq = 0, ack = 0;
    std::vector<uint8_t> options;  // multiple of 4 bytes, at most 40
    std::string_view payload;
};

// Independent TCP checksum of the segment f[l4, end) (checksum field taken
// as zero) over the pseudo-header of the IP header at f[l3].
inline uint16_t naive_tcp_checksum(const std::vector<uint8_t>& f, size_t l3, size_t l4, size_t end, bool v6) {
    const size_t alen = v6 ? 16 : 4, src = l3 + (v6 ? 8 : 12);
    std::vector<uint8_t> b(f.begin() + static_cast<long>(src), f.begin() + static_cast<long>(src + 2 * alen));
    const size_t len = end - l4;
    if (v6)
        b.insert(b.end(), {0, 0, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len), 0, 0, 0, 6});
    else
        b.insert(b.end(), {0, 6, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)});
    std::vector<uint8_t> seg(f.begin() + static_cast<long>(l4), f.begin() + static_cast<long>(end));
    seg[16] = seg[17] = 0;
    b.insert(b.end(), seg.begin(), seg.end());
    return naive_checksum(b);
}

inline Frame build_tcp_frame(const TcpFrameSpec& s) {
    Frame f;
    auto& b = f.bytes;
    const bool v6 = s.src.ip.is_v6();
    append_ethernet(b, s.dst_mac, s.src_mac, s.vlan, v6 ? 0x86DD : 0x0800);
    f.l3 = b.size();
    const size_t header = 20 + s.options.size(), seg_len = header + s.payload.size();
    f.l4 = f.l3 + (v6 ? 40 : 20);
    const size_t end = f.l4 + seg_len;
    b.resize(end);
    if (v6) {
        b[f.l3] = 0x60;
        put16(b, f.l3 + 4, static_cast<uint16_t>(seg_len));
        b[f.l3 + 6] = 6;
        b[f.l3 + 7] = s.ttl;
        std::copy(s.src.ip.bytes.begin(), s.src.ip.bytes.end(), b.begin() + static_cast<long>(f.l3 + 8));
        std::copy(s.dst.ip.bytes.begin(), s.dst.ip.bytes.end(), b.begin() + static_cast<long>(f.l3 + 24));
    } else {
        b[f.l3] = 0x45;
        put16(b, f.l3 + 2, static_cast<uint16_t>(20 + seg_len));
        put16(b, f.l3 + 6, 0x4000);  // DF
        b[f.l3 + 8] = s.ttl;
        b[f.l3 + 9] = 6;
        std::copy(s.src.ip.bytes.begin(), s.src.ip.bytes.begin() + 4, b.begin() + static_cast<long>(f.l3 + 12));
        std::copy(s.dst.ip.bytes.begin(), s.dst.ip.bytes.begin() + 4, b.begin() + static_cast<long>(f.l3 + 16));
        put16(b, f.l3 + 10, naive_ipv4_checksum(b, f.l3));
    }
    const size_t l4 = f.l4;
    put16(b, l4, s.src.port);
    put16(b, l4 + 2, s.dst.port);
    put16(b, l4 + 4, static_cast<uint16_t>(s.seq >> 16));
    put16(b, l4 + 6, static_cast<uint16_t>(s.seq));
    put16(b, l4 + 8, static_cast<uint16_t>(s.ack >> 16));
    put16(b, l4 + 10, static_cast<uint16_t>(s.ack));
    b[l4 + 12] = static_cast<uint8_t>((header / 4) << 4);
    b[l4 + 13] = s.flags;
    put16(b, l4 + 14, 65535);
    std::copy(s.options.begin(), s.options.end(), b.begin() + static_cast<long>(l4 + 20));
    std::copy(s.payload.begin(), s.payload.end(), b.begin() + static_cast<long>(l4 + header));
    put16(b, l4 + 16, naive_tcp_checksum(b, f.l3, l4, end, v6));
    return f;
}

// Ethernet (+tag) header and 72 zero bytes: room for the IPv6 header and an
// NS/NA with one link-layer address option, which the ND code under test writes.
inline std::vector<uint8_t> ndp_frame(const MacAddress& dst = {}, const MacAddress& src = {}, uint16_t vlan = 0) {
    const size_t l2 = vlan ? 18 : 14;
    std::vector<uint8_t> f(l2 + 72, 0);  // sized once: GCC 12 misreads resize-after-push_back bounds
    std::copy(dst.bytes.begin(), dst.bytes.end(), f.begin());
    std::copy(src.bytes.begin(), src.bytes.end(), f.begin() + 6);
    if (vlan) {
        put16(f, 12, 0x8100);
        put16(f, 14, vlan);
    }
    put16(f, l2 - 2, 0x86DD);
    return f;
}

inline Endpoint ep(std::string_view text) { return *Endpoint::parse(text); }

}  // namespace siplb::test
