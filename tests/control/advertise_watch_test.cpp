#include "siplb/control/advertise_watch.h"

#include <gtest/gtest.h>

namespace siplb::control {
namespace {

using namespace std::chrono_literals;

dataplane::DataplaneStats stats_with(uint64_t lund_b1, uint64_t lund_b2) {
    dataplane::DataplaneStats s;
    const int i = dataplane::counter_index(dataplane::CounterScope::backend, "vip", "backend_advertises_itself");
    EXPECT_GE(i, 0);
    for (auto [address, count] : {std::pair{"203.0.113.11:5060", lund_b1}, std::pair{"203.0.113.12:5060", lund_b2}}) {
        dataplane::DataplaneStats::Backend b;
        b.pool = "lund";
        b.address = *Endpoint::parse(address);
        b.values[static_cast<size_t>(i)] = count;
        s.backends.push_back(b);
    }
    return s;
}

TEST(AdvertiseWatch, WarnsWhenTheCountMovesAtMostOncePerInterval) {
    AdvertiseWatch w(60s);
    const auto t0 = AdvertiseWatch::Clock::time_point{} + 1h;
    EXPECT_TRUE(w.observe(stats_with(0, 0), t0).empty());
    auto warn = w.observe(stats_with(3, 0), t0 + 1s);
    ASSERT_EQ(warn.size(), 1u);
    EXPECT_EQ(warn[0].pool, "lund");
    EXPECT_EQ(warn[0].backend.to_string(), "203.0.113.11:5060");
    EXPECT_EQ(warn[0].since_last, 3u);
    EXPECT_EQ(warn[0].total, 3u);
    // Still moving, but within the minute: quiet. The other backend is its own.
    EXPECT_TRUE(w.observe(stats_with(9, 0), t0 + 30s).empty());
    warn = w.observe(stats_with(9, 1), t0 + 31s);
    ASSERT_EQ(warn.size(), 1u);
    EXPECT_EQ(warn[0].backend.to_string(), "203.0.113.12:5060");
    // A minute on: what came since the last warning.
    warn = w.observe(stats_with(12, 1), t0 + 61s);
    ASSERT_EQ(warn.size(), 1u);
    EXPECT_EQ(warn[0].since_last, 9u);
    EXPECT_EQ(warn[0].total, 12u);
    // Fixed backend (count stands still): never again.
    EXPECT_TRUE(w.observe(stats_with(12, 1), t0 + 10min).empty());
}

}  // namespace
}  // namespace siplb::control
