// Kernel exception path: a net_tap interface per port with kernel_path =
// true, carrying what the dataplane does not handle itself (SSH, BGP, DNS
// answers and health-check replies to the node addresses, DHCP, LLDP, ARP
// replies, fragments not for a VIP) to the kernel, and the kernel's packets
// back to the wire. Setup only; the per-packet part is in Worker.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"

struct rte_mempool;

namespace siplb::dataplane {

struct KernelTap {
    std::string device;   // vdev name (net_tap_siplb<N>)
    std::string iface;    // kernel interface name: <port>-k (truncated to 15 characters)
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

}  // namespace siplb::dataplane
