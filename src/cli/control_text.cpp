#include "control_text.h"

#include <algorithm>
#include <cctype>
#include <cstdarg>
#include <cstdio>
#include <string_view>
#include <vector>

#include "json_field.h"
#include "siplb/dataplane/counter_schema.h"

namespace siplb::cli {
namespace {

using json = nlohmann::json;
using control::CommandKind;

[[gnu::format(printf, 2, 3)]] void appendf(std::string& out, const char* fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    const int n = std::vsnprintf(nullptr, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        const size_t at = out.size();
        out.resize(at + static_cast<size_t>(n) + 1);
        std::vsnprintf(out.data() + at, static_cast<size_t>(n) + 1, fmt, ap2);
        out.resize(at + static_cast<size_t>(n));
    }
    va_end(ap2);
}

std::string cell(const json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_null()) return "-";
    if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
    if (v.is_number_float()) {
        char b[32];
        std::snprintf(b, sizeof(b), "%.2f", v.get<double>());
        return b;
    }
    return v.dump();
}

void table(std::string& out, const std::vector<std::string>& header,
           const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> w(header.size());
    for (size_t i = 0; i < header.size(); ++i) w[i] = header[i].size();
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
    auto line = [&](const std::vector<std::string>& r) {
        for (size_t i = 0; i < r.size(); ++i) {
            out += r[i];
            if (i + 1 < r.size()) out += std::string(w[i] - r[i].size() + 2, ' ');
        }
        out += '\n';
    };
    line(header);
    for (const auto& r : rows) line(r);
}

std::string percent(const json& v) {
    char b[32];
    std::snprintf(b, sizeof(b), "%.1f%%", v.is_number() ? v.get<double>() * 100.0 : 0.0);
    return b;
}

std::string upper(std::string t) {
    for (auto& ch : t) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return t;
}

// The counters of `group` the daemon sent for any of `entities`: the
// schema's order for `scope`, then names this siplbctl does not know (a newer
// daemon) as sent.
std::vector<std::string> group_counter_names(const json& entities, dataplane::CounterScope scope,
                                             const std::string& group) {
    auto sent = [&](const std::string& name) {
        return std::any_of(entities.begin(), entities.end(), [&](const json& e) {
            return !json_field(json_field(e, group.c_str()), name.c_str()).is_null();
        });
    };
    std::vector<std::string> names;
    for (const auto& c : dataplane::counter_schema(scope))
        if (c.group == group && sent(c.name)) names.emplace_back(c.name);
    for (const auto& e : entities) {
        const json& counters = json_field(e, group.c_str());
        if (!counters.is_object()) continue;
        for (const auto& [name, v] : counters.items())
            if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
    return names;
}

void backends_text(std::string& out, const json& r) {
    const json backends = r.value("backends", json::array());
    // TCP/TLS pools' backends carry their connection counters; a listing of
    // UDP-only pools has no such column at all.
    const std::string group(control::kConnectionCounterGroup);
    const std::vector<std::string> conn_names = group_counter_names(backends, dataplane::CounterScope::backend, group);
    std::vector<std::vector<std::string>> rows;
    for (const auto& b : backends) {
        std::string health = cell(json_field(b, "health"));
        if (b.value("panic", false)) health += " (panic: kept in)";
        const std::string detail = b.value("health_detail", std::string());
        if (!detail.empty()) health += ": " + detail;
        std::vector<std::string> row{cell(json_field(b, "pool")),    cell(json_field(b, "address")),
                                     cell(json_field(b, "source")),  cell(json_field(b, "weight")),
                                     cell(json_field(b, "state")),   percent(json_field(b, "table_share")),
                                     cell(json_field(b, "packets")), cell(json_field(b, "bytes")),
                                     cell(json_field(b, "calls")),   cell(json_field(b, "advertises_itself"))};
        // "-": a backend of a UDP-only pool listed next to TCP pools.
        for (const auto& name : conn_names) row.push_back(cell(json_field(json_field(b, group.c_str()), name.c_str())));
        row.push_back(std::move(health));
        rows.push_back(std::move(row));
    }
    // SELF_ADV: messages whose Contact / Record-Route named the backend itself, not a VIP.
    std::vector<std::string> header{"POOL",  "BACKEND", "SOURCE", "WEIGHT", "STATE",
                                    "SHARE", "PACKETS", "BYTES",  "CALLS",  "SELF_ADV"};
    for (const auto& name : conn_names) header.push_back(upper(group + "_" + name));
    header.push_back("HEALTH");
    table(out, header, rows);
}

void lookup_text(std::string& out, const json& r) {
    const json& connections = json_field(r, "connections");
    if (!connections.is_array()) {
        // The call's VIP next to its backend: where its replies leave from ("-": none recorded).
        appendf(out, "%s\t%s\t%s\t%s\n", cell(json_field(r, "call_id")).c_str(), cell(json_field(r, "backend")).c_str(),
                cell(json_field(r, "vip")).c_str(), cell(json_field(r, "reason")).c_str());
        return;
    }
    // A client's connections, one line per transport the pool listens on, as
    // transport://client: its backend, VIP and where they came from (the
    // connection's entry or the table) in the Call-ID answer's columns, then
    // the entry's state and remaining lifetime ("-": no entry).
    const std::string client = cell(json_field(r, "client"));
    for (const auto& c : connections) {
        const json& expires = json_field(c, "expires_in_s");
        const std::string expiry = expires.is_number() ? cell(expires) + "s" : "-";
        appendf(out, "%s://%s\t%s\t%s\t%s\t%s\t%s\n", cell(json_field(c, "transport")).c_str(), client.c_str(),
                cell(json_field(c, "backend")).c_str(), cell(json_field(c, "vip")).c_str(),
                cell(json_field(c, "reason")).c_str(), cell(json_field(c, "connection_state")).c_str(), expiry.c_str());
    }
}

constexpr const char* kProtectGroup = "protect";

// Protection per pool (pools with rules, or any non-zero protect counter),
// then each rule's hits: rules keep their counts across reloads by name.
void protect_text(std::string& out, const json& r) {
    const json pools = r.value("pools", json::array());
    const json rules = r.value("rules", json::array());
    const std::vector<std::string> names = group_counter_names(pools, dataplane::CounterScope::pool, kProtectGroup);
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : pools) {
        const json& counters = json_field(p, kProtectGroup);
        const std::string pool = cell(json_field(p, "pool"));
        bool shown =
            std::any_of(rules.begin(), rules.end(), [&](const json& rule) { return json_field(rule, "pool") == pool; });
        std::vector<std::string> row{pool};
        for (const auto& name : names) {
            const json& v = json_field(counters, name.c_str());
            shown = shown || (v.is_number() && v.get<uint64_t>() > 0);
            row.push_back(v.is_null() ? "-" : cell(v));
        }
        if (shown) rows.push_back(std::move(row));
    }
    if (!rows.empty()) {
        std::vector<std::string> header{"POOL"};
        for (const auto& name : names) header.push_back(upper(name));
        out += '\n';
        table(out, header, rows);
    }
    if (rules.empty()) return;
    const std::vector<std::string> rule_names =
        group_counter_names(rules, dataplane::CounterScope::rule, kProtectGroup);
    rows.clear();
    for (const auto& rule : rules) {
        std::vector<std::string> row{cell(json_field(rule, "pool")), cell(json_field(rule, "rule")),
                                     cell(json_field(rule, "action"))};
        for (const auto& name : rule_names)
            row.push_back(cell(json_field(json_field(rule, kProtectGroup), name.c_str())));
        rows.push_back(std::move(row));
    }
    std::vector<std::string> header{"POOL", "RULE", "ACTION"};
    for (const auto& name : rule_names) header.push_back(upper(name));
    out += '\n';
    table(out, header, rows);
}

void stats_text(std::string& out, const json& r) {
    // Generic over the daemon's counter schema: every group the JSON
    // carries is shown, so a new counter needs no change here.
    auto group_sum = [](const json& entity, const char* group) {
        uint64_t n = 0;
        const json values = entity.value(group, json::object());
        for (const auto& [k, v] : values.items())
            if (v.is_number_unsigned()) n += v.get<uint64_t>();
        return n;
    };
    auto count = [](const json& entity, const char* group, const char* name) {
        return cell(entity.value(group, json::object()).value(name, json(0)));
    };
    const json node = r.value("node", json::object());
    appendf(out, "snapshot version %s, affinity %s/%s entries, %s neighbors\n\n",
            cell(json_field(r, "snapshot_version")).c_str(), cell(json_field(node, "affinity_entries")).c_str(),
            cell(json_field(node, "affinity_capacity")).c_str(), cell(json_field(node, "neighbors")).c_str());
    std::vector<std::vector<std::string>> rows;
    for (const auto& w : r.value("workers", json::array()))
        rows.push_back({cell(json_field(w, "worker")), cell(json_field(w, "lcore")), count(w, "traffic", "rx_packets"),
                        count(w, "traffic", "tx_packets"), std::to_string(group_sum(w, "drops")),
                        count(w, "poll", "busy_polls"), count(w, "poll", "polls")});
    table(out, {"WORKER", "LCORE", "RX", "TX", "DROPS", "BUSY_POLLS", "POLLS"}, rows);
    rows.clear();
    out += '\n';
    for (const auto& p : r.value("ports", json::array()))
        rows.push_back({cell(json_field(p, "port")), count(p, "traffic", "rx_packets"),
                        count(p, "traffic", "tx_packets"), count(p, "traffic", "rx_bytes"),
                        count(p, "traffic", "tx_bytes"), count(p, "driver", "imissed"),
                        count(p, "traffic", "tx_dropped"), count(p, "driver", "rx_nombuf")});
    table(out, {"PORT", "RX", "TX", "RX_BYTES", "TX_BYTES", "RX_MISSED", "TX_DROPPED", "RX_NOMBUF"}, rows);
    rows.clear();
    out += '\n';
    const json totals = r.value("totals", json::object());
    for (const auto& [group, names] : totals.items())
        for (const auto& [name, n] : names.items())
            if (n.is_number() && n.get<uint64_t>() > 0) rows.push_back({group, name, cell(n)});
    table(out, {"GROUP", "COUNTER", "TOTAL"}, rows);
    rows.clear();
    // Pools and backends: their traffic as columns, any other group's
    // non-zero counters as GROUP.NAME=N (protection has its own tables).
    auto entity_table = [&](const char* list, std::vector<std::string> keys) {
        const json entities = r.value(list, json::array());
        if (entities.empty()) return;
        std::vector<std::string> header;
        for (const auto& k : keys) header.push_back(upper(k));
        std::vector<std::string> traffic_names;
        const json first_traffic = entities[0].value("traffic", json::object());
        for (const auto& [name, n] : first_traffic.items())
            traffic_names.push_back(name), header.push_back(upper(name));
        header.push_back("OTHER");
        for (const auto& e : entities) {
            std::vector<std::string> row;
            for (const auto& k : keys) row.push_back(cell(json_field(e, k.c_str())));
            for (const auto& name : traffic_names) row.push_back(count(e, "traffic", name.c_str()));
            std::string other;
            for (const auto& [group, names] : e.items()) {
                if (group == "traffic" || group == kProtectGroup || !names.is_object()) continue;
                for (const auto& [name, n] : names.items())
                    if (n.is_number() && n.get<uint64_t>() > 0)
                        other += (other.empty() ? "" : " ") + group + "." + name + "=" + cell(n);
            }
            row.push_back(other.empty() ? "-" : other);
            rows.push_back(std::move(row));
        }
        out += '\n';
        table(out, header, rows);
        rows.clear();
    };
    entity_table("pools", {"pool"});
    protect_text(out, r);
    entity_table("backends", {"pool", "backend"});
}

}  // namespace

std::string render_result(CommandKind cmd, const json& r) {
    std::string out;
    switch (cmd) {
        case CommandKind::status: {
            appendf(out, "siplb %s  pid %s  up %ss  config %s\n", cell(json_field(r, "version")).c_str(),
                    cell(json_field(r, "pid")).c_str(), cell(json_field(r, "uptime_s")).c_str(),
                    cell(json_field(r, "config")).c_str());
            appendf(out, "dataplane %s, %s workers, snapshot version %s, %s pools\n",
                    cell(json_field(r, "dataplane")).c_str(), cell(json_field(r, "workers")).c_str(),
                    cell(json_field(r, "snapshot_version")).c_str(), cell(json_field(r, "pools")).c_str());
            if (json_field(r, "stalled_workers").is_number() && json_field(r, "stalled_workers").get<uint64_t>() > 0)
                appendf(out, "WARNING: %s worker(s) stalled (loop counter not moving)\n",
                        cell(json_field(r, "stalled_workers")).c_str());
            std::vector<std::vector<std::string>> rows;
            for (const auto& w : r.value("worker_status", json::array()))
                rows.push_back({"worker", cell(json_field(w, "worker")),
                                std::string(json_field(w, "stalled") == true ? "STALLED" : "running") + ", loops " +
                                    cell(json_field(w, "loops"))});
            for (const auto& p : r.value("ports", json::array()))
                rows.push_back({"port", cell(json_field(p, "name")), cell(json_field(p, "device"))});
            const json tables = r.value("tables", json::object());
            for (const auto& [pool, fp] : tables.items()) rows.push_back({"table", pool, cell(fp)});
            if (!rows.empty()) table(out, {"KIND", "NAME", "DETAIL"}, rows);
            return out;
        }
        case CommandKind::pools: {
            std::vector<std::vector<std::string>> rows;
            for (const auto& p : r.value("pools", json::array()))
                rows.push_back(
                    {cell(json_field(p, "name")), cell(json_field(p, "backends")), cell(json_field(p, "active")),
                     cell(json_field(p, "draining")), cell(json_field(p, "standby")), cell(json_field(p, "overloaded")),
                     cell(json_field(p, "down")), cell(json_field(p, "disabled")), cell(json_field(p, "version"))});
            table(out,
                  {"POOL", "BACKENDS", "ACTIVE", "DRAINING", "STANDBY", "OVERLOADED", "DOWN", "DISABLED", "VERSION"},
                  rows);
            return out;
        }
        case CommandKind::backends: backends_text(out, r); return out;
        case CommandKind::stats: stats_text(out, r); return out;
        case CommandKind::lookup: lookup_text(out, r); return out;
        case CommandKind::drain:
        case CommandKind::disable:
        case CommandKind::enable:
        case CommandKind::weight:
        case CommandKind::add:
        case CommandKind::remove:
            appendf(out, "pool %s backend %s: %s, weight %s\n", cell(json_field(r, "pool")).c_str(),
                    cell(json_field(r, "backend")).c_str(), cell(json_field(r, "state")).c_str(),
                    cell(json_field(r, "weight")).c_str());
            return out;
        case CommandKind::reload: {
            const auto changes = r.value("changes", json::array());
            appendf(out, "reloaded %s: %zu change%s\n", cell(json_field(r, "config")).c_str(), changes.size(),
                    changes.size() == 1 ? "" : "s");
            for (const auto& c : changes) appendf(out, "  %s\n", cell(c).c_str());
            return out;
        }
        case CommandKind::resolve:
            appendf(out, "resolving pool %s:", cell(json_field(r, "pool")).c_str());
            for (const auto& n : r.value("names", json::array())) appendf(out, " %s", cell(n).c_str());
            out += '\n';
            return out;
        case CommandKind::metrics: return r.value("text", std::string());
        case CommandKind::capture_start:  // siplbctl capture (cmd_capture.cpp) speaks these
        case CommandKind::capture_read:
        case CommandKind::capture_stop: return r.dump() + "\n";
    }
    return out;
}

}  // namespace siplb::cli
