// The protect stage in the worker path, over net_ring ports: [[pool.rule]]
// drop and route actions and per-source rate limits act between the SIP
// parse and the backend choice, and every outcome is counted by reason.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_ring.h>

#include <optional>

#include "support/frame_builder.h"
#include "dataplane_test_util.h"
#include "ring_fixture.h"
#include "siplb/dataplane/dataplane.h"

using namespace siplb;
using namespace siplb::test;
using namespace siplb::dataplane::testing;
using std::chrono::milliseconds;

namespace {

const MacAddress kLundMac{{0x02, 0, 0, 0, 0x0b, 0x11}};
const MacAddress kTrunkMac{{0x02, 0, 0, 0, 0x0b, 0x12}};
const Endpoint kVip = *Endpoint::parse("198.51.100.10:5060");
const Endpoint kLundBackend = *Endpoint::parse("203.0.113.11:5060");
const Endpoint kTrunkBackend = *Endpoint::parse("203.0.113.12:5060");

std::string request(const std::string& method, const std::string& uri, const std::string& call_id,
                    const std::string& user_agent = "Yealink SIP-T46S 66.86.0.15") {
    return method + " " + uri + " SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" + call_id +
           "\r\nFrom: <sip:alice@example.net>;tag=1\r\nTo: <sip:bob@example.net>\r\nCall-ID: " + call_id +
           "\r\nCSeq: 1 " + method + "\r\nUser-Agent: " + user_agent +
           "\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
}

std::string ok_response(const std::string& call_id) {
    return "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" + call_id +
           "\r\nFrom: <sip:alice@example.net>;tag=1\r\nTo: <sip:bob@example.net>;tag=2\r\nCall-ID: " + call_id +
           "\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
}

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new RingEalEnvironment("siplb_dp_protect", "test_frames"));

config::RuleConfig rule(const std::string& name, const std::string& field, const std::string& pattern,
                        config::RuleAction action, const std::string& route_pool = "") {
    config::RuleConfig r;
    r.name = name;
    r.field = field;
    r.pattern = pattern;
    r.action = action;
    r.route_pool = route_pool;
    return r;
}

config::Config make_config(const RingPort& ext, const RingPort& in) {
    config::Config cfg;
    auto& dc = cfg.dataplane;
    set_test_sizes(dc, "siplb_dp_protect");
    config::PortConfig e;
    e.name = "ext";
    e.device = ext.device;
    e.addresses = {*Prefix::parse("198.51.100.1/24", true)};
    e.mac = kExtMac;
    config::PortConfig i;
    i.name = "int";
    i.device = in.device;
    i.addresses = {*Prefix::parse("203.0.113.1/24", true)};
    i.mac = kIntMac;
    dc.ports = {e, i};
    dc.routes = {{*Prefix::parse("0.0.0.0/0"), *IpAddress::parse("198.51.100.254"), ""}};
    dc.neighbors = {{*IpAddress::parse("198.51.100.254"), kGatewayMac, "ext"},
                    {kLundBackend.ip, kLundMac, "int"},
                    {kTrunkBackend.ip, kTrunkMac, "int"}};
    config::PoolConfig lund;
    lund.name = "lund";
    lund.listen = {kVip};
    lund.backends = {{kLundBackend}};
    lund.rules = {rule("scanner", "user_agent", "friendly-scanner|sipvicious", config::RuleAction::drop),
                  rule("trunks", "request_uri", "@trunk\\.example\\.net", config::RuleAction::route, "trunk")};
    lund.rate_limit.enabled = true;
    lund.rate_limit.requests_per_s = 0.1;  // one new request per 10 s after the burst: none within the test
    lund.rate_limit.burst = 5;
    lund.rate_limit.prefix_requests_per_s = 1000;
    lund.rate_limit.prefix_burst = 1000;
    lund.rate_limit.table_size = 1024;
    config::PoolConfig trunk;
    trunk.name = "trunk";
    trunk.listen = {*Endpoint::parse("198.51.100.11:5060")};
    trunk.backends = {{kTrunkBackend}};
    cfg.pools = {lund, trunk};
    return cfg;
}

class DataplaneProtect : public RingDataplaneTest<DataplaneProtect> {
protected:
    static void SetUpTestSuite() {
        open_ports("prot");
        if (HasFatalFailure()) return;
        start_from_config(make_config(ext_, int_));
    }

    // Hits of one of lund's rules, by name; nullopt when stats do not list it.
    static std::optional<uint64_t> hits(const dataplane::DataplaneStats& s, const std::string& rule) {
        const auto* r = s.rule("lund", rule);
        return r ? std::optional<uint64_t>(r->at("protect", "hits")) : std::nullopt;
    }
    // Field values lund's rules looked at: scanned, or answered by a memo.
    static uint64_t fields_matched(const dataplane::DataplaneStats& s) {
        return s.pools[0].at("protect", "scans") + s.pools[0].at("protect", "memo_hits");
    }

    // Every test sends from the client side.
    void send(const std::vector<std::vector<uint8_t>>& frames) { RingDataplaneTest::send(ext_, frames); }

    // The frame a client datagram becomes after DNAT to `backend`.
    static std::vector<uint8_t> dnat_expected(const Endpoint& client, const Endpoint& backend, const MacAddress& mac,
                                              const std::string& payload) {
        return build_frame(
                   {.src_mac = kIntMac, .dst_mac = mac, .src = client, .dst = backend, .ttl = 63, .payload = payload})
            .bytes;
    }
    static std::vector<uint8_t> from_client(const Endpoint& client, const std::string& payload,
                                            const Endpoint& vip = kVip) {
        return build_frame({.src_mac = kGatewayMac,
                            .dst_mac = kExtMac,
                            .src = client,
                            .dst = vip,
                            .ttl = 64,
                            .payload = payload})
            .bytes;
    }
};

TEST_F(DataplaneProtect, ScannerIsDroppedByRuleWithoutSpendingTheSourceBudget) {
    const Endpoint scanner = *Endpoint::parse("192.0.2.88:5070");
    auto before = dp_->stats();
    std::vector<std::vector<uint8_t>> frames;
    for (int i = 0; i < 3; ++i)
        frames.push_back(from_client(scanner, request("OPTIONS", "sip:100@198.51.100.10", "scan-" + std::to_string(i),
                                                      "friendly-scanner")));
    send(frames);
    EXPECT_TRUE(receive(int_, 0).empty());
    auto mid = dp_->stats();
    EXPECT_EQ(drops(mid, "protect_rule"), drops(before, "protect_rule") + 3);
    EXPECT_EQ(drops(mid, "rate_limited"), drops(before, "rate_limited"));
    EXPECT_EQ(mid.dropped(), before.dropped() + 3);
    // Counted on the rule, and what it took: the User-Agent, once a message
    // (rule 0 matched: no later field can win).
    EXPECT_EQ(hits(mid, "scanner"), *hits(before, "scanner") + 3);
    EXPECT_EQ(hits(mid, "trunks"), hits(before, "trunks"));
    EXPECT_EQ(fields_matched(mid), fields_matched(before) + 3);
    EXPECT_GE(mid.pools[0].at("protect", "memo_hits"), before.pools[0].at("protect", "memo_hits") + 2);

    // The same source's legitimate requests: the whole burst (5) still passes,
    // byte for byte DNAT to the pool's backend.
    std::vector<std::string> payloads;
    frames.clear();
    for (int i = 0; i < 5; ++i) {
        payloads.push_back(request("INVITE", "sip:bob@example.net", "legit-" + std::to_string(i)));
        frames.push_back(from_client(scanner, payloads.back()));
    }
    send(frames);
    auto out = receive(int_, 5);
    ASSERT_EQ(out.size(), 5u);
    for (size_t i = 0; i < out.size(); ++i)
        EXPECT_EQ(out[i], dnat_expected(scanner, kLundBackend, kLundMac, payloads[i]));
    auto after = dp_->stats();
    EXPECT_EQ(after.dropped(), mid.dropped());
    EXPECT_EQ(after.total("traffic", "to_backend"), mid.total("traffic", "to_backend") + 5);
    // No rule matched: both fields of every INVITE looked at, nothing refused.
    EXPECT_EQ(fields_matched(after), fields_matched(mid) + 10);
    EXPECT_EQ(hits(after, "scanner"), hits(mid, "scanner"));
    EXPECT_EQ(after.pools[0].at("protect", "scan_errors"), 0u);
}

TEST_F(DataplaneProtect, FloodingSourceIsRateLimitedOthersAndResponsesPass) {
    const Endpoint flood = *Endpoint::parse("192.0.2.66:5060");
    const Endpoint other = *Endpoint::parse("192.0.2.77:5060");
    auto before = dp_->stats();
    std::vector<std::vector<uint8_t>> frames;
    std::vector<std::string> passed;
    for (int i = 0; i < 20; ++i) {
        std::string p = request("REGISTER", "sip:example.net", "flood-" + std::to_string(i));
        if (i < 5) passed.push_back(p);
        frames.push_back(from_client(flood, p));
    }
    // Interleaved: another source of the same /24, and a response from the
    // flooding source (responses belong to transactions in progress).
    std::string other_invite = request("INVITE", "sip:bob@example.net", "other-call");
    std::string flood_response = ok_response("flood-answer");
    frames.insert(frames.begin() + 10, from_client(other, other_invite));
    frames.push_back(from_client(flood, flood_response));
    send(frames);
    auto out = receive(int_, 7);
    ASSERT_EQ(out.size(), 7u);
    for (size_t i = 0; i < 5; ++i) EXPECT_EQ(out[i], dnat_expected(flood, kLundBackend, kLundMac, passed[i]));
    EXPECT_EQ(out[5], dnat_expected(other, kLundBackend, kLundMac, other_invite));
    EXPECT_EQ(out[6], dnat_expected(flood, kLundBackend, kLundMac, flood_response));
    auto after = dp_->stats();
    EXPECT_EQ(drops(after, "rate_limited"), drops(before, "rate_limited") + 15);
    EXPECT_EQ(drops(after, "protect_rule"), drops(before, "protect_rule"));
    EXPECT_EQ(after.dropped(), before.dropped() + 15);
    EXPECT_EQ(after.pools[0].at("traffic", "packets_in"), before.pools[0].at("traffic", "packets_in") + 7);
}

TEST_F(DataplaneProtect, RouteRuleBalancesInTheTargetPool) {
    const Endpoint pbx = *Endpoint::parse("192.0.2.99:5060");
    std::string msg = request("INVITE", "sip:+4646123456@trunk.example.net", "trunk-call");
    auto before = dp_->stats();
    send({from_client(pbx, msg)});
    auto out = receive(int_, 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], dnat_expected(pbx, kTrunkBackend, kTrunkMac, msg));
    auto after = dp_->stats();
    ASSERT_EQ(after.pools.size(), 2u);
    EXPECT_EQ(after.pools[0].at("traffic", "packets_in"), before.pools[0].at("traffic", "packets_in"));
    EXPECT_EQ(hits(after, "trunks"), *hits(before, "trunks") + 1);
    EXPECT_EQ(after.pools[1].at("traffic", "packets_in"), before.pools[1].at("traffic", "packets_in") + 1);
    EXPECT_EQ(after.pools[1].at("traffic", "calls"), before.pools[1].at("traffic", "calls") + 1);
    EXPECT_EQ(after.dropped(), before.dropped());
}

// Rules change live: a drop rule added by a reload applies to the next
// datagram while the same workers keep running; a reload with a bad pattern
// is refused, naming pool and rule, and the running rules stay. Rule hits
// follow the rule's name: a rule the reload moves keeps its count, a new
// one starts at 0, a removed one is no longer listed.
TEST_F(DataplaneProtect, RulesReloadLiveAndABadPatternIsRefused) {
    const Endpoint bot = *Endpoint::parse("192.0.2.150:5060");
    const dataplane::Dataplane* const running = dp_;
    auto frame = [&](int i) {
        return from_client(bot,
                           request("OPTIONS", "sip:100@198.51.100.10", "bot-" + std::to_string(i), "evil-bot/2.0"));
    };
    auto scan = [&](int i) {
        return from_client(bot, request("OPTIONS", "sip:100@198.51.100.10", "scan-" + std::to_string(i),
                                        "friendly-scanner"));
    };
    send({frame(0)});
    EXPECT_EQ(receive(int_, 1).size(), 1u);  // no rule matches yet
    EXPECT_FALSE(hits(dp_->stats(), "bots"));
    send({scan(0)});
    EXPECT_TRUE(receive(int_, 0).empty());
    const uint64_t scanner_hits = hits(dp_->stats(), "scanner").value_or(0);
    EXPECT_GE(scanner_hits, 1u);

    config::Config next = *cfg_;
    next.pools[0].rules.insert(next.pools[0].rules.begin(),
                               rule("bots", "user_agent", "evil-bot", config::RuleAction::drop));
    ASSERT_TRUE(reload(next));
    auto before = dp_->stats();
    EXPECT_EQ(hits(before, "bots"), 0u);               // new: from 0
    EXPECT_EQ(hits(before, "scanner"), scanner_hits);  // moved from rule 0 to rule 1: its count stays
    send({frame(1), frame(2), scan(1)});
    EXPECT_TRUE(receive(int_, 0).empty());
    auto after = dp_->stats();
    EXPECT_EQ(drops(after, "protect_rule"), drops(before, "protect_rule") + 3);
    EXPECT_EQ(after.pools[0].at("protect", "rule_drops"), before.pools[0].at("protect", "rule_drops") + 3);
    EXPECT_EQ(hits(after, "bots"), 2u);
    EXPECT_EQ(hits(after, "scanner"), scanner_hits + 1);
    EXPECT_EQ(dp_, running);

    config::Config bad = *cfg_;
    bad.pools[1].rules = {rule("broken", "header:X-Foo", "(", config::RuleAction::drop)};
    auto refused = reload(bad);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.message().find("pool 'trunk'"), std::string::npos) << refused.message();
    EXPECT_NE(refused.message().find("rule 'broken'"), std::string::npos) << refused.message();
    before = dp_->stats();
    send({frame(3)});
    EXPECT_TRUE(receive(int_, 0).empty());  // the running rules still drop it
    EXPECT_EQ(drops(dp_->stats(), "protect_rule"), drops(before, "protect_rule") + 1);

    // Removing the rule lets the bot through again, and takes it off the stats.
    next.pools[0].rules.erase(next.pools[0].rules.begin());
    ASSERT_TRUE(reload(next));
    send({frame(4)});
    EXPECT_EQ(receive(int_, 1).size(), 1u);
    after = dp_->stats();
    EXPECT_FALSE(hits(after, "bots"));
    EXPECT_EQ(hits(after, "scanner"), scanner_hits + 1);
}

// A source that spent its burst stays limited across a reload that leaves
// its pool's limits alone (its bucket carries over), and starts afresh when
// the limits change.
TEST_F(DataplaneProtect, RateLimitBucketsSurviveAReloadThatKeepsTheLimits) {
    const Endpoint source = *Endpoint::parse("192.0.2.160:5060");
    auto burst = [&](const std::string& tag, int n) {
        std::vector<std::vector<uint8_t>> frames;
        for (int i = 0; i < n; ++i)
            frames.push_back(from_client(source, request("REGISTER", "sip:example.net", tag + std::to_string(i))));
        send(frames);
    };
    burst("first-", 5);
    EXPECT_EQ(receive(int_, 5).size(), 5u);  // the whole burst

    config::Config next = *cfg_;
    next.pools[1].backends[0].weight = 2;  // unrelated to lund's limits
    next.pools[0].rules.push_back(rule("extra", "user_agent", "nobody-uses-this", config::RuleAction::drop));
    ASSERT_TRUE(reload(next));
    auto before = dp_->stats();
    burst("second-", 2);
    EXPECT_TRUE(receive(int_, 0).empty());  // still limited: the bucket carried over
    EXPECT_EQ(drops(dp_->stats(), "rate_limited"), drops(before, "rate_limited") + 2);

    next.pools[0].rate_limit.burst = 6;  // new limits: new buckets
    ASSERT_TRUE(reload(next));
    burst("third-", 1);
    EXPECT_EQ(receive(int_, 1).size(), 1u);
}

}  // namespace
