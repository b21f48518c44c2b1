// The Forwarder's per-worker neighbor cache, without EAL: frames are byte
// buffers and time is injected. The cache may only return what the shared
// neighbor table would: a MAC that moved, a neighbor gone stale (which must
// be asked again) or expired must all be seen on the next frame.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "../../src/dataplane/forwarder.h"
#include "support/frame_builder.h"
#include "dataplane_test_util.h"

using namespace siplb;
using namespace siplb::test;
using siplb::test::PoolDesc;

namespace {

const MacAddress kExtMac{{0x02, 0, 0, 0, 0x01, 0x01}};
const MacAddress kIntMac{{0x02, 0, 0, 0, 0x02, 0x02}};
const MacAddress kGatewayMac{{0x02, 0, 0, 0, 0x00, 0xfe}};
const MacAddress kBackendMacA{{0x02, 0, 0, 0, 0x0b, 0x0a}};
const MacAddress kBackendMacB{{0x02, 0, 0, 0, 0x0b, 0x0b}};
const Endpoint kClient = *Endpoint::parse("192.0.2.10:5062");
const Endpoint kVip = *Endpoint::parse("198.51.100.10:5060");
const Endpoint kBackend = *Endpoint::parse("203.0.113.11:5060");
constexpr uint64_t kReachableMs = 1000;

class ForwarderTest : public ::testing::Test {
protected:
    void start(const std::vector<PoolDesc>& pools) {
        snap_ = make_snapshot(pools);
        affinity_ = std::move(balance::AffinityTable::create(1024).value());
        dataplane::PortContext ext, in;
        ext.name = "ext";
        ext.mac = kExtMac;
        ext.addresses = {*Prefix::parse("198.51.100.1/24", true)};
        ext.source_v4 = *IpAddress::parse("198.51.100.1");
        in.name = "int";
        in.mac = kIntMac;
        in.addresses = {*Prefix::parse("203.0.113.1/24", true)};
        in.source_v4 = *IpAddress::parse("203.0.113.1");
        ctx_.ports = {ext, in};
        ctx_.routes = std::move(net::RouteTable::build({{"ext", ext.addresses}, {"int", in.addresses}},
                                                       {{*Prefix::parse("192.0.2.0/24"),
                                                         *IpAddress::parse("198.51.100.254"), ""}})
                                    .value());
        ctx_.neighbors = &neighbors_;
        ctx_.affinity = affinity_.get();
        ctx_.arp_retry_ms = 100;
        ASSERT_EQ(neighbors_.learn(*IpAddress::parse("198.51.100.254"), kGatewayMac, 0, true),
                  net::NeighborTable::Learn::inserted);
        forwarder_ = std::make_unique<dataplane::Forwarder>(ctx_, *counters_);
    }

    static std::string invite(const std::string& call_id) {
        return "INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" + call_id +
               "\r\nFrom: <sip:a@example.net>;tag=1\r\nTo: <sip:b@example.net>\r\nCall-ID: " + call_id +
               "\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    }
    // Runs one frame through the Forwarder at now_ms; the output frame (if any) is left in out_.
    dataplane::Action run(const test::FrameSpec& spec, uint16_t in_port, uint64_t now_ms) {
        auto f = build_frame(spec);
        buf_.assign(64, 0);
        buf_.insert(buf_.end(), f.bytes.begin(), f.bytes.end());
        buf_.resize(buf_.size() + 64, 0);
        dataplane::Action a = forwarder_->process(buf_.data() + 64, static_cast<uint16_t>(f.bytes.size()), 64, 64,
                                                  in_port, snap_.get(), static_cast<uint32_t>(now_ms / 1000), now_ms);
        out_.clear();
        if (a.kind == dataplane::Action::Kind::transmit)
            out_.assign(buf_.begin() + 64 + a.shift, buf_.begin() + 64 + a.shift + a.len);
        return a;
    }
    // One INVITE client -> VIP.
    dataplane::Action send(uint64_t now_ms, const std::string& call_id = "cache@pbx", const Endpoint& vip = kVip) {
        const std::string msg = invite(call_id);
        return run({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = vip, .payload = msg}, 0,
                   now_ms);
    }
    MacAddress out_dst_mac() const {
        MacAddress m;
        std::copy(out_.begin(), out_.begin() + 6, m.bytes.begin());
        return m;
    }
    Endpoint out_source() const {  // IPv4 frames
        Endpoint e;
        std::copy(out_.begin() + 26, out_.begin() + 30, e.ip.bytes.begin());
        e.port = static_cast<uint16_t>(out_[34] << 8 | out_[35]);
        return e;
    }

    std::unique_ptr<const balance::DataplaneSnapshot> snap_;
    std::unique_ptr<balance::AffinityTable> affinity_;
    net::NeighborTable neighbors_{64, kReachableMs};
    dataplane::ForwardContext ctx_;
    std::unique_ptr<dataplane::WorkerCounters> counters_ = std::make_unique<dataplane::WorkerCounters>();
    std::unique_ptr<dataplane::Forwarder> forwarder_;
    std::vector<uint8_t> buf_, out_;
};

class ForwarderNeighborCache : public ForwarderTest {
protected:
    void SetUp() override { start({{"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060"}}}); }
};

TEST_F(ForwarderNeighborCache, MacMoveIsSeenOnTheNextFrame) {
    ASSERT_EQ(neighbors_.learn(kBackend.ip, kBackendMacA, 1, false, 0), net::NeighborTable::Learn::inserted);
    for (uint64_t t : {10, 20, 30}) {  // the second and third frames come from the cache
        ASSERT_EQ(send(t).kind, dataplane::Action::Kind::transmit);
        EXPECT_EQ(out_dst_mac(), kBackendMacA);
    }
    const uint64_t g = neighbors_.generation();
    ASSERT_EQ(neighbors_.learn(kBackend.ip, kBackendMacB, 1, false, 40), net::NeighborTable::Learn::updated);
    EXPECT_NE(neighbors_.generation(), g);
    ASSERT_EQ(send(50).kind, dataplane::Action::Kind::transmit);
    EXPECT_EQ(out_dst_mac(), kBackendMacB);
    auto expect = build_frame({.src_mac = kIntMac, .dst_mac = kBackendMacB, .src = kClient, .dst = kBackend,
                               .ttl = 63, .payload = std::string_view(reinterpret_cast<const char*>(buf_.data()) + 64 + 42,
                                                                      out_.size() - 42)});
    EXPECT_EQ(out_, expect.bytes);
}

TEST_F(ForwarderNeighborCache, ConfirmationKeepsTheGeneration) {
    ASSERT_EQ(neighbors_.learn(kBackend.ip, kBackendMacA, 1, false, 0), net::NeighborTable::Learn::inserted);
    const uint64_t g = neighbors_.generation();
    EXPECT_EQ(neighbors_.learn(kBackend.ip, kBackendMacA, 1, false, 1500), net::NeighborTable::Learn::unchanged);
    EXPECT_EQ(neighbors_.generation(), g);  // confirmations do not invalidate caches
    auto e = neighbors_.lookup(kBackend.ip, 1600);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->fresh_until_ms, 1500 + kReachableMs);
}

TEST_F(ForwarderNeighborCache, StaleNeighborIsAskedAgainAndExpiredOneIsNotUsed) {
    ASSERT_EQ(neighbors_.learn(kBackend.ip, kBackendMacA, 1, false, 0), net::NeighborTable::Learn::inserted);
    auto a = send(10);
    ASSERT_EQ(a.kind, dataplane::Action::Kind::transmit);
    EXPECT_FALSE(a.resolve());  // reachable: cached, nothing to ask
    // Stale from kReachableMs on: still used, and refreshed (rate-limited).
    a = send(kReachableMs + 1);
    ASSERT_EQ(a.kind, dataplane::Action::Kind::transmit);
    EXPECT_EQ(out_dst_mac(), kBackendMacA);
    EXPECT_TRUE(a.resolve());
    EXPECT_EQ(a.port, 1);
    EXPECT_EQ(forwarder_->resolve_target(), kBackend.ip);
    a = send(kReachableMs + 2);
    EXPECT_EQ(a.kind, dataplane::Action::Kind::transmit);
    EXPECT_FALSE(a.resolve());  // within arp_retry_ms
    a = send(kReachableMs + 2 + ctx_.arp_retry_ms);
    EXPECT_TRUE(a.resolve());
    // Expired after 4 x reachable: no longer forwarded to the old MAC.
    a = send(net::NeighborTable::kExpireFactor * kReachableMs + 1);
    EXPECT_EQ(a.kind, dataplane::Action::Kind::drop);
    EXPECT_EQ(counters_->drops[static_cast<size_t>(dataplane::DropReason::no_neighbor)].load(), 1u);
    // Confirmed again (a reply from it was gleaned): reachable and cached again.
    ASSERT_EQ(neighbors_.learn(kBackend.ip, kBackendMacA, 1, false, 5000), net::NeighborTable::Learn::updated);
    a = send(5001);
    EXPECT_EQ(a.kind, dataplane::Action::Kind::transmit);
    EXPECT_FALSE(a.resolve());
}

TEST_F(ForwarderNeighborCache, ExpiryByTheSweepInvalidates) {
    ASSERT_EQ(neighbors_.learn(kBackend.ip, kBackendMacA, 1, false, 0), net::NeighborTable::Learn::inserted);
    ASSERT_EQ(send(10).kind, dataplane::Action::Kind::transmit);
    const uint64_t g = neighbors_.generation();
    EXPECT_EQ(neighbors_.expire(net::NeighborTable::kExpireFactor * kReachableMs), 1u);
    EXPECT_NE(neighbors_.generation(), g);
    EXPECT_EQ(send(net::NeighborTable::kExpireFactor * kReachableMs).kind, dataplane::Action::Kind::drop);
}

}  // namespace

namespace {

// One server farm behind two names: 203.0.113.11 is in lund and in trunk.
// A reply must leave from the VIP the call came in on.
class ForwarderSharedBackend : public ForwarderTest {
protected:
    void SetUp() override {
        start({{"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060", "203.0.113.12:5060"}},
               {"trunk", {"198.51.100.20:5060"}, {"203.0.113.11:5060"}}});
        for (const char* b : {"203.0.113.11", "203.0.113.12"})
            ASSERT_EQ(neighbors_.learn(*IpAddress::parse(b), kBackendMacA, 1, true), net::NeighborTable::Learn::inserted);
        ASSERT_EQ(snap_->find_backend(kShared).pools.size(), 2u);
    }
    // A Call-ID lund's table sends to `backend`.
    std::string call_id_in_lund(const Endpoint& backend, const std::string& prefix) const {
        const auto& lund = *snap_->pools()[0];
        for (int i = 0; i < 10000; ++i) {
            const std::string id = prefix + std::to_string(i) + "@pbx";
            const uint16_t b = lund.table().lookup(balance::hash_call_id(id.data(), id.size(), lund.seed()));
            if (lund.backends()[b].address == backend) return id;
        }
        ADD_FAILURE() << "no Call-ID maps to " << backend.to_string();
        return {};
    }
    // The backend's 200 OK for the call back toward the client.
    dataplane::Action reply(const std::string& call_id, uint64_t now_ms) {
        const std::string msg = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK1\r\n"
                                "From: <sip:a@example.net>;tag=1\r\nTo: <sip:b@example.net>;tag=2\r\nCall-ID: " +
                                call_id + "\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        return run({.src_mac = kBackendMacA, .dst_mac = kIntMac, .src = kShared, .dst = kClient, .payload = msg}, 1,
                   now_ms);
    }
    uint64_t first_pool_fallbacks() const { return counters_->shared_backend_first_pool.load(); }

    const Endpoint kShared = *Endpoint::parse("203.0.113.11:5060");
    const Endpoint kOther = *Endpoint::parse("203.0.113.12:5060");
    const Endpoint kLundVip = *Endpoint::parse("198.51.100.10:5060");
    const Endpoint kTrunkVip = *Endpoint::parse("198.51.100.20:5060");
};

TEST_F(ForwarderSharedBackend, ReplyLeavesFromTheVipTheCallCameInOn) {
    // Through lund's VIP, to the shared backend: lund's VIP answers.
    const std::string via_lund = call_id_in_lund(kShared, "lund-");
    ASSERT_EQ(send(10, via_lund, kLundVip).kind, dataplane::Action::Kind::transmit);
    ASSERT_EQ(reply(via_lund, 20).kind, dataplane::Action::Kind::transmit);
    EXPECT_EQ(out_source(), kLundVip);
    // Through trunk's VIP, with a Call-ID lund's table would also send to
    // the shared backend: only the affinity entry tells, and trunk answers.
    const std::string via_trunk = call_id_in_lund(kShared, "trunk-");
    ASSERT_EQ(send(30, via_trunk, kTrunkVip).kind, dataplane::Action::Kind::transmit);
    ASSERT_EQ(reply(via_trunk, 40).kind, dataplane::Action::Kind::transmit);
    EXPECT_EQ(out_source(), kTrunkVip);
    EXPECT_EQ(first_pool_fallbacks(), 0u);
}

TEST_F(ForwarderSharedBackend, UnseenCallsArePlacedByTheTablesThenTheFirstPool) {
    // Lund's table sends it elsewhere, trunk's (one backend) here: trunk.
    ASSERT_EQ(reply(call_id_in_lund(kOther, "new-"), 10).kind, dataplane::Action::Kind::transmit);
    EXPECT_EQ(out_source(), kTrunkVip);
    EXPECT_EQ(first_pool_fallbacks(), 0u);
    // Both tables send it here and no affinity entry decides: the first such pool.
    ASSERT_EQ(reply(call_id_in_lund(kShared, "both-"), 20).kind, dataplane::Action::Kind::transmit);
    EXPECT_EQ(out_source(), kLundVip);
    EXPECT_EQ(first_pool_fallbacks(), 0u);
    // Nothing to place it by (no Call-ID): still forwarded, from the first pool's VIP, and counted.
    ASSERT_EQ(run({.src_mac = kBackendMacA, .dst_mac = kIntMac, .src = kShared, .dst = kClient,
                   .payload = "SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n"},
                  1, 30)
                  .kind,
              dataplane::Action::Kind::transmit);
    EXPECT_EQ(out_source(), kLundVip);
    EXPECT_EQ(first_pool_fallbacks(), 1u);
}

}  // namespace
