// What every forwarding stage of every worker reads: the ports, routes and
// the shared neighbor and affinity tables, fixed when the dataplane starts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "siplb/balance/affinity.h"
#include "siplb/balance/client_vips.h"
#include "siplb/balance/connection_table.h"
#include "siplb/balance/snapshot.h"
#include "siplb/common/endpoint.h"
#include "siplb/net/neighbor_table.h"
#include "siplb/net/route_table.h"

namespace siplb::dataplane {

struct PortContext {
    std::string name;
    uint16_t dpdk_port = 0;
    MacAddress mac;
    uint16_t vlan = 0;              // 0 = untagged
    std::vector<Prefix> addresses;  // node addresses (answered for ARP)
    // First address of each family: source of ARP requests / neighbor
    // solicitations and of ipip tunnels.
    std::optional<IpAddress> source_v4, source_v6;
    uint16_t mtu = 1500;  // largest IP datagram sent; larger ones are fragmented or answered (DF)
};

// Shared by all workers, read-only while they run (the neighbor and
// affinity tables are internally synchronised).
struct ForwardContext {
    std::vector<PortContext> ports;
    net::RouteTable routes;
    net::NeighborTable* neighbors = nullptr;
    balance::AffinityTable* affinity = nullptr;
    // Client address:port -> the VIP it last sent to, for pools with several
    // VIPs of a family; nullptr: not kept (replies leave from the call's VIP
    // or the pool's first VIP of the family).
    balance::ClientVipTable* client_vips = nullptr;
    // SIP over TCP/TLS connections (shared by all workers); nullptr: TCP
    // segments to VIPs are balanced by the table alone.
    balance::ConnectionTable* connections = nullptr;
    uint32_t connection_source_cap = 0;          // entries per client address; 0 = no cap
    uint32_t syn_rate_per_s = 0, syn_burst = 0;  // per client address and worker; 0 = no limit
    bool verify_l4_checksums = false;  // dataplane.verify_l4_checksums: UDP/TCP checksums the NIC left unverified
    uint64_t arp_retry_ms = 1000;                // at most one ARP request per target per interval
    // ICMP errors generated per worker (time exceeded, port unreachable,
    // fragmentation needed): dataplane.icmp_error_rate / icmp_error_burst.
    uint32_t icmp_error_rate_per_s = 100, icmp_error_burst = 50;
};

// A VIP address of any pool (on any port).
inline bool is_vip_address(const IpAddress& a, const balance::DataplaneSnapshot* snap) noexcept {
    if (!snap) return false;
    for (const auto& pool : snap->pools()) {
        for (const auto& vip : pool->listen())
            if (vip.ip == a) return true;
        for (const auto& vip : pool->tcp_listen())
            if (vip.address.ip == a) return true;
    }
    return false;
}

// An address this node answers for on `port`: the port's own, or a VIP.
inline bool is_our_address(const PortContext& port, const IpAddress& a,
                           const balance::DataplaneSnapshot* snap) noexcept {
    for (const auto& p : port.addresses)
        if (p.ip == a) return true;
    return is_vip_address(a, snap);
}

// Slot hash of an address (as two words) for the per-worker caches; 24 bits.
inline uint32_t address_slot_hash(uint64_t lo, uint64_t hi) noexcept {
    return static_cast<uint32_t>(((lo ^ (hi * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull) >> 40);
}

}  // namespace siplb::dataplane
