// describe_changes / restart_required_changes: what a reload would change,
// and which of it the running daemon cannot apply live.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "siplb/config/config.h"

using namespace siplb::config;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

namespace {

const char* kBase = R"(
[dataplane]
eal = ["--no-huge"]
workers = 1
[[dataplane.port]]
name = "ext"
device = "net_null0"
addresses = ["203.0.113.2/24"]
[[pool]]
name = "lund"
listen = ["203.0.113.10:5060"]
backends = ["198.51.100.11:5060", { address = "198.51.100.12:5060", weight = 2 }]
)";

Config load(const std::string& text) {
    auto r = parse_config(text, "t.toml");
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.message());
    return r.ok() ? r.value() : Config{};
}

}  // namespace

TEST(ConfigDiff, IdenticalConfigsHaveNoChanges) { EXPECT_THAT(describe_changes(load(kBase), load(kBase)), IsEmpty()); }

TEST(ConfigDiff, BackendsAddedRemovedReweighted) {
    Config a = load(kBase);
    Config b = load(R"(
[dataplane]
eal = ["--no-huge"]
[[dataplane.port]]
name = "ext"
device = "net_null0"
addresses = ["203.0.113.2/24"]
[[pool]]
name = "lund"
listen = ["203.0.113.10:5060", "203.0.113.11:5060"]
backends = [{ address = "198.51.100.12:5060", weight = 5 }, "198.51.100.13:5060"]
)");
    EXPECT_THAT(describe_changes(a, b), UnorderedElementsAre("pool lund: VIP 203.0.113.11:5060 added",
                                                             "pool lund: backend 198.51.100.11:5060 removed",
                                                             "pool lund: backend 198.51.100.12:5060 reweighted 2 -> 5",
                                                             "pool lund: backend 198.51.100.13:5060 added (weight 1)"));
    EXPECT_THAT(restart_required_changes(a, b), IsEmpty());
}

TEST(ConfigDiff, PoolsAddedAndRemovedAndSettings) {
    Config a = load(kBase);
    Config b = load(std::string(kBase) + "seed = 7\n[pool.health]\ninterval_ms = 5000\n" +
                    "[[pool]]\nname = \"trunk\"\nlisten = [\"203.0.113.20:5060\"]\ndns = [\"siptrunk.example.net\"]\n");
    EXPECT_THAT(describe_changes(a, b),
                UnorderedElementsAre("pool lund: seed: 357712284738 -> 7 (remaps calls; both cluster nodes must agree)",
                                     "pool lund: health.interval_ms: 2000 -> 5000",
                                     "pool trunk added (1 VIPs, 0 backends, 1 DNS names)"));
    EXPECT_THAT(describe_changes(b, a), Contains("pool trunk removed"));
}

TEST(ConfigDiff, GlobalHealthChangeReportedOnce) {
    Config a = load(kBase);
    Config b = load(std::string("[health]\ninterval_ms = 3000\n") + kBase);
    EXPECT_THAT(describe_changes(a, b), ElementsAre("health.interval_ms: 2000 -> 3000"));
}

TEST(ConfigDiff, DataplaneAndControlChangesNeedRestart) {
    Config a = load(kBase);
    Config b = a;
    b.dataplane.workers = 2;
    b.dataplane.eal.push_back("--no-pci");
    b.dataplane.ports[0].mtu = 9000;
    b.control.socket = "/run/other.sock";
    b.log.level = "debug";
    EXPECT_THAT(restart_required_changes(a, b),
                UnorderedElementsAre("dataplane.workers: 1 -> 2",
                                     "dataplane.eal: [\"--no-huge\"] -> [\"--no-huge\", \"--no-pci\"]",
                                     "dataplane.port ext: mtu: 1500 -> 9000",
                                     "control.socket: \"/run/siplb/siplb.sock\" -> \"/run/other.sock\""));
    EXPECT_THAT(describe_changes(a, b), Contains("dataplane.workers: 1 -> 2 (needs restart)"));
    EXPECT_THAT(describe_changes(a, b), Contains("log.level: \"info\" -> \"debug\""));
    auto changes = diff_configs(a, b);
    EXPECT_EQ(changes.size(), 5u);
}

TEST(ConfigDiff, AnnounceChangeNeedsRestart) {
    Config a = load(kBase);
    Config b = a;
    b.dataplane.announce = false;
    EXPECT_THAT(restart_required_changes(a, b), ElementsAre("dataplane.announce: true -> false"));
    Config c = a;
    c.dataplane.neighbor_reachable_s = 30;
    EXPECT_THAT(restart_required_changes(a, c), ElementsAre("dataplane.neighbor_reachable_s: 300 -> 30"));
}

TEST(ConfigDiff, RoutesAndPortsAddedNeedRestart) {
    Config a = load(kBase);
    Config b = load(std::string(kBase) +
                    "[[dataplane.port]]\nname = \"int\"\ndevice = \"net_null1\"\n"
                    "[[dataplane.route]]\nprefix = \"0.0.0.0/0\"\nvia = \"203.0.113.1\"\n");
    EXPECT_THAT(restart_required_changes(a, b),
                UnorderedElementsAre("dataplane.port int added (net_null1)",
                                     "dataplane.route 0.0.0.0/0 via 203.0.113.1 added"));
}

// Protect rules and rate limits apply live (compiled into the next
// snapshot): they are described but never need a restart.
TEST(ConfigDiff, ProtectChangesApplyLive) {
    Config a = load(kBase);
    Config rules = load(std::string(kBase) +
                        "[[pool.rule]]\nname = \"scanners\"\nfield = \"user_agent\"\npattern = \"friendly-scanner\"\n");
    EXPECT_THAT(describe_changes(a, rules), ElementsAre("pool lund: rule scanners added"));
    EXPECT_THAT(restart_required_changes(a, rules), IsEmpty());
    Config limited = load(std::string(kBase) + "[pool.rate_limit]\nenabled = true\n");
    EXPECT_THAT(describe_changes(a, limited), ElementsAre("pool lund: rate_limit.enabled: false -> true"));
    EXPECT_THAT(restart_required_changes(a, limited), IsEmpty());
    Config new_pool = load(std::string(kBase) + "[[pool]]\nname = \"trunk\"\nlisten = [\"203.0.113.20:5060\"]\n" +
                           "backends = [\"198.51.100.21:5060\"]\n[pool.rate_limit]\nenabled = true\n");
    EXPECT_THAT(restart_required_changes(a, new_pool), IsEmpty());
    EXPECT_EQ(describe_changes(a, new_pool).size(), 1u);
}

TEST(ConfigDiff, StopGraceNeedsRestart) {
    Config a = load(kBase);
    Config b = a;
    b.control.stop_grace_ms = 2000;
    EXPECT_THAT(restart_required_changes(a, b), ElementsAre("control.stop_grace_ms: 0 -> 2000"));
}

TEST(ConfigDiff, TcpAndTlsVipsAndTlsPorts) {
    Config a = load(kBase);
    std::string text = kBase;
    text.replace(text.find("listen = [\"203.0.113.10:5060\"]"), 30,
                 "listen = [\"203.0.113.10:5060\", \"tcp://203.0.113.10:5060\", \"tls://203.0.113.10:5061\"]");
    text.replace(text.find("weight = 2 }"), 12, "weight = 2, tls_port = 5071 }");
    Config b = load(text);
    EXPECT_THAT(describe_changes(a, b),
                UnorderedElementsAre("pool lund: VIP tcp://203.0.113.10:5060 added",
                                     "pool lund: VIP tls://203.0.113.10:5061 added",
                                     "pool lund: backend 198.51.100.12:5060 tls_port 5061 -> 5071",
                                     // the pool's checks follow its new VIPs
                                     "pool lund: health.tcp: off -> options", "pool lund: health.tls: off -> connect"));
    EXPECT_THAT(restart_required_changes(a, b), IsEmpty());
}

TEST(ConfigDiff, TransportChecks) {
    std::string text = kBase;
    text.replace(text.find("listen = [\"203.0.113.10:5060\"]"), 30,
                 "listen = [\"203.0.113.10:5060\", \"tcp://203.0.113.10:5060\"]");
    Config a = load(text);
    Config b = load("[health]\ntcp = \"connect\"\n" + text);
    // [health] leaves it unset; the pool's effective check changes too.
    EXPECT_THAT(describe_changes(a, b),
                UnorderedElementsAre("health.tcp: (none) -> connect", "pool lund: health.tcp: options -> connect"));
    EXPECT_THAT(restart_required_changes(a, b), IsEmpty());
}
