// siplbctl top's frame from two `stats` results, `backends` and `status`.
// stats and backends come from the daemon's own CommandHandler, so the
// frame is tested against the JSON the daemon really sends.
#include "top_frame.h"
#include "text_columns.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "siplb/control/commands.h"
#include "siplb/control/log.h"

namespace siplb::cli {
namespace {

using json = nlohmann::json;
using control::CommandKind;
using dataplane::CounterScope;

template <CounterScope S>
void set(dataplane::CounterValues<S>& e, const char* group, const char* name, uint64_t v) {
    const int i = dataplane::counter_index(S, group, name);
    ASSERT_GE(i, 0) << group << "." << name;
    e.values[static_cast<size_t>(i)] = v;
}

// Counters after t seconds of steady traffic: lund gets 1000 msgs/s in,
// 800/s out, 10 calls/s, split 3:1 over .11 and .12; worker 0 is 25% busy,
// worker 1 idle; 40 no_backend, 4 sip_no_call_id, 2 rate_limited, 1 tx_full drops/s.
control::StatsSnapshot traffic_after(uint64_t t) {
    control::StatsSnapshot s;
    for (unsigned w = 0; w < 2; ++w) {
        dataplane::DataplaneStats::Worker wk;
        wk.index = w;
        wk.lcore = w + 1;
        set(wk, "poll", "polls", 1'000'000 * t);
        set(wk, "poll", "busy_polls", w == 0 ? 250'000 * t : 0);
        set(wk, "traffic", "rx_packets", 900 * t);
        set(wk, "traffic", "tx_packets", 900 * t);
        if (w == 0) {
            set(wk, "drops", "no_backend", 40 * t);
            set(wk, "drops", "sip_no_call_id", 4 * t);
            set(wk, "drops", "rate_limited", 2 * t);
            set(wk, "drops", "tx_full", 1 * t);
            set(wk, "drops", "short", 1 * t);
        }
        s.dataplane.workers.push_back(wk);
    }
    dataplane::DataplaneStats::Pool lund;
    lund.name = "lund";
    set(lund, "traffic", "packets_in", 1000 * t);
    set(lund, "traffic", "packets_out", 800 * t);
    set(lund, "traffic", "calls", 10 * t);
    s.dataplane.pools.push_back(lund);
    dataplane::DataplaneStats::Pool malmo;
    malmo.name = "malmo";
    s.dataplane.pools.push_back(malmo);
    const std::pair<const char*, uint64_t> split[] = {{"198.51.100.11:5060", 3}, {"198.51.100.12:5060", 1}};
    for (const auto& [addr, share] : split) {
        dataplane::DataplaneStats::Backend b;
        b.pool = "lund";
        b.address = *Endpoint::parse(addr);
        set(b, "traffic", "packets_to", 250 * share * t);
        set(b, "traffic", "packets_from", 200 * share * t);
        set(b, "traffic", "calls", 10 * share * t / 4);
        s.dataplane.backends.push_back(b);
    }
    return s;
}

class TopFrame : public ::testing::Test {
protected:
    void SetUp() override {
        control::set_log_level(control::LogLevel::error);
        config::PoolConfig lund;
        lund.name = "lund";
        for (const char* a : {"198.51.100.11:5060", "198.51.100.12:5060", "198.51.100.13:5060"})
            lund.backends.push_back({*Endpoint::parse(a), 1, true});
        config::PoolConfig malmo;
        malmo.name = "malmo";
        malmo.backends.push_back({*Endpoint::parse("198.51.100.21:5060"), 1, true});
        cfg_.pools = {lund, malmo};
        pools_ = std::make_unique<control::PoolManager>(cfg_);
        control::ControlHooks hooks;
        hooks.stats = [this] { return stats_; };
        handler_ = std::make_unique<control::CommandHandler>(*pools_, std::move(hooks));
    }
    json ask(CommandKind kind) {
        control::Request r;
        r.cmd = kind;
        auto res = handler_->execute(r, control::Actor{"test"});
        EXPECT_TRUE(res) << res.message();
        return res ? *res : json();
    }
    // Two stats polls `elapsed` seconds apart, after `t0` seconds of traffic.
    TopInput input(uint64_t t0, uint64_t elapsed) {
        TopInput in;
        stats_ = traffic_after(t0);
        in.prev = ask(CommandKind::stats);
        stats_ = traffic_after(t0 + elapsed);
        in.cur = ask(CommandKind::stats);
        in.backends = ask(CommandKind::backends);
        in.elapsed_s = static_cast<double>(elapsed);
        in.status = {{"version", "0.1.0"},
                     {"pid", 4242},
                     {"uptime_s", 3725},
                     {"dataplane", "running"},
                     {"workers", 2},
                     {"snapshot_version", 7},
                     {"worker_status", json::array({{{"worker", 0}, {"loops", 5}, {"stalled", false}},
                                                    {{"worker", 1}, {"loops", 9}, {"stalled", false}}})}};
        return in;
    }
    static const std::string* line_starting(const std::vector<std::string>& lines, const std::string& prefix) {
        for (const auto& l : lines)
            if (l.rfind(prefix, 0) == 0) return &l;
        return nullptr;
    }
    static std::vector<std::string> words(const std::string& line) { return test::words(line); }

    config::Config cfg_;
    std::unique_ptr<control::PoolManager> pools_;
    std::unique_ptr<control::CommandHandler> handler_;
    control::StatsSnapshot stats_;
};

TEST_F(TopFrame, RatesAreDeltasOverElapsedSeconds) {
    ASSERT_TRUE(pools_->drain("lund", *Endpoint::parse("198.51.100.13:5060"), control::Actor{"test"}));
    const auto lines = top_frame(input(100, 2), 80);
    for (const auto& l : lines) EXPECT_LE(l.size(), 80u) << l;
    EXPECT_EQ(lines[0], "siplb 0.1.0  pid 4242  up 1h02m  running, 2 workers, snapshot 7  (2.0s)");
    EXPECT_EQ(lines[1], "total    rx 1.80k/s  tx 1.80k/s  calls 10.0/s  drops 48.0/s");
    // The four largest drop reasons, largest first, then how many more.
    EXPECT_EQ(lines[2], "drops/s  no_backend 40.0 sip_no_call_id 4.0 rate_limited 2.0 short 1.0 +1 more");
    EXPECT_EQ(lines[3], "busy     w0 25% w1 0%");
    const std::string* pool = line_starting(lines, "lund ");
    ASSERT_NE(pool, nullptr);
    EXPECT_EQ(words(*pool), (std::vector<std::string>{"lund", "2/3", "up", "1.00k", "800", "10.0"}));
    const std::string* b11 = line_starting(lines, "  198.51.100.11:5060 ");
    ASSERT_NE(b11, nullptr);
    EXPECT_EQ(words(*b11), (std::vector<std::string>{"198.51.100.11:5060", "active", "750", "600", "7.5", "up"}));
    const std::string* b12 = line_starting(lines, "  198.51.100.12:5060 ");
    ASSERT_NE(b12, nullptr);
    EXPECT_EQ(words(*b12), (std::vector<std::string>{"198.51.100.12:5060", "active", "250", "200", "2.5", "up"}));
    // Drained and not in the workers' stats: no rates, its state shown.
    const std::string* b13 = line_starting(lines, "  198.51.100.13:5060 ");
    ASSERT_NE(b13, nullptr);
    EXPECT_EQ(words(*b13), (std::vector<std::string>{"198.51.100.13:5060", "draining", "-", "-", "-", "up"}));
    const std::string* malmo = line_starting(lines, "malmo ");
    ASSERT_NE(malmo, nullptr);
    EXPECT_EQ(words(*malmo), (std::vector<std::string>{"malmo", "1/1", "up", "0.0", "0.0", "0.0"}));
    // Pools in the snapshot's order, each followed by its backends.
    EXPECT_LT(pool, b11);
    EXPECT_LT(b13, malmo);
}

TEST_F(TopFrame, FirstFrameAndRestartHaveNoRates) {
    TopInput in = input(100, 1);
    in.prev = json();
    auto lines = top_frame(in, 80);
    EXPECT_EQ(lines[1], "total    rx -/s  tx -/s  calls -/s  drops -/s");
    EXPECT_EQ(lines[2], "drops/s  -");
    EXPECT_EQ(words(*line_starting(lines, "lund ")), (std::vector<std::string>{"lund", "3/3", "up", "-", "-", "-"}));
    // Counters below the previous poll's (the daemon restarted): no rate, not a huge one.
    in = input(100, 1);
    std::swap(in.prev, in.cur);
    lines = top_frame(in, 80);
    EXPECT_EQ(words(*line_starting(lines, "lund ")), (std::vector<std::string>{"lund", "3/3", "up", "-", "-", "-"}));
    EXPECT_EQ(lines[3], "busy     w0 - w1 -");
}

TEST_F(TopFrame, HealthStalledWorkersAndErrors) {
    ASSERT_TRUE(pools_->set_health("lund", *Endpoint::parse("198.51.100.12:5060"), control::HealthVerdict::down,
                                   "no answer to OPTIONS in 1000 ms\x1b[2J\r\n"));
    TopInput in = input(100, 1);
    in.status["worker_status"][1]["stalled"] = true;
    const auto lines = top_frame(in, 80);
    EXPECT_EQ(lines[3], "busy     w0 25% w1 STALLED");
    const std::string* b12 = line_starting(lines, "  198.51.100.12:5060 ");
    ASSERT_NE(b12, nullptr);
    EXPECT_EQ(b12->size(), 80u);  // the detail is cut at the width
    EXPECT_NE(b12->find(" down    "), std::string::npos) << *b12;
    EXPECT_NE(b12->find("down: no answer to"), std::string::npos) << *b12;
    EXPECT_EQ(b12->back(), '~');
    for (const auto& l : lines)
        for (char c : l) EXPECT_TRUE(c >= 0x20 && c <= 0x7e) << "unprintable byte in: " << l;

    in.error = "cannot connect to siplb at /run/siplb/siplb.sock: No such file or directory";
    EXPECT_EQ(top_frame(in, 80)[0], "siplb: cannot connect to siplb at /run/siplb/siplb.sock: No such file or direct~");
}

TEST_F(TopFrame, NarrowAndShortScreens) {
    const TopInput in = input(100, 1);
    for (size_t width : {80u, 60u, 40u, 10u, 1u}) {
        const auto lines = top_frame(in, width);
        for (const auto& l : lines) EXPECT_LE(l.size(), width) << l;
    }
    const auto all = top_frame(in, 80);
    const auto cut = top_frame(in, 80, 8);
    ASSERT_EQ(cut.size(), 8u);
    EXPECT_TRUE(std::equal(cut.begin(), cut.begin() + 7, all.begin()));
    EXPECT_EQ(cut.back(), "... " + std::to_string(all.size() - 7) + " more lines (a taller terminal shows them)");
    EXPECT_EQ(top_frame(in, 80, 1).size(), 1u);
    EXPECT_EQ(top_frame(in, 80, all.size()), all);
}

TEST_F(TopFrame, LongNamesAreCutNotWrapped) {
    TopInput in = input(100, 1);
    json b = in.backends["backends"][0];
    b["address"] = "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:5060";
    b["health_detail"] = std::string(200, 'x');
    in.backends["backends"].push_back(b);
    const auto lines = top_frame(in, 80);
    const std::string* v6 = line_starting(lines, "  [2001:db8:ffff:ffff:f~ ");
    ASSERT_NE(v6, nullptr);
    EXPECT_EQ(v6->size(), 80u);
}

TEST(TopFrameInput, MalformedJsonGivesAFrameNotACrash) {
    TopInput in;
    in.status = json::array({1, 2});
    in.prev = {{"totals", "x"}, {"pools", 5}};
    in.cur = {{"totals", {{"drops", {{"no_backend", "many"}, {"x", -3}}}}},
              {"pools", json::array({7, {{"pool", 3}}, {{"pool", "p"}, {"traffic", {{"packets_in", 1.5}}}}})},
              {"workers", json::array({json::object(), {{"worker", "w"}, {"poll", 1}}})},
              {"backends", json::object()}};
    in.backends = {{"backends", json::array({1, {{"pool", "p"}, {"address", json::array()}}})}};
    in.elapsed_s = -1;
    const auto lines = top_frame(in, 80);
    ASSERT_GE(lines.size(), 6u);
    EXPECT_EQ(lines[0], "siplb");
    for (const auto& l : lines) EXPECT_LE(l.size(), 80u);
}

TEST(TopFrameInput, FormatRate) {
    EXPECT_EQ(format_rate(0), "0.0");
    EXPECT_EQ(format_rate(0.5), "0.5");
    EXPECT_EQ(format_rate(99.94), "99.9");
    EXPECT_EQ(format_rate(99.96), "100");
    EXPECT_EQ(format_rate(999.4), "999");
    EXPECT_EQ(format_rate(999.6), "1.00k");
    EXPECT_EQ(format_rate(12345), "12.3k");
    EXPECT_EQ(format_rate(999'400), "999k");
    EXPECT_EQ(format_rate(2.5e6), "2.50M");
    EXPECT_EQ(format_rate(14.2e6), "14.2M");
    EXPECT_EQ(format_rate(3e9), "3.00G");
    EXPECT_EQ(format_rate(1e18), "999T");
    EXPECT_EQ(format_rate(-1), "-");
    for (double x = 0.01; x < 1e16; x *= 1.37) EXPECT_LE(format_rate(x).size(), 5u) << x;
}

}  // namespace
}  // namespace siplb::cli
