// TCP stage: SIP over TCP and TLS through the same VIPs, balanced per
// connection. A segment to a TCP/TLS VIP goes to the backend its connection
// entry names (recorded on the SYN), else to the Maglev pick over the
// client's address and port (the pool's table and seed: nodes agree without
// sharing entries). A segment from a backend's TCP/TLS port goes back to the
// client from the VIP its connection came in on. siplb never terminates TLS:
// the segments pass unchanged but for addresses, ports and checksums (nat),
// or inside a tunnel (ipip).
#pragma once

#include <algorithm>
#include <cstdint>

#include "egress.h"
#include "forward_context.h"
#include "icmp_errors.h"
#include "neighbor_stage.h"
#include "siplb/net/packet.h"
#include "stage.h"
#include "to_backend_stage.h"

namespace siplb::dataplane {

// Per-source SYN token buckets of one worker: fixed size, direct mapped by
// a hash of the source address (a colliding source takes the slot over with
// a full bucket, so a flood from many addresses costs others at most their
// history, never their connections).
class SynLimiter {
public:
    static constexpr uint32_t kSlots = 4096;  // power of two
    // rate_per_s == 0: every SYN passes.
    bool allow(uint32_t source, uint64_t now_ms, uint32_t rate_per_s, uint32_t burst) noexcept {
        if (rate_per_s == 0) return true;
        Slot& s = slots_[source & (kSlots - 1)];
        const uint64_t cap = uint64_t{burst} * 1000;
        if (s.source != source || s.last_ms == 0) {
            s = {source, cap, now_ms};
        } else if (now_ms > s.last_ms) {
            // Milli-tokens: one SYN costs 1000, each ms refills rate_per_s.
            s.milli_tokens = std::min(cap, s.milli_tokens + (now_ms - s.last_ms) * rate_per_s);
            s.last_ms = now_ms;
        }
        if (s.milli_tokens < 1000) return false;
        s.milli_tokens -= 1000;
        return true;
    }

private:
    struct Slot {
        uint32_t source = 0;
        uint64_t milli_tokens = 0;
        uint64_t last_ms = 0;
    };
    Slot slots_[kSlots];
};

class TcpStage {
public:
    TcpStage(const ForwardContext& ctx, WorkerCounters& counters, Egress& egress, NeighborStage& neighbors,
             IcmpErrors& errors, ToBackendStage& to_backend) noexcept
        : ctx_(ctx), c_(counters), egress_(egress), neighbors_(neighbors), errors_(errors), to_backend_(to_backend) {}
    TcpStage(const TcpStage&) = delete;
    TcpStage& operator=(const TcpStage&) = delete;

    // `f` parsed as not_udp with ip_proto TCP. Segments neither to a TCP VIP
    // nor from a backend's TCP/TLS port are not_for_us (the kernel's: SSH,
    // BGP), untouched and unparsed. verify_checksum: off when the NIC did.
    Action handle(Frame& f, const balance::DataplaneSnapshot* snap, uint32_t now_s, uint64_t now_ms,
                  bool verify_checksum) noexcept;
    // Reclaims the expired entries of `buckets` buckets of the connection
    // table, counting each (expired, or closed earlier): what a worker does
    // while no segments arrive, since segments are what otherwise sweep it.
    void sweep(uint32_t now_s, uint32_t buckets) noexcept {
        if (ctx_.connections)
            ctx_.connections->sweep(now_s, buckets,
                                    [this](const balance::ConnectionTable::Conn& c) { count_removed(c, false); });
    }

private:
    Action to_backend(Frame& f, const balance::DataplaneSnapshot::PoolRef& ref, const net::TcpSegment& seg,
                      uint32_t now_s, uint64_t now_ms) noexcept;
    Action to_client(Frame& f, const balance::DataplaneSnapshot::TcpBackendRef& ref, const net::TcpSegment& seg,
                     uint32_t now_s, uint64_t now_ms) noexcept;
    // Counts an entry the table gave up (swept, or displaced by a new one).
    void count_removed(const balance::ConnectionTable::Conn& c, bool evicted) noexcept;
    void count_opened(const balance::PoolSnapshot& pool, uint32_t backend_id) noexcept;
    void count_closed(const balance::PoolSnapshot& pool, uint32_t backend_id) noexcept;

    const ForwardContext& ctx_;
    WorkerCounters& c_;
    Egress& egress_;
    NeighborStage& neighbors_;
    IcmpErrors& errors_;
    ToBackendStage& to_backend_;  // its ipip tunnel
    SynLimiter syn_limiter_;
};

}  // namespace siplb::dataplane
