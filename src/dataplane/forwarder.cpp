#include "forwarder.h"

namespace siplb::dataplane {

using net::ParseStatus;

const char* drop_reason_name(DropReason r) noexcept {
    switch (r) {
        case DropReason::short_frame: return "short";
        case DropReason::bad_length: return "bad_length";
        case DropReason::bad_ip_header: return "bad_ip_header";
        case DropReason::bad_checksum: return "bad_checksum";
        case DropReason::ip_fragment: return "ip_fragment";
        case DropReason::ipv6_ext_header: return "ipv6_ext_header";
        case DropReason::not_for_us: return "not_for_us";
        case DropReason::vlan_mismatch: return "vlan_mismatch";
        case DropReason::ttl_expired: return "ttl_expired";
        case DropReason::sip_empty: return "sip_empty";
        case DropReason::sip_oversize: return "sip_oversize";
        case DropReason::sip_binary: return "sip_binary";
        case DropReason::sip_bad_start_line: return "sip_bad_start_line";
        case DropReason::sip_truncated_headers: return "sip_truncated_headers";
        case DropReason::sip_no_call_id: return "sip_no_call_id";
        case DropReason::sip_conflicting_call_id: return "sip_conflicting_call_id";
        case DropReason::sip_bad_call_id: return "sip_bad_call_id";
        case DropReason::sip_bad_header: return "sip_bad_header";
        case DropReason::protect_rule: return "protect_rule";
        case DropReason::rate_limited: return "rate_limited";
        case DropReason::no_backend: return "no_backend";
        case DropReason::family_mismatch: return "family_mismatch";
        case DropReason::no_route: return "no_route";
        case DropReason::no_neighbor: return "no_neighbor";
        case DropReason::no_headroom: return "no_headroom";
        case DropReason::mtu_exceeded: return "mtu_exceeded";
        case DropReason::no_tunnel_source: return "no_tunnel_source";
        case DropReason::tx_full: return "tx_full";
        case DropReason::count_: break;
    }
    return "unknown";
}

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

enum class FrameKind : uint8_t { udp, arp, ndp, icmp, other };

// The stage a frame goes to; `other`: malformed, or a protocol no stage speaks.
FrameKind classify(ParseStatus st, const uint8_t* frame, const net::PacketView& v) noexcept {
    if (st == ParseStatus::udp) [[likely]]
        return FrameKind::udp;
    if (st == ParseStatus::not_ip) return v.ethertype == net::kEtherTypeArp ? FrameKind::arp : FrameKind::other;
    if (st != ParseStatus::not_udp) return FrameKind::other;
    if (IcmpStage::is_icmp(frame, v)) return FrameKind::icmp;
    if (v.ip_version == 6 && v.ip_proto == net::kIpProtoIcmpv6) return FrameKind::ndp;
    return FrameKind::other;
}

}  // namespace

Action Forwarder::process(uint8_t* frame, uint16_t len, uint16_t headroom, uint16_t tailroom, uint16_t in_port,
                          const balance::DataplaneSnapshot* snap, uint32_t now_s, uint64_t now_ms,
                          net::ParseOptions parse) noexcept {
    Frame f{.data = frame, .len = len, .headroom = headroom, .tailroom = tailroom, .in_port = in_port};
    const ParseStatus st = net::parse_frame(frame, len, f.view, parse);
    const FrameKind kind = classify(st, frame, f.view);
    if (kind == FrameKind::other) [[unlikely]] {
        const DropReason r = drop_for(st);
        return r == DropReason::not_for_us ? not_for_us(c_) : drop(c_, r);
    }
    const net::PacketView& v = f.view;
    if ((v.has_vlan ? (v.vlan_tci & 0x0FFF) : 0) != ctx_.ports[in_port].vlan) [[unlikely]]
        return drop(c_, DropReason::vlan_mismatch);
    if (kind != FrameKind::udp) [[unlikely]] {
        if (kind == FrameKind::arp) return neighbors_.answer_arp(f, snap, now_ms);
        if (kind == FrameKind::ndp) return neighbors_.answer_ndp(f, snap, now_ms);
        return icmp_.handle(f, snap, now_s, now_ms);
    }
    // UDP: to a VIP, from a backend, or neither.
    if (!snap) return not_for_us(c_);
    // Early TTL check: an expiring datagram is dropped before any work.
    if (v.ttl <= 1) return icmp_.ttl_expired(f, snap, now_ms);
    const bool v6 = v.ip_version == 6;
    using Key = balance::DataplaneSnapshot::EndpointKey;
    if (auto ref = snap->find_pool_by_vip(Key::from_wire(frame + v.dst_addr_offset(), v6, frame + v.l4_offset + 2));
        ref.pool)
        return to_backend_.forward(f, snap, ref, now_s, now_ms);
    if (auto ref = snap->find_backend(Key::from_wire(frame + v.src_addr_offset(), v6, frame + v.l4_offset));
        ref.pool && ref.snat_vip)
        return to_client_.forward(f, snap, ref, now_s, now_ms);
    return icmp_.unmatched_udp(f, snap, now_ms);
}

}  // namespace siplb::dataplane
