// HEPv3 (Homer Encapsulation Protocol) encoding of one SIP datagram, as
// Homer, sngrep (-L) and Wireshark's "hep" dissector read it: "HEP3", the
// total length, then chunks of (vendor 0, type, length incl. the 6-byte
// chunk header, value), all big-endian.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "siplb/common/endpoint.h"

namespace siplb::control {

// Generic chunk types (vendor 0) siplb writes.
enum class HepChunk : uint16_t {
    ip_family = 0x0001,    // u8: 2 IPv4, 10 IPv6
    ip_protocol = 0x0002,  // u8: 17 UDP
    ipv4_src = 0x0003,
    ipv4_dst = 0x0004,
    ipv6_src = 0x0005,
    ipv6_dst = 0x0006,
    src_port = 0x0007,
    dst_port = 0x0008,
    time_sec = 0x0009,
    time_usec = 0x000a,      // microseconds within the second
    protocol_type = 0x000b,  // u8: 1 SIP
    capture_agent = 0x000c,  // u32
    payload = 0x000f,
    correlation_id = 0x0011,  // the Call-ID
};

struct HepMessage {
    Endpoint src, dst;   // the same family
    uint64_t ts_ns = 0;  // since the epoch
    uint32_t agent_id = 0;
    std::string_view payload;  // the SIP message
    std::string_view call_id;  // empty: no correlation chunk
};

// Appends the encoded packet to `out` (cleared first).
void encode_hep3(const HepMessage& m, std::vector<uint8_t>& out);

}  // namespace siplb::control
