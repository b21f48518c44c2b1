#include "siplb/balance/affinity.h"

#include <string>

#include "siplb/balance/entry_word.h"

namespace siplb::balance {

using namespace entry_word;

Result<std::unique_ptr<AffinityTable>> AffinityTable::create(uint32_t capacity) {
    if (capacity < kMinCapacity || capacity > kMaxCapacity || (capacity & (capacity - 1)) != 0)
        return Result<std::unique_ptr<AffinityTable>>::fail(
            "affinity capacity " + std::to_string(capacity) + " must be a power of two in " +
            std::to_string(kMinCapacity) + ".." + std::to_string(kMaxCapacity));
    return std::unique_ptr<AffinityTable>(new AffinityTable(capacity));
}

AffinityTable::AffinityTable(uint32_t capacity)
    : buckets_(capacity / kWays), capacity_(capacity), bucket_mask_(capacity / kWays - 1) {}

AffinityTable::Store AffinityTable::upsert(uint64_t key, uint32_t backend_id, uint32_t expiry_s, uint32_t now_s,
                                           uint8_t vip) noexcept {
    const uint64_t tag = tag_of(key);
    Bucket& b = bucket_of(key);

    // Existing entry for this key?
    for (Entry& e : b.way) {
        uint64_t k = e.key.load(std::memory_order_acquire);
        if (!same_tag(k, tag)) continue;
        if (k & kBusy) return Store::busy;
        const uint64_t p = e.payload.load(std::memory_order_acquire);
        if (e.key.load(std::memory_order_relaxed) != k) return Store::busy;
        uint32_t expiry = expiry_s;
        if (after(expiry_of(p), now_s) && after(expiry_of(p), expiry)) expiry = expiry_of(p);
        const uint8_t new_vip = vip != kNoVip ? vip : vip_of(k);
        if (id_of(p) == backend_id && expiry == expiry_of(p) && new_vip == vip_of(k)) return Store::unchanged;
        if (!e.key.compare_exchange_strong(k, k | kBusy, std::memory_order_acquire, std::memory_order_relaxed))
            return Store::busy;
        // Release: a reader that sees this payload also sees the busy bit.
        e.payload.store(pack_payload(backend_id, expiry), std::memory_order_release);
        e.key.store(next_word(k, tag, new_vip), std::memory_order_release);
        return Store::refreshed;
    }

    // New entry: a free way, else an expired one, else the one expiring
    // soonest, the newcomer included: a flood of short transactions must
    // not displace the dialogs that fill a bucket.
    Entry* victim = nullptr;
    uint64_t victim_word = 0;
    bool victim_live = false;
    uint32_t victim_expiry = 0;
    for (Entry& e : b.way) {
        const uint64_t k = e.key.load(std::memory_order_acquire);
        if (k & kBusy) continue;
        if ((k & kTagMask) == 0) {  // never used, or erased
            victim = &e, victim_word = k, victim_live = false;
            break;
        }
        const uint32_t exp = expiry_of(e.payload.load(std::memory_order_relaxed));
        const bool live = after(exp, now_s);
        if (!victim || (victim_live && (!live || after(victim_expiry, exp)))) {
            victim = &e, victim_word = k, victim_live = live, victim_expiry = exp;
        }
    }
    if (!victim) return Store::busy;
    if (victim_live && after(victim_expiry, expiry_s)) return Store::evicted;  // the newcomer goes
    if (!victim->key.compare_exchange_strong(victim_word, victim_word | kBusy, std::memory_order_acquire,
                                             std::memory_order_relaxed))
        return Store::busy;
    victim->payload.store(pack_payload(backend_id, expiry_s), std::memory_order_release);
    victim->key.store(next_word(victim_word, tag, vip), std::memory_order_release);
    return victim_live ? Store::evicted : Store::inserted;
}

void AffinityTable::erase(uint64_t key) noexcept {
    const uint64_t tag = tag_of(key);
    Bucket& b = bucket_of(key);
    for (Entry& e : b.way) {
        uint64_t k = e.key.load(std::memory_order_acquire);
        if (!same_tag(k, tag) || (k & kBusy)) continue;
        if (!e.key.compare_exchange_strong(k, k | kBusy, std::memory_order_acquire, std::memory_order_relaxed)) return;
        e.payload.store(0, std::memory_order_release);
        // Empty tag, but the version keeps moving so a concurrent reader
        // cannot pair an old key word with a later payload.
        e.key.store(next_word(k, 0, kNoVip), std::memory_order_release);
        return;
    }
}

size_t AffinityTable::count_live(uint32_t now_s) const noexcept {
    size_t live = 0;
    for (uint64_t i = 0; i <= bucket_mask_; ++i)
        for (const Entry& e : buckets_[i].way)
            if ((e.key.load(std::memory_order_relaxed) & kTagMask) != 0 &&
                after(expiry_of(e.payload.load(std::memory_order_relaxed)), now_s))
                ++live;
    return live;
}

}  // namespace siplb::balance
