#include <gtest/gtest.h>

#include "siplb/net/route_table.h"

using namespace siplb;
using namespace siplb::net;

namespace {
IpAddress ip(const char* s) { return *IpAddress::parse(s); }
Prefix pf(const char* s, bool host = false) { return *Prefix::parse(s, host); }
}  // namespace

TEST(RouteTable, ConnectedThenLongestPrefix) {
    auto t = RouteTable::build({{"ext", {pf("198.51.100.1/24", true), pf("2001:db8:1::1/64", true)}},
                                {"int", {pf("203.0.113.1/28", true)}}},
                               {{pf("0.0.0.0/0"), ip("198.51.100.254"), ""},
                                {pf("192.0.2.0/24"), ip("203.0.113.14"), ""},
                                {pf("192.0.2.128/25"), ip("198.51.100.253"), "ext"}});
    ASSERT_TRUE(t) << t.message();
    auto on_link = t->lookup(ip("203.0.113.5"));
    ASSERT_TRUE(on_link);
    EXPECT_EQ(on_link->port, 1);
    EXPECT_EQ(on_link->address, ip("203.0.113.5"));
    EXPECT_EQ(t->lookup(ip("192.0.2.7"))->address, ip("203.0.113.14"));
    EXPECT_EQ(t->lookup(ip("192.0.2.200"))->address, ip("198.51.100.253"));
    EXPECT_EQ(t->lookup(ip("192.0.2.200"))->port, 0);
    EXPECT_EQ(t->lookup(ip("8.8.8.8"))->address, ip("198.51.100.254"));
    EXPECT_EQ(t->lookup(ip("2001:db8:1::99"))->port, 0);
    EXPECT_FALSE(t->lookup(ip("2001:db8:2::1")));  // no IPv6 default route
    EXPECT_TRUE(t->is_local_address(ip("198.51.100.1")));
    EXPECT_FALSE(t->is_local_address(ip("198.51.100.2")));
    EXPECT_EQ(t->on_link_port(ip("203.0.113.9")), std::optional<uint16_t>(1));
    EXPECT_FALSE(t->on_link_port(ip("192.0.2.7")));
    EXPECT_FALSE(t->on_link_port(ip("192.0.2.200")));  // a static route's, via a gateway on port 0
    EXPECT_FALSE(t->on_link_port(ip("8.8.8.8")));      // only the default route holds it
    EXPECT_EQ(t->on_link_port(ip("2001:db8:1::99")), std::optional<uint16_t>(0));
    EXPECT_FALSE(t->on_link_port(ip("2001:db8:2::1")));
}

TEST(RouteTable, RejectsUnreachableGatewayAndUnknownPort) {
    auto bad = RouteTable::build({{"ext", {pf("198.51.100.1/24", true)}}}, {{pf("0.0.0.0/0"), ip("192.0.2.1"), ""}});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.message().find("not on-link"), std::string::npos);
    auto bad_port =
        RouteTable::build({{"ext", {pf("198.51.100.1/24", true)}}}, {{pf("0.0.0.0/0"), ip("198.51.100.9"), "nope"}});
    ASSERT_FALSE(bad_port);
    EXPECT_NE(bad_port.message().find("nope"), std::string::npos);
}
