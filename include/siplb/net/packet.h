// Parsing of Ethernet (+802.1Q) / IPv4 / IPv6 / UDP frames into offsets.
// Pure: knows nothing of DPDK, works on any byte buffer. The result holds
// offsets into the frame, so the rewriter can patch the bytes in place.
#pragma once

#include <cstddef>
#include <cstdint>

#include "siplb/common/endpoint.h"

namespace siplb::net {

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86DD;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr size_t kEthernetHeaderLen = 14;
inline constexpr size_t kVlanTagLen = 4;
inline constexpr size_t kIpv4MinHeaderLen = 20;
inline constexpr size_t kIpv6HeaderLen = 40;
inline constexpr size_t kUdpHeaderLen = 8;

// Outcome of parsing one frame. Everything except `udp` is a reason the
// frame is not forwarded as a UDP datagram.
enum class ParseStatus : uint8_t {
    udp,            // well-formed unfragmented UDP over IPv4/IPv6
    not_ip,         // ARP, LLDP, ...: `ethertype` says which
    not_udp,        // IP, other protocol (ICMP, TCP, ...)
    short_frame,    // truncated Ethernet / IP / UDP header
    bad_ip_header,  // wrong version, IHL < 5
    bad_ip_length,  // IP total/payload length does not fit the frame
    bad_ip_checksum,
    ip_fragment,       // IPv4 MF/offset or IPv6 fragment header
    ipv6_ext_header,   // extension header we do not forward (AH, ESP, routing with segments left, ...)
    bad_udp_length,    // UDP length < 8 or != IP payload length
    bad_udp_checksum,  // wrong, or zero over IPv6
};

struct PacketView {
    uint16_t ethertype = 0;  // after any VLAN tag
    uint16_t vlan_tci = 0;   // host order; valid when has_vlan
    bool has_vlan = false;
    uint8_t ip_version = 0;  // 4 or 6
    uint16_t l3_offset = 0;  // IP header
    uint16_t l4_offset = 0;  // UDP header (after IPv4 options / IPv6 extension headers);
                             // also set for other upper layers (not_udp), e.g. ICMPv6
    uint16_t l3_end = 0;     // end of the IP datagram (frame padding excluded)
    uint8_t ip_proto = 0;    // IPv4 protocol / final IPv6 next header
    uint8_t ttl = 0;         // TTL or hop limit
    uint16_t src_port = 0;   // host order
    uint16_t dst_port = 0;
    uint16_t udp_checksum = 0;  // as found (host order); 0 = none (IPv4 only)

    uint16_t payload_offset() const noexcept { return static_cast<uint16_t>(l4_offset + kUdpHeaderLen); }
    uint16_t payload_len() const noexcept { return static_cast<uint16_t>(l3_end - payload_offset()); }
    uint16_t udp_len() const noexcept { return static_cast<uint16_t>(l3_end - l4_offset); }
    // Offsets of the address fields (IPv4: 4 bytes, IPv6: 16 bytes).
    uint16_t src_addr_offset() const noexcept { return static_cast<uint16_t>(l3_offset + (ip_version == 4 ? 12 : 8)); }
    uint16_t dst_addr_offset() const noexcept { return static_cast<uint16_t>(l3_offset + (ip_version == 4 ? 16 : 24)); }
    uint8_t addr_len() const noexcept { return ip_version == 4 ? 4 : 16; }
};

struct ParseOptions {
    bool verify_ip_checksum = true;   // off when the NIC already verified it
    bool verify_udp_checksum = true;  // off when the NIC already verified it
};

ParseStatus parse_frame(const uint8_t* frame, size_t len, PacketView& out, ParseOptions options = {}) noexcept;

// TCP (SIP over TCP and TLS): parse_frame() reports TCP as not_udp with
// ip_proto kIpProtoTcp and l4_offset set; parse_tcp() then reads the
// segment's header, sets the view's ports, and checks the checksum.
inline constexpr uint8_t kIpProtoTcp = 6;
inline constexpr size_t kTcpMinHeaderLen = 20;
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpAck = 0x10;

enum class TcpStatus : uint8_t {
    ok,
    short_segment,  // shorter than its header (or the 20-byte minimum)
    bad_offset,     // data offset below 5 words
    bad_checksum,
};
struct TcpSegment {
    uint8_t flags = 0;         // FIN, SYN, RST, PSH, ACK, ... (byte 13)
    uint16_t header_len = 0;   // data offset in bytes
    uint16_t payload_len = 0;  // bytes after the header
};
TcpStatus parse_tcp(const uint8_t* frame, PacketView& v, TcpSegment& out, bool verify_checksum = true) noexcept;
// The TCP checksum of the segment at v.l4_offset with its field taken as
// zero (for tests and for checking; forwarding updates it incrementally).
uint16_t tcp_checksum(const uint8_t* frame, const PacketView& v) noexcept;

// Addresses of a parsed frame as endpoints (for snapshot lookups).
Endpoint source_endpoint(const uint8_t* frame, const PacketView& v) noexcept;
Endpoint destination_endpoint(const uint8_t* frame, const PacketView& v) noexcept;

const char* parse_status_name(ParseStatus s) noexcept;

}  // namespace siplb::net
