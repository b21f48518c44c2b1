// Gratuitous ARP (RFC 5227 announcement) and unsolicited neighbor
// advertisements (RFC 4861 7.2.6) for the port addresses and the VIPs when
// the dataplane comes up and when a snapshot brings a VIP address not yet
// announced: upstream routers and switches learn (or move) the MAC at
// once instead of waiting for their next resolution. Worker 0 only.
#include "announcer.h"

#include <rte_mbuf.h>

#include <cstring>

#include "egress.h"
#include "siplb/net/arp.h"
#include "siplb/net/nat.h"
#include "siplb/net/ndp.h"

namespace siplb::dataplane {

void Announcer::announce(uint16_t port_index, const IpAddress& ip) noexcept {
    for (uint32_t i = 0; i < announced_count_; ++i)
        if (announced_[i] == ip) return;
    if (announced_count_ == kMaxAnnounced) return;  // later addresses are left to ordinary resolution
    announced_[announced_count_++] = ip;
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (!m) return;
    auto* buf = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, Egress::kResolutionFrameMax));
    if (!buf) {
        rte_pktmbuf_free(m);
        return;
    }
    const PortContext& p = ctx_.ports[port_index];
    const size_t l2 = net::ethernet_header_len(p.vlan);
    size_t end;
    if (ip.is_v4()) {
        static const MacAddress broadcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
        net::write_ethernet(buf, broadcast, p.mac, p.vlan, net::kEtherTypeArp);
        net::ArpMessage a;
        a.op = net::kArpRequest;  // RFC 5227 announcements are requests: every stack updates its cache
        a.sender_mac = p.mac;
        a.sender_ip_be = ip.v4_be();
        a.target_ip_be = ip.v4_be();
        net::write_arp(buf + l2, a);
        end = l2 + net::kArpLen;
        bump(c_.gratuitous_arps);
    } else {
        static const IpAddress all_nodes = *IpAddress::parse("ff02::1");
        net::write_ethernet(buf, net::ipv6_multicast_mac(all_nodes), p.mac, p.vlan, net::kEtherTypeIpv6);
        net::write_neighbor_advertisement(buf + l2, ip, all_nodes, p.mac, false);
        end = l2 + net::kIpv6HeaderLen + net::kNdpMessageLen;
        bump(c_.unsolicited_nas);
    }
    if (end < 60) {
        std::memset(buf + end, 0, 60 - end);
        end = 60;
    }
    rte_pktmbuf_trim(m, static_cast<uint16_t>(Egress::kResolutionFrameMax - end));
    tx_.enqueue(port_index, m);
}

void Announcer::announce_addresses(const balance::DataplaneSnapshot* snap) noexcept {
    if (!announced_start_) {
        for (uint16_t i = 0; i < ctx_.ports.size(); ++i)
            for (const auto& a : ctx_.ports[i].addresses) announce(i, a.ip);
        announced_start_ = true;
    }
    if (snap) {
        for (const auto& pool : snap->pools()) {
            for (const auto& vip : pool->listen())
                if (auto port = ctx_.routes.on_link_port(vip.ip)) announce(*port, vip.ip);
            for (const auto& vip : pool->tcp_listen())
                if (auto port = ctx_.routes.on_link_port(vip.address.ip)) announce(*port, vip.address.ip);
        }
        announced_version_ = snap->version();
    }
}

}  // namespace siplb::dataplane
