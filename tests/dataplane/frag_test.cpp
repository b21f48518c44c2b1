// IP fragments through a running dataplane over net_ring ports: fragments
// of large INVITEs to a VIP out of order, duplicated, overlapping or
// missing; the datagram balanced whole and fragmented again for the egress
// MTU with valid checksums; no mbuf held after a timeout.
#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ring.h>

#include "../net/frame_builder.h"
#include "dataplane_test_util.h"
#include "siplb/balance/hash.h"
#include "siplb/dataplane/dataplane.h"
#include "siplb/net/packet.h"

using namespace siplb;
using namespace siplb::test;
using std::chrono::milliseconds;

namespace {

const MacAddress kExtMac{{0x02, 0, 0, 0, 0x01, 0x01}};
const MacAddress kIntMac{{0x02, 0, 0, 0, 0x02, 0x02}};
const MacAddress kGatewayMac{{0x02, 0, 0, 0, 0x00, 0xfe}};
const MacAddress kBackend11Mac{{0x02, 0, 0, 0, 0x0b, 0x11}};
const MacAddress kBackend12Mac{{0x02, 0, 0, 0, 0x0b, 0x12}};
const MacAddress kBackend6Mac{{0x02, 0, 0, 0, 0x0b, 0x66}};
constexpr uint16_t kIntVlan = 100;
const Endpoint kClient = *Endpoint::parse("192.0.2.10:5062");
const Endpoint kVip = *Endpoint::parse("198.51.100.10:5060");
const Endpoint kClient6 = *Endpoint::parse("[2001:db8:9::10]:5062");
const Endpoint kVip6 = *Endpoint::parse("[2001:db8:1::10]:5060");

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

rte_mempool* g_pool = nullptr;

class EalEnvironment : public ::testing::Environment {
public:
    void SetUp() override {
        auto st = dataplane::init_eal(test_eal_args("siplb_dp_frag"));
        if (!st) {
            fprintf(stderr, "%s\n", st.message().c_str());
            std::exit(1);
        }
        g_pool = rte_pktmbuf_pool_create("frag_frames", 2048, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
        if (!g_pool) std::exit(1);
    }
};
const auto* const g_env = ::testing::AddGlobalTestEnvironment(new EalEnvironment);

class DataplaneFrag : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        ext_ = make_ring_port("frag_ext");
        int_ = make_ring_port("frag_int");
        ASSERT_GE(ext_.port_id, 0);
        ASSERT_GE(int_.port_id, 0);
        config::Config cfg;
        auto& dc = cfg.dataplane;
        dc.eal = test_eal_args("siplb_dp_frag");
        dc.workers = 1;
        dc.mbufs = 4096;
        dc.mbuf_cache = 32;
        dc.rx_ring = 256;
        dc.tx_ring = 256;
        dc.frag_timeout_ms = 300;
        dc.frag_max_flows = 64;
        config::PortConfig ext;
        ext.name = "ext";
        ext.device = ext_.device;
        ext.addresses = {*Prefix::parse("198.51.100.1/24", true), *Prefix::parse("2001:db8:1::1/64", true)};
        ext.mac = kExtMac;
        config::PortConfig in;
        in.name = "int";
        in.device = int_.device;
        in.addresses = {*Prefix::parse("203.0.113.1/24", true), *Prefix::parse("2001:db8:2::1/64", true)};
        in.mac = kIntMac;
        in.vlan = kIntVlan;
        dc.ports = {ext, in};
        dc.routes = {{*Prefix::parse("0.0.0.0/0"), *IpAddress::parse("198.51.100.254"), ""},
                     {*Prefix::parse("::/0"), *IpAddress::parse("2001:db8:1::fe"), ""}};
        dc.neighbors = {{*IpAddress::parse("198.51.100.254"), kGatewayMac, "ext"},
                        {*IpAddress::parse("2001:db8:1::fe"), kGatewayMac, "ext"},
                        {*IpAddress::parse("203.0.113.11"), kBackend11Mac, "int"},
                        {*IpAddress::parse("203.0.113.12"), kBackend12Mac, "int"},
                        {*IpAddress::parse("2001:db8:2::11"), kBackend6Mac, ""}};
        publisher_ = new balance::SnapshotPublisher(make_snapshot({
            {"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060", "203.0.113.12:5080"}},
            {"six", {"[2001:db8:1::10]:5060"}, {"[2001:db8:2::11]:5060"}},
        }));
        affinity_ = balance::AffinityTable::create(1024).value().release();
        auto dp = dataplane::Dataplane::create(cfg, *publisher_, *affinity_);
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
        dp_ = nullptr;
    }
    void SetUp() override { ASSERT_NE(dp_, nullptr); }

    void send(RingPort& p, const std::vector<std::vector<uint8_t>>& frames) {
        uint64_t before = dp_->stats().rx_packets;
        for (const auto& f : frames) {
            rte_mbuf* m = to_mbuf(g_pool, f);
            ASSERT_NE(m, nullptr);
            ASSERT_EQ(rte_ring_enqueue(p.rx, m), 0);
        }
        ASSERT_TRUE(wait_until([&] { return dp_->stats().rx_packets >= before + frames.size(); }));
    }
    void send(RingPort& p, const std::vector<uint8_t>& frame) { send(p, std::vector<std::vector<uint8_t>>{frame}); }
    std::vector<std::vector<uint8_t>> receive(RingPort& p, size_t n) {
        std::vector<std::vector<uint8_t>> out;
        auto drain = [&] {
            void* m;
            while (rte_ring_dequeue(p.tx, &m) == 0) {
                out.push_back(from_mbuf(static_cast<rte_mbuf*>(m)));
                rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
            }
            return out.size() >= n;
        };
        wait_until(drain);
        std::this_thread::sleep_for(milliseconds(20));
        drain();
        EXPECT_EQ(out.size(), n);
        return out;
    }
    static Endpoint table_choice(const std::string& pool_name, const std::string& call_id) {
        const auto& p = *publisher_->current()->find_pool(pool_name);
        return p.backends()[p.table().lookup(balance::hash_call_id(call_id, p.seed()))].address;
    }

    static inline RingPort ext_, int_;
    static inline balance::SnapshotPublisher* publisher_ = nullptr;
    static inline balance::AffinityTable* affinity_ = nullptr;
    static inline dataplane::Dataplane* dp_ = nullptr;
};

std::string big_invite(const std::string& call_id, size_t size) {
    std::string head = "INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" +
                       call_id + "\r\nFrom: <sip:alice@example.net>;tag=1\r\nTo: <sip:bob@example.net>\r\nCall-ID: " +
                       call_id + "\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: ";
    std::string body;
    while (body.size() + head.size() + 12 < size) body += "a=candidate:1 1 UDP 2130706431 192.0.2.10 5004 typ host\r\n";
    return head + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Splits the datagram of an untagged frame into fragments of `piece` bytes
// of payload (multiple of 8), in order; IPv4 without DF, IPv6 with a
// fragment header (identification `id`).
std::vector<std::vector<uint8_t>> fragment(const std::vector<uint8_t>& frame, size_t piece, uint32_t id) {
    std::vector<std::vector<uint8_t>> out;
    const bool v6 = get16(frame, 12) == 0x86DD;
    const size_t l3 = 14, hdr = v6 ? 40 : (frame[l3] & 0x0F) * 4u;
    const size_t data_len = frame.size() - l3 - hdr;
    for (size_t off = 0; off < data_len; off += piece) {
        size_t n = std::min(piece, data_len - off);
        bool more = off + n < data_len;
        std::vector<uint8_t> f(frame.begin(), frame.begin() + l3 + hdr);
        if (!v6) {
            put16(f, l3 + 2, static_cast<uint16_t>(hdr + n));
            put16(f, l3 + 4, static_cast<uint16_t>(id));
            put16(f, l3 + 6, static_cast<uint16_t>((more ? 0x2000 : 0) | (off / 8)));
            put16(f, l3 + 10, naive_ipv4_checksum(f, l3));
        } else {
            put16(f, l3 + 4, static_cast<uint16_t>(8 + n));
            f[l3 + 6] = 44;
            f.insert(f.end(), {17, 0, static_cast<uint8_t>((off >> 8) & 0xFF),
                               static_cast<uint8_t>((off & 0xF8) | (more ? 1 : 0)), static_cast<uint8_t>(id >> 24),
                               static_cast<uint8_t>(id >> 16), static_cast<uint8_t>(id >> 8),
                               static_cast<uint8_t>(id)});
        }
        f.insert(f.end(), frame.begin() + l3 + hdr + off, frame.begin() + l3 + hdr + off + n);
        out.push_back(std::move(f));
    }
    return out;
}

// Reassembles output fragments (tagged, L3 at 18) into the IP datagram,
// checking each fragment's size and IPv4 header checksum.
std::vector<uint8_t> reassemble(const std::vector<std::vector<uint8_t>>& frags, uint16_t mtu) {
    std::vector<uint8_t> data, header;
    const size_t l3 = 18;
    for (const auto& f : frags) {
        EXPECT_LE(f.size() - l3, mtu);
        const bool v6 = get16(f, 16) == 0x86DD;
        size_t off, hdr;
        if (!v6) {
            EXPECT_EQ(get16(f, l3 + 10), naive_ipv4_checksum(f, l3));
            hdr = (f[l3] & 0x0F) * 4u;
            off = (get16(f, l3 + 6) & 0x1FFF) * 8u;
            if (off == 0) header.assign(f.begin() + l3, f.begin() + l3 + hdr);
        } else {
            EXPECT_EQ(f[l3 + 6], 44);
            hdr = 48;
            off = get16(f, l3 + 42) & 0xFFF8;
            if (off == 0) {
                header.assign(f.begin() + l3, f.begin() + l3 + 40);
                header[6] = f[l3 + 40];
            }
        }
        if (data.size() < off + f.size() - l3 - hdr) data.resize(off + f.size() - l3 - hdr);
        std::copy(f.begin() + l3 + hdr, f.end(), data.begin() + off);
    }
    if (header.empty()) return {};
    if (header[0] >> 4 == 4) {
        put16(header, 2, static_cast<uint16_t>(header.size() + data.size()));
        put16(header, 6, 0);
        put16(header, 10, 0);
        put16(header, 10, naive_ipv4_checksum(header, 0));
    } else {
        put16(header, 4, static_cast<uint16_t>(data.size()));
    }
    header.insert(header.end(), data.begin(), data.end());
    return header;
}

// The datagram the backend should receive, L3 only, without DF (as reassembled).
std::vector<uint8_t> expected_datagram(const Endpoint& client, const Endpoint& backend, uint8_t ttl,
                                       const std::string& msg, uint16_t id) {
    auto f = build_frame({.vlan = kIntVlan, .src = client, .dst = backend, .ttl = ttl, .payload = msg}).bytes;
    std::vector<uint8_t> d(f.begin() + 18, f.end());
    if (client.ip.is_v4()) {
        put16(d, 4, id);
        put16(d, 6, 0);
        put16(d, 10, naive_ipv4_checksum(d, 0));
    }
    return d;
}

TEST_F(DataplaneFrag, OutOfOrderDuplicatedFragmentsAreBalancedWholeAndRefragmented) {
    for (bool v6 : {false, true}) {
        const std::string call_id = v6 ? "big-six@pbx" : "big-four@pbx";
        const std::string msg = big_invite(call_id, 3000);
        const Endpoint client = v6 ? kClient6 : kClient;
        const Endpoint vip = v6 ? kVip6 : kVip;
        auto whole = build_frame({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = client, .dst = vip, .ttl = 60,
                                  .payload = msg})
                         .bytes;
        auto frags = fragment(whole, 1232, v6 ? 0x10203 : 0x4242);
        ASSERT_EQ(frags.size(), 3u);
        auto before = dp_->stats();
        send(ext_, {frags[2], frags[0], frags[0], frags[1]});
        auto out = receive(int_, 3);
        ASSERT_EQ(out.size(), 3u);
        const Endpoint backend = table_choice(v6 ? "six" : "lund", call_id);
        EXPECT_EQ(reassemble(out, 1500), expected_datagram(client, backend, 59, msg, 0x4242));
        for (const auto& f : out) {
            MacAddress bmac = v6 ? kBackend6Mac
                                 : (backend.ip == *IpAddress::parse("203.0.113.11") ? kBackend11Mac : kBackend12Mac);
            EXPECT_TRUE(std::equal(bmac.bytes.begin(), bmac.bytes.end(), f.begin()));
            EXPECT_EQ(get16(f, 14), kIntVlan);
        }
        auto after = dp_->stats();
        EXPECT_EQ(after.edge.frag_reassembled, before.edge.frag_reassembled + 1);
        EXPECT_EQ(after.edge.frag_received, before.edge.frag_received + 3);
        EXPECT_EQ(after.edge.frag_duplicates, before.edge.frag_duplicates + 1);
        EXPECT_EQ(after.edge.frag_sent, before.edge.frag_sent + 3);
        EXPECT_EQ(after.to_backend, before.to_backend + 1);
    }
}

TEST_F(DataplaneFrag, MissingFragmentTimesOutWithoutLeaking) {
    std::this_thread::sleep_for(milliseconds(400));  // earlier tests' flows expired
    const unsigned start = rte_mempool_avail_count(g_pool);
    auto whole = build_frame({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = kVip,
                              .payload = big_invite("lost@pbx", 3000)})
                     .bytes;
    auto frags = fragment(whole, 1232, 0x777);
    auto before = dp_->stats();
    send(ext_, {frags[0], frags[2]});
    EXPECT_EQ(rte_mempool_avail_count(g_pool), start - 2);  // held by the reassembly table
    EXPECT_TRUE(wait_until([&] { return dp_->stats().edge.frag_dropped >= before.edge.frag_dropped + 2; }));
    EXPECT_TRUE(wait_until([&] { return rte_mempool_avail_count(g_pool) == start; }));
    EXPECT_TRUE(receive(int_, 0).empty());
    EXPECT_EQ(dp_->stats().edge.frag_reassembled, before.edge.frag_reassembled);
}

TEST_F(DataplaneFrag, OverlappingFragmentsAreDroppedAndCounted) {
    auto whole = build_frame({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = kVip,
                              .payload = big_invite("overlap@pbx", 3000)})
                     .bytes;
    auto frags = fragment(whole, 1232, 0x999);
    auto wide = fragment(whole, 1480, 0x999);  // its second piece overlaps frags[0] and frags[1]
    const unsigned start = rte_mempool_avail_count(g_pool);
    auto before = dp_->stats();
    send(ext_, {frags[0], wide[1], frags[2]});
    EXPECT_TRUE(receive(int_, 0).empty());
    EXPECT_TRUE(wait_until([&] { return rte_mempool_avail_count(g_pool) == start; }));
    auto after = dp_->stats();
    EXPECT_EQ(after.edge.frag_reassembled, before.edge.frag_reassembled);
    EXPECT_EQ(after.edge.frag_dropped, before.edge.frag_dropped + 3);
}

TEST_F(DataplaneFrag, FragmentsNotForAVipAreCounted) {
    auto whole = build_frame({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient,
                              .dst = *Endpoint::parse("198.51.100.1:53"), .payload = big_invite("dns", 3000)})
                     .bytes;
    auto frags = fragment(whole, 1232, 0x555);
    auto before = dp_->stats();
    send(ext_, frags);
    EXPECT_TRUE(receive(int_, 0).empty());
    auto after = dp_->stats();
    EXPECT_EQ(after.edge.frag_not_for_vip, before.edge.frag_not_for_vip + frags.size());
    EXPECT_EQ(after.edge.frag_received, before.edge.frag_received);
}

}  // namespace
