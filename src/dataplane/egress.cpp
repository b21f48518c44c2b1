#include "egress.h"

#include <cstring>

#include "siplb/net/arp.h"
#include "siplb/net/checksum.h"
#include "siplb/net/nat.h"
#include "siplb/net/ndp.h"

namespace siplb::dataplane {

Action Egress::forward(const Frame& f, const IpAddress& dst, uint64_t now_ms, uint16_t encap_len) noexcept {
    uint8_t* frame = f.data;
    const net::PacketView& v = f.view;
    const net::RouteEntry* route = ctx_.routes.find(dst);
    if (!route) return drop(c_, DropReason::no_route);
    const IpAddress& hop = route->via ? *route->via : dst;  // the neighbor: gateway or destination
    const auto [lo, hi] = address_words(hop);
    const uint8_t v6 = hop.is_v6();
    // The generation is read before any lookup that may fill the cache.
    const uint64_t generation = ctx_.neighbors->generation();
    HopCacheEntry& hc = hop_cache_[address_slot_hash(lo, hi) & (kHopCacheSize - 1)];
    const uint16_t out_port = route->port;
    const MacAddress* next_mac;
    bool refresh = false;  // stale neighbor: still used, and asked again
    std::optional<net::NeighborTable::Entry> neighbor;
    if (hc.generation == generation && hc.addr_lo == lo && hc.addr_hi == hi && hc.v6 == v6 && hc.port == out_port &&
        now_ms < hc.fresh_until_ms) [[likely]] {
        next_mac = &hc.mac;
    } else {
        neighbor = ctx_.neighbors->lookup(hop, now_ms);
        const PortContext& out = ctx_.ports[out_port];
        const bool have_source = v6 ? out.source_v6.has_value() : out.source_v4.has_value();
        if (!neighbor || neighbor->port != out_port) {
            Action a = drop(c_, DropReason::no_neighbor);
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
            Action a = drop(c_, DropReason::mtu_exceeded);
            a.flags |= Action::kTooBig;
            a.len = static_cast<uint16_t>(out.mtu - encap_len);
            return a;
        }
        fragment = true;
    }
    size_t l2_len = net::ethernet_header_len(out.vlan);
    int shift = static_cast<int>(v.l3_offset) - static_cast<int>(encap_len) - static_cast<int>(l2_len);
    if (shift < 0 && -shift > f.headroom) return drop(c_, DropReason::no_headroom);
    if (!net::decrement_ttl(frame, v)) return drop(c_, DropReason::ttl_expired);
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

uint16_t Egress::write_resolution_request(uint8_t* buf, uint16_t port, const IpAddress& target) const noexcept {
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
