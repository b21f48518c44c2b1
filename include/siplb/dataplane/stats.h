// The dataplane's counters as read by the control thread: every counter of
// the schema (counter_schema.h), aggregated over the workers. Header-only,
// so the control plane renders it without linking DPDK.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "siplb/common/endpoint.h"
#include "siplb/dataplane/counter_schema.h"

namespace siplb::dataplane {

// Index of a counter in counter_schema(scope), or -1.
constexpr int counter_index(CounterScope scope, std::string_view group, std::string_view name) noexcept {
    const auto schema = counter_schema(scope);
    for (size_t i = 0; i < schema.size(); ++i)
        if (group == schema[i].group && name == schema[i].name) return static_cast<int>(i);
    return -1;
}

// One entity's values, in counter_schema(Scope) order.
template <CounterScope Scope>
struct CounterValues {
    std::vector<uint64_t> values = std::vector<uint64_t>(counter_schema(Scope).size());

    // A counter by group and name; 0 if the schema has no such counter.
    uint64_t at(std::string_view group, std::string_view name) const noexcept {
        const int i = counter_index(Scope, group, name);
        return i < 0 || static_cast<size_t>(i) >= values.size() ? 0 : values[static_cast<size_t>(i)];
    }
};

struct DataplaneStats {
    struct Worker : CounterValues<CounterScope::worker> {
        unsigned index = 0, lcore = 0;
    };
    struct Port : CounterValues<CounterScope::port> {
        std::string name;    // PortSpec::name
        std::string device;  // PortSpec::device
    };
    struct Pool : CounterValues<CounterScope::pool> {
        std::string name;
    };
    struct Backend : CounterValues<CounterScope::backend> {
        std::string pool;
        Endpoint address;
    };
    struct Rule : CounterValues<CounterScope::rule> {
        std::string pool;
        std::string name;    // [[pool.rule]] name
        std::string action;  // drop, allow or route (what the rule does now)
    };
    std::vector<Worker> workers;
    std::vector<Port> ports;
    std::vector<Pool> pools;        // the current snapshot's pools, in its order
    std::vector<Backend> backends;  // the current snapshot's backends, pool by pool
    std::vector<Rule> rules;        // the current snapshot's rules, pool by pool, in rule order
    uint64_t snapshot_version = 0;
    uint64_t neighbors = 0;  // resolved neighbor entries (gauge)

    // Worker counters summed over the workers (gauges: the largest).
    CounterValues<CounterScope::worker> totals() const {
        CounterValues<CounterScope::worker> t;
        const auto schema = counter_schema(CounterScope::worker);
        for (const auto& w : workers)
            for (size_t i = 0; i < t.values.size() && i < w.values.size(); ++i)
                t.values[i] = schema[i].kind != CounterKind::gauge ? t.values[i] + w.values[i]
                                                                   : std::max(t.values[i], w.values[i]);
        return t;
    }
    uint64_t total(std::string_view group, std::string_view name) const { return totals().at(group, name); }
    // Frames dropped for any reason, over all workers.
    uint64_t dropped() const {
        const auto schema = counter_schema(CounterScope::worker);
        uint64_t n = 0;
        for (const auto& w : workers)
            for (size_t i = 0; i < schema.size() && i < w.values.size(); ++i)
                if (std::string_view(schema[i].group) == "drops") n += w.values[i];
        return n;
    }
    const Pool* pool(std::string_view name) const {
        for (const auto& p : pools)
            if (p.name == name) return &p;
        return nullptr;
    }
    const Rule* rule(std::string_view pool_name, std::string_view rule_name) const {
        for (const auto& r : rules)
            if (r.pool == pool_name && r.name == rule_name) return &r;
        return nullptr;
    }
    const Backend* backend(std::string_view pool_name, const Endpoint& address) const {
        for (const auto& b : backends)
            if (b.pool == pool_name && b.address == address) return &b;
        return nullptr;
    }
};

}  // namespace siplb::dataplane
