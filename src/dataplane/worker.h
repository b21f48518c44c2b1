// DPDK glue of one worker lcore: RX bursts from its queues, Forwarder per
// frame, buffered TX per egress port, QSBR quiescent state once per loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "counters.h"
#include "forwarder.h"

struct rte_mbuf;
struct rte_mempool;

namespace siplb::dataplane {

struct FragState;  // reassembly.cpp
struct FragStateDeleter {
    void operator()(FragState* s) const noexcept;
};

struct RxQueueRef {
    uint16_t port_index = 0;  // ForwardContext::ports index
    uint16_t queue = 0;
};

inline constexpr uint32_t kMaxBurst = 256;

class Worker {
public:
    Worker(unsigned index, unsigned lcore, const ForwardContext& ctx, balance::SnapshotPublisher& publisher,
           balance::ReaderId reader, rte_mempool* pool, uint32_t burst, WorkerCounters& counters);
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;
    ~Worker();

    void add_rx_queue(RxQueueRef q) { rx_.push_back(q); }
    // IP reassembly (per-worker table, reassembly.cpp); before run().
    Status enable_fragments(uint32_t max_flows, uint32_t timeout_ms);
    // Egress fragmentation of datagrams above the port MTU (fragment.cpp):
    // piece headers come from the worker's pool, the data is shared through
    // `indirect_pool`. Without it such datagrams are dropped (frag_failed).
    void set_fragment_pool(rte_mempool* indirect_pool) noexcept { indirect_pool_ = indirect_pool; }
    // Kernel exception path of a port (worker_kernel.cpp): frames the
    // Forwarder finds not for us go to `tap_port` (TX queue = worker index);
    // with `poll`, this worker also moves the kernel's frames to the wire.
    void set_kernel_tap(uint16_t port_index, uint16_t tap_port, bool poll);
    const std::vector<RxQueueRef>& rx_queues() const noexcept { return rx_; }
    // Gratuitous ARP / unsolicited NA for the port addresses and VIPs at
    // start and for VIPs a new snapshot brings (worker 0). Before run().
    void set_announce(bool on) noexcept { announce_ = on; }

    // The lcore's main loop; returns once stop is requested and TX drained.
    int run() noexcept;
    static int launch(void* self) { return static_cast<Worker*>(self)->run(); }
    void request_stop() noexcept { stop_.store(true, std::memory_order_release); }

    unsigned index() const noexcept { return index_; }
    unsigned lcore() const noexcept { return lcore_; }
    balance::ReaderId reader() const noexcept { return reader_; }

private:
    struct TxBuffer {
        rte_mbuf* pkts[kMaxBurst];
        uint16_t count = 0;
    };
    void poll_once(uint32_t now_s, uint64_t now_ms) noexcept;
    // Adds to the port's TX buffer, sent when it holds a burst (the buffer
    // never stays full, so every caller can add one more).
    void enqueue_tx(uint16_t port_index, rte_mbuf* m) noexcept {
        TxBuffer& b = tx_[port_index];
        b.pkts[b.count++] = m;
        if (b.count == burst_) flush(port_index);
    }
    void flush(uint16_t port_index) noexcept;
    void flush_all() noexcept;
    // fragment.cpp: `frame` (whole Ethernet frame, single or chained
    // segments) carries an IP datagram above the port's MTU: sent as
    // fragments with its L2 header in front of each. Consumes `frame`.
    void transmit_fragmented(rte_mbuf* frame, uint16_t port_index) noexcept;
    void send_resolution_request(uint16_t port_index, const IpAddress& target) noexcept;
    // reassembly.cpp: true when `m` was a fragment (consumed).
    bool handle_fragment(rte_mbuf* m, uint16_t port_index, const balance::DataplaneSnapshot* snap, uint32_t now_s,
                         uint64_t now_ms) noexcept;
    void forward_reassembled(rte_mbuf* whole, uint16_t port_index, const balance::DataplaneSnapshot* snap,
                             uint32_t now_s, uint64_t now_ms) noexcept;
    rte_mbuf* copy_to_chain(const uint8_t* data, uint32_t len) noexcept;
    void expire_fragments() noexcept;
    bool to_kernel(rte_mbuf* m, uint16_t port_index) noexcept;
    // announce.cpp: gratuitous ARP / unsolicited NA, each address once.
    void announce(uint16_t port_index, const IpAddress& ip) noexcept;
    void announce_addresses(const balance::DataplaneSnapshot* snap) noexcept;
    void poll_kernel_taps() noexcept;

    unsigned index_;
    unsigned lcore_;
    const ForwardContext& ctx_;
    balance::SnapshotPublisher& publisher_;
    balance::ReaderId reader_;
    rte_mempool* pool_;
    uint32_t burst_;
    WorkerCounters& c_;
    Forwarder forwarder_;
    std::vector<RxQueueRef> rx_;
    std::vector<TxBuffer> tx_;  // per port; TX queue id = worker index
    std::atomic<bool> stop_{false};
    std::unique_ptr<FragState, FragStateDeleter> frag_;
    rte_mempool* indirect_pool_ = nullptr;
    bool has_tap_ = false;
    static constexpr uint32_t kMaxAnnounced = 256;
    IpAddress announced_[kMaxAnnounced];
    uint32_t announced_count_ = 0;
    bool announce_ = true;
    bool announced_start_ = false;             // port addresses announced
    uint64_t announced_version_ = ~uint64_t{0};  // snapshot version last announced
    uint64_t next_neighbor_expiry_ms_ = 0;       // worker 0: neighbor table sweep
    std::vector<int32_t> tap_of_port_;                        // per port index; -1: none
    std::vector<std::pair<uint16_t, uint16_t>> tap_polls_;    // (tap DPDK port, wire port index)
};

}  // namespace siplb::dataplane
