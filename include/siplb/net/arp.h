// ARP (RFC 826) for Ethernet/IPv4: parsing for gleaning and answering, and
// building requests and replies. Pure, byte buffers only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "siplb/common/endpoint.h"

namespace siplb::net {

inline constexpr size_t kArpLen = 28;
inline constexpr uint16_t kArpRequest = 1;
inline constexpr uint16_t kArpReply = 2;

struct ArpMessage {
    uint16_t op = 0;
    MacAddress sender_mac;
    uint32_t sender_ip_be = 0;
    MacAddress target_mac;
    uint32_t target_ip_be = 0;
};

// `arp` points at the ARP payload (after Ethernet/VLAN). nullopt unless it is
// Ethernet/IPv4 ARP with a request or reply opcode.
std::optional<ArpMessage> parse_arp(const uint8_t* arp, size_t len) noexcept;

// Writes a 28-byte ARP payload.
void write_arp(uint8_t* arp, const ArpMessage& m) noexcept;

// Turns a parsed request into the reply from `our_mac` (sender/target
// swapped), to be written with write_arp.
inline ArpMessage arp_reply_to(const ArpMessage& request, const MacAddress& our_mac) noexcept {
    ArpMessage r;
    r.op = kArpReply;
    r.sender_mac = our_mac;
    r.sender_ip_be = request.target_ip_be;
    r.target_mac = request.sender_mac;
    r.target_ip_be = request.sender_ip_be;
    return r;
}

}  // namespace siplb::net
