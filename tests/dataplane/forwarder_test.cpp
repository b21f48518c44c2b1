// The Forwarder's per-worker neighbor cache, without EAL: frames are byte
// buffers and time is injected. The cache may only return what the shared
// neighbor table would: a MAC that moved, a neighbor gone stale (which must
// be asked again) or expired must all be seen on the next frame.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "../../src/dataplane/forwarder.h"
#include "../net/frame_builder.h"
#include "dataplane_test_util.h"

using namespace siplb;
using namespace siplb::test;

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

class ForwarderNeighborCache : public ::testing::Test {
protected:
    void SetUp() override {
        snap_ = make_snapshot({{"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060"}}});
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

    // Sends one INVITE client -> VIP at now_ms; returns the Action and leaves the frame in out_.
    dataplane::Action send(uint64_t now_ms, const std::string& call_id = "cache@pbx") {
        const std::string msg = "INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" +
                                call_id + "\r\nFrom: <sip:a@example.net>;tag=1\r\nTo: <sip:b@example.net>\r\nCall-ID: " +
                                call_id + "\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        auto f = build_frame({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = kVip, .payload = msg});
        buf_.assign(64, 0);
        buf_.insert(buf_.end(), f.bytes.begin(), f.bytes.end());
        buf_.resize(buf_.size() + 64, 0);
        dataplane::Action a = forwarder_->process(buf_.data() + 64, static_cast<uint16_t>(f.bytes.size()), 64, 64, 0,
                                                  snap_.get(), static_cast<uint32_t>(now_ms / 1000), now_ms);
        out_.clear();
        if (a.kind == dataplane::Action::Kind::transmit)
            out_.assign(buf_.begin() + 64 + a.shift, buf_.begin() + 64 + a.shift + a.len);
        return a;
    }
    MacAddress out_dst_mac() const {
        MacAddress m;
        std::copy(out_.begin(), out_.begin() + 6, m.bytes.begin());
        return m;
    }

    std::unique_ptr<const balance::DataplaneSnapshot> snap_;
    std::unique_ptr<balance::AffinityTable> affinity_;
    net::NeighborTable neighbors_{64, kReachableMs};
    dataplane::ForwardContext ctx_;
    std::unique_ptr<dataplane::WorkerCounters> counters_ = std::make_unique<dataplane::WorkerCounters>();
    std::unique_ptr<dataplane::Forwarder> forwarder_;
    std::vector<uint8_t> buf_, out_;
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
