// Neighbor stage: answers ARP requests and IPv6 neighbor solicitations for
// the port addresses and VIPs, and learns neighbors' MACs from ARP, NDP and
// the IP sources of forwarded datagrams (gleaning), so that replies and
// backends need no resolution of their own.
#pragma once

#include <cstdint>
#include <cstring>

#include "forward_context.h"
#include "stage.h"

namespace siplb::dataplane {

class NeighborStage {
public:
    NeighborStage(const ForwardContext& ctx, WorkerCounters& counters) noexcept : ctx_(ctx), c_(counters) {}
    NeighborStage(const NeighborStage&) = delete;
    NeighborStage& operator=(const NeighborStage&) = delete;

    // An ARP frame on its port's VLAN: learns the sender, answers a request for one of our addresses.
    Action answer_arp(const Frame& f, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept;
    // An NDP message (ICMPv6 133-137) on its port's VLAN: learns the
    // sender or target, answers a solicitation for one of our addresses.
    Action answer_ndp(const Frame& f, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept;
    // Learns the source MAC of an IP datagram from an on-link sender.
    // Inline: every forwarded datagram passes here, and nearly all of them
    // end at the route test (IPv4) or in a hit of the glean cache.
    void glean(const uint8_t* frame, const net::PacketView& v, uint16_t in_port, uint64_t now_ms) noexcept {
        const bool v6 = v.ip_version == 6;
        // An IPv4 source that is not on-link of its port is never learned,
        // and asking the routes costs less than the glean cache, which an
        // edge's clients (routed, and more of them than it holds) would
        // keep missing.
        if (!v6) {
            uint32_t be;
            std::memcpy(&be, frame + v.src_addr_offset(), 4);
            if (ctx_.routes.on_link_port_v4(be) != in_port) return;
        }
        const auto [lo, hi] = address_words(frame + v.src_addr_offset(), v6);
        uint64_t mac = 0;
        std::memcpy(&mac, frame + 6, 6);
        GleanEntry& g = glean_cache_[address_slot_hash(lo, hi) & (kGleanCacheSize - 1)];
        if (g.addr_lo == lo && g.addr_hi == hi && g.v6 == v6 && g.port == in_port &&
            (g.routed || (g.mac == mac && now_ms < g.until_ms))) [[likely]]
            return;
        glean_slow(frame, v, in_port, now_ms, g);
    }

private:
    // Glean cache of this worker: a source seen on this port with this MAC
    // less than kGleanSkipMs ago is not learned again (the table stamps a
    // confirmation at most once per NeighborTable::kConfirmGranularityMs
    // anyway), and a routed IPv6 source (not on-link of its port) is
    // skipped for good. A new MAC, port or an expired entry takes the full path.
    struct GleanEntry {
        uint64_t addr_lo = 0, addr_hi = 0;
        uint64_t mac = 0;       // the 6 source MAC bytes, byte 0 lowest
        uint64_t until_ms = 0;  // on-link: skip learn() until then
        uint16_t port = 0;
        uint8_t v6 = 0;
        bool routed = false;
    };
    static constexpr uint32_t kGleanCacheSize = 1024;  // power of two
    static constexpr uint64_t kGleanSkipMs = 250;
    static_assert(kGleanSkipMs < net::NeighborTable::kConfirmGranularityMs);
    // A source the glean cache has no fresh entry for: learned if on-link, `g` filled.
    void glean_slow(const uint8_t* frame, const net::PacketView& v, uint16_t in_port, uint64_t now_ms,
                    GleanEntry& g) noexcept;
    // NeighborTable::learn, counting the entries it inserts or changes.
    net::NeighborTable::Learn learn(const IpAddress& ip, const MacAddress& mac, uint16_t in_port,
                                    uint64_t now_ms) noexcept;

    const ForwardContext& ctx_;
    WorkerCounters& c_;
    GleanEntry glean_cache_[kGleanCacheSize];
};

}  // namespace siplb::dataplane
