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
    ASSERT_TRUE(dns.start({
        "srv-host=_sip._udp.lund.test,live.lund.test," + std::to_string(sip_port) + ",10,50",
        "srv-host=_sip._udp.lund.test,dead.lund.test," + std::to_string(dead_port) + ",10,50",
        "srv-host=_sip._udp.lund.test,backup.lund.test,5060,20,10",
        "host-record=live.lund.test,127.0.0.8",
        "host-record=dead.lund.test,127.0.0.9",
        "host-record=backup.lund.test,127.0.0.10",
    }, 30));

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
