#include "siplb/dataplane/dataplane.h"

#include <rte_bus_vdev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <mutex>

#include "counters.h"
#include "forwarder.h"
#include "kernel_path.h"
#include "siplb/balance/rcu.h"
#include "siplb/protect/guard.h"
#include "slot_ring.h"
#include "tap.h"
#include "worker.h"

namespace siplb::dataplane {

namespace {

std::mutex g_eal_mutex;
bool g_eal_ready = false;
unsigned g_instance = 0;

// Symmetric Toeplitz key (0x6d5a repeated): both directions of a flow hash
// to the same queue, so a client's requests and a backend's replies for it
// meet on one lcore where the port supports a programmable key.
uint8_t g_symmetric_rss_key[64] = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
};

std::string errstr(int err) { return rte_strerror(err < 0 ? -err : err); }

struct PortState {
    uint16_t dpdk_port = 0;
    bool created_here = false;  // vdev we created: closed and removed on stop
    bool started = false;
};

}  // namespace

Status init_eal(const std::vector<std::string>& eal_args) {
    std::lock_guard lock(g_eal_mutex);
    if (g_eal_ready) return ok_status();
    // EAL keeps pointers into argv: give it storage that lives as long as the process.
    static std::vector<std::string> storage;
    static std::vector<char*> argv;
    storage.clear();
    storage.push_back("siplb");
    storage.insert(storage.end(), eal_args.begin(), eal_args.end());
    argv.clear();
    for (auto& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    int rc = rte_eal_init(static_cast<int>(storage.size()), argv.data());
    if (rc < 0) {
        std::string joined;
        for (const auto& a : eal_args) joined += " " + a;
        return Status::fail("DPDK EAL initialisation failed (" + errstr(rte_errno) + ") with arguments:" + joined);
    }
    g_eal_ready = true;
    return ok_status();
}

struct Dataplane::Impl {
    DataplaneSpec spec;
    balance::SnapshotPublisher& publisher;
    balance::AffinityTable& affinity;
    std::unique_ptr<net::NeighborTable> neighbors;
    std::unique_ptr<balance::ClientVipTable> client_vips;
    std::unique_ptr<balance::ConnectionTable> connections;
    ForwardContext ctx;
    rte_mempool* pool = nullptr;
    rte_mempool* indirect_pool = nullptr;
    std::vector<std::pair<size_t, KernelTap>> taps;  // (port index, tap) for kernel_path ports
    std::vector<PortState> ports;
    std::vector<std::unique_ptr<WorkerCounters>> counters;
    std::vector<std::unique_ptr<Worker>> workers;
    // Taps (tap.h): the running capture, read by the workers once per burst;
    // the HEP mirror's selection and rings, fixed.
    std::atomic<CaptureSession*> capture{nullptr};
    uint64_t capture_lost_at_start = 0;
    MirrorSelect mirror_select;
    std::vector<std::unique_ptr<SlotRing<MirrorSlot>>> mirror_rings;
    balance::ReaderId stats_reader = 0;
    bool stats_reader_registered = false;
    mutable std::mutex stats_mutex;
    bool running = false;
    bool stopped = false;

    Impl(const DataplaneSpec& s, balance::SnapshotPublisher& p, balance::AffinityTable& a)
        : spec(s), publisher(p), affinity(a) {}

    Status setup();
    Status setup_port(size_t index);
    void release();
};

Status Dataplane::Impl::setup_port(size_t index) {
    const PortSpec& pc = spec.ports[index];
    const std::string label = "port '" + pc.name + "' (" + pc.device + ")";
    PortState st;
    uint16_t pid = 0;
    if (rte_eth_dev_get_port_by_name(pc.device.c_str(), &pid) == 0) {
        st.dpdk_port = pid;  // probed by EAL (PCI, --vdev) or created by the embedding program
    } else if (pc.device.rfind("net_", 0) == 0) {
        int rc = rte_vdev_init(pc.device.c_str(), pc.vdev_args.c_str());
        if (rc < 0)
            return Status::fail(label + ": cannot create virtual device with arguments '" + pc.vdev_args +
                                "': " + errstr(rc));
        if (rte_eth_dev_get_port_by_name(pc.device.c_str(), &pid) != 0)
            return Status::fail(label + ": virtual device created but no ethdev port appeared");
        st.dpdk_port = pid;
        st.created_here = true;
    } else {
        return Status::fail(label +
                            ": no such DPDK port (PCI devices must be bound to a DPDK driver and allowed "
                            "with -a in dataplane.eal)");
    }
    ports[index] = st;

    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(pid, &info); rc != 0) return Status::fail(label + ": " + errstr(rc));
    // rx_queues = 0 makes a TX-only port (e.g. net_null as a sink, whose RX
    // would otherwise generate frames).
    const uint16_t nb_rx = pc.rx_queues;
    const uint16_t nb_tx = static_cast<uint16_t>(spec.workers);
    if (nb_rx > info.max_rx_queues)
        return Status::fail(label + ": rx_queues = " + std::to_string(nb_rx) + " but the device supports " +
                            std::to_string(info.max_rx_queues));
    if (nb_tx > info.max_tx_queues)
        return Status::fail(label + ": every worker needs its own TX queue (" + std::to_string(nb_tx) +
                            " workers) but the device supports " + std::to_string(info.max_tx_queues) +
                            " TX queues; lower dataplane.workers or use a multi-queue device");

    rte_eth_conf conf{};
    if (nb_rx > 1 && info.flow_type_rss_offloads != 0) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        uint8_t key_len = info.hash_key_size ? info.hash_key_size : 40;
        if (key_len <= sizeof g_symmetric_rss_key) {
            conf.rx_adv_conf.rss_conf.rss_key = g_symmetric_rss_key;
            conf.rx_adv_conf.rss_conf.rss_key_len = key_len;
        }
        conf.rx_adv_conf.rss_conf.rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
    }
    // Checksum verification in the NIC where offered; software otherwise.
    conf.rxmode.offloads |= info.rx_offload_capa & (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
    if (int rc = rte_eth_dev_configure(pid, nb_rx, nb_tx, &conf); rc != 0)
        return Status::fail(label + ": configure with " + std::to_string(nb_rx) + " RX / " + std::to_string(nb_tx) +
                            " TX queues failed: " + errstr(rc));
    uint16_t rxd = static_cast<uint16_t>(spec.rx_ring), txd = static_cast<uint16_t>(spec.tx_ring);
    if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(pid, &rxd, &txd); rc != 0)
        return Status::fail(label + ": descriptor counts: " + errstr(rc));
    int socket = rte_eth_dev_socket_id(pid);
    if (socket < 0) socket = 0;
    for (uint16_t q = 0; q < nb_rx; ++q)
        if (int rc = rte_eth_rx_queue_setup(pid, q, rxd, static_cast<unsigned>(socket), nullptr, pool); rc != 0)
            return Status::fail(label + ": RX queue " + std::to_string(q) + " setup: " + errstr(rc));
    for (uint16_t q = 0; q < nb_tx; ++q)
        if (int rc = rte_eth_tx_queue_setup(pid, q, txd, static_cast<unsigned>(socket), nullptr); rc != 0)
            return Status::fail(label + ": TX queue " + std::to_string(q) + " setup: " + errstr(rc));
    if (pc.mtu != 1500) {
        int rc = rte_eth_dev_set_mtu(pid, pc.mtu);
        if (rc != 0 && rc != -ENOTSUP)
            return Status::fail(label + ": MTU " + std::to_string(pc.mtu) + ": " + errstr(rc));
    }

    PortContext& port = ctx.ports[index];
    port.name = pc.name;
    port.dpdk_port = pid;
    port.vlan = pc.vlan;
    port.addresses = pc.addresses;
    port.mtu = pc.mtu;
    for (const auto& a : pc.addresses) {
        auto& source = a.ip.is_v4() ? port.source_v4 : port.source_v6;
        if (!source) source = a.ip;
    }
    if (pc.mac) {
        port.mac = *pc.mac;
        rte_ether_addr addr;
        std::copy(pc.mac->bytes.begin(), pc.mac->bytes.end(), addr.addr_bytes);
        // Vdevs without a settable MAC still send with the configured one.
        (void)rte_eth_dev_default_mac_addr_set(pid, &addr);
    } else {
        rte_ether_addr addr{};
        if (int rc = rte_eth_macaddr_get(pid, &addr); rc != 0) return Status::fail(label + ": MAC: " + errstr(rc));
        std::copy(addr.addr_bytes, addr.addr_bytes + 6, port.mac.bytes.begin());
    }
    return ok_status();
}

Status Dataplane::Impl::setup() {
    const auto& dc = spec;
    if (dc.ports.empty()) return Status::fail("dataplane: no [[dataplane.port]] configured");
    if (dc.ports.size() > kMaxPorts)
        return Status::fail("dataplane: at most " + std::to_string(kMaxPorts) + " ports are supported");
    if (dc.workers == 0) return Status::fail("dataplane.workers must be at least 1");
    if (dc.burst == 0 || dc.burst > kMaxBurst)
        return Status::fail("dataplane.burst must be in 1.." + std::to_string(kMaxBurst));
    if (auto st = init_eal(dc.eal); !st) return st;

    std::vector<unsigned> lcores;
    unsigned lcore;
    RTE_LCORE_FOREACH_WORKER(lcore) lcores.push_back(lcore);
    if (lcores.size() < dc.workers)
        return Status::fail("dataplane.workers = " + std::to_string(dc.workers) + " but EAL has only " +
                            std::to_string(lcores.size()) +
                            " worker lcores (the first lcore of -l runs the control thread)");

    // Every descriptor can hold an mbuf, plus what is in flight in bursts,
    // TX buffers and the per-lcore mempool caches.
    uint64_t needed = 0;
    for (const auto& p : dc.ports) needed += uint64_t{p.rx_queues} * dc.rx_ring + uint64_t{dc.workers} * dc.tx_ring;
    needed += uint64_t{dc.workers} * dc.burst * (dc.ports.size() + 1);
    needed += uint64_t{dc.mbuf_cache} * (dc.workers + 1);
    if (dc.mbufs < needed)
        return Status::fail("dataplane.mbufs = " + std::to_string(dc.mbufs) +
                            " is too small: " + std::to_string(needed) +
                            " needed for the RX/TX descriptor rings, bursts in flight and per-lcore caches "
                            "(lower rx_ring/tx_ring/mbuf_cache or raise mbufs)");
    std::string pool_name = "siplb_mbuf_" + std::to_string(g_instance++);
    pool = rte_pktmbuf_pool_create(pool_name.c_str(), dc.mbufs, dc.mbuf_cache, 0, static_cast<uint16_t>(dc.mbuf_size),
                                   static_cast<int>(rte_socket_id()));
    if (!pool)
        return Status::fail("cannot allocate " + std::to_string(dc.mbufs) + " mbufs of " +
                            std::to_string(dc.mbuf_size) + " bytes (~" +
                            std::to_string(uint64_t{dc.mbufs} * (dc.mbuf_size + 192) >> 20) +
                            " MiB) from DPDK memory: " + errstr(rte_errno) +
                            " (raise -m / hugepages in dataplane.eal or lower dataplane.mbufs)");

    ctx.ports.resize(dc.ports.size());
    ctx.icmp_error_rate_per_s = dc.icmp_error_rate;
    ctx.icmp_error_burst = dc.icmp_error_rate ? dc.icmp_error_burst : 0;  // rate 0: none at all
    ports.resize(dc.ports.size());
    for (size_t i = 0; i < dc.ports.size(); ++i)
        if (auto st = setup_port(i); !st) return st;

    std::vector<net::RouteTable::PortPrefixes> prefixes;
    for (const auto& p : dc.ports) prefixes.push_back({p.name, p.addresses});
    std::vector<net::RouteTable::StaticRoute> routes;
    for (const auto& r : dc.routes) routes.push_back({r.prefix, r.via, r.port});
    auto table = net::RouteTable::build(prefixes, routes);
    if (!table) return Status::fail("dataplane routes: " + table.message());
    ctx.routes = std::move(table.value());

    neighbors = std::make_unique<net::NeighborTable>(4096, uint64_t{dc.neighbor_reachable_s} * 1000);
    for (const auto& n : dc.neighbors) {
        uint16_t port_index = 0;
        bool found = false;
        for (size_t i = 0; i < dc.ports.size(); ++i)
            if (dc.ports[i].name == n.port) port_index = static_cast<uint16_t>(i), found = true;
        if (!found) {
            auto on_link = ctx.routes.on_link_port(n.ip);
            if (!on_link)
                return Status::fail("dataplane neighbor " + n.ip.to_string() + ": no port given and not on-link");
            port_index = *on_link;
        }
        if (neighbors->learn(n.ip, n.mac, port_index, true) == net::NeighborTable::Learn::full)
            return Status::fail("dataplane neighbor table full");
    }
    ctx.neighbors = neighbors.get();
    ctx.affinity = &affinity;
    auto vips = balance::ClientVipTable::create(dc.client_vip_capacity);
    if (!vips) return Status::fail("dataplane.client_vip_capacity: " + vips.message());
    client_vips = std::move(vips).value();
    ctx.client_vips = client_vips.get();
    // Per-source counters: a quarter of the entries (at least 1024), so
    // that distinct sources rarely share one.
    auto conns =
        balance::ConnectionTable::create(dc.connection_capacity, std::max<uint32_t>(1024, dc.connection_capacity / 4));
    if (!conns) return Status::fail("dataplane.connection_capacity: " + conns.message());
    connections = std::move(conns).value();
    ctx.connections = connections.get();
    ctx.connection_source_cap = dc.connection_source_cap;
    ctx.syn_rate_per_s = dc.syn_rate;
    ctx.syn_burst = dc.syn_burst;
    ctx.verify_l4_checksums = dc.verify_l4_checksums;

    auto sr = publisher.register_reader();
    if (!sr) return Status::fail("dataplane: " + sr.message());
    stats_reader = sr.value();
    stats_reader_registered = true;
    publisher.offline(stats_reader);

    mirror_select = MirrorSelect::from(dc.mirror, dc.workers);
    for (unsigned w = 0; w < dc.workers; ++w) {
        auto reader = publisher.register_reader();
        if (!reader) return Status::fail("dataplane worker " + std::to_string(w) + ": " + reader.message());
        publisher.offline(reader.value());
        counters.push_back(std::make_unique<WorkerCounters>());
        workers.push_back(
            std::make_unique<Worker>(w, lcores[w], ctx, publisher, reader.value(), pool, dc.burst, *counters.back()));
        workers.back()->set_announce(dc.announce);
        workers.back()->tap().attach_capture(&capture);
        if (dc.mirror.enabled()) {
            mirror_rings.push_back(std::make_unique<SlotRing<MirrorSlot>>(dc.mirror.ring));
            workers.back()->tap().attach_mirror(&mirror_select, mirror_rings.back().get());
        }
        // Egress fragmentation (datagrams above a port's MTU) is always on;
        // reassembly only with a table.
        if (!indirect_pool) {
            std::string name = "siplb_indirect_" + std::to_string(g_instance - 1);
            indirect_pool =
                rte_pktmbuf_pool_create(name.c_str(), 1024 * dc.workers, 32, 0, 0, static_cast<int>(rte_socket_id()));
            if (!indirect_pool)
                return Status::fail("cannot allocate the indirect mbuf pool for IP fragmentation: " +
                                    errstr(rte_errno));
        }
        workers.back()->set_fragment_pool(indirect_pool);
        if (dc.frag_max_flows > 0) {
            if (auto st = workers.back()->enable_fragments(dc.frag_max_flows, dc.frag_timeout_ms); !st) return st;
        }
    }
    // Spread every (port, RX queue) over the workers round-robin.
    size_t next = 0;
    for (size_t i = 0; i < dc.ports.size(); ++i)
        for (uint16_t q = 0; q < dc.ports[i].rx_queues; ++q)
            workers[next++ % workers.size()]->add_rx_queue({static_cast<uint16_t>(i), q});
    // Kernel exception path: a tap per port that asks for one; the worker
    // that polls the port's queue 0 also polls the tap.
    for (size_t i = 0; i < dc.ports.size(); ++i) {
        if (!dc.ports[i].kernel_path) continue;
        auto tap = create_kernel_tap(dc.ports[i].name, ctx.ports[i].mac, static_cast<uint16_t>(dc.workers), pool,
                                     static_cast<uint16_t>(dc.rx_ring));
        if (!tap) return Status::fail(tap.message());
        taps.emplace_back(i, tap.value());
        for (size_t w = 0; w < workers.size(); ++w) {
            bool poll = dc.ports[i].rx_queues == 0 && w == 0;
            for (const auto& q : workers[w]->rx_queues()) poll |= q.port_index == i && q.queue == 0;
            workers[w]->set_kernel_tap(static_cast<uint16_t>(i), tap.value().dpdk_port, poll);
        }
    }
    return ok_status();
}

void Dataplane::Impl::release() {
    for (const auto& [index, tap] : taps) destroy_kernel_tap(tap);
    taps.clear();
    for (auto& p : ports) {
        if (p.started) rte_eth_dev_stop(p.dpdk_port);
        p.started = false;
    }
    for (size_t i = 0; i < ports.size(); ++i) {
        if (!ports[i].created_here) continue;
        rte_eth_dev_close(ports[i].dpdk_port);
        rte_vdev_uninit(spec.ports[i].device.c_str());
        ports[i].created_here = false;
    }
}

Dataplane::Dataplane(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Dataplane::~Dataplane() {
    stop();
    delete impl_->capture.exchange(nullptr);  // the workers are gone
    for (auto& w : impl_->workers) impl_->publisher.unregister_reader(w->reader());
    if (impl_->stats_reader_registered) impl_->publisher.unregister_reader(impl_->stats_reader);
    impl_->workers.clear();
    if (impl_->pool) rte_mempool_free(impl_->pool);
    if (impl_->indirect_pool) rte_mempool_free(impl_->indirect_pool);
}

Result<std::unique_ptr<Dataplane>> Dataplane::create(const DataplaneSpec& spec, balance::SnapshotPublisher& publisher,
                                                     balance::AffinityTable& affinity) {
    auto impl = std::make_unique<Impl>(spec, publisher, affinity);
    Status st = impl->setup();
    std::unique_ptr<Dataplane> dp(new Dataplane(std::move(impl)));
    if (!st) return Result<std::unique_ptr<Dataplane>>::fail(st.message());  // dp's destructor releases
    return dp;
}

Status Dataplane::start() {
    Impl& d = *impl_;
    if (d.running) return ok_status();
    if (d.stopped) return Status::fail("dataplane: already stopped; create a new one");
    for (size_t i = 0; i < d.ports.size(); ++i) {
        int rc = rte_eth_dev_start(d.ports[i].dpdk_port);
        if (rc != 0) {
            d.release();
            return Status::fail("port '" + d.spec.ports[i].name + "': start failed: " + errstr(rc));
        }
        d.ports[i].started = true;
    }
    for (const auto& [index, tap] : d.taps) {
        int rc = rte_eth_dev_start(tap.dpdk_port);
        Status st = rc == 0 ? mirror_addresses(tap, d.spec.ports[index].addresses)
                            : Status::fail("kernel path " + tap.iface + ": start failed: " + errstr(rc));
        if (!st) {
            d.release();
            return st;
        }
    }
    for (auto& w : d.workers) {
        int rc = rte_eal_remote_launch(&Worker::launch, w.get(), w->lcore());
        if (rc != 0) {
            for (auto& other : d.workers) other->request_stop();
            rte_eal_mp_wait_lcore();
            d.release();
            return Status::fail("cannot launch worker on lcore " + std::to_string(w->lcore()) + ": " + errstr(rc));
        }
    }
    d.running = true;
    return ok_status();
}

void Dataplane::stop() {
    Impl& d = *impl_;
    if (d.running) {
        for (auto& w : d.workers) w->request_stop();
        for (auto& w : d.workers) rte_eal_wait_lcore(w->lcore());
        d.running = false;
    }
    d.stopped = true;
    d.release();
}

bool Dataplane::running() const noexcept { return impl_->running; }
const balance::ConnectionTable& Dataplane::connections() const noexcept { return *impl_->connections; }
unsigned Dataplane::worker_count() const noexcept { return static_cast<unsigned>(impl_->workers.size()); }

std::vector<uint64_t> Dataplane::worker_loops() const {
    std::vector<uint64_t> loops;
    for (const auto& c : impl_->counters) loops.push_back(read(c->loops));
    return loops;
}

namespace {

// Takes up to `max` slots from the workers' rings, one ring after the other
// in turn, so that one busy worker does not starve the others' rings.
template <typename Slot>
size_t drain_round_robin(std::vector<std::unique_ptr<SlotRing<Slot>>>& rings,
                         const std::function<void(const Slot&)>& fn, size_t max) {
    size_t n = 0;
    for (bool more = true; more && n < max;) {
        more = false;
        for (auto& ring : rings) {
            if (n >= max) break;
            const Slot* slot = ring->front();
            if (!slot) continue;
            fn(*slot);
            ring->pop();
            ++n;
            more = true;
        }
    }
    return n;
}

uint64_t capture_lost_total(const std::vector<std::unique_ptr<WorkerCounters>>& counters) noexcept {
    uint64_t n = 0;
    for (const auto& c : counters) n += read(c->capture_ring_full);
    return n;
}

}  // namespace

Status Dataplane::start_capture(const CaptureFilter& filter, uint32_t ring_slots) {
    Impl& d = *impl_;
    if (d.capture.load(std::memory_order_relaxed)) return Status::fail("a capture is already running");
    auto session = std::make_unique<CaptureSession>();
    session->filter = filter;
    for (size_t w = 0; w < d.workers.size(); ++w)
        session->rings.push_back(std::make_unique<SlotRing<CaptureSlot>>(ring_slots));
    d.capture_lost_at_start = capture_lost_total(d.counters);
    d.capture.store(session.release(), std::memory_order_release);
    return ok_status();
}

bool Dataplane::capturing() const noexcept { return impl_->capture.load(std::memory_order_relaxed) != nullptr; }

size_t Dataplane::drain_capture(const std::function<void(const CaptureSlot&)>& fn, size_t max) {
    CaptureSession* s = impl_->capture.load(std::memory_order_relaxed);
    return s ? drain_round_robin(s->rings, fn, max) : 0;
}

uint64_t Dataplane::stop_capture() {
    Impl& d = *impl_;
    CaptureSession* s = d.capture.exchange(nullptr, std::memory_order_acq_rel);
    if (!s) return 0;
    // Grace period: every worker has finished the burst that may still use it.
    balance::QsbrDomain& domain = d.publisher.domain();
    const uint64_t token = domain.start_grace_period();
    for (unsigned attempt = 0; !domain.passed(token); ++attempt) balance::qsbr_backoff(attempt);
    delete s;
    return capture_lost_total(d.counters) - d.capture_lost_at_start;
}

size_t Dataplane::drain_mirror(const std::function<void(const MirrorSlot&)>& fn, size_t max) {
    return drain_round_robin(impl_->mirror_rings, fn, max);
}

uint32_t Dataplane::mbufs_in_use() const noexcept {
    uint32_t n = 0;
    if (impl_->pool) n += rte_mempool_in_use_count(impl_->pool);
    if (impl_->indirect_pool) n += rte_mempool_in_use_count(impl_->indirect_pool);
    return n;
}

DataplaneStats Dataplane::stats() const {
    const Impl& d = *impl_;
    std::lock_guard lock(d.stats_mutex);
    DataplaneStats s;
    for (size_t w = 0; w < d.workers.size(); ++w) {
        DataplaneStats::Worker ws;
        ws.index = static_cast<unsigned>(w);
        ws.lcore = d.workers[w]->lcore();
        add_worker_counters(*d.counters[w], ws.values);
        s.workers.push_back(std::move(ws));
    }
    for (size_t p = 0; p < d.ctx.ports.size(); ++p) {
        DataplaneStats::Port ps;
        ps.name = d.spec.ports[p].name;
        ps.device = d.spec.ports[p].device;
        for (const auto& c : d.counters) add_port_counters(c->ports[p], ps.values);
        rte_eth_stats hw{};
        if (rte_eth_stats_get(d.ctx.ports[p].dpdk_port, &hw) == 0) {
            // The driver's counters follow the lcore-counted ones (schema order).
            size_t i = ps.values.size() - kPortDriverCounters;
#define SIPLB_DRIVER_FILL(member, group, name, kind, help) ps.values[i++] = hw.member;
            SIPLB_PORT_DRIVER_COUNTERS(SIPLB_DRIVER_FILL)
#undef SIPLB_DRIVER_FILL
        }
        s.ports.push_back(std::move(ps));
    }
    s.neighbors = d.neighbors ? d.neighbors->size() : 0;

    if (!d.stats_reader_registered) return s;
    d.publisher.online(d.stats_reader);
    if (const balance::DataplaneSnapshot* snap = d.publisher.current()) {
        s.snapshot_version = snap->version();
        for (const auto& pool : snap->pools()) {
            const uint32_t slot = pool->counter_slot();
            DataplaneStats::Pool ps;
            ps.name = pool->name();
            if (slot < kMaxPools)
                for (const auto& c : d.counters) add_pool_counters(c->pools[slot], ps.values);
            s.pools.push_back(std::move(ps));
            for (const auto& b : pool->backends()) {
                DataplaneStats::Backend bs;
                bs.pool = pool->name();
                bs.address = b.address;
                for (const auto& c : d.counters)
                    if (const BackendCounters* bc = c->find_backend(slot, b.id)) add_backend_counters(*bc, bs.values);
                s.backends.push_back(std::move(bs));
            }
            if (!pool->protection()) continue;
            const auto rules = pool->protection()->rules()->rules();
            for (uint32_t r = 0; r < rules.size(); ++r) {
                DataplaneStats::Rule rs;
                rs.pool = pool->name();
                rs.name = rules[r].name;
                rs.action = protect::to_string(rules[r].action);
                const uint32_t rule_slot = pool->rule_counter_slot(r);
                if (rule_slot < kRuleCounterSlots)
                    for (const auto& c : d.counters) add_rule_counters(c->rules[rule_slot], rs.values);
                s.rules.push_back(std::move(rs));
            }
        }
    }
    d.publisher.offline(d.stats_reader);
    return s;
}

}  // namespace siplb::dataplane
