#include "siplb/control/metrics.h"

#include <cinttypes>
#include <algorithm>
#include <cstdio>
#include <span>

namespace siplb::control {

std::string escape_label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

namespace {

class Writer {
public:
    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }
    using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;
    void sample(std::string_view name, Labels labels, double value) {
        char buf[64];
        if (value >= 0 && value < 1e15 && value == static_cast<double>(static_cast<uint64_t>(value)))
            std::snprintf(buf, sizeof(buf), "%" PRIu64, static_cast<uint64_t>(value));
        else
            std::snprintf(buf, sizeof(buf), "%.9g", value);
        line(name, labels, buf);
    }
    void sample_labels(std::string_view name, const std::vector<std::pair<std::string_view, std::string_view>>& labels,
                       uint64_t value) {
        out_ += name;
        if (!labels.empty()) {
            out_ += '{';
            for (size_t i = 0; i < labels.size(); ++i) {
                if (i) out_ += ',';
                out_ += labels[i].first;
                out_ += "=\"";
                out_ += escape_label_value(labels[i].second);
                out_ += '"';
            }
            out_ += '}';
        }
        out_ += ' ';
        out_ += std::to_string(value);
        out_ += '\n';
    }
    // Counters can exceed 2^53: integers are printed exactly.
    void sample_u(std::string_view name, Labels labels, uint64_t value) { line(name, labels, std::to_string(value)); }
    std::string take() { return std::move(out_); }

private:
    void line(std::string_view name, Labels labels, std::string_view value) {
        out_ += name;
        if (labels.size()) {
            out_ += '{';
            bool first = true;
            for (const auto& [k, v] : labels) {
                if (!first) out_ += ',';
                first = false;
                out_ += k;
                out_ += "=\"";
                out_ += escape_label_value(v);
                out_ += '"';
            }
            out_ += '}';
        }
        out_ += ' ';
        out_ += value;
        out_ += '\n';
    }
    std::string out_;
};

using dataplane::CounterInfo;
using dataplane::CounterKind;
using dataplane::CounterScope;

const char* scope_prefix(CounterScope scope) {
    switch (scope) {
        case CounterScope::worker: return "siplb_";
        case CounterScope::port: return "siplb_port_";
        case CounterScope::pool: return "siplb_pool_";
        case CounterScope::backend: return "siplb_backend_";
        case CounterScope::rule: return "siplb_rule_";
    }
    return "siplb_";
}

const char* scope_noun(CounterScope scope) {
    switch (scope) {
        case CounterScope::worker: return "worker";
        case CounterScope::port: return "port";
        case CounterScope::pool: return "pool";
        case CounterScope::backend: return "backend";
        case CounterScope::rule: return "rule";
    }
    return "";
}

// Prometheus family of a schema entry: counters of one group share
// siplb_[SCOPE_]GROUP_total{LABEL="NAME"}; a gauge is its own family,
// siplb_[SCOPE_]GROUP_NAME.
std::string family_of(const CounterInfo& c) {
    std::string f = std::string(scope_prefix(c.scope)) + c.group;
    return c.kind == CounterKind::counter ? f + "_total" : f + "_" + c.name;
}

std::string family_help(std::span<const CounterInfo> schema, const CounterInfo& first) {
    if (first.kind != CounterKind::counter) return std::string(first.help) + " (per " + scope_noun(first.scope) + ").";
    std::string h = std::string("Counters of group ") + first.group + " per " + scope_noun(first.scope) + ", by " +
                    dataplane::counter_label(first) + ":";
    for (const auto& c : schema)
        if (c.kind == CounterKind::counter && std::string_view(c.group) == first.group) h += std::string(" ") + c.name;
    return h + ".";
}

// One scope: `entities` yields (labels, values) for each worker/port/pool/backend.
template <typename Entities>
void write_scope(Writer& w, CounterScope scope, const Entities& entities) {
    const auto schema = dataplane::counter_schema(scope);
    std::vector<std::string> done;
    for (size_t i = 0; i < schema.size(); ++i) {
        const std::string family = family_of(schema[i]);
        if (std::find(done.begin(), done.end(), family) != done.end()) continue;
        done.push_back(family);
        w.family(family, schema[i].kind == CounterKind::counter ? "counter" : "gauge", family_help(schema, schema[i]));
        for (const auto& [labels, values] : entities)
            for (size_t j = i; j < schema.size(); ++j) {
                if (family_of(schema[j]) != family) continue;
                std::vector<std::pair<std::string_view, std::string_view>> l(labels.begin(), labels.end());
                if (schema[j].kind == CounterKind::counter)
                    l.emplace_back(dataplane::counter_label(schema[j]), schema[j].name);
                w.sample_labels(family, l, (*values)[j]);
            }
    }
}

using LabelList = std::vector<std::pair<std::string_view, std::string_view>>;
using Entity = std::pair<LabelList, const std::vector<uint64_t>*>;

void write_counters(Writer& w, const StatsSnapshot& stats) {
    const dataplane::DataplaneStats& d = stats.dataplane;
    std::vector<std::string> ids;
    ids.reserve(d.workers.size());
    for (const auto& wk : d.workers) ids.push_back(std::to_string(wk.index));
    std::vector<Entity> workers;
    for (size_t i = 0; i < d.workers.size(); ++i) workers.push_back({{{"worker", ids[i]}}, &d.workers[i].values});
    write_scope(w, CounterScope::worker, workers);
    std::vector<Entity> ports;
    for (const auto& p : d.ports) ports.push_back({{{"port", p.name}}, &p.values});
    write_scope(w, CounterScope::port, ports);
    std::vector<Entity> pools;
    for (const auto& p : d.pools) pools.push_back({{{"pool", p.name}}, &p.values});
    write_scope(w, CounterScope::pool, pools);
    std::vector<std::string> addresses;
    addresses.reserve(d.backends.size());
    for (const auto& b : d.backends) addresses.push_back(b.address.to_string());
    std::vector<Entity> backends;
    for (size_t i = 0; i < d.backends.size(); ++i)
        backends.push_back({{{"pool", d.backends[i].pool}, {"backend", addresses[i]}}, &d.backends[i].values});
    write_scope(w, CounterScope::backend, backends);
    std::vector<Entity> rules;
    for (const auto& r : d.rules) rules.push_back({{{"pool", r.pool}, {"rule", r.name}}, &r.values});
    write_scope(w, CounterScope::rule, rules);
}

nlohmann::json group_values(CounterScope scope, const std::vector<uint64_t>& values) {
    const auto schema = dataplane::counter_schema(scope);
    nlohmann::json j = nlohmann::json::object();
    for (size_t i = 0; i < schema.size() && i < values.size(); ++i) j[schema[i].group][schema[i].name] = values[i];
    return j;
}

}  // namespace

nlohmann::json stats_json(const StatsSnapshot& stats) {
    const dataplane::DataplaneStats& d = stats.dataplane;
    nlohmann::json j;
    j["snapshot_version"] = d.snapshot_version;
    j["totals"] = group_values(CounterScope::worker, d.totals().values);
    // Each entity: its counters as GROUP: {NAME: value}, plus its identity.
    auto list = [](CounterScope scope, const auto& entities, auto identify) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& e : entities) {
            nlohmann::json item = group_values(scope, e.values);
            identify(item, e);
            out.push_back(std::move(item));
        }
        return out;
    };
    j["workers"] = list(CounterScope::worker, d.workers, [](nlohmann::json& item, const auto& w) {
        item["worker"] = w.index;
        item["lcore"] = w.lcore;
    });
    j["ports"] = list(CounterScope::port, d.ports, [](nlohmann::json& item, const auto& p) {
        item["port"] = p.name;
        item["device"] = p.device;
    });
    j["pools"] = list(CounterScope::pool, d.pools, [](nlohmann::json& item, const auto& p) { item["pool"] = p.name; });
    j["backends"] = list(CounterScope::backend, d.backends, [](nlohmann::json& item, const auto& b) {
        item["pool"] = b.pool;
        item["backend"] = b.address.to_string();
    });
    j["rules"] = list(CounterScope::rule, d.rules, [](nlohmann::json& item, const auto& r) {
        item["pool"] = r.pool;
        item["rule"] = r.name;
        item["action"] = r.action;
    });
    j["node"] = {{"neighbors", d.neighbors},
                 {"affinity_entries", stats.affinity_entries},
                 {"affinity_capacity", stats.affinity_capacity}};
    return j;
}

std::string render_metrics(const std::vector<PoolView>& pools, const StatsSnapshot& stats, const MetricsInfo& info) {
    Writer w;
    w.family("siplb_build_info", "gauge", "Version of the running siplb.");
    w.sample("siplb_build_info", {{"version", info.version}}, 1);
    w.family("siplb_uptime_seconds", "gauge", "Seconds since the daemon started.");
    w.sample("siplb_uptime_seconds", {}, info.uptime_s);
    w.family("siplb_snapshot_version", "gauge", "Version of the dataplane snapshot the workers use.");
    w.sample_u("siplb_snapshot_version", {}, info.snapshot_version);
    w.family("siplb_reloads_total", "counter", "Configuration reloads by result.");
    w.sample_u("siplb_reloads_total", {{"result", "ok"}}, info.reloads_ok);
    w.sample_u("siplb_reloads_total", {{"result", "failed"}}, info.reloads_failed);
    w.family("siplb_control_requests_total", "counter", "Requests served on the control socket.");
    w.sample_u("siplb_control_requests_total", {}, info.control_requests);

    write_counters(w, stats);
    w.family("siplb_neighbors", "gauge", "Resolved neighbor (ARP/ND) entries.");
    w.sample_u("siplb_neighbors", {}, stats.dataplane.neighbors);
    w.family("siplb_affinity_entries", "gauge", "Live dialog affinity entries.");
    w.sample_u("siplb_affinity_entries", {}, stats.affinity_entries);
    w.family("siplb_affinity_capacity", "gauge", "Capacity of the dialog affinity table.");
    w.sample_u("siplb_affinity_capacity", {}, stats.affinity_capacity);

    static constexpr EffectiveState kStates[] = {EffectiveState::active,     EffectiveState::draining,
                                                 EffectiveState::overloaded, EffectiveState::down,
                                                 EffectiveState::disabled,   EffectiveState::standby};
    w.family("siplb_backend_up", "gauge", "1 when the backend takes new calls (state active).");
    for (const auto& p : pools)
        for (const auto& b : p.backends)
            w.sample("siplb_backend_up", {{"pool", p.name}, {"backend", b.address.to_string()}},
                     b.state == EffectiveState::active ? 1 : 0);
    w.family("siplb_backend_state", "gauge", "Backend state: 1 for the current state, 0 for the others.");
    for (const auto& p : pools)
        for (const auto& b : p.backends) {
            const std::string addr = b.address.to_string();
            for (EffectiveState s : kStates)
                w.sample("siplb_backend_state", {{"pool", p.name}, {"backend", addr}, {"state", to_string(s)}},
                         b.state == s ? 1 : 0);
        }
    w.family("siplb_backend_health_panic", "gauge",
             "1 when health says out but the panic threshold keeps the backend in.");
    for (const auto& p : pools)
        for (const auto& b : p.backends)
            w.sample("siplb_backend_health_panic", {{"pool", p.name}, {"backend", b.address.to_string()}},
                     b.panic ? 1 : 0);
    w.family("siplb_backend_weight", "gauge", "Effective backend weight.");
    for (const auto& p : pools)
        for (const auto& b : p.backends)
            w.sample("siplb_backend_weight", {{"pool", p.name}, {"backend", b.address.to_string()}}, b.weight);
    w.family("siplb_backend_table_share", "gauge", "Fraction of the pool's Maglev table owned by the backend.");
    for (const auto& p : pools) {
        auto it = info.table_share.find(p.name);
        for (const auto& b : p.backends) {
            double share = 0;
            if (it != info.table_share.end()) {
                auto jt = it->second.find(b.address.to_string());
                if (jt != it->second.end()) share = jt->second;
            }
            w.sample("siplb_backend_table_share", {{"pool", p.name}, {"backend", b.address.to_string()}}, share);
        }
    }
    w.family("siplb_pool_panic_events_total", "counter",
             "Times health verdicts were overridden by the panic threshold.");
    for (const auto& p : pools) w.sample_u("siplb_pool_panic_events_total", {{"pool", p.name}}, p.panic_events);
    return w.take();
}

}  // namespace siplb::control
