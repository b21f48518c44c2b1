// DPDK glue of one worker lcore: RX bursts from its queues, the Forwarder in
// two passes per burst (prepare every frame, then forward every frame),
// buffered TX per egress port, QSBR quiescent state once per loop.
// The rare paths are small types it owns: reassembly, egress fragmentation,
// announcements and the kernel path.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "announcer.h"
#include "counters.h"
#include "forwarder.h"
#include "fragmenter.h"
#include "kernel_path.h"
#include "tap.h"
#include "tx_buffers.h"

struct rte_mbuf;
struct rte_mempool;

namespace siplb::dataplane {

class Reassembler;

struct RxQueueRef {
    uint16_t port_index = 0;  // ForwardContext::ports index
    uint16_t queue = 0;
};

class Worker {
public:
    Worker(unsigned index, unsigned lcore, const ForwardContext& ctx, balance::SnapshotPublisher& publisher,
           balance::ReaderId reader, rte_mempool* pool, uint32_t burst, WorkerCounters& counters);
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;
    ~Worker();

    void add_rx_queue(RxQueueRef q) { rx_.push_back(q); }
    // IP reassembly (per-worker table, reassembler.h); before run().
    Status enable_fragments(uint32_t max_flows, uint32_t timeout_ms);
    // Egress fragmentation of datagrams above the port MTU (fragmenter.h):
    // piece headers come from the worker's pool, the data is shared through
    // `indirect_pool`. Without it such datagrams are dropped (frag_failed).
    void set_fragment_pool(rte_mempool* indirect_pool) noexcept { fragmenter_.set_indirect_pool(indirect_pool); }
    // Kernel exception path of a port (kernel_path.h): frames the
    // Forwarder finds not for us go to `tap_port` (TX queue = worker index);
    // with `poll`, this worker also moves the kernel's frames to the wire.
    void set_kernel_tap(uint16_t port_index, uint16_t tap_port, bool poll);
    const std::vector<RxQueueRef>& rx_queues() const noexcept { return rx_; }
    // Gratuitous ARP / unsolicited NA for the port addresses and VIPs at
    // start and for VIPs a new snapshot brings (worker 0). Before run().
    void set_announce(bool on) noexcept { announcer_.set_enabled(on && index_ == 0); }
    // Capture / mirror copies (tap.h). Before run().
    Tap& tap() noexcept { return tap_; }

    // The lcore's main loop; returns once stop is requested and TX drained.
    int run() noexcept;
    static int launch(void* self) { return static_cast<Worker*>(self)->run(); }
    void request_stop() noexcept { stop_.store(true, std::memory_order_release); }

    unsigned index() const noexcept { return index_; }
    unsigned lcore() const noexcept { return lcore_; }
    balance::ReaderId reader() const noexcept { return reader_; }

private:
    void poll_once(uint32_t now_s, uint64_t now_ms) noexcept;
    // A datagram the reassembler completed: forwarded from its scratch copy.
    void forward_reassembled(rte_mbuf* whole, uint16_t port_index, const balance::DataplaneSnapshot* snap,
                             uint32_t now_s, uint64_t now_ms) noexcept;
    void send_resolution_request(uint16_t port_index, const IpAddress& target) noexcept;

    unsigned index_;
    unsigned lcore_;
    const ForwardContext& ctx_;
    balance::SnapshotPublisher& publisher_;
    balance::ReaderId reader_;
    rte_mempool* pool_;
    uint32_t burst_;
    WorkerCounters& c_;
    Forwarder forwarder_;
    std::unique_ptr<Forwarder::Prepared[]> slots_;  // one per burst frame, between the two passes
    std::vector<RxQueueRef> rx_;
    TxBuffers tx_;
    Fragmenter fragmenter_;
    Announcer announcer_;
    KernelPath kernel_;
    Tap tap_;
    std::unique_ptr<Reassembler> reassembler_;  // null: fragments are dropped (ip_fragment)
    std::atomic<bool> stop_{false};
    uint64_t next_neighbor_expiry_ms_ = 0;  // worker 0: neighbor table sweep
    uint64_t last_idle_sweep_ms_ = 0;       // Forwarder::sweep_idle(): once a millisecond
};

}  // namespace siplb::dataplane
