#include <gtest/gtest.h>

#include "siplb/protect/rate_limiter.h"

namespace siplb::protect {
namespace {

constexpr uint64_t kSec = 1'000'000'000ull;

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

protect::RateLimitSpec cfg(double rate, double burst, double prate, double pburst, uint32_t size = 1024) {
    protect::RateLimitSpec c;
    c.enabled = true;
    c.requests_per_s = rate;
    c.burst = burst;
    c.prefix_requests_per_s = prate;
    c.prefix_burst = pburst;
    c.table_size = size;
    return c;
}

TEST(RateLimiter, BurstThenSteadyRate) {
    auto rl = RateLimiter::create(cfg(10, 5, 1000, 1000)).value();
    uint64_t t = 42 * kSec;
    int passed = 0;
    for (int i = 0; i < 20; ++i) passed += rl.admit(ip("203.0.113.7"), t).verdict == RateVerdict::pass;
    EXPECT_EQ(passed, 5);  // the burst, then nothing at the same instant
    EXPECT_EQ(rl.source_limited(), 15u);
    // 10/s: one every 100 ms.
    EXPECT_EQ(rl.admit(ip("203.0.113.7"), t + 99'000'000).verdict, RateVerdict::source_limited);
    EXPECT_EQ(rl.admit(ip("203.0.113.7"), t + 100'000'000).verdict, RateVerdict::pass);
    // Over 10 s of 100 requests/s only ~10/s pass.
    passed = 0;
    for (int i = 0; i < 1000; ++i)
        passed += rl.admit(ip("203.0.113.7"), t + kSec + i * 10'000'000ull).verdict == RateVerdict::pass;
    EXPECT_GE(passed, 100);
    EXPECT_LE(passed, 106);
}

TEST(RateLimiter, IdleSourceRefillsToBurstOnly) {
    auto rl = RateLimiter::create(cfg(1, 3, 1000, 1000)).value();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(rl.admit(ip("192.0.2.1"), kSec).verdict, RateVerdict::pass);
    EXPECT_EQ(rl.admit(ip("192.0.2.1"), kSec).verdict, RateVerdict::source_limited);
    uint64_t later = 1000 * kSec;  // long idle: bucket full, but never above burst
    int passed = 0;
    for (int i = 0; i < 10; ++i) passed += rl.admit(ip("192.0.2.1"), later).verdict == RateVerdict::pass;
    EXPECT_EQ(passed, 3);
}

TEST(RateLimiter, FloodingSourceDoesNotAffectOthers) {
    auto rl = RateLimiter::create(cfg(5, 10, 10000, 10000)).value();
    uint64_t t = kSec;
    int legit = 0;
    for (int ms = 0; ms < 10'000; ++ms) {  // 10 s: flood at 1000/s, two callers at 2/s
        uint64_t now = t + ms * 1'000'000ull;
        rl.admit(ip("198.51.100.66"), now).verdict;
        if (ms % 500 == 0) {
            legit += rl.admit(ip("198.51.100.10"), now).verdict == RateVerdict::pass;
            legit += rl.admit(ip("2001:db8::10"), now).verdict == RateVerdict::pass;
        }
    }
    EXPECT_EQ(legit, 40);
    EXPECT_GT(rl.source_limited(), 9000u);
}

TEST(RateLimiter, PrefixLimitCoversManySources) {
    auto rl = RateLimiter::create(cfg(100, 100, 10, 10)).value();
    int passed = 0;
    for (int i = 1; i < 60; ++i) {
        std::string a = "203.0.113." + std::to_string(i);
        passed += rl.admit(ip(a.c_str()), kSec).verdict == RateVerdict::pass;
    }
    EXPECT_EQ(passed, 10);
    EXPECT_EQ(rl.prefix_limited(), 49u);
    // Another /24 is unaffected.
    EXPECT_EQ(rl.admit(ip("203.0.114.1"), kSec).verdict, RateVerdict::pass);
    // IPv6 /64: different interface ids share a bucket, another /64 does not.
    for (int i = 1; i <= 10; ++i) {
        std::string a = "2001:db8:0:1::" + std::to_string(i);
        EXPECT_EQ(rl.admit(ip(a.c_str()), kSec).verdict, RateVerdict::pass);
    }
    EXPECT_EQ(rl.admit(ip("2001:db8:0:1::99"), kSec).verdict, RateVerdict::prefix_limited);
    EXPECT_EQ(rl.admit(ip("2001:db8:0:2::1"), kSec).verdict, RateVerdict::pass);
}

TEST(RateLimiter, SourceDropsDoNotChargePrefix) {
    auto rl = RateLimiter::create(cfg(1, 1, 2, 2)).value();
    for (int i = 0; i < 100; ++i) rl.admit(ip("192.0.2.1"), kSec).verdict;  // 1 passes, 99 source-limited
    EXPECT_EQ(rl.admit(ip("192.0.2.2"), kSec).verdict, RateVerdict::pass);  // prefix budget 2: one left
    EXPECT_EQ(rl.admit(ip("192.0.2.3"), kSec).verdict, RateVerdict::prefix_limited);
}

TEST(RateLimiter, BoundedTableEvictsStalest) {
    auto rl = RateLimiter::create(cfg(1, 1, 1e6, 1e6, 16)).value();
    // Far more sources than slots: the table never grows and never fails.
    for (int i = 0; i < 4096; ++i) {
        IpAddress a = IpAddress::from_v4_be(0x0a000000u + static_cast<uint32_t>(i) * 256u);  // distinct /24s
        EXPECT_EQ(rl.admit(a, kSec + static_cast<uint64_t>(i)).verdict, RateVerdict::pass);
    }
    EXPECT_GT(rl.evictions(), 0u);
    EXPECT_EQ(rl.capacity(), 16u);
    // A source whose bucket has refilled is as good as absent: no eviction counted for it.
    uint64_t ev = rl.evictions();
    auto fresh = RateLimiter::create(cfg(1, 1, 1e6, 1e6, 16)).value();
    for (int i = 0; i < 100; ++i)
        EXPECT_EQ(fresh.admit(IpAddress::from_v4_be(0x0b000000u + static_cast<uint32_t>(i) * 256u), (i + 1) * 2 * kSec)
                      .verdict,
                  RateVerdict::pass);
    EXPECT_EQ(fresh.evictions(), 0u);
    EXPECT_EQ(rl.evictions(), ev);
}

TEST(RateLimiter, RejectsBadConfig) {
    EXPECT_FALSE(RateLimiter::create(cfg(0, 1, 1, 1)).ok());
    EXPECT_FALSE(RateLimiter::create(cfg(1, 0.5, 1, 1)).ok());
    EXPECT_FALSE(RateLimiter::create(cfg(1, 1, 1, 1, 1000)).ok());
    EXPECT_FALSE(RateLimiter::create(cfg(1, 1, -1, 1)).ok());
}

TEST(RateLimiter, PrefetchChangesNothing) {
    // Two limiters with the same seed see the same requests (many sources
    // in a tiny table: windows wrap, buckets get evicted, some are limited);
    // one is prefetched before every request, the other never.
    auto a = RateLimiter::create(cfg(20, 3, 50, 10, 16), 7).value();
    auto b = RateLimiter::create(cfg(20, 3, 50, 10, 16), 7).value();
    uint64_t t = 5 * kSec, reported = 0;
    for (int i = 0; i < 5000; ++i) {
        t += 1'000'000ull * (i % 7);
        const std::string addr = i % 3 ? "203.0.113." + std::to_string(i % 61)
                                       : "2001:db8:" + std::to_string(i % 5) + "::" + std::to_string(i % 13);
        const IpAddress src = ip(addr.c_str());
        const RateLimiter::Probe probe = a.locate(src);
        a.prefetch(probe);
        const Admission x = a.admit(probe, t), y = b.admit(src, t);
        ASSERT_EQ(x.verdict, y.verdict) << i;
        ASSERT_EQ(x.evictions, y.evictions) << i;
        reported += x.evictions;
    }
    // Each admission reports the evictions it caused, and they add up.
    EXPECT_GT(reported, 0u);
    EXPECT_EQ(reported, a.evictions());
    EXPECT_EQ(a.passed(), b.passed());
    EXPECT_EQ(a.source_limited(), b.source_limited());
    EXPECT_EQ(a.prefix_limited(), b.prefix_limited());
    EXPECT_EQ(a.evictions(), b.evictions());
    EXPECT_GT(a.source_limited() + a.prefix_limited(), 0u);
    EXPECT_GT(a.evictions(), 0u);
}

}  // namespace
}  // namespace siplb::protect
