// Counters the control plane reports (control socket `stats`, Prometheus
// `metrics`), both generated from the dataplane's counter schema
// (include/siplb/dataplane/counter_schema.h): a counter declared there
// reaches both outputs with no code here. Nothing here links DPDK.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "siplb/common/endpoint.h"
#include "siplb/control/pool_manager.h"
#include "siplb/dataplane/stats.h"

namespace siplb::control {

// What `stats` and `/metrics` report: the dataplane's counters (every
// entry of its counter schema) and the node's gauges.
struct StatsSnapshot {
    dataplane::DataplaneStats dataplane;
    uint64_t affinity_entries = 0;
    uint64_t affinity_capacity = 0;
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
    // Pools with tcp:// or tls:// VIPs in the live snapshot: `backends`
    // shows their backends' connection counters.
    std::set<std::string> tcp_pools;
};

// Prometheus label value escaping: backslash, double quote, newline.
std::string escape_label_value(std::string_view v);

// `stats` as JSON: {"snapshot_version", "totals": {GROUP: {NAME: n}},
// "workers": [{"worker","lcore",GROUP: {...}}], "ports": [{"port","device",...}],
// "pools": [{"pool",...}], "backends": [{"pool","backend",...}],
// "node": {"neighbors","affinity_entries","affinity_capacity"}}.
nlohmann::json stats_json(const StatsSnapshot& stats);

// Text exposition format 0.0.4: every family with # HELP and # TYPE, then
// its samples; counters end in _total.
std::string render_metrics(const std::vector<PoolView>& pools, const StatsSnapshot& stats, const MetricsInfo& info);

}  // namespace siplb::control
