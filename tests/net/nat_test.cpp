#include <gtest/gtest.h>

#include <random>
#include <tuple>

#include "support/frame_builder.h"
#include "siplb/net/checksum.h"
#include "siplb/net/nat.h"
#include "siplb/net/packet.h"

using namespace siplb;
using namespace siplb::net;
using siplb::test::build_frame;
using siplb::test::ep;
using siplb::test::FrameSpec;
using siplb::test::get16;
using siplb::test::naive_ipv4_checksum;
using siplb::test::naive_udp_checksum;

namespace {

constexpr std::string_view kInvite =
    "INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1\r\n"
    "Call-ID: abc@192.0.2.10\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

void expect_valid_checksums(const std::vector<uint8_t>& b, size_t l3, size_t l4, bool v6) {
    if (!v6) {
        EXPECT_EQ(get16(b, l3 + 10), naive_ipv4_checksum(b, l3));
    }
    EXPECT_EQ(get16(b, l4 + 6), naive_udp_checksum(b, l3, l4, v6));
}

}  // namespace

TEST(Checksum, AccumulateMatchesNaiveForAllLengthsAndAlignments) {
    std::mt19937 rng(7);
    std::vector<uint8_t> data(300);
    for (auto& x : data) x = static_cast<uint8_t>(rng());
    for (size_t len = 0; len < 140; ++len) {
        std::vector<uint8_t> slice(data.begin() + 3, data.begin() + 3 + len);
        EXPECT_EQ(checksum_finish(checksum_accumulate(slice.data(), len)), siplb::test::naive_checksum(slice))
            << "len " << len;
    }
}

TEST(Checksum, AccumulateCarriesOnLongSaturatedAndChainedData) {
    // Long runs of 0xFF overflow every wide accumulator word; chained calls
    // (pseudo-header sum passed in) must equal one pass over the whole.
    std::mt19937 rng(13);
    for (size_t len : {size_t(999), size_t(1500), size_t(9001), size_t(65535)}) {
        for (int fill = 0; fill < 2; ++fill) {
            std::vector<uint8_t> d(len + 1);
            for (auto& x : d) x = fill ? uint8_t(0xFF) : static_cast<uint8_t>(rng());
            std::vector<uint8_t> slice(d.begin() + 1, d.end());
            const uint16_t naive = siplb::test::naive_checksum(slice);
            EXPECT_EQ(checksum_finish(checksum_accumulate(d.data() + 1, len)), naive) << "len " << len;
            const size_t half = (len / 2) & ~size_t(1);
            uint32_t chained = checksum_accumulate(d.data() + 1, half);
            chained = checksum_accumulate(d.data() + 1 + half, len - half, chained);
            EXPECT_EQ(checksum_finish(chained), naive) << "len " << len;
        }
    }
}

TEST(Checksum, Sse2AndAvx2KernelsAgreeOnEveryBlockSize) {
#if SIPLB_CHECKSUM_AVX2
    if (!detail::cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU (checksum_accumulate uses SSE2 only)";
    std::mt19937 rng(21);
    std::vector<uint8_t> data(32768 + 64);
    for (int fill = 0; fill < 2; ++fill) {  // random, then all 0xFF (largest lane sums)
        for (auto& x : data) x = fill ? uint8_t(0xFF) : static_cast<uint8_t>(rng());
        for (size_t block = 16; block <= 32768; block += block < 1024 ? 16 : 1008) {
            for (size_t offset : {size_t(0), size_t(1), size_t(7)}) {
                const uint8_t* p = data.data() + offset;
                ASSERT_EQ(detail::sum_words_avx2(p, block), detail::sum_words_sse2(p, block))
                    << "block " << block << " offset " << offset << " fill " << fill;
            }
        }
        EXPECT_EQ(detail::sum_words_avx2(data.data(), 32768), detail::sum_words_sse2(data.data(), 32768));
    }
#else
    GTEST_SKIP() << "no AVX2 kernel on this target";
#endif
}

TEST(Checksum, Rfc1624UpdateMatchesRecompute) {
    std::mt19937 rng(11);
    for (int i = 0; i < 1000; ++i) {
        std::vector<uint8_t> d(20);
        for (auto& x : d) x = static_cast<uint8_t>(rng());
        uint16_t before = siplb::test::naive_checksum(d);
        uint8_t old_bytes[4], new_bytes[4];
        std::copy(d.begin() + 8, d.begin() + 12, old_bytes);
        for (auto& x : new_bytes) x = static_cast<uint8_t>(rng());
        std::copy(new_bytes, new_bytes + 4, d.begin() + 8);
        uint16_t after = siplb::test::naive_checksum(d);
        uint16_t inc = checksum_update_bytes(before, old_bytes, new_bytes, 4);
        // 0x0000 and 0xFFFF are the same ones' complement value.
        EXPECT_TRUE(inc == after || (inc ^ after) == 0xFFFF) << i;
    }
}

TEST(Parse, Ipv4UdpWithVlan) {
    auto f =
        build_frame({.vlan = 42, .src = ep("192.0.2.10:5062"), .dst = ep("198.51.100.1:5060"), .payload = kInvite});
    PacketView v;
    ASSERT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
    EXPECT_TRUE(v.has_vlan);
    EXPECT_EQ(v.vlan_tci, 42);
    EXPECT_EQ(v.ip_version, 4);
    EXPECT_EQ(v.l3_offset, 18);
    EXPECT_EQ(v.l4_offset, 38);
    EXPECT_EQ(v.payload_len(), kInvite.size());
    EXPECT_EQ(source_endpoint(f.bytes.data(), v), ep("192.0.2.10:5062"));
    EXPECT_EQ(destination_endpoint(f.bytes.data(), v), ep("198.51.100.1:5060"));
}

TEST(Parse, Ipv4OptionsAndPaddingAfterDatagram) {
    auto f = build_frame({.src = ep("192.0.2.10:5062"),
                          .dst = ep("198.51.100.1:5060"),
                          .ipv4_options = {1, 1, 1, 0},
                          .payload = "\r\n\r\n"});
    f.bytes.resize(f.bytes.size() + 10, 0);  // Ethernet minimum-size padding
    PacketView v;
    ASSERT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
    EXPECT_EQ(v.l4_offset, 14 + 24);
    EXPECT_EQ(v.payload_len(), 4);
}

// The inline 20-byte sum and the general one agree on every header, valid
// or not: random headers, half of them with their checksum filled in, and
// every single-bit flip of a valid one.
TEST(Checksum, Ipv4HeaderValidMatchesTheGeneralSum) {
    std::mt19937_64 rng(17);
    auto general = [](const uint8_t* h, size_t n) { return checksum_fold(checksum_accumulate(h, n)) == 0xFFFF; };
    int valid = 0;
    for (int i = 0; i < 20000; ++i) {
        std::vector<uint8_t> h(i % 5 == 0 ? 24 : 20);
        for (auto& b : h) b = static_cast<uint8_t>(rng());
        if (i % 7 == 0) std::fill(h.begin(), h.end(), i % 14 == 0 ? 0x00 : 0xFF);  // the sum's edge cases
        if (i & 1) {
            h[10] = h[11] = 0;
            store_be16(&h[10], ipv4_header_checksum(h.data(), h.size()));
        }
        ASSERT_EQ(ipv4_header_valid(h.data(), h.size()), general(h.data(), h.size())) << i;
        valid += general(h.data(), h.size());
        if (i & 1) {
            const size_t bit = rng() % (h.size() * 8);
            h[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
            ASSERT_EQ(ipv4_header_valid(h.data(), h.size()), general(h.data(), h.size())) << i << " bit " << bit;
        }
    }
    EXPECT_GT(valid, 9000);  // both verdicts were compared
}

TEST(Parse, RejectsMalformed) {
    auto good = build_frame({.src = ep("192.0.2.10:5062"), .dst = ep("198.51.100.1:5060"), .payload = kInvite});
    PacketView v;
    for (size_t cut : {0ul, 13ul, 20ul, 33ul})
        EXPECT_EQ(parse_frame(good.bytes.data(), cut, v), ParseStatus::short_frame) << cut;
    EXPECT_EQ(parse_frame(good.bytes.data(), 40, v), ParseStatus::bad_ip_length);
    EXPECT_EQ(parse_frame(good.bytes.data(), good.bytes.size() - 1, v), ParseStatus::bad_ip_length);

    auto bad = good;
    bad.bytes[good.l3 + 10] ^= 1;
    EXPECT_EQ(parse_frame(bad.bytes.data(), bad.bytes.size(), v), ParseStatus::bad_ip_checksum);
    EXPECT_EQ(parse_frame(bad.bytes.data(), bad.bytes.size(), v, {.verify_ip_checksum = false}), ParseStatus::udp);

    bad = good;
    bad.bytes.back() ^= 0x20;
    EXPECT_EQ(parse_frame(bad.bytes.data(), bad.bytes.size(), v), ParseStatus::bad_udp_checksum);

    bad = good;
    siplb::test::put16(bad.bytes, good.l4 + 4, 9);
    EXPECT_EQ(parse_frame(bad.bytes.data(), bad.bytes.size(), v), ParseStatus::bad_udp_length);

    bad = good;
    siplb::test::put16(bad.bytes, good.l3 + 6, 0x2000);  // MF
    siplb::test::put16(bad.bytes, good.l3 + 10, naive_ipv4_checksum(bad.bytes, good.l3));
    EXPECT_EQ(parse_frame(bad.bytes.data(), bad.bytes.size(), v), ParseStatus::ip_fragment);

    bad = good;
    bad.bytes[good.l3 + 9] = 6;  // TCP
    siplb::test::put16(bad.bytes, good.l3 + 10, naive_ipv4_checksum(bad.bytes, good.l3));
    EXPECT_EQ(parse_frame(bad.bytes.data(), bad.bytes.size(), v), ParseStatus::not_udp);

    bad = good;
    bad.bytes[12] = 0x08;
    bad.bytes[13] = 0x06;
    EXPECT_EQ(parse_frame(bad.bytes.data(), bad.bytes.size(), v), ParseStatus::not_ip);
    EXPECT_EQ(v.ethertype, kEtherTypeArp);
}

TEST(Parse, Ipv6ExtensionHeaders) {
    auto f = build_frame({.src = ep("[2001:db8::10]:5062"),
                          .dst = ep("[2001:db8:1::1]:5060"),
                          .ipv6_hop_by_hop = true,
                          .payload = kInvite});
    PacketView v;
    ASSERT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
    EXPECT_EQ(v.l4_offset, 14 + 40 + 8);

    auto frag = f;
    frag.bytes[f.l3 + 40] = 44;  // hop-by-hop followed by a fragment header
    EXPECT_EQ(parse_frame(frag.bytes.data(), frag.bytes.size(), v), ParseStatus::ip_fragment);
    auto esp = f;
    esp.bytes[f.l3 + 40] = 50;
    EXPECT_EQ(parse_frame(esp.bytes.data(), esp.bytes.size(), v), ParseStatus::ipv6_ext_header);

    auto zero = build_frame({.src = ep("[2001:db8::10]:5062"), .dst = ep("[2001:db8:1::1]:5060"), .payload = "x"});
    siplb::test::put16(zero.bytes, zero.l4 + 6, 0);
    EXPECT_EQ(parse_frame(zero.bytes.data(), zero.bytes.size(), v), ParseStatus::bad_udp_checksum);
}

TEST(Parse, UdpChecksumAcceptsExactlyTheComputedValue) {
    // The verify sums pseudo-header and datagram with the field included;
    // it must accept the one value a recomputation gives and nothing else
    // (IPv4: 0 = no checksum; IPv6: 0 is invalid), and catch address changes.
    for (const char* src : {"192.0.2.10:5062", "[2001:db8::10]:5062"}) {
        const bool v6 = src[0] == '[';
        const Endpoint dst = ep(v6 ? "[2001:db8:1::1]:5060" : "198.51.100.1:5060");
        for (std::string payload : {std::string(kInvite), std::string("x"), std::string(301, '\xff')}) {
            auto f = build_frame({.src = ep(src), .dst = dst, .payload = payload});
            const uint16_t good = get16(f.bytes, f.l4 + 6);
            ASSERT_EQ(good, naive_udp_checksum(f.bytes, f.l3, f.l4, v6));
            PacketView v;
            size_t accepted = 0;
            for (uint32_t c = 0; c <= 0xFFFF; ++c) {
                siplb::test::put16(f.bytes, f.l4 + 6, static_cast<uint16_t>(c));
                const ParseStatus st = parse_frame(f.bytes.data(), f.bytes.size(), v);
                const bool expect_ok = c == good || (c == 0 && !v6);
                ASSERT_EQ(st, expect_ok ? ParseStatus::udp : ParseStatus::bad_udp_checksum) << src << " field " << c;
                accepted += st == ParseStatus::udp;
            }
            EXPECT_EQ(accepted, v6 ? 1u : 2u);
            siplb::test::put16(f.bytes, f.l4 + 6, good);
            f.bytes[f.l3 + (v6 ? 8 : 12)] ^= 0x01;  // source address: pseudo-header
            if (!v6) siplb::test::put16(f.bytes, f.l3 + 10, naive_ipv4_checksum(f.bytes, f.l3));
            EXPECT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::bad_udp_checksum) << src;
        }
    }
}

TEST(Nat, Ipv4DnatSnatAndTtl) {
    auto f = build_frame({.src = ep("192.0.2.10:5062"), .dst = ep("198.51.100.1:5060"), .ttl = 5, .payload = kInvite});
    PacketView v;
    ASSERT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
    ASSERT_TRUE(dnat(f.bytes.data(), v, ep("203.0.113.7:5080")));
    ASSERT_TRUE(decrement_ttl(f.bytes.data(), v));
    EXPECT_EQ(f.bytes[f.l3 + 8], 4);
    EXPECT_EQ(destination_endpoint(f.bytes.data(), v), ep("203.0.113.7:5080"));
    EXPECT_EQ(source_endpoint(f.bytes.data(), v), ep("192.0.2.10:5062"));
    expect_valid_checksums(f.bytes, f.l3, f.l4, false);

    ASSERT_TRUE(snat(f.bytes.data(), v, ep("198.51.100.1:5060")));
    EXPECT_EQ(source_endpoint(f.bytes.data(), v), ep("198.51.100.1:5060"));
    expect_valid_checksums(f.bytes, f.l3, f.l4, false);
    // The rewritten frame parses again with full validation.
    EXPECT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
}

TEST(Nat, Ipv4OptionsHeaderChecksumCoversOptions) {
    auto f = build_frame({.src = ep("192.0.2.10:5062"),
                          .dst = ep("198.51.100.1:5060"),
                          .ipv4_options = {7, 7, 4, 0, 0, 0, 0, 1},
                          .payload = kInvite});
    PacketView v;
    ASSERT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
    ASSERT_TRUE(dnat(f.bytes.data(), v, ep("203.0.113.7:5080")));
    ASSERT_TRUE(decrement_ttl(f.bytes.data(), v));
    expect_valid_checksums(f.bytes, f.l3, f.l4, false);
}

TEST(Nat, Ipv4ZeroUdpChecksumStaysZero) {
    auto f = build_frame(
        {.src = ep("192.0.2.10:5062"), .dst = ep("198.51.100.1:5060"), .udp_checksum = false, .payload = kInvite});
    PacketView v;
    ASSERT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
    ASSERT_TRUE(dnat(f.bytes.data(), v, ep("203.0.113.7:5080")));
    EXPECT_EQ(get16(f.bytes, f.l4 + 6), 0);
    EXPECT_EQ(get16(f.bytes, f.l3 + 10), naive_ipv4_checksum(f.bytes, f.l3));
}

TEST(Nat, ComputedZeroIsSentAsFfff) {
    // Choose two payload bytes so that the datagram after DNAT sums to
    // 0xFFFF, i.e. its checksum computes to 0 and must go out as 0xFFFF.
    std::string payload = "OPTIONS sip:x SIP/2.0\r\n\r\n";  // 25 bytes
    payload.append(3, '\0');                                // word at payload offset 26 = UDP offset 34, even
    auto after = build_frame({.src = ep("192.0.2.10:5062"), .dst = ep("203.0.113.7:5080"), .payload = payload});
    size_t word = after.bytes.size() - 2;  // even offset in the UDP datagram
    ASSERT_EQ((word - after.l4) % 2, 0u);
    uint16_t c = get16(after.bytes, after.l4 + 6);
    payload[payload.size() - 2] = static_cast<char>(c >> 8);
    payload[payload.size() - 1] = static_cast<char>(c & 0xFF);
    auto f = build_frame({.src = ep("192.0.2.10:5062"), .dst = ep("198.51.100.1:5060"), .payload = payload});
    PacketView v;
    ASSERT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
    ASSERT_TRUE(dnat(f.bytes.data(), v, ep("203.0.113.7:5080")));
    EXPECT_EQ(get16(f.bytes, f.l4 + 6), 0xFFFF);
    EXPECT_EQ(naive_udp_checksum(f.bytes, f.l3, f.l4, false), 0xFFFF);
    EXPECT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
}

TEST(Nat, Ipv6DnatSnatHopLimit) {
    auto f = build_frame({.src = ep("[2001:db8::10]:5062"),
                          .dst = ep("[2001:db8:1::1]:5060"),
                          .ttl = 2,
                          .ipv6_hop_by_hop = true,
                          .payload = kInvite});
    PacketView v;
    ASSERT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
    ASSERT_TRUE(dnat(f.bytes.data(), v, ep("[2001:db8:2::7]:5080")));
    ASSERT_TRUE(decrement_ttl(f.bytes.data(), v));
    EXPECT_EQ(f.bytes[f.l3 + 7], 1);
    EXPECT_FALSE(decrement_ttl(f.bytes.data(), v));
    EXPECT_EQ(f.bytes[f.l3 + 7], 1);
    expect_valid_checksums(f.bytes, f.l3, v.l4_offset, true);
    ASSERT_TRUE(snat(f.bytes.data(), v, ep("[2001:db8:1::1]:5060")));
    expect_valid_checksums(f.bytes, f.l3, v.l4_offset, true);
    EXPECT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
}

TEST(Nat, FamilyMismatchLeavesFrameUntouched) {
    auto f = build_frame({.src = ep("192.0.2.10:5062"), .dst = ep("198.51.100.1:5060"), .payload = kInvite});
    auto copy = f.bytes;
    PacketView v;
    ASSERT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
    EXPECT_FALSE(dnat(f.bytes.data(), v, ep("[2001:db8:2::7]:5080")));
    EXPECT_EQ(f.bytes, copy);
}

TEST(Nat, Ipv4TtlOneIsRefused) {
    auto f = build_frame({.src = ep("192.0.2.10:5062"), .dst = ep("198.51.100.1:5060"), .ttl = 1, .payload = "x"});
    PacketView v;
    ASSERT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
    EXPECT_FALSE(decrement_ttl(f.bytes.data(), v));
    EXPECT_EQ(f.bytes[f.l3 + 8], 1);
}

TEST(Nat, RandomRewritesKeepChecksumsValid) {
    std::mt19937 rng(3);
    for (int i = 0; i < 300; ++i) {
        std::string payload(rng() % 1400, 'a');
        for (auto& ch : payload) ch = static_cast<char>(rng());
        bool v6 = i % 2;
        auto rand_ep = [&] {
            Endpoint e;
            e.ip.family = v6 ? IpAddress::Family::v6 : IpAddress::Family::v4;
            for (size_t k = 0; k < (v6 ? 16u : 4u); ++k) e.ip.bytes[k] = static_cast<uint8_t>(rng());
            e.port = static_cast<uint16_t>(rng());
            return e;
        };
        auto f = build_frame(
            {.src = rand_ep(), .dst = rand_ep(), .ttl = static_cast<uint8_t>(2 + rng() % 250), .payload = payload});
        PacketView v;
        ASSERT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
        ASSERT_TRUE(dnat(f.bytes.data(), v, rand_ep()));
        ASSERT_TRUE(snat(f.bytes.data(), v, rand_ep()));
        ASSERT_TRUE(decrement_ttl(f.bytes.data(), v));
        expect_valid_checksums(f.bytes, f.l3, f.l4, v6);
    }
}

TEST(Nat, WriteEthernetTaggedAndUntagged) {
    uint8_t buf[18] = {};
    MacAddress dst{{1, 2, 3, 4, 5, 6}}, src{{7, 8, 9, 10, 11, 12}};
    write_ethernet(buf, dst, src, 100, kEtherTypeIpv4);
    const uint8_t tagged[18] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0, 0, 100, 0x08, 0};
    EXPECT_EQ(0, std::memcmp(buf, tagged, 18));
    write_ethernet(buf, dst, src, 0, kEtherTypeIpv6);
    EXPECT_EQ(buf[12], 0x86);
    EXPECT_EQ(buf[13], 0xDD);
    EXPECT_EQ(ethernet_header_len(0), 14u);
    EXPECT_EQ(ethernet_header_len(5), 18u);
}

TEST(Parse, TruncationsNeverReadOutOfBounds) {
    auto f = build_frame({.vlan = 3,
                          .src = ep("[2001:db8::10]:5062"),
                          .dst = ep("[2001:db8:1::1]:5060"),
                          .ipv6_hop_by_hop = true,
                          .payload = kInvite});
    for (size_t len = 0; len < f.bytes.size(); ++len) {
        std::vector<uint8_t> cut(f.bytes.begin(), f.bytes.begin() + len);  // exact-size buffer for ASan
        PacketView v;
        EXPECT_NE(parse_frame(cut.data(), cut.size(), v), ParseStatus::udp) << len;
    }
}

TEST(Nat, TunnelHeaderIpv4AndIpv6Outer) {
    auto f = build_frame({.src = ep("192.0.2.10:5062"), .dst = ep("198.51.100.1:5060"), .payload = kInvite});
    PacketView v;
    ASSERT_EQ(parse_frame(f.bytes.data(), f.bytes.size(), v), ParseStatus::udp);
    const uint16_t inner_len = static_cast<uint16_t>(v.l3_end - v.l3_offset);
    std::vector<uint8_t> buf(40 + inner_len);
    std::copy(f.bytes.begin() + v.l3_offset, f.bytes.begin() + v.l3_end, buf.begin() + 40);
    auto inner = std::vector<uint8_t>(buf.begin() + 40, buf.end());

    write_tunnel_header(buf.data() + 20, *IpAddress::parse("203.0.113.1"), *IpAddress::parse("203.0.113.7"), 4,
                        inner_len);
    std::vector<uint8_t> outer4(buf.begin() + 20, buf.begin() + 40);
    EXPECT_EQ(outer4[0], 0x45);
    EXPECT_EQ(get16(outer4, 2), 20 + inner_len);
    EXPECT_EQ(outer4[9], 4);
    EXPECT_EQ(outer4[8], 64);
    EXPECT_EQ(get16(outer4, 10), naive_ipv4_checksum(outer4, 0));
    EXPECT_TRUE(std::equal(inner.begin(), inner.end(), buf.begin() + 40));

    write_tunnel_header(buf.data(), *IpAddress::parse("2001:db8:2::1"), *IpAddress::parse("2001:db8:2::7"), 4,
                        inner_len);
    EXPECT_EQ(buf[0], 0x60);
    EXPECT_EQ(get16(buf, 4), inner_len);
    EXPECT_EQ(buf[6], 4);
    EXPECT_EQ(buf[7], 64);
    EXPECT_EQ(tunnel_header_len(*IpAddress::parse("2001:db8:2::7")), 40u);
    EXPECT_TRUE(std::equal(inner.begin(), inner.end(), buf.begin() + 40));
}

namespace {

// A TCP segment (20-byte header, flags SYN|ACK) built from a UDP frame of
// the same addresses: header swapped, lengths, protocol and checksums redone
// independently of the code under test.
std::vector<uint8_t> tcp_frame(const Endpoint& src, const Endpoint& dst, std::string_view payload) {
    auto u = build_frame({.src = src, .dst = dst, .payload = payload});
    const bool v6 = src.ip.is_v6();
    std::vector<uint8_t> f(u.bytes.begin(), u.bytes.begin() + u.l4);
    std::vector<uint8_t> tcp(20, 0);
    siplb::test::put16(tcp, 0, src.port);
    siplb::test::put16(tcp, 2, dst.port);
    tcp[7] = 0x2a;   // sequence number
    tcp[12] = 0x50;  // data offset 5 words
    tcp[13] = 0x12;  // SYN|ACK
    tcp[14] = 0xff;  // window
    tcp.insert(tcp.end(), payload.begin(), payload.end());
    const size_t len = tcp.size();
    if (v6) {
        siplb::test::put16(f, u.l3 + 4, static_cast<uint16_t>(len));
        f[u.l3 + 6] = 6;
    } else {
        siplb::test::put16(f, u.l3 + 2, static_cast<uint16_t>(20 + len));
        f[u.l3 + 9] = 6;
        siplb::test::put16(f, u.l3 + 10, 0);
        siplb::test::put16(f, u.l3 + 10, naive_ipv4_checksum(f, u.l3));
    }
    std::vector<uint8_t> pseudo(f.begin() + u.l3 + (v6 ? 8 : 12), f.begin() + u.l3 + (v6 ? 40 : 20));
    pseudo.insert(pseudo.end(), {0, 0, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len), 0, 6});
    pseudo.insert(pseudo.end(), tcp.begin(), tcp.end());
    siplb::test::put16(tcp, 16, siplb::test::naive_checksum(pseudo));
    f.insert(f.end(), tcp.begin(), tcp.end());
    return f;
}

}  // namespace

TEST(TcpNat, ParseAndIncrementalChecksumsBothFamilies) {
    for (auto [client, vip, backend] :
         {std::tuple{"192.0.2.10:40000", "198.51.100.10:5061", "203.0.113.11:5071"},
          std::tuple{"[2001:db8::10]:40000", "[2001:db8:1::10]:5060", "[2001:db8:2::11]:5060"}}) {
        for (std::string_view payload : {"", "x", "OPTIONS sip:a SIP/2.0\r\n\r\n", "\x16\x03\x01\x02\x00\x01"}) {
            auto f = tcp_frame(ep(client), ep(vip), payload);
            PacketView v;
            ASSERT_EQ(parse_frame(f.data(), f.size(), v), ParseStatus::not_udp);
            ASSERT_EQ(v.ip_proto, kIpProtoTcp);
            TcpSegment seg;
            ASSERT_EQ(parse_tcp(f.data(), v, seg), TcpStatus::ok) << client << " " << payload.size();
            EXPECT_EQ(seg.flags, kTcpSyn | kTcpAck);
            EXPECT_EQ(seg.header_len, 20u);
            EXPECT_EQ(seg.payload_len, payload.size());
            EXPECT_EQ(v.src_port, 40000);
            EXPECT_EQ(v.dst_port, ep(vip).port);
            const std::vector<uint8_t> original = f;
            ASSERT_TRUE(dnat(f.data(), v, ep(backend)));
            EXPECT_EQ(destination_endpoint(f.data(), v), ep(backend));
            // The incremental result verifies, and matches a full recomputation.
            TcpSegment again;
            EXPECT_EQ(parse_tcp(f.data(), v, again), TcpStatus::ok);
            const uint16_t full = tcp_checksum(f.data(), v), field = get16(f, v.l4_offset + 16);
            EXPECT_TRUE(full == field || (full == 0 && field == 0xFFFF) || (full == 0xFFFF && field == 0));
            if (v.ip_version == 4) {
                EXPECT_EQ(naive_ipv4_checksum(f, v.l3_offset), get16(f, v.l3_offset + 10));
            }
            // The payload is untouched (TLS records pass as they are).
            EXPECT_TRUE(std::equal(original.end() - payload.size(), original.end(), f.end() - payload.size()));
            ASSERT_TRUE(snat(f.data(), v, ep(vip)));
            EXPECT_EQ(parse_tcp(f.data(), v, again), TcpStatus::ok);
        }
    }
}

TEST(TcpNat, MalformedSegmentsAreRefused) {
    auto f = tcp_frame(ep("192.0.2.10:40000"), ep("198.51.100.10:5060"), "abc");
    PacketView v;
    TcpSegment seg;
    auto bad = f;
    bad.back() ^= 1;
    ASSERT_EQ(parse_frame(bad.data(), bad.size(), v), ParseStatus::not_udp);
    EXPECT_EQ(parse_tcp(bad.data(), v, seg), TcpStatus::bad_checksum);
    EXPECT_EQ(parse_tcp(bad.data(), v, seg, false), TcpStatus::ok);
    bad = f;
    bad[v.l4_offset + 12] = 0x40;  // data offset 4 words
    EXPECT_EQ(parse_tcp(bad.data(), v, seg), TcpStatus::bad_offset);
    bad = f;
    bad[v.l4_offset + 12] = 0xF0;  // 60-byte header in a 23-byte segment
    EXPECT_EQ(parse_tcp(bad.data(), v, seg), TcpStatus::short_segment);
    // An IP datagram too short for a TCP header.
    std::vector<uint8_t> cut(f.begin(), f.begin() + v.l4_offset + 10);
    siplb::test::put16(cut, v.l3_offset + 2, static_cast<uint16_t>(30));
    siplb::test::put16(cut, v.l3_offset + 10, 0);
    siplb::test::put16(cut, v.l3_offset + 10, naive_ipv4_checksum(cut, v.l3_offset));
    ASSERT_EQ(parse_frame(cut.data(), cut.size(), v), ParseStatus::not_udp);
    EXPECT_EQ(parse_tcp(cut.data(), v, seg), TcpStatus::short_segment);
}
