// Per-lcore counter blocks, generated from the schema
// (include/siplb/dataplane/counter_schema.h). Each worker is the only writer
// of its own block (plain load+store on relaxed atomics: no locked
// instructions on the hot path); Dataplane::stats() reads every block with
// relaxed loads, in schema order.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

#include "siplb/balance/snapshot.h"
#include "siplb/dataplane/counter_schema.h"

namespace siplb::dataplane {

enum class DropReason : uint8_t {
#define SIPLB_DROP_ENUM(reason, name, help) reason,
    SIPLB_DROP_REASONS(SIPLB_DROP_ENUM)
#undef SIPLB_DROP_ENUM
        count_
};
inline constexpr size_t kDropReasons = static_cast<size_t>(DropReason::count_);
const char* drop_reason_name(DropReason r) noexcept;

inline void bump(std::atomic<uint64_t>& c, uint64_t n = 1) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline void raise_to(std::atomic<uint64_t>& c, uint64_t v) noexcept { c.store(v, std::memory_order_relaxed); }
inline uint64_t read(const std::atomic<uint64_t>& c) noexcept { return c.load(std::memory_order_relaxed); }

inline constexpr uint32_t kMaxPorts = 32;
inline constexpr uint32_t kMaxPools = balance::kPoolCounterSlots;
inline constexpr uint32_t kBackendCounterSlots = 8192;  // power of two
inline constexpr uint32_t kRuleCounterSlots = balance::kRuleCounterSlots;

#define SIPLB_COUNTER_MEMBER(member, group, name, kind, help) std::atomic<uint64_t> member{0};

struct PortCounters {
    SIPLB_PORT_COUNTERS(SIPLB_COUNTER_MEMBER)
};

struct PoolCounters {
    SIPLB_POOL_COUNTERS(SIPLB_COUNTER_MEMBER)
};

// Indexed by the rule's counter slot (PoolSnapshot::rule_counter_slot): one
// per pool and rule name for the life of the process.
struct RuleCounters {
    SIPLB_RULE_COUNTERS(SIPLB_COUNTER_MEMBER)
};

// Keyed by (pool counter slot + 1) << 32 | backend id; 0 = free. Both
// halves are stable (pool name, backend address), so a backend's counters
// survive snapshots that reorder, add or remove pools and backends.
struct BackendCounters {
    std::atomic<uint64_t> key{0};
    SIPLB_BACKEND_COUNTERS(SIPLB_COUNTER_MEMBER)
    // Not a counter: the worker's own clock for when it next looks at this
    // backend's Contact / Record-Route (ToClientStage), kept in the slot the
    // worker already touches for every datagram of the backend.
    uint64_t next_advertise_check_ms = 0;
};

struct alignas(64) WorkerCounters {
    SIPLB_WORKER_COUNTERS(SIPLB_COUNTER_MEMBER)
    std::atomic<uint64_t> drops[kDropReasons]{};
    PortCounters ports[kMaxPorts];
    PoolCounters pools[kMaxPools];
    BackendCounters backends[kBackendCounterSlots];
    RuleCounters rules[kRuleCounterSlots];

    void drop(DropReason r) noexcept { bump(drops[static_cast<size_t>(r)]); }

    static uint64_t backend_key(uint32_t pool_slot, uint32_t backend_id) noexcept {
        return (static_cast<uint64_t>(pool_slot) + 1) << 32 | backend_id;
    }
    // Worker side (single writer): the pool's block, nullptr (counted) when
    // the pool has no counter slot.
    PoolCounters* pool(uint32_t pool_slot) noexcept {
        if (pool_slot < kMaxPools) [[likely]]
            return &pools[pool_slot];
        bump(pool_slots_full);
        return nullptr;
    }
    // Worker side: a rule's block, nullptr (counted) when it has no slot.
    RuleCounters* rule(uint32_t rule_slot) noexcept {
        if (rule_slot < kRuleCounterSlots) [[likely]]
            return &rules[rule_slot];
        bump(rule_slots_full);
        return nullptr;
    }
    // Worker side: the slot for a backend, claimed on first use.
    BackendCounters* backend(uint32_t pool_slot, uint32_t backend_id) noexcept {
        const uint64_t key = backend_key(pool_slot, backend_id);
        const uint32_t h = static_cast<uint32_t>((key * 0x9E3779B97F4A7C15ull) >> 40);
        for (uint32_t i = 0; i < 32; ++i) {
            BackendCounters& b = backends[(h + i) & (kBackendCounterSlots - 1)];
            const uint64_t k = b.key.load(std::memory_order_relaxed);
            if (k == key) return &b;
            if (k == 0) {
                b.key.store(key, std::memory_order_release);
                return &b;
            }
        }
        bump(backend_counter_overflow);
        return nullptr;
    }
    // Pulls the first slot backend() probes for this key toward the cache.
    // Always inlined: a call to it that GCC did not inline would be deleted
    // as dead code (see balance::prefetch_pick()).
    [[gnu::always_inline]] void prefetch_backend(uint32_t pool_slot, uint32_t backend_id) const noexcept {
        const uint64_t key = backend_key(pool_slot, backend_id);
        const uint32_t h = static_cast<uint32_t>((key * 0x9E3779B97F4A7C15ull) >> 40);
        __builtin_prefetch(&backends[h & (kBackendCounterSlots - 1)], 1, 3);
    }
    // Reader side.
    const BackendCounters* find_backend(uint32_t pool_slot, uint32_t backend_id) const noexcept {
        const uint64_t key = backend_key(pool_slot, backend_id);
        const uint32_t h = static_cast<uint32_t>((key * 0x9E3779B97F4A7C15ull) >> 40);
        for (uint32_t i = 0; i < 32; ++i) {
            const BackendCounters& b = backends[(h + i) & (kBackendCounterSlots - 1)];
            const uint64_t k = b.key.load(std::memory_order_acquire);
            if (k == key) return &b;
            if (k == 0) return nullptr;
        }
        return nullptr;
    }
};

#undef SIPLB_COUNTER_MEMBER

#define SIPLB_COUNTER_ONE(...) +1
inline constexpr size_t kPortDriverCounters = 0 SIPLB_PORT_DRIVER_COUNTERS(SIPLB_COUNTER_ONE);
#undef SIPLB_COUNTER_ONE

// Folds one block into `out` (schema order of the scope); counters add,
// gauges keep the largest value.
void add_worker_counters(const WorkerCounters& c, std::span<uint64_t> out) noexcept;
void add_port_counters(const PortCounters& c, std::span<uint64_t> out) noexcept;
void add_pool_counters(const PoolCounters& c, std::span<uint64_t> out) noexcept;
void add_backend_counters(const BackendCounters& c, std::span<uint64_t> out) noexcept;
void add_rule_counters(const RuleCounters& c, std::span<uint64_t> out) noexcept;

}  // namespace siplb::dataplane
