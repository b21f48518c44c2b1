// DiscoveryWiring end to end on loopback: dnsmasq SRV answer -> PoolManager
// backends; sipp UAS and a closed port probed -> PoolManager health.
#include <gtest/gtest.h>
#include <poll.h>

#include "common/child_process.h"
#include "siplb/control/discovery_wiring.h"

using namespace siplb;
using namespace siplb::control;
using namespace std::chrono_literals;

namespace {
const std::string kScenarioDir = SIPLB_TEST_SCENARIO_DIR;
}

TEST(DiscoveryWiring, DnsFeedsPoolManagerAndHealthMarksDeadBackendDown) {
    siplb::testing::TempDir dir;
    const uint16_t sip_port = siplb::testing::free_udp_port("127.0.0.8");
    const uint16_t dead_port = siplb::testing::free_udp_port("127.0.0.9");
    siplb::testing::ChildProcess uas({"/usr/bin/sipp", "-sf", kScenarioDir + "/options_200.xml", "-i", "127.0.0.8",
                                      "-p", std::to_string(sip_port), "-t", "u1", "-nostdin", "-timeout", "55s"},
                                     dir.file("sipp.out"));
    ASSERT_TRUE(siplb::testing::wait_udp_port("127.0.0.8", sip_port, 5s));
    siplb::testing::Dnsmasq dns(dir);
    ASSERT_TRUE(dns.start(
        {
            "srv-host=_sip._udp.lund.test,live.lund.test," + std::to_string(sip_port) + ",10,50",
            "srv-host=_sip._udp.lund.test,dead.lund.test," + std::to_string(dead_port) + ",10,50",
            "srv-host=_sip._udp.lund.test,backup.lund.test,5060,20,10",
            "host-record=live.lund.test,127.0.0.8",
            "host-record=dead.lund.test,127.0.0.9",
            "host-record=backup.lund.test,127.0.0.10",
        },
        30));

    config::Config cfg;
    cfg.dns.resolvers = {*Endpoint::parse("127.0.0.1:" + std::to_string(dns.port()))};
    cfg.dns.ttl_floor_s = 1;
    cfg.dns.timeout_ms = 300;
    config::PoolConfig pool;
    pool.name = "lund";
    pool.dns = {"_sip._udp.lund.test"};
    pool.health.interval_ms = 200;
    pool.health.timeout_ms = 300;
    pool.health.down_after = 2;
    pool.health.up_after = 2;
    pool.health.panic_threshold = 0.9;
    cfg.pools.push_back(pool);

    control::PoolManager pm(cfg);
    auto w = DiscoveryWiring::create(cfg, pm);
    ASSERT_TRUE(w.ok()) << w.message();
    auto& wiring = *w.value();

    const Endpoint live = *Endpoint::parse("127.0.0.8:" + std::to_string(sip_port));
    const Endpoint dead = *Endpoint::parse("127.0.0.9:" + std::to_string(dead_port));
    const Endpoint backup = *Endpoint::parse("127.0.0.10:5060");
    auto view = [&](const Endpoint& ep) { return pm.find_pool("lund")->find(ep); };
    auto run_until = [&](auto pred, std::chrono::milliseconds limit) {
        const auto deadline = Clock::now() + limit;
        while (Clock::now() < deadline) {
            if (pred()) return true;
            auto fds = wiring.fds();
            int t = wiring.timeout_ms(Clock::now());
            if (t < 0 || t > 50) t = 50;
            ::poll(fds.data(), fds.size(), t);
            wiring.process(fds, Clock::now());
        }
        return pred();
    };

    ASSERT_TRUE(run_until([&] { return view(live) && view(dead) && view(backup); }, 5s));
    EXPECT_EQ(view(live)->priority, 10);
    EXPECT_EQ(view(backup)->priority, 20);
    EXPECT_EQ(view(live)->source(), "dns:_sip._udp.lund.test");

    // The dead one (closed port: ICMP unreachable) is reported down; the live one stays up.
    ASSERT_TRUE(run_until([&] { return view(dead)->health == control::HealthVerdict::down; }, 5s));
    EXPECT_EQ(view(live)->health, control::HealthVerdict::up);
    EXPECT_NE(view(dead)->health_detail.find("ICMP"), std::string::npos) << view(dead)->health_detail;

    auto js = wiring.status_json(Clock::now(), "lund");
    ASSERT_EQ(js["dns"].size(), 1u);
    EXPECT_EQ(js["dns"][0]["type"], "SRV");
    EXPECT_EQ(js["dns"][0]["backends"].size(), 3u);
    EXPECT_EQ(js["probes"].size(), 3u);
    bool saw_dead = false;
    for (const auto& p : js["probes"])
        if (p["backend"] == dead.to_string()) {
            saw_dead = true;
            EXPECT_EQ(p["verdict"], "down");
        }
    EXPECT_TRUE(saw_dead);
    EXPECT_TRUE(wiring.status_json(Clock::now(), "other")["probes"].empty());
    EXPECT_TRUE(wiring.resolve_now("lund"));
    EXPECT_FALSE(wiring.resolve_now("other"));
}

// Passive checks through the wiring: the overload counters the daemon hands
// over take a backend that answers OPTIONS with 200 out as overloaded; probes
// bring it back after Retry-After; a pool with passive off is never touched;
// a pool without probes comes back after quiet intervals; a rebuilt wiring
// (reload) keeps the verdicts.
TEST(DiscoveryWiring, PassiveOverloadCountersTakeABackendOutAndProbesBringItBack) {
    siplb::testing::TempDir dir;
    const uint16_t sip_port = siplb::testing::free_udp_port("127.0.0.8");
    const uint16_t silent_port = siplb::testing::free_udp_port("127.0.0.9");
    siplb::testing::ChildProcess uas({"/usr/bin/sipp", "-sf", kScenarioDir + "/options_200.xml", "-i", "127.0.0.8",
                                      "-p", std::to_string(sip_port), "-t", "u1", "-nostdin", "-timeout", "55s"},
                                     dir.file("sipp.out"));
    ASSERT_TRUE(siplb::testing::wait_udp_port("127.0.0.8", sip_port, 5s));
    const Endpoint live = *Endpoint::parse("127.0.0.8:" + std::to_string(sip_port));
    const Endpoint silent = *Endpoint::parse("127.0.0.9:" + std::to_string(silent_port));

    config::Config cfg;
    auto pool = [&](const std::string& name, const Endpoint& backend) {
        config::PoolConfig p;
        p.name = name;
        p.backends = {config::BackendConfig{backend}};
        p.health.interval_ms = 200;
        p.health.timeout_ms = 150;
        p.health.down_after = 2;
        p.health.up_after = 2;
        p.health.panic_threshold = 1.0;
        p.health.passive = true;
        p.health.passive_503_threshold = 5;
        return p;
    };
    cfg.pools.push_back(pool("lund", live));
    cfg.pools.push_back(pool("quiet", live));
    cfg.pools.back().health.passive = false;
    cfg.pools.push_back(pool("noprobe", silent));  // nothing listens: a probe would fail it at once
    cfg.pools.back().health.enabled = false;

    control::PoolManager pm(cfg);
    auto w = DiscoveryWiring::create(cfg, pm);
    ASSERT_TRUE(w.ok()) << w.message();
    std::unique_ptr<DiscoveryWiring> wiring = std::move(w.value());

    auto view = [&](const std::string& p, const Endpoint& ep) { return pm.find_pool(p)->find(ep); };
    auto starts_passive = [](const std::string& d) { return d.rfind("passive:", 0) == 0; };
    // Counters as the dataplane would report them; fed to the wiring on every loop turn.
    uint64_t lund_count = 1000, noprobe_count = 77;
    uint32_t lund_ra = 0;
    TimePoint last_feed{};
    auto run_until = [&](auto pred, std::chrono::milliseconds limit, auto counters) {
        const auto deadline = Clock::now() + limit;
        while (Clock::now() < deadline) {
            if (pred()) return true;
            counters();
            last_feed = Clock::now();
            wiring->observe_passive({{"lund", live, lund_count, lund_ra},
                                     {"quiet", live, lund_count * 10, lund_ra},
                                     {"noprobe", silent, noprobe_count, 0}},
                                    Clock::now());
            auto fds = wiring->fds();
            int t = wiring->timeout_ms(Clock::now());
            if (t < 0 || t > 20) t = 20;
            ::poll(fds.data(), fds.size(), t);
            wiring->process(fds, Clock::now());
        }
        return pred();
    };
    auto unchanged = [] {};
    auto never = [] { return false; };

    // Large cumulative values at first sight are a baseline, not a delta.
    run_until(never, 400ms, unchanged);
    EXPECT_EQ(view("lund", live)->health, HealthVerdict::up);
    EXPECT_EQ(view("noprobe", silent)->health, HealthVerdict::up);

    // 503s at ~50/s (5 per 100 ms) with Retry-After 1: out within one interval.
    lund_ra = 1;
    auto rising = [&] {
        lund_count += 3;
        noprobe_count += 3;
    };
    ASSERT_TRUE(run_until(
        [&] {
            return view("lund", live)->health == HealthVerdict::overloaded &&
                   view("noprobe", silent)->health == HealthVerdict::overloaded;
        },
        2s, rising));
    // Both counters rise together: the reading that tripped them came no later than this.
    const TimePoint tripped = last_feed;
    EXPECT_TRUE(starts_passive(view("lund", live)->health_detail)) << view("lund", live)->health_detail;
    EXPECT_NE(view("lund", live)->health_detail.find("(Retry-After 1 s)"), std::string::npos);
    EXPECT_EQ(view("lund", live)->state, EffectiveState::overloaded);
    EXPECT_TRUE(starts_passive(view("noprobe", silent)->health_detail));
    // The same backend in a pool with passive off never moves (ten times the count).
    EXPECT_EQ(view("quiet", live)->health, HealthVerdict::up);
    EXPECT_EQ(view("quiet", live)->state, EffectiveState::active);

    // No more 503s. Without probes: back after up_after quiet intervals. With
    // probes answering 200: back after Retry-After, not before.
    ASSERT_TRUE(run_until([&] { return view("noprobe", silent)->health == HealthVerdict::up; }, 2s, unchanged));
    EXPECT_NE(view("noprobe", silent)->health_detail.find(", below 5"), std::string::npos)
        << view("noprobe", silent)->health_detail;
    EXPECT_EQ(view("lund", live)->health, HealthVerdict::overloaded);
    ASSERT_TRUE(run_until([&] { return view("lund", live)->health == HealthVerdict::up; }, 3s, unchanged));
    EXPECT_GE(Clock::now() - tripped, 1s);
    EXPECT_EQ(view("lund", live)->health_detail, "udp: 200 OK");
    auto js = wiring->status_json(Clock::now(), "lund");
    ASSERT_EQ(js["probes"].size(), 1u);
    EXPECT_EQ(js["probes"][0]["passive_trips"], 1);
    EXPECT_TRUE(starts_passive(js["probes"][0]["passive_detail"].get<std::string>()));
    EXPECT_EQ(wiring->status_json(Clock::now(), "noprobe")["probes"][0]["next_probe_in_ms"], -1);

    // A counter going backwards (reset) is a new baseline: no verdict.
    lund_count = 3;
    lund_ra = 0;
    run_until(never, 300ms, unchanged);
    lund_count += 4;
    run_until(never, 300ms, unchanged);
    EXPECT_EQ(view("lund", live)->health, HealthVerdict::up);

    // Out again (no Retry-After), then the wiring is rebuilt as on a reload
    // that turns the probe-less pool's passive checks off.
    ASSERT_TRUE(run_until(
        [&] {
            return view("lund", live)->health == HealthVerdict::overloaded &&
                   view("noprobe", silent)->health == HealthVerdict::overloaded;
        },
        2s, rising));
    wiring.reset();
    config::Config reloaded = cfg;
    reloaded.pools[2].health.passive = false;
    auto w2 = DiscoveryWiring::create(reloaded, pm);
    ASSERT_TRUE(w2.ok()) << w2.message();
    wiring = std::move(w2.value());
    // Nothing checks the probe-less pool any more: back in at once.
    EXPECT_EQ(view("noprobe", silent)->health, HealthVerdict::up);
    EXPECT_EQ(view("noprobe", silent)->health_detail, "health checks off");
    // The overloaded one stays out until its probes bring it back.
    EXPECT_EQ(view("lund", live)->health, HealthVerdict::overloaded);
    EXPECT_EQ(wiring->health().verdict("lund", live), health::Verdict::overloaded);
    ASSERT_TRUE(run_until([&] { return view("lund", live)->health == HealthVerdict::up; }, 3s, unchanged));
    EXPECT_EQ(view("lund", live)->health_detail, "udp: 200 OK");
}
