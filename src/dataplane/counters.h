// Per-lcore counters. Each worker is the only writer of its own block (plain
// load+store on relaxed atomics: no locked instructions on the hot path);
// Dataplane::stats() reads every block with relaxed loads and sums.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "edge_counters.h"

namespace siplb::dataplane {

// Why a frame was not forwarded. Order is the order of
// DataplaneStats::drops; names in drop_reason_name().
enum class DropReason : uint8_t {
    short_frame,
    bad_length,
    bad_ip_header,
    bad_checksum,
    ip_fragment,          // reassembly is the edge-networking issue's job
    ipv6_ext_header,
    not_for_us,           // not to a VIP and not from a backend (ARP for others, ICMP, TCP, ...)
    vlan_mismatch,        // tagged for a VLAN the port is not configured for
    ttl_expired,
    sip_empty,
    sip_oversize,
    sip_binary,
    sip_bad_start_line,
    sip_truncated_headers,
    sip_no_call_id,
    sip_conflicting_call_id,
    sip_bad_call_id,
    sip_bad_header,
    no_backend,
    family_mismatch,      // VIP and backend of different address families (no NAT46)
    protect_rule,         // a [[pool.rule]] with action drop matched
    rate_limited,         // the source (or its /24, /64) is over the pool's request rate
    no_route,
    no_neighbor,          // next hop MAC unknown (a rate-limited ARP request was sent)
    no_headroom,          // no room to grow the L2 header (VLAN tag insertion, tunnel header)
    mtu_exceeded,         // ipip: the encapsulated datagram exceeds the egress MTU
    no_tunnel_source,     // ipip: egress port has no address of the backend's family
    tx_full,              // TX queue refused the packet
    count_
};
inline constexpr size_t kDropReasons = static_cast<size_t>(DropReason::count_);
const char* drop_reason_name(DropReason r) noexcept;

inline void bump(std::atomic<uint64_t>& c, uint64_t n = 1) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline uint64_t read(const std::atomic<uint64_t>& c) noexcept { return c.load(std::memory_order_relaxed); }

inline constexpr uint32_t kMaxPorts = 32;
inline constexpr uint32_t kMaxPools = 256;
inline constexpr uint32_t kBackendCounterSlots = 8192;  // power of two

struct PortCounters {
    std::atomic<uint64_t> rx_packets{0}, rx_bytes{0}, tx_packets{0}, tx_bytes{0}, tx_dropped{0};
};

struct PoolCounters {
    std::atomic<uint64_t> packets{0}, bytes{0}, reply_packets{0}, reply_bytes{0};
    std::atomic<uint64_t> calls{0}, keepalives{0}, rejected{0}, no_backend{0};
};

// Keyed by (pool index + 1) << 32 | backend id; 0 = free. Stable backend
// ids mean a counter survives snapshot changes that reorder backends.
struct BackendCounters {
    std::atomic<uint64_t> key{0};
    std::atomic<uint64_t> packets{0}, bytes{0}, calls{0}, reply_packets{0}, reply_bytes{0};
};

struct alignas(64) WorkerCounters {
    std::atomic<uint64_t> rx_packets{0}, rx_bytes{0}, tx_packets{0}, tx_bytes{0};
    std::atomic<uint64_t> polls{0}, busy_polls{0};
    std::atomic<uint64_t> loops{0};  // main-loop iterations: the control thread's heartbeat of this worker
    std::atomic<uint64_t> to_backend{0}, to_client{0};
    std::atomic<uint64_t> arp_replies{0}, arp_requests{0}, neighbors_learned{0};
    std::atomic<uint64_t> nd_advertisements{0}, nd_solicitations{0};
    std::atomic<uint64_t> affinity_evictions{0};
    std::atomic<uint64_t> backend_dialogs{0};  // dialogs started by backends, pinned in affinity
    std::atomic<uint64_t> shared_backend_first_pool{0};  // reply of a multi-pool backend the call could not place
    std::atomic<uint64_t> backend_counter_overflow{0};
    std::atomic<uint64_t> drops[kDropReasons]{};
    EdgeCounters edge;
    PortCounters ports[kMaxPorts];
    PoolCounters pools[kMaxPools];
    BackendCounters backends[kBackendCounterSlots];

    void drop(DropReason r) noexcept { bump(drops[static_cast<size_t>(r)]); }

    // Worker side (single writer): the slot for a backend, claimed on first use.
    BackendCounters* backend(uint32_t pool_index, uint32_t backend_id) noexcept {
        uint64_t key = (static_cast<uint64_t>(pool_index) + 1) << 32 | backend_id;
        uint32_t h = static_cast<uint32_t>((key * 0x9E3779B97F4A7C15ull) >> 40);
        for (uint32_t i = 0; i < 32; ++i) {
            BackendCounters& b = backends[(h + i) & (kBackendCounterSlots - 1)];
            uint64_t k = b.key.load(std::memory_order_relaxed);
            if (k == key) return &b;
            if (k == 0) {
                b.key.store(key, std::memory_order_release);
                return &b;
            }
        }
        bump(backend_counter_overflow);
        return nullptr;
    }
    // Reader side.
    const BackendCounters* find_backend(uint32_t pool_index, uint32_t backend_id) const noexcept {
        uint64_t key = (static_cast<uint64_t>(pool_index) + 1) << 32 | backend_id;
        uint32_t h = static_cast<uint32_t>((key * 0x9E3779B97F4A7C15ull) >> 40);
        for (uint32_t i = 0; i < 32; ++i) {
            const BackendCounters& b = backends[(h + i) & (kBackendCounterSlots - 1)];
            uint64_t k = b.key.load(std::memory_order_acquire);
            if (k == key) return &b;
            if (k == 0) return nullptr;
        }
        return nullptr;
    }
};

}  // namespace siplb::dataplane
