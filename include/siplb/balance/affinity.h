// Dialog affinity: Call-ID hash -> backend, so that every message of a call
// reaches the server that saw its INVITE even after the Maglev table changed
// (a backend added moves ~1/N of the keys, a BYE must not move with them).
//
// Shared by all workers, lock-free, rather than per-lcore: with RSS the two
// directions of a call (client->VIP and backend->VIP, or the two legs of a
// B2BUA) hash to different queues and thus different lcores; a per-lcore
// table would make the core that sees the BYE ignorant of the INVITE's
// choice. One table sized for all calls also uses memory better than N
// partitions each sized for the worst case.
//
// Layout: fixed capacity (power of two) of 16-byte entries in 64-byte
// buckets of 4 (one cache line); a key lives only in the bucket its hash
// selects, so a lookup touches one line. Entry:
//   word 0 (key):     [48 high bits of the key hash][8-bit VIP][7-bit version][busy bit]
//   word 1 (payload): [backend id (32)][expiry, seconds (32)]
// The VIP (a PoolSnapshot VIP slot: the call's VIP, 0 = none recorded) rides
// in the key word so that the entry stays 16 bytes and the seqlock covers it
// unchanged. It takes hash bits 8..15, which the bucket index (the low bits
// of the hash) already fixes in any table of 2^18 entries or more, so there
// the tag tells keys apart exactly as well as a 56-bit one; smaller tables
// compare 48 bits instead of 56 (a false match below 2^-46 per lookup).
// Torn reads are prevented with a per-entry seqlock: a writer claims the entry
// by CAS on the key word (setting busy), writes the payload, then releases the
// key word with the version incremented; a reader loads key, payload, key
// again and accepts the payload only if both key loads are equal and not
// busy. The ordering is carried by the atomics themselves, not by fences
// (which ThreadSanitizer does not model): the payload is stored with
// release after the busy CAS and loaded with acquire before the second key
// load, so a reader that sees a newer payload also sees the busy bit or the
// newer version (Boehm, "Can seqlocks get along with programming language
// memory models?", 2012). tests/balance/affinity_stress_test.cpp counts
// torn reads under concurrent writers. Writers never wait: if the CAS fails (another
// core is writing that entry) the store is skipped and the next packet of the
// call stores it. Readers never write; a refresh is written at most once per
// second per call (only when it pushes the expiry forward or changes the VIP).
//
// Eviction when a bucket is full: an expired entry first, else the entry that
// expires soonest (the coldest transaction), reported as `evicted` so the
// dataplane can count it and the operator can size `affinity_capacity`.
// Times are uint32 seconds from a monotonic clock, compared wrap-safely.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "siplb/balance/entry_word.h"
#include "siplb/common/result.h"
#include "siplb/common/table_memory.h"

namespace siplb::balance {

class AffinityTable {
public:
    static constexpr size_t kEntryBytes = 16;
    static constexpr uint32_t kWays = 4;
    static constexpr uint32_t kMinCapacity = kWays;
    static constexpr uint32_t kMaxCapacity = 1u << 30;

    // capacity: entries, power of two in [kMinCapacity, kMaxCapacity].
    static Result<std::unique_ptr<AffinityTable>> create(uint32_t capacity);

    AffinityTable(const AffinityTable&) = delete;
    AffinityTable& operator=(const AffinityTable&) = delete;

    // VIP slots: 1..kMaxVip name a VIP of the entry's pool
    // (PoolSnapshot::vip_at); kNoVip: none recorded.
    static constexpr uint8_t kNoVip = 0;
    static constexpr uint8_t kMaxVip = 255;
    struct Hit {
        uint32_t backend_id;
        uint32_t expiry_s;
        uint8_t vip;
    };
    // The live entry for `key` (expiry after now_s), if any. Never writes.
    // Inline: out of line, GCC returns the optional through the stack with
    // byte-wide stores that the 8-byte reloads cannot forward from, which
    // stalled every lookup of the worker's pick.
    std::optional<Hit> lookup(uint64_t key, uint32_t now_s) const noexcept;

    enum class Store : uint8_t {
        inserted,   // new entry in a free or expired slot
        refreshed,  // existing entry, expiry pushed forward and/or backend replaced
        unchanged,  // existing entry already as fresh and for the same backend
        evicted,    // bucket full of live entries: the one expiring soonest went, the new one if it was that
        busy,       // another core is writing the entry: skipped
    };
    // Insert or refresh. The stored expiry never moves backwards for a live
    // entry: a 64 s transaction inside a 2 h dialog does not shorten it.
    // vip: the VIP slot to record; kNoVip keeps the one an existing entry has
    // (a writer that does not know the call's VIP never erases it).
    Store upsert(uint64_t key, uint32_t backend_id, uint32_t expiry_s, uint32_t now_s, uint8_t vip = kNoVip) noexcept;

    // Pulls the bucket `key` lives in toward the cache (no fault, no write):
    // a worker issues it for every frame of a burst before looking any up.
    // Always inlined: a call to it that GCC did not inline would be deleted
    // as dead code (see prefetch_pick()).
    [[gnu::always_inline]] void prefetch(uint64_t key) const noexcept { __builtin_prefetch(&bucket_of(key), 0, 3); }

    // Removes the entry for key if present (control/tests; not on the hot path).
    void erase(uint64_t key) noexcept;

    uint32_t capacity() const noexcept { return capacity_; }
    size_t memory_bytes() const noexcept {
        return table_memory::reserved_bytes(static_cast<size_t>(capacity_) * kEntryBytes);
    }
    // O(capacity) scan, for metrics from the control thread.
    size_t count_live(uint32_t now_s) const noexcept;

private:
    struct Entry {
        std::atomic<uint64_t> key{0};
        std::atomic<uint64_t> payload{0};
    };
    struct alignas(64) Bucket {
        Entry way[kWays];
    };
    static_assert(sizeof(Entry) == kEntryBytes);
    static_assert(sizeof(Bucket) == 64);

    // The VIP slot rides in the word's table-specific byte (entry_word.h).
    static uint8_t vip_of(uint64_t word) noexcept { return entry_word::extra_of(word); }

    explicit AffinityTable(uint32_t capacity);
    const Bucket& bucket_of(uint64_t key) const noexcept { return buckets_[key & bucket_mask_]; }
    Bucket& bucket_of(uint64_t key) noexcept { return buckets_[key & bucket_mask_]; }

    TableArray<Bucket> buckets_;
    uint32_t capacity_;
    uint64_t bucket_mask_;
};

inline std::optional<AffinityTable::Hit> AffinityTable::lookup(uint64_t key, uint32_t now_s) const noexcept {
    using namespace entry_word;
    const uint64_t tag = tag_of(key);
    const Bucket& b = bucket_of(key);
    for (const Entry& e : b.way) {
        const uint64_t k1 = e.key.load(std::memory_order_acquire);
        if (!same_tag(k1, tag) || (k1 & kBusy)) continue;
        // Acquire on the payload: if it is a newer writer's, that writer's
        // busy CAS happened before, and the second key load sees it.
        const uint64_t p = e.payload.load(std::memory_order_acquire);
        const uint64_t k2 = e.key.load(std::memory_order_relaxed);
        if (k1 != k2) return std::nullopt;  // being rewritten: let Maglev decide this once
        if (!after(expiry_of(p), now_s)) return std::nullopt;
        return Hit{id_of(p), expiry_of(p), vip_of(k1)};
    }
    return std::nullopt;
}

}  // namespace siplb::balance
