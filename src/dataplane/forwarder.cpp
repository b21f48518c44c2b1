#include "forwarder.h"

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

enum class FrameKind : uint8_t { udp, arp, ndp, icmp, tcp, other };

// The stage a frame goes to; `other`: malformed, or a protocol no stage speaks.
FrameKind classify(ParseStatus st, const uint8_t* frame, const net::PacketView& v) noexcept {
    if (st == ParseStatus::udp) [[likely]]
        return FrameKind::udp;
    if (st == ParseStatus::not_ip) return v.ethertype == net::kEtherTypeArp ? FrameKind::arp : FrameKind::other;
    if (st != ParseStatus::not_udp) return FrameKind::other;
    if (v.ip_proto == net::kIpProtoTcp) return FrameKind::tcp;
    if (IcmpStage::is_icmp(frame, v)) return FrameKind::icmp;
    if (v.ip_version == 6 && v.ip_proto == net::kIpProtoIcmpv6) return FrameKind::ndp;
    return FrameKind::other;
}

}  // namespace

void Forwarder::prepare(Prepared& p, uint8_t* frame, uint16_t len, uint16_t headroom, uint16_t tailroom,
                        uint16_t in_port, const balance::DataplaneSnapshot* snap, net::ParseOptions parse) noexcept {
    Frame& f = p.frame;
    f.data = frame;
    f.len = len;
    f.headroom = headroom;
    f.tailroom = tailroom;
    f.in_port = in_port;
    f.tap = tap_;
    p.route = Route::decided;
    const ParseStatus st = net::parse_frame(frame, len, f.view, parse);
    const FrameKind kind = classify(st, frame, f.view);
    if (kind == FrameKind::other) [[unlikely]] {
        const DropReason r = drop_for(st);
        p.decided = r == DropReason::not_for_us ? not_for_us(c_) : drop(c_, r);
        return;
    }
    const net::PacketView& v = f.view;
    if ((v.has_vlan ? (v.vlan_tci & 0x0FFF) : 0) != ctx_.ports[in_port].vlan) [[unlikely]] {
        p.decided = drop(c_, DropReason::vlan_mismatch);
        return;
    }
    if (kind != FrameKind::udp) [[unlikely]] {
        p.route = kind == FrameKind::arp   ? Route::arp
                  : kind == FrameKind::ndp ? Route::ndp
                  : kind == FrameKind::tcp ? Route::tcp
                                           : Route::icmp;
        p.verify_tcp_checksum = parse.verify_udp_checksum;
        return;
    }
    // UDP: to a VIP, from a backend, or neither.
    if (!snap) {
        p.decided = not_for_us(c_);
        return;
    }
    // Early TTL check: an expiring datagram is dropped before any work.
    if (v.ttl <= 1) {
        p.route = Route::ttl_expired;
        return;
    }
    const bool v6 = v.ip_version == 6;
    using Key = balance::DataplaneSnapshot::EndpointKey;
    // Member by member: GCC copies a whole PoolRef (13 bytes) as bytes 0-7
    // and 5-12 of a stack temporary, and store forwarding cannot serve the
    // second load, which spans both words just stored.
    const auto vip = snap->find_pool_by_vip(Key::from_wire(frame + v.dst_addr_offset(), v6, frame + v.l4_offset + 2));
    p.vip.pool = vip.pool;
    p.vip.pool_index = vip.pool_index;
    p.vip.vip = vip.vip;
    if (p.vip.pool) {
        p.route = Route::to_backend;
        to_backend_.prepare(f, snap, p.vip, p.to_backend);
        return;
    }
    p.backend = snap->find_backend(Key::from_wire(frame + v.src_addr_offset(), v6, frame + v.l4_offset));
    if (p.backend.pool && p.backend.snat_vip) {
        p.route = Route::to_client;
        return;
    }
    p.route = Route::unmatched_udp;
}

Action Forwarder::forward(Prepared& p, const balance::DataplaneSnapshot* snap, uint32_t now_s,
                          uint64_t now_ms) noexcept {
    const Frame& f = p.frame;
    switch (p.route) {
        case Route::to_backend: return to_backend_.forward(f, snap, p.vip, p.to_backend, now_s, now_ms);
        case Route::to_client: return to_client_.forward(f, snap, p.backend, now_s, now_ms);
        case Route::decided: return p.decided;
        case Route::arp: return neighbors_.answer_arp(f, snap, now_ms);
        case Route::ndp: return neighbors_.answer_ndp(f, snap, now_ms);
        case Route::icmp: return icmp_.handle(f, snap, now_s, now_ms);
        case Route::tcp: return tcp_.handle(p.frame, snap, now_s, now_ms, p.verify_tcp_checksum);
        case Route::ttl_expired: return icmp_.ttl_expired(f, snap, now_ms);
        case Route::unmatched_udp: return icmp_.unmatched_udp(f, snap, now_ms);
    }
    return p.decided;
}

}  // namespace siplb::dataplane
