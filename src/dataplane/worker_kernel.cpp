// Worker side of the kernel exception path (see kernel_path.h).
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <cstring>

#include "worker.h"

namespace siplb::dataplane {

void Worker::set_kernel_tap(uint16_t port_index, uint16_t tap_port, bool poll) {
    if (tap_of_port_.size() < ctx_.ports.size()) tap_of_port_.assign(ctx_.ports.size(), -1);
    tap_of_port_[port_index] = tap_port;
    has_tap_ = true;
    if (poll) tap_polls_.emplace_back(tap_port, port_index);
}

bool Worker::to_kernel(rte_mbuf* m, uint16_t port_index) noexcept {
    const int32_t tap = tap_of_port_[port_index];
    if (tap < 0) return false;
    // The kernel sees the port untagged: the port's VLAN tag comes off.
    auto* p = rte_pktmbuf_mtod(m, uint8_t*);
    if (rte_pktmbuf_data_len(m) >= 18 && p[12] == 0x81 && p[13] == 0x00) {
        std::memmove(p + 4, p, 12);
        rte_pktmbuf_adj(m, 4);
    }
    // Rare path (control traffic): one frame per call, no buffering.
    if (rte_eth_tx_burst(static_cast<uint16_t>(tap), static_cast<uint16_t>(index_), &m, 1) == 1) {
        bump(c_.kernel_to_tap);
    } else {
        bump(c_.kernel_tap_dropped);
        rte_pktmbuf_free(m);
    }
    return true;
}

void Worker::poll_kernel_taps() noexcept {
    rte_mbuf* pkts[32];
    for (const auto& [tap, port_index] : tap_polls_) {
        const uint16_t n = rte_eth_rx_burst(tap, 0, pkts, 32);
        if (n == 0) continue;
        bump(c_.kernel_from_tap, n);
        const uint16_t vlan = ctx_.ports[port_index].vlan;
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = pkts[i];
            if (vlan) {
                // The kernel's frames are untagged; the port's VLAN goes on the wire.
                auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, 4));
                if (!p || rte_pktmbuf_data_len(m) < 18) {
                    bump(c_.kernel_tap_dropped);
                    rte_pktmbuf_free(m);
                    continue;
                }
                std::memmove(p, p + 4, 12);
                p[12] = 0x81;
                p[13] = 0x00;
                p[14] = static_cast<uint8_t>((vlan >> 8) & 0x0F);
                p[15] = static_cast<uint8_t>(vlan);
            }
            enqueue_tx(port_index, m);
        }
    }
}

}  // namespace siplb::dataplane
