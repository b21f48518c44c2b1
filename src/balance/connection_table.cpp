#include "siplb/balance/connection_table.h"

#include <string>

#include "siplb/balance/entry_word.h"

namespace siplb::balance {
namespace {

using namespace entry_word;

inline bool used(uint64_t word) noexcept { return (word & kTagMask) != 0; }
inline uint64_t pack_meta(const ConnectionTable::Conn& c) noexcept {
    return static_cast<uint64_t>(c.source) << 32 | static_cast<uint64_t>(c.pool_slot) << 16 |
           static_cast<uint64_t>(c.vip) << 8 | static_cast<uint8_t>(c.state);
}
inline ConnectionTable::Conn unpack(uint64_t payload, uint64_t meta) noexcept {
    ConnectionTable::Conn c;
    c.backend_id = id_of(payload);
    c.expiry_s = expiry_of(payload);
    c.source = static_cast<uint32_t>(meta >> 32);
    c.pool_slot = static_cast<uint16_t>(meta >> 16);
    c.vip = static_cast<uint8_t>(meta >> 8);
    c.state = static_cast<ConnectionTable::State>(meta & 0xFF);
    return c;
}
inline ConnectionTable::State state_of(uint64_t meta) noexcept {
    return static_cast<ConnectionTable::State>(meta & 0xFF);
}
}  // namespace

Result<std::unique_ptr<ConnectionTable>> ConnectionTable::create(uint32_t capacity, uint32_t source_slots) {
    using R = Result<std::unique_ptr<ConnectionTable>>;
    if (capacity < kMinCapacity || capacity > kMaxCapacity || (capacity & (capacity - 1)) != 0)
        return R::fail("connection capacity " + std::to_string(capacity) + " must be a power of two in " +
                       std::to_string(kMinCapacity) + ".." + std::to_string(kMaxCapacity));
    if (source_slots == 0 || (source_slots & (source_slots - 1)) != 0)
        return R::fail("connection source slots " + std::to_string(source_slots) + " must be a power of two");
    return std::unique_ptr<ConnectionTable>(new ConnectionTable(capacity, source_slots));
}

ConnectionTable::ConnectionTable(uint32_t capacity, uint32_t source_slots)
    : buckets_(capacity / kWays),
      sources_(new std::atomic<uint32_t>[source_slots]),
      capacity_(capacity),
      bucket_mask_(capacity / kWays - 1),
      source_mask_(source_slots - 1) {
    for (uint32_t i = 0; i < source_slots; ++i) sources_[i].store(0, std::memory_order_relaxed);
}

void ConnectionTable::source_remove(uint32_t source) noexcept {
    std::atomic<uint32_t>& n = sources_[source & source_mask_];
    uint32_t v = n.load(std::memory_order_relaxed);
    while (v != 0 && !n.compare_exchange_weak(v, v - 1, std::memory_order_relaxed)) {
    }
}

std::optional<ConnectionTable::Conn> ConnectionTable::lookup(uint64_t key, uint32_t now_s) const noexcept {
    const uint64_t tag = tag_of(key);
    for (const Entry& e : bucket_of(key).way) {
        const uint64_t k1 = e.key.load(std::memory_order_acquire);
        if ((k1 & kTagMask) != tag || (k1 & kBusy)) continue;
        // Acquire: a payload written after the claim comes with its busy
        // bit, so the re-check of the key below sees the change.
        const uint64_t p = e.payload.load(std::memory_order_acquire);
        const uint64_t m = e.meta.load(std::memory_order_acquire);
        if (e.key.load(std::memory_order_relaxed) != k1) return std::nullopt;  // being rewritten: the table decides
        if (!after(expiry_of(p), now_s)) return std::nullopt;
        return unpack(p, m);
    }
    return std::nullopt;
}

ConnectionTable::OpenResult ConnectionTable::open(uint64_t key, const Conn& conn, uint32_t now_s,
                                                  uint32_t source_cap) noexcept {
    OpenResult r;
    const uint64_t tag = tag_of(key);
    Bucket& b = bucket_of(key);

    // The key's own entry, live or not, is the one to reuse: a key never
    // occupies two ways.
    Entry* victim = nullptr;
    uint64_t victim_word = 0;
    for (Entry& e : b.way) {
        uint64_t k = e.key.load(std::memory_order_acquire);
        if ((k & kTagMask) != tag) continue;
        if (k & kBusy) return r;
        // Acquire: a payload written after the claim comes with its busy
        // bit, so the re-check of the key below sees the change.
        const uint64_t p = e.payload.load(std::memory_order_acquire);
        const uint64_t m = e.meta.load(std::memory_order_acquire);
        if (e.key.load(std::memory_order_relaxed) != k) return r;
        if (after(expiry_of(p), now_s) && state_of(m) != State::closing) {
            r.outcome = Open::exists;
            r.existing = unpack(p, m);
            return r;
        }
        victim = &e;
        victim_word = k;
        break;
    }
    if (source_cap && source_entries(conn.source) >= source_cap) {
        r.outcome = Open::source_cap;
        return r;
    }
    // Else a free way, an expired one, or the half-open one expiring soonest.
    bool victim_live = false;
    if (!victim) {
        uint32_t victim_expiry = 0;
        for (Entry& e : b.way) {
            const uint64_t k = e.key.load(std::memory_order_acquire);
            if (k & kBusy) continue;
            if (!used(k)) {
                victim = &e, victim_word = k, victim_live = false;
                break;
            }
            const uint32_t exp = expiry_of(e.payload.load(std::memory_order_relaxed));
            const bool live = after(exp, now_s);
            if (live && state_of(e.meta.load(std::memory_order_relaxed)) != State::half_open) continue;
            if (!victim || (victim_live && (!live || after(victim_expiry, exp))))
                victim = &e, victim_word = k, victim_live = live, victim_expiry = exp;
        }
    }
    if (!victim) {
        r.outcome = Open::bucket_full;
        return r;
    }
    if (!victim->key.compare_exchange_strong(victim_word, victim_word | kBusy, std::memory_order_acquire,
                                             std::memory_order_relaxed))
        return r;
    if (used(victim_word)) {
        // Read under the claim: what was there is what the caller counts.
        const Conn old =
            unpack(victim->payload.load(std::memory_order_relaxed), victim->meta.load(std::memory_order_relaxed));
        victim_live = after(old.expiry_s, now_s);
        r.displaced = old;
        source_remove(old.source);
    }
    // Release: a reader that sees this payload also sees the busy bit.
    victim->payload.store(pack_payload(conn.backend_id, conn.expiry_s), std::memory_order_release);
    victim->meta.store(pack_meta(conn), std::memory_order_release);
    victim->key.store(next_word(victim_word, tag), std::memory_order_release);
    source_add(conn.source);
    // A closing entry of the same key replaced by the new connection is
    // not an eviction: its connection is over.
    const bool same_key = (victim_word & kTagMask) == tag;
    r.outcome = victim_live && !same_key ? Open::evicted : Open::inserted;
    return r;
}

std::optional<ConnectionTable::State> ConnectionTable::update(uint64_t key, State state, uint32_t expiry_s,
                                                              uint32_t now_s) noexcept {
    const uint64_t tag = tag_of(key);
    for (Entry& e : bucket_of(key).way) {
        uint64_t k = e.key.load(std::memory_order_acquire);
        if ((k & kTagMask) != tag) continue;
        if (k & kBusy) return std::nullopt;
        if (!e.key.compare_exchange_strong(k, k | kBusy, std::memory_order_acquire, std::memory_order_relaxed))
            return std::nullopt;
        const uint64_t p = e.payload.load(std::memory_order_relaxed);
        Conn c = unpack(p, e.meta.load(std::memory_order_relaxed));
        if (!after(c.expiry_s, now_s)) {
            e.key.store(k, std::memory_order_release);  // nothing written: same word back
            return std::nullopt;
        }
        const State before = c.state;
        if (before == State::closing) state = State::closing;
        c.state = state;
        c.expiry_s = expiry_s;
        e.payload.store(pack_payload(c.backend_id, c.expiry_s), std::memory_order_release);
        e.meta.store(pack_meta(c), std::memory_order_release);
        e.key.store(next_word(k, tag), std::memory_order_release);
        return before;
    }
    return std::nullopt;
}

bool ConnectionTable::reclaim_if_expired(Entry& e, uint32_t now_s, Conn& removed) noexcept {
    uint64_t k = e.key.load(std::memory_order_acquire);
    if (!used(k) || (k & kBusy)) return false;
    if (after(expiry_of(e.payload.load(std::memory_order_relaxed)), now_s)) return false;
    if (!e.key.compare_exchange_strong(k, k | kBusy, std::memory_order_acquire, std::memory_order_relaxed))
        return false;
    const uint64_t p = e.payload.load(std::memory_order_relaxed);
    if (after(expiry_of(p), now_s)) {  // refreshed between the check and the claim
        e.key.store(k, std::memory_order_release);
        return false;
    }
    removed = unpack(p, e.meta.load(std::memory_order_relaxed));
    e.payload.store(0, std::memory_order_release);
    e.meta.store(0, std::memory_order_release);
    e.key.store(next_word(k, 0), std::memory_order_release);
    source_remove(removed.source);
    return true;
}

size_t ConnectionTable::count_live(uint32_t now_s) const noexcept {
    size_t live = 0;
    for (uint64_t i = 0; i <= bucket_mask_; ++i)
        for (const Entry& e : buckets_[i].way)
            if (used(e.key.load(std::memory_order_relaxed)) &&
                after(expiry_of(e.payload.load(std::memory_order_relaxed)), now_s))
                ++live;
    return live;
}

}  // namespace siplb::balance
