#include "siplb/control/metrics.h"

#include <cinttypes>
#include <cstdio>

namespace siplb::control {

std::string escape_label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
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

}  // namespace

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

    w.family("siplb_packets_total", "counter", "SIP datagrams forwarded per backend and direction.");
    for (const auto& b : stats.backends) {
        const std::string addr = b.backend.to_string();
        w.sample_u("siplb_packets_total", {{"pool", b.pool}, {"backend", addr}, {"direction", "to_backend"}}, b.packets_to);
        w.sample_u("siplb_packets_total", {{"pool", b.pool}, {"backend", addr}, {"direction", "from_backend"}}, b.packets_from);
    }
    w.family("siplb_bytes_total", "counter", "Bytes forwarded per backend and direction.");
    for (const auto& b : stats.backends) {
        const std::string addr = b.backend.to_string();
        w.sample_u("siplb_bytes_total", {{"pool", b.pool}, {"backend", addr}, {"direction", "to_backend"}}, b.bytes_to);
        w.sample_u("siplb_bytes_total", {{"pool", b.pool}, {"backend", addr}, {"direction", "from_backend"}}, b.bytes_from);
    }
    w.family("siplb_calls_total", "counter", "Dialog-creating requests sent to each backend.");
    for (const auto& b : stats.backends)
        w.sample_u("siplb_calls_total", {{"pool", b.pool}, {"backend", b.backend.to_string()}}, b.calls);
    w.family("siplb_pool_packets_total", "counter", "Datagrams received on each pool's VIPs.");
    for (const auto& p : stats.pools) w.sample_u("siplb_pool_packets_total", {{"pool", p.pool}}, p.packets_in);
    w.family("siplb_pool_no_backend_total", "counter", "Datagrams dropped because the pool had no usable backend.");
    for (const auto& p : stats.pools) w.sample_u("siplb_pool_no_backend_total", {{"pool", p.pool}}, p.no_backend);
    w.family("siplb_drops_total", "counter", "Dropped packets by reason.");
    for (const auto& [reason, n] : stats.drops) w.sample_u("siplb_drops_total", {{"reason", reason}}, n);

    w.family("siplb_worker_packets_total", "counter", "Packets handled per worker and direction.");
    for (const auto& wk : stats.workers) {
        const std::string id = std::to_string(wk.worker);
        w.sample_u("siplb_worker_packets_total", {{"worker", id}, {"direction", "rx"}}, wk.rx_packets);
        w.sample_u("siplb_worker_packets_total", {{"worker", id}, {"direction", "tx"}}, wk.tx_packets);
    }
    w.family("siplb_worker_drops_total", "counter", "Packets dropped per worker.");
    for (const auto& wk : stats.workers) w.sample_u("siplb_worker_drops_total", {{"worker", std::to_string(wk.worker)}}, wk.drops);
    w.family("siplb_port_packets_total", "counter", "Packets per DPDK port and direction.");
    for (const auto& p : stats.ports) {
        w.sample_u("siplb_port_packets_total", {{"port", p.name}, {"direction", "rx"}}, p.rx_packets);
        w.sample_u("siplb_port_packets_total", {{"port", p.name}, {"direction", "tx"}}, p.tx_packets);
    }
    w.family("siplb_port_bytes_total", "counter", "Bytes per DPDK port and direction.");
    for (const auto& p : stats.ports) {
        w.sample_u("siplb_port_bytes_total", {{"port", p.name}, {"direction", "rx"}}, p.rx_bytes);
        w.sample_u("siplb_port_bytes_total", {{"port", p.name}, {"direction", "tx"}}, p.tx_bytes);
    }
    w.family("siplb_port_errors_total", "counter", "Port errors by kind (rx_missed: RX ring full).");
    for (const auto& p : stats.ports) {
        w.sample_u("siplb_port_errors_total", {{"port", p.name}, {"kind", "rx_missed"}}, p.rx_missed);
        w.sample_u("siplb_port_errors_total", {{"port", p.name}, {"kind", "rx_errors"}}, p.rx_errors);
        w.sample_u("siplb_port_errors_total", {{"port", p.name}, {"kind", "tx_errors"}}, p.tx_errors);
    }
    // Edge counters: one family per group, in the order the snapshot lists them.
    static const std::map<std::string, std::string, std::less<>> kEdgeHelp = {
        {"icmp", "ICMP handled by kind (echo replies, errors sent, rate-limited, passed to backends, unmatched)."},
        {"fragments", "IP fragments and fragmentation by kind (received, reassembled, dropped, sent, failed, ...)."},
        {"kernel_path", "Frames through the kernel exception path (TAP) by kind."},
        {"neighbor", "Neighbor resolution events by kind (ARP/ND answered and sent, learned, announced)."},
        {"affinity", "Dialog affinity events by kind."},
    };
    for (size_t i = 0; i < stats.edge.size(); ++i) {
        const std::string& group = stats.edge[i].group;
        if (i > 0 && stats.edge[i - 1].group == group) continue;
        const std::string name = "siplb_" + group + "_total";
        auto help = kEdgeHelp.find(group);
        w.family(name, "counter", help != kEdgeHelp.end() ? help->second : group + " events by kind.");
        for (size_t j = i; j < stats.edge.size() && stats.edge[j].group == group; ++j)
            w.sample_u(name, {{"kind", stats.edge[j].kind}}, stats.edge[j].value);
    }
    w.family("siplb_neighbors", "gauge", "Resolved neighbor (ARP/ND) entries.");
    w.sample_u("siplb_neighbors", {}, stats.neighbors);
    w.family("siplb_affinity_entries", "gauge", "Live dialog affinity entries.");
    w.sample_u("siplb_affinity_entries", {}, stats.affinity_entries);
    w.family("siplb_affinity_capacity", "gauge", "Capacity of the dialog affinity table.");
    w.sample_u("siplb_affinity_capacity", {}, stats.affinity_capacity);

    static constexpr EffectiveState kStates[] = {EffectiveState::active, EffectiveState::draining, EffectiveState::overloaded,
                                                 EffectiveState::down, EffectiveState::disabled, EffectiveState::standby};
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
    w.family("siplb_backend_health_panic", "gauge", "1 when health says out but the panic threshold keeps the backend in.");
    for (const auto& p : pools)
        for (const auto& b : p.backends)
            w.sample("siplb_backend_health_panic", {{"pool", p.name}, {"backend", b.address.to_string()}}, b.panic ? 1 : 0);
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
    w.family("siplb_pool_panic_events_total", "counter", "Times health verdicts were overridden by the panic threshold.");
    for (const auto& p : pools) w.sample_u("siplb_pool_panic_events_total", {{"pool", p.name}}, p.panic_events);
    return w.take();
}

}  // namespace siplb::control
