// In-place header rewrites for forwarding: DNAT (client->VIP becomes
// client->backend), SNAT (backend->client becomes VIP->client), TTL / hop
// limit decrement and the Ethernet header. Checksums are updated
// incrementally (RFC 1624) from the changed bytes only; the payload is never
// read. A UDP checksum of 0 over IPv4 means "none" and stays 0.
#pragma once

#include <cstddef>
#include <cstdint>

#include "siplb/common/endpoint.h"
#include "siplb/net/packet.h"

namespace siplb::net {

// Which side of the datagram to rewrite.
enum class NatSide : uint8_t { source, destination };

// Rewrites the source or destination address and port of a parsed UDP
// datagram or TCP segment (ip_proto kIpProtoTcp) to `to` and fixes the IPv4
// header and UDP or TCP checksums (RFC 1624, from the changed bytes only). `to` must be
// of the packet's family (checked: returns false and leaves the frame as it
// was otherwise).
bool rewrite_endpoint(uint8_t* frame, const PacketView& v, NatSide side, const Endpoint& to) noexcept;

// Decrements TTL (IPv4, with incremental header checksum) or hop limit.
// Returns false, leaving the frame untouched, when it would reach 0 (the
// caller drops the datagram: TTL expired in transit).
bool decrement_ttl(uint8_t* frame, const PacketView& v) noexcept;

// DNAT + TTL: the forward path client -> VIP  ==>  client -> backend.
inline bool dnat(uint8_t* frame, const PacketView& v, const Endpoint& backend) noexcept {
    return rewrite_endpoint(frame, v, NatSide::destination, backend);
}
// SNAT: the reverse path backend -> client  ==>  VIP -> client.
inline bool snat(uint8_t* frame, const PacketView& v, const Endpoint& vip) noexcept {
    return rewrite_endpoint(frame, v, NatSide::source, vip);
}

// Tunnel encapsulation for direct server return (`ipip` pools): an outer
// IPv4 (protocol 4 for IPv4 inside, 41 for IPv6) or IPv6 header (next
// header 4/41) from `src` to `dst` in front of the inner datagram, which is
// left untouched. Writes tunnel_header_len(dst) bytes at `outer`, directly
// before the inner IP header. Outer TTL/hop limit 64, DF clear (the outer
// datagram may be fragmented on the way; the inner one is not touched).
inline size_t tunnel_header_len(const IpAddress& outer_dst) noexcept {
    return outer_dst.is_v4() ? kIpv4MinHeaderLen : kIpv6HeaderLen;
}
void write_tunnel_header(uint8_t* outer, const IpAddress& src, const IpAddress& dst, uint8_t inner_ip_version,
                         uint16_t inner_len) noexcept;

// Length of the Ethernet header write_ethernet produces.
inline constexpr size_t ethernet_header_len(uint16_t vlan_id) noexcept {
    return vlan_id ? kEthernetHeaderLen + kVlanTagLen : kEthernetHeaderLen;
}

// Writes an Ethernet header (with an 802.1Q tag when vlan_id != 0, PCP 0)
// at `l2`, which must have ethernet_header_len(vlan_id) bytes before the
// L3 header. The caller moves the frame start when the header length
// changes (tagged in, untagged out or the reverse).
void write_ethernet(uint8_t* l2, const MacAddress& dst, const MacAddress& src, uint16_t vlan_id,
                    uint16_t ethertype) noexcept;

}  // namespace siplb::net
