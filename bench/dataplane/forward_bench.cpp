// End-to-end throughput of one dataplane worker core, against a pure I/O
// loop (testpmd "io" forwarding: rx burst -> tx burst, no processing) on
// the same kind of ports, in the same run:
//
//   RX: net_pcap with infinite_rx=1 over a capture of a realistic SIP mix
//       (requests client -> VIP, responses backend -> client; ~800 bytes avg)
//   TX: net_null
//
// Cases: io baseline, dataplane with 2 backends, the same messages as SIP
// over TCP to a tcp:// VIP with 2 backends (512 established connections:
// data segments both ways, and each connection's SYN once per pass of the
// capture), dataplane with 1000 backends, and the edge configuration: 20
// backends with what an edge appliance runs (the 10 Hyperscan rules of
// bench/protect/edge_rules.toml, 6 on User-Agent and 4 on From, that the mix
// does not match; per-source and per-prefix rate limits no client reaches),
// next to the same 20 backends without protection. Prints Mpps per worker
// core, the ratio to an io loop run right before the case, and edge/plain,
// also per second of CPU time the worker thread got (a fairer figure on a
// loaded host).
// Then the cost of an active siplbctl capture: 2 backends without and with a
// capture filtering one Call-ID of the mix (drained every 50 ms as siplbctl
// does), four rounds, alternating which goes first.
// Usage: bench_dataplane_forward [seconds per case, default 3] [messages, default 4096] [edge|plain]
// ("edge" / "plain": only the 20-backend case with / without protection, e.g. under perf record).
#include <pcap/pcap.h>
#include <rte_bus_vdev.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "../protect/edge_config.h"
#include "mix_frames.h"
#include "siplb/config/config.h"
#include "siplb/balance/hash.h"
#include "siplb/balance/snapshot.h"
#include "siplb/dataplane/dataplane.h"
#include "siplb/net/checksum.h"
#include "siplb/protect/guard.h"
#include "siplb/sip/parser.h"

using namespace siplb;

namespace {

using bench::bench_backends;
using bench::kPeerMac;
using bench::kPortMac;

// Connections of the TCP case: ~8 messages each per pass of the 4096-message mix.
constexpr uint32_t kTcpConnections = 512;

size_t write_frames(const std::string& path, const std::vector<std::vector<uint8_t>>& frames) {
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
    pcap_dumper_t* d = pcap_dump_open(dead, path.c_str());
    size_t bytes = 0;
    for (const auto& f : frames) {
        pcap_pkthdr hdr{};
        hdr.caplen = hdr.len = static_cast<uint32_t>(f.size());
        pcap_dump(reinterpret_cast<u_char*>(d), &hdr, f.data());
        bytes += f.size();
    }
    pcap_dump_close(d);
    pcap_close(dead);
    return frames.empty() ? 0 : bytes / frames.size();
}

size_t write_mix(const std::string& path, size_t count, const balance::DataplaneSnapshot& snap) {
    return write_frames(path, bench::mix_frames(count, snap));
}

// ---- io baseline: rx burst from the pcap port, tx burst to the null port ----
std::atomic<bool> g_io_stop{false};
struct IoPorts {
    uint16_t rx, tx;
    uint64_t forwarded = 0;
};
int io_loop(void* arg) {
    auto* p = static_cast<IoPorts*>(arg);
    rte_mbuf* pkts[32];
    uint64_t fwd = 0;
    while (!g_io_stop.load(std::memory_order_relaxed)) {
        uint16_t n = rte_eth_rx_burst(p->rx, 0, pkts, 32);
        if (!n) continue;
        uint16_t s = rte_eth_tx_burst(p->tx, 0, pkts, n);
        if (s < n) rte_pktmbuf_free_bulk(pkts + s, n - s);
        fwd += s;
    }
    p->forwarded = fwd;
    return 0;
}

uint16_t setup_vdev(const std::string& name, const std::string& args, rte_mempool* pool) {
    if (rte_vdev_init(name.c_str(), args.c_str()) != 0) throw std::runtime_error("vdev " + name);
    uint16_t pid;
    rte_eth_dev_get_port_by_name(name.c_str(), &pid);
    rte_eth_conf conf{};
    if (rte_eth_dev_configure(pid, 1, 1, &conf) != 0 || rte_eth_rx_queue_setup(pid, 0, 1024, 0, nullptr, pool) != 0 ||
        rte_eth_tx_queue_setup(pid, 0, 1024, 0, nullptr) != 0 || rte_eth_dev_start(pid) != 0)
        throw std::runtime_error("port setup " + name);
    return pid;
}

double run_io(const std::string& pcap, double seconds) {
    rte_mempool* pool = rte_pktmbuf_pool_create("io_pool", 8192, 256, 0, 2176, 0);
    uint16_t rx = setup_vdev("net_pcap_io", "rx_pcap=" + pcap + ",infinite_rx=1", pool);
    uint16_t tx = setup_vdev("net_null_io", "", pool);
    IoPorts ports{rx, tx};
    g_io_stop = false;
    unsigned lcore = rte_get_next_lcore(-1, 1, 0);
    rte_eal_remote_launch(io_loop, &ports, lcore);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    g_io_stop = true;
    rte_eal_wait_lcore(lcore);
    for (uint16_t p : {rx, tx}) {
        rte_eth_dev_stop(p);
        rte_eth_dev_close(p);
    }
    rte_vdev_uninit("net_pcap_io");
    rte_vdev_uninit("net_null_io");
    rte_mempool_free(pool);
    return static_cast<double>(ports.forwarded) / seconds / 1e6;
}

struct DpResult {
    double mpps = 0;
    double cpu_mpps = 0;  // per second of CPU time the worker thread got
    uint64_t dropped = 0, to_backend = 0, to_client = 0;
};

// The Call-ID of the first SIP message in the mix.
std::string first_call_id(size_t count, const balance::DataplaneSnapshot& snap) {
    for (const auto& f : bench::mix_frames(count, snap)) {
        const std::string text(f.begin(), f.end());
        const size_t at = text.find("\r\nCall-ID: ");
        if (at == std::string::npos) continue;
        const size_t start = at + 11;
        return text.substr(start, text.find("\r\n", start) - start);
    }
    return {};
}

// CPU time (ns, from /proc/self/task/*/schedstat) of this process's DPDK
// worker threads. On a shared host a polling worker is descheduled for
// whole time slices, which wall-clock Mpps counts against it; packets per
// CPU second of the worker does not (cache pollution by neighbours remains).
uint64_t worker_cpu_ns() {
    uint64_t total = 0;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        std::string comm;
        if (FILE* f = std::fopen((task.path() / "comm").c_str(), "r")) {
            char buf[64] = {};
            if (std::fgets(buf, sizeof buf, f)) comm = buf;
            std::fclose(f);
        }
        if (comm.rfind("rte-worker", 0) != 0) continue;
        if (FILE* f = std::fopen((task.path() / "schedstat").c_str(), "r")) {
            unsigned long long ns = 0;
            if (std::fscanf(f, "%llu", &ns) == 1) total += ns;
            std::fclose(f);
        }
    }
    return total;
}

// `edge`: the edge protection; `capture`: a capture running while measured
// (nullptr: none); `tcp`: the pool listens on tcp://VIP (a capture of tcp_mix_frames).
DpResult run_dataplane(const std::string& pcap, size_t n_backends, double seconds, const std::string& tag,
                       bool edge = false, const dataplane::CaptureFilter* capture = nullptr, bool tcp = false) {
    auto bs = bench_backends(n_backends);
    config::Config cfg;
    auto& dc = cfg.dataplane;
    dc.workers = 1;
    dc.burst = 32;
    dc.mbufs = 8192;
    dc.rx_ring = 1024;
    dc.tx_ring = 1024;
    // The capture's SYNs come again on every pass (hundreds a second per
    // client): no per-source SYN rate, or most would be dropped.
    if (tcp) dc.syn_rate = 0;
    config::PortConfig in;
    in.name = "in";
    in.device = "net_pcap_" + tag;
    in.vdev_args = "rx_pcap=" + pcap + ",infinite_rx=1";
    in.addresses = {*Prefix::parse("198.51.100.1/24", true)};
    in.mac = kPortMac;
    config::PortConfig out;
    out.name = "out";
    out.device = "net_null_" + tag;
    out.rx_queues = 0;  // TX sink only: net_null RX would generate frames
    out.addresses = {*Prefix::parse("198.18.0.1/15", true), *Prefix::parse("203.0.113.1/24", true)};
    out.mac = kPortMac;
    dc.ports = {in, out};
    dc.routes = {{*Prefix::parse("192.0.2.0/24"), *IpAddress::parse("203.0.113.254"), ""}};
    dc.neighbors = {{*IpAddress::parse("203.0.113.254"), kPeerMac, "out"}};
    for (const auto& b : bs) dc.neighbors.push_back({b.ip, kPeerMac, "out"});

    balance::SnapshotPublisher publisher(
        bench::bench_snapshot(bs, tcp, edge ? bench::edge_protection("bench") : nullptr));
    auto affinity = balance::AffinityTable::create(1u << 18);
    auto dp = dataplane::Dataplane::create(cfg.dataplane, publisher, *affinity.value());
    if (!dp) throw std::runtime_error(dp.message());
    if (auto st = dp.value()->start(); !st) throw std::runtime_error(st.message());
    // Warm-up (affinity entries, caches), then measure a window.
    if (capture)
        if (auto st = dp.value()->start_capture(*capture, 1024); !st) throw std::runtime_error(st.message());
    uint64_t captured = 0;
    auto wait = [&](std::chrono::duration<double> d) {
        const auto until = std::chrono::steady_clock::now() + d;
        while (std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            if (capture) captured += dp.value()->drain_capture([](const dataplane::CaptureSlot&) {}, 4096);
        }
    };
    wait(std::chrono::milliseconds(300));
    auto s0 = dp.value()->stats();
    const uint64_t cpu0 = worker_cpu_ns();
    auto t0 = std::chrono::steady_clock::now();
    wait(std::chrono::duration<double>(seconds));
    auto s1 = dp.value()->stats();
    const uint64_t cpu1 = worker_cpu_ns();
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const uint64_t lost = capture ? dp.value()->stop_capture() : 0;
    dp.value()->stop();
    if (capture) std::printf("  capture: %lu frames copied, %lu lost\n", captured, lost);
    DpResult r;
    const auto after = s1.totals(), before = s0.totals();
    r.mpps = static_cast<double>(after.at("traffic", "tx_packets") - before.at("traffic", "tx_packets")) / dt / 1e6;
    if (cpu1 > cpu0)
        r.cpu_mpps = static_cast<double>(after.at("traffic", "tx_packets") - before.at("traffic", "tx_packets")) /
                     (static_cast<double>(cpu1 - cpu0) / 1e9) / 1e6;
    r.dropped = s1.dropped() - s0.dropped();
    r.to_backend = after.at("traffic", "to_backend") - before.at("traffic", "to_backend");
    r.to_client = after.at("traffic", "to_client") - before.at("traffic", "to_client");
    const auto schema = dataplane::counter_schema(dataplane::CounterScope::worker);
    for (size_t i = 0; i < schema.size(); ++i)
        if (std::string_view(schema[i].group) == "drops" && after.values[i] != before.values[i])
            std::printf("  drop %s: %lu\n", schema[i].name, after.values[i] - before.values[i]);
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
    size_t messages = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 4096;
    std::string prefix = "siplb_bench_" + std::to_string(getpid());
    auto st = dataplane::init_eal({"--no-huge", "-m", "1024", "--no-pci", "--no-shconf", "--file-prefix", prefix, "-l",
                                   "0,1", "--log-level=*:error", "--no-telemetry"});
    if (!st) {
        std::fprintf(stderr, "%s\n", st.message().c_str());
        return 1;
    }
    auto dir = std::filesystem::temp_directory_path() / prefix;
    std::filesystem::create_directories(dir);
    try {
        std::string pcap2 = (dir / "mix2.pcap").string(), pcap1000 = (dir / "mix1000.pcap").string();
        std::string pcap_tcp = (dir / "mix2_tcp.pcap").string();
        size_t avg = write_mix(pcap2, messages, *bench::bench_snapshot(bench_backends(2)));
        const size_t avg_tcp =
            write_frames(pcap_tcp, bench::tcp_mix_frames(messages, *bench::bench_snapshot(bench_backends(2), true),
                                                         kTcpConnections));
        write_mix(pcap1000, messages, *bench::bench_snapshot(bench_backends(1000)));
        std::printf(
            "mix: %zu messages, average frame %zu bytes (over TCP: %u connections, %zu bytes with the SYNs); %.1f s "
            "per case, 1 worker core\n",
            messages, avg, kTcpConnections, avg_tcp, seconds);
        if (argc > 3 && (std::string(argv[3]) == "edge" || std::string(argv[3]) == "plain")) {
            const bool protect = std::string(argv[3]) == "edge";
            std::string pcap20 = (dir / "mix20.pcap").string();
            write_mix(pcap20, messages, *bench::bench_snapshot(bench_backends(20)));
            auto r = run_dataplane(pcap20, 20, seconds, argv[3], protect);
            std::printf("%-28s %8.2f Mpps  (%.2f per worker CPU second; to_backend %lu, to_client %lu, dropped %lu)\n",
                        protect ? "siplb worker, 20, edge" : "siplb worker, 20 backends", r.mpps, r.cpu_mpps,
                        r.to_backend, r.to_client, r.dropped);
            std::filesystem::remove_all(dir);
            rte_eal_cleanup();
            return 0;
        }
        // The I/O loop runs again right before each worker case, and a
        // case's ratio is against that run: on a shared host the core's speed
        // drifts over the ~30 s of cases by more than the ratios differ.
        double io = run_io(pcap2, seconds);
        std::printf("%-28s %8.2f Mpps  ratio 1.00\n", "io forwarding (baseline)", io);
        auto io_ratio = [](double mpps, double io_mpps) { return io_mpps ? mpps / io_mpps : 0.0; };
        double plain2 = 0, plain2_cpu = 0;
        for (size_t n : {size_t{2}, size_t{1000}}) {
            const double io_n = n == 2 ? io : run_io(pcap2, seconds);
            auto r = run_dataplane(n == 2 ? pcap2 : pcap1000, n, seconds, std::to_string(n));
            if (n == 2) {
                plain2 = r.mpps;
                plain2_cpu = r.cpu_mpps;
            }
            std::printf(
                "%-28s %8.2f Mpps  ratio %.2f  (%.1f Gbit/s; to_backend %lu, to_client %lu, dropped %lu; I/O loop "
                "right before %.2f Mpps)\n",
                ("siplb worker, " + std::to_string(n) + " backends").c_str(), r.mpps, io_ratio(r.mpps, io_n),
                r.mpps * 1e6 * static_cast<double>(avg) * 8 / 1e9, r.to_backend, r.to_client, r.dropped, io_n);
            if (n != 2) continue;
            // The same messages over TCP, next to the UDP row. Per segment:
            // nanoseconds of worker CPU (RX and TX included), UDP's alongside.
            const double io_t = run_io(pcap2, seconds);
            auto t = run_dataplane(pcap_tcp, 2, seconds, "tcp", false, nullptr, true);
            std::printf(
                "%-28s %8.2f Mpps  ratio %.2f  (TCP/UDP %.2f; %.0f ns per segment, UDP %.0f ns per datagram, of "
                "worker CPU; to_backend %lu, to_client %lu, dropped %lu; I/O loop right before %.2f Mpps)\n",
                "siplb worker, TCP, 2 backends", t.mpps, io_ratio(t.mpps, io_t), r.mpps ? t.mpps / r.mpps : 0.0,
                t.cpu_mpps ? 1e3 / t.cpu_mpps : 0.0, r.cpu_mpps ? 1e3 / r.cpu_mpps : 0.0, t.to_backend, t.to_client,
                t.dropped, io_t);
        }
        // Edge: the same mix toward 20 backends, plain then protected.
        std::string pcap20 = (dir / "mix20.pcap").string();
        write_mix(pcap20, messages, *bench::bench_snapshot(bench_backends(20)));
        const double io_plain20 = run_io(pcap2, seconds);
        auto plain20 = run_dataplane(pcap20, 20, seconds, "20");
        const double io_edge = run_io(pcap2, seconds);
        auto edge = run_dataplane(pcap20, 20, seconds, "edge", true);
        for (const auto* r : {&plain20, &edge}) {
            const double io_r = r == &edge ? io_edge : io_plain20;
            std::printf(
                "%-28s %8.2f Mpps  ratio %.2f  (%.2f Mpps per worker CPU second; to_backend %lu, to_client %lu, "
                "dropped %lu; I/O loop right before %.2f Mpps)\n",
                r == &edge ? "siplb worker, 20, edge" : "siplb worker, 20 backends", r->mpps, io_ratio(r->mpps, io_r),
                r->cpu_mpps, r->to_backend, r->to_client, r->dropped, io_r);
        }
        std::printf(
            "edge/plain: %.2f against 20 backends plain, %.2f against 2 backends plain; per worker CPU second: "
            "%.2f against 20 backends plain, %.2f against 2 backends plain\n",
            plain20.mpps ? edge.mpps / plain20.mpps : 0.0, plain2 ? edge.mpps / plain2 : 0.0,
            plain20.cpu_mpps ? edge.cpu_mpps / plain20.cpu_mpps : 0.0, plain2_cpu ? edge.cpu_mpps / plain2_cpu : 0.0);
        // Cost of an active capture on the worker, same run, alternating.
        dataplane::CaptureFilter one_call;
        one_call.call_id = first_call_id(messages, *bench::bench_snapshot(bench_backends(2)));
        std::printf("capture filter: Call-ID %s\n", one_call.call_id.c_str());
        for (int round = 0; round < 4; ++round) {
            const std::string r = std::to_string(round);
            // Which goes first alternates: the host's load drifts within a pair too.
            DpResult off, on;
            if (round % 2 == 0) {
                off = run_dataplane(pcap2, 2, seconds, "cap_off" + r);
                on = run_dataplane(pcap2, 2, seconds, "cap_on" + r, false, &one_call);
            } else {
                on = run_dataplane(pcap2, 2, seconds, "cap_on" + r, false, &one_call);
                off = run_dataplane(pcap2, 2, seconds, "cap_off" + r);
            }
            std::printf("%-28s %8.2f Mpps  ratio %.2f\n", ("no capture, round " + r).c_str(), off.mpps,
                        io_ratio(off.mpps, io));
            std::printf("%-28s %8.2f Mpps  ratio %.2f  (capture/no capture %.3f)\n",
                        ("capture one Call-ID, round " + r).c_str(), on.mpps, io_ratio(on.mpps, io),
                        off.mpps ? on.mpps / off.mpps : 0.0);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench failed: %s\n", e.what());
        std::filesystem::remove_all(dir);
        return 1;
    }
    std::filesystem::remove_all(dir);
    rte_eal_cleanup();
    return 0;
}
