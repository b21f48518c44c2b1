// To-client stage: a backend's datagram toward a client. Leaves from the
// pool's VIP (SNAT; for a backend in several pools, the VIP its call came in
// on), and a dialog the backend starts is pinned to it in the affinity
// table, so the client's answers to the VIP come back to the same backend.
#pragma once

#include <cstdint>

#include "egress.h"
#include "forward_context.h"
#include "icmp_errors.h"
#include "neighbor_stage.h"
#include "siplb/sip/parser.h"
#include "stage.h"

namespace siplb::dataplane {

class ToClientStage {
public:
    ToClientStage(const ForwardContext& ctx, WorkerCounters& counters, Egress& egress, NeighborStage& neighbors,
                  IcmpErrors& errors) noexcept
        : ctx_(ctx), c_(counters), egress_(egress), neighbors_(neighbors), errors_(errors) {}
    ToClientStage(const ToClientStage&) = delete;
    ToClientStage& operator=(const ToClientStage&) = delete;

    // `f` is a UDP datagram from the backend `ref` names, with the VIP to
    // answer from; for a backend of several pools `ref` is re-placed in the
    // pool its call came through.
    Action forward(const Frame& f, const balance::DataplaneSnapshot* snap, balance::DataplaneSnapshot::BackendRef& ref,
                   uint32_t now_s, uint64_t now_ms) noexcept;

private:
    // A backend in several pools: the pool (and so the VIP) of the call this
    // datagram belongs to, found from its Call-ID (or, for a keepalive
    // answer, the client's address); the first pool when none matches.
    // A response with one of the pool's overload codes, on its way to a
    // client: counted, and its Retry-After kept, for passive overload detection.
    void count_overload(const uint8_t* payload, size_t len, BackendCounters& bc) noexcept;
    void place_shared_backend(const uint8_t* frame, const net::PacketView& v, const balance::DataplaneSnapshot* snap,
                              balance::DataplaneSnapshot::BackendRef& ref, uint32_t now_s) noexcept;
    void remember_backend_dialog(const uint8_t* frame, const net::PacketView& v, const balance::PoolSnapshot& pool,
                                 uint16_t backend, uint32_t now_s) noexcept;

    const ForwardContext& ctx_;
    WorkerCounters& c_;
    Egress& egress_;
    NeighborStage& neighbors_;
    IcmpErrors& errors_;  // "fragmentation needed" when egress finds a DF datagram too big
    sip::SipMessage msg_;  // reused: no per-packet construction
};

}  // namespace siplb::dataplane
