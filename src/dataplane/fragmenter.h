// Egress fragmentation of one worker: an IP datagram larger than the
// egress port's MTU leaves as fragments (see fragmenter.cpp for where such
// datagrams come from and how identifications are chosen).
#pragma once

#include <cstdint>

#include "counters.h"
#include "forward_context.h"
#include "tx_buffers.h"

struct rte_mbuf;
struct rte_mempool;

namespace siplb::dataplane {

class Fragmenter {
public:
    // Piece headers come from `pool` (the worker's).
    Fragmenter(const ForwardContext& ctx, rte_mempool* pool, TxBuffers& tx, WorkerCounters& counters) noexcept
        : ctx_(ctx), pool_(pool), tx_(tx), c_(counters) {}
    Fragmenter(const Fragmenter&) = delete;
    Fragmenter& operator=(const Fragmenter&) = delete;

    // The data of the pieces is shared through indirect mbufs of
    // `indirect_pool`; without one, datagrams are not cut (frag_failed).
    void set_indirect_pool(rte_mempool* indirect_pool) noexcept { indirect_pool_ = indirect_pool; }

    // `frame` (whole Ethernet frame, single or chained segments) carries an
    // IP datagram above the port's MTU: sent as fragments with its L2 header
    // in front of each. Consumes `frame`.
    void send(rte_mbuf* frame, uint16_t port_index) noexcept;

private:
    const ForwardContext& ctx_;
    rte_mempool* pool_;
    rte_mempool* indirect_pool_ = nullptr;
    TxBuffers& tx_;
    WorkerCounters& c_;
};

}  // namespace siplb::dataplane
