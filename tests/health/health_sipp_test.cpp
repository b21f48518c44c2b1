// HealthChecker against real sipp UAS instances on 127.0.0.x, a closed
// port (ICMP port unreachable) and a socket that never answers.
#include <gtest/gtest.h>
#include <poll.h>

#include "common/child_process.h"
#include "checker_loop.h"
#include "siplb/health/health.h"

using namespace siplb;
using namespace siplb::health;
using namespace std::chrono_literals;

namespace {

const std::string kScenarioDir = SIPLB_TEST_SCENARIO_DIR;

struct Change {
    std::string pool;
    Endpoint ep;
    Verdict verdict;
    std::string detail;
    TimePoint at;
};

class Sipp {
public:
    Sipp(const siplb::testing::TempDir& dir, std::string ip, uint16_t port)
        : dir_(dir), ip_(std::move(ip)), port_(port) {}
    bool start(const std::string& scenario) {
        proc_.start({"/usr/bin/sipp", "-sf", kScenarioDir + "/" + scenario, "-i", ip_, "-p", std::to_string(port_),
                     "-t", "u1", "-nostdin", "-timeout", "55s", "-trace_err", "-max_recv_loops", "100"},
                    dir_.file("sipp-" + std::to_string(port_) + ".out"));
        return siplb::testing::wait_udp_port(ip_.c_str(), port_, 5s);
    }
    void stop() { proc_.stop(); }
    Endpoint endpoint() const { return *Endpoint::parse(ip_ + ":" + std::to_string(port_)); }

private:
    const siplb::testing::TempDir& dir_;
    std::string ip_;
    uint16_t port_;
    siplb::testing::ChildProcess proc_;
};

class HealthTest : public ::testing::Test {
protected:
    siplb::testing::TempDir dir;
    std::vector<Change> changes;
    std::unique_ptr<HealthChecker> hc;
    config::HealthConfig cfg;

    void SetUp() override {
        cfg.interval_ms = 200;
        cfg.jitter = 0.1;
        cfg.timeout_ms = 300;
        cfg.down_after = 3;
        cfg.up_after = 2;
        HealthChecker::Options o;
        o.seed = 1234;
        auto r = HealthChecker::create(
            [this](const std::string& p, const Endpoint& ep, Verdict v, const std::string& d) {
                changes.push_back({p, ep, v, d, Clock::now()});
            },
            o);
        ASSERT_TRUE(r.ok()) << r.message();
        hc = std::move(r.value());
    }

    template <class Pred>
    bool run_until(Pred pred, std::chrono::milliseconds limit) {
        return test::run_checker_until(*hc, pred, limit, 50);
    }
    ProbeStatus status_of(const Endpoint& ep) { return test::probe_status(*hc, ep); }
    Verdict verdict_of(const Endpoint& ep) { return status_of(ep).verdict; }
};

}  // namespace

TEST_F(HealthTest, HealthyBackendStaysUpThenDiesAndRecovers) {
    Sipp uas(dir, "127.0.0.2", siplb::testing::free_udp_port("127.0.0.2"));
    ASSERT_TRUE(uas.start("options_200.xml"));
    hc->set_pool("lund", cfg);
    hc->set_targets("lund", {uas.endpoint()}, Clock::now());
    ASSERT_TRUE(run_until([&] { return status_of(uas.endpoint()).responses >= 4; }, 5s));
    auto st = status_of(uas.endpoint());
    EXPECT_EQ(st.verdict, Verdict::up);
    EXPECT_EQ(st.last_status, 200);
    EXPECT_GE(st.last_rtt_ms, 0.0);
    EXPECT_EQ(st.timeouts, 0u);
    EXPECT_TRUE(changes.empty());

    // The server dies: its port is closed, ICMP port unreachable fails each
    // probe at once; down after 3 probes, well within interval x 3 + timeout.
    uas.stop();
    const auto died = Clock::now();
    ASSERT_TRUE(run_until([&] { return !changes.empty(); }, 3s));
    EXPECT_EQ(changes.back().verdict, Verdict::down);
    EXPECT_EQ(changes.back().pool, "lund");
    EXPECT_EQ(changes.back().ep, uas.endpoint());
    EXPECT_LE(changes.back().at - died, 200ms * 3 * 1.1 + 300ms + 500ms);  // slack for loaded CI
    EXPECT_NE(changes.back().detail.find("ICMP"), std::string::npos) << changes.back().detail;
    EXPECT_GE(status_of(uas.endpoint()).unreachable, 3u);

    // Back up after 2 good answers.
    ASSERT_TRUE(uas.start("options_200.xml"));
    ASSERT_TRUE(run_until([&] { return changes.size() >= 2; }, 3s));
    EXPECT_EQ(changes.back().verdict, Verdict::up);
    EXPECT_EQ(changes.size(), 2u);
}

TEST_F(HealthTest, SilentBackendTimesOutToDown) {
    // A bound socket that never reads: no ICMP, only timeouts.
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.3", &sa.sin_addr);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    const Endpoint ep = *Endpoint::parse("127.0.0.3:" + std::to_string(ntohs(sa.sin_port)));
    hc->set_pool("p", cfg);
    hc->set_targets("p", {ep}, Clock::now());
    const auto start = Clock::now();
    const bool went_down = run_until([&] { return !changes.empty(); }, 5s);
    ::close(fd);
    ASSERT_TRUE(went_down);
    EXPECT_EQ(changes.back().verdict, Verdict::down);
    // 3 probes, each waiting its 300 ms timeout, then rescheduled (interval 200 +-10%).
    EXPECT_GE(Clock::now() - start, 3 * 300ms);
    EXPECT_LE(changes.back().at - start, 3 * (300ms + 220ms) + 500ms);
    auto st = status_of(ep);
    EXPECT_EQ(st.timeouts, 3u);
    EXPECT_EQ(st.unreachable, 0u);
    EXPECT_NE(st.last_detail.find("timeout"), std::string::npos);
}

TEST_F(HealthTest, OverloadWithRetryAfterDrainsAndHoldsThenRecovers) {
    const uint16_t port = siplb::testing::free_udp_port("127.0.0.4");
    Sipp uas(dir, "127.0.0.4", port);
    ASSERT_TRUE(uas.start("options_503.xml"));  // 100 Trying then 503, Retry-After: 2
    hc->set_pool("p", cfg);
    hc->set_targets("p", {uas.endpoint()}, Clock::now());
    ASSERT_TRUE(run_until([&] { return !changes.empty(); }, 3s));
    EXPECT_EQ(changes.back().verdict, Verdict::overloaded);
    EXPECT_NE(changes.back().detail.find("503"), std::string::npos);
    EXPECT_EQ(status_of(uas.endpoint()).responses, 1u);  // a single 503 with Retry-After suffices
    // The server recovers at once, but asked for 2 s: stay overloaded that long.
    uas.stop();
    const auto overloaded_at = changes.back().at;
    ASSERT_TRUE(uas.start("options_200.xml"));
    ASSERT_TRUE(run_until([&] { return changes.size() >= 2; }, 5s));
    EXPECT_EQ(changes.back().verdict, Verdict::up);
    EXPECT_GE(changes.back().at - overloaded_at, 1900ms);
}

TEST_F(HealthTest, OverloadWithoutRetryAfterNeedsDownAfterAnswers) {
    Sipp uas(dir, "127.0.0.5", siplb::testing::free_udp_port("127.0.0.5"));
    ASSERT_TRUE(uas.start("options_503_plain.xml"));
    cfg.overload_codes = {503, 480};
    hc->set_pool("p", cfg);
    hc->set_targets("p", {uas.endpoint()}, Clock::now());
    ASSERT_TRUE(run_until([&] { return !changes.empty(); }, 3s));
    EXPECT_EQ(changes.back().verdict, Verdict::overloaded);
    EXPECT_EQ(status_of(uas.endpoint()).overloads, 3u);
}

TEST_F(HealthTest, TargetsFollowTheListAndDisabledPoolIsNotProbed) {
    Sipp a(dir, "127.0.0.6", siplb::testing::free_udp_port("127.0.0.6"));
    ASSERT_TRUE(a.start("options_200.xml"));
    const Endpoint closed = *Endpoint::parse("127.0.0.7:" + std::to_string(siplb::testing::free_udp_port("127.0.0.7")));
    hc->set_pool("p", cfg);
    hc->set_targets("p", {a.endpoint(), closed}, Clock::now());
    ASSERT_TRUE(run_until([&] { return !changes.empty(); }, 3s));
    EXPECT_EQ(changes.back().ep, closed);
    EXPECT_EQ(hc->status(Clock::now()).size(), 2u);
    hc->set_targets("p", {a.endpoint()}, Clock::now());
    EXPECT_EQ(hc->status(Clock::now()).size(), 1u);
    EXPECT_EQ(verdict_of(a.endpoint()), Verdict::up);

    auto off = cfg;
    off.enabled = false;
    hc->set_pool("q", off);
    hc->set_targets("q", {closed}, Clock::now());
    EXPECT_EQ(hc->status(Clock::now()).size(), 1u);
}
