#include "siplb/net/route_table.h"

#include <algorithm>

namespace siplb::net {

namespace {
Prefix network_of(const Prefix& p) {
    Prefix n = p;
    size_t bits = p.length;
    size_t total = p.ip.is_v4() ? 32 : 128;
    for (size_t b = bits; b < total; ++b) n.ip.bytes[b / 8] &= static_cast<uint8_t>(~(0x80u >> (b % 8)));
    return n;
}
}  // namespace

Result<RouteTable> RouteTable::build(const std::vector<PortPrefixes>& ports, const std::vector<StaticRoute>& routes) {
    RouteTable t;
    for (size_t i = 0; i < ports.size(); ++i) {
        for (const auto& a : ports[i].addresses) {
            t.entries_.push_back({network_of(a), std::nullopt, static_cast<uint16_t>(i)});
            t.local_.push_back(a.ip);
            t.local_words_.push_back({address_words(a.ip), a.ip.is_v6()});
        }
    }
    for (const auto& r : routes) {
        std::optional<uint16_t> port;
        if (!r.port.empty()) {
            for (size_t i = 0; i < ports.size(); ++i)
                if (ports[i].name == r.port) port = static_cast<uint16_t>(i);
            if (!port)
                return Result<RouteTable>::fail("route " + r.prefix.to_string() + ": unknown port '" + r.port + "'");
        } else {
            for (const auto& e : t.entries_)  // connected prefixes only so far
                if (!port && e.prefix.contains(r.via)) port = e.port;
            if (!port)
                return Result<RouteTable>::fail("route " + r.prefix.to_string() + ": gateway " + r.via.to_string() +
                                                " is not on-link of any port address");
        }
        if (r.prefix.ip.family != r.via.family)
            return Result<RouteTable>::fail("route " + r.prefix.to_string() + ": gateway " + r.via.to_string() +
                                            " is of another address family");
        t.entries_.push_back({network_of(r.prefix), r.via, *port});
    }
    // Longest prefix first; at equal length connected routes win (stable sort
    // keeps them ahead since they were added first).
    std::stable_sort(t.entries_.begin(), t.entries_.end(),
                     [](const RouteEntry& a, const RouteEntry& b) { return a.prefix.length > b.prefix.length; });
    for (uint32_t i = 0; i < t.entries_.size(); ++i) {
        const auto& e = t.entries_[i];
        if (!e.prefix.ip.is_v4()) continue;
        uint32_t mask = e.prefix.length == 0 ? 0 : ~uint32_t{0} << (32 - e.prefix.length);
        t.v4_.push_back({host_order(e.prefix.ip.v4_be()) & mask, mask, i});
    }
    return t;
}

const RouteEntry* RouteTable::find_v6(const IpAddress& dst) const noexcept {
    for (const auto& e : entries_)
        if (e.prefix.ip.family == dst.family && e.prefix.contains(dst)) return &e;
    return nullptr;
}

std::optional<NextHop> RouteTable::lookup(const IpAddress& dst) const noexcept {
    const RouteEntry* e = find(dst);
    if (!e) return std::nullopt;
    return NextHop{e->port, e->via ? *e->via : dst};
}

bool RouteTable::is_local_address(const IpAddress& a) const noexcept {
    return std::find(local_.begin(), local_.end(), a) != local_.end();
}

int RouteTable::on_link_port_v6(const IpAddress& a) const noexcept {
    for (const auto& e : entries_)
        if (!e.via && e.prefix.ip.family == a.family && e.prefix.contains(a)) return e.port;
    return -1;
}

}  // namespace siplb::net
