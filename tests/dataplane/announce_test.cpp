// Announcements through a running dataplane over net_ring ports
// (dataplane.announce = true): one gratuitous ARP (RFC 5227 request form) or
// unsolicited neighbor advertisement (RFC 4861 7.2.6) per port address and
// VIP at start, on the VIP's on-link port (tagged on a VLAN port), and one
// for each VIP a later snapshot brings; compared byte for byte.
#include <gtest/gtest.h>
#include <rte_ring.h>

#include "support/frame_builder.h"
#include "dataplane_test_util.h"
#include "ring_fixture.h"
#include "siplb/dataplane/dataplane.h"

using namespace siplb;
using namespace siplb::test;
using namespace siplb::dataplane::testing;

namespace {

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new RingEalEnvironment("siplb_dp_announce", "announce_frames"));

// Broadcast ARP request with sender = target = `ip`, padded to 60 bytes.
std::vector<uint8_t> gratuitous_arp(const MacAddress& mac, uint16_t vlan, const std::string& ip) {
    std::vector<uint8_t> b;
    append_ethernet(b, MacAddress{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, mac, vlan, 0x0806);
    const IpAddress a = *IpAddress::parse(ip);
    b.insert(b.end(), {0, 1, 0x08, 0, 6, 4, 0, 1});
    b.insert(b.end(), mac.bytes.begin(), mac.bytes.end());
    b.insert(b.end(), a.bytes.begin(), a.bytes.begin() + 4);
    b.insert(b.end(), 6, 0);
    b.insert(b.end(), a.bytes.begin(), a.bytes.begin() + 4);
    b.resize(60, 0);
    return b;
}

// NA from `ip` to ff02::1 (33:33:00:00:00:01), hop limit 255, override set,
// solicited clear, target link-layer address option.
std::vector<uint8_t> unsolicited_na(const MacAddress& mac, uint16_t vlan, const std::string& ip) {
    std::vector<uint8_t> b;
    append_ethernet(b, MacAddress{{0x33, 0x33, 0, 0, 0, 1}}, mac, vlan, 0x86DD);
    const IpAddress src = *IpAddress::parse(ip);
    const IpAddress dst = *IpAddress::parse("ff02::1");
    b.insert(b.end(), {0x60, 0, 0, 0, 0, 32, 58, 255});
    b.insert(b.end(), src.bytes.begin(), src.bytes.end());
    b.insert(b.end(), dst.bytes.begin(), dst.bytes.end());
    std::vector<uint8_t> msg = {136, 0, 0, 0, 0x20, 0, 0, 0};
    msg.insert(msg.end(), src.bytes.begin(), src.bytes.end());
    msg.insert(msg.end(), {2, 1});
    msg.insert(msg.end(), mac.bytes.begin(), mac.bytes.end());
    std::vector<uint8_t> pseudo(src.bytes.begin(), src.bytes.end());
    pseudo.insert(pseudo.end(), dst.bytes.begin(), dst.bytes.end());
    pseudo.insert(pseudo.end(), {0, 0, 0, 32, 0, 0, 0, 58});
    pseudo.insert(pseudo.end(), msg.begin(), msg.end());
    put16(msg, 2, naive_checksum(pseudo));
    b.insert(b.end(), msg.begin(), msg.end());
    return b;
}

class DataplaneAnnounce : public RingDataplaneTest<DataplaneAnnounce> {
protected:
    static void SetUpTestSuite() {
        open_ports("announce");
        if (HasFatalFailure()) return;
        config::Config cfg;
        set_test_sizes(cfg.dataplane, "siplb_dp_announce");
        set_two_ports(cfg.dataplane, ext_, int_, true);
        cfg.dataplane.announce = true;
        start(cfg, make_snapshot({
                       {"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060"}},
                       {"six", {"[2001:db8:1::10]:5060"}, {"[2001:db8:2::11]:5060"}},
                   }));
    }
};

TEST_F(DataplaneAnnounce, PortAddressesAndVipsAreAnnouncedOnceAtStart) {
    auto ext = receive(ext_, 4);
    ASSERT_EQ(ext.size(), 4u);
    EXPECT_EQ(ext[0], gratuitous_arp(kExtMac, 0, "198.51.100.1"));
    EXPECT_EQ(ext[1], unsolicited_na(kExtMac, 0, "2001:db8:1::1"));
    EXPECT_EQ(ext[2], gratuitous_arp(kExtMac, 0, "198.51.100.10"));
    EXPECT_EQ(ext[3], unsolicited_na(kExtMac, 0, "2001:db8:1::10"));
    auto in = receive(int_, 2);
    ASSERT_EQ(in.size(), 2u);
    EXPECT_EQ(in[0], gratuitous_arp(kIntMac, kIntVlan, "203.0.113.1"));
    EXPECT_EQ(in[1], unsolicited_na(kIntMac, kIntVlan, "2001:db8:2::1"));
    auto s = dp_->stats();
    EXPECT_EQ(s.total("neighbor", "gratuitous_arps"), 3u);
    EXPECT_EQ(s.total("neighbor", "unsolicited_nas"), 3u);
}

TEST_F(DataplaneAnnounce, ANewSnapshotAnnouncesOnlyItsNewVip) {
    publisher_->publish(make_snapshot(
        {
            {"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060", "203.0.113.12:5080"}},
            {"six", {"[2001:db8:1::10]:5060"}, {"[2001:db8:2::11]:5060"}},
            {"trunk", {"198.51.100.20:5060"}, {"203.0.113.12:5060"}},
        },
        2));
    auto ext = receive(ext_, 1);
    ASSERT_EQ(ext.size(), 1u);
    EXPECT_EQ(ext[0], gratuitous_arp(kExtMac, 0, "198.51.100.20"));
    receive(int_, 0);
    EXPECT_EQ(dp_->stats().total("neighbor", "gratuitous_arps"), 4u);
}

}  // namespace
