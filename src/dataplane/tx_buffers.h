// The TX side of one worker: a buffer per port, sent a burst at a time on
// the worker's own TX queue. Everything the worker transmits (forwarded
// frames, fragments, resolution requests, announcements, the kernel's
// frames) goes through it, so the TX counters see all of it.
#pragma once

#include <cstdint>
#include <vector>

#include "counters.h"
#include "forward_context.h"

struct rte_mbuf;

namespace siplb::dataplane {

inline constexpr uint32_t kMaxBurst = 256;

class TxBuffers {
public:
    // `queue`: the TX queue of every port this worker sends on (its index).
    TxBuffers(const ForwardContext& ctx, uint16_t queue, uint32_t burst, WorkerCounters& counters)
        : ctx_(ctx), queue_(queue), burst_(burst), c_(counters), buffers_(ctx.ports.size()) {}
    TxBuffers(const TxBuffers&) = delete;
    TxBuffers& operator=(const TxBuffers&) = delete;

    // Adds to the port's buffer, sent when it holds a burst (the buffer
    // never stays full, so every caller can add one more).
    void enqueue(uint16_t port_index, rte_mbuf* m) noexcept {
        Buffer& b = buffers_[port_index];
        b.pkts[b.count++] = m;
        if (b.count == burst_) flush(port_index);
    }
    void flush(uint16_t port_index) noexcept;
    void flush_all() noexcept;

private:
    struct Buffer {
        rte_mbuf* pkts[kMaxBurst];
        uint16_t count = 0;
    };
    const ForwardContext& ctx_;
    uint16_t queue_;
    uint32_t burst_;
    WorkerCounters& c_;
    std::vector<Buffer> buffers_;  // per port index
};

}  // namespace siplb::dataplane
