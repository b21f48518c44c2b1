// The per-frame decision of a worker, free of DPDK so it can be driven by a
// byte buffer: classify, parse SIP, pick a backend, rewrite in place and say
// where the frame goes. The DPDK glue (worker.cpp) only moves mbufs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "counters.h"
#include "siplb/balance/affinity.h"
#include "siplb/balance/snapshot.h"
#include "siplb/common/endpoint.h"
#include "siplb/net/icmp.h"
#include "siplb/net/nat.h"
#include "siplb/net/neighbor_table.h"
#include "siplb/net/packet.h"
#include "siplb/net/route_table.h"
#include "siplb/protect/guard.h"
#include "siplb/sip/parser.h"

namespace siplb::dataplane {

struct PortContext {
    std::string name;
    uint16_t dpdk_port = 0;
    MacAddress mac;
    uint16_t vlan = 0;                // 0 = untagged
    std::vector<Prefix> addresses;    // node addresses (answered for ARP)
    // First address of each family: source of ARP requests / neighbor
    // solicitations and of ipip tunnels.
    std::optional<IpAddress> source_v4, source_v6;
    uint16_t mtu = 1500;              // largest IP datagram sent; larger ones are fragmented or answered (DF)
};

// Shared by all workers, read-only while they run (the neighbor and
// affinity tables are internally synchronised).
struct ForwardContext {
    std::vector<PortContext> ports;
    net::RouteTable routes;
    net::NeighborTable* neighbors = nullptr;
    balance::AffinityTable* affinity = nullptr;
    uint64_t arp_retry_ms = 1000;     // at most one ARP request per target per interval
    // ICMP errors generated per worker (time exceeded, port unreachable,
    // fragmentation needed): dataplane.icmp_error_rate / icmp_error_burst.
    uint32_t icmp_error_rate_per_s = 100, icmp_error_burst = 50;
};

// What to do with a frame. Eight bytes, so it comes back in one register:
// built field by field in memory and copied out (as a 12- or 40-byte
// struct is), it cost a store-forwarding stall per frame.
struct Action {
    enum class Kind : uint8_t { drop, transmit };
    Kind kind = Kind::drop;
    uint8_t flags = 0;      // kResolve | kFragment | kTooBig
    uint16_t port = 0;      // ForwardContext::ports index to transmit on
    int16_t shift = 0;      // new frame start relative to the old one (L2 header grew: < 0)
    uint16_t len = 0;       // transmit: new frame length; drop with kTooBig: the next-hop MTU

    // Set with a no_neighbor drop, or with a transmit to a stale neighbor:
    // send an ARP request (IPv4) or a neighbor solicitation (IPv6) for
    // Forwarder::resolve_target() on `port`.
    static constexpr uint8_t kResolve = 1;
    // Transmit: the IP datagram is larger than the egress port's MTU and may
    // be fragmented (IPv6, or IPv4 without DF); the worker cuts it into
    // pieces of at most ports[port].mtu bytes.
    static constexpr uint8_t kFragment = 2;
    // Drop (counted mtu_exceeded): an IPv4 datagram with DF does not fit the
    // egress MTU; the caller may answer "fragmentation needed" with the MTU
    // in `len`. Nothing in the frame has been changed.
    static constexpr uint8_t kTooBig = 4;

    bool resolve() const noexcept { return flags & kResolve; }
    bool fragment() const noexcept { return flags & kFragment; }
    uint16_t too_big_mtu() const noexcept { return (flags & kTooBig) ? len : 0; }
};
static_assert(sizeof(Action) == 8, "Action is returned in one register");

class Forwarder {
public:
    // `worker`: this worker's index, whose protect guard it takes from each snapshot.
    Forwarder(const ForwardContext& ctx, WorkerCounters& counters, unsigned worker = 0) noexcept
        : ctx_(ctx), c_(counters), worker_(worker) {}

    // Counts every outcome (drops by reason, pool/backend counters) except TX results.
    // `frame` has `headroom` writable bytes before it and `tailroom` after
    // `len`. `parse` turns software checksum checks off where the NIC
    // verified them.
    Action process(uint8_t* frame, uint16_t len, uint16_t headroom, uint16_t tailroom, uint16_t in_port,
                   const balance::DataplaneSnapshot* snap, uint32_t now_s, uint64_t now_ms,
                   net::ParseOptions parse = {}) noexcept;
    // A frame the NIC found with a bad checksum.
    void count_bad_checksum() noexcept { c_.drop(DropReason::bad_checksum); }


    // Writes a broadcast ARP request (IPv4 target) or a multicast neighbor
    // solicitation (IPv6 target) from port `port` into `buf` (at least
    // kResolutionFrameMax bytes); returns the frame length.
    static constexpr uint16_t kResolutionFrameMax = 18 + 72;
    uint16_t write_resolution_request(uint8_t* buf, uint16_t port, const IpAddress& target) const noexcept;
    // The next hop of the last Action with resolve() set.
    const IpAddress& resolve_target() const noexcept { return resolve_target_; }

private:
    Action drop(DropReason r) noexcept {
        c_.drop(r);
        return Action{};
    }
    Action handle_ndp(uint8_t* frame, uint16_t len, uint16_t tailroom, const net::PacketView& v, uint16_t in_port,
                      const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept;
    bool is_our_address(uint16_t in_port, const IpAddress& a, const balance::DataplaneSnapshot* snap) const noexcept;
    Action handle_arp(uint8_t* frame, uint16_t len, const net::PacketView& v, uint16_t in_port,
                      const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept;
    // Routes, resolves the neighbor, decrements TTL and writes the Ethernet
    // header. Leaves the frame untouched when it returns a drop. A stale
    // neighbor is used and, at most once per arp_retry_ms, also gets a
    // refresh request (Action::resolve on a transmit).
    // encap_len: bytes of tunnel header to fit between L2 and the datagram
    // (ipip); the caller writes it. l3_is_v6: the EtherType to write.
    Action egress(uint8_t* frame, const net::PacketView& v, uint16_t headroom, const IpAddress& dst,
                  uint64_t now_ms, uint16_t encap_len = 0) noexcept;
    void remember_backend_dialog(const uint8_t* frame, const net::PacketView& v, const balance::PoolSnapshot& pool,
                                 uint16_t backend, uint32_t now_s) noexcept;
    void glean(const uint8_t* frame, const net::PacketView& v, uint16_t in_port, uint64_t now_ms) noexcept;
    // A response with one of the pool's overload codes, on its way to a
    // client: counted, and its Retry-After kept, for passive overload detection.
    void count_overload(const uint8_t* payload, size_t len, BackendCounters& bc) noexcept;
    // A backend in several pools: the pool (and so the VIP) of the call this
    // datagram belongs to, found from its Call-ID (or, for a keepalive
    // answer, the client's address); the first pool when none matches.
    void place_shared_backend(const uint8_t* frame, const net::PacketView& v, const balance::DataplaneSnapshot* snap,
                              balance::DataplaneSnapshot::BackendRef& ref, uint32_t now_s) noexcept;
    // ipip pools: the datagram travels unchanged (client -> VIP) inside a
    // tunnel to `backend`, from the egress port's address of its family.
    // `glean_sender`: learn the sender's MAC on `in_port` once the tunnel
    // can be built (client datagrams; the ICMP error path does not glean).
    // Inline: both callers are per packet.
    Action tunnel_to_backend(uint8_t* frame, const net::PacketView& v, uint16_t headroom, const IpAddress& backend,
                             uint64_t now_ms, bool glean_sender, uint16_t in_port) noexcept {
        const net::RouteEntry* route = ctx_.routes.find(backend);
        if (!route) return drop(DropReason::no_route);
        const PortContext& out = ctx_.ports[route->port];
        const auto& source = backend.is_v4() ? out.source_v4 : out.source_v6;
        if (!source) return drop(DropReason::no_tunnel_source);
        auto encap = static_cast<uint16_t>(net::tunnel_header_len(backend));
        if (glean_sender) glean(frame, v, in_port, now_ms);
        Action a = egress(frame, v, headroom, backend, now_ms, encap);
        if (a.kind == Action::Kind::drop) return a;
        net::write_tunnel_header(frame + v.l3_offset - encap, *source, backend, v.ip_version,
                                 static_cast<uint16_t>(v.l3_end - v.l3_offset));
        return a;
    }
    // ICMP stage (forwarder_icmp.cpp).
    static bool is_icmp(const uint8_t* frame, const net::PacketView& v) noexcept;
    Action handle_icmp(uint8_t* frame, uint16_t headroom, const net::PacketView& v, uint16_t in_port,
                       const balance::DataplaneSnapshot* snap, uint32_t now_s, uint64_t now_ms) noexcept;
    // Counts the offending datagram's drop, then answers it (send_icmp_error).
    Action icmp_error(uint8_t* frame, uint16_t len, uint16_t tailroom, const net::PacketView& v, uint16_t in_port,
                      uint8_t type, uint8_t code, const IpAddress* source, uint64_t now_ms,
                      DropReason reason) noexcept {
        c_.drop(reason);
        return send_icmp_error(frame, len, tailroom, v, in_port, type, code, source, now_ms, 0);
    }
    // The error in place of the datagram, back out of in_port, within the
    // per-worker rate; a drop Action when there is no source address or no token.
    Action send_icmp_error(uint8_t* frame, uint16_t len, uint16_t tailroom, const net::PacketView& v,
                           uint16_t in_port, uint8_t type, uint8_t code, const IpAddress* source, uint64_t now_ms,
                           uint32_t rest) noexcept;
    // An egress drop that may earn an ICMP error: "fragmentation needed"
    // to the sender of an IPv4 DF datagram too big for the egress MTU (the
    // drop itself is already counted).
    Action egress_dropped(Action a, uint8_t* frame, uint16_t len, uint16_t tailroom, const net::PacketView& v,
                          uint16_t in_port, uint64_t now_ms) noexcept;
    Action ttl_expired(uint8_t* frame, uint16_t len, uint16_t tailroom, const net::PacketView& v, uint16_t in_port,
                       const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept;
    Action unmatched_udp(uint8_t* frame, uint16_t len, uint16_t tailroom, const net::PacketView& v,
                         uint16_t in_port, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept;
    bool find_quoted_call_id(const uint8_t* p, size_t len, sip::Span& out) noexcept;

    const ForwardContext& ctx_;
    WorkerCounters& c_;
    unsigned worker_;
    IpAddress resolve_target_;
    // Neighbor cache of this worker: next hop (backend or gateway) -> MAC,
    // so the common case skips the shared neighbor table (its seqlocked
    // probe). Keyed by next hop, not destination: customers behind one
    // router share its entry. An entry is used while the neighbor table's
    // generation is the one it was filled under and the neighbor is fresh
    // (reachable or static); unresolved and stale neighbors take the full path.
    struct HopCacheEntry {
        uint64_t addr_lo = 0, addr_hi = 0;  // next-hop address bytes
        uint64_t generation = 0;            // 0: empty (tables start at 1)
        uint64_t fresh_until_ms = 0;
        MacAddress mac;
        uint16_t port = 0;
        uint8_t v6 = 0;
    };
    static constexpr uint32_t kHopCacheSize = 4096;  // power of two; ~1000 on-link backends, few collisions
    static uint32_t hop_slot(uint64_t lo, uint64_t hi) noexcept {
        return static_cast<uint32_t>(((lo ^ (hi * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull) >> 40) &
               (kHopCacheSize - 1);
    }
    HopCacheEntry hop_cache_[kHopCacheSize];
    // Glean cache of this worker: a source seen on this port with this MAC
    // less than kGleanSkipMs ago is not learned again (the table stamps a
    // confirmation at most once per NeighborTable::kConfirmGranularityMs
    // anyway), and a routed source (not on-link of its port) is skipped for
    // good. A new MAC, port or an expired entry takes the full path.
    struct GleanEntry {
        uint64_t addr_lo = 0, addr_hi = 0;
        uint64_t mac = 0;       // the 6 source MAC bytes, byte 0 lowest
        uint64_t until_ms = 0;  // on-link: skip learn() until then
        uint16_t port = 0;
        uint8_t v6 = 0;
        bool routed = false;
    };
    static constexpr uint32_t kGleanCacheSize = 1024;  // power of two
    static constexpr uint64_t kGleanSkipMs = 250;
    static_assert(kGleanSkipMs < net::NeighborTable::kConfirmGranularityMs);
    GleanEntry glean_cache_[kGleanCacheSize];
    sip::SipMessage msg_;  // reused: no per-packet construction
    net::TokenBucket icmp_error_bucket_{ctx_.icmp_error_rate_per_s, ctx_.icmp_error_burst};
};

}  // namespace siplb::dataplane
