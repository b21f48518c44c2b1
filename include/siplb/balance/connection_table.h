// Connection affinity for SIP over TCP (and TLS, which siplb only carries):
// client connection -> backend, recorded on the SYN and kept for the
// connection's lifetime, so that every segment reaches the backend that
// accepted the handshake even after the Maglev table changed (a backend
// added, or one draining). The first choice is the Maglev pick over the
// client's address and port, so two nodes agree without sharing this table,
// and a segment whose entry was lost falls back to the same pick.
//
// Shared by all workers, as the affinity table is (affinity.h), for the same
// reason: RSS does not keep the two directions of a connection, or the
// segments of one client under net_ring/af_packet, on one lcore.
//
// Layout: fixed capacity (power of two) of 32-byte entries in buckets of 4
// (two cache lines); a key lives only in the bucket its hash selects.
//   word 0 (key):     [48 high bits of the key hash][8 unused][7-bit version][busy bit]
//   word 1 (payload): [backend id (32)][expiry, seconds (32)]
//   word 2 (meta):    [source hash (32)][pool counter slot (16)][VIP slot (8)][state (8)]
// Per-entry seqlock as in AffinityTable: writers claim the entry by CAS on
// the key word, readers retry nothing and accept the words only if the key
// word did not change around them. Writers never wait.
//
// Protection: an entry is only evicted while its connection is half open
// (SYN seen, no data yet), so a SYN flood cannot push out established
// connections; a per-source cap (hashed source address -> entry count)
// keeps one source from filling the table at all.
//
// Entries are reclaimed by sweep(): workers sweep a few buckets as they go,
// reporting each entry they remove (for the closed/expired counters).
// Times are uint32 seconds from a monotonic clock, compared wrap-safely.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "siplb/common/result.h"
#include "siplb/common/table_memory.h"

namespace siplb::balance {

class ConnectionTable {
public:
    static constexpr size_t kEntryBytes = 32;
    static constexpr uint32_t kWays = 4;
    static constexpr uint32_t kMinCapacity = kWays;
    static constexpr uint32_t kMaxCapacity = 1u << 28;

    enum class State : uint8_t {
        half_open = 1,    // SYN recorded, nothing else yet: may be evicted
        established = 2,  // data or ACK after the SYN
        closing = 3,      // FIN or RST seen: kept for the close grace period
    };
    struct Conn {
        uint32_t backend_id = 0;
        uint32_t expiry_s = 0;
        uint32_t source = 0;     // hash of the client address (per-source cap)
        uint16_t pool_slot = 0;  // counter slot of the pool (PoolSpec::counter_slot, low 16 bits)
        uint8_t vip = 0;         // TCP VIP slot of the pool the client connected to
        State state = State::half_open;
    };

    // capacity: entries, power of two in [kMinCapacity, kMaxCapacity].
    // source_slots: counters for the per-source cap, power of two >= 1.
    static Result<std::unique_ptr<ConnectionTable>> create(uint32_t capacity, uint32_t source_slots);

    ConnectionTable(const ConnectionTable&) = delete;
    ConnectionTable& operator=(const ConnectionTable&) = delete;

    // The entry for `key` whose expiry is after now_s, if any. Never writes.
    std::optional<Conn> lookup(uint64_t key, uint32_t now_s) const noexcept;

    enum class Open : uint8_t {
        inserted,     // new entry in a free slot, or over an expired one (`displaced` says)
        exists,       // a live entry for the key is there already (retransmitted SYN): left as it is
        evicted,      // new entry displaced a live half-open connection (`displaced` is it)
        bucket_full,  // every way holds an established or closing connection: not recorded
        source_cap,   // the source already holds `source_cap` entries: not recorded
        busy,         // another core is writing the bucket: not recorded
    };
    struct OpenResult {
        Open outcome = Open::busy;
        // inserted over an expired entry, or evicted: the entry that was
        // there (counted as expired/closed or evicted by the caller).
        std::optional<Conn> displaced;
        Conn existing;  // Open::exists: the live entry
    };
    // Records a new connection (a SYN). A live entry in the closing state is
    // replaced (the client reuses its port for a new connection).
    // source_cap: most entries one source may hold; 0 = no cap.
    OpenResult open(uint64_t key, const Conn& conn, uint32_t now_s, uint32_t source_cap) noexcept;

    // Moves a live entry to `state` with expiry `expiry_s` (which may be
    // earlier than the current one: a FIN shortens it to the grace period).
    // A closing entry never goes back to established. Returns the state it
    // had before, or nullopt (no live entry, or busy).
    std::optional<State> update(uint64_t key, State state, uint32_t expiry_s, uint32_t now_s) noexcept;

    // Reclaims expired entries in the next `buckets` buckets (a cursor
    // shared by all callers walks the table), calling on_removed(conn) for
    // each one removed. Returns how many were removed.
    template <typename F>
    size_t sweep(uint32_t now_s, uint32_t buckets, F&& on_removed) noexcept {
        size_t removed = 0;
        const uint64_t first = cursor_.fetch_add(buckets, std::memory_order_relaxed);
        for (uint32_t i = 0; i < buckets; ++i) {
            Bucket& b = buckets_[(first + i) & bucket_mask_];
            for (Entry& e : b.way) {
                Conn c;
                if (reclaim_if_expired(e, now_s, c)) {
                    ++removed;
                    on_removed(c);
                }
            }
        }
        return removed;
    }

    // Entries the source with this hash holds (per-source cap).
    uint32_t source_entries(uint32_t source) const noexcept {
        return sources_[source & source_mask_].load(std::memory_order_relaxed);
    }

    uint32_t capacity() const noexcept { return capacity_; }
    uint32_t bucket_count() const noexcept { return static_cast<uint32_t>(bucket_mask_ + 1); }
    size_t memory_bytes() const noexcept {
        return table_memory::reserved_bytes(static_cast<size_t>(capacity_) * kEntryBytes) +
               (source_mask_ + 1) * sizeof(uint32_t);
    }
    // O(capacity) scan (control thread, tests).
    size_t count_live(uint32_t now_s) const noexcept;

private:
    struct Entry {
        std::atomic<uint64_t> key{0};
        std::atomic<uint64_t> payload{0};
        std::atomic<uint64_t> meta{0};
        uint64_t pad = 0;
    };
    struct alignas(64) Bucket {
        Entry way[kWays];
    };
    static_assert(sizeof(Entry) == kEntryBytes);

    ConnectionTable(uint32_t capacity, uint32_t source_slots);
    Bucket& bucket_of(uint64_t key) noexcept { return buckets_[key & bucket_mask_]; }
    const Bucket& bucket_of(uint64_t key) const noexcept { return buckets_[key & bucket_mask_]; }
    bool reclaim_if_expired(Entry& e, uint32_t now_s, Conn& removed) noexcept;
    void source_add(uint32_t source) noexcept {
        sources_[source & source_mask_].fetch_add(1, std::memory_order_relaxed);
    }
    void source_remove(uint32_t source) noexcept;

    TableArray<Bucket> buckets_;
    std::unique_ptr<std::atomic<uint32_t>[]> sources_;
    uint32_t capacity_;
    uint64_t bucket_mask_;
    uint64_t source_mask_;
    std::atomic<uint64_t> cursor_{0};
};

}  // namespace siplb::balance
