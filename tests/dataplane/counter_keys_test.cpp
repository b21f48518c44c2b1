// Pool and backend counters are keyed by pool name and backend address, not
// by position in the snapshot: reloads that remove, add and reorder pools
// keep every surviving pool's and backend's counts. The snapshots come from
// the daemon's own path (config -> PoolManager -> SnapshotBuilder).
#include <gtest/gtest.h>

#include "support/frame_builder.h"
#include "dataplane_test_util.h"
#include "ring_fixture.h"

using namespace siplb;
using namespace siplb::test;
using namespace siplb::dataplane::testing;

namespace {

const Endpoint kClient = *Endpoint::parse("192.0.2.10:5062");
const Endpoint kAlphaVip = *Endpoint::parse("198.51.100.10:5060");
const Endpoint kBetaVip = *Endpoint::parse("198.51.100.11:5060");
const Endpoint kGammaVip = *Endpoint::parse("198.51.100.12:5060");
const Endpoint kAlphaBackend = *Endpoint::parse("203.0.113.11:5060");
const Endpoint kBetaBackend = *Endpoint::parse("203.0.113.12:5080");

config::PoolConfig pool_config(const char* name, const Endpoint& vip, const Endpoint& backend) {
    config::PoolConfig p;
    p.name = name;
    p.listen = {vip};
    p.backends = {{backend, 1, true}};
    return p;
}

std::string invite(const std::string& call_id) {
    return "INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" + call_id +
           "\r\nFrom: <sip:alice@example.net>;tag=1\r\nTo: <sip:bob@example.net>\r\nCall-ID: " + call_id +
           "\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
}

const auto* const g_env = ::testing::AddGlobalTestEnvironment(new RingEalEnvironment("siplb_ckeys", "ckeys_frames"));

class CounterKeys : public RingDataplaneTest<CounterKeys> {
protected:
    static void SetUpTestSuite() {
        open_ports("ckeys");
        if (HasFatalFailure()) return;
        config::Config cfg;
        set_test_sizes(cfg.dataplane, "siplb_ckeys");
        set_two_ports(cfg.dataplane, ext_, int_, false);
        cfg.pools = {pool_config("alpha", kAlphaVip, kAlphaBackend), pool_config("beta", kBetaVip, kBetaBackend)};
        start_from_config(cfg);
    }

    void reload_pools(std::vector<config::PoolConfig> pools) {
        config::Config next = *cfg_;
        next.pools = std::move(pools);
        ASSERT_TRUE(reload(next));
    }

    void invites(const Endpoint& vip, int n, const std::string& tag) {
        std::vector<std::vector<uint8_t>> frames;
        for (int i = 0; i < n; ++i)
            frames.push_back(build_frame({.src_mac = kGatewayMac,
                                          .dst_mac = kExtMac,
                                          .src = kClient,
                                          .dst = vip,
                                          .ttl = 60,
                                          .payload = invite(tag + std::to_string(i) + "@192.0.2.10")})
                                 .bytes);
        send(ext_, frames);
        receive(int_, static_cast<size_t>(n));
    }

    static uint64_t pool_in(const dataplane::DataplaneStats& s, const char* name) {
        const auto* p = s.pool(name);
        return p ? p->at("traffic", "packets_in") : UINT64_MAX;
    }
    static uint64_t backend_to(const dataplane::DataplaneStats& s, const char* pool, const Endpoint& b) {
        const auto* e = s.backend(pool, b);
        return e ? e->at("traffic", "packets_to") : UINT64_MAX;
    }
};

TEST_F(CounterKeys, SurviveReloadsThatRemoveAddAndReorderPools) {
    invites(kBetaVip, 100, "beta-a");
    invites(kAlphaVip, 10, "alpha-a");
    auto s = dp_->stats();
    EXPECT_EQ(pool_in(s, "beta"), 100u);
    EXPECT_EQ(backend_to(s, "beta", kBetaBackend), 100u);
    EXPECT_EQ(pool_in(s, "alpha"), 10u);

    // alpha removed: beta moves to position 0 of the snapshot.
    reload_pools({pool_config("beta", kBetaVip, kBetaBackend)});
    s = dp_->stats();
    ASSERT_EQ(s.pools.size(), 1u);
    EXPECT_EQ(pool_in(s, "beta"), 100u);
    EXPECT_EQ(backend_to(s, "beta", kBetaBackend), 100u);

    // A new pool first, then beta, then alpha back: nobody inherits anybody's counts.
    reload_pools({pool_config("gamma", kGammaVip, *Endpoint::parse("203.0.113.13:5060")),
                  pool_config("beta", kBetaVip, kBetaBackend), pool_config("alpha", kAlphaVip, kAlphaBackend)});
    s = dp_->stats();
    ASSERT_EQ(s.pools.size(), 3u);
    EXPECT_EQ(s.pools[0].name, "gamma");
    EXPECT_EQ(pool_in(s, "gamma"), 0u);
    EXPECT_EQ(pool_in(s, "beta"), 100u);
    EXPECT_EQ(backend_to(s, "beta", kBetaBackend), 100u);
    EXPECT_EQ(pool_in(s, "alpha"), 10u);  // the name's counts continue
    EXPECT_EQ(backend_to(s, "alpha", kAlphaBackend), 10u);

    invites(kBetaVip, 5, "beta-b");
    s = dp_->stats();
    EXPECT_EQ(pool_in(s, "beta"), 105u);
    EXPECT_EQ(backend_to(s, "beta", kBetaBackend), 105u);
    EXPECT_EQ(pool_in(s, "gamma"), 0u);
}

}  // namespace
