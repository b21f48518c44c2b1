// HEPv3 encoding, byte for byte, and the sender over a real UDP socket on
// loopback draining a fake ring.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <vector>

#include "siplb/control/hep.h"
#include "siplb/control/hep_sender.h"

using namespace siplb;
using namespace siplb::control;

namespace {

std::vector<uint8_t> chunk(uint16_t type, std::vector<uint8_t> value) {
    std::vector<uint8_t> c;
    c.reserve(6 + value.size());
    for (unsigned v : {0u, 0u, unsigned(type >> 8), unsigned(type & 0xFF), unsigned((value.size() + 6) >> 8),
                       unsigned((value.size() + 6) & 0xFF)})
        c.push_back(static_cast<uint8_t>(v));
    for (uint8_t b : value) c.push_back(b);
    return c;
}

std::vector<uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(Hep3, Ipv4ChunkLayoutByteForByte) {
    HepMessage m;
    m.src = *Endpoint::parse("192.0.2.11:5062");
    m.dst = *Endpoint::parse("198.51.100.13:5060");
    m.ts_ns = 1700000000ull * 1000000000ull + 123456789ull;  // 1700000000 s + 123456 us
    m.agent_id = 18;
    m.payload = "OPTIONS sip:a SIP/2.0\r\n\r\n";
    m.call_id = "c1@pbx";
    std::vector<uint8_t> out;
    encode_hep3(m, out);

    std::vector<uint8_t> want = {'H', 'E', 'P', '3', 0, 0};
    for (const auto& c : {chunk(0x0001, {2}), chunk(0x0002, {17}), chunk(0x0003, {192, 0, 2, 11}),
                          chunk(0x0004, {198, 51, 100, 13}), chunk(0x0007, {0x13, 0xc6}), chunk(0x0008, {0x13, 0xc4}),
                          chunk(0x0009, {0x65, 0x53, 0xf1, 0x00}),  // 1700000000
                          chunk(0x000a, {0x00, 0x01, 0xe2, 0x40}),  // 123456
                          chunk(0x000b, {1}), chunk(0x000c, {0, 0, 0, 18}), chunk(0x000f, bytes(m.payload)),
                          chunk(0x0011, bytes("c1@pbx"))})
        want.insert(want.end(), c.begin(), c.end());
    want[4] = static_cast<uint8_t>(want.size() >> 8);
    want[5] = static_cast<uint8_t>(want.size());
    EXPECT_EQ(out, want);
}

TEST(Hep3, Ipv6AddressesAndNoCorrelationWithoutCallId) {
    HepMessage m;
    m.src = *Endpoint::parse("[2001:db8:c::11]:5060");
    m.dst = *Endpoint::parse("[2001:db8:b::13]:5060");
    m.payload = "x";
    std::vector<uint8_t> out;
    encode_hep3(m, out);
    ASSERT_GE(out.size(), 6u + 7 + 7 + 22 + 22);
    EXPECT_EQ(out[6 + 6], 10) << "IPv6 family";
    EXPECT_EQ(out[6 + 7 + 7 + 3], 0x05) << "IPv6 source chunk";
    EXPECT_EQ(out[6 + 7 + 7 + 5], 22);
    EXPECT_EQ(std::memcmp(&out[6 + 7 + 7 + 6], m.src.ip.bytes.data(), 16), 0);
    EXPECT_EQ(out[6 + 7 + 7 + 22 + 3], 0x06) << "IPv6 destination chunk";
    EXPECT_EQ(out.size(), static_cast<size_t>(out[4] << 8 | out[5]));
    // The last chunk is the payload: no correlation id without a Call-ID.
    EXPECT_EQ(out[out.size() - 7 + 3], 0x0f);
}

TEST(HepSender, SendsWhatTheRingsHoldToTheCollector) {
    const int rx = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(rx, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(rx, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ASSERT_EQ(::getsockname(rx, reinterpret_cast<sockaddr*>(&a), &len), 0);
    timeval tv{2, 0};
    ::setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

    std::deque<dataplane::MirrorSlot> queued(2);
    const std::string payload = "BYE sip:a SIP/2.0\r\nCall-ID: k@pbx\r\n\r\n";
    for (auto& s : queued) {
        s.src = *Endpoint::parse("192.0.2.11:5060");
        s.dst = *Endpoint::parse("198.51.100.13:5060");
        s.payload_len = static_cast<uint16_t>(payload.size());
        std::memcpy(s.data, payload.data(), payload.size());
        s.call_id_offset = static_cast<uint16_t>(payload.find("k@pbx"));
        s.call_id_len = 5;
    }
    auto sender = HepSender::open(Endpoint{*IpAddress::parse("127.0.0.1"), ntohs(a.sin_port)}, 7,
                                  [&](const std::function<void(const dataplane::MirrorSlot&)>& fn, size_t max) {
                                      size_t n = 0;
                                      while (!queued.empty() && n < max) {
                                          fn(queued.front());
                                          queued.pop_front();
                                          ++n;
                                      }
                                      return n;
                                  });
    ASSERT_TRUE(sender.ok()) << sender.message();
    EXPECT_EQ((*sender)->pump(), 2u);
    EXPECT_EQ((*sender)->sent(), 2u);
    for (int i = 0; i < 2; ++i) {
        uint8_t buf[4096];
        const ssize_t n = ::recv(rx, buf, sizeof(buf), 0);
        ASSERT_GT(n, 6);
        EXPECT_EQ(std::memcmp(buf, "HEP3", 4), 0);
        EXPECT_EQ(n, buf[4] << 8 | buf[5]);
        const std::string got(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
        EXPECT_NE(got.find(payload), std::string::npos);
        EXPECT_EQ(got.substr(got.size() - 5), "k@pbx") << "correlation id last";
    }
    ::close(rx);
}

}  // namespace
