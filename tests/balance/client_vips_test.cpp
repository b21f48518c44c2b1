#include "siplb/balance/client_vips.h"

#include <gtest/gtest.h>

namespace siplb::balance {
namespace {

using Store = AffinityTable::Store;

std::shared_ptr<const PoolSnapshot> pool(const std::string& name) {
    PoolSpec spec;
    spec.name = name;
    spec.listen = {*Endpoint::parse("198.51.100.10:5060"), *Endpoint::parse("198.51.100.11:5060")};
    spec.backends = {{*Endpoint::parse("203.0.113.11:5060")}};
    spec.table_size = 7;
    return PoolSnapshot::build(spec, 1).value();
}

TEST(ClientVips, RecordsTheLastVipAndWritesAtMostOnceASecond) {
    auto t = std::move(ClientVipTable::create(1024).value());
    auto lund = pool("lund");
    const uint64_t client = 0x0123456789abcdefull;
    EXPECT_EQ(t->lookup(*lund, client, 10), AffinityTable::kNoVip);
    EXPECT_EQ(t->record(*lund, client, 2, 10), Store::inserted);
    EXPECT_EQ(t->lookup(*lund, client, 10), 2);
    // Every keepalive and request of the same second: read only.
    for (int i = 0; i < 5; ++i) EXPECT_EQ(t->record(*lund, client, 2, 10), Store::unchanged);
    EXPECT_EQ(t->record(*lund, client, 2, 11), Store::refreshed);  // the next second pushes the expiry
    EXPECT_EQ(t->record(*lund, client, 1, 11), Store::refreshed);  // moved to VIP1 within the second
    EXPECT_EQ(t->lookup(*lund, client, 11), 1);
    EXPECT_EQ(t->record(*lund, client, AffinityTable::kNoVip, 12), Store::unchanged);  // nothing to record
    EXPECT_EQ(t->lookup(*lund, client, 12), 1);
    // Idle for kIdleS after the last write: forgotten.
    EXPECT_EQ(t->lookup(*lund, client, 11 + ClientVipTable::kIdleS - 1), 1);
    EXPECT_EQ(t->lookup(*lund, client, 11 + ClientVipTable::kIdleS), AffinityTable::kNoVip);
    EXPECT_EQ(t->count_live(12), 1u);
    EXPECT_EQ(t->capacity(), 1024u);
}

TEST(ClientVips, PoolsKeepTheirOwnEntriesAndFullBucketsEvict) {
    auto t = std::move(ClientVipTable::create(16).value());
    auto lund = pool("lund"), trunk = pool("trunk");
    const uint64_t client = 0x0123456789abcdefull;
    EXPECT_EQ(t->record(*lund, client, 2, 10), Store::inserted);
    EXPECT_EQ(t->lookup(*trunk, client, 10), AffinityTable::kNoVip);
    EXPECT_EQ(t->record(*trunk, client, 1, 10), Store::inserted);
    EXPECT_EQ(t->lookup(*lund, client, 10), 2);
    EXPECT_EQ(t->lookup(*trunk, client, 10), 1);
    // Sixteen entries in four buckets: more clients than that evict live ones.
    bool evicted = false;
    for (uint64_t c = 1; c < 200; ++c) evicted |= t->record(*lund, c * 0x9E3779B97F4A7C15ull, 1, 10) == Store::evicted;
    EXPECT_TRUE(evicted);
    EXPECT_FALSE(ClientVipTable::create(1000).ok());
}

}  // namespace
}  // namespace siplb::balance
