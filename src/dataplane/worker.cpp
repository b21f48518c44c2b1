#include "worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <ctime>

#include "reassembler.h"

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
      forwarder_(ctx, counters, index),
      slots_(std::make_unique<Forwarder::Prepared[]>(burst_)),
      tx_(ctx, static_cast<uint16_t>(index), burst_, counters),
      fragmenter_(ctx, pool, tx_, counters),
      announcer_(ctx, pool, tx_, counters, /*enabled=*/index == 0),  // worker 0 announces for all
      kernel_(ctx, static_cast<uint16_t>(index), tx_, counters),
      tap_(index, counters) {}

Worker::~Worker() = default;

Status Worker::enable_fragments(uint32_t max_flows, uint32_t timeout_ms) {
    auto r = Reassembler::create(index_, max_flows, timeout_ms, pool_, c_);
    if (!r) return Status::fail(r.message());
    reassembler_ = std::move(r).value();
    return ok_status();
}

void Worker::set_kernel_tap(uint16_t port_index, uint16_t tap_port, bool poll) {
    kernel_.add_tap(port_index, tap_port, poll);
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
    tx_.enqueue(port_index, m);
}

void Worker::forward_reassembled(rte_mbuf* whole, uint16_t port_index, const balance::DataplaneSnapshot* snap,
                                 uint32_t now_s, uint64_t now_ms) noexcept {
    const std::optional<Reassembler::Linear> d = reassembler_->linearize(whole);
    if (!d) return;
    net::ParseOptions parse;
    parse.verify_udp_checksum = ctx_.verify_l4_checksums;
    Action a = forwarder_.process(d->data, d->len, d->headroom, d->tailroom, port_index, snap, now_s, now_ms, parse);
    if (a.resolve()) send_resolution_request(a.port, forwarder_.resolve_target());  // also a stale neighbor's refresh
    if (a.kind == Action::Kind::drop) return;
    rte_mbuf* m = reassembler_->copy_to_chain(d->data + a.shift, a.len);
    if (!m) return;
    if (a.fragment()) {
        fragmenter_.send(m, a.port);
    } else {
        tx_.enqueue(a.port, m);
    }
}

void Worker::poll_once(uint32_t now_s, uint64_t now_ms) noexcept {
    rte_mbuf* pkts[kMaxBurst];
    const balance::DataplaneSnapshot* snap = publisher_.current();
    announcer_.poll(snap);
    Tap* const tap = tap_.begin_burst();  // capture / mirror: nullptr unless someone looks
    forwarder_.set_tap(tap);
    for (const RxQueueRef& q : rx_) {
        uint16_t port = ctx_.ports[q.port_index].dpdk_port;
        uint16_t n = rte_eth_rx_burst(port, q.queue, pkts, static_cast<uint16_t>(burst_));
        bump(c_.polls);
        if (n == 0) continue;
        bump(c_.busy_polls);
        constexpr uint16_t kPrefetchAhead = 4;
        for (uint16_t i = 0; i < n && i < kPrefetchAhead; ++i) rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void*));
        uint64_t rx_bytes = 0;
        // Pass 1: parse every frame and work out which table lines its
        // forwarding will read. The frames that stay are packed to the
        // front of pkts, with their parse in the slot of the same index.
        uint16_t prepared = 0;
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
            // virtio does) skip the software check, BAD drops, UNKNOWN
            // verifies (UDP/TCP only with dataplane.verify_l4_checksums).
            const uint64_t ip_ck = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
            const uint64_t l4_ck = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
            if (ip_ck == RTE_MBUF_F_RX_IP_CKSUM_BAD || l4_ck == RTE_MBUF_F_RX_L4_CKSUM_BAD) {
                forwarder_.count_bad_checksum();
                rte_pktmbuf_free(m);
                continue;
            }
            if (reassembler_) {
                const Reassembler::Taken t = reassembler_->take(m, snap, now_ms);
                if (t.verdict != Reassembler::Verdict::not_fragment) [[unlikely]] {
                    // A completed datagram is forwarded at once, ahead of
                    // the burst's other frames (it is copied out of a
                    // scratch buffer the next completion reuses).
                    if (t.verdict == Reassembler::Verdict::complete) {
                        forward_reassembled(t.whole, q.port_index, snap, now_s, now_ms);
                    } else if (t.verdict == Reassembler::Verdict::not_for_vip && !kernel_.send(m, q.port_index)) {
                        c_.drop(DropReason::ip_fragment);
                        rte_pktmbuf_free(m);
                    }
                    continue;
                }
            }
            net::ParseOptions parse;
            parse.verify_ip_checksum = ip_ck == RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN;
            parse.verify_udp_checksum = ctx_.verify_l4_checksums && l4_ck == RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN;
            forwarder_.prepare(slots_[prepared], rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m),
                               rte_pktmbuf_headroom(m), rte_pktmbuf_tailroom(m), q.port_index, snap, parse);
            pkts[prepared++] = m;
        }
        // Then prefetch those lines, all in one go. Issued at the end of
        // each frame's parse, perf put a stall right after every prefetch
        // of an affinity bucket (the table spans far more pages than the
        // TLB holds): a prefetch that misses the TLB seems to hold up
        // retirement until its page walk ends. Back to back, the walks
        // overlap.
        for (uint16_t i = 0; i < prepared; ++i) forwarder_.prefetch(slots_[i], snap);
        // Pass 2: forward, in arrival order.
        for (uint16_t i = 0; i < prepared; ++i) {
            rte_mbuf* m = pkts[i];
            // The tap keeps one frame's headers as received: taken here,
            // not in pass 1, which reads but never rewrites frames.
            if (tap) [[unlikely]]
                tap->before(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m));
            Action a = forwarder_.forward(slots_[i], snap, now_s, now_ms);
            if (a.kind == Action::Kind::drop) {
                if (a.to_kernel() && kernel_.send(m, q.port_index)) continue;
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
            if (a.tapped()) [[unlikely]]         // tap: copies as received and as sent
                tap_.after(a, rte_pktmbuf_mtod(m, const uint8_t*));
            if (a.fragment()) [[unlikely]] {
                bump(c_.frag_oversize);
                fragmenter_.send(m, a.port);
            } else {
                tx_.enqueue(a.port, m);
            }
            if (a.resolve()) send_resolution_request(a.port, forwarder_.resolve_target());  // stale neighbor: refresh
        }
        bump(c_.rx_packets, n);
        bump(c_.rx_bytes, rx_bytes);
        bump(c_.ports[q.port_index].rx_packets, n);
        bump(c_.ports[q.port_index].rx_bytes, rx_bytes);
    }
    // Expire TCP connection entries that no segment sweeps (a worker busy
    // with UDP, or idle, after a SYN flood). Once a millisecond, so that the
    // workers neither contend for the table's sweep cursor nor keep its
    // lines moving between cores.
    if (now_ms != last_idle_sweep_ms_) {
        last_idle_sweep_ms_ = now_ms;
        forwarder_.sweep_idle(now_s);
    }
    if (reassembler_) reassembler_->expire();
    // Learned neighbors unconfirmed for 4 x neighbor_reachable_s: one core
    // frees their slots about once a second (lookups miss them already).
    if (index_ == 0 && ctx_.neighbors && now_ms >= next_neighbor_expiry_ms_) {
        ctx_.neighbors->expire(now_ms);
        next_neighbor_expiry_ms_ = now_ms + 1000;
    }
    kernel_.poll();
    tx_.flush_all();
}

namespace {

uint64_t monotonic_ms() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

}  // namespace

int Worker::run() noexcept {
    // Expiry times (affinity, connections, rate limits) are CLOCK_MONOTONIC
    // milliseconds, as on the control side, which reads them back. The TSC
    // advances the clock cheaply between re-anchorings once a second: DPDK's
    // TSC rate may be an estimate (measured over 100 ms on some VMs), and an
    // error of 1 % alone would put the workers 36 s off after an hour.
    const uint64_t tsc_hz = rte_get_tsc_hz() ? rte_get_tsc_hz() : 1000;
    const uint64_t tsc_per_ms = tsc_hz / 1000;
    uint64_t base_ms = monotonic_ms();
    uint64_t base_tsc = rte_rdtsc();
    uint64_t last_ms = base_ms;
    publisher_.online(reader_);
    while (!stop_.load(std::memory_order_acquire)) {
        const uint64_t tsc = rte_rdtsc();
        if (tsc - base_tsc >= tsc_hz) {
            base_ms = monotonic_ms();
            base_tsc = tsc;
        }
        // Never backwards, should the estimate have run ahead of the clock.
        const uint64_t now_ms = std::max(last_ms, base_ms + (tsc - base_tsc) / tsc_per_ms);
        last_ms = now_ms;
        poll_once(static_cast<uint32_t>(now_ms / 1000), now_ms);
        publisher_.quiescent(reader_);
        bump(c_.loops);  // heartbeat (also for a worker without RX queues, whose polls stay 0)
    }
    tx_.flush_all();
    publisher_.offline(reader_);
    return 0;
}

}  // namespace siplb::dataplane
