// Egress of a forwarded datagram: route, next-hop MAC (this worker's hop
// cache in front of the shared neighbor table), the egress MTU decision,
// TTL and the Ethernet header. Every stage that sends a datagram on (to a
// backend, to a client, an ICMP error to its backend) goes through it.
#pragma once

#include <cstdint>

#include "forward_context.h"
#include "stage.h"

namespace siplb::dataplane {

class Egress {
public:
    Egress(const ForwardContext& ctx, WorkerCounters& counters) noexcept : ctx_(ctx), c_(counters) {}
    Egress(const Egress&) = delete;
    Egress& operator=(const Egress&) = delete;

    // Routes `dst`, resolves the neighbor, decrements TTL and writes the
    // Ethernet header. Leaves the frame untouched when it returns a drop. A
    // stale neighbor is used and, at most once per arp_retry_ms, also gets a
    // refresh request (Action::resolve on a transmit).
    // encap_len: bytes of tunnel header to fit between L2 and the datagram
    // (ipip); the caller writes it, and the EtherType is then dst's family.
    Action forward(const Frame& f, const IpAddress& dst, uint64_t now_ms, uint16_t encap_len = 0) noexcept;

    // The next hop of the last Action with resolve() set.
    const IpAddress& resolve_target() const noexcept { return resolve_target_; }
    // Writes a broadcast ARP request (IPv4 target) or a multicast neighbor
    // solicitation (IPv6 target) from port `port` into `buf` (at least
    // kResolutionFrameMax bytes); returns the frame length.
    static constexpr uint16_t kResolutionFrameMax = 18 + 72;
    uint16_t write_resolution_request(uint8_t* buf, uint16_t port, const IpAddress& target) const noexcept;

private:
    const ForwardContext& ctx_;
    WorkerCounters& c_;
    IpAddress resolve_target_;
    // Neighbor cache of this worker: next hop (backend or gateway) -> MAC,
    // so the common case skips the shared neighbor table (its seqlocked
    // probe). Keyed by next hop, not destination: customers behind one
    // router share its entry. An entry is used while the neighbor table's
    // generation is the one it was filled under and the neighbor is fresh
    // (reachable or static); unresolved and stale neighbors take the full path.
    struct HopCacheEntry {
        uint64_t addr_lo = 0, addr_hi = 0;  // next-hop address bytes
        uint64_t generation = 0;            // 0: empty (tables start at 1)
        uint64_t fresh_until_ms = 0;
        MacAddress mac;
        uint16_t port = 0;
        uint8_t v6 = 0;
    };
    static constexpr uint32_t kHopCacheSize = 4096;  // power of two; ~1000 on-link backends, few collisions
    HopCacheEntry hop_cache_[kHopCacheSize];
};

}  // namespace siplb::dataplane
