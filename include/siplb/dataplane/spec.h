// What the dataplane is built from, as plain values: EAL arguments, ports,
// routes, static neighbors and the sizes of its pools and tables. The config
// loader fills a DataplaneSpec from [dataplane]; Dataplane::create() takes it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "siplb/common/endpoint.h"
#include "siplb/dataplane/capture.h"

namespace siplb::dataplane {

// A DPDK port the dataplane owns.
struct PortSpec {
    std::string name;               // operator's name: "ext", "int"
    std::string device;             // PCI address or vdev name ("net_af_packet0")
    std::string vdev_args;          // vdev arguments: "iface=veth0,qpairs=1"; empty for PCI
    std::vector<Prefix> addresses;  // node addresses with prefix ("198.51.100.1/24")
    std::optional<MacAddress> mac;  // override the port's MAC
    uint16_t vlan = 0;              // 802.1Q VLAN id, 0 = untagged
    uint16_t mtu = 1500;
    uint16_t rx_queues = 1;
    uint16_t tx_queues = 1;
    bool kernel_path = false;  // create a TAP exception interface mirroring this port

    bool operator==(const PortSpec&) const = default;
};

struct RouteSpec {
    Prefix prefix;  // "0.0.0.0/0" for the default route
    IpAddress via;
    std::string port;  // optional: PortSpec::name; empty = derived from via

    bool operator==(const RouteSpec&) const = default;
};

struct NeighborSpec {
    IpAddress ip;
    MacAddress mac;
    std::string port;

    bool operator==(const NeighborSpec&) const = default;
};

struct DataplaneSpec {
    std::vector<std::string> eal;  // EAL arguments
    uint32_t workers = 1;          // worker lcores
    uint32_t burst = 32;           // RX/TX burst size (1..256)
    uint32_t mbufs = 8192;         // mbufs per pool (per socket)
    uint32_t mbuf_cache = 256;
    uint32_t mbuf_size = 2176;  // data room incl. headroom
    uint32_t rx_ring = 1024;    // descriptors
    uint32_t tx_ring = 1024;
    uint32_t affinity_capacity = 1u << 20;  // dialog affinity entries (power of two)
    // Client address:port -> last VIP entries (power of two), for pools with
    // several VIPs of a family (balance/client_vips.h).
    uint32_t client_vip_capacity = 1u << 18;
    // SIP over TCP/TLS: connection entries (power of two, 32 bytes each),
    // the most one client address may hold (0 = no cap), and new
    // connections (SYNs) one client address may open per second, with a
    // burst, per worker (0 = no limit).
    uint32_t connection_capacity = 1u << 18;
    uint32_t connection_source_cap = 256;
    uint32_t syn_rate = 50;
    uint32_t syn_burst = 100;
    std::vector<PortSpec> ports;          // [[dataplane.port]]
    std::vector<RouteSpec> routes;        // [[dataplane.route]]
    std::vector<NeighborSpec> neighbors;  // [[dataplane.neighbor]]
    uint32_t frag_max_flows = 4096;       // IP reassembly table size
    uint32_t frag_timeout_ms = 2000;
    bool announce = true;                 // gratuitous ARP / unsolicited NA for port addresses and VIPs
    uint32_t neighbor_reachable_s = 300;  // learned neighbors: stale after, dropped after 4x unconfirmed
    // ICMP errors siplb generates (time exceeded, port unreachable,
    // fragmentation needed), per worker: a token bucket of this rate per
    // second and this burst. 0 sends none.
    uint32_t icmp_error_rate = 100;
    uint32_t icmp_error_burst = 50;
    // UDP and TCP checksums the NIC has not verified (software ports:
    // af_packet, af_xdp, pcap, tap, ring) are checked by the workers only
    // when this is set. Forwarding rewrites them incrementally (RFC 1624),
    // which keeps a corrupted segment corrupted for its receiver to drop,
    // so the check only moves that drop here, at a cost of roughly a tenth
    // of a worker core on SIP-sized datagrams. A NIC's BAD verdict always
    // drops.
    bool verify_l4_checksums = false;
    MirrorSpec mirror;  // [mirror]: HEP mirroring of balanced SIP datagrams

    bool operator==(const DataplaneSpec&) const = default;
};

}  // namespace siplb::dataplane
