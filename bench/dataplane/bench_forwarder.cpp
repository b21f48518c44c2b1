// Per-frame cost of the worker's decision core (Forwarder::process: L2-L4
// parse, SIP parse, pick with affinity, DNAT or
// SNAT, route, neighbor, Ethernet rewrite), without DPDK, on the realistic
// mix. Read as ratios against the baselines of the same run:
//   BM_CopyOnly        copying the frame into the work buffer (every case pays it)
//   BM_ParseL2L4       copy + Ethernet/IP/UDP parse with full checksum verification
//   BM_SipParse/H      copy of the SIP payload + its parse (balancer depth), datagrams to the VIP only;
//                      H=0 every header checked, H=1 only those the pool's balancing reads (the worker's)
//   BM_Prepare/N       copy + Forwarder::prepare (L2-L4 parse, pool/backend lookup, SIP parse,
//                      balancing key) and the prefetches of its lines: the worker's first pass
//   BM_Forward/N       copy + the whole Forwarder::process, N backends, frame by frame
//   BM_ForwardFrames/N bursts of 32 frames, copied and process()ed frame by frame (the old loop)
//   BM_ForwardBurst/N  the worker's loop: copy a burst of 32, prepare all, then forward all
//                      (both report median and p10 TSC cycles per frame over the bursts)
//   BM_ForwardBurstEdge/20 the loop with the edge protection (10 rules, rate limits), next to BM_ForwardBurst/20
//   BM_ForwardBurstTcp/N  the same loop over the same messages as SIP over TCP: data segments
//                      of 512 connections to a tcp:// VIP and replies, with their SYNs (the
//                      connection table in use); read next to BM_ForwardBurst/N: ns per segment
// Per frame: L2-L4 = ParseL2L4 - CopyOnly, first pass = Prepare - CopyOnly,
// second pass (pick, protect, rewrite, egress, counters) = Forward - Prepare.
// The Forwarder parses as the daemon does by default, with UDP checksums
// left to the receiver (dataplane.verify_l4_checksums = false); BM_ParseL2L4
// shows what verifying them costs.
#include <benchmark/benchmark.h>

#include <x86intrin.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "../../src/dataplane/forwarder.h"
#include "../protect/edge_config.h"
#include "mix_frames.h"

using namespace siplb;

namespace {

constexpr size_t kMessages = 4096;
constexpr uint32_t kTcpConnections = 512;

// dataplane.verify_l4_checksums = false (the default), on a port without checksum offload.
constexpr net::ParseOptions kDaemonParse{.verify_ip_checksum = true, .verify_udp_checksum = false};

struct Fixture {
    std::unique_ptr<const balance::DataplaneSnapshot> snap;
    std::vector<std::vector<uint8_t>> frames;
    net::NeighborTable neighbors{4096};
    std::unique_ptr<balance::AffinityTable> affinity;
    dataplane::ForwardContext ctx;
    std::unique_ptr<dataplane::WorkerCounters> counters = std::make_unique<dataplane::WorkerCounters>();

    std::unique_ptr<balance::ConnectionTable> connections;

    // `tcp`: the messages over TCP connections to tcp://VIP (bench::tcp_mix_frames);
    // `edge`: the pool has the edge protection (../protect/edge_config.h).
    explicit Fixture(size_t n_backends, bool tcp = false, bool edge = false) {
        auto bs = bench::bench_backends(n_backends);
        snap = bench::bench_snapshot(bs, tcp, edge ? bench::edge_protection("bench") : nullptr);
        frames = tcp ? bench::tcp_mix_frames(kMessages, *snap, kTcpConnections) : bench::mix_frames(kMessages, *snap);
        frames.resize(std::bit_floor(frames.size()));  // the loops index with a mask
        affinity = std::move(balance::AffinityTable::create(1u << 18).value());
        connections = std::move(balance::ConnectionTable::create(1u << 18, 1u << 16).value());
        dataplane::PortContext in, out;
        in.name = "in";
        in.mac = bench::kPortMac;
        in.addresses = {*Prefix::parse("198.51.100.1/24", true)};
        out.name = "out";
        out.mac = bench::kPortMac;
        out.addresses = {*Prefix::parse("198.18.0.1/15", true), *Prefix::parse("203.0.113.1/24", true)};
        out.source_v4 = *IpAddress::parse("198.18.0.1");
        ctx.ports = {in, out};
        ctx.routes =
            std::move(net::RouteTable::build({{"in", in.addresses}, {"out", out.addresses}},
                                             {{*Prefix::parse("192.0.2.0/24"), *IpAddress::parse("203.0.113.254"), ""}})
                          .value());
        (void)neighbors.learn(*IpAddress::parse("203.0.113.254"), bench::kPeerMac, 1, true);
        for (const auto& b : bs) (void)neighbors.learn(b.ip, bench::kPeerMac, 1, true);
        ctx.neighbors = &neighbors;
        ctx.affinity = affinity.get();
        ctx.connections = connections.get();  // no SYN rate or per-source cap (ForwardContext defaults): SYNs replay
    }
};

void BM_CopyOnly(benchmark::State& state) {
    Fixture f(2);
    alignas(64) uint8_t buf[2048];
    size_t i = 0;
    for (auto _ : state) {
        const auto& fr = f.frames[i++ & (f.frames.size() - 1)];
        std::memcpy(buf + 128, fr.data(), fr.size());
        benchmark::DoNotOptimize(buf);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_ParseL2L4(benchmark::State& state) {
    Fixture f(2);
    alignas(64) uint8_t buf[2048];
    size_t i = 0;
    for (auto _ : state) {
        const auto& fr = f.frames[i++ & (f.frames.size() - 1)];
        std::memcpy(buf + 128, fr.data(), fr.size());
        net::PacketView v;
        benchmark::DoNotOptimize(net::parse_frame(buf + 128, fr.size(), v));
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

// The worker's clock as the frames go by, at 5 Mpps: what the rate limits
// and idle timers see. A clock that stood still would let every source's
// burst run out and the limits start dropping part way through a run.
constexpr uint64_t kFramesPerMs = 5000;
uint64_t now_ms_at(size_t frame) noexcept { return 1000000 + frame / kFramesPerMs; }
uint32_t now_s_at(size_t frame) noexcept { return static_cast<uint32_t>(now_ms_at(frame) / 1000); }

void BM_Forward(benchmark::State& state) {
    Fixture f(static_cast<size_t>(state.range(0)));
    dataplane::Forwarder fwd(f.ctx, *f.counters);
    alignas(64) uint8_t buf[2048];
    size_t i = 0, sent = 0;
    for (auto _ : state) {
        const auto& fr = f.frames[i++ & (f.frames.size() - 1)];
        std::memcpy(buf + 128, fr.data(), fr.size());
        auto a = fwd.process(buf + 128, static_cast<uint16_t>(fr.size()), 128, 512, 0, f.snap.get(), now_s_at(i),
                             now_ms_at(i), kDaemonParse);
        sent += a.kind == dataplane::Action::Kind::transmit;
        benchmark::ClobberMemory();
    }
    if (sent != static_cast<size_t>(state.iterations()))
        state.SkipWithError("frames dropped: the benchmark setup is wrong");
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_SipParse(benchmark::State& state) {
    Fixture f(2);
    std::vector<std::pair<const uint8_t*, size_t>> payloads;  // the datagrams the worker parses: to the VIP
    for (const auto& fr : f.frames) {
        net::PacketView v;
        if (net::parse_frame(fr.data(), fr.size(), v) != net::ParseStatus::udp || v.dst_port != bench::kVip.port)
            continue;
        payloads.emplace_back(fr.data() + v.payload_offset(), v.payload_len());
    }
    // 0: every header checked; 1: the headers a plain pool's requests need (the worker's parse).
    const sip::HeaderSet needs = state.range(0) ? f.snap->request_headers() : sip::HeaderSet();
    sip::SipMessage msg;
    alignas(64) uint8_t buf[2048];
    size_t i = 0;
    for (auto _ : state) {
        const auto& [data, len] = payloads[i++ % payloads.size()];
        std::memcpy(buf, data, len);  // in cache, as the worker finds it after the RX copy
        sip::SipParser::parse(buf, len, msg, sip::ParseDepth::balancer, needs);
        benchmark::DoNotOptimize(msg);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_Prepare(benchmark::State& state) {
    Fixture f(static_cast<size_t>(state.range(0)));
    dataplane::Forwarder fwd(f.ctx, *f.counters);
    dataplane::Forwarder::Prepared p;
    alignas(64) uint8_t buf[2048];
    size_t i = 0;
    for (auto _ : state) {
        const auto& fr = f.frames[i++ & (f.frames.size() - 1)];
        std::memcpy(buf + 128, fr.data(), fr.size());
        fwd.prepare(p, buf + 128, static_cast<uint16_t>(fr.size()), 128, 512, 0, f.snap.get(), kDaemonParse);
        fwd.prefetch(p, f.snap.get());
        benchmark::DoNotOptimize(p);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

// One burst of 32 frames per iteration, copied in then forwarded either in
// two passes (two_pass: the worker's loop) or frame by frame (process()).
// Besides the mean, reports the median and 10th percentile TSC cycles per
// frame over the bursts: on a shared host preemption and other tenants'
// cache traffic hit a minority of bursts, which the median leaves out.
void forward_bursts(benchmark::State& state, bool two_pass, bool tcp = false, bool edge = false) {
    constexpr size_t kBurst = 32;
    Fixture f(static_cast<size_t>(state.range(0)), tcp, edge);
    dataplane::Forwarder fwd(f.ctx, *f.counters);
    auto slots = std::make_unique<dataplane::Forwarder::Prepared[]>(kBurst);
    struct alignas(64) Buf {
        uint8_t bytes[2048];
    };
    auto bufs = std::make_unique<Buf[]>(kBurst);
    std::vector<uint64_t> cycles;
    cycles.reserve(1u << 20);
    size_t i = 0, sent = 0;
    for (auto _ : state) {
        const uint64_t t0 = __rdtsc();
        for (size_t k = 0; k < kBurst; ++k) {
            const auto& fr = f.frames[(i + k) & (f.frames.size() - 1)];
            std::memcpy(bufs[k].bytes + 128, fr.data(), fr.size());
            if (two_pass)
                fwd.prepare(slots[k], bufs[k].bytes + 128, static_cast<uint16_t>(fr.size()), 128, 512, 0, f.snap.get(),
                            kDaemonParse);
            else
                sent += fwd.process(bufs[k].bytes + 128, static_cast<uint16_t>(fr.size()), 128, 512, 0, f.snap.get(),
                                    now_s_at(i), now_ms_at(i), kDaemonParse)
                            .kind == dataplane::Action::Kind::transmit;
        }
        if (two_pass) {
            for (size_t k = 0; k < kBurst; ++k) fwd.prefetch(slots[k], f.snap.get());
            for (size_t k = 0; k < kBurst; ++k)
                sent += fwd.forward(slots[k], f.snap.get(), now_s_at(i), now_ms_at(i)).kind ==
                        dataplane::Action::Kind::transmit;
        }
        benchmark::ClobberMemory();
        if (cycles.size() < cycles.capacity()) cycles.push_back(__rdtsc() - t0);
        i += kBurst;
    }
    if (sent != static_cast<size_t>(state.iterations()) * kBurst)
        state.SkipWithError("frames dropped: the benchmark setup is wrong");
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBurst));
    if (!cycles.empty()) {
        std::sort(cycles.begin(), cycles.end());
        state.counters["tsc_median"] = static_cast<double>(cycles[cycles.size() / 2]) / kBurst;
        state.counters["tsc_p10"] = static_cast<double>(cycles[cycles.size() / 10]) / kBurst;
    }
}

void BM_ForwardBurst(benchmark::State& state) { forward_bursts(state, true); }
void BM_ForwardFrames(benchmark::State& state) { forward_bursts(state, false); }
void BM_ForwardBurstTcp(benchmark::State& state) { forward_bursts(state, true, true); }
void BM_ForwardBurstEdge(benchmark::State& state) { forward_bursts(state, true, false, true); }

}  // namespace

BENCHMARK(BM_CopyOnly);
BENCHMARK(BM_ParseL2L4);
BENCHMARK(BM_SipParse)->Arg(0)->Arg(1);
BENCHMARK(BM_Prepare)->Arg(2)->Arg(1000);
BENCHMARK(BM_Forward)->Arg(2)->Arg(1000);
BENCHMARK(BM_ForwardFrames)->Arg(2)->Arg(1000);
BENCHMARK(BM_ForwardBurst)->Arg(2)->Arg(1000);
BENCHMARK(BM_ForwardBurstTcp)->Arg(2)->Arg(1000);
BENCHMARK(BM_ForwardBurst)->Arg(20);
BENCHMARK(BM_ForwardBurstEdge)->Arg(20);
BENCHMARK_MAIN();
