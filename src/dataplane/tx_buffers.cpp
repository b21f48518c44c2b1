#include "tx_buffers.h"

#include <rte_ethdev.h>
#include <rte_mbuf.h>

namespace siplb::dataplane {

void TxBuffers::flush(uint16_t port_index) noexcept {
    Buffer& b = buffers_[port_index];
    if (b.count == 0) return;
    uint16_t port = ctx_.ports[port_index].dpdk_port;
    uint16_t sent = 0;
    // A full TX ring usually drains within a few retries; after that the
    // packets are dropped and counted rather than stalling RX.
    for (int attempt = 0; attempt < 4 && sent < b.count; ++attempt)
        sent = static_cast<uint16_t>(
            sent + rte_eth_tx_burst(port, queue_, b.pkts + sent, static_cast<uint16_t>(b.count - sent)));
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < sent; ++i) bytes += b.pkts[i]->pkt_len;
    bump(c_.tx_packets, sent);
    bump(c_.tx_bytes, bytes);
    bump(c_.ports[port_index].tx_packets, sent);
    bump(c_.ports[port_index].tx_bytes, bytes);
    if (sent < b.count) {
        uint16_t lost = static_cast<uint16_t>(b.count - sent);
        bump(c_.drops[static_cast<size_t>(DropReason::tx_full)], lost);
        bump(c_.ports[port_index].tx_dropped, lost);
        rte_pktmbuf_free_bulk(b.pkts + sent, lost);
    }
    b.count = 0;
}

void TxBuffers::flush_all() noexcept {
    for (uint16_t p = 0; p < buffers_.size(); ++p) flush(p);
}

}  // namespace siplb::dataplane
