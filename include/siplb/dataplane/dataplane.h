// The DPDK dataplane: EAL, ports, mbuf pools and one poll-mode Worker per
// lcore that parses, balances and NAT-forwards SIP datagrams.
//
// Lifecycle (daemon): load config -> build the first DataplaneSnapshot and
// publish it -> Dataplane::create() -> start() -> control loop (publishes new
// snapshots, reads stats()) -> stop() -> destroy. One Dataplane per process
// (DPDK's EAL can be initialised once).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "siplb/balance/affinity.h"
#include "siplb/balance/connection_table.h"
#include "siplb/balance/snapshot.h"
#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"
#include "siplb/dataplane/capture.h"
#include "siplb/dataplane/spec.h"
#include "siplb/dataplane/stats.h"

namespace siplb::dataplane {

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
    static Result<std::unique_ptr<Dataplane>> create(const DataplaneSpec& spec, balance::SnapshotPublisher& publisher,
                                                     balance::AffinityTable& affinity);

    // Starts the ports and launches the workers on their lcores.
    Status start();
    // Stops RX, lets workers flush their pending TX (drops counted), joins
    // them and stops/closes the ports. Idempotent; also run by the destructor.
    void stop();

    // Aggregates the per-lcore counters (relaxed reads, no locks on the
    // workers' side). Callable from any thread while running or stopped.
    DataplaneStats stats() const;

    bool running() const noexcept;
    // The TCP/TLS connection table the workers share (siplbctl query reads it).
    const balance::ConnectionTable& connections() const noexcept;
    unsigned worker_count() const noexcept;
    // Each worker's main-loop iteration count, in worker order (cheap: one
    // relaxed load per worker; the control thread samples it as a heartbeat).
    std::vector<uint64_t> worker_loops() const;
    // Mbufs of the packet pools not free (in flight, in rings, in TX
    // buffers or held by the reassembler); per-lcore cached ones count as free.
    uint32_t mbufs_in_use() const noexcept;

    // siplbctl capture, one at a time: the workers copy the balanced
    // datagrams `filter` matches, as received and as sent, into a ring of
    // `ring_slots` CaptureSlots each (allocated here, freed by
    // stop_capture()). Control thread only.
    Status start_capture(const CaptureFilter& filter, uint32_t ring_slots);
    bool capturing() const noexcept;
    // Hands at most `max` captured frames to `fn`, oldest first per worker;
    // returns how many.
    size_t drain_capture(const std::function<void(const CaptureSlot&)>& fn, size_t max);
    // Ends the capture; the workers have stopped copying when it returns.
    // Returns the frames lost to full rings while it ran.
    uint64_t stop_capture();
    // The HEP mirror's queued datagrams ([mirror], spec.mirror): at most
    // `max` to `fn`; returns how many. Control side only.
    size_t drain_mirror(const std::function<void(const MirrorSlot&)>& fn, size_t max);

    ~Dataplane();
    Dataplane(const Dataplane&) = delete;
    Dataplane& operator=(const Dataplane&) = delete;

    struct Impl;

private:
    explicit Dataplane(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace siplb::dataplane
