// Pure parts of DNS discovery: SRV expansion, weights, TTL clamping, backoff.
#include <gtest/gtest.h>

#include "siplb/discovery/discovery.h"

using namespace siplb;
using namespace siplb::discovery;

static IpAddress ip(const char* s) { return *IpAddress::parse(s); }

TEST(DnsPure, SrvNameDetection) {
    EXPECT_TRUE(is_srv_name("_sip._udp.example.net"));
    EXPECT_FALSE(is_srv_name("sip.example.net"));
    EXPECT_FALSE(is_srv_name(""));
}

TEST(DnsPure, TtlClamp) {
    EXPECT_EQ(clamp_ttl(1, 5, 3600), 5u);
    EXPECT_EQ(clamp_ttl(60, 5, 3600), 60u);
    EXPECT_EQ(clamp_ttl(86400, 5, 3600), 3600u);
    EXPECT_EQ(clamp_ttl(0, 0, 10), 0u);
    EXPECT_EQ(clamp_ttl(100, 30, 10), 30u);  // ceiling below floor: floor wins
}

TEST(DnsPure, BackoffDoublesAndCaps) {
    Backoff b(1000, 5000);
    EXPECT_EQ(b.next_failure().count(), 1000);
    EXPECT_EQ(b.next_failure().count(), 2000);
    EXPECT_EQ(b.next_failure().count(), 4000);
    EXPECT_EQ(b.next_failure().count(), 5000);
    EXPECT_EQ(b.next_failure().count(), 5000);
    EXPECT_EQ(b.failures(), 5u);
    b.reset();
    EXPECT_EQ(b.next_failure().count(), 1000);
    Backoff huge(1000, 60000);
    for (int i = 0; i < 100; ++i) (void)huge.next_failure();
    EXPECT_EQ(huge.next_failure().count(), 60000);
}

TEST(DnsPure, SrvExpansionPriorityWeightPort) {
    std::vector<SrvRecord> recs = {
        {"b.example.", 5070, 10, 0}, {"a.example.", 5060, 10, 60},      {"backup.example.", 5080, 20, 5},
        {".", 5060, 0, 0},           {"nowhere.example.", 5060, 0, 10},
    };
    std::map<std::string, std::vector<ResolvedAddress>> addrs = {
        {"a.example.", {{ip("192.0.2.1"), 30}, {ip("2001:db8::1"), 30}}},
        {"b.example.", {{ip("192.0.2.2"), 30}}},
        {"backup.example.", {{ip("192.0.2.9"), 30}}},
    };
    auto out = build_srv_backends(recs, addrs, 42);
    ASSERT_EQ(out.size(), 4u);
    // Sorted by priority, then address; v4 before v6.
    EXPECT_EQ(out[0].address.to_string(), "192.0.2.1:5060");
    EXPECT_EQ(out[0].weight, 60u);
    EXPECT_EQ(out[0].priority, 10);
    EXPECT_EQ(out[0].ttl_s, 42u);
    EXPECT_EQ(out[0].target, "a.example.");
    EXPECT_EQ(out[1].address.to_string(), "192.0.2.2:5070");
    EXPECT_EQ(out[1].weight, 1u);  // SRV weight 0 -> Maglev weight 1
    EXPECT_EQ(out[2].address.to_string(), "[2001:db8::1]:5060");
    EXPECT_EQ(out[3].address.to_string(), "192.0.2.9:5080");
    EXPECT_EQ(out[3].priority, 20);
}

TEST(DnsPure, SrvDuplicateEndpointKeepsBestPriority) {
    std::vector<SrvRecord> recs = {{"x.", 5060, 20, 100}, {"y.", 5060, 10, 3}, {"z.", 5060, 10, 7}};
    std::map<std::string, std::vector<ResolvedAddress>> addrs = {{"x.", {{ip("192.0.2.1"), 1}}},
                                                                 {"y.", {{ip("192.0.2.1"), 1}}},
                                                                 {"z.", {{ip("192.0.2.1"), 1}}}};
    auto out = build_srv_backends(recs, addrs, 5);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].priority, 10);
    EXPECT_EQ(out[0].weight, 7u);
}

TEST(DnsPure, AddressBackendsUseDefaultPortAndDedup) {
    auto out = build_address_backends("sip.example", {{ip("192.0.2.3"), 1}, {ip("192.0.2.1"), 1}, {ip("192.0.2.3"), 1}},
                                      5062, 9);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].address.to_string(), "192.0.2.1:5062");
    EXPECT_EQ(out[1].address.to_string(), "192.0.2.3:5062");
    EXPECT_EQ(out[0].weight, 1u);
    EXPECT_EQ(out[0].priority, 0);
}

TEST(DnsPure, SameSetIgnoresTtl) {
    auto a = build_address_backends("n", {{ip("192.0.2.1"), 1}}, 5060, 10);
    auto b = build_address_backends("n", {{ip("192.0.2.1"), 1}}, 5060, 99);
    auto c = build_address_backends("n", {{ip("192.0.2.2"), 1}}, 5060, 10);
    EXPECT_TRUE(same_backend_set(a, b));
    EXPECT_FALSE(same_backend_set(a, c));
    b[0].weight = 2;
    EXPECT_FALSE(same_backend_set(a, b));
}

TEST(DnsPure, TlsSrvNames) {
    EXPECT_TRUE(config::is_tls_srv_name("_sips._tcp.example.net"));
    EXPECT_FALSE(config::is_tls_srv_name("_sip._tcp.example.net"));
    EXPECT_FALSE(config::is_tls_srv_name("_sips._tcp."));
    EXPECT_FALSE(config::is_tls_srv_name("sips.example.net"));
}

TEST(DnsPure, SipsRecordsGiveTlsPortsOnTheDefaultPort) {
    // _sips._tcp: the record's port is the TLS port; the backend sits at the
    // pool's default port until the pool manager merges it with the host's
    // SIP-port records. One backend per address, the best priority's port.
    std::vector<SrvRecord> recs = {{"a.", 5061, 10, 5}, {"b.", 5071, 10, 0}, {"a2.", 6061, 20, 9}};
    std::map<std::string, std::vector<ResolvedAddress>> addrs = {{"a.", {{ip("192.0.2.1"), 1}}},
                                                                 {"a2.", {{ip("192.0.2.1"), 1}}},
                                                                 {"b.", {{ip("192.0.2.2"), 1}}}};
    auto out = build_srv_backends(recs, addrs, 5, uint16_t{5062});
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].address.to_string(), "192.0.2.1:5062");
    EXPECT_EQ(out[0].tls_port, std::optional<uint16_t>(5061));
    EXPECT_EQ(out[0].priority, 10);
    EXPECT_EQ(out[0].weight, 5u);
    EXPECT_EQ(out[1].address.to_string(), "192.0.2.2:5062");
    EXPECT_EQ(out[1].tls_port, std::optional<uint16_t>(5071));
    // SIP-port names carry no TLS port; a changed TLS port is a changed set.
    auto sip = build_srv_backends(recs, addrs, 5);
    EXPECT_FALSE(sip[0].tls_port);
    auto moved = out;
    moved[1].tls_port = 5081;
    EXPECT_FALSE(same_backend_set(out, moved));
}
