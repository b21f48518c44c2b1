// ICMP builder/parser over byte buffers; every checksum is checked against
// the naive computation of frame_builder.h.
#include "siplb/net/icmp.h"

#include <gtest/gtest.h>

#include "support/frame_builder.h"
#include "siplb/net/checksum.h"

using namespace siplb;
using namespace siplb::net;
using namespace siplb::test;

namespace {

// Ethernet + IP + ICMP (type, code, id/seq 0x1234/0x0001, data); IPv6 with
// the pseudo-header checksum.
std::vector<uint8_t> icmp_frame(const IpAddress& src, const IpAddress& dst, uint8_t type, uint8_t code,
                                const std::vector<uint8_t>& body, bool ipv4_options = false) {
    std::vector<uint8_t> b(12, 0x02);
    const bool v6 = src.is_v6();
    b.push_back(v6 ? 0x86 : 0x08);
    b.push_back(v6 ? 0xDD : 0x00);
    const size_t l3 = b.size();
    std::vector<uint8_t> msg = {type, code, 0, 0, 0x12, 0x34, 0x00, 0x01};
    msg.insert(msg.end(), body.begin(), body.end());
    if (!v6) {
        size_t ihl = ipv4_options ? 24 : 20;
        b.resize(l3 + ihl);
        b[l3] = static_cast<uint8_t>(0x40 | ihl / 4);
        put16(b, l3 + 2, static_cast<uint16_t>(ihl + msg.size()));
        b[l3 + 8] = 50;
        b[l3 + 9] = 1;
        std::copy(src.bytes.begin(), src.bytes.begin() + 4, b.begin() + l3 + 12);
        std::copy(dst.bytes.begin(), dst.bytes.begin() + 4, b.begin() + l3 + 16);
        if (ipv4_options) b[l3 + 20] = 1;  // NOPs
        if (ipv4_options) b[l3 + 21] = 1, b[l3 + 22] = 1, b[l3 + 23] = 0;
        put16(b, l3 + 10, naive_ipv4_checksum(b, l3));
    } else {
        b.resize(l3 + 40);
        b[l3] = 0x60;
        put16(b, l3 + 4, static_cast<uint16_t>(msg.size()));
        b[l3 + 6] = 58;
        b[l3 + 7] = 50;
        std::copy(src.bytes.begin(), src.bytes.end(), b.begin() + l3 + 8);
        std::copy(dst.bytes.begin(), dst.bytes.end(), b.begin() + l3 + 24);
    }
    const size_t l4 = b.size();
    b.insert(b.end(), msg.begin(), msg.end());
    put16(b, l4 + 2, naive_icmp_checksum(b, l3, l4, b.size(), v6));
    return b;
}

const IpAddress kClient4 = *IpAddress::parse("192.0.2.10");
const IpAddress kVip4 = *IpAddress::parse("198.51.100.10");
const IpAddress kClient6 = *IpAddress::parse("2001:db8:9::10");
const IpAddress kVip6 = *IpAddress::parse("2001:db8:1::10");

}  // namespace

TEST(Icmp, Ipv4EchoRequestBecomesReply) {
    std::vector<uint8_t> body(40, 0xab);
    auto f = icmp_frame(kClient4, kVip4, kIcmpEchoRequest, 0, body, true);
    PacketView v;
    ASSERT_EQ(parse_frame(f.data(), f.size(), v), ParseStatus::not_udp);
    auto m = parse_icmp(f.data(), v);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->type, kIcmpEchoRequest);
    EXPECT_FALSE(m->is_error);
    size_t ip_len = write_echo_reply(f.data(), v, *m);
    EXPECT_EQ(ip_len, 20u + 8 + 40);
    f.resize(14 + ip_len);
    auto expect = icmp_frame(kVip4, kClient4, kIcmpEchoReply, 0, body);
    expect[14 + 1] = 0xC0;
    expect[14 + 8] = 64;
    put16(expect, 14 + 10, naive_ipv4_checksum(expect, 14));
    EXPECT_EQ(f, expect);
}

TEST(Icmp, Ipv6EchoRequestBecomesReply) {
    std::vector<uint8_t> body(13, 0x5a);  // odd length
    auto f = icmp_frame(kClient6, kVip6, kIcmpv6EchoRequest, 0, body);
    PacketView v;
    ASSERT_EQ(parse_frame(f.data(), f.size(), v), ParseStatus::not_udp);
    auto m = parse_icmp(f.data(), v);
    ASSERT_TRUE(m);
    size_t ip_len = write_echo_reply(f.data(), v, *m);
    f.resize(14 + ip_len);
    auto expect = icmp_frame(kVip6, kClient6, kIcmpv6EchoReply, 0, body);
    expect[14 + 7] = 64;
    EXPECT_EQ(f, expect);
}

TEST(Icmp, DamagedMessagesAreRejected) {
    auto f = icmp_frame(kClient4, kVip4, kIcmpEchoRequest, 0, std::vector<uint8_t>(8, 1));
    f.back() ^= 1;
    PacketView v;
    ASSERT_EQ(parse_frame(f.data(), f.size(), v), ParseStatus::not_udp);
    EXPECT_FALSE(parse_icmp(f.data(), v));
    auto g = icmp_frame(kClient6, kVip6, kIcmpv6EchoRequest, 0, std::vector<uint8_t>(8, 1));
    g[14 + 8] ^= 1;  // source address: the pseudo-header no longer matches
    ASSERT_EQ(parse_frame(g.data(), g.size(), v), ParseStatus::not_udp);
    EXPECT_FALSE(parse_icmp(g.data(), v));
    auto h = icmp_frame(kClient4, kVip4, kIcmpEchoRequest, 0, {});
    h.resize(h.size() - 4);
    put16(h, 14 + 2, 24);
    put16(h, 14 + 10, naive_ipv4_checksum(h, 14));
    ASSERT_EQ(parse_frame(h.data(), h.size(), v), ParseStatus::not_udp);
    EXPECT_FALSE(parse_icmp(h.data(), v));  // 4 bytes: shorter than an ICMP header
}

TEST(Icmp, ErrorQuotesTheDatagramWithinTheMinimumMtu) {
    for (bool v6 : {false, true}) {
        std::string payload(2000, 'x');
        auto in = build_frame({.src = v6 ? ep("[2001:db8:9::10]:5062") : ep("192.0.2.10:5062"),
                               .dst = v6 ? ep("[2001:db8:1::10]:5070") : ep("198.51.100.10:5070"),
                               .payload = payload});
        auto original = in.bytes;
        PacketView v;
        ASSERT_EQ(parse_frame(in.bytes.data(), in.bytes.size(), v), ParseStatus::udp);
        const IpAddress& src = v6 ? kVip6 : kVip4;
        size_t ip_len = write_icmp_error(in.bytes.data(), v, v6 ? kIcmpv6DestUnreachable : kIcmpDestUnreachable,
                                         v6 ? kIcmpv6CodePortUnreachable : kIcmpCodePortUnreachable, src,
                                         in.bytes.size() - 14);
        ASSERT_EQ(ip_len, v6 ? kIcmpv6ErrorMax : kIcmpv4ErrorMax);
        in.bytes.resize(14 + ip_len);
        PacketView e;
        ASSERT_EQ(parse_frame(in.bytes.data(), in.bytes.size(), e), ParseStatus::not_udp);
        auto m = parse_icmp(in.bytes.data(), e);
        ASSERT_TRUE(m);
        EXPECT_TRUE(m->is_error);
        EXPECT_EQ(m->code, v6 ? kIcmpv6CodePortUnreachable : kIcmpCodePortUnreachable);
        EXPECT_EQ(get16(in.bytes, m->offset + 2), naive_icmp_checksum(in.bytes, 14, m->offset, 14 + ip_len, v6));
        if (!v6) {
            EXPECT_EQ(get16(in.bytes, 14 + 10), naive_ipv4_checksum(in.bytes, 14));
        }
        // Source / destination, then the quote: the original from its IP header on.
        EXPECT_TRUE(
            std::equal(src.bytes.begin(), src.bytes.begin() + (v6 ? 16 : 4), in.bytes.begin() + e.src_addr_offset()));
        EXPECT_TRUE(std::equal(original.begin() + v.src_addr_offset(),
                               original.begin() + v.src_addr_offset() + (v6 ? 16 : 4),
                               in.bytes.begin() + e.dst_addr_offset()));
        size_t quote = ip_len - (v6 ? 48 : 28);
        EXPECT_TRUE(std::equal(original.begin() + 14, original.begin() + 14 + quote, in.bytes.begin() + m->offset + 8));
        auto q = parse_quoted_udp(in.bytes.data(), e, *m);
        ASSERT_TRUE(q);
        EXPECT_EQ(q->dst.port, 5070);
        EXPECT_EQ(q->src.port, 5062);
    }
}

TEST(Icmp, ErrorNeedsRoomForHeadersAndEightBytes) {
    auto in = build_frame({.src = ep("192.0.2.10:5062"), .dst = ep("198.51.100.10:5070"), .payload = "x"});
    PacketView v;
    ASSERT_EQ(parse_frame(in.bytes.data(), in.bytes.size(), v), ParseStatus::udp);
    EXPECT_EQ(write_icmp_error(in.bytes.data(), v, kIcmpTimeExceeded, 0, kVip4, 28 + 20 + 7), 0u);
    EXPECT_EQ(write_icmp_error(in.bytes.data(), v, kIcmpTimeExceeded, 0, kVip6, 100), 0u);  // wrong family
    in.bytes.resize(14 + 28 + 29);
    EXPECT_EQ(write_icmp_error(in.bytes.data(), v, kIcmpTimeExceeded, 0, kVip4, 28 + 29), 28u + 29);
}

TEST(Icmp, CustomerErrorIsRedirectedToTheBackend) {
    for (bool v6 : {false, true}) {
        // The datagram the customer got: VIP:5060 -> client, then its port
        // unreachable about it, client -> VIP.
        std::string sip = "BYE sip:a@b SIP/2.0\r\nCall-ID: abc\r\n\r\n";
        auto sent = build_frame({.src = v6 ? ep("[2001:db8:1::10]:5060") : ep("198.51.100.10:5060"),
                                 .dst = v6 ? ep("[2001:db8:9::10]:5062") : ep("192.0.2.10:5062"),
                                 .payload = sip});
        PacketView sv;
        ASSERT_EQ(parse_frame(sent.bytes.data(), sent.bytes.size(), sv), ParseStatus::udp);
        const IpAddress& client = v6 ? kClient6 : kClient4;
        sent.bytes.resize(14 + 2000);
        size_t ip_len = write_icmp_error(sent.bytes.data(), sv, v6 ? kIcmpv6DestUnreachable : kIcmpDestUnreachable,
                                         v6 ? kIcmpv6CodePortUnreachable : kIcmpCodePortUnreachable, client, 2000);
        ASSERT_GT(ip_len, 0u);
        auto f = sent.bytes;
        f.resize(14 + ip_len);
        PacketView v;
        ASSERT_EQ(parse_frame(f.data(), f.size(), v), ParseStatus::not_udp);
        auto m = parse_icmp(f.data(), v);
        ASSERT_TRUE(m);
        auto q = parse_quoted_udp(f.data(), v, *m);
        ASSERT_TRUE(q);
        EXPECT_EQ(q->src, v6 ? ep("[2001:db8:1::10]:5060") : ep("198.51.100.10:5060"));
        Endpoint backend = v6 ? ep("[2001:db8:2::11]:5080") : ep("203.0.113.11:5080");
        ASSERT_TRUE(redirect_icmp_error(f.data(), v, *m, *q, backend));
        // What the backend would have sent, quoted, in an error from the client to it.
        auto from_backend = build_frame(
            {.src = backend, .dst = v6 ? ep("[2001:db8:9::10]:5062") : ep("192.0.2.10:5062"), .payload = sip});
        PacketView bv;
        ASSERT_EQ(parse_frame(from_backend.bytes.data(), from_backend.bytes.size(), bv), ParseStatus::udp);
        from_backend.bytes.resize(14 + 2000);
        size_t expect_len = write_icmp_error(from_backend.bytes.data(), bv,
                                             v6 ? kIcmpv6DestUnreachable : kIcmpDestUnreachable,
                                             v6 ? kIcmpv6CodePortUnreachable : kIcmpCodePortUnreachable, client, 2000);
        from_backend.bytes.resize(14 + expect_len);
        EXPECT_EQ(f, from_backend.bytes) << (v6 ? "v6" : "v4");
        EXPECT_FALSE(redirect_icmp_error(f.data(), v, *m, *q, v6 ? ep("203.0.113.11:1") : ep("[2001:db8::1]:1")));
    }
}

TEST(Icmp, QuoteOfNonUdpOrLaterFragmentIsNotParsed) {
    auto f = icmp_frame(kClient4, kVip4, kIcmpDestUnreachable, 3, std::vector<uint8_t>(28, 0));
    PacketView v;
    ASSERT_EQ(parse_frame(f.data(), f.size(), v), ParseStatus::not_udp);
    auto m = parse_icmp(f.data(), v);
    ASSERT_TRUE(m);
    EXPECT_FALSE(parse_quoted_udp(f.data(), v, *m));  // version 0 inside
}

TEST(Icmp, TokenBucketRefillsAtItsRate) {
    TokenBucket b(10, 3);
    uint64_t t = 1000;
    EXPECT_TRUE(b.take(t));
    EXPECT_TRUE(b.take(t));
    EXPECT_TRUE(b.take(t));
    EXPECT_FALSE(b.take(t));
    EXPECT_FALSE(b.take(t + 99));  // 0.99 token
    EXPECT_TRUE(b.take(t + 100));
    EXPECT_FALSE(b.take(t + 100));
    EXPECT_TRUE(b.take(t + 100000));  // capped at the burst
    EXPECT_TRUE(b.take(t + 100000));
    EXPECT_TRUE(b.take(t + 100000));
    EXPECT_FALSE(b.take(t + 100000));
}
