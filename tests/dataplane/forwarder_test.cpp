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
#include "two_port_context.h"
#include "siplb/balance/pick.h"
#include "siplb/net/arp.h"

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
        client_vips_ = std::move(balance::ClientVipTable::create(1024).value());
        set_two_ports(ctx_, kExtMac, kIntMac);
        ctx_.neighbors = &neighbors_;
        ctx_.affinity = affinity_.get();
        ctx_.client_vips = client_vips_.get();
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
        return run_bytes(build_frame(spec).bytes, in_port, now_ms);
    }
    dataplane::Action run_bytes(const std::vector<uint8_t>& frame, uint16_t in_port, uint64_t now_ms,
                                net::ParseOptions parse = {}) {
        buf_.assign(64, 0);
        buf_.insert(buf_.end(), frame.begin(), frame.end());
        buf_.resize(buf_.size() + 64, 0);
        dataplane::Action a = forwarder_->process(buf_.data() + 64, static_cast<uint16_t>(frame.size()), 64, 64,
                                                  in_port, snap_.get(), static_cast<uint32_t>(now_ms / 1000), now_ms,
                                                  parse);
        out_.clear();
        if (a.kind == dataplane::Action::Kind::transmit)
            out_.assign(buf_.begin() + 64 + a.shift, buf_.begin() + 64 + a.shift + a.len);
        return a;
    }
    // The frame as the last run left it in place.
    std::vector<uint8_t> in_place(size_t len) const {
        return {buf_.begin() + 64, buf_.begin() + 64 + static_cast<long>(len)};
    }
    // One INVITE client -> VIP.
    dataplane::Action send(uint64_t now_ms, const std::string& call_id = "cache@pbx", const Endpoint& vip = kVip) {
        const std::string msg = invite(call_id);
        return run({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = vip, .payload = msg}, 0, now_ms);
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
    std::unique_ptr<balance::ClientVipTable> client_vips_;
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
    auto expect = build_frame(
        {.src_mac = kIntMac,
         .dst_mac = kBackendMacB,
         .src = kClient,
         .dst = kBackend,
         .ttl = 63,
         .payload = std::string_view(reinterpret_cast<const char*>(buf_.data()) + 64 + 42, out_.size() - 42)});
    EXPECT_EQ(out_, expect.bytes);
}

// Gleaning: an IPv4 sender is learned when it is on-link of the port it
// came in on, never when it is routed there (its MAC is the router's) or
// arrives on another port.
TEST_F(ForwarderNeighborCache, GleansOnLinkSendersOfThePortOnly) {
    ASSERT_EQ(neighbors_.learn(kBackend.ip, kBackendMacA, 1, false, 0), net::NeighborTable::Learn::inserted);
    ASSERT_EQ(send(10).kind, dataplane::Action::Kind::transmit);  // kClient: routed via the gateway
    EXPECT_FALSE(neighbors_.lookup(kClient.ip, 10));

    const MacAddress local_mac{{0x02, 0, 0, 0, 0x0c, 0x01}};
    const Endpoint local = *Endpoint::parse("198.51.100.77:5062");
    const std::string msg = invite("glean@phone");
    ASSERT_EQ(run({.src_mac = local_mac, .dst_mac = kExtMac, .src = local, .dst = kVip, .payload = msg}, 0, 20).kind,
              dataplane::Action::Kind::transmit);
    auto e = neighbors_.lookup(local.ip, 20);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->mac, local_mac);
    EXPECT_EQ(e->port, 0);

    // A client-side address arriving on the backends' port: not on-link
    // there, not learned.
    const Endpoint stray = *Endpoint::parse("198.51.100.78:5062");
    ASSERT_EQ(run({.src_mac = local_mac, .dst_mac = kIntMac, .src = stray, .dst = kVip, .payload = msg}, 1, 30).kind,
              dataplane::Action::Kind::transmit);
    EXPECT_FALSE(neighbors_.lookup(stray.ip, 30));
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
            ASSERT_EQ(neighbors_.learn(*IpAddress::parse(b), kBackendMacA, 1, true),
                      net::NeighborTable::Learn::inserted);
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
        const std::string msg =
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK1\r\n"
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
    ASSERT_EQ(run({.src_mac = kBackendMacA,
                   .dst_mac = kIntMac,
                   .src = kShared,
                   .dst = kClient,
                   .payload = "SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n"},
                  1, 30)
                  .kind,
              dataplane::Action::Kind::transmit);
    EXPECT_EQ(out_source(), kLundVip);
    EXPECT_EQ(first_pool_fallbacks(), 1u);
}

}  // namespace

namespace {

// Action::to_kernel: set exactly on frames counted not_for_us and left
// untouched (the worker hands them to the port's kernel path), never on
// frames dropped for being broken.
class ForwarderToKernel : public ForwarderTest {
protected:
    void SetUp() override {
        start({{"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060"}}});
        ASSERT_EQ(neighbors_.learn(kBackend.ip, kBackendMacA, 1, true), net::NeighborTable::Learn::inserted);
    }
    uint64_t drops(dataplane::DropReason r) const { return counters_->drops[static_cast<size_t>(r)].load(); }
    // Runs `frame` on port 0 and expects a drop of reason `r`, flagged to_kernel or not.
    void expect_drop(const std::vector<uint8_t>& frame, dataplane::DropReason r, bool to_kernel) {
        const uint64_t before = drops(r);
        const dataplane::Action a = run_bytes(frame, 0, 10);
        EXPECT_EQ(a.kind, dataplane::Action::Kind::drop);
        EXPECT_EQ(a.to_kernel(), to_kernel);
        EXPECT_EQ(drops(r), before + 1) << dataplane::drop_reason_name(r);
        if (to_kernel) {
            EXPECT_EQ(in_place(frame.size()), frame);  // the kernel gets it as it came
        }
    }
    static std::vector<uint8_t> arp_request(const IpAddress& target) {
        std::vector<uint8_t> f(60, 0);
        std::fill(f.begin(), f.begin() + 6, 0xff);
        std::copy(kGatewayMac.bytes.begin(), kGatewayMac.bytes.end(), f.begin() + 6);
        f[12] = 0x08;
        f[13] = 0x06;
        net::ArpMessage m;
        m.op = net::kArpRequest;
        m.sender_mac = kGatewayMac;
        m.sender_ip_be = IpAddress::parse("198.51.100.254")->v4_be();
        m.target_ip_be = target.v4_be();
        net::write_arp(f.data() + 14, m);
        return f;
    }
    // An IPv4 frame from the client to `dst` whose protocol is changed to `proto` (header checksum kept valid).
    static std::vector<uint8_t> ipv4_with_protocol(const Endpoint& dst, uint8_t proto) {
        auto f = build_frame(
            {.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = dst, .payload = "0123456789abcdef"});
        f.bytes[f.l3 + 9] = proto;
        put16(f.bytes, f.l3 + 10, naive_ipv4_checksum(f.bytes, f.l3));
        return f.bytes;
    }
};

TEST_F(ForwarderToKernel, OthersProtocolsAreTheKernels) {
    using dataplane::DropReason;
    // ARP for an address that is not ours, and an ARP reply: not answered, the kernel's.
    expect_drop(arp_request(*IpAddress::parse("198.51.100.77")), DropReason::not_for_us, true);
    auto reply = arp_request(*IpAddress::parse("198.51.100.1"));
    reply[21] = 2;  // op: reply
    expect_drop(reply, DropReason::not_for_us, true);
    // TCP to the node address (SSH, BGP).
    expect_drop(ipv4_with_protocol(*Endpoint::parse("198.51.100.1:22"), 6), DropReason::not_for_us, true);
    // UDP to the node address on a port no pool listens on (DNS answers to the node).
    expect_drop(build_frame({.src_mac = kGatewayMac,
                             .dst_mac = kExtMac,
                             .src = kClient,
                             .dst = *Endpoint::parse("198.51.100.1:53"),
                             .payload = "dns"})
                    .bytes,
                DropReason::not_for_us, true);
    // The backend answering the node address (the control plane's health probe).
    auto probe_reply = build_frame({.src_mac = kBackendMacA,
                                    .dst_mac = kIntMac,
                                    .src = kBackend,
                                    .dst = *Endpoint::parse("203.0.113.1:5060"),
                                    .payload = "SIP/2.0 200 OK\r\n\r\n"});
    const uint64_t before = drops(DropReason::not_for_us);
    const dataplane::Action a = run_bytes(probe_reply.bytes, 1, 10);
    EXPECT_EQ(a.kind, dataplane::Action::Kind::drop);
    EXPECT_TRUE(a.to_kernel());
    EXPECT_EQ(drops(DropReason::not_for_us), before + 1);
    EXPECT_EQ(in_place(probe_reply.bytes.size()), probe_reply.bytes);
}

TEST_F(ForwarderToKernel, PortUnreachableHeldBackByTheRateLimitIsTheKernels) {
    using dataplane::DropReason;
    // UDP to the VIP on a port no pool listens on: answered "port
    // unreachable" while the per-worker ICMP budget lasts; past it the
    // datagram is counted not_for_us and left untouched, like any other.
    const auto frame = build_frame({.src_mac = kGatewayMac,
                                    .dst_mac = kExtMac,
                                    .src = kClient,
                                    .dst = *Endpoint::parse("198.51.100.10:9999"),
                                    .payload = "nobody"})
                           .bytes;
    for (uint32_t i = 0; i < ctx_.icmp_error_burst; ++i) {
        const dataplane::Action a = run_bytes(frame, 0, 10);
        ASSERT_EQ(a.kind, dataplane::Action::Kind::transmit) << i;
        EXPECT_FALSE(a.to_kernel());
    }
    expect_drop(frame, DropReason::not_for_us, true);
    EXPECT_EQ(counters_->icmp_errors_rate_limited.load(), 1u);
}

TEST_F(ForwarderToKernel, AnsweredOrBrokenFramesAreNot) {
    using dataplane::DropReason;
    // An ARP request for the VIP is answered here.
    const dataplane::Action a = run_bytes(arp_request(kVip.ip), 0, 10);
    EXPECT_EQ(a.kind, dataplane::Action::Kind::transmit);
    EXPECT_FALSE(a.to_kernel());
    // Bad checksums: UDP, IPv4 header, ICMP.
    auto udp = build_frame(
        {.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = kVip, .payload = invite("sum@pbx")});
    udp.bytes[udp.l4 + 6] ^= 0x5a;
    expect_drop(udp.bytes, DropReason::bad_checksum, false);
    auto ip = ipv4_with_protocol(*Endpoint::parse("198.51.100.1:22"), 6);
    ip[14 + 10] ^= 0x5a;
    expect_drop(ip, DropReason::bad_checksum, false);
    auto icmp = ipv4_with_protocol(*Endpoint::parse("198.51.100.1:0"), 1);
    icmp[34] = 8;  // echo request, with the UDP header's port bytes as its (wrong) checksum
    icmp[35] = 0;
    expect_drop(icmp, DropReason::bad_checksum, false);
    // A frame on a VLAN the port is not on, and one that is cut short.
    auto tagged = build_frame({.src_mac = kGatewayMac,
                               .dst_mac = kExtMac,
                               .vlan = 7,
                               .src = kClient,
                               .dst = *Endpoint::parse("198.51.100.1:53"),
                               .payload = "dns"});
    expect_drop(tagged.bytes, DropReason::vlan_mismatch, false);
    std::vector<uint8_t> cut(udp.bytes.begin(), udp.bytes.begin() + 30);
    expect_drop(cut, DropReason::short_frame, false);
}

}  // namespace

namespace {

// Passive overload detection counts, per backend, the responses with the
// pool's overload codes (503) on their way to clients, and keeps the
// Retry-After of the latest one that carried it.
TEST_F(ForwarderToKernel, UnverifiedCorruptionReachesTheBackendStillCorrupt) {
    // Without the software check (dataplane.verify_l4_checksums = false, or
    // a NIC that did not look), a datagram corrupted on the way in is
    // forwarded, and the incremental rewrite keeps its checksum wrong, so
    // the backend's stack drops it. Every byte position in turn.
    const auto good = build_frame(
        {.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = kVip, .payload = invite("sum@pbx")});
    net::ParseOptions unverified;
    unverified.verify_udp_checksum = false;
    size_t forwarded = 0, tried = 0;
    for (size_t at = good.l4 + 8; at < good.bytes.size(); at += 7, ++tried) {
        auto bad = good;
        bad.bytes[at] ^= 0x20;  // letters change case; a CR or digit may make the message one the parser refuses
        if (run_bytes(bad.bytes, 0, 10, unverified).kind != dataplane::Action::Kind::transmit) continue;
        ++forwarded;
        EXPECT_NE(get16(out_, good.l4 + 6), naive_udp_checksum(out_, 14, good.l4, false)) << at;
    }
    EXPECT_GT(forwarded, tried / 2);
    // The same frame intact leaves with a checksum that verifies.
    ASSERT_EQ(run_bytes(good.bytes, 0, 10, unverified).kind, dataplane::Action::Kind::transmit);
    EXPECT_EQ(get16(out_, good.l4 + 6), naive_udp_checksum(out_, 14, good.l4, false));
}

class ForwarderOverload : public ForwarderTest {
protected:
    void SetUp() override {
        start({{"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060"}}});
        ASSERT_EQ(neighbors_.learn(kBackend.ip, kBackendMacA, 1, true), net::NeighborTable::Learn::inserted);
    }
    dataplane::Action respond(const std::string& status_line, const std::string& extra, uint64_t now_ms) {
        const std::string msg = status_line +
                                "\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK1\r\n"
                                "From: <sip:a@example.net>;tag=1\r\nTo: <sip:b@example.net>;tag=2\r\n"
                                "Call-ID: busy@pbx\r\nCSeq: 1 INVITE\r\n" +
                                extra + "Content-Length: 0\r\n\r\n";
        return run({.src_mac = kBackendMacA, .dst_mac = kIntMac, .src = kBackend, .dst = kClient, .payload = msg}, 1,
                   now_ms);
    }
    const dataplane::BackendCounters& backend_counters() const {
        const auto& lund = *snap_->pools()[0];
        const auto* bc = counters_->find_backend(lund.counter_slot(), lund.backends()[0].id);
        EXPECT_NE(bc, nullptr);
        return *bc;
    }
};

TEST_F(ForwarderOverload, CountsOverloadResponsesAndTheirRetryAfter) {
    ASSERT_EQ(respond("SIP/2.0 200 OK", "", 10).kind, dataplane::Action::Kind::transmit);
    EXPECT_EQ(backend_counters().overload_responses.load(), 0u);
    ASSERT_EQ(respond("SIP/2.0 503 Service Unavailable", "Retry-After: 17 (maintenance)\r\n", 20).kind,
              dataplane::Action::Kind::transmit);  // still forwarded to the client
    EXPECT_EQ(backend_counters().overload_responses.load(), 1u);
    EXPECT_EQ(backend_counters().overload_retry_after_s.load(), 17u);
    ASSERT_EQ(respond("SIP/2.0 503 Service Unavailable", "", 30).kind, dataplane::Action::Kind::transmit);
    EXPECT_EQ(backend_counters().overload_responses.load(), 2u);
    EXPECT_EQ(backend_counters().overload_retry_after_s.load(), 17u);  // kept: this one had none
    ASSERT_EQ(respond("SIP/2.0 486 Busy Here", "Retry-After: 5\r\n", 40).kind, dataplane::Action::Kind::transmit);
    EXPECT_EQ(backend_counters().overload_responses.load(), 2u);  // not an overload code of the pool
    ASSERT_EQ(respond("SIP/2.0 503 Service Unavailable", "Retry-After: 3\r\n", 50).kind,
              dataplane::Action::Kind::transmit);
    EXPECT_EQ(backend_counters().overload_retry_after_s.load(), 3u);
    // A malformed status line is not an overload answer.
    ASSERT_EQ(respond("SIP/2.0 5x3 Odd", "", 60).kind, dataplane::Action::Kind::transmit);
    EXPECT_EQ(backend_counters().overload_responses.load(), 3u);
}

}  // namespace

namespace {

// One pool on two IPv4 VIPs (two trunk names on one node after a failover):
// every datagram a backend sends toward a client leaves from the VIP of its
// call, or else from the VIP the client last sent to, because the client's
// NAT or firewall lets in only datagrams from the address it sent to.
class ForwarderMultiVip : public ForwarderTest {
protected:
    void SetUp() override {
        start({{"lund", {"198.51.100.10:5060", "198.51.100.11:5060"}, {"203.0.113.11:5060", "203.0.113.12:5060"}},
               {"solo", {"198.51.100.30:5060"}, {"203.0.113.13:5060"}}});
        for (const char* b : {"203.0.113.11", "203.0.113.12", "203.0.113.13"})
            ASSERT_EQ(neighbors_.learn(*IpAddress::parse(b), kBackendMacA, 1, true),
                      net::NeighborTable::Learn::inserted);
    }
    static std::string request(const std::string& method, const std::string& call_id, int cseq,
                               const Endpoint& from = kClient) {
        return method + " sip:b@example.net SIP/2.0\r\nVia: SIP/2.0/UDP " + from.to_string() + ";branch=z9hG4bK" +
               call_id + std::to_string(cseq) +
               "\r\nFrom: <sip:a@example.net>;tag=1\r\nTo: <sip:b@example.net>\r\n"
               "Call-ID: " +
               call_id + "\r\nCSeq: " + std::to_string(cseq) + " " + method + "\r\nContent-Length: 0\r\n\r\n";
    }
    static std::string response(const std::string& call_id, const std::string& method) {
        return "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK1\r\n"
               "From: <sip:a@example.net>;tag=1\r\nTo: <sip:b@example.net>;tag=2\r\nCall-ID: " +
               call_id + "\r\nCSeq: 1 " + method + "\r\nContent-Length: 0\r\n\r\n";
    }
    // Client -> VIP; returns the backend it went to.
    Endpoint from_client(const std::string& payload, const Endpoint& vip, uint64_t now_ms,
                         const Endpoint& client = kClient) {
        EXPECT_EQ(run({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = client, .dst = vip, .payload = payload}, 0,
                      now_ms)
                      .kind,
                  dataplane::Action::Kind::transmit);
        Endpoint b;
        if (out_.size() < 38) return b;
        std::copy(out_.begin() + 30, out_.begin() + 34, b.ip.bytes.begin());
        b.port = static_cast<uint16_t>(out_[36] << 8 | out_[37]);
        return b;
    }
    // Backend -> client; returns the source it left from.
    Endpoint from_backend(const Endpoint& backend, const std::string& payload, uint64_t now_ms,
                          const Endpoint& client = kClient) {
        EXPECT_EQ(run({.src_mac = kBackendMacA, .dst_mac = kIntMac, .src = backend, .dst = client, .payload = payload},
                      1, now_ms)
                      .kind,
                  dataplane::Action::Kind::transmit);
        return out_.size() >= 36 ? out_source() : Endpoint{};
    }
    uint64_t self_advertised(const Endpoint& backend) const {
        const auto* pool = snap_->find_pool("lund");
        const auto* bc = counters_->find_backend(pool->counter_slot(), pool->backends()[pool->index_of(backend)].id);
        return bc ? bc->advertises_itself.load() : 0;
    }
    uint64_t fallbacks(const std::string& pool_name, const Endpoint& backend) const {
        const auto* pool = snap_->find_pool(pool_name);
        const auto* bc = counters_->find_backend(pool->counter_slot(), pool->backends()[pool->index_of(backend)].id);
        return bc ? bc->vip_fallback.load() : 0;
    }
    const Endpoint kVip1 = *Endpoint::parse("198.51.100.10:5060");
    const Endpoint kVip2 = *Endpoint::parse("198.51.100.11:5060");
};

TEST_F(ForwarderMultiVip, RepliesAndBackendRequestsLeaveFromTheVipOfTheirCall) {
    const Endpoint b1 = from_client(request("INVITE", "one@pbx", 1), kVip1, 1000);
    const Endpoint b2 = from_client(request("INVITE", "two@pbx", 1), kVip2, 1000);
    // Twice each, interleaved: no state but the calls' entries decides.
    for (int round = 0; round < 2; ++round) {
        EXPECT_EQ(from_backend(b2, response("two@pbx", "INVITE"), 2000 + round), kVip2);
        EXPECT_EQ(from_backend(b1, response("one@pbx", "INVITE"), 2000 + round), kVip1);
    }
    // Requests the backends start inside the calls (BYE, re-INVITE, NOTIFY).
    EXPECT_EQ(from_backend(b2, request("BYE", "two@pbx", 2, b2), 3000), kVip2);
    EXPECT_EQ(from_backend(b1, request("INVITE", "one@pbx", 2, b1), 3000), kVip1);
    EXPECT_EQ(from_backend(b1, request("NOTIFY", "one@pbx", 3, b1), 3000), kVip1);
    EXPECT_EQ(fallbacks("lund", b1) + fallbacks("lund", b2), 0u);
    // The client moves the call to the other VIP (a re-INVITE there): the call's VIP follows.
    EXPECT_EQ(from_client(request("INVITE", "one@pbx", 4), kVip2, 3500), b1);
    EXPECT_EQ(from_backend(b1, response("one@pbx", "INVITE"), 3600), kVip2);
    EXPECT_EQ(affinity_
                  ->lookup(balance::affinity_key(*snap_->pools()[0],
                                                 balance::hash_call_id("one@pbx", snap_->pools()[0]->seed())),
                           4)
                  ->vip,
              2);
}

TEST_F(ForwarderMultiVip, CallsTheBackendStartsLeaveFromTheVipTheClientRegisteredThrough) {
    // The phone registers through VIP2 ...
    const Endpoint registrar = from_client(request("REGISTER", "reg@phone", 1), kVip2, 1000);
    EXPECT_EQ(from_backend(registrar, response("reg@phone", "REGISTER"), 1010), kVip2);
    // ... then the backend calls it with a new Call-ID: from VIP2, pinned to the backend with that VIP.
    const Endpoint caller = *Endpoint::parse("203.0.113.12:5060");
    EXPECT_EQ(from_backend(caller, request("INVITE", "inbound@pbx", 1, caller), 2000), kVip2);
    EXPECT_EQ(counters_->backend_dialogs.load(), 1u);
    const auto& lund = *snap_->pools()[0];
    auto entry = affinity_->lookup(balance::affinity_key(lund, balance::hash_call_id("inbound@pbx", lund.seed())), 2);
    ASSERT_TRUE(entry.has_value());
    EXPECT_EQ(entry->vip, 2);
    EXPECT_EQ(entry->backend_id, lund.backends()[lund.index_of(caller)].id);
    // The dialog keeps its VIP even when the phone later sends to VIP1.
    from_client(request("OPTIONS", "ping@phone", 1), kVip1, 3000);
    EXPECT_EQ(from_backend(caller, request("BYE", "inbound@pbx", 2, caller), 4000), kVip2);
    // Whereas a new call toward the phone follows it to VIP1.
    EXPECT_EQ(from_backend(caller, request("INVITE", "inbound2@pbx", 1, caller), 4000), kVip1);
    // The phone's answer reaches the backend that called.
    EXPECT_EQ(from_client(response("inbound2@pbx", "INVITE"), kVip1, 4100), caller);
    // Another phone (other port behind the same NAT) is its own client.
    const Endpoint other = *Endpoint::parse("192.0.2.10:5070");
    from_client(request("REGISTER", "reg2@phone", 1, other), kVip2, 5000, other);
    EXPECT_EQ(from_backend(caller, request("INVITE", "inbound3@pbx", 1, caller), 5000, other), kVip2);
    EXPECT_EQ(from_backend(caller, request("INVITE", "inbound4@pbx", 1, caller), 5000), kVip1);
    EXPECT_EQ(fallbacks("lund", caller), 0u);
}

TEST_F(ForwarderMultiVip, KeepaliveAnswersLeaveFromTheVipTheClientLastUsed) {
    const Endpoint b = from_client("\r\n\r\n", kVip2, 1000);
    EXPECT_EQ(from_backend(b, "\r\n", 1100), kVip2);
    from_client("\r\n\r\n", kVip1, 2000);
    EXPECT_EQ(from_backend(b, "\r\n", 2100), kVip1);
    EXPECT_EQ(fallbacks("lund", b), 0u);
}

TEST_F(ForwarderMultiVip, WithoutAnyEntryTheFirstVipOfTheFamilyAndCounted) {
    // As after a restart: neither the call nor the client is known.
    const Endpoint b1 = *Endpoint::parse("203.0.113.11:5060");
    EXPECT_EQ(from_backend(b1, response("unknown@pbx", "INVITE"), 1000), kVip1);
    EXPECT_EQ(from_backend(b1, "garbage that is not SIP", 1000), kVip1);
    EXPECT_EQ(fallbacks("lund", b1), 2u);
    // Once entries expire (the client's after an hour without requests).
    from_client(request("OPTIONS", "ping@phone", 1), kVip2, 10'000);
    EXPECT_EQ(from_backend(b1, response("unknown2@pbx", "INVITE"), 11'000), kVip2);
    EXPECT_EQ(from_backend(b1, response("unknown3@pbx", "INVITE"),
                           (10 + balance::ClientVipTable::kIdleS + 1) * 1000ull),
              kVip1);
    EXPECT_EQ(fallbacks("lund", b1), 3u);
    // A pool with one VIP has nothing to fall back from: not counted.
    const Endpoint solo = *Endpoint::parse("203.0.113.13:5060");
    EXPECT_EQ(from_backend(solo, response("unknown@pbx", "INVITE"), 1000), *Endpoint::parse("198.51.100.30:5060"));
    EXPECT_EQ(fallbacks("solo", solo), 0u);
}

// siplb never rewrites SIP: a backend that puts its own address in Contact
// or Record-Route sends phones around siplb. Counted per backend (each
// worker looks at most every 100 ms per backend), and still forwarded.
TEST_F(ForwarderMultiVip, BackendAdvertisingItselfIsCountedAndStillForwarded) {
    const Endpoint b1 = *Endpoint::parse("203.0.113.11:5060");
    auto with = [](std::string msg, const std::string& header) {
        return msg.insert(msg.find("Content-Length"), header + "\r\n");
    };
    uint64_t t = 10'000;
    auto next = [&] { return t += 100; };  // every message due for a look
    // 200 OK to INVITE with the backend's own address as Contact.
    EXPECT_EQ(from_backend(b1, with(response("c1@pbx", "INVITE"), "Contact: <sip:b@203.0.113.11:5060>"), next()),
              kVip1);
    EXPECT_EQ(self_advertised(b1), 1u);
    // Another backend's address, or the top Record-Route (compact form Contact too).
    from_backend(b1, with(response("c2@pbx", "INVITE"), "Record-Route: <sip:203.0.113.12;lr>, <sip:198.51.100.10;lr>"),
                 next());
    from_backend(b1, with(request("BYE", "c3@pbx", 2, b1), "m: \"PBX\" <sip:pbx@203.0.113.11>"), next());
    EXPECT_EQ(self_advertised(b1), 3u);
    // What a well-configured backend sends: a VIP (or a name), not counted.
    from_backend(b1, with(response("c4@pbx", "INVITE"), "Contact: <sip:b@198.51.100.10:5060>"), next());
    from_backend(b1, with(response("c5@pbx", "INVITE"), "Contact: <sip:b@pbx.example.net>"), next());
    from_backend(b1, with(response("c6@pbx", "INVITE"), "Record-Route: <sip:198.51.100.10;lr>, <sip:203.0.113.11;lr>"),
                 next());
    // Answers that carry no dialog's next hop: 100, 200 to REGISTER or OPTIONS, a 486.
    const std::string own = "Contact: <sip:b@203.0.113.11>";
    from_backend(b1, with(response("c7@pbx", "REGISTER"), own), next());
    from_backend(b1, with(response("c8@pbx", "OPTIONS"), own), next());
    std::string trying = with(response("c9@pbx", "INVITE"), own);
    from_backend(b1, trying.replace(8, 6, "100 Tr"), next());
    std::string busy = with(response("c10@pbx", "INVITE"), own);
    from_backend(b1, busy.replace(8, 6, "486 Bu"), next());
    EXPECT_EQ(self_advertised(b1), 3u);
    // Within 100 ms of the last look: not looked at.
    from_backend(b1, with(response("c11@pbx", "INVITE"), own), next());
    EXPECT_EQ(self_advertised(b1), 4u);
    from_backend(b1, with(response("c12@pbx", "INVITE"), own), t + 99);
    EXPECT_EQ(self_advertised(b1), 4u);
    from_backend(b1, with(response("c13@pbx", "INVITE"), own), t + 100);
    EXPECT_EQ(self_advertised(b1), 5u);
    EXPECT_EQ(counters_->to_client.load(), 13u);  // every one forwarded
}

// TCP connection entries expire while no segment arrives: an idle worker's
// sweep_idle() reclaims them (segments are otherwise what sweeps the table).
class ForwarderTcpIdle : public ForwarderTest {
protected:
    static constexpr uint32_t kHandshakeS = 30;
    void SetUp() override {
        balance::PoolSpec spec;
        spec.name = "trunk";
        spec.counter_slot = 0;
        spec.tcp_listen = {{kVip, false}};
        spec.backends = {{kBackend}};
        spec.tcp_handshake_s = kHandshakeS;
        auto pool = balance::PoolSnapshot::build(spec, 1);
        ASSERT_TRUE(pool) << pool.message();
        auto dp = balance::DataplaneSnapshot::build({pool.value()}, 1);
        ASSERT_TRUE(dp) << dp.message();
        snap_ = std::move(dp).value();
        set_two_ports(ctx_, kExtMac, kIntMac);
        ASSERT_EQ(neighbors_.learn(kBackend.ip, kBackendMacA, 1, true), net::NeighborTable::Learn::inserted);
        ctx_.neighbors = &neighbors_;
        connections_ = std::move(balance::ConnectionTable::create(1024, 64).value());
        ctx_.connections = connections_.get();
        forwarder_ = std::make_unique<dataplane::Forwarder>(ctx_, *counters_);
    }
    dataplane::Action syn(const Endpoint& client, uint64_t now_ms) {
        return run_bytes(build_tcp_frame({.src_mac = kGatewayMac,
                                          .dst_mac = kExtMac,
                                          .src = client,
                                          .dst = kVip,
                                          .flags = net::kTcpSyn})
                             .bytes,
                         0, now_ms);
    }
    // Idle polls, one a millisecond from `from_ms`, enough for `passes` full passes over the table.
    void idle(uint64_t from_ms, uint32_t passes) {
        const uint32_t calls = passes * connections_->bucket_count() / dataplane::Forwarder::kIdleSweepBuckets;
        for (uint32_t i = 0; i < calls; ++i) forwarder_->sweep_idle(static_cast<uint32_t>((from_ms + i) / 1000));
    }
    uint64_t active() const { return counters_->pools[0].tcp_active.load(); }
    uint64_t expired() const { return counters_->pools[0].tcp_expired.load(); }

    std::unique_ptr<balance::ConnectionTable> connections_;
};

TEST_F(ForwarderTcpIdle, HalfOpenEntriesExpireWithoutTraffic) {
    constexpr uint32_t kConns = 100;
    const uint64_t t0 = 1'000'000;
    for (uint32_t i = 0; i < kConns; ++i) {
        Endpoint c = kClient;
        c.port = static_cast<uint16_t>(20000 + i);
        ASSERT_EQ(syn(c, t0).kind, dataplane::Action::Kind::transmit) << i;
    }
    ASSERT_EQ(active(), kConns);
    ASSERT_EQ(connections_->count_live(static_cast<uint32_t>(t0 / 1000)), kConns);
    // Idle within the handshake time: nothing is reclaimed.
    idle(t0 + 1000, 2);
    EXPECT_EQ(active(), kConns);
    EXPECT_EQ(expired(), 0u);
    // Idle past it: every entry leaves the table, the active level and the
    // client's per-source count (which would otherwise cap its new SYNs).
    idle(t0 + (kHandshakeS + 1) * 1000, 1);
    EXPECT_EQ(active(), 0u);
    EXPECT_EQ(expired(), kConns);
    EXPECT_EQ(counters_->backend(0, snap_->pools()[0]->backends()[0].id)->tcp_active.load(), 0u);
    EXPECT_EQ(connections_->count_live(static_cast<uint32_t>(t0 / 1000)), 0u);
    for (uint32_t s = 0; s < 64; ++s) EXPECT_EQ(connections_->source_entries(s), 0u) << s;
}

TEST_F(ForwarderTcpIdle, WithoutAConnectionTableIdleIsANoOp) {
    ctx_.connections = nullptr;
    EXPECT_EQ(syn(kClient, 5000).kind, dataplane::Action::Kind::transmit);
    idle(5000, 1);
    EXPECT_EQ(active(), 0u);
}

}  // namespace
