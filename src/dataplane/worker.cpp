#include "worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

#include <ctime>

namespace siplb::dataplane {

Worker::Worker(unsigned index, unsigned lcore, const ForwardContext& ctx, balance::SnapshotPublisher& publisher,
               balance::ReaderId reader, rte_mempool* pool, uint32_t burst, WorkerCounters& counters)
    : index_(index),
      lcore_(lcore),
      ctx_(ctx),
      publisher_(publisher),
      reader_(reader),
      pool_(pool),
      burst_(burst > kMaxBurst ? kMaxBurst : burst),
      c_(counters),
      forwarder_(ctx, counters),
      tx_(ctx.ports.size()) {}

Worker::~Worker() = default;

void Worker::flush(uint16_t port_index) noexcept {
    TxBuffer& b = tx_[port_index];
    if (b.count == 0) return;
    uint16_t port = ctx_.ports[port_index].dpdk_port;
    uint16_t sent = 0;
    // A full TX ring usually drains within a few retries; after that the
    // packets are dropped and counted rather than stalling RX.
    for (int attempt = 0; attempt < 4 && sent < b.count; ++attempt)
        sent = static_cast<uint16_t>(sent + rte_eth_tx_burst(port, static_cast<uint16_t>(index_), b.pkts + sent,
                                                             static_cast<uint16_t>(b.count - sent)));
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

void Worker::flush_all() noexcept {
    for (uint16_t p = 0; p < tx_.size(); ++p) flush(p);
}

void Worker::send_resolution_request(uint16_t port_index, const IpAddress& target) noexcept {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (!m) return;  // pool exhausted: the next miss retries after the interval
    auto* buf = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, Forwarder::kResolutionFrameMax));
    if (!buf) {
        rte_pktmbuf_free(m);
        return;
    }
    uint16_t len = forwarder_.write_resolution_request(buf, port_index, target);
    rte_pktmbuf_trim(m, static_cast<uint16_t>(Forwarder::kResolutionFrameMax - len));
    bump(target.is_v4() ? c_.arp_requests : c_.nd_solicitations);
    enqueue_tx(port_index, m);
}

void Worker::poll_once(uint32_t now_s, uint64_t now_ms) noexcept {
    rte_mbuf* pkts[kMaxBurst];
    const balance::DataplaneSnapshot* snap = publisher_.current();
    if (announce_ && index_ == 0 && (!announced_start_ || (snap && snap->version() != announced_version_)))
        announce_addresses(snap);
    for (const RxQueueRef& q : rx_) {
        uint16_t port = ctx_.ports[q.port_index].dpdk_port;
        uint16_t n = rte_eth_rx_burst(port, q.queue, pkts, static_cast<uint16_t>(burst_));
        bump(c_.polls);
        if (n == 0) continue;
        bump(c_.busy_polls);
        constexpr uint16_t kPrefetchAhead = 4;
        for (uint16_t i = 0; i < n && i < kPrefetchAhead; ++i) rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void*));
        uint64_t rx_bytes = 0;
        for (uint16_t i = 0; i < n; ++i) {
            if (i + kPrefetchAhead < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + kPrefetchAhead], void*));
            rte_mbuf* m = pkts[i];
            rx_bytes += m->pkt_len;
            // Multi-segment frames (jumbo, scattered RX) are not parsed in
            // place; a SIP datagram up to the mbuf data room is one segment.
            if (m->nb_segs != 1) {
                c_.drop(DropReason::bad_length);
                rte_pktmbuf_free(m);
                continue;
            }
            // NIC checksum verdicts (where the port offers the offload):
            // GOOD and NONE (data verified, checksum field not filled in, as
            // virtio does) skip the software check, BAD drops, UNKNOWN verifies.
            const uint64_t ip_ck = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
            const uint64_t l4_ck = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
            if (ip_ck == RTE_MBUF_F_RX_IP_CKSUM_BAD || l4_ck == RTE_MBUF_F_RX_L4_CKSUM_BAD) {
                forwarder_.count_bad_checksum();
                rte_pktmbuf_free(m);
                continue;
            }
            if (frag_ && handle_fragment(m, q.port_index, snap, now_s, now_ms)) continue;
            net::ParseOptions parse;
            parse.verify_ip_checksum = ip_ck == RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN;
            parse.verify_udp_checksum = l4_ck == RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN;
            Action a = forwarder_.process(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m),
                                          rte_pktmbuf_headroom(m), rte_pktmbuf_tailroom(m), q.port_index, snap,
                                          now_s, now_ms, parse);
            if (a.kind == Action::Kind::drop) {
                if (a.to_kernel() && has_tap_ && to_kernel(m, q.port_index)) continue;
                rte_pktmbuf_free(m);
                if (a.resolve()) send_resolution_request(a.port, forwarder_.resolve_target());
                continue;
            }
            if (a.shift < 0) {
                rte_pktmbuf_prepend(m, static_cast<uint16_t>(-a.shift));
            } else if (a.shift > 0) {
                rte_pktmbuf_adj(m, static_cast<uint16_t>(a.shift));
            }
            m->data_len = a.len;
            m->pkt_len = a.len;
            m->ol_flags &= ~RTE_MBUF_F_TX_VLAN;  // the tag, if any, is in the frame
            if (a.fragment()) [[unlikely]] {
                bump(c_.edge.frag_oversize);
                transmit_fragmented(m, a.port);
            } else {
                enqueue_tx(a.port, m);
            }
            if (a.resolve()) send_resolution_request(a.port, forwarder_.resolve_target());  // stale neighbor: refresh
        }
        bump(c_.rx_packets, n);
        bump(c_.rx_bytes, rx_bytes);
        bump(c_.ports[q.port_index].rx_packets, n);
        bump(c_.ports[q.port_index].rx_bytes, rx_bytes);
    }
    if (frag_) expire_fragments();
    // Learned neighbors unconfirmed for 4 x neighbor_reachable_s: one core
    // frees their slots about once a second (lookups miss them already).
    if (index_ == 0 && ctx_.neighbors && now_ms >= next_neighbor_expiry_ms_) {
        ctx_.neighbors->expire(now_ms);
        next_neighbor_expiry_ms_ = now_ms + 1000;
    }
    if (!tap_polls_.empty()) poll_kernel_taps();
    flush_all();
}

int Worker::run() noexcept {
    const uint64_t tsc_per_ms = rte_get_tsc_hz() / 1000 ? rte_get_tsc_hz() / 1000 : 1;
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    // Affinity expiry uses CLOCK_MONOTONIC seconds like the control side;
    // the TSC only advances it cheaply.
    const uint64_t base_ms = static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
    const uint64_t base_tsc = rte_rdtsc();
    publisher_.online(reader_);
    while (!stop_.load(std::memory_order_acquire)) {
        uint64_t now_ms = base_ms + (rte_rdtsc() - base_tsc) / tsc_per_ms;
        poll_once(static_cast<uint32_t>(now_ms / 1000), now_ms);
        publisher_.quiescent(reader_);
        bump(c_.loops);  // heartbeat (also for a worker without RX queues, whose polls stay 0)
    }
    flush_all();
    publisher_.offline(reader_);
    return 0;
}

}  // namespace siplb::dataplane
