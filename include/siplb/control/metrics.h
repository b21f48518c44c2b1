// Counters the control plane reports (control socket `stats`, Prometheus
// `metrics`). The daemon fills a StatsSnapshot from the dataplane's per-lcore
// counters (aggregated on read); this layer knows nothing of DPDK.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "siplb/common/endpoint.h"
#include "siplb/control/pool_manager.h"

namespace siplb::control {

struct WorkerCounters {
    uint32_t worker = 0;     // worker index
    uint32_t lcore = 0;
    uint64_t rx_packets = 0;
    uint64_t tx_packets = 0;
    uint64_t drops = 0;
};

struct PortCounters {
    std::string name;
    uint64_t rx_packets = 0;
    uint64_t tx_packets = 0;
    uint64_t rx_bytes = 0;
    uint64_t tx_bytes = 0;
    uint64_t rx_missed = 0;  // NIC ring full
    uint64_t rx_errors = 0;
    uint64_t tx_errors = 0;
};

struct BackendCounters {
    std::string pool;
    Endpoint backend;
    uint64_t packets_to = 0;    // client -> backend
    uint64_t bytes_to = 0;
    uint64_t packets_from = 0;  // backend -> client
    uint64_t bytes_from = 0;
    uint64_t calls = 0;         // dialog-creating requests sent to it
};

struct PoolCounters {
    std::string pool;
    uint64_t packets_in = 0;
    uint64_t bytes_in = 0;
    uint64_t no_backend = 0;
};

// One counter of the networking edge (ICMP, IP fragments, the kernel path,
// neighbor resolution, dialog affinity), e.g. {"fragments", "reassembled"}.
// Groups become Prometheus families siplb_<group>_total{kind="..."}.
struct EdgeCounter {
    std::string group;
    std::string kind;
    uint64_t value = 0;
};

struct StatsSnapshot {
    std::vector<WorkerCounters> workers;
    std::vector<PortCounters> ports;
    std::map<std::string, uint64_t> drops;  // reason -> count
    std::vector<PoolCounters> pools;
    std::vector<BackendCounters> backends;
    uint64_t affinity_entries = 0;
    uint64_t affinity_capacity = 0;
    std::vector<EdgeCounter> edge;  // grouped, in a stable order
    uint64_t neighbors = 0;         // resolved neighbor entries (gauge)
};

// Process-level facts for the exposition.
struct MetricsInfo {
    std::string version;
    double uptime_s = 0;
    uint64_t snapshot_version = 0;
    uint64_t reloads_ok = 0;
    uint64_t reloads_failed = 0;
    uint64_t control_requests = 0;
    // pool -> backend address text -> share of the Maglev table (0..1)
    std::map<std::string, std::map<std::string, double>> table_share;
};

// Prometheus label value escaping: backslash, double quote, newline.
std::string escape_label_value(std::string_view v);

// Text exposition format 0.0.4: every family with # HELP and # TYPE, then
// its samples; counters end in _total.
std::string render_metrics(const std::vector<PoolView>& pools, const StatsSnapshot& stats, const MetricsInfo& info);

}  // namespace siplb::control
