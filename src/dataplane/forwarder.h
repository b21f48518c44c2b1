// The per-frame decision of a worker, free of DPDK so it can be driven by a
// byte buffer: parse once, classify, check the VLAN, and hand the frame to
// the stage that handles its kind (to-backend, to-client, neighbor, ICMP),
// which rewrites it in place and says where it goes. The DPDK glue
// (worker.cpp) only moves mbufs. Three steps (prepare, prefetch, forward),
// so a worker can parse a whole burst and prefetch its table lines before
// forwarding any of it.
#pragma once

#include <cstdint>

#include "counters.h"
#include "egress.h"
#include "forward_context.h"
#include "icmp_errors.h"
#include "icmp_stage.h"
#include "neighbor_stage.h"
#include "siplb/balance/snapshot.h"
#include "siplb/net/packet.h"
#include "siplb/protect/guard.h"
#include "stage.h"
#include "tcp_stage.h"
#include "to_backend_stage.h"
#include "to_client_stage.h"

namespace siplb::dataplane {

class Forwarder {
public:
    // `worker`: this worker's index (its protect guard in each snapshot).
    Forwarder(const ForwardContext& ctx, WorkerCounters& counters, unsigned worker = 0) noexcept
        : ctx_(ctx),
          c_(counters),
          egress_(ctx, counters),
          neighbors_(ctx, counters),
          icmp_errors_(ctx, counters),
          to_backend_(ctx, counters, egress_, neighbors_, icmp_errors_, worker),
          to_client_(ctx, counters, egress_, neighbors_, icmp_errors_),
          icmp_(ctx, counters, egress_, to_backend_, icmp_errors_),
          tcp_(ctx, counters, egress_, neighbors_, icmp_errors_, to_backend_) {}
    Forwarder(const Forwarder&) = delete;
    Forwarder& operator=(const Forwarder&) = delete;

    // Where prepare() sends a frame; `decided`: its Action is known already.
    enum class Route : uint8_t { decided, to_backend, to_client, arp, ndp, icmp, tcp, ttl_expired, unmatched_udp };
    // One frame between prepare() and forward(): a worker keeps one per
    // burst slot, preallocated and reused.
    struct Prepared {
        Frame frame;
        Route route = Route::decided;
        bool verify_tcp_checksum = true;                 // tcp: the NIC did not verify it
        Action decided;                                  // route == decided (already counted)
        balance::DataplaneSnapshot::PoolRef vip;         // to_backend
        balance::DataplaneSnapshot::BackendRef backend;  // to_client
        ToBackendStage::Prepared to_backend;
    };

    // First pass over a burst: parses the frame (L2-L4 and, toward a VIP,
    // SIP), classifies it and finds its pool or backend. Counts drops
    // decided here; changes no other state, so a whole burst is prepared
    // before any frame of it is forwarded. `frame` has `headroom` writable bytes before it and
    // `tailroom` after `len`. `parse` turns software checksum checks off
    // where the NIC verified them.
    void prepare(Prepared& p, uint8_t* frame, uint16_t len, uint16_t headroom, uint16_t tailroom, uint16_t in_port,
                 const balance::DataplaneSnapshot* snap, net::ParseOptions parse = {}) noexcept;
    // Between the passes, for every prepared frame of the burst: the
    // prefetches of what forward() will read, issued back to back so that
    // their misses (and TLB walks) overlap. Always inlined (see
    // balance::prefetch_pick()).
    [[gnu::always_inline]] void prefetch(const Prepared& p, const balance::DataplaneSnapshot* snap) const noexcept {
        if (p.route == Route::to_backend) {
            to_backend_.prefetch(snap, p.vip, p.to_backend);
        } else if (p.route == Route::to_client && p.backend.backend != balance::PoolSnapshot::kNoBackend) {
            c_.prefetch_backend(p.backend.pool->counter_slot(), p.backend.pool->backends()[p.backend.backend].id);
        }
    }
    // Second pass: the stage's decision and the rewrite in place. `snap` is
    // the one `p` was prepared with. Counts every outcome (drops by reason,
    // pool/backend counters) except TX results.
    Action forward(Prepared& p, const balance::DataplaneSnapshot* snap, uint32_t now_s, uint64_t now_ms) noexcept;
    // prepare() and forward() of one frame.
    Action process(uint8_t* frame, uint16_t len, uint16_t headroom, uint16_t tailroom, uint16_t in_port,
                   const balance::DataplaneSnapshot* snap, uint32_t now_s, uint64_t now_ms,
                   net::ParseOptions parse = {}) noexcept {
        prepare(single_, frame, len, headroom, tailroom, in_port, snap, parse);
        prefetch(single_, snap);
        return forward(single_, snap, now_s, now_ms);
    }
    // Reclaims expired TCP connection entries in a few buckets (segments
    // sweep one bucket each, so without TCP traffic nothing else would
    // expire half-open entries of a past flood).
    // No allocation, lock or log; call it at most once a millisecond, as a
    // full pass takes bucket_count / kIdleSweepBuckets calls.
    static constexpr uint32_t kIdleSweepBuckets = 16;
    void sweep_idle(uint32_t now_s) noexcept { tcp_.sweep(now_s, kIdleSweepBuckets); }
    // The tap the stages ask about the frames of this burst (tap.h); nullptr: nobody looks.
    void set_tap(Tap* tap) noexcept { tap_ = tap; }
    // A frame the NIC found with a bad checksum.
    void count_bad_checksum() noexcept { c_.drop(DropReason::bad_checksum); }

    // Writes a broadcast ARP request (IPv4 target) or a multicast neighbor
    // solicitation (IPv6 target) from port `port` into `buf` (at least
    // kResolutionFrameMax bytes); returns the frame length.
    static constexpr uint16_t kResolutionFrameMax = Egress::kResolutionFrameMax;
    uint16_t write_resolution_request(uint8_t* buf, uint16_t port, const IpAddress& target) const noexcept {
        return egress_.write_resolution_request(buf, port, target);
    }
    // The next hop of the last Action with resolve() set.
    const IpAddress& resolve_target() const noexcept { return egress_.resolve_target(); }

private:
    const ForwardContext& ctx_;
    WorkerCounters& c_;
    Egress egress_;
    NeighborStage neighbors_;
    IcmpErrors icmp_errors_;
    ToBackendStage to_backend_;
    ToClientStage to_client_;
    IcmpStage icmp_;
    TcpStage tcp_;
    Prepared single_;  // process()'s
    Tap* tap_ = nullptr;
};

}  // namespace siplb::dataplane
