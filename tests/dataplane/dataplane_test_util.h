// Shared helpers of the dataplane integration tests: EAL arguments for a
// test process, snapshots from simple pool descriptions, mbuf helpers.
#pragma once

#include <rte_mbuf.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "siplb/config/config.h"
#include "siplb/balance/snapshot.h"
#include "siplb/common/endpoint.h"

namespace siplb::test {

inline std::vector<std::string> test_eal_args(const std::string& prefix) {
    // --in-memory does not combine with --no-huge in DPDK 22.11; --no-shconf
    // plus a per-process prefix keeps test processes apart instead.
    return {"--no-huge",
            "-m",
            "512",
            "--no-pci",
            "--no-shconf",
            "--file-prefix",
            prefix + std::to_string(getpid()),
            "-l",
            "0,1",
            "--log-level=*:error",
            "--no-telemetry"};
}

struct PoolDesc {
    std::string name;
    std::vector<std::string> listen;
    std::vector<std::string> backends;
    config::ForwardMode mode = config::ForwardMode::nat;
    uint32_t counter_slot = balance::kNoCounterSlot;  // default: the pool's position
};

inline std::unique_ptr<const balance::DataplaneSnapshot> make_snapshot(const std::vector<PoolDesc>& pools,
                                                                       uint64_t version = 1) {
    std::vector<std::shared_ptr<const balance::PoolSnapshot>> built;
    for (const auto& p : pools) {
        balance::PoolSpec spec;
        spec.name = p.name;
        spec.counter_slot = p.counter_slot != balance::kNoCounterSlot ? p.counter_slot
                                                                      : static_cast<uint32_t>(built.size());
        for (const auto& l : p.listen) spec.listen.push_back(*Endpoint::parse(l));
        for (const auto& b : p.backends) spec.backends.push_back({*Endpoint::parse(b)});
        spec.mode = p.mode;
        auto snap = balance::PoolSnapshot::build(spec, version);
        if (!snap) throw std::runtime_error(snap.message());
        built.push_back(snap.value());
    }
    auto dp = balance::DataplaneSnapshot::build(std::move(built), version);
    if (!dp) throw std::runtime_error(dp.message());
    return std::move(dp.value());
}

inline rte_mbuf* to_mbuf(rte_mempool* pool, const std::vector<uint8_t>& bytes) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (!m) return nullptr;
    char* p = rte_pktmbuf_append(m, static_cast<uint16_t>(bytes.size()));
    if (!p) {
        rte_pktmbuf_free(m);
        return nullptr;
    }
    std::memcpy(p, bytes.data(), bytes.size());
    return m;
}

inline std::vector<uint8_t> from_mbuf(rte_mbuf* m) {
    std::vector<uint8_t> out(rte_pktmbuf_pkt_len(m));
    const void* p = rte_pktmbuf_read(m, 0, static_cast<uint32_t>(out.size()), out.data());
    if (p != out.data()) std::memcpy(out.data(), p, out.size());
    return out;
}

// Polls `done` every millisecond for at most `timeout`.
inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return done();
}

}  // namespace siplb::test
