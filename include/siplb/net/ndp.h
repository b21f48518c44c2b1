// IPv6 Neighbor Discovery (RFC 4861), the part a forwarding appliance needs:
// Neighbor Solicitations and Advertisements with link-layer address options,
// for gleaning, answering for our addresses and resolving next hops. Pure.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "siplb/common/endpoint.h"
#include "siplb/net/packet.h"

namespace siplb::net {

inline constexpr uint8_t kIcmpv6NeighborSolicitation = 135;
inline constexpr uint8_t kIcmpv6NeighborAdvertisement = 136;
inline constexpr size_t kNdpMessageLen = 32;  // NS/NA with one link-layer address option

struct NdpMessage {
    uint8_t type = 0;  // 135 or 136
    IpAddress source;  // IPv6 source of the packet (:: for DAD probes)
    IpAddress target;
    std::optional<MacAddress> link_addr;  // source LL (NS) or target LL (NA) option
    bool solicited = false, override_flag = false;
};

// Validates (hop limit 255, code 0, ICMPv6 checksum, lengths, options) and
// parses an NS or NA in a frame that parse_frame() reported as IPv6 not_udp.
std::optional<NdpMessage> parse_ndp(const uint8_t* frame, const PacketView& v) noexcept;

// ff02::1:ffXX:XXXX for a target, and its Ethernet multicast address.
IpAddress solicited_node_address(const IpAddress& target) noexcept;
MacAddress ipv6_multicast_mac(const IpAddress& group) noexcept;

// Writes an IPv6 header plus a 32-byte NS/NA at `ip` (72 bytes). The caller
// writes the Ethernet header in front.
void write_neighbor_solicitation(uint8_t* ip, const IpAddress& source, const MacAddress& source_mac,
                                 const IpAddress& target) noexcept;
void write_neighbor_advertisement(uint8_t* ip, const IpAddress& source, const IpAddress& destination,
                                  const MacAddress& target_mac, bool solicited) noexcept;

}  // namespace siplb::net
