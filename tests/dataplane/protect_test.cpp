// The protect stage in the worker path, over net_ring ports: [[pool.rule]]
// drop and route actions and per-source rate limits act between the SIP
// parse and the backend choice, and every outcome is counted by reason.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ring.h>

#include "../net/frame_builder.h"
#include "dataplane_test_util.h"
#include "siplb/dataplane/dataplane.h"

using namespace siplb;
using namespace siplb::test;
using std::chrono::milliseconds;

namespace {

const MacAddress kExtMac{{0x02, 0, 0, 0, 0x01, 0x01}};
const MacAddress kIntMac{{0x02, 0, 0, 0, 0x02, 0x02}};
const MacAddress kGatewayMac{{0x02, 0, 0, 0, 0x00, 0xfe}};
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

struct RingPort {
    rte_ring* rx = nullptr;
    rte_ring* tx = nullptr;
    int port_id = -1;
    std::string device;
};

RingPort make_ring_port(const std::string& name) {
    RingPort p;
    p.rx = rte_ring_create((name + "_rx").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    p.tx = rte_ring_create((name + "_tx").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    p.port_id = rte_eth_from_rings(name.c_str(), &p.rx, 1, &p.tx, 1, 0);
    char dev[RTE_ETH_NAME_MAX_LEN] = {};
    if (p.port_id >= 0 && rte_eth_dev_get_name_by_port(static_cast<uint16_t>(p.port_id), dev) == 0) p.device = dev;
    return p;
}

rte_mempool* g_test_pool = nullptr;

class EalEnvironment : public ::testing::Environment {
public:
    void SetUp() override {
        auto st = dataplane::init_eal(test_eal_args("siplb_dp_protect"));
        if (!st) {
            fprintf(stderr, "%s\n", st.message().c_str());
            std::exit(1);
        }
        g_test_pool = rte_pktmbuf_pool_create("test_frames", 2048, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
        if (!g_test_pool) std::exit(1);
    }
};
const auto* const g_env = ::testing::AddGlobalTestEnvironment(new EalEnvironment);

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
    dc.eal = test_eal_args("siplb_dp_protect");
    dc.workers = 1;
    dc.mbufs = 4096;
    dc.mbuf_cache = 32;
    dc.rx_ring = 256;
    dc.tx_ring = 256;
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

class DataplaneProtect : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        ext_ = make_ring_port("prot_ext");
        int_ = make_ring_port("prot_int");
        ASSERT_GE(ext_.port_id, 0);
        ASSERT_GE(int_.port_id, 0);
        cfg_ = new config::Config(make_config(ext_, int_));
        publisher_ = new balance::SnapshotPublisher(make_snapshot({
            {"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060"}},
            {"trunk", {"198.51.100.11:5060"}, {"203.0.113.12:5060"}},
        }));
        affinity_ = balance::AffinityTable::create(1024).value().release();
        auto dp = dataplane::Dataplane::create(*cfg_, *publisher_, *affinity_);
        ASSERT_TRUE(dp) << dp.message();
        dp_ = dp.value().release();
        auto st = dp_->start();
        ASSERT_TRUE(st) << st.message();
    }
    static void TearDownTestSuite() {
        if (dp_) dp_->stop();
        for (RingPort* p : {&ext_, &int_}) {
            void* m;
            while (p->tx && rte_ring_dequeue(p->tx, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
            while (p->rx && rte_ring_dequeue(p->rx, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        }
        delete dp_;
        delete affinity_;
        delete publisher_;
        delete cfg_;
        dp_ = nullptr;
    }

    void SetUp() override { ASSERT_NE(dp_, nullptr); }

    void send(const std::vector<std::vector<uint8_t>>& frames) {
        uint64_t before = dp_->stats().rx_packets;
        for (const auto& f : frames) {
            rte_mbuf* m = to_mbuf(g_test_pool, f);
            ASSERT_NE(m, nullptr);
            ASSERT_EQ(rte_ring_enqueue(ext_.rx, m), 0);
        }
        ASSERT_TRUE(wait_until([&] { return dp_->stats().rx_packets >= before + frames.size(); }));
    }

    std::vector<std::vector<uint8_t>> receive(RingPort& p, size_t n) {
        std::vector<std::vector<uint8_t>> out;
        auto drain = [&] {
            void* m;
            while (rte_ring_dequeue(p.tx, &m) == 0) {
                out.push_back(from_mbuf(static_cast<rte_mbuf*>(m)));
                rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
            }
        };
        wait_until([&] {
            drain();
            return out.size() >= n;
        });
        std::this_thread::sleep_for(milliseconds(20));
        drain();
        EXPECT_EQ(out.size(), n);
        return out;
    }

    static uint64_t drops(const dataplane::DataplaneStats& s, const std::string& reason) {
        for (const auto& [name, count] : s.drops)
            if (name == reason) return count;
        ADD_FAILURE() << "no drop reason " << reason;
        return 0;
    }

    // The frame a client datagram becomes after DNAT to `backend`.
    static std::vector<uint8_t> dnat_expected(const Endpoint& client, const Endpoint& backend, const MacAddress& mac,
                                              const std::string& payload) {
        return build_frame({.src_mac = kIntMac, .dst_mac = mac, .src = client, .dst = backend, .ttl = 63,
                            .payload = payload})
            .bytes;
    }
    static std::vector<uint8_t> from_client(const Endpoint& client, const std::string& payload,
                                            const Endpoint& vip = kVip) {
        return build_frame({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = client, .dst = vip, .ttl = 64,
                            .payload = payload})
            .bytes;
    }

    static inline RingPort ext_, int_;
    static inline config::Config* cfg_ = nullptr;
    static inline balance::SnapshotPublisher* publisher_ = nullptr;
    static inline balance::AffinityTable* affinity_ = nullptr;
    static inline dataplane::Dataplane* dp_ = nullptr;
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
    EXPECT_EQ(mid.dropped, before.dropped + 3);

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
    for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i], dnat_expected(scanner, kLundBackend, kLundMac, payloads[i]));
    auto after = dp_->stats();
    EXPECT_EQ(after.dropped, mid.dropped);
    EXPECT_EQ(after.to_backend, mid.to_backend + 5);
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
    EXPECT_EQ(after.dropped, before.dropped + 15);
    EXPECT_EQ(after.pools[0].packets, before.pools[0].packets + 7);
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
    EXPECT_EQ(after.pools[0].packets, before.pools[0].packets);
    EXPECT_EQ(after.pools[1].packets, before.pools[1].packets + 1);
    EXPECT_EQ(after.pools[1].calls, before.pools[1].calls + 1);
    EXPECT_EQ(after.dropped, before.dropped);
}

TEST_F(DataplaneProtect, BadRulePatternFailsCreateNamingPoolAndRule) {
    config::Config cfg = *cfg_;
    cfg.pools[1].rules = {rule("broken", "header:X-Foo", "(", config::RuleAction::drop)};
    balance::SnapshotPublisher publisher(make_snapshot({{"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060"}}}));
    auto affinity = balance::AffinityTable::create(64).value();
    auto dp = dataplane::Dataplane::create(cfg, publisher, *affinity);
    ASSERT_FALSE(dp);
    EXPECT_NE(dp.message().find("pool 'trunk'"), std::string::npos) << dp.message();
    EXPECT_NE(dp.message().find("rule 'broken'"), std::string::npos) << dp.message();
}

}  // namespace
