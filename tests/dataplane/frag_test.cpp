// IP fragments through a running dataplane over net_ring ports: fragments
// of large INVITEs to a VIP out of order, duplicated, overlapping or
// missing; the datagram balanced whole and fragmented again for the egress
// MTU with valid checksums; no mbuf held after a timeout. Whole datagrams
// above the egress MTU in one frame (jumbo ingress, net_af_packet's kernel
// defragmentation) are fragmented in both directions, or answered
// "fragmentation needed" when IPv4 DF is set.
#include <gtest/gtest.h>
#include <rte_ring.h>

#include "support/frame_builder.h"
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

const auto* const g_env = ::testing::AddGlobalTestEnvironment(
    new RingEalEnvironment("siplb_dp_frag", "frag_frames", RTE_PKTMBUF_HEADROOM + 4096));

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
                       {"dsr", {"198.51.100.13:5060"}, {"203.0.113.11:5060"}, config::ForwardMode::ipip},
                   }));
    }
};

std::string big_invite(const std::string& call_id, size_t size) {
    std::string head = "INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" +
                       call_id +
                       "\r\nFrom: <sip:alice@example.net>;tag=1\r\nTo: <sip:bob@example.net>\r\nCall-ID: " + call_id +
                       "\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: ";
    std::string body;
    while (body.size() + head.size() + 12 < size) body += "a=candidate:1 1 UDP 2130706431 192.0.2.10 5004 typ host\r\n";
    return head + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// An INVITE of exactly `size` bytes (its body padded to fit).
std::string invite_of_size(const std::string& call_id, size_t size) {
    const std::string head = "INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" +
                             call_id +
                             "\r\nFrom: <sip:alice@example.net>;tag=1\r\nTo: <sip:bob@example.net>\r\n"
                             "Call-ID: " +
                             call_id + "\r\nCSeq: 1 INVITE\r\nContent-Length: ";
    for (size_t body = 0; body < size; ++body) {
        std::string msg = head + std::to_string(body) + "\r\n\r\n";
        if (msg.size() + body == size) return msg + std::string(body, 'x');
    }
    return {};
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
            f.insert(f.end(),
                     {17, 0, static_cast<uint8_t>((off >> 8) & 0xFF),
                      static_cast<uint8_t>((off & 0xF8) | (more ? 1 : 0)), static_cast<uint8_t>(id >> 24),
                      static_cast<uint8_t>(id >> 16), static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id)});
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

// IPv4 without DF (what a kernel reassembles from fragments), so it may be cut again.
std::vector<uint8_t> without_df(std::vector<uint8_t> frame) {
    const size_t l3 = get16(frame, 12) == 0x8100 ? 18 : 14;
    put16(frame, l3 + 6, 0);
    put16(frame, l3 + 10, naive_ipv4_checksum(frame, l3));
    return frame;
}

// Identification of each IPv6 fragment (tagged frames, fragment header at 18 + 40).
uint32_t v6_fragment_id(const std::vector<uint8_t>& f) {
    return static_cast<uint32_t>(get16(f, 18 + 44)) << 16 | get16(f, 18 + 46);
}

// A whole INVITE frame from the client (TTL 60) to the VIP of its family.
std::vector<uint8_t> big_invite_frame(bool v6, const std::string& msg) {
    return build_frame({.src_mac = kGatewayMac,
                        .dst_mac = kExtMac,
                        .src = v6 ? kClient6 : kClient,
                        .dst = v6 ? kVip6 : kVip,
                        .ttl = 60,
                        .payload = msg})
        .bytes;
}

TEST_F(DataplaneFrag, OutOfOrderDuplicatedFragmentsAreBalancedWholeAndRefragmented) {
    for (bool v6 : {false, true}) {
        const std::string call_id = v6 ? "big-six@pbx" : "big-four@pbx";
        const std::string msg = big_invite(call_id, 3000);
        const Endpoint client = v6 ? kClient6 : kClient;
        auto whole = big_invite_frame(v6, msg);
        auto frags = fragment(whole, 1232, v6 ? 0x10203 : 0x4242);
        ASSERT_EQ(frags.size(), 3u);
        auto before = dp_->stats();
        send(ext_, {frags[2], frags[0], frags[0], frags[1]});
        auto out = receive(int_, 3);
        ASSERT_EQ(out.size(), 3u);
        const Endpoint backend = table_choice(v6 ? "six" : "lund", call_id);
        EXPECT_EQ(reassemble(out, 1500), expected_datagram(client, backend, 59, msg, 0x4242));
        if (v6) {  // not the zero DPDK's fragmenter writes
            EXPECT_NE(v6_fragment_id(out[0]), 0u);
            for (const auto& f : out) EXPECT_EQ(v6_fragment_id(f), v6_fragment_id(out[0]));
        }
        for (const auto& f : out) {
            MacAddress bmac = v6 ? kBackend6Mac
                                 : (backend.ip == *IpAddress::parse("203.0.113.11") ? kBackend11Mac : kBackend12Mac);
            EXPECT_TRUE(std::equal(bmac.bytes.begin(), bmac.bytes.end(), f.begin()));
            EXPECT_EQ(get16(f, 14), kIntVlan);
        }
        auto after = dp_->stats();
        EXPECT_EQ(after.total("fragments", "reassembled"), before.total("fragments", "reassembled") + 1);
        EXPECT_EQ(after.total("fragments", "received"), before.total("fragments", "received") + 3);
        EXPECT_EQ(after.total("fragments", "duplicates"), before.total("fragments", "duplicates") + 1);
        EXPECT_EQ(after.total("fragments", "sent"), before.total("fragments", "sent") + 3);
        EXPECT_EQ(after.total("traffic", "to_backend"), before.total("traffic", "to_backend") + 1);
    }
}

TEST_F(DataplaneFrag, WholeDatagramAboveTheEgressMtuIsFragmented) {
    uint32_t previous_v6_id = 0;
    for (int round = 0; round < 3; ++round) {
        const bool v6 = round > 0;  // two IPv6 datagrams: their identifications must differ
        const std::string call_id = "whole-" + std::to_string(round) + "@pbx";
        const std::string msg = big_invite(call_id, 3000);
        const Endpoint client = v6 ? kClient6 : kClient;
        auto whole = big_invite_frame(v6, msg);
        if (!v6) whole = without_df(whole);
        ASSERT_GT(whole.size(), 3000u);
        auto before = dp_->stats();
        send(ext_, whole);
        auto out = receive(int_, 3);
        ASSERT_EQ(out.size(), 3u) << (v6 ? "IPv6" : "IPv4");
        const Endpoint backend = table_choice(v6 ? "six" : "lund", call_id);
        // IPv4 pieces keep the datagram's identification, as a router's do.
        EXPECT_EQ(reassemble(out, 1500), expected_datagram(client, backend, 59, msg, v6 ? 0 : get16(whole, 14 + 4)));
        if (v6) {
            const uint32_t id = v6_fragment_id(out[0]);
            EXPECT_NE(id, 0u);
            for (const auto& f : out) EXPECT_EQ(v6_fragment_id(f), id);
            EXPECT_NE(id, previous_v6_id);
            previous_v6_id = id;
        }
        auto after = dp_->stats();
        EXPECT_EQ(after.total("fragments", "oversize"), before.total("fragments", "oversize") + 1);
        EXPECT_EQ(after.total("fragments", "sent"), before.total("fragments", "sent") + 3);
        EXPECT_EQ(after.total("traffic", "to_backend"), before.total("traffic", "to_backend") + 1);
        EXPECT_EQ(after.total("fragments", "received"),
                  before.total("fragments", "received"));  // no reassembly involved
    }
}

TEST_F(DataplaneFrag, WholeReplyAboveTheEgressMtuIsFragmentedFromTheVip) {
    // A backend's large answer (e.g. a 200 OK with a long SDP) toward the client.
    const Endpoint backend = *Endpoint::parse("203.0.113.11:5060");
    const std::string msg = "SIP/2.0 200 OK\r\nCall-ID: reply-big@pbx\r\n" + big_invite("reply-big@pbx", 2800);
    auto whole = without_df(build_frame({.src_mac = kBackend11Mac,
                                         .dst_mac = kIntMac,
                                         .vlan = kIntVlan,
                                         .src = backend,
                                         .dst = kClient,
                                         .ttl = 64,
                                         .payload = msg})
                                .bytes);
    const size_t pieces = (whole.size() - 18 - 20 + 1479) / 1480;  // 1480 data bytes each at MTU 1500
    ASSERT_GE(pieces, 2u);
    auto before = dp_->stats();
    send(int_, whole);
    auto out = receive(ext_, pieces);
    ASSERT_EQ(out.size(), pieces);
    // Untagged on ext: reassemble() reads L3 at 18, so put a tag-sized gap back in.
    std::vector<std::vector<uint8_t>> shifted;
    for (auto f : out) {
        EXPECT_TRUE(std::equal(kGatewayMac.bytes.begin(), kGatewayMac.bytes.end(), f.begin()));
        EXPECT_EQ(get16(f, 12), 0x0800);
        f.insert(f.begin() + 12, {0x81, 0x00, 0x00, 0x00});
        shifted.push_back(std::move(f));
    }
    auto expect = build_frame({.src = kVip, .dst = kClient, .ttl = 63, .payload = msg}).bytes;
    std::vector<uint8_t> datagram(expect.begin() + 14, expect.end());
    put16(datagram, 4, get16(whole, 18 + 4));
    put16(datagram, 6, 0);
    put16(datagram, 10, naive_ipv4_checksum(datagram, 0));
    EXPECT_EQ(reassemble(shifted, 1500), datagram);
    auto after = dp_->stats();
    EXPECT_EQ(after.total("traffic", "to_client"), before.total("traffic", "to_client") + 1);
    EXPECT_EQ(after.total("fragments", "oversize"), before.total("fragments", "oversize") + 1);
}

TEST_F(DataplaneFrag, DontFragmentDatagramAboveTheMtuIsAnsweredFragmentationNeeded) {
    const std::string msg = big_invite("df-big@pbx", 3000);
    auto whole =
        build_frame(
            {.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = kVip, .ttl = 60, .payload = msg})
            .bytes;
    ASSERT_EQ(get16(whole, 14 + 6) & 0x4000, 0x4000);  // the builder sets DF
    auto before = dp_->stats();
    send(ext_, whole);
    auto back = receive(ext_, 1);
    ASSERT_EQ(back.size(), 1u);
    EXPECT_TRUE(receive(int_, 0).empty());
    const auto& f = back[0];
    ASSERT_GE(f.size(), 14u + 20 + 8 + 28);
    EXPECT_TRUE(std::equal(kGatewayMac.bytes.begin(), kGatewayMac.bytes.end(), f.begin()));  // back where it came from
    EXPECT_EQ(get16(f, 12), 0x0800);
    EXPECT_EQ(f[14 + 9], 1);  // ICMP
    EXPECT_EQ(get16(f, 14 + 10), naive_ipv4_checksum(f, 14));
    const std::vector<uint8_t> port_address{198, 51, 100, 1}, client_address{192, 0, 2, 10};
    EXPECT_TRUE(std::equal(port_address.begin(), port_address.end(), f.begin() + 14 + 12));
    EXPECT_TRUE(std::equal(client_address.begin(), client_address.end(), f.begin() + 14 + 16));
    const size_t icmp = 14 + 20;
    EXPECT_EQ(f[icmp], 3);      // destination unreachable
    EXPECT_EQ(f[icmp + 1], 4);  // fragmentation needed and DF set
    EXPECT_EQ(get16(f, icmp + 4), 0);
    EXPECT_EQ(get16(f, icmp + 6), 1500);  // next-hop MTU (RFC 1191)
    EXPECT_EQ(get16(f, icmp + 2), naive_icmp_checksum(f, 14, icmp, f.size(), false));
    // The quote starts with the offending datagram's own IP header, unchanged (TTL 60, DF).
    EXPECT_TRUE(std::equal(whole.begin() + 14, whole.begin() + 14 + 28, f.begin() + icmp + 8));
    auto after = dp_->stats();
    EXPECT_EQ(drops(after, "mtu_exceeded"), drops(before, "mtu_exceeded") + 1);
    EXPECT_EQ(after.total("icmp", "errors_sent"), before.total("icmp", "errors_sent") + 1);
    EXPECT_EQ(after.total("traffic", "to_backend"), before.total("traffic", "to_backend"));
}

TEST_F(DataplaneFrag, TunnelAboveTheMtuIsFragmentedOrAnsweredForDontFragment) {
    // 1490 bytes fit the client's link; the 20-byte ipip header does not fit int's MTU.
    const Endpoint dsr_vip = *Endpoint::parse("198.51.100.13:5060");
    const std::string msg = invite_of_size("tunnel-big@pbx", 1490 - 28);
    auto inner =
        build_frame(
            {.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = kClient, .dst = dsr_vip, .ttl = 60, .payload = msg})
            .bytes;
    ASSERT_EQ(inner.size(), 14u + 1490);

    // DF: "fragmentation needed" with the MTU left inside the tunnel.
    auto before = dp_->stats();
    send(ext_, inner);
    auto back = receive(ext_, 1);
    ASSERT_EQ(back.size(), 1u);
    EXPECT_TRUE(receive(int_, 0).empty());
    EXPECT_EQ(back[0][14 + 20], 3);
    EXPECT_EQ(back[0][14 + 21], 4);
    EXPECT_EQ(get16(back[0], 14 + 26), 1480);
    EXPECT_EQ(drops(dp_->stats(), "mtu_exceeded"), drops(before, "mtu_exceeded") + 1);

    // Without DF: the tunnel packet leaves in two pieces under one fresh outer identification.
    inner = without_df(inner);
    std::vector<std::vector<uint8_t>> pieces;
    for (int i = 0; i < 2; ++i) {
        send(ext_, inner);
        auto out = receive(int_, 2);
        ASSERT_EQ(out.size(), 2u);
        EXPECT_NE(get16(out[0], 18 + 4), 0);
        EXPECT_EQ(get16(out[0], 18 + 4), get16(out[1], 18 + 4));
        if (i == 1) {
            EXPECT_NE(get16(out[0], 18 + 4), get16(pieces[0], 18 + 4));
        }
        pieces = out;
    }
    auto outer = reassemble(pieces, 1500);
    ASSERT_EQ(outer.size(), 20u + 1490);
    EXPECT_EQ(outer[9], 4);  // IP in IP
    const std::vector<uint8_t> tunnel_src{203, 0, 113, 1}, tunnel_dst{203, 0, 113, 11};
    EXPECT_TRUE(std::equal(tunnel_src.begin(), tunnel_src.end(), outer.begin() + 12));
    EXPECT_TRUE(std::equal(tunnel_dst.begin(), tunnel_dst.end(), outer.begin() + 16));
    // Inside: the client's datagram as sent, TTL 60 -> 59 and its header checksum updated.
    std::vector<uint8_t> want(inner.begin() + 14, inner.end());
    want[8] = 59;
    put16(want, 10, naive_ipv4_checksum(want, 0));
    EXPECT_EQ(std::vector<uint8_t>(outer.begin() + 20, outer.end()), want);
}

TEST_F(DataplaneFrag, MissingFragmentTimesOutWithoutLeaking) {
    std::this_thread::sleep_for(milliseconds(400));  // earlier tests' flows expired
    const unsigned start = rte_mempool_avail_count(g_frame_pool);
    auto whole = build_frame({.src_mac = kGatewayMac,
                              .dst_mac = kExtMac,
                              .src = kClient,
                              .dst = kVip,
                              .payload = big_invite("lost@pbx", 3000)})
                     .bytes;
    auto frags = fragment(whole, 1232, 0x777);
    auto before = dp_->stats();
    send(ext_, {frags[0], frags[2]});
    EXPECT_EQ(rte_mempool_avail_count(g_frame_pool), start - 2);  // held by the reassembly table
    EXPECT_TRUE(wait_until(
        [&] { return dp_->stats().total("fragments", "dropped") >= before.total("fragments", "dropped") + 2; }));
    EXPECT_TRUE(wait_until([&] { return rte_mempool_avail_count(g_frame_pool) == start; }));
    EXPECT_TRUE(receive(int_, 0).empty());
    EXPECT_EQ(dp_->stats().total("fragments", "reassembled"), before.total("fragments", "reassembled"));
}

TEST_F(DataplaneFrag, OverlappingFragmentsAreDroppedAndCounted) {
    auto whole = build_frame({.src_mac = kGatewayMac,
                              .dst_mac = kExtMac,
                              .src = kClient,
                              .dst = kVip,
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
    EXPECT_EQ(after.total("fragments", "reassembled"), before.total("fragments", "reassembled"));
    EXPECT_EQ(after.total("fragments", "dropped"), before.total("fragments", "dropped") + 3);
}

TEST_F(DataplaneFrag, FragmentsNotForAVipAreCounted) {
    auto whole = build_frame({.src_mac = kGatewayMac,
                              .dst_mac = kExtMac,
                              .src = kClient,
                              .dst = *Endpoint::parse("198.51.100.1:53"),
                              .payload = big_invite("dns", 3000)})
                     .bytes;
    auto frags = fragment(whole, 1232, 0x555);
    auto before = dp_->stats();
    send(ext_, frags);
    EXPECT_TRUE(receive(int_, 0).empty());
    auto after = dp_->stats();
    EXPECT_EQ(after.total("fragments", "not_for_vip"), before.total("fragments", "not_for_vip") + frags.size());
    EXPECT_EQ(after.total("fragments", "received"), before.total("fragments", "received"));
}

}  // namespace
