#include "siplb/balance/table_size.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdio>

#include "siplb/balance/hash.h"
#include "siplb/balance/maglev.h"
#include "siplb/balance/snapshot.h"
#include "test_keys.h"

namespace siplb::balance {
namespace {

using testing::backend_endpoint;
using testing::backend_identity;
using testing::million_call_hashes;

TEST(TableSizeLadder, RungsAreTheSmallestPrimesAtOrAboveSuccessivePowersOfTwo) {
    for (size_t i = 0; i < kTableSizeLadder.size(); ++i) {
        const uint32_t power = 1u << (16 + i);
        const uint32_t rung = kTableSizeLadder[i];
        EXPECT_TRUE(is_prime(rung)) << rung;
        EXPECT_GE(rung, power);
        for (uint32_t n = power; n < rung; ++n) EXPECT_FALSE(is_prime(n)) << n << " is a smaller prime rung";
    }
    EXPECT_LE(kMaxAutoTableSize, MaglevTable::kMaxSize);
}

TEST(TableSize, PrimeAndAtLeastKSlotsPerBackendUpToTheCap) {
    for (size_t n = 0; n <= MaglevTable::kMaxBackends; ++n) {
        const uint32_t m = maglev_table_size(n);
        ASSERT_TRUE(is_prime(m)) << n;
        ASSERT_GT(m, n);
        ASSERT_GE(m, kMinAutoTableSize);
        ASSERT_LE(m, kMaxAutoTableSize);
        if (static_cast<uint64_t>(n) * kSlotsPerBackend <= kMaxAutoTableSize)
            ASSERT_GE(m, n * kSlotsPerBackend) << n;
        else
            ASSERT_EQ(m, kMaxAutoTableSize) << n;
    }
}

TEST(TableSize, ChangesOnlyWhenTheCountPassesAPowerOfTwo) {
    // The figures the docs quote (deploy/README.md).
    EXPECT_EQ(maglev_table_size(1), 65537u);
    EXPECT_EQ(maglev_table_size(16), 65537u);
    EXPECT_EQ(maglev_table_size(17), 131101u);
    EXPECT_EQ(maglev_table_size(100), 524309u);
    EXPECT_EQ(maglev_table_size(128), 524309u);
    EXPECT_EQ(maglev_table_size(129), 1048583u);
    EXPECT_EQ(maglev_table_size(1000), 4194319u);
    EXPECT_EQ(maglev_table_size(1024), 4194319u);
    EXPECT_EQ(maglev_table_size(65535), 4194319u);
    std::vector<size_t> steps;
    for (size_t n = 1; n <= 4096; ++n)
        if (maglev_table_size(n) != maglev_table_size(n - 1)) steps.push_back(n);
    EXPECT_EQ(steps, (std::vector<size_t>{17, 33, 65, 129, 257, 513}));
}

TEST(TableSize, ExplicitSizeWins) {
    EXPECT_EQ(effective_table_size(251, 10), 251u);
    EXPECT_EQ(effective_table_size(kAutoTableSize, 10), 65537u);
}

PoolSpec pool_of(uint32_t n) {
    PoolSpec spec;
    spec.name = "lund";
    for (uint32_t i = 0; i < n; ++i) spec.backends.push_back({backend_endpoint(i), 1});
    return spec;
}

TEST(TableSize, PoolSnapshotSizesByEveryBackendOfTheSpecWhateverItsState) {
    auto spec = pool_of(128);
    auto all_up = PoolSnapshot::build(spec, 1);
    ASSERT_TRUE(all_up.ok()) << all_up.message();
    EXPECT_EQ((*all_up)->table().size(), 524309u);
    // Health, drains, operator disables and weight 0 take backends out of
    // the table but must not resize it (a resize moves nearly every key).
    const BackendState states[] = {BackendState::down, BackendState::disabled, BackendState::draining,
                                   BackendState::overloaded};
    for (size_t i = 0; i < 100; ++i) {
        if (i % 5 == 4)
            spec.backends[i].weight = 0;
        else
            spec.backends[i].state = states[i % 5];
    }
    auto most_out = PoolSnapshot::build(spec, 2);
    ASSERT_TRUE(most_out.ok()) << most_out.message();
    EXPECT_EQ((*most_out)->table().size(), 524309u);
    EXPECT_EQ((*most_out)->usable_backends(), 28u);

    spec.backends.push_back({backend_endpoint(1000), 1});  // a 129th, discovered or configured
    auto grown = PoolSnapshot::build(spec, 3);
    ASSERT_TRUE(grown.ok()) << grown.message();
    EXPECT_EQ((*grown)->table().size(), 1048583u);

    spec.table_size = 65537;
    auto fixed = PoolSnapshot::build(spec, 4);
    ASSERT_TRUE(fixed.ok()) << fixed.message();
    EXPECT_EQ((*fixed)->table().size(), 65537u);
}

// --- disruption at the derived size ------------------------------------------

std::vector<std::string> identities(uint32_t n, uint32_t extra = UINT32_MAX) {
    std::vector<std::string> v;
    for (uint32_t i = 0; i < n; ++i) v.push_back(backend_identity(i));
    if (extra != UINT32_MAX) v.push_back(backend_identity(extra));
    return v;
}

// Owner identity of each of the million test keys, in a table at the derived
// size for these backends (index into the sorted identities).
struct Owners {
    std::vector<std::string> sorted;
    std::vector<uint16_t> of_key;
    uint32_t size = 0;
};
Owners owners(const std::vector<std::string>& ids) {
    std::vector<MaglevBackend> b;
    for (const auto& id : ids) b.push_back({id, 1});
    Owners o;
    o.size = maglev_table_size(ids.size());
    auto t = MaglevTable::build(b, o.size, kDefaultSeed);
    EXPECT_TRUE(t.ok()) << t.message();
    o.sorted = ids;
    std::sort(o.sorted.begin(), o.sorted.end());
    const auto& keys = million_call_hashes();
    o.of_key.resize(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) o.of_key[i] = t->lookup(keys[i]);
    return o;
}

TEST(TableSizeDisruption, AddingOneTo100MovesAtMost1_2OverN) {
    const Owners before = owners(identities(100));
    const Owners after = owners(identities(100, 500));
    ASSERT_EQ(before.size, after.size);
    size_t moved = 0, to_new = 0;
    for (size_t i = 0; i < before.of_key.size(); ++i) {
        const std::string& a = before.sorted[before.of_key[i]];
        const std::string& b = after.sorted[after.of_key[i]];
        moved += a != b;
        to_new += b == backend_identity(500);
    }
    const double moved_times_n = moved / 1e6 * 100;
    std::printf("100 -> 101 backends at M=%u: %.3f/N moved (ideal 0.99/N), %.3f/N to the new backend\n", before.size,
                moved_times_n, to_new / 1e6 * 100);
    EXPECT_LE(moved_times_n, 1.2);
    EXPECT_GE(to_new / 1e6, 0.95 / 101);
}

TEST(TableSizeDisruption, RemovingOneOf100MovesAtMost0_3PercentOfTheOthersKeys) {
    const Owners before = owners(identities(100));
    auto fewer_ids = identities(100);
    const std::string removed = fewer_ids[42];
    fewer_ids.erase(fewer_ids.begin() + 42);
    const Owners after = owners(fewer_ids);
    ASSERT_EQ(before.size, after.size);
    size_t others = 0, others_moved = 0;
    for (size_t i = 0; i < before.of_key.size(); ++i) {
        const std::string& a = before.sorted[before.of_key[i]];
        const std::string& b = after.sorted[after.of_key[i]];
        ASSERT_NE(b, removed);
        if (a == removed) continue;
        ++others;
        others_moved += a != b;
    }
    const double pct = 100.0 * others_moved / others;
    std::printf("removal of one of 100 at M=%u: %.3f%% of the other backends' keys moved\n", before.size, pct);
    EXPECT_LE(pct, 0.3);
}

// What crossing a rung costs: the new size is a new table, and nearly every
// key moves (dialog affinity keeps calls in progress where they are). Both
// cluster nodes cross it together because the size depends only on the
// backend list.
TEST(TableSizeDisruption, CrossingARungMovesNearlyEveryKey) {
    const Owners before = owners(identities(128));
    const Owners after = owners(identities(128, 500));
    ASSERT_NE(before.size, after.size);
    size_t moved = 0;
    for (size_t i = 0; i < before.of_key.size(); ++i)
        moved += before.sorted[before.of_key[i]] != after.sorted[after.of_key[i]];
    std::printf("128 -> 129 backends, M %u -> %u: %.2f%% of keys moved\n", before.size, after.size, moved / 1e4);
    EXPECT_GE(moved / 1e6, 0.95);
}

}  // namespace
}  // namespace siplb::balance
