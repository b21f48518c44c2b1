// IP fragments through a running dataplane over net_ring ports: fragments
// of large INVITEs to a VIP out of order, duplicated, overlapping or
// missing; the datagram balanced whole and fragmented again for the egress
// MTU with valid checksums; no mbuf held after a timeout.
#include <gtest/gtest.h>
#include <rte_ring.h>

#include "../net/frame_builder.h"
#include "dataplane_test_util.h"
#include "ring_fixture.h"
#include "siplb/balance/hash.h"
#include "siplb/dataplane/dataplane.h"
#include "siplb/net/packet.h"

using namespace siplb;
using namespace siplb::test;
using namespace siplb::dataplane::testing;
using std::chrono::milliseconds;

namespace {

const Endpoint kClient = *Endpoint::parse("192.0.2.10:5062");
const Endpoint kVip = *Endpoint::parse("198.51.100.10:5060");
const Endpoint kClient6 = *Endpoint::parse("[2001:db8:9::10]:5062");
const Endpoint kVip6 = *Endpoint::parse("[2001:db8:1::10]:5060");

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new RingEalEnvironment("siplb_dp_frag", "frag_frames"));

class DataplaneFrag : public RingDataplaneTest<DataplaneFrag> {
protected:
    static void SetUpTestSuite() {
        open_ports("frag");
        if (HasFatalFailure()) return;
        config::Config cfg;
        set_test_sizes(cfg.dataplane, "siplb_dp_frag");
        cfg.dataplane.frag_timeout_ms = 300;
        cfg.dataplane.frag_max_flows = 64;
        set_two_ports(cfg.dataplane, ext_, int_, true);
        start(cfg, make_snapshot({
                       {"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060", "203.0.113.12:5080"}},
                       {"six", {"[2001:db8:1::10]:5060"}, {"[2001:db8:2::11]:5060"}},
                   }));
    }
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
    const unsigned start = rte_mempool_avail_count(g_frame_pool);
    auto whole = build_frame({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = kVip,
                              .payload = big_invite("lost@pbx", 3000)})
                     .bytes;
    auto frags = fragment(whole, 1232, 0x777);
    auto before = dp_->stats();
    send(ext_, {frags[0], frags[2]});
    EXPECT_EQ(rte_mempool_avail_count(g_frame_pool), start - 2);  // held by the reassembly table
    EXPECT_TRUE(wait_until([&] { return dp_->stats().edge.frag_dropped >= before.edge.frag_dropped + 2; }));
    EXPECT_TRUE(wait_until([&] { return rte_mempool_avail_count(g_frame_pool) == start; }));
    EXPECT_TRUE(receive(int_, 0).empty());
    EXPECT_EQ(dp_->stats().edge.frag_reassembled, before.edge.frag_reassembled);
}

TEST_F(DataplaneFrag, OverlappingFragmentsAreDroppedAndCounted) {
    auto whole = build_frame({.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = kVip,
                              .payload = big_invite("overlap@pbx", 3000)})
                     .bytes;
    auto frags = fragment(whole, 1232, 0x999);
    auto wide = fragment(whole, 1480, 0x999);  // its second piece overlaps frags[0] and frags[1]
    const unsigned start = rte_mempool_avail_count(g_frame_pool);
    auto before = dp_->stats();
    send(ext_, {frags[0], wide[1], frags[2]});
    EXPECT_TRUE(receive(int_, 0).empty());
    EXPECT_TRUE(wait_until([&] { return rte_mempool_avail_count(g_frame_pool) == start; }));
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
