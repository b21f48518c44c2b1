#include "siplb/common/endpoint.h"

#include <gtest/gtest.h>

using siplb::Endpoint;
using siplb::IpAddress;
using siplb::MacAddress;
using siplb::Prefix;

TEST(Endpoint, ParsesV4AndV6WithPorts) {
    auto a = Endpoint::parse("198.51.100.11:5060");
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->ip.is_v4());
    EXPECT_EQ(a->port, 5060);
    EXPECT_EQ(a->to_string(), "198.51.100.11:5060");

    auto b = Endpoint::parse("[2001:db8::11]:5080");
    ASSERT_TRUE(b);
    EXPECT_TRUE(b->ip.is_v6());
    EXPECT_EQ(b->port, 5080);
    EXPECT_EQ(b->to_string(), "[2001:db8::11]:5080");
}

TEST(Endpoint, DefaultPortOnlyWhenAllowed) {
    EXPECT_FALSE(Endpoint::parse("198.51.100.11"));
    auto a = Endpoint::parse("198.51.100.11", 5060, true);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->port, 5060);
    auto b = Endpoint::parse("2001:db8::1", 5061, true);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->port, 5061);
    auto c = Endpoint::parse("[2001:db8::1]", 5062, true);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->port, 5062);
}

TEST(Endpoint, RejectsMalformed) {
    for (const char* bad :
         {"", ":5060", "198.51.100.11:", "198.51.100.11:0", "198.51.100.11:65536", "198.51.100:5060",
          "[2001:db8::1:5060", "[198.51.100.1]:5060", "198.51.100.11:50x0", "host.example:5060", "2001:db8::1"}) {
        EXPECT_FALSE(Endpoint::parse(bad)) << bad;
    }
}

TEST(Prefix, ParsesAndMatches) {
    auto p = Prefix::parse("198.51.100.0/24");
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->contains(*IpAddress::parse("198.51.100.77")));
    EXPECT_FALSE(p->contains(*IpAddress::parse("198.51.101.1")));
    EXPECT_FALSE(p->contains(*IpAddress::parse("2001:db8::1")));
    EXPECT_FALSE(Prefix::parse("198.51.100.1/24"));
    EXPECT_TRUE(Prefix::parse("198.51.100.1/24", true));
    EXPECT_FALSE(Prefix::parse("198.51.100.0/33"));
    auto v6 = Prefix::parse("2001:db8::/32");
    ASSERT_TRUE(v6);
    EXPECT_TRUE(v6->contains(*IpAddress::parse("2001:db8:ffff::1")));
    EXPECT_FALSE(v6->contains(*IpAddress::parse("2001:db9::1")));
    auto odd = Prefix::parse("203.0.113.128/25");
    ASSERT_TRUE(odd);
    EXPECT_TRUE(odd->contains(*IpAddress::parse("203.0.113.200")));
    EXPECT_FALSE(odd->contains(*IpAddress::parse("203.0.113.100")));
}

TEST(MacAddress, RoundTrips) {
    auto m = MacAddress::parse("02:00:5e:10:00:0a");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->to_string(), "02:00:5e:10:00:0a");
    EXPECT_FALSE(MacAddress::parse("02:00:5e:10:00"));
    EXPECT_FALSE(MacAddress::parse("02-00-5e-10-00-0a"));
    EXPECT_FALSE(MacAddress::parse("02:00:5e:10:00:zz"));
}
