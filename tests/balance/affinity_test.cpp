#include "siplb/balance/affinity.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

namespace siplb::balance {
namespace {

using Store = AffinityTable::Store;

std::unique_ptr<AffinityTable> make(uint32_t capacity) {
    auto t = AffinityTable::create(capacity);
    EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.message());
    return std::move(t.value());
}

TEST(Affinity, CapacityValidatedAndMemoryBounded) {
    EXPECT_FALSE(AffinityTable::create(0).ok());
    EXPECT_FALSE(AffinityTable::create(3).ok());
    EXPECT_FALSE(AffinityTable::create(1000).ok());
    EXPECT_NE(AffinityTable::create(1000).message().find("power of two"), std::string::npos);
    auto t = make(1u << 16);
    EXPECT_EQ(t->capacity(), 1u << 16);
    EXPECT_EQ(t->memory_bytes(), (1u << 16) * 16u);
    static_assert(AffinityTable::kEntryBytes <= 64);
}

TEST(Affinity, InsertLookupExpire) {
    auto t = make(1024);
    const uint64_t key = 0x123456789abcdef0ull;
    EXPECT_FALSE(t->lookup(key, 100).has_value());
    EXPECT_EQ(t->upsert(key, 77, 164, 100), Store::inserted);
    auto hit = t->lookup(key, 163);
    ASSERT_TRUE(hit.has_value());
    EXPECT_EQ(hit->backend_id, 77u);
    EXPECT_EQ(hit->expiry_s, 164u);
    EXPECT_FALSE(t->lookup(key, 164).has_value());                 // idle time elapsed
    EXPECT_FALSE(t->lookup(key ^ (1ull << 24), 120).has_value());  // other key, same bucket
    EXPECT_EQ(t->count_live(120), 1u);
    EXPECT_EQ(t->count_live(200), 0u);
}

TEST(Affinity, RefreshNeverShortensAndReplacesBackend) {
    auto t = make(1024);
    const uint64_t key = 42ull << 20;
    EXPECT_EQ(t->upsert(key, 1, 7200, 0), Store::inserted);       // dialog
    EXPECT_EQ(t->upsert(key, 1, 64 + 10, 10), Store::unchanged);  // in-dialog transaction
    EXPECT_EQ(t->lookup(key, 100)->expiry_s, 7200u);
    EXPECT_EQ(t->upsert(key, 1, 7300, 100), Store::refreshed);
    EXPECT_EQ(t->lookup(key, 100)->expiry_s, 7300u);
    EXPECT_EQ(t->upsert(key, 2, 200, 150), Store::refreshed);  // backend died: replaced, expiry kept
    EXPECT_EQ(t->lookup(key, 150)->backend_id, 2u);
    EXPECT_EQ(t->lookup(key, 150)->expiry_s, 7300u);
    // An expired entry is refreshed from scratch.
    EXPECT_EQ(t->upsert(key, 3, 8000 + 64, 8000), Store::refreshed);
    EXPECT_EQ(t->lookup(key, 8000)->expiry_s, 8064u);
    t->erase(key);
    EXPECT_FALSE(t->lookup(key, 8000).has_value());
    EXPECT_EQ(t->upsert(key, 3, 9000, 8000), Store::inserted);
}

TEST(Affinity, FullBucketEvictsExpiredThenSoonestExpiring) {
    auto t = make(4);  // a single bucket of four ways
    for (uint64_t i = 1; i <= 4; ++i) EXPECT_EQ(t->upsert(i << 24, uint32_t(i), uint32_t(100 * i), 0), Store::inserted);
    // At t=150 the first (expiry 100) is expired: reused without eviction.
    EXPECT_EQ(t->upsert(5ull << 24, 5, 1000, 150), Store::inserted);
    EXPECT_FALSE(t->lookup(1ull << 24, 150).has_value());
    // Everything live now; the soonest (key 2, expiry 200) goes.
    EXPECT_EQ(t->upsert(6ull << 24, 6, 1000, 160), Store::evicted);
    EXPECT_FALSE(t->lookup(2ull << 24, 160).has_value());
    for (uint64_t k : {3ull, 4ull, 5ull, 6ull}) EXPECT_TRUE(t->lookup(k << 24, 160).has_value()) << k;
    // A newcomer that would expire before every live entry is the one that
    // goes (a transaction in a bucket of dialogs): nothing is displaced.
    EXPECT_EQ(t->upsert(7ull << 24, 7, 170, 160), Store::evicted);
    EXPECT_FALSE(t->lookup(7ull << 24, 160).has_value());
    for (uint64_t k : {3ull, 4ull, 5ull, 6ull}) EXPECT_TRUE(t->lookup(k << 24, 160).has_value()) << k;
}

// The call's VIP is part of the entry: recorded, moved when the client
// moves, kept by writers that do not know it, and never mistaken for key bits.
TEST(Affinity, EntryRemembersTheVip) {
    auto t = make(1024);
    const uint64_t key = 0x0123456789abcdefull;
    EXPECT_EQ(t->upsert(key, 7, 7200, 0, 2), Store::inserted);
    EXPECT_EQ(t->lookup(key, 10)->vip, 2);
    EXPECT_EQ(t->upsert(key, 7, 7200, 0, 2), Store::unchanged);
    EXPECT_EQ(t->upsert(key, 7, 7200, 0, AffinityTable::kNoVip), Store::unchanged);  // unknown: kept
    EXPECT_EQ(t->lookup(key, 10)->vip, 2);
    EXPECT_EQ(t->upsert(key, 7, 7200, 0, 3), Store::refreshed);  // client moved to another VIP
    EXPECT_EQ(t->lookup(key, 10)->vip, 3);
    EXPECT_EQ(t->lookup(key, 10)->backend_id, 7u);
    EXPECT_EQ(t->upsert(key, 8, 7300, 100, AffinityTable::kNoVip), Store::refreshed);
    EXPECT_EQ(t->lookup(key, 100)->vip, 3);
    EXPECT_EQ(t->upsert(key, 8, 7300, 100, AffinityTable::kMaxVip), Store::refreshed);
    EXPECT_EQ(t->lookup(key, 100)->vip, AffinityTable::kMaxVip);
    // A new entry without a VIP has none; an erased one forgets it.
    EXPECT_EQ(t->upsert(key ^ (1ull << 40), 9, 7200, 0), Store::inserted);
    EXPECT_EQ(t->lookup(key ^ (1ull << 40), 10)->vip, AffinityTable::kNoVip);
    t->erase(key);
    EXPECT_EQ(t->upsert(key, 8, 7300, 100), Store::inserted);
    EXPECT_EQ(t->lookup(key, 100)->vip, AffinityTable::kNoVip);
}

// The VIP and the version take hash bits 0..23 out of the stored tag; the
// bucket index holds the low ones, so keys differing there are still apart.
TEST(Affinity, KeysApartByTagAndBucketBits) {
    auto t = make(1u << 18);  // 2^16 buckets: index bits 0..15
    const uint64_t key = 0x0123456789abcdefull;
    EXPECT_EQ(t->upsert(key, 7, 7200, 0, 5), Store::inserted);
    for (uint64_t bit = 0; bit < 16; ++bit) EXPECT_FALSE(t->lookup(key ^ (1ull << bit), 10).has_value()) << bit;
    for (uint64_t bit = 24; bit < 64; ++bit) EXPECT_FALSE(t->lookup(key ^ (1ull << bit), 10).has_value()) << bit;
    EXPECT_EQ(t->lookup(key, 10)->vip, 5);
}

TEST(Affinity, ZeroHashKeyWorks) {
    auto t = make(16);
    EXPECT_EQ(t->upsert(0, 9, 50, 0), Store::inserted);
    EXPECT_EQ(t->lookup(0, 1)->backend_id, 9u);
}

TEST(Affinity, ExpiryComparisonIsWrapSafe) {
    auto t = make(16);
    const uint32_t now = 0xFFFFFFF0u;
    EXPECT_EQ(t->upsert(1ull << 40, 4, now + 64, now), Store::inserted);  // wraps past 0
    EXPECT_TRUE(t->lookup(1ull << 40, now + 32).has_value());
    EXPECT_FALSE(t->lookup(1ull << 40, now + 64).has_value());
}

// Workers share the table: every key always maps to the same backend id and
// VIP (derived from the key), so any hit with another one is a torn read.
TEST(Affinity, ConcurrentWritersAndReadersNeverSeeTornEntries) {
    auto t = make(256);  // small, so threads collide on buckets and evict
    std::atomic<bool> bad{false};
    std::atomic<uint64_t> hits{0};
    auto id_for = [](uint64_t key) { return static_cast<uint32_t>(key * 0x9E3779B97F4A7C15ull >> 40); };
    std::vector<std::thread> threads;
    for (int w = 0; w < 4; ++w) {
        threads.emplace_back([&, w] {
            std::mt19937_64 rng(w);
            uint64_t local_hits = 0;
            for (uint32_t i = 0; i < 60000; ++i) {
                // Keys are hashes in real use: 2048 of them, well mixed.
                const uint64_t key = ((rng() % 2048) + 1) * 0xD6E8FEB86659FD93ull;
                const uint32_t now = i / 1000;
                if (auto hit = t->lookup(key, now)) {
                    ++local_hits;
                    if (hit->backend_id != id_for(key) || hit->vip != static_cast<uint8_t>(id_for(key) | 1)) bad = true;
                } else {
                    t->upsert(key, id_for(key), now + 5, now, static_cast<uint8_t>(id_for(key) | 1));
                }
            }
            hits += local_hits;
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_FALSE(bad.load());
    EXPECT_GT(hits.load(), 0u);
}

}  // namespace
}  // namespace siplb::balance
