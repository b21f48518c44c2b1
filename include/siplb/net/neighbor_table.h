// IP -> (MAC, port) neighbor table shared by all workers and the control
// side. Fixed capacity, allocated once; lookups are wait-free and never
// write, learning never blocks.
//
// Each slot is guarded by a seqlock: a writer claims it by CAS on the
// sequence (even -> odd), writes, and releases it (odd -> even + 2); readers
// retry on a change and give up (miss) after a few tries. A writer that finds
// a slot claimed by another core skips the update (`busy`): gleaning sees
// the same neighbor again on its next packet. Keys are never removed (a
// neighbor table is small and its keys are stable); entries are updated in
// place when a neighbor's MAC moves. Static entries from config are never
// overwritten by gleaning.
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
    struct Entry {
        MacAddress mac;
        uint16_t port = 0;        // dataplane port index the neighbor is on
        bool is_static = false;
    };
    enum class Learn : uint8_t { inserted, updated, unchanged, static_kept, full, busy };

    // capacity: slots, rounded up to a power of two (at least 16).
    explicit NeighborTable(uint32_t capacity = 4096);
    NeighborTable(const NeighborTable&) = delete;
    NeighborTable& operator=(const NeighborTable&) = delete;

    std::optional<Entry> lookup(const IpAddress& ip) const noexcept;
    // Insert or update. Static entries win over learned ones.
    Learn learn(const IpAddress& ip, const MacAddress& mac, uint16_t port, bool is_static = false) noexcept;

    // For rate-limited resolution of a missing neighbor: true (and records
    // now_ms) when no request for `ip` was sent in the last interval_ms.
    // Uses a small separate table so unresolved targets do not fill this one.
    bool should_request(const IpAddress& ip, uint64_t now_ms, uint64_t interval_ms) noexcept;

    size_t size() const noexcept;  // O(capacity): for stats
    uint32_t capacity() const noexcept { return mask_ + 1; }

private:
    static constexpr uint32_t kMaxProbe = 16;
    static constexpr uint32_t kFlagUsed = 1, kFlagV6 = 2, kFlagStatic = 4;
    struct alignas(64) Slot {
        std::atomic<uint32_t> seq{0};
        std::atomic<uint32_t> flags{0};
        std::atomic<uint64_t> addr_lo{0}, addr_hi{0};
        std::atomic<uint64_t> mac_port{0};  // mac (48 bits, byte 0 lowest) | port << 48
    };
    struct alignas(64) RequestSlot {
        std::atomic<uint64_t> addr_lo{0}, addr_hi{0};
        std::atomic<uint64_t> last_ms{0};
    };
    static uint64_t hash(const IpAddress& ip) noexcept;

    std::unique_ptr<Slot[]> slots_;
    uint32_t mask_;
    std::unique_ptr<RequestSlot[]> requests_;
    uint32_t request_mask_;
};

}  // namespace siplb::net
