// Workers share one ProtectSnapshot (Hyperscan databases are read-only),
// each with its own WorkerGuard; a control thread reads their rate
// limiters' counters while they run. Run under TSan by scripts/tsan.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "siplb/protect/guard.h"
#include "test_util.h"

namespace siplb::protect {
namespace {

// Requests pool 0's limiter decided on, read from another thread.
uint64_t admitted_by(const WorkerGuard& g) {
    const RateLimiter& rl = *g.pool(0)->limiter;
    return rl.passed() + rl.source_limited() + rl.prefix_limited();
}

TEST(ProtectConcurrency, WorkersShareRulesAndControlReadsCounters) {
    std::vector<protect::PoolProtectionSpec> pools(1);
    pools[0].name = "p";
    pools[0].rules = {test::rule("ua", "user_agent", "scanner"), test::rule("m", "method", "^OPTIONS$")};
    pools[0].rate_limit.enabled = true;
    pools[0].rate_limit.requests_per_s = 100;
    pools[0].rate_limit.burst = 100;
    pools[0].rate_limit.table_size = 1024;
    auto snap = ProtectSnapshot::build(pools).value();
    constexpr int kWorkers = 3, kIters = 20000;
    std::vector<std::unique_ptr<WorkerGuard>> guards;
    for (int i = 0; i < kWorkers; ++i) guards.push_back(WorkerGuard::create(snap, i).value());

    const std::string scan = test::request("REGISTER", "sip:x", "scanner");
    const std::string reg = test::request("REGISTER", "sip:x", "phone");
    const sip::SipMessage ms = sip::SipParser::parse(scan), mr = sip::SipParser::parse(reg);
    std::atomic<bool> done{false};
    std::vector<uint64_t> hits(kWorkers, 0);  // each worker's decisions for rule 0
    std::vector<std::thread> workers;
    for (int w = 0; w < kWorkers; ++w)
        workers.emplace_back([&, w] {
            IpAddress src = IpAddress::from_v4_be(0x0100000au + static_cast<uint32_t>(w));
            for (int i = 0; i < kIters; ++i) {
                const std::string& m = i % 2 ? scan : reg;
                const GuardDecision d = guards[w]->check(0, reinterpret_cast<const uint8_t*>(m.data()), m.size(),
                                                         i % 2 ? ms : mr, src, uint64_t(i) * 1'000'000ull);
                hits[w] += d.rule == 0;
            }
        });
    std::thread control([&] {
        uint64_t last = 0;
        while (!done.load(std::memory_order_acquire)) {
            uint64_t now = 0;
            for (auto& g : guards) now += admitted_by(*g);
            EXPECT_GE(now, last);  // per-worker counters only grow
            last = now;
        }
    });
    for (auto& t : workers) t.join();
    done.store(true, std::memory_order_release);
    control.join();
    uint64_t total = 0;
    for (uint64_t h : hits) total += h;
    EXPECT_EQ(total, uint64_t(kWorkers) * kIters / 2);
    uint64_t admitted = 0;  // the REGISTERs the rules let through reached the limiter
    for (auto& g : guards) admitted += admitted_by(*g);
    EXPECT_EQ(admitted, uint64_t(kWorkers) * kIters / 2);
}

}  // namespace
}  // namespace siplb::protect
