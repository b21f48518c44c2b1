// ICMP through a running dataplane over net_ring ports: echo replies, time
// exceeded and port unreachable (rate-limited), and customer errors about
// VIP datagrams passed to the backend; output compared byte for byte or
// checked with the naive checksums of frame_builder.h.
#include <gtest/gtest.h>

#include <chrono>
#include <rte_ring.h>

#include "support/frame_builder.h"
#include "dataplane_test_util.h"
#include "ring_fixture.h"
#include "siplb/balance/hash.h"
#include "siplb/dataplane/dataplane.h"
#include "siplb/net/icmp.h"
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

const auto* const g_env = ::testing::AddGlobalTestEnvironment(new RingEalEnvironment("siplb_dp_icmp", "icmp_frames"));

// Ethernet (+tag) / IP / ICMP echo with id 0x1234, seq 1.
std::vector<uint8_t> echo_frame(const MacAddress& src_mac, const MacAddress& dst_mac, const IpAddress& src,
                                const IpAddress& dst, bool reply, uint8_t ttl, const std::vector<uint8_t>& body) {
    std::vector<uint8_t> b(dst_mac.bytes.begin(), dst_mac.bytes.end());
    b.insert(b.end(), src_mac.bytes.begin(), src_mac.bytes.end());
    const bool v6 = src.is_v6();
    b.push_back(v6 ? 0x86 : 0x08);
    b.push_back(v6 ? 0xDD : 0x00);
    const size_t l3 = b.size();
    std::vector<uint8_t> msg =
        {static_cast<uint8_t>(v6 ? (reply ? 129 : 128) : (reply ? 0 : 8)), 0, 0, 0, 0x12, 0x34, 0, 1};
    msg.insert(msg.end(), body.begin(), body.end());
    if (!v6) {
        b.resize(l3 + 20);
        b[l3] = 0x45;
        b[l3 + 1] = reply ? 0xC0 : 0;
        put16(b, l3 + 2, static_cast<uint16_t>(20 + msg.size()));
        b[l3 + 8] = ttl;
        b[l3 + 9] = 1;
        std::copy(src.bytes.begin(), src.bytes.begin() + 4, b.begin() + l3 + 12);
        std::copy(dst.bytes.begin(), dst.bytes.begin() + 4, b.begin() + l3 + 16);
        put16(b, l3 + 10, naive_ipv4_checksum(b, l3));
    } else {
        b.resize(l3 + 40);
        b[l3] = 0x60;
        put16(b, l3 + 4, static_cast<uint16_t>(msg.size()));
        b[l3 + 6] = 58;
        b[l3 + 7] = ttl;
        std::copy(src.bytes.begin(), src.bytes.end(), b.begin() + l3 + 8);
        std::copy(dst.bytes.begin(), dst.bytes.end(), b.begin() + l3 + 24);
    }
    const size_t l4 = b.size();
    b.insert(b.end(), msg.begin(), msg.end());
    put16(b, l4 + 2, naive_icmp_checksum(b, l3, l4, b.size(), v6));
    return b;
}

std::string bye(const std::string& call_id) {
    return "BYE sip:alice@192.0.2.10:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.10;branch=z9hG4bK" + call_id +
           "\r\nFrom: <sip:bob@example.net>;tag=2\r\nTo: <sip:alice@example.net>;tag=1\r\nCall-ID: " + call_id +
           "\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
}

constexpr uint32_t kErrorRate = 20, kErrorBurst = 30;

class DataplaneIcmp : public RingDataplaneTest<DataplaneIcmp> {
protected:
    static void SetUpTestSuite() {
        open_ports("icmp");
        if (HasFatalFailure()) return;
        config::Config cfg;
        set_test_sizes(cfg.dataplane, "siplb_dp_icmp");
        set_two_ports(cfg.dataplane, ext_, int_, true);
        cfg.dataplane.icmp_error_rate = kErrorRate;  // not the defaults (100/s, burst 50)
        cfg.dataplane.icmp_error_burst = kErrorBurst;
        start(cfg, make_snapshot({
                       {"lund", {"198.51.100.10:5060"}, {"203.0.113.11:5060", "203.0.113.12:5080"}},
                       {"six", {"[2001:db8:1::10]:5060"}, {"[2001:db8:2::11]:5060"}},
                   }));
    }
};

TEST_F(DataplaneIcmp, EchoRequestsToVipsAndPortAddressesAreAnswered) {
    std::vector<uint8_t> body(56, 0x61);
    const IpAddress port4 = *IpAddress::parse("198.51.100.1");
    const IpAddress port6 = *IpAddress::parse("2001:db8:1::1");
    auto before = dp_->stats();
    send(ext_, {echo_frame(kGatewayMac, kExtMac, kClient.ip, kVip.ip, false, 50, body),
                echo_frame(kGatewayMac, kExtMac, kClient.ip, port4, false, 50, body),
                echo_frame(kGatewayMac, kExtMac, kClient6.ip, kVip6.ip, false, 50, body),
                echo_frame(kGatewayMac, kExtMac, kClient6.ip, port6, false, 50, body),
                echo_frame(kGatewayMac, kExtMac, kClient.ip, *IpAddress::parse("198.51.100.99"), false, 50, body)});
    auto out = receive(ext_, 4);
    ASSERT_EQ(out.size(), 4u);
    EXPECT_EQ(out[0], echo_frame(kExtMac, kGatewayMac, kVip.ip, kClient.ip, true, 64, body));
    EXPECT_EQ(out[1], echo_frame(kExtMac, kGatewayMac, port4, kClient.ip, true, 64, body));
    EXPECT_EQ(out[2], echo_frame(kExtMac, kGatewayMac, kVip6.ip, kClient6.ip, true, 64, body));
    EXPECT_EQ(out[3], echo_frame(kExtMac, kGatewayMac, port6, kClient6.ip, true, 64, body));
    auto after = dp_->stats();
    EXPECT_EQ(after.total("icmp", "echo_replies"), before.total("icmp", "echo_replies") + 4);
    EXPECT_EQ(after.total("drops", "not_for_us"),
              before.total("drops", "not_for_us") + 1);  // echo to an address that is not ours
}

TEST_F(DataplaneIcmp, TtlOneAndUnknownPortEarnErrorsWithValidChecksums) {
    for (bool v6 : {false, true}) {
        const Endpoint client = v6 ? kClient6 : kClient;
        const Endpoint vip = v6 ? kVip6 : kVip;
        Endpoint closed = vip;
        closed.port = 5999;
        auto ttl1 = build_frame(
            {.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = client, .dst = vip, .ttl = 1, .payload = bye("ttl1")});
        auto unknown = build_frame(
            {.src_mac = kGatewayMac, .dst_mac = kExtMac, .src = client, .dst = closed, .payload = bye("closed")});
        send(ext_, {ttl1.bytes, unknown.bytes});
        auto out = receive(ext_, 2);
        ASSERT_EQ(out.size(), 2u);
        const size_t l3 = 14, hdr = v6 ? 40 : 20, l4 = l3 + hdr;
        for (size_t i = 0; i < 2; ++i) {
            const auto& f = out[i];
            const auto& original = i == 0 ? ttl1.bytes : unknown.bytes;
            EXPECT_TRUE(std::equal(kGatewayMac.bytes.begin(), kGatewayMac.bytes.end(), f.begin()));
            EXPECT_TRUE(std::equal(kExtMac.bytes.begin(), kExtMac.bytes.end(), f.begin() + 6));
            ASSERT_EQ(f.size(), l4 + 8 + (original.size() - 14));  // whole datagram quoted (< 576)
            EXPECT_EQ(f[l4], v6 ? (i == 0 ? 3 : 1) : (i == 0 ? 11 : 3));
            EXPECT_EQ(f[l4 + 1], i == 0 ? 0 : (v6 ? 4 : 3));
            EXPECT_EQ(get16(f, l4 + 2), naive_icmp_checksum(f, l3, l4, f.size(), v6));
            if (!v6) {
                EXPECT_EQ(get16(f, l3 + 10), naive_ipv4_checksum(f, l3));
            }
            // From the port address (time exceeded) or the VIP (port unreachable), to the client.
            IpAddress from = i == 0 ? *IpAddress::parse(v6 ? "2001:db8:1::1" : "198.51.100.1") : vip.ip;
            const size_t alen = v6 ? 16 : 4, src_off = l3 + (v6 ? 8 : 12), dst_off = l3 + (v6 ? 24 : 16);
            EXPECT_TRUE(std::equal(from.bytes.begin(), from.bytes.begin() + alen, f.begin() + src_off));
            EXPECT_TRUE(std::equal(client.ip.bytes.begin(), client.ip.bytes.begin() + alen, f.begin() + dst_off));
            EXPECT_TRUE(std::equal(original.begin() + 14, original.end(), f.begin() + l4 + 8));
        }
    }
}

TEST_F(DataplaneIcmp, ErrorsAreRateLimitedAndCounted) {
    auto before = dp_->stats();
    std::vector<std::vector<uint8_t>> frames;
    for (int i = 0; i < 200; ++i)
        frames.push_back(build_frame({.src_mac = kGatewayMac,
                                      .dst_mac = kExtMac,
                                      .src = kClient,
                                      .dst = kVip,
                                      .ttl = 1,
                                      .payload = bye("flood")})
                             .bytes);
    const auto start = std::chrono::steady_clock::now();
    send(ext_, frames);
    auto after = dp_->stats();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    uint64_t sent = after.total("icmp", "errors_sent") - before.total("icmp", "errors_sent");
    uint64_t limited = after.total("icmp", "errors_rate_limited") - before.total("icmp", "errors_rate_limited");
    EXPECT_EQ(sent + limited, 200u);
    // dataplane.icmp_error_burst, then icmp_error_rate per second (one more second of slack).
    EXPECT_LE(static_cast<double>(sent), kErrorBurst + kErrorRate * (seconds + 1.0));
    EXPECT_GE(sent, 1u);
    EXPECT_GE(limited, 100u);
    auto out = receive(ext_, sent);
    EXPECT_EQ(out.size(), sent);
}

TEST_F(DataplaneIcmp, CustomerPortUnreachableReachesTheBackendThatSentTheDatagram) {
    for (const std::string call_id : {"gone-1@pbx", "gone-2@pbx", "gone-3@pbx", "gone-4@pbx"}) {
        const Endpoint backend = table_choice("lund", call_id);
        // What the backend sent (after SNAT: VIP -> client), and the client's
        // port unreachable about it.
        auto seen = build_frame({.src = kVip, .dst = kClient, .ttl = 60, .payload = bye(call_id)});
        net::PacketView sv;
        ASSERT_EQ(net::parse_frame(seen.bytes.data(), seen.bytes.size(), sv), net::ParseStatus::udp);
        auto err = seen.bytes;
        err.resize(2014);
        size_t ip_len = net::write_icmp_error(err.data(), sv, net::kIcmpDestUnreachable, net::kIcmpCodePortUnreachable,
                                              kClient.ip, 2000);
        ASSERT_GT(ip_len, 0u);
        err.resize(14 + ip_len);
        std::copy(kExtMac.bytes.begin(), kExtMac.bytes.end(), err.begin());
        std::copy(kGatewayMac.bytes.begin(), kGatewayMac.bytes.end(), err.begin() + 6);
        auto before = dp_->stats();
        send(ext_, err);
        auto out = receive(int_, 1);
        ASSERT_EQ(out.size(), 1u);
        const auto& f = out[0];
        // Tagged, to the backend's MAC, outer destination the backend, TTL 63.
        ASSERT_EQ(f.size(), err.size() + 4);
        const size_t l3 = 18, l4 = l3 + 20, inner = l4 + 8;
        EXPECT_EQ(get16(f, 12), 0x8100);
        EXPECT_EQ(get16(f, 14), kIntVlan);
        MacAddress bmac = backend.ip == *IpAddress::parse("203.0.113.11") ? kBackend11Mac : kBackend12Mac;
        EXPECT_TRUE(std::equal(bmac.bytes.begin(), bmac.bytes.end(), f.begin()));
        EXPECT_EQ(f[l3 + 8], 63);
        EXPECT_TRUE(std::equal(backend.ip.bytes.begin(), backend.ip.bytes.begin() + 4, f.begin() + l3 + 16));
        EXPECT_EQ(get16(f, l3 + 10), naive_ipv4_checksum(f, l3));
        EXPECT_EQ(get16(f, l4 + 2), naive_icmp_checksum(f, l3, l4, f.size(), false));
        // The quote names the backend as the sender, with consistent checksums.
        EXPECT_TRUE(std::equal(backend.ip.bytes.begin(), backend.ip.bytes.begin() + 4, f.begin() + inner + 12));
        EXPECT_EQ(get16(f, inner + 20), backend.port);
        EXPECT_EQ(get16(f, inner + 10), naive_ipv4_checksum(f, inner));
        std::vector<uint8_t> inner_frame(14, 0);
        inner_frame.insert(inner_frame.end(), f.begin() + inner, f.end());
        EXPECT_EQ(get16(inner_frame, 14 + 20 + 6), naive_udp_checksum(inner_frame, 14, 34, false));
        auto after = dp_->stats();
        EXPECT_EQ(after.total("icmp", "errors_to_backend"), before.total("icmp", "errors_to_backend") + 1);
    }
}

TEST_F(DataplaneIcmp, ErrorWithoutCallIdInTheQuoteIsCounted) {
    auto seen = build_frame({.src = kVip, .dst = kClient, .payload = "\r\n\r\n"});
    net::PacketView sv;
    ASSERT_EQ(net::parse_frame(seen.bytes.data(), seen.bytes.size(), sv), net::ParseStatus::udp);
    auto err = seen.bytes;
    err.resize(2014);
    size_t ip_len = net::write_icmp_error(err.data(), sv, net::kIcmpDestUnreachable, net::kIcmpCodePortUnreachable,
                                          kClient.ip, 2000);
    err.resize(14 + ip_len);
    auto before = dp_->stats();
    send(ext_, err);
    EXPECT_TRUE(receive(int_, 0).empty());
    EXPECT_TRUE(receive(ext_, 0).empty());
    auto after = dp_->stats();
    EXPECT_EQ(after.total("icmp", "errors_unmatched"), before.total("icmp", "errors_unmatched") + 1);
    EXPECT_EQ(after.total("drops", "not_for_us"), before.total("drops", "not_for_us") + 1);
}

}  // namespace
