// Per-source and per-prefix request rate limits for one pool on one worker.
//
// Algorithm: GCRA (the token bucket expressed as one "theoretical arrival
// time" per key): a request at `now` conforms when max(tat, now) + T - now
// <= burst * T, T = 1 s / rate. One 64-bit word per key, no floating point
// per packet, and a bucket whose tat <= now is full, i.e. indistinguishable
// from no entry, which makes it free to reuse.
//
// Keys: the source address (IPv4 as ::ffff:a.b.c.d) in one table, its /24
// (IPv4) or /64 (IPv6) in another. A request must conform in both; buckets
// are charged only when it does, so a flooding source does not eat its
// neighbours' prefix budget with requests that were dropped anyway.
//
// Table: fixed capacity (power of two, allocated once), open addressing
// inside a window of kProbe slots that the key's hash picks. A slot is the
// key's 64-bit hash and its tat, 16 bytes, and a window is one aligned
// cache line: a request reads two lines (its address's, its prefix's).
// The hash stands for the key: among IPv4 addresses, among /24s and among
// IPv6 /64s it is a bijection of the key, so exact; two IPv6 addresses (or
// keys of different families) can share a hash, which lets one charge the
// other's bucket. That gives a sender nothing it does not have already: it
// can put any address it likes in a UDP datagram's source. A key not found
// takes the slot in its window with the smallest tat: a full (expired) one
// if any, else the stalest live one ("eviction", counted). Nothing is ever
// deleted, so there are no tombstones and lookups are bounded.
//
// Threading: one RateLimiter per worker and pool, no locks, no atomics on
// the state. The dataplane configures symmetric RSS on the 5-tuple, so all
// datagrams of one source address:port land on one worker's queue and that
// worker's table sees the source's whole rate. A source using many ports
// (and the sources of one prefix) may spread over workers: per-prefix and
// per-address limits then hold per worker, i.e. at most `workers` times the
// configured rate in total. Sharing one table between workers would put a
// contended cache line (or a lock) on every packet of the flood we are
// trying to absorb.
//
// Time is injected (ns, any monotonic origin); tests drive it by hand.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"
#include "siplb/common/table_memory.h"
#include "siplb/protect/spec.h"

namespace siplb::protect {

enum class RateVerdict : uint8_t { pass, source_limited, prefix_limited };

// One request's admission: the verdict, and the live buckets it displaced
// (its address's and its prefix's, 0-2: the table is too small for the
// sources it sees).
struct Admission {
    RateVerdict verdict = RateVerdict::pass;
    uint8_t evictions = 0;
};

class RateLimiter {
public:
    static constexpr uint32_t kProbe = 4;

    // Validates rates (> 0), bursts (>= 1) and table_size (power of two,
    // 16..2^26) and allocates both tables (table_size slots each).
    static Result<RateLimiter> create(const RateLimitSpec& cfg, uint64_t hash_seed = 0x9e3779b97f4a7c15ull);

    // Where one source's buckets live: its keys and their hashes, worked
    // out once per request. Burst loops locate() every request in their
    // first pass, prefetch() them all back to back, then admit() each.
    struct Probe {
        uint64_t source;  // the address's hash
        uint64_t prefix;  // its /24's or /64's
    };
    Probe locate(const IpAddress& src) const noexcept;
    // Prefetches the two lines admit() reads (the windows of the source and
    // of its prefix); changes nothing. Always inlined: a call to it that
    // GCC did not inline would be deleted as dead code (see
    // balance::prefetch_pick()).
    [[gnu::always_inline]] void prefetch(const Probe& probe) const noexcept {
        __builtin_prefetch(&sources()[window(probe.source)], 1, 3);
        __builtin_prefetch(&prefixes()[window(probe.prefix)], 1, 3);
    }

    // Charges one request from `src` at `now_ns`. No allocation, no lock.
    Admission admit(const Probe& probe, uint64_t now_ns) noexcept;
    Admission admit(const IpAddress& src, uint64_t now_ns) noexcept { return admit(locate(src), now_ns); }

    // Single-writer counters, readable from other threads.
    uint64_t passed() const noexcept { return load(c_->passed); }
    uint64_t source_limited() const noexcept { return load(c_->source_limited); }
    uint64_t prefix_limited() const noexcept { return load(c_->prefix_limited); }
    uint64_t evictions() const noexcept { return load(c_->evictions); }
    uint32_t capacity() const noexcept { return mask_ + 1; }

    RateLimiter(RateLimiter&&) noexcept = default;
    RateLimiter& operator=(RateLimiter&&) noexcept = default;

private:
    struct Slot {
        uint64_t key = 0;  // the key's hash (Probe)
        uint64_t tat = 0;  // theoretical arrival time, ns; <= now: bucket full; 0: never used
    };
    struct Bucket {
        uint64_t interval_ns;   // T
        uint64_t tolerance_ns;  // burst * T
    };
    RateLimiter() = default;
    static_assert(sizeof(Slot) * kProbe == 64, "a window is one cache line");
    // The window of key hash `h`: its first slot.
    uint32_t window(uint64_t h) const noexcept { return static_cast<uint32_t>(h) & mask_ & ~(kProbe - 1); }
    Slot* lookup(Slot* table, uint64_t key, uint64_t now_ns, uint8_t& evictions) noexcept;
    static uint64_t load(const std::atomic<uint64_t>& c) noexcept { return c.load(std::memory_order_relaxed); }
    static void bump(std::atomic<uint64_t>& c) noexcept {
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }

    // Both tables in one allocation (2 MiB at the default size: one huge
    // page, table_memory.h): sources first, then prefixes.
    TableArray<Slot> slots_;
    Slot* sources() noexcept { return slots_.get(); }
    Slot* prefixes() noexcept { return slots_.get() + mask_ + 1; }
    const Slot* sources() const noexcept { return slots_.get(); }
    const Slot* prefixes() const noexcept { return slots_.get() + mask_ + 1; }
    uint32_t mask_ = 0;
    uint64_t seed_ = 0;
    Bucket source_{};
    Bucket prefix_{};
    struct Counters {
        std::atomic<uint64_t> passed{0}, source_limited{0}, prefix_limited{0}, evictions{0};
    };
    std::unique_ptr<Counters> c_;  // heap: stable for readers across moves
};

}  // namespace siplb::protect
