// IP -> (MAC, port) neighbor table shared by all workers and the control
// side. Fixed capacity, allocated once; lookups are wait-free and never
// write, learning never blocks.
//
// Each slot is guarded by a seqlock: a writer claims it by CAS on the
// sequence (even -> odd), writes, and releases it (odd -> even + 2); readers
// retry on a change and give up (miss) after a few tries. No standalone
// fences (ThreadSanitizer does not model them): writers store the fields
// with release after the claiming CAS and readers load them with acquire
// before re-reading the sequence, which on x86 costs nothing over relaxed
// accesses; tests/net/neighbor_stress_test.cpp counts torn reads. A writer that finds
// a slot claimed by another core skips the update (`busy`): gleaning sees
// the same neighbor again on its next packet. Entries are updated in place
// when a neighbor's MAC moves. Static entries from config are never
// overwritten by gleaning and never age.
//
// Aging (reachable_ms > 0): a learned entry is reachable for reachable_ms
// after it was last confirmed (learned again from an ARP/ND message or a
// frame of the neighbor), then stale: still used, and its user sends a
// (rate-limited) refresh request. Unconfirmed for 4 x reachable_ms it has
// expired: lookups miss it and expire() frees its slot (a tombstone, so the
// probe chains of other keys stay intact; learn() reuses it).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "siplb/common/endpoint.h"

namespace siplb::net {

class NeighborTable {
public:
    enum class State : uint8_t { reachable, stale, permanent };
    struct Entry {
        MacAddress mac;
        uint16_t port = 0;  // dataplane port index the neighbor is on
        bool is_static = false;
        State state = State::reachable;
        // Until then (exclusive, the caller's clock) the entry stays as it is
        // unless generation() moves: reachable until confirmed + reachable_ms;
        // never for static entries or without aging (UINT64_MAX); the lookup
        // time itself for stale entries (they need a refresh on every use).
        uint64_t fresh_until_ms = UINT64_MAX;
    };
    static constexpr uint64_t kExpireFactor = 4;  // expired after kExpireFactor x reachable_ms unconfirmed
    enum class Learn : uint8_t { inserted, updated, unchanged, static_kept, full, busy };

    // capacity: slots, rounded up to a power of two (at least 16);
    // reachable_ms: 0 turns aging off.
    explicit NeighborTable(uint32_t capacity = 4096, uint64_t reachable_ms = 0);
    NeighborTable(const NeighborTable&) = delete;
    NeighborTable& operator=(const NeighborTable&) = delete;

    // now_ms (the caller's monotonic clock; 0: age not checked) gives
    // learned entries their state; expired ones miss.
    std::optional<Entry> lookup(const IpAddress& ip, uint64_t now_ms = 0) const noexcept;
    // Insert or update; a learned entry seen again unchanged is confirmed at
    // now_ms (written at most once per kConfirmGranularityMs: gleaning runs
    // per frame). Static entries win over learned ones.
    Learn learn(const IpAddress& ip, const MacAddress& mac, uint16_t port, bool is_static = false,
                uint64_t now_ms = 0) noexcept;
    // Frees the slots of learned entries expired at now_ms; returns how many.
    // O(capacity): one core, about once a second.
    size_t expire(uint64_t now_ms) noexcept;
    uint64_t reachable_ms() const noexcept { return reachable_ms_; }
    static constexpr uint64_t kConfirmGranularityMs = 1000;

    // For rate-limited resolution of a missing neighbor: true (and records
    // now_ms) when no request for `ip` was sent in the last interval_ms.
    // Uses a small separate table so unresolved targets do not fill this one.
    bool should_request(const IpAddress& ip, uint64_t now_ms, uint64_t interval_ms) noexcept;

    // Moves whenever an entry is inserted, gets another MAC or port, or is
    // freed (not when it is merely confirmed). A reader that read G before a
    // lookup may keep the result while generation() is still G and the
    // entry is fresh: the per-worker next-hop caches rely on it.
    uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }

    size_t size() const noexcept;  // O(capacity): for stats
    uint32_t capacity() const noexcept { return mask_ + 1; }

private:
    static constexpr uint32_t kMaxProbe = 16;
    // kFlagTomb: a freed slot (used, no key): lookups probe past it.
    static constexpr uint32_t kFlagUsed = 1, kFlagV6 = 2, kFlagStatic = 4, kFlagTomb = 8;
    struct alignas(64) Slot {
        std::atomic<uint32_t> seq{0};
        std::atomic<uint32_t> flags{0};
        std::atomic<uint64_t> addr_lo{0}, addr_hi{0};
        std::atomic<uint64_t> mac_port{0};      // mac (48 bits, byte 0 lowest) | port << 48
        std::atomic<uint64_t> confirmed_ms{0};  // learned entries: last confirmation
    };
    struct alignas(64) RequestSlot {
        std::atomic<uint64_t> addr_lo{0}, addr_hi{0};
        std::atomic<uint64_t> last_ms{0};
    };
    static uint64_t hash(const IpAddress& ip) noexcept;
    bool expired(uint64_t confirmed_ms, uint64_t now_ms) const noexcept {
        return reachable_ms_ && now_ms > confirmed_ms && now_ms - confirmed_ms >= kExpireFactor * reachable_ms_;
    }

    std::unique_ptr<Slot[]> slots_;
    uint32_t mask_;
    std::unique_ptr<RequestSlot[]> requests_;
    uint32_t request_mask_;
    uint64_t reachable_ms_;
    alignas(64) std::atomic<uint64_t> generation_{1};  // own line: read per frame, written on changes only
};

}  // namespace siplb::net
