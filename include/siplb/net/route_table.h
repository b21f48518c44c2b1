// Egress decision: which port and which next hop (the destination itself
// when on-link, else a gateway) for a destination address. Longest prefix
// match over the ports' connected prefixes and the static routes. Built once
// from config, immutable afterwards, so workers read it without
// synchronisation. Route tables at an SBC edge hold a handful of entries, so
// a scan of a length-sorted array beats a trie on cache footprint.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"

namespace siplb::net {

struct RouteEntry {
    Prefix prefix;
    std::optional<IpAddress> via;  // nullopt: connected (on-link)
    uint16_t port = 0;             // dataplane port index
};

struct NextHop {
    uint16_t port = 0;
    IpAddress address;  // neighbor to resolve: destination or gateway
};

class RouteTable {
public:
    struct PortPrefixes {
        std::string name;
        std::vector<Prefix> addresses;  // interface addresses with prefix length
    };
    struct StaticRoute {
        Prefix prefix;
        IpAddress via;
        std::string port;  // empty: the port whose connected prefix holds `via`
    };

    // Fails on a route whose gateway is not on-link of any port (or of the
    // named port), or names an unknown port.
    static Result<RouteTable> build(const std::vector<PortPrefixes>& ports, const std::vector<StaticRoute>& routes);

    std::optional<NextHop> lookup(const IpAddress& dst) const noexcept;
    // The same match without copying an address (per-packet use): the
    // next hop is entry->via when set, else dst itself. nullptr: no route.
    // Inline for IPv4, a few compares that every forwarded frame asks.
    const RouteEntry* find(const IpAddress& dst) const noexcept {
        if (!dst.is_v4()) return find_v6(dst);
        const uint32_t a = host_order(dst.v4_be());
        for (const auto& v : v4_)
            if ((a & v.mask) == v.network) return &entries_[v.index];
        return nullptr;
    }
    // True when `a` is one of the ports' own addresses.
    bool is_local_address(const IpAddress& a) const noexcept;
    // The same for address bytes in a packet (4 or 16 of them), compared as
    // words: per-packet use.
    bool is_local_address(const uint8_t* addr, bool v6) const noexcept {
        const AddressWords w = address_words(addr, v6);
        for (const auto& k : local_words_)
            if (k.words == w && k.v6 == v6) return true;
        return false;
    }
    // Port whose connected prefix contains `a` (for gleaning). Inline: out
    // of line, GCC returned "none" through a byte store and a wider reload
    // that store forwarding cannot serve.
    std::optional<uint16_t> on_link_port(const IpAddress& a) const noexcept {
        const int port = a.is_v4() ? on_link_port_v4(a.v4_be()) : on_link_port_v6(a);
        return port < 0 ? std::nullopt : std::optional<uint16_t>(static_cast<uint16_t>(port));
    }
    // The same for an IPv4 address as it is in a packet (network order),
    // or -1: a few compares, cheap enough to ask for every datagram.
    int on_link_port_v4(uint32_t be) const noexcept {
        const uint32_t h = host_order(be);
        for (const auto& v : v4_)
            if ((h & v.mask) == v.network && !entries_[v.index].via) return entries_[v.index].port;
        return -1;
    }
    const std::vector<RouteEntry>& entries() const noexcept { return entries_; }

private:
    static uint32_t host_order(uint32_t be) noexcept {
        const auto* b = reinterpret_cast<const uint8_t*>(&be);
        return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
    }
    // The port, or -1: an int comes back in a register.
    int on_link_port_v6(const IpAddress& a) const noexcept;
    const RouteEntry* find_v6(const IpAddress& dst) const noexcept;
    // IPv4 fast path: (network, mask) in host order, same order as entries_.
    struct V4Entry {
        uint32_t network = 0, mask = 0;
        uint32_t index = 0;  // into entries_
    };
    std::vector<RouteEntry> entries_;  // longest prefix first
    std::vector<V4Entry> v4_;
    std::vector<IpAddress> local_;
    struct LocalWords {
        AddressWords words;
        bool v6 = false;
    };
    std::vector<LocalWords> local_words_;  // local_, for per-packet checks
};

}  // namespace siplb::net
