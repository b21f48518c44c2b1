// Kernel exception path over net_tap, inside a network namespace of its
// own (unshare: the tap and its addresses vanish with the process, even on
// failure). A datagram to the node address comes out of the tap into a
// kernel socket, also one from a pool backend (a health check's answer);
// the kernel's ARP request and its answer datagram come out
// on the wire ring; the ARP reply from the wire reaches the kernel.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <rte_ring.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

#include "support/frame_builder.h"
#include "dataplane_test_util.h"
#include "ring_fixture.h"
#include "siplb/dataplane/dataplane.h"
#include "siplb/net/arp.h"
#include "siplb/net/packet.h"

using namespace siplb;
using namespace siplb::test;
using namespace siplb::dataplane::testing;

namespace {

const MacAddress kPeerMac{{0x02, 0, 0, 0, 0x00, 0x20}};
bool g_netns = false;

TEST(KernelPath, TapCarriesNodeTrafficBothWays) {
    if (!g_netns) GTEST_SKIP() << "unshare(CLONE_NEWNET) not permitted: the test needs root";
    RingPort wire = make_ring_port("kp_ext");
    ASSERT_GE(wire.port_id, 0);
    ASSERT_FALSE(wire.device.empty());
    rte_ring* rx = wire.rx;
    rte_ring* tx = wire.tx;
    rte_mempool* pool = rte_pktmbuf_pool_create("kp_frames", 1024, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    ASSERT_NE(pool, nullptr);

    config::Config cfg;
    auto& dc = cfg.dataplane;
    set_test_sizes(dc, "siplb_dp_kp");
    config::PortConfig ext;
    ext.name = "ext";
    ext.device = wire.device;
    ext.addresses = {*Prefix::parse("198.51.100.1/24", true)};
    ext.mac = kExtMac;
    ext.kernel_path = true;
    dc.ports = {ext};
    balance::SnapshotPublisher publisher(make_snapshot({{"lund", {"198.51.100.10:5060"}, {"198.51.100.11:5060"}}}));
    auto affinity = balance::AffinityTable::create(1024);
    auto dp = dataplane::Dataplane::create(cfg.dataplane, publisher, *affinity.value());
    ASSERT_TRUE(dp) << dp.message();
    ASSERT_TRUE(dp.value()->start());

    // The kernel owns the node address now (mirrored to ext-k).
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in me{};
    me.sin_family = AF_INET;
    me.sin_port = htons(9999);
    inet_pton(AF_INET, "198.51.100.1", &me.sin_addr);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&me), sizeof me), 0) << "address not mirrored: " << errno;
    timeval tv{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    // Wire -> kernel.
    auto in = build_frame({.src_mac = kPeerMac,
                           .dst_mac = kExtMac,
                           .src = ep("198.51.100.20:4000"),
                           .dst = ep("198.51.100.1:9999"),
                           .payload = "SIP/2.0 200 OK health"});
    rte_mbuf* m = to_mbuf(pool, in.bytes);
    ASSERT_EQ(rte_ring_enqueue(rx, m), 0);
    char buf[256];
    sockaddr_in from{};
    socklen_t from_len = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    ASSERT_EQ(n, 21);
    EXPECT_EQ(std::string(buf, n), "SIP/2.0 200 OK health");

    // A pool backend answering the node address (the health checker's
    // OPTIONS): for the kernel's socket as it is, not SNAT'ed to the VIP.
    auto health = build_frame({.src_mac = kPeerMac,
                               .dst_mac = kExtMac,
                               .src = ep("198.51.100.11:5060"),
                               .dst = ep("198.51.100.1:9999"),
                               .payload = "SIP/2.0 200 OK probe"});
    ASSERT_EQ(rte_ring_enqueue(rx, to_mbuf(pool, health.bytes)), 0);
    sockaddr_in backend{};
    socklen_t backend_len = sizeof backend;
    n = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&backend), &backend_len);
    ASSERT_EQ(n, 20) << "the backend's answer to the node address did not reach the kernel";
    EXPECT_EQ(std::string(buf, n), "SIP/2.0 200 OK probe");
    EXPECT_EQ(ntohs(backend.sin_port), 5060);
    EXPECT_EQ(dp.value()->stats().total("traffic", "to_client"), 0u);

    // Kernel -> wire: the answer needs the peer's MAC, so the kernel ARPs
    // for it through the tap first.
    ASSERT_EQ(sendto(fd, "OPTIONS", 7, 0, reinterpret_cast<sockaddr*>(&from), from_len), 7);
    auto find_frame = [&](const std::function<bool(const std::vector<uint8_t>&)>& want) {
        std::vector<uint8_t> found;
        wait_until([&] {
            void* p;
            while (found.empty() && rte_ring_dequeue(tx, &p) == 0) {
                auto f = from_mbuf(static_cast<rte_mbuf*>(p));
                rte_pktmbuf_free(static_cast<rte_mbuf*>(p));
                if (want(f)) found = f;
            }
            return !found.empty();
        });
        return found;
    };
    const uint32_t peer_be = IpAddress::parse("198.51.100.20")->v4_be();
    auto arp_frame = find_frame([&](const std::vector<uint8_t>& f) {
        if (f.size() < 42 || get16(f, 12) != net::kEtherTypeArp) return false;
        auto a = net::parse_arp(f.data() + 14, f.size() - 14);
        return a && a->op == net::kArpRequest && a->target_ip_be == peer_be;
    });
    ASSERT_FALSE(arp_frame.empty()) << "no ARP request from the kernel on the wire";
    EXPECT_TRUE(std::equal(kExtMac.bytes.begin(), kExtMac.bytes.end(), arp_frame.begin() + 6));
    // Answer it from the wire: the dataplane passes ARP replies to the kernel.
    auto req = *net::parse_arp(arp_frame.data() + 14, arp_frame.size() - 14);
    std::vector<uint8_t> reply(60, 0);
    std::copy(kExtMac.bytes.begin(), kExtMac.bytes.end(), reply.begin());
    std::copy(kPeerMac.bytes.begin(), kPeerMac.bytes.end(), reply.begin() + 6);
    put16(reply, 12, net::kEtherTypeArp);
    net::write_arp(reply.data() + 14, net::arp_reply_to(req, kPeerMac));
    ASSERT_EQ(rte_ring_enqueue(rx, to_mbuf(pool, reply)), 0);
    auto udp_frame = find_frame([&](const std::vector<uint8_t>& f) {
        net::PacketView v;
        return net::parse_frame(f.data(), f.size(), v) == net::ParseStatus::udp && v.dst_port == 4000;
    });
    ASSERT_FALSE(udp_frame.empty()) << "the kernel's datagram did not reach the wire";
    EXPECT_TRUE(std::equal(kPeerMac.bytes.begin(), kPeerMac.bytes.end(), udp_frame.begin()));
    EXPECT_EQ(std::string(udp_frame.end() - 7, udp_frame.end()), "OPTIONS");
    auto s = dp.value()->stats();
    EXPECT_GE(s.total("kernel_path", "to_kernel"), 2u);
    EXPECT_GE(s.total("kernel_path", "from_kernel"), 2u);
    close(fd);
    dp.value()->stop();
}

}  // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    // Before EAL starts threads: the whole process moves to a fresh namespace.
    g_netns = unshare(CLONE_NEWNET) == 0;
    if (g_netns && std::system("ip link set lo up") != 0) g_netns = false;
    if (g_netns) {
        auto st = dataplane::init_eal(test_eal_args("siplb_dp_kp"));
        if (!st) {
            fprintf(stderr, "%s\n", st.message().c_str());
            return 1;
        }
    }
    return RUN_ALL_TESTS();
}
