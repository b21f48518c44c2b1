// Kernel exception path: a net_tap interface per port with kernel_path =
// true, carrying what the dataplane does not handle itself (SSH, BGP, DNS
// answers and health-check replies to the node addresses, DHCP, LLDP, ARP
// replies, fragments not for a VIP) to the kernel, and the kernel's packets
// back to the wire. Setup functions, then KernelPath: one worker's side.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "counters.h"
#include "forward_context.h"
#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"
#include "tx_buffers.h"

struct rte_mbuf;
struct rte_mempool;

namespace siplb::dataplane {

struct KernelTap {
    std::string device;  // vdev name (net_tap_siplb<N>)
    std::string iface;   // kernel interface name: <port>-k (truncated to 15 characters)
    uint16_t dpdk_port = 0;
};

// Creates and configures (1 RX queue, `tx_queues` TX queues) the tap for
// port `port_name` with the port's MAC. Not started.
Result<KernelTap> create_kernel_tap(const std::string& port_name, const MacAddress& mac, uint16_t tx_queues,
                                    rte_mempool* pool, uint16_t ring_size);
// After start: interface up, the port's addresses added (the `ip` command,
// at start only).
Status mirror_addresses(const KernelTap& tap, const std::vector<Prefix>& addresses);
void destroy_kernel_tap(const KernelTap& tap);

// One worker's side of the kernel paths: frames the Forwarder finds not
// for us (Action::to_kernel) go to their port's tap on this worker's TX
// queue, and the taps this worker polls have their frames sent on the wire.
class KernelPath {
public:
    KernelPath(const ForwardContext& ctx, uint16_t tx_queue, TxBuffers& tx, WorkerCounters& counters) noexcept
        : ctx_(ctx), tx_queue_(tx_queue), tx_(tx), c_(counters) {}
    KernelPath(const KernelPath&) = delete;
    KernelPath& operator=(const KernelPath&) = delete;

    // Port `port_index` has its tap at DPDK port `tap_port`; with `poll`,
    // this worker moves the kernel's frames from it to the wire. Before run().
    void add_tap(uint16_t port_index, uint16_t tap_port, bool poll);
    // Hands `m` (untagged on the way) to the kernel of its port; false when
    // the port has no kernel path (`m` is still the caller's).
    bool send(rte_mbuf* m, uint16_t port_index) noexcept;
    // Once per loop: the kernel's frames to the wire.
    void poll() noexcept {
        if (!polled_.empty()) poll_taps();
    }

private:
    void poll_taps() noexcept;

    const ForwardContext& ctx_;
    uint16_t tx_queue_;
    TxBuffers& tx_;
    WorkerCounters& c_;
    std::vector<int32_t> tap_of_port_;                   // per port index; -1: none (empty: no tap at all)
    std::vector<std::pair<uint16_t, uint16_t>> polled_;  // (tap DPDK port, wire port index)
};

}  // namespace siplb::dataplane
