// Two workers on two lcores (mapped onto the machine's CPUs with --lcores):
// each polls one ring port and owns its own TX queue on every port; the
// per-lcore counters add up in stats().
#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ring.h>

#include "support/frame_builder.h"
#include "dataplane_test_util.h"
#include "siplb/dataplane/dataplane.h"
#include "siplb/net/packet.h"

using namespace siplb;
using namespace siplb::test;

namespace {

const MacAddress kExtMac{{0x02, 0, 0, 0, 0x01, 0x01}};
const MacAddress kIntMac{{0x02, 0, 0, 0, 0x02, 0x02}};
const MacAddress kGatewayMac{{0x02, 0, 0, 0, 0x00, 0xfe}};
const MacAddress kBackendMac{{0x02, 0, 0, 0, 0x0b, 0x11}};

struct Port {
    rte_ring* rx = nullptr;
    rte_ring* tx[2] = {nullptr, nullptr};  // one per worker TX queue
    std::string device;
};

Port make_port(const std::string& name) {
    Port p;
    p.rx = rte_ring_create((name + "_rx").c_str(), 512, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    for (int q = 0; q < 2; ++q)
        p.tx[q] = rte_ring_create((name + "_tx" + std::to_string(q)).c_str(), 512, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    int id = rte_eth_from_rings(name.c_str(), &p.rx, 1, p.tx, 2, 0);
    char dev[RTE_ETH_NAME_MAX_LEN] = {};
    if (id >= 0 && rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), dev) == 0) p.device = dev;
    return p;
}

size_t drain(Port& p, std::vector<std::vector<uint8_t>>& out) {
    size_t n = 0;
    for (rte_ring* r : p.tx) {
        void* m;
        while (rte_ring_dequeue(r, &m) == 0) {
            out.push_back(from_mbuf(static_cast<rte_mbuf*>(m)));
            rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
            ++n;
        }
    }
    return n;
}

TEST(DataplaneMultiWorker, TwoWorkersForwardBothDirectionsAndCountersAddUp) {
    auto eal = test_eal_args("siplb_dp_mw");
    // Three lcores (main + 2 workers) on however many CPUs there are.
    for (size_t i = 0; i + 1 < eal.size(); ++i)
        if (eal[i] == "-l") {
            eal[i] = "--lcores";
            eal[i + 1] = "0@0,1@0,2@0";
        }
    auto st = dataplane::init_eal(eal);
    ASSERT_TRUE(st) << st.message();
    rte_mempool* frames_pool = rte_pktmbuf_pool_create("mw_frames", 1024, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    ASSERT_NE(frames_pool, nullptr);
    Port ext = make_port("mw_ext"), in = make_port("mw_int");
    ASSERT_FALSE(ext.device.empty());
    ASSERT_FALSE(in.device.empty());

    config::Config cfg;
    auto& dc = cfg.dataplane;
    dc.workers = 2;
    dc.mbufs = 4096;
    dc.mbuf_cache = 32;
    dc.rx_ring = 256;
    dc.tx_ring = 256;
    dc.announce = false;  // every frame out is counted
    config::PortConfig pe, pi;
    pe.name = "ext";
    pe.device = ext.device;
    pe.addresses = {*Prefix::parse("198.51.100.1/24", true)};
    pe.mac = kExtMac;
    pi.name = "int";
    pi.device = in.device;
    pi.addresses = {*Prefix::parse("203.0.113.1/24", true)};
    pi.mac = kIntMac;
    dc.ports = {pe, pi};
    dc.routes = {{*Prefix::parse("192.0.2.0/24"), *IpAddress::parse("198.51.100.254"), ""}};
    dc.neighbors = {{*IpAddress::parse("198.51.100.254"), kGatewayMac, ""},
                    {*IpAddress::parse("203.0.113.11"), kBackendMac, ""}};
    balance::SnapshotPublisher publisher(make_snapshot({{"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060"}}}));
    auto affinity = balance::AffinityTable::create(1024);

    // What does not fit fails at create() with a message naming the limit.
    auto expect_error = [&](config::Config bad, const std::string& needle) {
        auto r = dataplane::Dataplane::create(bad.dataplane, publisher, *affinity.value());
        ASSERT_FALSE(r) << needle;
        EXPECT_NE(r.message().find(needle), std::string::npos) << r.message();
    };
    auto too_many_workers = cfg;
    too_many_workers.dataplane.workers = 5;
    expect_error(too_many_workers, "worker lcores");
    auto too_few_mbufs = cfg;
    too_few_mbufs.dataplane.mbufs = 300;
    expect_error(too_few_mbufs, "dataplane.mbufs = 300 is too small");
    auto unknown_port = cfg;
    unknown_port.dataplane.ports[1].device = "0000:99:00.0";
    expect_error(unknown_port, "port 'int' (0000:99:00.0): no such DPDK port");
    auto bad_vdev = cfg;
    bad_vdev.dataplane.ports[1].device = "net_pcap_broken";
    bad_vdev.dataplane.ports[1].vdev_args = "rx_pcap=/nonexistent/in.pcap";
    expect_error(bad_vdev, "cannot create virtual device");
    auto too_many_rx = cfg;
    too_many_rx.dataplane.ports[0].rx_queues = 8;
    expect_error(too_many_rx, "rx_queues = 8 but the device supports 1");

    auto dp = dataplane::Dataplane::create(cfg.dataplane, publisher, *affinity.value());
    ASSERT_TRUE(dp) << dp.message();
    ASSERT_EQ(dp.value()->worker_count(), 2u);
    ASSERT_TRUE(dp.value()->start());

    const Endpoint client = *Endpoint::parse("192.0.2.10:5062"), vip = *Endpoint::parse("198.51.100.10:5060");
    const Endpoint backend = *Endpoint::parse("203.0.113.11:5060");
    constexpr int kEach = 50;
    for (int i = 0; i < kEach; ++i) {
        std::string id = "mw-" + std::to_string(i);
        auto req = build_frame({.src_mac = kGatewayMac,
                                .dst_mac = kExtMac,
                                .src = client,
                                .dst = vip,
                                .payload = "OPTIONS sip:x SIP/2.0\r\nCall-ID: " + id + "\r\nCSeq: 1 OPTIONS\r\n\r\n"});
        auto rep = build_frame({.src_mac = kBackendMac,
                                .dst_mac = kIntMac,
                                .src = backend,
                                .dst = client,
                                .payload = "SIP/2.0 200 OK\r\nCall-ID: " + id + "\r\nCSeq: 1 OPTIONS\r\n\r\n"});
        ASSERT_EQ(rte_ring_enqueue(ext.rx, to_mbuf(frames_pool, req.bytes)), 0);
        ASSERT_EQ(rte_ring_enqueue(in.rx, to_mbuf(frames_pool, rep.bytes)), 0);
    }
    std::vector<std::vector<uint8_t>> to_backend, to_client;
    ASSERT_TRUE(wait_until([&] {
        drain(in, to_backend);
        drain(ext, to_client);
        return to_backend.size() >= kEach && to_client.size() >= kEach;
    }));
    auto s = dp.value()->stats();
    dp.value()->stop();
    drain(in, to_backend);
    drain(ext, to_client);
    EXPECT_EQ(to_backend.size(), static_cast<size_t>(kEach));
    EXPECT_EQ(to_client.size(), static_cast<size_t>(kEach));
    for (const auto& f : to_backend) {
        net::PacketView v;
        ASSERT_EQ(net::parse_frame(f.data(), f.size(), v), net::ParseStatus::udp);
        EXPECT_EQ(net::destination_endpoint(f.data(), v), backend);
    }
    for (const auto& f : to_client) {
        net::PacketView v;
        ASSERT_EQ(net::parse_frame(f.data(), f.size(), v), net::ParseStatus::udp);
        EXPECT_EQ(net::source_endpoint(f.data(), v), vip);
    }
    ASSERT_EQ(s.workers.size(), 2u);
    EXPECT_EQ(s.workers[0].at("traffic", "rx_packets"), static_cast<uint64_t>(kEach));
    EXPECT_EQ(s.workers[1].at("traffic", "rx_packets"), static_cast<uint64_t>(kEach));
    EXPECT_EQ(s.total("traffic", "rx_packets"), 2u * kEach);
    EXPECT_EQ(s.total("traffic", "tx_packets"), 2u * kEach);
    EXPECT_EQ(s.total("traffic", "to_backend"), static_cast<uint64_t>(kEach));
    EXPECT_EQ(s.total("traffic", "to_client"), static_cast<uint64_t>(kEach));
    ASSERT_EQ(s.pools.size(), 1u);
    EXPECT_EQ(s.backends[0].at("traffic", "packets_to"), static_cast<uint64_t>(kEach));
    EXPECT_EQ(s.backends[0].at("traffic", "packets_from"), static_cast<uint64_t>(kEach));
    // Each worker transmitted on its own queue: both TX rings of a port are
    // used only if the worker polling the other port sent there.
    EXPECT_EQ(s.ports[0].at("traffic", "tx_packets") + s.ports[1].at("traffic", "tx_packets"), 2u * kEach);
}

}  // namespace
