#include "neighbor_stage.h"

#include <cstring>

#include "siplb/net/arp.h"
#include "siplb/net/nat.h"
#include "siplb/net/ndp.h"

namespace siplb::dataplane {

net::NeighborTable::Learn NeighborStage::learn(const IpAddress& ip, const MacAddress& mac, uint16_t in_port,
                                               uint64_t now_ms) noexcept {
    auto r = ctx_.neighbors->learn(ip, mac, in_port, false, now_ms);
    if (r == net::NeighborTable::Learn::inserted || r == net::NeighborTable::Learn::updated) bump(c_.neighbors_learned);
    return r;
}

void NeighborStage::glean_slow(const uint8_t* frame, const net::PacketView& v, uint16_t in_port, uint64_t now_ms,
                               GleanEntry& g) noexcept {
    const bool v6 = v.ip_version == 6;
    const uint8_t* addr = frame + v.src_addr_offset();
    const auto [lo, hi] = address_words(addr, v6);
    uint64_t mac = 0;
    std::memcpy(&mac, frame + 6, 6);
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
    auto r = learn(src, m, in_port, now_ms);
    if (r != net::NeighborTable::Learn::busy && r != net::NeighborTable::Learn::full)
        g = GleanEntry{lo, hi, mac, now_ms + kGleanSkipMs, in_port, v6, false};
}

Action NeighborStage::answer_ndp(const Frame& f, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept {
    uint8_t* frame = f.data;
    const net::PacketView& v = f.view;
    const PortContext& port = ctx_.ports[f.in_port];
    auto m = net::parse_ndp(frame, v);
    if (!m) return not_for_us(c_);
    // Glean: a solicitation names its sender's MAC, an advertisement the target's.
    const IpAddress& learned_ip = m->type == net::kIcmpv6NeighborSolicitation ? m->source : m->target;
    static const IpAddress unspecified{IpAddress::Family::v6, {}};
    // An advertisement for one of our addresses (a conflict, or our own
    // unsolicited NA looped back) is not learned, as with ARP.
    if (m->link_addr && learned_ip != unspecified && !is_our_address(port, learned_ip, snap)) {
        auto on_link = ctx_.routes.on_link_port(learned_ip);
        if (on_link && *on_link == f.in_port) learn(learned_ip, *m->link_addr, f.in_port, now_ms);
    }
    if (m->type != net::kIcmpv6NeighborSolicitation || !is_our_address(port, m->target, snap)) return not_for_us(c_);
    const uint16_t reply_len = static_cast<uint16_t>(v.l3_offset + net::kIpv6HeaderLen + net::kNdpMessageLen);
    if (reply_len > f.len + f.tailroom) return drop(c_, DropReason::no_headroom);
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
    a.port = f.in_port;
    a.len = reply_len;
    return a;
}

Action NeighborStage::answer_arp(const Frame& f, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept {
    uint8_t* frame = f.data;
    const net::PacketView& v = f.view;
    const PortContext& port = ctx_.ports[f.in_port];
    auto arp = net::parse_arp(frame + v.l3_offset, f.len - v.l3_offset);
    if (!arp) return not_for_us(c_);
    IpAddress sender = IpAddress::from_v4_be(arp->sender_ip_be);
    // Someone claiming one of our addresses (a conflict, or our own
    // announcement looped back) is neither learned nor answered.
    if (arp->sender_ip_be != 0 && is_our_address(port, sender, snap)) return not_for_us(c_);
    auto on_link = ctx_.routes.on_link_port(sender);
    if (arp->sender_ip_be != 0 && on_link && *on_link == f.in_port) learn(sender, arp->sender_mac, f.in_port, now_ms);
    if (arp->op != net::kArpRequest) return not_for_us(c_);
    if (!is_our_address(port, IpAddress::from_v4_be(arp->target_ip_be), snap)) return not_for_us(c_);
    net::write_arp(frame + v.l3_offset, net::arp_reply_to(*arp, port.mac));
    // Reply on the same VLAN it was asked on.
    MacAddress to = arp->sender_mac;
    std::memcpy(frame, to.bytes.data(), 6);
    std::memcpy(frame + 6, port.mac.bytes.data(), 6);
    bump(c_.arp_replies);
    Action a;
    a.kind = Action::Kind::transmit;
    a.port = f.in_port;
    a.len = static_cast<uint16_t>(v.l3_offset + net::kArpLen);
    return a;
}

}  // namespace siplb::dataplane
