// The ports and routes the Forwarder tests run on, without EAL: "ext"
// 198.51.100.1/24 toward the clients (192.0.2.0/24 via the gateway
// 198.51.100.254) and "int" 203.0.113.1/24 toward the backends.
#pragma once

#include "../../src/dataplane/forward_context.h"
#include "siplb/common/endpoint.h"
#include "siplb/net/route_table.h"

namespace siplb::test {

inline void set_two_ports(dataplane::ForwardContext& ctx, const MacAddress& ext_mac, const MacAddress& int_mac) {
    dataplane::PortContext ext, in;
    ext.name = "ext";
    ext.mac = ext_mac;
    ext.addresses = {*Prefix::parse("198.51.100.1/24", true)};
    ext.source_v4 = *IpAddress::parse("198.51.100.1");
    in.name = "int";
    in.mac = int_mac;
    in.addresses = {*Prefix::parse("203.0.113.1/24", true)};
    in.source_v4 = *IpAddress::parse("203.0.113.1");
    ctx.ports = {ext, in};
    ctx.routes =
        std::move(net::RouteTable::build({{"ext", ext.addresses}, {"int", in.addresses}},
                                         {{*Prefix::parse("192.0.2.0/24"), *IpAddress::parse("198.51.100.254"), ""}})
                      .value());
}

}  // namespace siplb::test
