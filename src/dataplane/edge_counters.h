// Per-lcore counters of the edge-networking stages (single writer, see
// counters.h), summed into EdgeStats on read.
#pragma once

#include <atomic>
#include <cstdint>

#include "siplb/dataplane/edge_stats.h"

namespace siplb::dataplane {

struct EdgeCounters {
    std::atomic<uint64_t> icmp_echo_replies{0}, icmp_errors_sent{0}, icmp_errors_rate_limited{0};
    std::atomic<uint64_t> icmp_errors_to_backend{0}, icmp_errors_unmatched{0};
    std::atomic<uint64_t> frag_received{0}, frag_reassembled{0}, frag_dropped{0}, frag_not_for_vip{0}, frag_duplicates{0};
    std::atomic<uint64_t> frag_too_big{0}, frag_oversize{0}, frag_sent{0}, frag_failed{0};
    std::atomic<uint64_t> kernel_to_tap{0}, kernel_from_tap{0}, kernel_tap_dropped{0};
    std::atomic<uint64_t> gratuitous_arps{0}, unsolicited_nas{0};

    void add_to(EdgeStats& s) const noexcept {
        auto r = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
        s.icmp_echo_replies += r(icmp_echo_replies);
        s.icmp_errors_sent += r(icmp_errors_sent);
        s.icmp_errors_rate_limited += r(icmp_errors_rate_limited);
        s.icmp_errors_to_backend += r(icmp_errors_to_backend);
        s.icmp_errors_unmatched += r(icmp_errors_unmatched);
        s.frag_received += r(frag_received);
        s.frag_reassembled += r(frag_reassembled);
        s.frag_dropped += r(frag_dropped);
        s.frag_not_for_vip += r(frag_not_for_vip);
        s.frag_duplicates += r(frag_duplicates);
        s.frag_too_big += r(frag_too_big);
        s.frag_oversize += r(frag_oversize);
        s.frag_sent += r(frag_sent);
        s.frag_failed += r(frag_failed);
        s.kernel_to_tap += r(kernel_to_tap);
        s.kernel_from_tap += r(kernel_from_tap);
        s.kernel_tap_dropped += r(kernel_tap_dropped);
        s.gratuitous_arps += r(gratuitous_arps);
        s.unsolicited_nas += r(unsolicited_nas);
    }
};

}  // namespace siplb::dataplane
