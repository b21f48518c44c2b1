// Counters of the edge-networking stages (ICMP, IP fragments, kernel
// exception path), aggregated over the workers into DataplaneStats::edge.
#pragma once

#include <cstdint>

namespace siplb::dataplane {

struct EdgeStats {
    // ICMP
    uint64_t icmp_echo_replies = 0;         // echo requests to VIPs / port addresses answered
    uint64_t icmp_errors_sent = 0;          // time exceeded / port unreachable generated
    uint64_t icmp_errors_rate_limited = 0;  // ... suppressed by the per-worker token bucket
    uint64_t icmp_errors_to_backend = 0;    // customer ICMP errors about VIP datagrams passed to the backend
    uint64_t icmp_errors_unmatched = 0;     // ... with no backend found (no Call-ID in the quote, unknown VIP)
    // IP fragments
    uint64_t frag_received = 0;             // fragments of datagrams to a VIP taken into reassembly
    uint64_t frag_reassembled = 0;          // datagrams completed
    uint64_t frag_dropped = 0;              // fragments freed unused (timeout, table full, overlap, bad)
    uint64_t frag_duplicates = 0;           // exact duplicates of a fragment already taken (dropped)
    uint64_t frag_not_for_vip = 0;          // fragments of datagrams to other addresses
    uint64_t frag_too_big = 0;              // reassembled datagram larger than the scratch buffer
    uint64_t frag_oversize = 0;             // whole datagrams in one frame above the egress MTU (fragmented)
    uint64_t frag_sent = 0;                 // fragments transmitted (egress MTU exceeded)
    uint64_t frag_failed = 0;               // datagrams that could not be fragmented (pool empty, > 64 pieces)
    // Kernel exception path
    uint64_t kernel_to_tap = 0;             // frames handed to the kernel
    uint64_t kernel_from_tap = 0;           // frames the kernel sent, transmitted on the wire
    uint64_t kernel_tap_dropped = 0;        // tap TX queue full
    // Announcements when a port or VIP address comes up
    uint64_t gratuitous_arps = 0;
    uint64_t unsolicited_nas = 0;
};

}  // namespace siplb::dataplane
