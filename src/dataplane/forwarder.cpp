#include "forwarder.h"

#include <cstring>

#include "siplb/balance/hash.h"
#include "siplb/balance/pick.h"
#include "siplb/net/arp.h"
#include "siplb/net/checksum.h"
#include "siplb/net/nat.h"
#include "siplb/net/ndp.h"

namespace siplb::dataplane {

using net::ParseStatus;

namespace {

DropReason drop_for(ParseStatus s) noexcept {
    switch (s) {
        case ParseStatus::short_frame: return DropReason::short_frame;
        case ParseStatus::bad_ip_length:
        case ParseStatus::bad_udp_length: return DropReason::bad_length;
        case ParseStatus::bad_ip_header: return DropReason::bad_ip_header;
        case ParseStatus::bad_ip_checksum:
        case ParseStatus::bad_udp_checksum: return DropReason::bad_checksum;
        case ParseStatus::ip_fragment: return DropReason::ip_fragment;
        case ParseStatus::ipv6_ext_header: return DropReason::ipv6_ext_header;
        default: return DropReason::not_for_us;
    }
}

DropReason drop_for(sip::RejectReason r) noexcept {
    switch (r) {
        case sip::RejectReason::empty: return DropReason::sip_empty;
        case sip::RejectReason::oversize: return DropReason::sip_oversize;
        case sip::RejectReason::binary: return DropReason::sip_binary;
        case sip::RejectReason::bad_start_line: return DropReason::sip_bad_start_line;
        case sip::RejectReason::truncated_headers: return DropReason::sip_truncated_headers;
        case sip::RejectReason::no_call_id: return DropReason::sip_no_call_id;
        case sip::RejectReason::conflicting_call_id: return DropReason::sip_conflicting_call_id;
        case sip::RejectReason::bad_call_id: return DropReason::sip_bad_call_id;
        case sip::RejectReason::bad_header: return DropReason::sip_bad_header;
        default: return DropReason::sip_bad_start_line;
    }
}

// Requests that open a dialog (or a subscription usage): their affinity
// entry lives for the dialog idle time and they count as calls.
bool creates_dialog(const sip::SipMessage& m) noexcept {
    return m.kind == sip::Kind::request &&
           (m.method == sip::Method::invite || m.method == sip::Method::subscribe || m.method == sip::Method::refer);
}

// The status code of a SIP response ("SIP/2.0 503 ..."), 0 for anything else.
uint16_t response_status(const uint8_t* p, size_t len) noexcept {
    if (len < 12 || std::memcmp(p, "SIP/2.0 ", 8) != 0 || p[11] != ' ') return 0;
    auto digit = [](uint8_t ch) { return static_cast<unsigned>(ch - '0') <= 9; };
    if (!digit(p[8]) || !digit(p[9]) || !digit(p[10])) return 0;
    return static_cast<uint16_t>((p[8] - '0') * 100 + (p[9] - '0') * 10 + (p[10] - '0'));
}

// Cheap pre-check on the reverse path: only these requests are parsed.
bool may_create_dialog(const uint8_t* payload, size_t len) noexcept {
    auto starts = [&](const char* m, size_t n) { return len > n && std::memcmp(payload, m, n) == 0; };
    return starts("INVITE ", 7) || starts("SUBSCRIBE ", 10) || starts("REFER ", 6);
}

// The client's address:port hash that balances keepalives: of the source
// of a client datagram, or of the destination of a backend's answer.
uint64_t endpoint_hash(const uint8_t* frame, const net::PacketView& v, uint64_t seed,
                       bool client_is_source = true) noexcept {
    // Client address bytes then port, as on the wire: stable across nodes.
    uint8_t key[18];
    std::memcpy(key, frame + (client_is_source ? v.src_addr_offset() : v.dst_addr_offset()), v.addr_len());
    std::memcpy(key + v.addr_len(), frame + v.l4_offset + (client_is_source ? 0 : 2), 2);
    return balance::hash_call_id(key, v.addr_len() + 2u, seed);
}

}  // namespace

void Forwarder::glean(const uint8_t* frame, const net::PacketView& v, uint16_t in_port, uint64_t now_ms) noexcept {
    const bool v6 = v.ip_version == 6;
    const uint8_t* addr = frame + v.src_addr_offset();
    const auto [lo, hi] = address_words(addr, v6);
    uint64_t mac = 0;
    std::memcpy(&mac, frame + 6, 6);
    GleanEntry& g = glean_cache_[hop_slot(lo, hi) & (kGleanCacheSize - 1)];
    if (g.addr_lo == lo && g.addr_hi == hi && g.v6 == v6 && g.port == in_port &&
        (g.routed || (g.mac == mac && now_ms < g.until_ms))) [[likely]]
        return;
    IpAddress src;
    if (v6) src.family = IpAddress::Family::v6;
    std::memcpy(src.bytes.data(), addr, v.addr_len());
    auto port = ctx_.routes.on_link_port(src);
    if (!port || *port != in_port) {  // routed sources: their MAC is the router's (routes never change)
        g = GleanEntry{lo, hi, 0, 0, in_port, v6, true};
        return;
    }
    MacAddress m;
    std::memcpy(m.bytes.data(), frame + 6, 6);
    auto r = ctx_.neighbors->learn(src, m, in_port, false, now_ms);
    if (r == net::NeighborTable::Learn::inserted || r == net::NeighborTable::Learn::updated) bump(c_.neighbors_learned);
    if (r != net::NeighborTable::Learn::busy && r != net::NeighborTable::Learn::full)
        g = GleanEntry{lo, hi, mac, now_ms + kGleanSkipMs, in_port, v6, false};
}

bool Forwarder::is_our_address(uint16_t in_port, const IpAddress& a,
                               const balance::DataplaneSnapshot* snap) const noexcept {
    for (const auto& p : ctx_.ports[in_port].addresses)
        if (p.ip == a) return true;
    if (snap) {
        for (const auto& pool : snap->pools())
            for (const auto& vip : pool->listen())
                if (vip.ip == a) return true;
    }
    return false;
}

Action Forwarder::handle_ndp(uint8_t* frame, uint16_t len, uint16_t tailroom, const net::PacketView& v,
                             uint16_t in_port, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept {
    auto m = net::parse_ndp(frame, v);
    if (!m) return drop(DropReason::not_for_us);
    // Glean: a solicitation names its sender's MAC, an advertisement the target's.
    const IpAddress& learned_ip = m->type == net::kIcmpv6NeighborSolicitation ? m->source : m->target;
    static const IpAddress unspecified{IpAddress::Family::v6, {}};
    // An advertisement for one of our addresses (a conflict, or our own
    // unsolicited NA looped back) is not learned, as with ARP.
    if (m->link_addr && learned_ip != unspecified && !is_our_address(in_port, learned_ip, snap)) {
        auto on_link = ctx_.routes.on_link_port(learned_ip);
        if (on_link && *on_link == in_port) {
            auto r = ctx_.neighbors->learn(learned_ip, *m->link_addr, in_port, false, now_ms);
            if (r == net::NeighborTable::Learn::inserted || r == net::NeighborTable::Learn::updated)
                bump(c_.neighbors_learned);
        }
    }
    if (m->type != net::kIcmpv6NeighborSolicitation || !is_our_address(in_port, m->target, snap))
        return drop(DropReason::not_for_us);
    const uint16_t reply_len = static_cast<uint16_t>(v.l3_offset + net::kIpv6HeaderLen + net::kNdpMessageLen);
    if (reply_len > len + tailroom) return drop(DropReason::no_headroom);
    const PortContext& port = ctx_.ports[in_port];
    // A DAD probe (source ::) is answered to all nodes, unsolicited.
    const bool dad = m->source == unspecified;
    static const IpAddress all_nodes = *IpAddress::parse("ff02::1");
    const IpAddress dst = dad ? all_nodes : m->source;
    MacAddress dst_mac;
    if (dad) {
        dst_mac = net::ipv6_multicast_mac(all_nodes);
    } else if (m->link_addr) {
        dst_mac = *m->link_addr;
    } else {
        std::memcpy(dst_mac.bytes.data(), frame + 6, 6);
    }
    net::write_neighbor_advertisement(frame + v.l3_offset, m->target, dst, port.mac, !dad);
    std::memcpy(frame, dst_mac.bytes.data(), 6);  // the VLAN tag, if any, stays as asked
    std::memcpy(frame + 6, port.mac.bytes.data(), 6);
    bump(c_.nd_advertisements);
    Action a;
    a.kind = Action::Kind::transmit;
    a.port = in_port;
    a.len = reply_len;
    return a;
}

Action Forwarder::handle_arp(uint8_t* frame, uint16_t len, const net::PacketView& v, uint16_t in_port,
                             const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept {
    auto arp = net::parse_arp(frame + v.l3_offset, len - v.l3_offset);
    if (!arp) return drop(DropReason::not_for_us);
    IpAddress sender = IpAddress::from_v4_be(arp->sender_ip_be);
    // Someone claiming one of our addresses (a conflict, or our own
    // announcement looped back) is neither learned nor answered.
    if (arp->sender_ip_be != 0 && is_our_address(in_port, sender, snap)) return drop(DropReason::not_for_us);
    auto on_link = ctx_.routes.on_link_port(sender);
    if (arp->sender_ip_be != 0 && on_link && *on_link == in_port) {
        auto r = ctx_.neighbors->learn(sender, arp->sender_mac, in_port, false, now_ms);
        if (r == net::NeighborTable::Learn::inserted || r == net::NeighborTable::Learn::updated)
            bump(c_.neighbors_learned);
    }
    if (arp->op != net::kArpRequest) return drop(DropReason::not_for_us);
    if (!is_our_address(in_port, IpAddress::from_v4_be(arp->target_ip_be), snap)) return drop(DropReason::not_for_us);
    const PortContext& port = ctx_.ports[in_port];
    net::write_arp(frame + v.l3_offset, net::arp_reply_to(*arp, port.mac));
    // Reply on the same VLAN it was asked on.
    MacAddress to = arp->sender_mac;
    std::memcpy(frame, to.bytes.data(), 6);
    std::memcpy(frame + 6, port.mac.bytes.data(), 6);
    bump(c_.arp_replies);
    Action a;
    a.kind = Action::Kind::transmit;
    a.port = in_port;
    a.len = static_cast<uint16_t>(v.l3_offset + net::kArpLen);
    return a;
}

void Forwarder::remember_backend_dialog(const uint8_t* frame, const net::PacketView& v,
                                        const balance::PoolSnapshot& pool, uint16_t backend, uint32_t now_s) noexcept {
    // A dialog a backend starts toward a customer (INVITE to a registered
    // phone, SUBSCRIBE, REFER): the customer's answers arrive on the VIP and
    // must reach this backend even where the table names another one.
    sip::SipParser::parse(frame + v.payload_offset(), v.payload_len(), msg_, sip::ParseDepth::balancer);
    if (!msg_.ok() || !creates_dialog(msg_) || !ctx_.affinity) return;
    uint64_t key = balance::hash_call_id(frame + v.payload_offset() + msg_.call_id.offset, msg_.call_id.length,
                                         pool.seed()) ^
                   pool.affinity_salt();
    auto r = ctx_.affinity->upsert(key, pool.backends()[backend].id, now_s + pool.dialog_idle_s(), now_s);
    if (r == balance::AffinityTable::Store::evicted) bump(c_.affinity_evictions);
    bump(c_.backend_dialogs);
}

Action Forwarder::egress(uint8_t* frame, const net::PacketView& v, uint16_t headroom, const IpAddress& dst,
                         uint64_t now_ms, uint16_t encap_len) noexcept {
    const net::RouteEntry* route = ctx_.routes.find(dst);
    if (!route) return drop(DropReason::no_route);
    const IpAddress& hop = route->via ? *route->via : dst;  // the neighbor: gateway or destination
    const auto [lo, hi] = address_words(hop);
    const uint8_t v6 = hop.is_v6();
    // The generation is read before any lookup that may fill the cache.
    const uint64_t generation = ctx_.neighbors->generation();
    HopCacheEntry& hc = hop_cache_[hop_slot(lo, hi)];
    const uint16_t out_port = route->port;
    const MacAddress* next_mac;
    bool refresh = false;  // stale neighbor: still used, and asked again
    std::optional<net::NeighborTable::Entry> neighbor;
    if (hc.generation == generation && hc.addr_lo == lo && hc.addr_hi == hi && hc.v6 == v6 &&
        hc.port == out_port && now_ms < hc.fresh_until_ms) [[likely]] {
        next_mac = &hc.mac;
    } else {
        neighbor = ctx_.neighbors->lookup(hop, now_ms);
        const PortContext& out = ctx_.ports[out_port];
        const bool have_source = v6 ? out.source_v6.has_value() : out.source_v4.has_value();
        if (!neighbor || neighbor->port != out_port) {
            Action a = drop(DropReason::no_neighbor);
            if (have_source && ctx_.neighbors->should_request(hop, now_ms, ctx_.arp_retry_ms)) {
                a.port = out_port;
                a.flags |= Action::kResolve;
                resolve_target_ = hop;
            }
            return a;
        }
        next_mac = &neighbor->mac;
        if (neighbor->state == net::NeighborTable::State::stale)
            refresh = have_source;
        else
            hc = HopCacheEntry{lo, hi, generation, neighbor->fresh_until_ms, neighbor->mac, out_port, v6};
    }
    const PortContext& out = ctx_.ports[out_port];
    bool fragment = false;
    if (static_cast<size_t>(v.l3_end - v.l3_offset) + encap_len > out.mtu) [[unlikely]] {
        // IPv4 with DF asks for path MTU discovery: answered, not cut
        // (tunnel headers never set DF, so the inner header decides).
        if (v.ip_version == 4 && (frame[v.l3_offset + 6] & 0x40)) {
            Action a = drop(DropReason::mtu_exceeded);
            a.flags |= Action::kTooBig;
            a.len = static_cast<uint16_t>(out.mtu - encap_len);
            return a;
        }
        fragment = true;
    }
    size_t l2_len = net::ethernet_header_len(out.vlan);
    int shift = static_cast<int>(v.l3_offset) - static_cast<int>(encap_len) - static_cast<int>(l2_len);
    if (shift < 0 && -shift > headroom) return drop(DropReason::no_headroom);
    if (!net::decrement_ttl(frame, v)) return drop(DropReason::ttl_expired);
    // With a tunnel the EtherType is the outer header's, i.e. the family of dst.
    bool l3_v6 = encap_len ? dst.is_v6() : v.ip_version == 6;
    net::write_ethernet(frame + shift, *next_mac, out.mac, out.vlan, l3_v6 ? net::kEtherTypeIpv6 : net::kEtherTypeIpv4);
    Action a;
    a.kind = Action::Kind::transmit;
    a.port = out_port;
    a.shift = static_cast<int16_t>(shift);
    a.len = static_cast<uint16_t>(v.l3_end - shift);  // trims Ethernet padding
    if (fragment) a.flags |= Action::kFragment;
    if (refresh && ctx_.neighbors->should_request(hop, now_ms, ctx_.arp_retry_ms)) [[unlikely]] {
        a.flags |= Action::kResolve;
        resolve_target_ = hop;
    }
    return a;
}

Action Forwarder::process(uint8_t* frame, uint16_t len, uint16_t headroom, uint16_t tailroom, uint16_t in_port,
                          const balance::DataplaneSnapshot* snap, uint32_t now_s, uint64_t now_ms,
                          net::ParseOptions parse) noexcept {
    net::PacketView v;
    ParseStatus st = net::parse_frame(frame, len, v, parse);
    const PortContext& in = ctx_.ports[in_port];
    if (st != ParseStatus::udp) {
        if (st == ParseStatus::not_ip && v.ethertype == net::kEtherTypeArp) {
            if ((v.has_vlan ? (v.vlan_tci & 0x0FFF) : 0) != in.vlan) return drop(DropReason::vlan_mismatch);
            return handle_arp(frame, len, v, in_port, snap, now_ms);
        }
        if (st == ParseStatus::not_udp && is_icmp(frame, v)) {
            if ((v.has_vlan ? (v.vlan_tci & 0x0FFF) : 0) != in.vlan) return drop(DropReason::vlan_mismatch);
            return handle_icmp(frame, headroom, v, in_port, snap, now_s, now_ms);
        }
        if (st == ParseStatus::not_udp && v.ip_version == 6 && v.ip_proto == 58) {
            if ((v.has_vlan ? (v.vlan_tci & 0x0FFF) : 0) != in.vlan) return drop(DropReason::vlan_mismatch);
            return handle_ndp(frame, len, tailroom, v, in_port, snap, now_ms);
        }
        return drop(drop_for(st));
    }
    if ((v.has_vlan ? (v.vlan_tci & 0x0FFF) : 0) != in.vlan) return drop(DropReason::vlan_mismatch);
    if (!snap) return drop(DropReason::not_for_us);
    // Early TTL check: an expiring datagram is dropped before any work.
    if (v.ttl <= 1) return ttl_expired(frame, len, tailroom, v, in_port, snap, now_ms);

    const bool v6 = v.ip_version == 6;
    using Key = balance::DataplaneSnapshot::EndpointKey;
    if (auto ref = snap->find_pool_by_vip(Key::from_wire(frame + v.dst_addr_offset(), v6, frame + v.l4_offset + 2));
        ref.pool) {
        // Client -> VIP: parse, balance, DNAT.
        const balance::PoolSnapshot* target = ref.pool;
        const uint32_t pool_index = ref.pool_index;
        PoolCounters* pc = c_.pool(target->counter_slot());
        // Balancer depth: neither pick() nor the protect rules read tags or the top via-parm.
        sip::SipParser::parse(frame + v.payload_offset(), v.payload_len(), msg_, sip::ParseDepth::balancer);
        uint64_t key;
        bool dialog = false;
        if (msg_.verdict == sip::Verdict::reject) {
            if (pc) bump(pc->rejected);
            return drop(drop_for(msg_.reason));
        }
        // Protect stage (Hyperscan rules, rate limits): it sees the parsed
        // message and the pool before any backend is chosen. Keepalives pass.
        // The guard belongs to this snapshot: its pools are the snapshot's.
        protect::WorkerGuard* guard = snap->guard(worker_);
        if (guard && msg_.verdict == sip::Verdict::ok) {
            IpAddress src;
            if (v.ip_version == 6) src.family = IpAddress::Family::v6;
            std::memcpy(src.bytes.data(), frame + v.src_addr_offset(), v.addr_len());
            const protect::GuardDecision g =
                guard->check(pool_index, frame + v.payload_offset(), v.payload_len(), msg_, src, now_ms * 1000000);
            if (g.dropped()) {
                const bool by_rule = g.action == protect::GuardDecision::Action::drop_rule;
                if (pc) bump(by_rule ? pc->rule_drops : pc->rate_limited);
                return drop(by_rule ? DropReason::protect_rule : DropReason::rate_limited);
            }
            if (g.action == protect::GuardDecision::Action::route) {
                // Balanced in the rule's target pool (gone after a reload: nothing to balance to).
                const uint32_t to = g.route_pool;
                if (to >= snap->pools().size()) {
                    if (pc) bump(pc->no_backend);
                    return drop(DropReason::no_backend);
                }
                if (pc) bump(pc->routed_away);
                target = snap->pools()[to].get();
                pc = c_.pool(target->counter_slot());
            }
        }
        const balance::PoolSnapshot& pool = *target;
        balance::Decision d;
        if (msg_.verdict == sip::Verdict::keepalive) {
            // Keepalives have no Call-ID: the client's address:port keeps
            // them on one backend (the one its NAT binding matters to).
            key = endpoint_hash(frame, v, pool.seed());
            d = balance::pick(pool, key, false, now_s, nullptr);
        } else {
            key = balance::hash_call_id(frame + v.payload_offset() + msg_.call_id.offset, msg_.call_id.length,
                                        pool.seed());
            dialog = creates_dialog(msg_);
            d = balance::pick(pool, key, dialog, now_s, ctx_.affinity);
            if (d.affinity_evicted) bump(c_.affinity_evictions);
        }
        if (d.reason == balance::Decision::Reason::no_backend || !d.entry) {
            if (pc) bump(pc->no_backend);
            return drop(DropReason::no_backend);
        }
        const Endpoint& backend = d.entry->address;
        Action a;
        if (pool.mode() == balance::ForwardMode::ipip) {
            // Direct server return: the backend answers from the VIP.
            a = tunnel_to_backend(frame, v, headroom, backend.ip, now_ms, true, in_port);
            if (a.kind == Action::Kind::drop) return egress_dropped(a, frame, len, tailroom, v, in_port, now_ms);
        } else {
            if (backend.ip.is_v6() != v6) return drop(DropReason::family_mismatch);
            glean(frame, v, in_port, now_ms);
            a = egress(frame, v, headroom, backend.ip, now_ms);
            if (a.kind == Action::Kind::drop) return egress_dropped(a, frame, len, tailroom, v, in_port, now_ms);
            net::dnat(frame, v, backend);
        }
        bump(c_.to_backend);
        if (pc) {
            bump(pc->packets);
            bump(pc->bytes, a.len);
            if (dialog) bump(pc->calls);
            if (msg_.verdict == sip::Verdict::keepalive) bump(pc->keepalives);
        }
        if (auto* bc = c_.backend(pool.counter_slot(), d.entry->id)) {
            bump(bc->packets);
            bump(bc->bytes, a.len);
            if (dialog) bump(bc->calls);
        }
        return a;
    }

    if (auto ref = snap->find_backend(Key::from_wire(frame + v.src_addr_offset(), v6, frame + v.l4_offset));
        ref.pool && ref.snat_vip) {
        // A backend answering one of our own addresses: the control plane's
        // health probe (OPTIONS from the node address). Not client traffic;
        // with a kernel path it goes to the kernel's socket.
        if (ctx_.routes.is_local_address(frame + v.dst_addr_offset(), v6)) [[unlikely]]
            return drop(DropReason::not_for_us);
        // A backend of several pools answers from the VIP its call came in on.
        if (!ref.pools.empty()) [[unlikely]]
            place_shared_backend(frame, v, snap, ref, now_s);
        // Backend -> client: SNAT to the pool's VIP. No SIP parsing needed
        // (but for the rare dialog a backend starts, below).
        if (ref.snat_vip->ip.is_v6() != v6) return drop(DropReason::family_mismatch);
        glean(frame, v, in_port, now_ms);
        IpAddress client;
        if (v6) client.family = IpAddress::Family::v6;
        std::memcpy(client.bytes.data(), frame + v.dst_addr_offset(), v.addr_len());
        Action a = egress(frame, v, headroom, client, now_ms);
        if (a.kind == Action::Kind::drop) return egress_dropped(a, frame, len, tailroom, v, in_port, now_ms);
        if (ref.backend != balance::PoolSnapshot::kNoBackend &&
            may_create_dialog(frame + v.payload_offset(), v.payload_len()))
            remember_backend_dialog(frame, v, *ref.pool, ref.backend, now_s);
        net::snat(frame, v, *ref.snat_vip);
        bump(c_.to_client);
        if (PoolCounters* pc = c_.pool(ref.pool->counter_slot())) {
            bump(pc->reply_packets);
            bump(pc->reply_bytes, a.len);
        }
        if (ref.backend != balance::PoolSnapshot::kNoBackend) {
            uint32_t id = ref.pool->backends()[ref.backend].id;
            if (auto* bc = c_.backend(ref.pool->counter_slot(), id)) {
                bump(bc->reply_packets);
                bump(bc->reply_bytes, a.len);
                const uint16_t status = response_status(frame + v.payload_offset(), v.payload_len());
                if (status && ref.pool->is_overload_code(status)) [[unlikely]]
                    count_overload(frame + v.payload_offset(), v.payload_len(), *bc);
            }
        }
        return a;
    }
    return unmatched_udp(frame, len, tailroom, v, in_port, snap, now_ms);
}

void Forwarder::count_overload(const uint8_t* payload, size_t len, BackendCounters& bc) noexcept {
    bump(bc.overload_responses);
    sip::SipParser::parse(payload, len, msg_, sip::ParseDepth::balancer);
    if (!msg_.ok()) return;
    const sip::Span retry = sip::find_header(payload, len, msg_, "Retry-After");
    // delta-seconds, possibly followed by a comment or parameters (RFC 3261 §20.33).
    uint64_t seconds = 0;
    size_t digits = 0;
    for (; digits < retry.length && digits < 9; ++digits) {
        const uint8_t ch = payload[retry.offset + digits];
        if (ch < '0' || ch > '9') break;
        seconds = seconds * 10 + (ch - '0');
    }
    if (digits > 0) raise_to(bc.overload_retry_after_s, seconds);
}

void Forwarder::place_shared_backend(const uint8_t* frame, const net::PacketView& v,
                                     const balance::DataplaneSnapshot* snap,
                                     balance::DataplaneSnapshot::BackendRef& ref, uint32_t now_s) noexcept {
    // Stateless: the request came through one pool's VIP, and that pool
    // recorded the call in the affinity table (pick() does for every
    // request) or its table maps the call to this backend. Keepalive
    // answers are placed by the client's address, as keepalives are.
    const uint8_t* payload = frame + v.payload_offset();
    sip::SipParser::parse(payload, v.payload_len(), msg_, sip::ParseDepth::balancer);
    const bool keepalive = msg_.verdict == sip::Verdict::keepalive;
    if (keepalive || (msg_.ok() && !msg_.call_id.empty())) {
        for (int pass = keepalive ? 1 : 0; pass < 2; ++pass) {
            for (const auto& in : ref.pools) {
                if (!in.snat_vip || in.pool_index >= snap->pools().size()) continue;
                const balance::PoolSnapshot& pool = *snap->pools()[in.pool_index];
                // ipip backends answer from the VIP themselves: a datagram
                // from the backend's own address is never one of theirs.
                if (pool.mode() == balance::ForwardMode::ipip) continue;
                const uint64_t key =
                    keepalive ? endpoint_hash(frame, v, pool.seed(), /*client_is_source=*/false)
                              : balance::hash_call_id(payload + msg_.call_id.offset, msg_.call_id.length, pool.seed());
                bool match;
                if (pass == 0) {  // the pool the call came through (affinity entry)
                    auto hit = ctx_.affinity ? ctx_.affinity->lookup(balance::affinity_key(pool, key), now_s)
                                             : std::nullopt;
                    match = hit && hit->backend_id == pool.backends()[in.backend].id;
                } else {  // else the pool whose table sends it here
                    match = pool.table().lookup(key) == in.backend;
                }
                if (match) {
                    ref.pool = &pool;
                    ref.pool_index = in.pool_index;
                    ref.backend = in.backend;
                    ref.snat_vip = in.snat_vip;
                    return;
                }
            }
        }
    }
    bump(c_.shared_backend_first_pool);
}

uint16_t Forwarder::write_resolution_request(uint8_t* buf, uint16_t port, const IpAddress& target) const noexcept {
    const PortContext& p = ctx_.ports[port];
    size_t l2 = net::ethernet_header_len(p.vlan);
    size_t end;
    if (target.is_v6()) {
        const IpAddress group = net::solicited_node_address(target);
        net::write_ethernet(buf, net::ipv6_multicast_mac(group), p.mac, p.vlan, net::kEtherTypeIpv6);
        net::write_neighbor_solicitation(buf + l2, p.source_v6.value_or(IpAddress{IpAddress::Family::v6, {}}), p.mac,
                                         target);
        end = l2 + net::kIpv6HeaderLen + net::kNdpMessageLen;
    } else {
        static const MacAddress broadcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
        net::write_ethernet(buf, broadcast, p.mac, p.vlan, net::kEtherTypeArp);
        net::ArpMessage m;
        m.op = net::kArpRequest;
        m.sender_mac = p.mac;
        m.sender_ip_be = p.source_v4 ? p.source_v4->v4_be() : 0;
        m.target_ip_be = target.v4_be();
        net::write_arp(buf + l2, m);
        end = l2 + net::kArpLen;
    }
    // Pad to the Ethernet minimum (60 bytes without FCS).
    if (end < 60) {
        std::memset(buf + end, 0, 60 - end);
        end = 60;
    }
    return static_cast<uint16_t>(end);
}

}  // namespace siplb::dataplane
