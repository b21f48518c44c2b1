// To-client stage: a backend's datagram toward a client. Leaves from the
// VIP its call came in on (SNAT): for a backend in several pools the pool is
// found by the Call-ID; in a pool with several VIPs of a family the call's
// affinity entry names the VIP, else the client VIP table (the VIP the client
// last sent to), else the pool's first VIP of the family. A dialog the
// backend starts is pinned to it in the affinity table, so the client's
// answers to the VIP come back to the same backend.
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
    // A message (parsed into msg_) whose Contact or top Record-Route host is
    // an address of a backend of the pool, where a VIP belongs: phones would
    // send the dialog's next requests around siplb.
    bool advertises_backend(const uint8_t* payload, size_t len, const balance::PoolSnapshot& pool) const noexcept;
    void place_shared_backend(const uint8_t* frame, const net::PacketView& v, const balance::DataplaneSnapshot* snap,
                              balance::DataplaneSnapshot::BackendRef& ref, uint32_t now_s) noexcept;
    // A pool with several VIPs of the datagram's family: the VIP its call
    // recorded, else the one its client last sent to; nullptr when neither
    // is known. msg_ holds the datagram's parse.
    const Endpoint* recorded_vip(const uint8_t* frame, const net::PacketView& v, const balance::PoolSnapshot& pool,
                                 uint32_t now_s) const noexcept;
    // `parsed`: msg_ already holds this datagram's parse (set once it does).
    // vip: the slot the datagram leaves from, recorded with a new dialog
    // (kNoVip: keep).
    void remember_backend_dialog(const uint8_t* frame, const net::PacketView& v, const balance::PoolSnapshot& pool,
                                 uint16_t backend, uint32_t now_s, bool& parsed, uint8_t vip) noexcept;

    const ForwardContext& ctx_;
    WorkerCounters& c_;
    Egress& egress_;
    NeighborStage& neighbors_;
    IcmpErrors& errors_;   // "fragmentation needed" when egress finds a DF datagram too big
    sip::SipMessage msg_;  // reused: no per-packet construction
};

}  // namespace siplb::dataplane
