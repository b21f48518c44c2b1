#include "siplb/control/pool_manager.h"

#include <gtest/gtest.h>

#include <set>

#include "siplb/control/log.h"
#include "siplb/control/snapshot_builder.h"

using namespace siplb;
using namespace siplb::control;

namespace {

Endpoint ep(const char* text) { return *Endpoint::parse(text); }

config::Config two_pools() {
    config::Config c;
    config::PoolConfig a;
    a.name = "lund";
    for (const char* b : {"192.0.2.1:5060", "192.0.2.2:5060", "192.0.2.3:5060", "192.0.2.4:5060"})
        a.backends.push_back({ep(b), 1, true});
    a.health.panic_threshold = 0.5;
    a.dns = {"_sip._udp.lund.example.net"};
    config::PoolConfig b;
    b.name = "malmo";
    b.backends.push_back({ep("198.51.100.1:5060"), 2, true});
    b.backends.push_back({ep("198.51.100.2:5060"), 1, false});
    c.pools = {a, b};
    c.dns.drain_grace_s = 30;
    return c;
}

struct Fixture : ::testing::Test {
    TimePoint now = TimePoint{} + std::chrono::hours(1);
    config::Config cfg = two_pools();
    PoolManager pm{cfg, [this] { return now; }};
    std::vector<std::vector<std::string>> changes;
    Actor op{"uid=0 pid=1"};

    void SetUp() override {
        set_log_level(LogLevel::error);
        pm.set_listener([this](const PoolManager&, const std::vector<std::string>& c) { changes.push_back(c); });
    }
    EffectiveState state(const char* pool, const char* b) { return pm.find_pool(pool)->find(ep(b))->state; }
};

TEST_F(Fixture, InitialStateFromConfig) {
    ASSERT_EQ(pm.pools().size(), 2u);
    EXPECT_EQ(state("lund", "192.0.2.1:5060"), EffectiveState::active);
    EXPECT_EQ(state("malmo", "198.51.100.2:5060"), EffectiveState::disabled);
    EXPECT_EQ(pm.find_pool("malmo")->find(ep("198.51.100.1:5060"))->weight, 2u);
    EXPECT_EQ(pm.find_pool("lund")->find(ep("192.0.2.1:5060"))->source(), "static");
}

TEST_F(Fixture, DrainTouchesOnlyItsPool) {
    const uint64_t malmo_v = pm.find_pool("malmo")->version;
    const uint64_t lund_v = pm.find_pool("lund")->version;
    ASSERT_TRUE(pm.drain("lund", ep("192.0.2.2:5060"), op).ok());
    EXPECT_EQ(state("lund", "192.0.2.2:5060"), EffectiveState::draining);
    EXPECT_EQ(pm.find_pool("malmo")->version, malmo_v);
    EXPECT_EQ(pm.find_pool("lund")->version, lund_v + 1);
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0], std::vector<std::string>{"lund"});
    EXPECT_EQ(pm.find_pool("lund")->find(ep("192.0.2.2:5060"))->admin_by, "uid=0 pid=1");
    // Idempotent: no second snapshot.
    ASSERT_TRUE(pm.drain("lund", ep("192.0.2.2:5060"), op).ok());
    EXPECT_EQ(changes.size(), 1u);
    ASSERT_TRUE(pm.enable("lund", ep("192.0.2.2:5060"), op).ok());
    EXPECT_EQ(state("lund", "192.0.2.2:5060"), EffectiveState::active);
}

TEST_F(Fixture, ErrorsNameWhatIsWrong) {
    auto s = pm.drain("nope", ep("192.0.2.2:5060"), op);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("unknown pool 'nope'"), std::string::npos);
    s = pm.disable("lund", ep("192.0.2.99:5060"), op);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("192.0.2.99:5060"), std::string::npos);
    EXPECT_FALSE(pm.add_static("lund", ep("192.0.2.1:5060"), 1, op).ok());
    EXPECT_FALSE(pm.remove_static("lund", ep("192.0.2.77:5060"), op).ok());
    EXPECT_TRUE(changes.empty());
}

TEST_F(Fixture, WeightAddRemove) {
    ASSERT_TRUE(pm.set_weight("lund", ep("192.0.2.1:5060"), 7, op).ok());
    EXPECT_EQ(pm.find_pool("lund")->find(ep("192.0.2.1:5060"))->weight, 7u);
    ASSERT_TRUE(pm.add_static("lund", ep("192.0.2.9:5070"), 3, op).ok());
    EXPECT_EQ(pm.find_pool("lund")->backends.size(), 5u);
    EXPECT_EQ(pm.find_pool("lund")->backends.back().address, ep("192.0.2.9:5070"));  // sorted
    ASSERT_TRUE(pm.remove_static("lund", ep("192.0.2.9:5070"), op).ok());
    EXPECT_EQ(pm.find_pool("lund")->backends.size(), 4u);
}

TEST_F(Fixture, HealthRespectsPanicThreshold) {
    // 4 eligible, threshold 0.5: at most 2 out by health.
    ASSERT_TRUE(pm.set_health("lund", ep("192.0.2.1:5060"), HealthVerdict::down, "timeout").ok());
    now += std::chrono::seconds(1);
    ASSERT_TRUE(pm.set_health("lund", ep("192.0.2.2:5060"), HealthVerdict::overloaded, "503").ok());
    now += std::chrono::seconds(1);
    ASSERT_TRUE(pm.set_health("lund", ep("192.0.2.3:5060"), HealthVerdict::down, "timeout").ok());
    EXPECT_EQ(state("lund", "192.0.2.1:5060"), EffectiveState::down);
    EXPECT_EQ(state("lund", "192.0.2.2:5060"), EffectiveState::overloaded);
    EXPECT_EQ(state("lund", "192.0.2.3:5060"), EffectiveState::active);
    EXPECT_TRUE(pm.find_pool("lund")->find(ep("192.0.2.3:5060"))->panic);
    EXPECT_EQ(pm.find_pool("lund")->panic_events, 1u);
    // First one recovers: the kept-in one may now go out.
    ASSERT_TRUE(pm.set_health("lund", ep("192.0.2.1:5060"), HealthVerdict::up, "200").ok());
    EXPECT_EQ(state("lund", "192.0.2.3:5060"), EffectiveState::down);
    EXPECT_FALSE(pm.find_pool("lund")->find(ep("192.0.2.3:5060"))->panic);
}

TEST_F(Fixture, DnsPriorityStandbyAndGrace) {
    // Remove statics so DNS decides.
    for (const char* b : {"192.0.2.1:5060", "192.0.2.2:5060", "192.0.2.3:5060", "192.0.2.4:5060"})
        ASSERT_TRUE(pm.remove_static("lund", ep(b), op).ok());
    const std::string name = "_sip._udp.lund.example.net";
    ASSERT_TRUE(pm.set_discovered("lund", name,
                                  {{ep("203.0.113.1:5060"), 10, 10, 60},
                                   {ep("203.0.113.2:5060"), 20, 10, 60},
                                   {ep("203.0.113.3:5060"), 5, 20, 60}})
                    .ok());
    EXPECT_EQ(state("lund", "203.0.113.1:5060"), EffectiveState::active);
    EXPECT_EQ(state("lund", "203.0.113.3:5060"), EffectiveState::standby);
    EXPECT_EQ(pm.find_pool("lund")->find(ep("203.0.113.2:5060"))->weight, 20u);
    EXPECT_EQ(pm.find_pool("lund")->find(ep("203.0.113.3:5060"))->source(), "dns:" + name);
    // Panic threshold 1.0 so health alone can take all best ones out.
    cfg.pools[0].health.panic_threshold = 1.0;
    cfg.pools[0].backends.clear();
    ASSERT_TRUE(pm.apply_config(cfg, Actor{"reload"}).ok());
    ASSERT_TRUE(pm.set_health("lund", ep("203.0.113.1:5060"), HealthVerdict::down, "t").ok());
    ASSERT_TRUE(pm.set_health("lund", ep("203.0.113.2:5060"), HealthVerdict::down, "t").ok());
    EXPECT_EQ(state("lund", "203.0.113.3:5060"), EffectiveState::active);  // backup takes over
    // Same answer again: no change, no snapshot.
    const size_t n = changes.size();
    ASSERT_TRUE(pm.set_discovered("lund", name,
                                  {{ep("203.0.113.1:5060"), 10, 10, 30},
                                   {ep("203.0.113.2:5060"), 20, 10, 30},
                                   {ep("203.0.113.3:5060"), 5, 20, 30}})
                    .ok());
    EXPECT_EQ(changes.size(), n);
    // .2 disappears: drains for the grace period, then is removed.
    ASSERT_TRUE(
        pm.set_discovered("lund", name, {{ep("203.0.113.1:5060"), 10, 10, 60}, {ep("203.0.113.3:5060"), 5, 20, 60}})
            .ok());
    EXPECT_EQ(state("lund", "203.0.113.2:5060"), EffectiveState::draining);
    now += std::chrono::seconds(10);
    EXPECT_EQ(pm.expire(), 0u);
    now += std::chrono::seconds(25);
    EXPECT_EQ(pm.expire(), 1u);
    EXPECT_EQ(pm.find_pool("lund")->find(ep("203.0.113.2:5060")), nullptr);
    EXPECT_EQ(pm.probe_targets().size(), 2u + 2u);
}

TEST_F(Fixture, ReloadAppliesOnlyWhatChanged) {
    ASSERT_TRUE(pm.drain("lund", ep("192.0.2.1:5060"), op).ok());
    config::Config next = cfg;
    next.pools[0].backends[1].weight = 5;                               // .2 weight
    next.pools[0].backends.pop_back();                                  // .4 removed
    next.pools[0].backends.push_back({ep("192.0.2.5:5060"), 1, true});  // .5 added
    next.pools[1].backends[1].enabled = true;                           // malmo .2 enabled
    auto r = pm.apply_config(next, Actor{"reload"});
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->size(), 4u);
    EXPECT_EQ(state("lund", "192.0.2.1:5060"), EffectiveState::draining);  // operator drain kept
    EXPECT_EQ(pm.find_pool("lund")->find(ep("192.0.2.2:5060"))->weight, 5u);
    EXPECT_EQ(state("lund", "192.0.2.4:5060"), EffectiveState::draining);  // grace
    EXPECT_EQ(state("lund", "192.0.2.5:5060"), EffectiveState::active);
    EXPECT_EQ(state("malmo", "198.51.100.2:5060"), EffectiveState::active);
    // Same config again: nothing to do.
    const size_t n = changes.size();
    r = pm.apply_config(next, Actor{"reload"});
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->empty());
    EXPECT_EQ(changes.size(), n);
}

TEST_F(Fixture, ReloadAddsAndRemovesPools) {
    const uint64_t lund_v = pm.find_pool("lund")->version;
    config::Config next = cfg;
    next.pools[1].name = "goteborg";
    auto r = pm.apply_config(next, Actor{"reload"});
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->size(), 2u);
    EXPECT_EQ(pm.find_pool("malmo"), nullptr);
    ASSERT_NE(pm.find_pool("goteborg"), nullptr);
    EXPECT_EQ(pm.pools()[1].name, "goteborg");
    EXPECT_EQ(state("goteborg", "198.51.100.2:5060"), EffectiveState::disabled);
    EXPECT_EQ(pm.find_pool("lund")->version, lund_v);  // untouched pool keeps its table
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0], std::vector<std::string>{"goteborg"});
    // Removal only.
    next.pools.pop_back();
    r = pm.apply_config(next, Actor{"reload"});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(pm.pools().size(), 1u);
    EXPECT_EQ(changes.size(), 2u);
}

TEST(LogFormat, QuotesAndEscapes) {
    EXPECT_EQ(format_log_line(LogLevel::info, "backend drained", {{"pool", "lund"}, {"by", "uid=0 pid=1"}}),
              "level=info msg=\"backend drained\" pool=lund by=\"uid=0 pid=1\"");
    EXPECT_EQ(format_log_line(LogLevel::warn, "x", {{"d", "a\"b\nc"}, {"e", ""}}),
              "level=warn msg=\"x\" d=\"a\\\"b\\nc\" e=\"\"");
}

// The derived Maglev table size (balance/table_size.h) through the daemon's
// own path: PoolManager view -> SnapshotBuilder. Health never resizes the
// table; the 17th backend of a pool crosses the first rung, and the builder
// says so.
TEST(SnapshotBuilderTableSize, FollowsTheSpecsBackendCountNotHealth) {
    set_log_level(LogLevel::warn);
    config::Config c;
    config::PoolConfig p;
    p.name = "lund";
    for (int i = 1; i <= 16; ++i)
        p.backends.push_back({ep(("192.0.2." + std::to_string(i) + ":5060").c_str()), 1, true});
    c.pools = {p};
    TimePoint now = TimePoint{} + std::chrono::hours(1);
    PoolManager pm{c, [&] { return now; }};
    SnapshotBuilder builder(c);
    auto size = [&] {
        auto snap = builder.build(pm);
        EXPECT_TRUE(snap.ok()) << snap.message();
        return snap.ok() ? (*snap)->find_pool("lund")->table().size() : 0u;
    };
    EXPECT_EQ(size(), 65537u);
    ::testing::internal::CaptureStderr();  // warnings on: a resize would be logged here
    ASSERT_TRUE(pm.set_health("lund", ep("192.0.2.1:5060"), HealthVerdict::down, "timeout").ok());
    ASSERT_TRUE(pm.disable("lund", ep("192.0.2.2:5060"), Actor{"test"}).ok());
    EXPECT_EQ(size(), 65537u);
    EXPECT_EQ(::testing::internal::GetCapturedStderr().find("resized"), std::string::npos);
    ASSERT_TRUE(pm.add_static("lund", ep("192.0.2.17:5060"), 1, Actor{"test"}).ok());
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(size(), 131101u);
    const std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("Maglev table resized"), std::string::npos) << log;
    EXPECT_NE(log.find("from=65537 to=131101 backends=17"), std::string::npos) << log;
    set_log_level(LogLevel::error);
}

// Rule counter slots follow (pool name, rule name), whatever position the
// rule has and whatever it matches: a rule moved, or changed in place, keeps
// its slot; a new name gets a slot no other rule ever had; one name in two
// pools gets two; past the limit a rule is not counted.
TEST(SnapshotBuilderRuleSlots, FollowPoolAndRuleNamesAcrossReloads) {
    set_log_level(LogLevel::error);
    auto rule = [](const char* name, const char* pattern) {
        config::RuleConfig r;
        r.name = name;
        r.field = "user_agent";
        r.pattern = pattern;
        return r;
    };
    config::Config cfg;
    for (const char* name : {"lund", "malmo"}) {
        config::PoolConfig p;
        p.name = name;
        p.listen = {*Endpoint::parse(std::string(name) == "lund" ? "203.0.113.10:5060" : "203.0.113.11:5060")};
        p.backends.push_back({*Endpoint::parse("198.51.100.1:5060"), 1, true});
        p.rules = {rule("scanners", "sipvicious"), rule("bots", "evil-bot")};
        cfg.pools.push_back(p);
    }
    PoolManager pm(cfg);
    SnapshotBuilder builder(cfg);
    auto slots = [&](const char* pool) {
        auto snap = builder.build(pm);
        EXPECT_TRUE(snap.ok()) << snap.message();
        std::vector<uint32_t> out;
        if (!snap.ok()) return out;
        const balance::PoolSnapshot* p = (*snap)->find_pool(pool);
        for (uint32_t r = 0; r < p->protection()->rules()->size(); ++r) out.push_back(p->rule_counter_slot(r));
        EXPECT_EQ(p->rule_counter_slot(static_cast<uint32_t>(out.size())), balance::kNoCounterSlot);
        return out;
    };
    const std::vector<uint32_t> lund = slots("lund"), malmo = slots("malmo");
    ASSERT_EQ(lund.size(), 2u);
    ASSERT_EQ(malmo.size(), 2u);
    std::set<uint32_t> all{lund[0], lund[1], malmo[0], malmo[1]};
    EXPECT_EQ(all.size(), 4u);  // one name in two pools: two slots
    for (uint32_t s : all) EXPECT_LT(s, balance::kRuleCounterSlots);

    auto reload = [&](std::vector<config::RuleConfig> rules) {
        cfg.pools[0].rules = std::move(rules);
        builder.set_config(cfg);
        ASSERT_TRUE(pm.apply_config(cfg, Actor{"reload"}).ok());
    };
    // "bots" moves to the front and changes its pattern, "scanners" goes, "fraud" comes.
    reload({rule("bots", "evil-bot|bad-bot"), rule("fraud", "^pplsip")});
    const std::vector<uint32_t> moved = slots("lund");
    ASSERT_EQ(moved.size(), 2u);
    EXPECT_EQ(moved[0], lund[1]);
    EXPECT_EQ(all.count(moved[1]), 0u);
    EXPECT_EQ(slots("malmo"), malmo);
    // A name seen before gets its slot back; past the limit, none.
    builder.set_max_rule_counter_slots(5);
    reload(
        {rule("scanners", "sipvicious"), rule("bots", "evil-bot"), rule("fraud", "^pplsip"), rule("late", "x-late")});
    EXPECT_EQ(slots("lund"), (std::vector<uint32_t>{lund[0], lund[1], moved[1], balance::kNoCounterSlot}));
}

}  // namespace

TEST_F(Fixture, TlsSrvRecordsMergeIntoTheHostsBackends) {
    for (const char* b : {"192.0.2.1:5060", "192.0.2.2:5060", "192.0.2.3:5060", "192.0.2.4:5060"})
        ASSERT_TRUE(pm.remove_static("lund", ep(b), op).ok());
    const std::string sip = "_sip._udp.lund.example.net", sips = "_sips._tcp.lund.example.net";
    auto tls = [](const char* at, uint16_t port, uint32_t weight, uint16_t prio) {
        DiscoveredBackend d{ep(at), weight, prio, 60};
        d.tls_port = port;
        return d;
    };
    auto view = [&](const char* b) { return pm.find_pool("lund")->find(ep(b)); };
    // The TLS name first: a host nothing else names yet sits at default_port.
    ASSERT_TRUE(pm.set_discovered("lund", sips, {tls("203.0.113.1:5060", 5061, 7, 10)}).ok());
    ASSERT_NE(view("203.0.113.1:5060"), nullptr);
    EXPECT_EQ(view("203.0.113.1:5060")->tls_port, 5061);
    EXPECT_EQ(view("203.0.113.1:5060")->weight, 7u);  // only TLS records: they place it
    // The SIP-port name gives the host at 5080: the TLS record moves to that
    // backend, the default-port one is gone from DNS and drains.
    ASSERT_TRUE(
        pm.set_discovered("lund", sip, {{ep("203.0.113.1:5080"), 3, 20, 60}, {ep("203.0.113.2:5060"), 1, 20, 60}})
            .ok());
    ASSERT_NE(view("203.0.113.1:5080"), nullptr);
    EXPECT_EQ(view("203.0.113.1:5080")->tls_port, 5061);
    EXPECT_EQ(view("203.0.113.1:5080")->source(), "dns:" + sip + "+dns:" + sips);
    // Weight and priority from the SIP-port record: one table places every transport.
    EXPECT_EQ(view("203.0.113.1:5080")->weight, 3u);
    EXPECT_EQ(view("203.0.113.1:5080")->priority, 20);
    EXPECT_EQ(state("lund", "203.0.113.1:5060"), EffectiveState::draining);
    // A host without a TLS record keeps the default TLS port.
    EXPECT_EQ(view("203.0.113.2:5060")->tls_port, 5061);
    ASSERT_TRUE(
        pm.set_discovered("lund", sips, {tls("203.0.113.1:5060", 6061, 7, 10), tls("203.0.113.2:5060", 5071, 1, 10)})
            .ok());
    EXPECT_EQ(view("203.0.113.1:5080")->tls_port, 6061);
    EXPECT_EQ(view("203.0.113.2:5060")->tls_port, 5071);
    // Probes and the snapshot see the same TLS port.
    bool probed = false;
    for (const auto& t : pm.probe_targets())
        if (t.address == ep("203.0.113.2:5060")) probed = t.tls_port == 5071;
    EXPECT_TRUE(probed);
    SnapshotBuilder builder(cfg);
    auto snap = builder.build(pm);
    ASSERT_TRUE(snap.ok()) << snap.message();
    const auto* pool = (*snap)->find_pool("lund");
    ASSERT_NE(pool, nullptr);
    for (const auto& b : pool->backends())
        if (b.address == ep("203.0.113.2:5060")) {
            EXPECT_EQ(b.tls_port, 5071);
        }
    // Static backends keep their configured TLS port.
    EXPECT_EQ(pm.find_pool("malmo")->find(ep("198.51.100.1:5060"))->tls_port, 5061);
}

TEST_F(Fixture, StaticTlsPortChangesOnReload) {
    cfg.pools[1].backends[0].tls_port = 5071;
    auto lines = pm.apply_config(cfg, Actor{"reload"});
    ASSERT_TRUE(lines.ok());
    EXPECT_NE(std::find(lines->begin(), lines->end(), "pool malmo: backend 198.51.100.1:5060 tls_port 5061 -> 5071"),
              lines->end());
    EXPECT_EQ(pm.find_pool("malmo")->find(ep("198.51.100.1:5060"))->tls_port, 5071);
}
