#include <gtest/gtest.h>

#include <thread>

#include "siplb/net/arp.h"
#include "siplb/net/ndp.h"
#include "siplb/net/neighbor_table.h"
#include "siplb/net/packet.h"
#include "support/frame_builder.h"

using namespace siplb;
using namespace siplb::net;

namespace {
IpAddress ip(const char* s) { return *IpAddress::parse(s); }
MacAddress mac(uint8_t last) { return MacAddress{{0x02, 0, 0, 0, 0, last}}; }
}  // namespace

TEST(NeighborTable, LearnLookupUpdate) {
    NeighborTable t(64);
    EXPECT_FALSE(t.lookup(ip("192.0.2.1")));
    EXPECT_EQ(t.learn(ip("192.0.2.1"), mac(1), 0), NeighborTable::Learn::inserted);
    EXPECT_EQ(t.learn(ip("192.0.2.1"), mac(1), 0), NeighborTable::Learn::unchanged);
    EXPECT_EQ(t.learn(ip("192.0.2.1"), mac(2), 1), NeighborTable::Learn::updated);
    auto e = t.lookup(ip("192.0.2.1"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->mac, mac(2));
    EXPECT_EQ(e->port, 1);
    EXPECT_FALSE(e->is_static);
    // IPv4 and IPv6 keys never alias, even with equal leading bytes.
    EXPECT_FALSE(t.lookup(ip("c000:201::")));
    EXPECT_EQ(t.learn(ip("2001:db8::1"), mac(3), 2), NeighborTable::Learn::inserted);
    EXPECT_EQ(t.lookup(ip("2001:db8::1"))->mac, mac(3));
    EXPECT_EQ(t.size(), 2u);
}

TEST(NeighborTable, StaticEntriesWin) {
    NeighborTable t(64);
    EXPECT_EQ(t.learn(ip("192.0.2.9"), mac(9), 0, true), NeighborTable::Learn::inserted);
    EXPECT_EQ(t.learn(ip("192.0.2.9"), mac(8), 0), NeighborTable::Learn::static_kept);
    EXPECT_EQ(t.lookup(ip("192.0.2.9"))->mac, mac(9));
    EXPECT_TRUE(t.lookup(ip("192.0.2.9"))->is_static);
}

TEST(NeighborTable, FullIsReportedNotCrashing) {
    NeighborTable t(16);
    int full = 0;
    for (int i = 0; i < 40; ++i) {
        IpAddress a = IpAddress::from_v4_be(0x0100000Au + (static_cast<uint32_t>(i) << 24));
        if (t.learn(a, mac(static_cast<uint8_t>(i)), 0) == NeighborTable::Learn::full) ++full;
    }
    EXPECT_GT(full, 0);
    EXPECT_LE(t.size(), 16u);
}

TEST(NeighborTable, ConcurrentReadersSeeConsistentEntries) {
    NeighborTable t(256);
    std::atomic<bool> stop{false};
    std::atomic<int> torn{0};
    std::thread reader([&] {
        while (!stop.load()) {
            if (auto e = t.lookup(ip("198.51.100.7"))) {
                // Writers always store MAC last byte == port.
                if (e->mac.bytes[5] != e->port) torn.fetch_add(1);
            }
        }
    });
    for (int i = 0; i < 20000; ++i) {
        auto v = static_cast<uint8_t>(i % 200);
        (void)t.learn(ip("198.51.100.7"), mac(v), v);
    }
    stop = true;
    reader.join();
    EXPECT_EQ(torn.load(), 0);
}

TEST(NeighborTable, RequestRateLimit) {
    NeighborTable t(64);
    EXPECT_TRUE(t.should_request(ip("192.0.2.5"), 1000, 1000));
    EXPECT_FALSE(t.should_request(ip("192.0.2.5"), 1500, 1000));
    EXPECT_TRUE(t.should_request(ip("192.0.2.5"), 2000, 1000));
}

TEST(Arp, ParseBuildReply) {
    ArpMessage req;
    req.op = kArpRequest;
    req.sender_mac = mac(1);
    req.sender_ip_be = ip("192.0.2.10").v4_be();
    req.target_ip_be = ip("198.51.100.1").v4_be();
    uint8_t buf[kArpLen];
    write_arp(buf, req);
    EXPECT_EQ(buf[7], 1);
    auto parsed = parse_arp(buf, sizeof buf);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->sender_mac, mac(1));
    EXPECT_EQ(parsed->target_ip_be, req.target_ip_be);
    auto rep = arp_reply_to(*parsed, mac(7));
    EXPECT_EQ(rep.op, kArpReply);
    EXPECT_EQ(rep.sender_ip_be, ip("198.51.100.1").v4_be());
    EXPECT_EQ(rep.target_mac, mac(1));
    EXPECT_FALSE(parse_arp(buf, kArpLen - 1));
    buf[7] = 9;
    EXPECT_FALSE(parse_arp(buf, sizeof buf));
}

namespace {
// Independent ICMPv6 checksum of the message as long as its IPv6 header says.
uint16_t naive_icmpv6(const std::vector<uint8_t>& f, size_t l3) {
    return siplb::test::naive_icmp_checksum(f, l3, l3 + 40, l3 + 40 + siplb::test::get16(f, l3 + 4), true);
}
using siplb::test::ndp_frame;
}  // namespace

TEST(Ndp, SolicitationRoundTrip) {
    auto f = ndp_frame();
    write_neighbor_solicitation(f.data() + 14, ip("2001:db8:2::1"), mac(1), ip("2001:db8:2::abcd:1234"));
    EXPECT_EQ(siplb::test::get16(f, 14 + 42), naive_icmpv6(f, 14));
    PacketView v;
    ASSERT_EQ(parse_frame(f.data(), f.size(), v), ParseStatus::not_udp);
    auto m = parse_ndp(f.data(), v);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->type, kIcmpv6NeighborSolicitation);
    EXPECT_EQ(m->target, ip("2001:db8:2::abcd:1234"));
    EXPECT_EQ(m->source, ip("2001:db8:2::1"));
    ASSERT_TRUE(m->link_addr);
    EXPECT_EQ(*m->link_addr, mac(1));
    // Sent to the solicited-node group of the target.
    EXPECT_EQ(IpAddress::from_v6(f.data() + 14 + 24), ip("ff02::1:ffcd:1234"));
    EXPECT_EQ(ipv6_multicast_mac(solicited_node_address(ip("2001:db8:2::abcd:1234"))),
              (MacAddress{{0x33, 0x33, 0xff, 0xcd, 0x12, 0x34}}));

    auto bad = f;
    bad[14 + 40 + 10] ^= 1;  // target changed, checksum stale
    ASSERT_EQ(parse_frame(bad.data(), bad.size(), v), ParseStatus::not_udp);
    EXPECT_FALSE(parse_ndp(bad.data(), v));
    auto routed = f;
    routed[14 + 7] = 254;  // crossed a router
    ASSERT_EQ(parse_frame(routed.data(), routed.size(), v), ParseStatus::not_udp);
    EXPECT_FALSE(parse_ndp(routed.data(), v));
}

TEST(Ndp, AdvertisementRoundTrip) {
    auto f = ndp_frame();
    write_neighbor_advertisement(f.data() + 14, ip("2001:db8:1::10"), ip("2001:db8:1::99"), mac(7), true);
    EXPECT_EQ(siplb::test::get16(f, 14 + 42), naive_icmpv6(f, 14));
    PacketView v;
    ASSERT_EQ(parse_frame(f.data(), f.size(), v), ParseStatus::not_udp);
    auto m = parse_ndp(f.data(), v);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->type, kIcmpv6NeighborAdvertisement);
    EXPECT_EQ(m->target, ip("2001:db8:1::10"));
    EXPECT_TRUE(m->solicited);
    EXPECT_TRUE(m->override_flag);
    ASSERT_TRUE(m->link_addr);
    EXPECT_EQ(*m->link_addr, mac(7));
    for (size_t cut = 14 + 40; cut < f.size(); ++cut) {  // truncated: never valid, never out of bounds
        std::vector<uint8_t> t(f.begin(), f.begin() + cut);
        siplb::test::put16(t, 14 + 4, static_cast<uint16_t>(cut - 54));
        if (parse_frame(t.data(), t.size(), v) == ParseStatus::not_udp) {
            EXPECT_FALSE(parse_ndp(t.data(), v)) << cut;
        }
    }
}
