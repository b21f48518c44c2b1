// The DPDK dataplane: EAL, ports, mbuf pools and one poll-mode Worker per
// lcore that parses, balances and NAT-forwards SIP datagrams.
//
// Lifecycle (daemon): load config -> build the first DataplaneSnapshot and
// publish it -> Dataplane::create() -> start() -> control loop (publishes new
// snapshots, reads stats()) -> stop() -> destroy. One Dataplane per process
// (DPDK's EAL can be initialised once).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "siplb/balance/affinity.h"
#include "siplb/balance/snapshot.h"
#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"
#include "siplb/dataplane/spec.h"
#include "siplb/protect/spec.h"
#include "siplb/dataplane/edge_stats.h"

namespace siplb::dataplane {

struct PortStats {
    std::string name;          // PortConfig::name
    std::string device;        // PortConfig::device
    uint16_t port_id = 0;      // DPDK port id
    // Counted by the workers.
    uint64_t rx_packets = 0, rx_bytes = 0;
    uint64_t tx_packets = 0, tx_bytes = 0;
    uint64_t tx_dropped = 0;   // accepted for TX, refused by the queue (tx_full)
    // From rte_eth_stats_get() (the driver's view).
    uint64_t hw_ipackets = 0, hw_opackets = 0, hw_ibytes = 0, hw_obytes = 0;
    uint64_t hw_imissed = 0, hw_ierrors = 0, hw_oerrors = 0, hw_rx_nombuf = 0;
};

struct WorkerStats {
    unsigned lcore = 0;
    uint64_t rx_packets = 0, rx_bytes = 0;
    uint64_t tx_packets = 0, tx_bytes = 0;
    uint64_t dropped = 0;      // sum of all drop reasons on this worker
    uint64_t polls = 0;        // RX bursts attempted
    uint64_t busy_polls = 0;   // bursts that returned packets
    uint64_t loops = 0;        // main-loop iterations (heartbeat)
};

struct BackendStats {
    Endpoint address;
    uint32_t id = 0;              // balance::BackendEntry::id
    uint64_t packets = 0;         // client -> backend datagrams forwarded
    uint64_t bytes = 0;
    uint64_t calls = 0;           // dialog-creating requests (INVITE, SUBSCRIBE, ...) sent to it
    uint64_t reply_packets = 0;   // backend -> client datagrams forwarded (SNAT)
    uint64_t reply_bytes = 0;
};

struct PoolStats {
    std::string name;
    uint64_t packets = 0, bytes = 0;              // client -> VIP accepted and forwarded
    uint64_t reply_packets = 0, reply_bytes = 0;  // backend -> client forwarded
    uint64_t calls = 0;
    uint64_t keepalives = 0;                      // CRLF/STUN keepalives forwarded
    uint64_t rejected = 0;                        // SIP parser rejects for this pool's VIPs
    uint64_t no_backend = 0;
    std::vector<BackendStats> backends;           // the current snapshot's backends, in its order
};

struct DataplaneStats {
    uint64_t rx_packets = 0, rx_bytes = 0;
    uint64_t tx_packets = 0, tx_bytes = 0;
    uint64_t to_backend = 0;      // datagrams DNAT-forwarded
    uint64_t to_client = 0;       // datagrams SNAT-forwarded
    uint64_t dropped = 0;         // sum of `drops`
    uint64_t not_for_us = 0;      // frames ignored (also counted in drops as "not_for_us")
    // Every drop reason, in drop_reason_names() order, zeros included.
    std::vector<std::pair<std::string, uint64_t>> drops;
    std::vector<WorkerStats> workers;
    std::vector<PortStats> ports;
    std::vector<PoolStats> pools;  // pools of the current snapshot
    uint64_t snapshot_version = 0;
    uint64_t neighbors = 0;        // resolved neighbor entries
    uint64_t neighbors_learned = 0;  // entries inserted/updated by gleaning ARP and IP sources
    uint64_t arp_replies = 0;      // ARP requests for VIPs / port addresses answered
    uint64_t arp_requests = 0;     // ARP requests sent for unresolved next hops
    uint64_t nd_advertisements = 0;  // IPv6 neighbor solicitations for VIPs / port addresses answered
    uint64_t nd_solicitations = 0;   // IPv6 neighbor solicitations sent for unresolved next hops
    uint64_t affinity_evictions = 0;  // live affinity entries displaced (affinity table too small)
    uint64_t backend_dialogs = 0;  // dialogs started by backends (INVITE/SUBSCRIBE/REFER to clients), pinned
    // Datagrams from a backend that is in several pools whose call matched
    // none of them (no affinity entry, no table maps it there): sent from
    // the first pool's VIP.
    uint64_t shared_backend_first_pool = 0;
    EdgeStats edge;                // ICMP, IP fragments, kernel exception path
};

// Initialises DPDK's EAL once per process with these arguments (the program
// name is prepended). Dataplane::create() calls it; tests and benchmarks call
// it first when they need EAL objects (rings, ring ports) before the
// Dataplane. Later calls return ok without re-initialising.
Status init_eal(const std::vector<std::string>& eal_args);

class Dataplane {
public:
    // EAL init from config.dataplane.eal (program name added), vdev ports
    // created with rte_vdev_init(device, vdev_args) (PCI devices probed by
    // EAL), mbuf pool, port/queue setup, one Worker per worker lcore.
    // Fails with a clear message (which port, which limit) when something
    // does not fit. `publisher` and `affinity` must outlive the Dataplane.
    static Result<std::unique_ptr<Dataplane>> create(const DataplaneSpec& spec,
                                                     std::vector<protect::PoolProtectionSpec> protection,
                                                     balance::SnapshotPublisher& publisher,
                                                     balance::AffinityTable& affinity);

    // Starts the ports and launches the workers on their lcores.
    Status start();
    // Stops RX, lets workers flush their pending TX (drops counted), joins
    // them and stops/closes the ports. Idempotent; also run by the destructor.
    void stop();

    // Aggregates the per-lcore counters (relaxed reads, no locks on the
    // workers' side). Callable from any thread while running or stopped.
    DataplaneStats stats() const;
    // Names of the drop reasons, in the order of DataplaneStats::drops.
    std::vector<std::string> drop_reason_names() const;

    bool running() const noexcept;
    unsigned worker_count() const noexcept;
    // Each worker's main-loop iteration count, in worker order (cheap: one
    // relaxed load per worker; the control thread samples it as a heartbeat).
    std::vector<uint64_t> worker_loops() const;

    ~Dataplane();
    Dataplane(const Dataplane&) = delete;
    Dataplane& operator=(const Dataplane&) = delete;

    struct Impl;

private:
    explicit Dataplane(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace siplb::dataplane
