// To-backend stage: a client's datagram to a VIP. Parses the SIP message,
// runs the protect stage (rules, rate limits), picks the backend (Call-ID
// hash, dialog affinity; keepalives by the client's address) and sends the
// datagram on with its destination rewritten (nat) or inside an ipip tunnel.
#pragma once

#include <cstdint>

#include "egress.h"
#include "siplb/balance/pick.h"
#include "forward_context.h"
#include "icmp_errors.h"
#include "neighbor_stage.h"
#include "siplb/net/nat.h"
#include "siplb/protect/guard.h"
#include "siplb/sip/parser.h"
#include "stage.h"

namespace siplb::dataplane {

class ToBackendStage {
public:
    // `worker`: this worker's index, whose protect guard it takes from each snapshot.
    ToBackendStage(const ForwardContext& ctx, WorkerCounters& counters, Egress& egress, NeighborStage& neighbors,
                   IcmpErrors& errors, unsigned worker) noexcept
        : ctx_(ctx), c_(counters), egress_(egress), neighbors_(neighbors), errors_(errors), worker_(worker) {}
    ToBackendStage(const ToBackendStage&) = delete;
    ToBackendStage& operator=(const ToBackendStage&) = delete;

    // What prepare() learnt of a datagram, kept in the worker's burst slot
    // until forward() (no per-packet construction: the slot is reused).
    struct Prepared {
        sip::SipMessage msg;
        uint64_t key = 0;                    // balancing key in the VIP's pool; set unless msg is rejected
        protect::WorkerGuard::Probe source;  // a request's buckets in the VIP's pool's rate tables
    };

    // First pass over a burst, for `f`, a UDP datagram to `vip`'s pool:
    // parses the SIP message, derives the balancing key and locates the
    // source's rate-limit buckets. Counts nothing and changes no state, so
    // the frames of a burst can all be prepared before the first one is
    // forwarded.
    void prepare(const Frame& f, const balance::DataplaneSnapshot* snap, const balance::DataplaneSnapshot::PoolRef& vip,
                 Prepared& p) const noexcept;
    // Prefetches the lines forward() reads for `p` (Maglev slot, affinity
    // bucket, rate-limit buckets). Always inlined (see balance::prefetch_pick()).
    [[gnu::always_inline]] void prefetch(const balance::DataplaneSnapshot* snap,
                                         const balance::DataplaneSnapshot::PoolRef& vip,
                                         const Prepared& p) const noexcept {
        if (p.msg.verdict == sip::Verdict::reject) return;
        // Keepalives never touch the affinity table.
        balance::prefetch_pick(*vip.pool, p.key, p.msg.verdict == sip::Verdict::keepalive ? nullptr : ctx_.affinity);
        if (const protect::WorkerGuard* guard = snap->guard(worker_)) guard->prefetch(vip.pool_index, p.source);
    }
    // Second pass: protect stage, pick, rewrite. `p` is prepare()'s for `f`.
    Action forward(const Frame& f, const balance::DataplaneSnapshot* snap,
                   const balance::DataplaneSnapshot::PoolRef& vip, const Prepared& p, uint32_t now_s,
                   uint64_t now_ms) noexcept;

    // ipip pools: the datagram travels unchanged (client -> VIP) inside a
    // tunnel to `backend`, from the egress port's address of its family.
    // `glean_sender`: learn the sender's MAC on its port once the tunnel can
    // be built (client datagrams; the ICMP error path does not glean).
    // Inline: both callers are per packet.
    Action tunnel(const Frame& f, const IpAddress& backend, uint64_t now_ms, bool glean_sender) noexcept {
        const net::RouteEntry* route = ctx_.routes.find(backend);
        if (!route) return drop(DropReason::no_route);
        const PortContext& out = ctx_.ports[route->port];
        const auto& source = backend.is_v4() ? out.source_v4 : out.source_v6;
        if (!source) return drop(DropReason::no_tunnel_source);
        auto encap = static_cast<uint16_t>(net::tunnel_header_len(backend));
        if (glean_sender) neighbors_.glean(f.data, f.view, f.in_port, now_ms);
        Action a = egress_.forward(f, backend, now_ms, encap);
        if (a.kind == Action::Kind::drop) return a;
        net::write_tunnel_header(f.data + f.view.l3_offset - encap, *source, backend, f.view.ip_version,
                                 static_cast<uint16_t>(f.view.l3_end - f.view.l3_offset));
        return a;
    }

private:
    Action drop(DropReason r) noexcept { return dataplane::drop(c_, r); }
    // The guard's decision in the counters: its scans, memo hits and
    // evictions on the VIP's pool (`pc`), its rule's hit on the rule's slot
    // in that pool (`pool`).
    void count_protection(const protect::GuardDecision& g, const balance::PoolSnapshot& pool,
                          PoolCounters* pc) noexcept;
    // What picks the backend of a message (not rejected) in `pool`.
    static uint64_t balancing_key(const uint8_t* frame, const net::PacketView& v, const sip::SipMessage& msg,
                                  const balance::PoolSnapshot& pool) noexcept;
    // The backend choice off the plain Call-ID path: a pool keyed by another
    // field, or an INVITE naming another dialog (Replaces, Join). Out of
    // line so that the Call-ID path stays as small as it was.
    [[gnu::noinline]] balance::Decision pick_by_pool_key(const Frame& f, const balance::PoolSnapshot& pool,
                                                         const sip::SipMessage& msg, PoolCounters* pc,
                                                         uint64_t call_hash, bool dialog, uint32_t now_s,
                                                         uint8_t vip_slot) noexcept;

    const ForwardContext& ctx_;
    WorkerCounters& c_;
    Egress& egress_;
    NeighborStage& neighbors_;
    IcmpErrors& errors_;  // "fragmentation needed" when egress finds a DF datagram too big
    unsigned worker_;
    // A %-escaped Call-ID of a Replaces/Join, decoded; a longer one counts as malformed.
    uint8_t dialog_ref_scratch_[512];
};

}  // namespace siplb::dataplane
