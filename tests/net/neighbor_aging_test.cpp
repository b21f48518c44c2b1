// Neighbor aging with injected time: learned entries go reachable -> stale
// -> expired (missed, then freed by expire()), confirmations restart the
// clock, static entries never age, freed slots are reused without breaking
// the probe chains of other keys.
#include <gtest/gtest.h>

#include "siplb/net/neighbor_table.h"

using namespace siplb;
using namespace siplb::net;
using State = NeighborTable::State;

namespace {
IpAddress ip(const char* s) { return *IpAddress::parse(s); }
MacAddress mac(uint8_t last) { return MacAddress{{0x02, 0, 0, 0, 0, last}}; }
constexpr uint64_t kReach = 300'000;  // the default neighbor_reachable_s
constexpr uint64_t kT0 = 5'000'000;   // an arbitrary monotonic start
}  // namespace

TEST(NeighborAging, ReachableThenStaleThenExpired) {
    NeighborTable t(64, kReach);
    ASSERT_EQ(t.learn(ip("192.0.2.1"), mac(1), 0, false, kT0), NeighborTable::Learn::inserted);
    auto e = t.lookup(ip("192.0.2.1"), kT0 + kReach - 1);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->state, State::reachable);
    e = t.lookup(ip("192.0.2.1"), kT0 + kReach);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->state, State::stale);  // still used
    EXPECT_EQ(e->mac, mac(1));
    e = t.lookup(ip("192.0.2.1"), kT0 + 4 * kReach - 1);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->state, State::stale);
    EXPECT_FALSE(t.lookup(ip("192.0.2.1"), kT0 + 4 * kReach));  // expired: missed before any sweep
    EXPECT_EQ(t.expire(kT0 + 4 * kReach - 1), 0u);
    EXPECT_EQ(t.size(), 1u);
    EXPECT_EQ(t.expire(kT0 + 4 * kReach), 1u);
    EXPECT_EQ(t.size(), 0u);
    EXPECT_FALSE(t.lookup(ip("192.0.2.1"), kT0 + 4 * kReach));
    EXPECT_EQ(t.expire(kT0 + 5 * kReach), 0u);
}

TEST(NeighborAging, ConfirmationRestartsTheClock) {
    NeighborTable t(64, kReach);
    t.learn(ip("2001:db8::5"), mac(5), 1, false, kT0);
    const uint64_t later = kT0 + 2 * kReach;
    ASSERT_EQ(t.lookup(ip("2001:db8::5"), later)->state, State::stale);
    // Seen again unchanged (ARP/NA reply or a frame from it): reachable again.
    EXPECT_EQ(t.learn(ip("2001:db8::5"), mac(5), 1, false, later), NeighborTable::Learn::unchanged);
    EXPECT_EQ(t.lookup(ip("2001:db8::5"), later + kReach - 1)->state, State::reachable);
    EXPECT_EQ(t.expire(kT0 + 4 * kReach), 0u);
    // A moved MAC is an update and confirms too.
    EXPECT_EQ(t.learn(ip("2001:db8::5"), mac(6), 1, false, later + kReach), NeighborTable::Learn::updated);
    auto e = t.lookup(ip("2001:db8::5"), later + 2 * kReach - 1);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->state, State::reachable);
    EXPECT_EQ(e->mac, mac(6));
}

TEST(NeighborAging, ConfirmationsAreWrittenAtMostOncePerGranule) {
    NeighborTable t(64, 10'000);
    t.learn(ip("192.0.2.7"), mac(7), 0, false, kT0);
    // Within the granule the timestamp stays (gleaning runs per frame).
    t.learn(ip("192.0.2.7"), mac(7), 0, false, kT0 + NeighborTable::kConfirmGranularityMs - 1);
    EXPECT_EQ(t.lookup(ip("192.0.2.7"), kT0 + 10'000)->state, State::stale);
    t.learn(ip("192.0.2.7"), mac(7), 0, false, kT0 + NeighborTable::kConfirmGranularityMs);
    EXPECT_EQ(t.lookup(ip("192.0.2.7"), kT0 + 10'000)->state, State::reachable);
}

TEST(NeighborAging, StaticEntriesNeverAge) {
    NeighborTable t(64, kReach);
    t.learn(ip("192.0.2.9"), mac(9), 0, true);
    auto e = t.lookup(ip("192.0.2.9"), kT0 + 100 * kReach);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->state, State::permanent);
    EXPECT_EQ(t.expire(kT0 + 100 * kReach), 0u);
    EXPECT_TRUE(t.lookup(ip("192.0.2.9"), kT0 + 100 * kReach));
}

TEST(NeighborAging, AgingOffKeepsLearnedEntries) {
    NeighborTable t(64);
    t.learn(ip("192.0.2.3"), mac(3), 0, false, kT0);
    EXPECT_EQ(t.lookup(ip("192.0.2.3"), kT0 + 1000 * kReach)->state, State::reachable);
    EXPECT_EQ(t.expire(kT0 + 1000 * kReach), 0u);
}

TEST(NeighborAging, FreedSlotsAreReusedAndChainsStayIntact) {
    // A 16-slot table filled by learned keys; some expire, new keys take
    // their slots, and every surviving key is still found past the freed ones.
    NeighborTable t(16, kReach);
    std::vector<IpAddress> old_keys, kept;
    uint32_t i = 0;
    while (t.size() < 16 && i < 1000) {
        IpAddress a = IpAddress::from_v4_be(0x000200C0u | (++i << 24));  // 192.0.2.i
        if (t.learn(a, mac(static_cast<uint8_t>(i)), 0, false, kT0) == NeighborTable::Learn::inserted)
            old_keys.push_back(a);
    }
    ASSERT_EQ(t.size(), 16u);
    const IpAddress extra = *IpAddress::parse("198.51.100.1");
    EXPECT_EQ(t.learn(extra, mac(200), 0, false, kT0), NeighborTable::Learn::full);
    // Keep every other key confirmed; the rest expire.
    const uint64_t t1 = kT0 + 3 * kReach;
    for (size_t k = 0; k < old_keys.size(); k += 2) {
        t.learn(old_keys[k], mac(static_cast<uint8_t>(k + 1)), 0, false, t1);
        kept.push_back(old_keys[k]);
    }
    const uint64_t t2 = kT0 + 4 * kReach;
    EXPECT_EQ(t.expire(t2), old_keys.size() - kept.size());
    EXPECT_EQ(t.size(), kept.size());
    for (const auto& a : kept) EXPECT_TRUE(t.lookup(a, t2)) << a.to_string();
    EXPECT_EQ(t.learn(extra, mac(200), 0, false, t2), NeighborTable::Learn::inserted);
    EXPECT_EQ(t.lookup(extra, t2)->mac, mac(200));
    for (const auto& a : kept) EXPECT_TRUE(t.lookup(a, t2)) << a.to_string();
    EXPECT_EQ(t.size(), kept.size() + 1);
    // Re-learning an expired key puts it back once, not twice.
    EXPECT_EQ(t.learn(old_keys[1], mac(2), 0, false, t2), NeighborTable::Learn::inserted);
    EXPECT_EQ(t.learn(old_keys[1], mac(2), 0, false, t2), NeighborTable::Learn::unchanged);
    EXPECT_EQ(t.size(), kept.size() + 2);
}
