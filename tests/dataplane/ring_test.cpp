// In-process dataplane test over net_ring ports: crafted frames go into the
// RX rings, a real worker lcore forwards them, and every byte that comes out
// of the TX rings is compared with a frame built independently (naive
// checksums) from the expected addresses.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_ring.h>

#include "support/frame_builder.h"
#include "dataplane_test_util.h"
#include "ring_fixture.h"
#include "siplb/balance/hash.h"
#include "siplb/dataplane/dataplane.h"
#include "siplb/net/arp.h"
#include "siplb/net/ndp.h"
#include "siplb/net/packet.h"

#include <map>
#include <set>

using namespace siplb;
using namespace siplb::test;
using namespace siplb::dataplane::testing;
using std::chrono::milliseconds;

namespace {

const MacAddress kClient6Mac{{0x02, 0, 0, 0, 0x00, 0x99}};
const MacAddress kBackend13Mac{{0x02, 0, 0, 0, 0x0b, 0x13}};

std::string invite(const std::string& call_id, const char* method = "INVITE") {
    return std::string(method) + " sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" +
           call_id + "\r\nFrom: <sip:alice@example.net>;tag=1\r\nTo: <sip:bob@example.net>\r\nCall-ID: " + call_id +
           "\r\nCSeq: 1 " + method + "\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
}

std::string response(const std::string& call_id) {
    return "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" + call_id +
           "\r\nFrom: <sip:alice@example.net>;tag=1\r\nTo: <sip:bob@example.net>;tag=2\r\nCall-ID: " + call_id +
           "\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
}

const auto* const g_env = ::testing::AddGlobalTestEnvironment(new RingEalEnvironment("siplb_dp_ring", "test_frames"));

class DataplaneRing : public RingDataplaneTest<DataplaneRing> {
protected:
    static void SetUpTestSuite() {
        open_ports("ring");
        if (HasFatalFailure()) return;

        config::Config cfg;
        set_test_sizes(cfg.dataplane, "siplb_dp_ring");
        set_two_ports(cfg.dataplane, ext_, int_, false);
        cfg.dataplane.verify_l4_checksums = true;  // net_ring verifies nothing: the workers do

        start(cfg, make_snapshot({
                       {"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060", "203.0.113.12:5080"}},
                       {"arp", {"198.51.100.11:5060"}, {"203.0.113.13:5060"}},
                       {"six", {"[2001:db8:1::10]:5060"}, {"[2001:db8:2::11]:5060"}},
                       {"empty", {"198.51.100.12:5060"}, {}},
                       {"dsr", {"198.51.100.13:5060"}, {"203.0.113.11:5060"}, config::ForwardMode::ipip},
                       {"six-nd", {"[2001:db8:1::11]:5060"}, {"[2001:db8:2::13]:5060"}},
                   }));
    }
    static void TearDownTestSuite() {
        if (dp_) {
            dp_->stop();
            EXPECT_FALSE(dp_->running());
            dp_->stop();  // idempotent
        }
        release();
    }

    static MacAddress backend_mac(const Endpoint& b) {
        return b.ip == *IpAddress::parse("203.0.113.11") ? kBackend11Mac : kBackend12Mac;
    }
};

const Endpoint kClient = *Endpoint::parse("192.0.2.10:5062");
const Endpoint kVip = *Endpoint::parse("198.51.100.10:5060");

TEST_F(DataplaneRing, InviteIsDnatToTableChoiceByteForByte) {
    std::string call_id = "first-call@192.0.2.10";
    std::string msg = invite(call_id);
    auto before = dp_->stats();
    auto in = build_frame(
        {.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = kVip, .ttl = 60, .payload = msg});
    send(ext_, in.bytes);
    auto out = receive(int_, 1);
    ASSERT_EQ(out.size(), 1u);
    Endpoint backend = table_choice("lund", call_id);
    auto expect = build_frame({.src_mac = kIntMac,
                               .dst_mac = backend_mac(backend),
                               .vlan = kIntVlan,
                               .src = kClient,
                               .dst = backend,
                               .ttl = 59,
                               .payload = msg});
    EXPECT_EQ(out[0], expect.bytes);
    EXPECT_TRUE(receive(ext_, 0).empty());

    auto after = dp_->stats();
    EXPECT_EQ(after.total("traffic", "to_backend"), before.total("traffic", "to_backend") + 1);
    EXPECT_EQ(after.dropped(), before.dropped());
    ASSERT_EQ(after.pools.size(), 6u);
    EXPECT_EQ(after.pools[0].name, "lund");
    EXPECT_EQ(after.pools[0].at("traffic", "calls"), before.pools[0].at("traffic", "calls") + 1);
    EXPECT_EQ(after.pools[0].at("traffic", "packets_in"), before.pools[0].at("traffic", "packets_in") + 1);
    uint64_t backend_calls = 0, backend_bytes = 0;
    for (size_t i = 0; i < after.backends.size(); ++i) {
        backend_calls += after.backends[i].at("traffic", "calls") - before.backends[i].at("traffic", "calls");
        if (after.backends[i].address == backend)
            backend_bytes = after.backends[i].at("traffic", "bytes_to") - before.backends[i].at("traffic", "bytes_to");
    }
    EXPECT_EQ(backend_calls, 1u);
    EXPECT_EQ(backend_bytes, expect.bytes.size());
    EXPECT_EQ(after.ports[0].at("traffic", "rx_packets"), before.ports[0].at("traffic", "rx_packets") + 1);
    EXPECT_EQ(after.ports[1].at("traffic", "tx_packets"), before.ports[1].at("traffic", "tx_packets") + 1);
}

TEST_F(DataplaneRing, EveryMessageOfACallReachesOneBackend) {
    std::map<std::string, std::set<Endpoint>> seen;
    std::set<Endpoint> used;
    for (int round = 0; round < 2; ++round) {
        std::vector<std::vector<uint8_t>> frames;
        for (int i = 0; i < 100; ++i) {
            std::string id = "call-" + std::to_string(i) + "@pbx";
            frames.push_back(build_frame({.src_mac = kGatewayMac,
                                          .dst_mac = kExtMac,
                                          .src = kClient,
                                          .dst = kVip,
                                          .payload = round == 0 ? invite(id) : invite(id, "BYE")})
                                 .bytes);
        }
        send(ext_, frames);
        auto out = receive(int_, frames.size());
        ASSERT_EQ(out.size(), frames.size());
        for (const auto& f : out) {
            // Tagged frame: L3 at 18. The Call-ID is in the payload.
            net::PacketView v;
            ASSERT_EQ(net::parse_frame(f.data(), f.size(), v), net::ParseStatus::udp);
            std::string payload(f.begin() + v.payload_offset(), f.end());
            auto pos = payload.find("Call-ID: ");
            std::string id = payload.substr(pos + 9, payload.find("\r\n", pos) - pos - 9);
            Endpoint dst = net::destination_endpoint(f.data(), v);
            seen[id].insert(dst);
            used.insert(dst);
            EXPECT_EQ(dst, table_choice("lund", id));
            EXPECT_EQ(get16(f, v.l3_offset + 10), naive_ipv4_checksum(f, v.l3_offset));
            EXPECT_EQ(get16(f, v.l4_offset + 6), naive_udp_checksum(f, v.l3_offset, v.l4_offset, false));
        }
    }
    EXPECT_EQ(seen.size(), 100u);
    for (const auto& [id, backends] : seen) EXPECT_EQ(backends.size(), 1u) << id;
    EXPECT_EQ(used.size(), 2u);
}

TEST_F(DataplaneRing, BackendReplyIsSnatToVipByteForByte) {
    std::string msg = response("reply-call@192.0.2.10");
    Endpoint backend = *Endpoint::parse("203.0.113.12:5080");
    auto before = dp_->stats();
    auto in = build_frame({.src_mac = kBackend12Mac,
                           .dst_mac = kIntMac,
                           .vlan = kIntVlan,
                           .src = backend,
                           .dst = kClient,
                           .ttl = 64,
                           .payload = msg});
    send(int_, in.bytes);
    auto out = receive(ext_, 1);
    ASSERT_EQ(out.size(), 1u);
    auto expect = build_frame(
        {.src_mac = kExtMac, .dst_mac = kGatewayMac, .src = kVip, .dst = kClient, .ttl = 63, .payload = msg});
    EXPECT_EQ(out[0], expect.bytes);
    auto after = dp_->stats();
    EXPECT_EQ(after.total("traffic", "to_client"), before.total("traffic", "to_client") + 1);
    EXPECT_EQ(after.pools[0].at("traffic", "packets_out"), before.pools[0].at("traffic", "packets_out") + 1);
    for (size_t i = 0; i < after.backends.size(); ++i) {
        uint64_t delta = after.backends[i].at("traffic", "packets_from") -
                         before.backends[i].at("traffic", "packets_from");
        EXPECT_EQ(delta, after.backends[i].address == backend ? 1u : 0u);
    }

    // The same reply untagged does not belong to the internal port's VLAN.
    auto untagged =
        build_frame({.src_mac = kBackend12Mac, .dst_mac = kIntMac, .src = backend, .dst = kClient, .payload = msg});
    send(int_, untagged.bytes);
    EXPECT_TRUE(receive(ext_, 0).empty());
    EXPECT_EQ(drops(dp_->stats(), "vlan_mismatch"), drops(after, "vlan_mismatch") + 1);
}

TEST_F(DataplaneRing, DialogStartedByBackendKeepsAnswersOnIt) {
    // A Call-ID the table gives to .11, started by .12 toward the client.
    std::string call_id;
    for (int i = 0; call_id.empty(); ++i) {
        std::string id = "outbound-" + std::to_string(i);
        if (table_choice("lund", id) == *Endpoint::parse("203.0.113.11:5060")) call_id = id;
    }
    Endpoint backend = *Endpoint::parse("203.0.113.12:5080");
    auto before = dp_->stats();
    send(int_, build_frame({.src_mac = kBackend12Mac,
                            .dst_mac = kIntMac,
                            .vlan = kIntVlan,
                            .src = backend,
                            .dst = kClient,
                            .payload = invite(call_id)})
                   .bytes);
    ASSERT_EQ(receive(ext_, 1).size(), 1u);
    EXPECT_EQ(dp_->stats().total("affinity", "backend_dialogs"), before.total("affinity", "backend_dialogs") + 1);
    // The phone answers on the VIP: the 200 goes to .12, not the table's .11.
    std::string answer = response(call_id);
    send(ext_, build_frame({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = kVip, .payload = answer})
                   .bytes);
    auto out = receive(int_, 1);
    ASSERT_EQ(out.size(), 1u);
    auto expect = build_frame({.src_mac = kIntMac,
                               .dst_mac = kBackend12Mac,
                               .vlan = kIntVlan,
                               .src = kClient,
                               .dst = backend,
                               .ttl = 63,
                               .payload = answer});
    EXPECT_EQ(out[0], expect.bytes);
}

TEST_F(DataplaneRing, IpipPoolEncapsulatesTheUnchangedDatagram) {
    const Endpoint vip = *Endpoint::parse("198.51.100.13:5060");
    std::string msg = invite("dsr-call");
    send(ext_, build_frame(
                   {.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = vip, .ttl = 30, .payload = msg})
                   .bytes);
    auto out = receive(int_, 1);
    ASSERT_EQ(out.size(), 1u);
    auto inner = build_frame({.src = kClient, .dst = vip, .ttl = 29, .payload = msg});
    const size_t inner_len = inner.bytes.size() - inner.l3;
    std::vector<uint8_t> expect = {0x02, 0,    0,    0,    0x0b, 0x11, 0x02,     0,    0,
                                   0,    0x02, 0x02, 0x81, 0x00, 0,    kIntVlan, 0x08, 0x00};
    std::vector<uint8_t> outer = {0x45, 0, 0, 0, 0, 0, 0, 0, 64, 4, 0, 0, 203, 0, 113, 1, 203, 0, 113, 11};
    put16(outer, 2, static_cast<uint16_t>(20 + inner_len));
    put16(outer, 10, naive_ipv4_checksum(outer, 0));
    expect.insert(expect.end(), outer.begin(), outer.end());
    expect.insert(expect.end(), inner.bytes.begin() + inner.l3, inner.bytes.end());
    EXPECT_EQ(out[0], expect);
}

TEST_F(DataplaneRing, NeighborSolicitationForVipIsAnswered) {
    const IpAddress client = *IpAddress::parse("2001:db8:1::99");
    const IpAddress vip = *IpAddress::parse("2001:db8:1::10");
    auto before = dp_->stats();
    auto ns = ndp_frame(net::ipv6_multicast_mac(net::solicited_node_address(vip)), kClient6Mac, 0);
    net::write_neighbor_solicitation(ns.data() + 14, client, kClient6Mac, vip);
    send(ext_, ns);
    auto out = receive(ext_, 1);
    ASSERT_EQ(out.size(), 1u);
    net::PacketView v;
    ASSERT_EQ(net::parse_frame(out[0].data(), out[0].size(), v), net::ParseStatus::not_udp);
    auto na = net::parse_ndp(out[0].data(), v);  // validates the ICMPv6 checksum
    ASSERT_TRUE(na);
    EXPECT_EQ(na->type, net::kIcmpv6NeighborAdvertisement);
    EXPECT_EQ(na->target, vip);
    EXPECT_TRUE(na->solicited);
    EXPECT_EQ(na->link_addr, std::optional<MacAddress>(kExtMac));
    EXPECT_EQ(IpAddress::from_v6(out[0].data() + 14 + 24), client);
    EXPECT_TRUE(std::equal(kClient6Mac.bytes.begin(), kClient6Mac.bytes.end(), out[0].begin()));
    EXPECT_EQ(dp_->stats().total("neighbor", "nd_advertisements"), before.total("neighbor", "nd_advertisements") + 1);

    // An unsolicited advertisement of the VIP from another host (a conflict)
    // is not learned: the VIP is ours.
    auto mid = dp_->stats();
    auto conflict = ndp_frame(kExtMac, kClient6Mac, 0);
    net::write_neighbor_advertisement(conflict.data() + 14, vip, client, kClient6Mac, false);
    send(ext_, conflict);
    EXPECT_TRUE(receive(ext_, 0).empty());
    EXPECT_EQ(dp_->stats().total("neighbor", "learned"), mid.total("neighbor", "learned"));
}

TEST_F(DataplaneRing, UnresolvedIpv6BackendIsSolicitedThenLearned) {
    const Endpoint client = *Endpoint::parse("[2001:db8:1::99]:5062");
    const Endpoint vip = *Endpoint::parse("[2001:db8:1::11]:5060");
    const Endpoint backend = *Endpoint::parse("[2001:db8:2::13]:5060");
    const MacAddress backend_mac{{0x02, 0, 0, 0, 0x0b, 0x63}};
    auto before = dp_->stats();
    std::string msg = invite("v6-nd-call");
    auto in = build_frame({.src_mac = kClient6Mac, .dst_mac = kExtMac, .src = client, .dst = vip, .payload = msg});
    send(ext_, in.bytes);
    auto out = receive(int_, 1);  // the solicitation
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(std::equal(out[0].begin(), out[0].begin() + 6,
                           net::ipv6_multicast_mac(net::solicited_node_address(backend.ip)).bytes.begin()));
    EXPECT_EQ(get16(out[0], 14), kIntVlan);
    net::PacketView v;
    ASSERT_EQ(net::parse_frame(out[0].data(), out[0].size(), v), net::ParseStatus::not_udp);
    auto ns = net::parse_ndp(out[0].data(), v);
    ASSERT_TRUE(ns);
    EXPECT_EQ(ns->type, net::kIcmpv6NeighborSolicitation);
    EXPECT_EQ(ns->target, backend.ip);
    EXPECT_EQ(ns->source, *IpAddress::parse("2001:db8:2::1"));
    EXPECT_EQ(ns->link_addr, std::optional<MacAddress>(kIntMac));
    auto mid = dp_->stats();
    EXPECT_EQ(mid.total("neighbor", "nd_solicitations"), before.total("neighbor", "nd_solicitations") + 1);
    EXPECT_EQ(drops(mid, "no_neighbor"), drops(before, "no_neighbor") + 1);

    auto na = ndp_frame(kIntMac, backend_mac, kIntVlan);
    net::write_neighbor_advertisement(na.data() + 18, backend.ip, ns->source, backend_mac, true);
    send(int_, na);
    send(ext_, in.bytes);
    out = receive(int_, 1);
    ASSERT_EQ(out.size(), 1u);
    auto expect = build_frame({.src_mac = kIntMac,
                               .dst_mac = backend_mac,
                               .vlan = kIntVlan,
                               .src = client,
                               .dst = backend,
                               .ttl = 63,
                               .payload = msg});
    EXPECT_EQ(out[0], expect.bytes);
}

TEST_F(DataplaneRing, KeepalivesStickToTheClientAddress) {
    auto before = dp_->stats();
    std::vector<std::vector<uint8_t>> frames;
    for (int i = 0; i < 3; ++i)
        frames.push_back(
            build_frame(
                {.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = kVip, .payload = "\r\n\r\n"})
                .bytes);
    send(ext_, frames);
    auto out = receive(int_, 3);
    ASSERT_EQ(out.size(), 3u);
    net::PacketView v;
    std::set<Endpoint> dsts;
    for (const auto& f : out) {
        ASSERT_EQ(net::parse_frame(f.data(), f.size(), v), net::ParseStatus::udp);
        dsts.insert(net::destination_endpoint(f.data(), v));
    }
    EXPECT_EQ(dsts.size(), 1u);
    EXPECT_EQ(dp_->stats().pools[0].at("traffic", "keepalives"), before.pools[0].at("traffic", "keepalives") + 3);
}

TEST_F(DataplaneRing, DropsAreCountedByReasonAndNothingLeaks) {
    auto before = dp_->stats();
    auto good = build_frame(
        {.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = kVip, .payload = invite("drop-test")});
    auto binary = build_frame({.src_mac = kGatewayMac,
                               .dst_mac = kExtMac,
                               .src = kClient,
                               .dst = kVip,
                               .payload = std::string("\x01\x02\x03\x04garbage", 11)});
    auto no_call_id = build_frame({.src_mac = kGatewayMac,
                                   .dst_mac = kExtMac,
                                   .src = kClient,
                                   .dst = kVip,
                                   .payload = "OPTIONS sip:x SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n"});
    auto bad_sum = good;
    bad_sum.bytes.back() ^= 0x01;
    auto ttl1 = build_frame({.src_mac = kGatewayMac,
                             .dst_mac = kExtMac,
                             .src = kClient,
                             .dst = kVip,
                             .ttl = 1,
                             .payload = invite("ttl-test")});
    auto unknown = build_frame({.src_mac = kGatewayMac,
                                .dst_mac = kExtMac,
                                .src = kClient,
                                .dst = *Endpoint::parse("198.51.100.10:5070"),
                                .payload = invite("port-test")});
    auto truncated = good;
    truncated.bytes.resize(30);
    auto empty_pool = build_frame({.src_mac = kGatewayMac,
                                   .dst_mac = kExtMac,
                                   .src = kClient,
                                   .dst = *Endpoint::parse("198.51.100.12:5060"),
                                   .payload = invite("nobody")});
    send(ext_,
         {binary.bytes, no_call_id.bytes, bad_sum.bytes, ttl1.bytes, unknown.bytes, truncated.bytes, empty_pool.bytes});
    EXPECT_TRUE(receive(int_, 0).empty());
    // The TTL-1 datagram earns a time exceeded, the unknown port a port
    // unreachable (tests/dataplane/icmp_test.cpp checks their bytes).
    auto errors = receive(ext_, 2);
    ASSERT_EQ(errors.size(), 2u);
    EXPECT_EQ(errors[0][14 + 20], 11);
    EXPECT_EQ(errors[1][14 + 20], 3);
    auto after = dp_->stats();
    EXPECT_EQ(after.total("icmp", "errors_sent"), before.total("icmp", "errors_sent") + 2);
    EXPECT_EQ(drops(after, "sip_binary"), drops(before, "sip_binary") + 1);
    EXPECT_EQ(drops(after, "sip_no_call_id"), drops(before, "sip_no_call_id") + 1);
    EXPECT_EQ(drops(after, "bad_checksum"), drops(before, "bad_checksum") + 1);
    EXPECT_EQ(drops(after, "ttl_expired"), drops(before, "ttl_expired") + 1);
    EXPECT_EQ(drops(after, "not_for_us"), drops(before, "not_for_us") + 1);
    EXPECT_EQ(drops(after, "short"), drops(before, "short") + 1);
    EXPECT_EQ(drops(after, "no_backend"), drops(before, "no_backend") + 1);
    EXPECT_EQ(after.dropped(), before.dropped() + 7);
    EXPECT_EQ(after.pools[0].at("traffic", "rejected"), before.pools[0].at("traffic", "rejected") + 2);
    EXPECT_EQ(after.pools[3].at("traffic", "no_backend"), before.pools[3].at("traffic", "no_backend") + 1);
}

TEST_F(DataplaneRing, ArpRequestForVipIsAnswered) {
    std::vector<uint8_t> req(60, 0);
    const MacAddress bcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
    std::copy(bcast.bytes.begin(), bcast.bytes.end(), req.begin());
    std::copy(kGatewayMac.bytes.begin(), kGatewayMac.bytes.end(), req.begin() + 6);
    req[12] = 0x08;
    req[13] = 0x06;
    net::ArpMessage m;
    m.op = net::kArpRequest;
    m.sender_mac = kGatewayMac;
    m.sender_ip_be = IpAddress::parse("198.51.100.254")->v4_be();
    m.target_ip_be = kVip.ip.v4_be();
    net::write_arp(req.data() + 14, m);
    send(ext_, req);
    auto out = receive(ext_, 1);
    ASSERT_EQ(out.size(), 1u);
    ASSERT_GE(out[0].size(), 42u);
    EXPECT_TRUE(std::equal(kGatewayMac.bytes.begin(), kGatewayMac.bytes.end(), out[0].begin()));
    EXPECT_TRUE(std::equal(kExtMac.bytes.begin(), kExtMac.bytes.end(), out[0].begin() + 6));
    auto reply = net::parse_arp(out[0].data() + 14, out[0].size() - 14);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->op, net::kArpReply);
    EXPECT_EQ(reply->sender_mac, kExtMac);
    EXPECT_EQ(reply->sender_ip_be, kVip.ip.v4_be());
    EXPECT_EQ(reply->target_mac, kGatewayMac);

    // A request for someone else's address gets no answer.
    m.target_ip_be = IpAddress::parse("198.51.100.77")->v4_be();
    net::write_arp(req.data() + 14, m);
    send(ext_, req);
    EXPECT_TRUE(receive(ext_, 0).empty());

    // A gratuitous ARP claiming the VIP (an address conflict, or our own
    // announcement looped back): no answer, and the VIP is not learned.
    auto before = dp_->stats();
    m.sender_mac = kBackend11Mac;
    m.sender_ip_be = m.target_ip_be = kVip.ip.v4_be();
    net::write_arp(req.data() + 14, m);
    send(ext_, req);
    EXPECT_TRUE(receive(ext_, 0).empty());
    auto after = dp_->stats();
    EXPECT_EQ(after.total("neighbor", "learned"), before.total("neighbor", "learned"));
    EXPECT_EQ(after.total("neighbor", "arp_replies"), before.total("neighbor", "arp_replies"));
}

TEST_F(DataplaneRing, UnresolvedBackendIsArpedThenLearned) {
    const Endpoint vip = *Endpoint::parse("198.51.100.11:5060");
    const Endpoint backend = *Endpoint::parse("203.0.113.13:5060");
    auto before = dp_->stats();
    std::string msg = invite("arp-call");
    auto in = build_frame({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = vip, .payload = msg});
    send(ext_, in.bytes);
    auto out = receive(int_, 1);  // the ARP request, not the INVITE
    ASSERT_EQ(out.size(), 1u);
    ASSERT_EQ(out[0].size(), 60u);
    EXPECT_EQ(out[0][12], 0x81);  // tagged for the internal VLAN
    EXPECT_EQ(get16(out[0], 14), kIntVlan);
    auto req = net::parse_arp(out[0].data() + 18, out[0].size() - 18);
    ASSERT_TRUE(req);
    EXPECT_EQ(req->op, net::kArpRequest);
    EXPECT_EQ(req->target_ip_be, backend.ip.v4_be());
    EXPECT_EQ(req->sender_ip_be, IpAddress::parse("203.0.113.1")->v4_be());
    auto mid = dp_->stats();
    EXPECT_EQ(drops(mid, "no_neighbor"), drops(before, "no_neighbor") + 1);
    EXPECT_EQ(mid.total("neighbor", "arp_requests"), before.total("neighbor", "arp_requests") + 1);

    // The backend answers; the retransmitted INVITE then goes through.
    std::vector<uint8_t> rep(60, 0);
    std::copy(kIntMac.bytes.begin(), kIntMac.bytes.end(), rep.begin());
    std::copy(kBackend13Mac.bytes.begin(), kBackend13Mac.bytes.end(), rep.begin() + 6);
    rep[12] = 0x81;
    put16(rep, 14, kIntVlan);
    put16(rep, 16, 0x0806);
    net::write_arp(rep.data() + 18, net::arp_reply_to(*req, kBackend13Mac));
    send(int_, rep);
    send(ext_, in.bytes);
    out = receive(int_, 1);
    ASSERT_EQ(out.size(), 1u);
    auto expect = build_frame({.src_mac = kIntMac,
                               .dst_mac = kBackend13Mac,
                               .vlan = kIntVlan,
                               .src = kClient,
                               .dst = backend,
                               .ttl = 63,
                               .payload = msg});
    EXPECT_EQ(out[0], expect.bytes);
    EXPECT_GT(dp_->stats().total("neighbor", "learned"), before.total("neighbor", "learned"));
}

TEST_F(DataplaneRing, Ipv6ForwardAndReplyToGleanedOnLinkClient) {
    const Endpoint client = *Endpoint::parse("[2001:db8:1::99]:5062");
    const Endpoint vip = *Endpoint::parse("[2001:db8:1::10]:5060");
    const Endpoint backend = *Endpoint::parse("[2001:db8:2::11]:5060");
    std::string msg = invite("v6-call");
    auto in = build_frame({.src_mac = kClient6Mac,
                           .dst_mac = kExtMac,
                           .src = client,
                           .dst = vip,
                           .ttl = 64,
                           .ipv6_hop_by_hop = true,
                           .payload = msg});
    send(ext_, in.bytes);
    auto out = receive(int_, 1);
    ASSERT_EQ(out.size(), 1u);
    auto expect = build_frame({.src_mac = kIntMac,
                               .dst_mac = kBackend6Mac,
                               .vlan = kIntVlan,
                               .src = client,
                               .dst = backend,
                               .ttl = 63,
                               .ipv6_hop_by_hop = true,
                               .payload = msg});
    EXPECT_EQ(out[0], expect.bytes);

    std::string reply = response("v6-call");
    auto back = build_frame({.src_mac = kBackend6Mac,
                             .dst_mac = kIntMac,
                             .vlan = kIntVlan,
                             .src = backend,
                             .dst = client,
                             .ttl = 64,
                             .payload = reply});
    send(int_, back.bytes);
    out = receive(ext_, 1);  // client's MAC was learned from its request
    ASSERT_EQ(out.size(), 1u);
    auto expect_back = build_frame(
        {.src_mac = kExtMac, .dst_mac = kClient6Mac, .src = vip, .dst = client, .ttl = 63, .payload = reply});
    EXPECT_EQ(out[0], expect_back.bytes);
}

}  // namespace
