// siplbctl online commands: talk to the running daemon over its control
// socket (protocol: include/siplb/control/protocol.h). Human-readable tables
// by default, the daemon's raw JSON result with --json.
// Exit status: 0 ok, 1 the daemon refused the request, 2 usage,
// 3 the daemon cannot be reached (not running, no permission, timeout).
#include <cctype>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "command.h"
#include "control_client.h"
#include "siplb/control/protocol.h"

namespace siplb::cli {
namespace {

using json = nlohmann::json;
using control::CommandKind;

struct Options {
    std::string socket;
    bool json_out = false;
    int timeout_ms = 10000;
    std::vector<std::string> args;   // positional
    std::optional<std::string> key;  // query: the value of the pool's balancing key
};

// --- table output ---

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

void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> w(header.size());
    for (size_t i = 0; i < header.size(); ++i) w[i] = header[i].size();
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
    auto line = [&](const std::vector<std::string>& r) {
        std::string s;
        for (size_t i = 0; i < r.size(); ++i) {
            s += r[i];
            if (i + 1 < r.size()) s += std::string(w[i] - r[i].size() + 2, ' ');
        }
        std::printf("%s\n", s.c_str());
    };
    line(header);
    for (const auto& r : rows) line(r);
}

// Field of an object, null when absent (const operator[] on a missing key is UB).
const json& at(const json& o, const char* key) {
    static const json kNull;
    if (!o.is_object()) return kNull;
    auto it = o.find(key);
    return it == o.end() ? kNull : *it;
}

std::string percent(const json& v) {
    char b[32];
    std::snprintf(b, sizeof(b), "%.1f%%", v.is_number() ? v.get<double>() * 100.0 : 0.0);
    return b;
}

void print_human(CommandKind cmd, const json& r) {
    switch (cmd) {
        case CommandKind::status: {
            std::printf("siplb %s  pid %s  up %ss  config %s\n", cell(at(r, "version")).c_str(),
                        cell(at(r, "pid")).c_str(), cell(at(r, "uptime_s")).c_str(), cell(at(r, "config")).c_str());
            std::printf("dataplane %s, %s workers, snapshot version %s, %s pools\n", cell(at(r, "dataplane")).c_str(),
                        cell(at(r, "workers")).c_str(), cell(at(r, "snapshot_version")).c_str(),
                        cell(at(r, "pools")).c_str());
            if (at(r, "stalled_workers").is_number() && at(r, "stalled_workers").get<uint64_t>() > 0)
                std::printf("WARNING: %s worker(s) stalled (loop counter not moving)\n",
                            cell(at(r, "stalled_workers")).c_str());
            std::vector<std::vector<std::string>> rows;
            for (const auto& w : r.value("worker_status", json::array()))
                rows.push_back({"worker", cell(at(w, "worker")),
                                std::string(at(w, "stalled") == true ? "STALLED" : "running") + ", loops " +
                                    cell(at(w, "loops"))});
            for (const auto& p : r.value("ports", json::array()))
                rows.push_back({"port", cell(at(p, "name")), cell(at(p, "device"))});
            const json tables = r.value("tables", json::object());
            for (const auto& [pool, fp] : tables.items()) rows.push_back({"table", pool, cell(fp)});
            if (!rows.empty()) print_table({"KIND", "NAME", "DETAIL"}, rows);
            return;
        }
        case CommandKind::pools: {
            std::vector<std::vector<std::string>> rows;
            for (const auto& p : r.value("pools", json::array()))
                rows.push_back({cell(at(p, "name")), cell(at(p, "backends")), cell(at(p, "active")),
                                cell(at(p, "draining")), cell(at(p, "standby")), cell(at(p, "overloaded")),
                                cell(at(p, "down")), cell(at(p, "disabled")), cell(at(p, "version"))});
            print_table({"POOL", "BACKENDS", "ACTIVE", "DRAINING", "STANDBY", "OVERLOADED", "DOWN", "DISABLED",
                         "VERSION"},
                        rows);
            return;
        }
        case CommandKind::backends: {
            std::vector<std::vector<std::string>> rows;
            for (const auto& b : r.value("backends", json::array())) {
                std::string health = cell(at(b, "health"));
                if (b.value("panic", false)) health += " (panic: kept in)";
                const std::string detail = b.value("health_detail", std::string());
                if (!detail.empty()) health += ": " + detail;
                rows.push_back({cell(at(b, "pool")), cell(at(b, "address")), cell(at(b, "source")),
                                cell(at(b, "weight")), cell(at(b, "state")), percent(at(b, "table_share")),
                                cell(at(b, "packets")), cell(at(b, "bytes")), cell(at(b, "calls")),
                                cell(at(b, "advertises_itself")), health});
            }
            // SELF_ADV: messages whose Contact / Record-Route named the backend itself, not a VIP.
            print_table({"POOL", "BACKEND", "SOURCE", "WEIGHT", "STATE", "SHARE", "PACKETS", "BYTES", "CALLS",
                         "SELF_ADV", "HEALTH"},
                        rows);
            return;
        }
        case CommandKind::stats: {
            // Generic over the daemon's counter schema: every group the JSON
            // carries is shown, so a new counter needs no change here.
            auto upper = [](std::string t) {
                for (auto& ch : t) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                return t;
            };
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
            std::printf("snapshot version %s, affinity %s/%s entries, %s neighbors\n\n",
                        cell(at(r, "snapshot_version")).c_str(), cell(at(node, "affinity_entries")).c_str(),
                        cell(at(node, "affinity_capacity")).c_str(), cell(at(node, "neighbors")).c_str());
            std::vector<std::vector<std::string>> rows;
            for (const auto& w : r.value("workers", json::array()))
                rows.push_back({cell(at(w, "worker")), cell(at(w, "lcore")), count(w, "traffic", "rx_packets"),
                                count(w, "traffic", "tx_packets"), std::to_string(group_sum(w, "drops")),
                                count(w, "poll", "busy_polls"), count(w, "poll", "polls")});
            print_table({"WORKER", "LCORE", "RX", "TX", "DROPS", "BUSY_POLLS", "POLLS"}, rows);
            rows.clear();
            std::printf("\n");
            for (const auto& p : r.value("ports", json::array()))
                rows.push_back({cell(at(p, "port")), count(p, "traffic", "rx_packets"),
                                count(p, "traffic", "tx_packets"), count(p, "traffic", "rx_bytes"),
                                count(p, "traffic", "tx_bytes"), count(p, "driver", "imissed"),
                                count(p, "traffic", "tx_dropped"), count(p, "driver", "rx_nombuf")});
            print_table({"PORT", "RX", "TX", "RX_BYTES", "TX_BYTES", "RX_MISSED", "TX_DROPPED", "RX_NOMBUF"}, rows);
            rows.clear();
            std::printf("\n");
            const json totals = r.value("totals", json::object());
            for (const auto& [group, names] : totals.items())
                for (const auto& [name, n] : names.items())
                    if (n.is_number() && n.get<uint64_t>() > 0) rows.push_back({group, name, cell(n)});
            print_table({"GROUP", "COUNTER", "TOTAL"}, rows);
            rows.clear();
            // Pools and backends: their traffic as columns, any other group's
            // non-zero counters as GROUP.NAME=N.
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
                    for (const auto& k : keys) row.push_back(cell(at(e, k.c_str())));
                    for (const auto& name : traffic_names) row.push_back(count(e, "traffic", name.c_str()));
                    std::string other;
                    for (const auto& [group, names] : e.items()) {
                        if (group == "traffic" || !names.is_object()) continue;
                        for (const auto& [name, n] : names.items())
                            if (n.is_number() && n.get<uint64_t>() > 0)
                                other += (other.empty() ? "" : " ") + group + "." + name + "=" + cell(n);
                    }
                    row.push_back(other.empty() ? "-" : other);
                    rows.push_back(std::move(row));
                }
                std::printf("\n");
                print_table(header, rows);
                rows.clear();
            };
            entity_table("pools", {"pool"});
            entity_table("backends", {"pool", "backend"});
            return;
        }
        case CommandKind::lookup:
            // The call's VIP next to its backend: where its replies leave from ("-": none recorded).
            std::printf("%s\t%s\t%s\t%s\n", cell(at(r, "call_id")).c_str(), cell(at(r, "backend")).c_str(),
                        cell(at(r, "vip")).c_str(), cell(at(r, "reason")).c_str());
            return;
        case CommandKind::drain:
        case CommandKind::disable:
        case CommandKind::enable:
        case CommandKind::weight:
        case CommandKind::add:
        case CommandKind::remove:
            std::printf("pool %s backend %s: %s, weight %s\n", cell(at(r, "pool")).c_str(),
                        cell(at(r, "backend")).c_str(), cell(at(r, "state")).c_str(), cell(at(r, "weight")).c_str());
            return;
        case CommandKind::reload: {
            const auto changes = r.value("changes", json::array());
            std::printf("reloaded %s: %zu change%s\n", cell(at(r, "config")).c_str(), changes.size(),
                        changes.size() == 1 ? "" : "s");
            for (const auto& c : changes) std::printf("  %s\n", cell(c).c_str());
            return;
        }
        case CommandKind::resolve:
            std::printf("resolving pool %s:", cell(at(r, "pool")).c_str());
            for (const auto& n : r.value("names", json::array())) std::printf(" %s", cell(n).c_str());
            std::printf("\n");
            return;
        case CommandKind::metrics: std::fputs(r.value("text", std::string()).c_str(), stdout); return;
        case CommandKind::capture_start:  // siplbctl capture (cmd_capture.cpp) speaks these
        case CommandKind::capture_read:
        case CommandKind::capture_stop: std::printf("%s\n", r.dump().c_str()); return;
    }
}

struct Spec {
    CommandKind kind;
    const char* name;  // siplbctl subcommand
    const char* usage;
    const char* summary;
    size_t min_args, max_args;
};

constexpr Spec kSpecs[] = {
    {CommandKind::status, "status", "status",
     "daemon version, uptime, dataplane and worker heartbeats, ports, snapshot, tables", 0, 0},
    {CommandKind::pools, "pools", "pools", "pools and backend counts by state", 0, 0},
    {CommandKind::backends, "backends", "backends [POOL]", "backends: source, weight, state, health, share, traffic", 0,
     1},
    {CommandKind::stats, "stats", "stats", "counters per worker, port, drop reason, backend", 0, 0},
    {CommandKind::lookup, "query", "query POOL CALLID... [--key VALUE]",
     "backend the running daemon picks now (affinity or table) and the call's VIP; --key: the value of the "
     "pool's balancing key (pools not keyed by the Call-ID)",
     2, SIZE_MAX},
    {CommandKind::drain, "drain", "drain POOL BACKEND", "no new calls to BACKEND, existing dialogs stay", 2, 2},
    {CommandKind::disable, "disable", "disable POOL BACKEND", "take BACKEND out entirely (dialogs move)", 2, 2},
    {CommandKind::enable, "enable", "enable POOL BACKEND", "undo drain/disable", 2, 2},
    {CommandKind::weight, "weight", "weight POOL BACKEND N", "set BACKEND's weight (0: no new calls)", 3, 3},
    {CommandKind::add, "add", "add POOL BACKEND [WEIGHT]", "add a static backend at runtime", 2, 3},
    {CommandKind::remove, "remove", "remove POOL BACKEND", "remove a static backend (drain it first)", 2, 2},
    {CommandKind::reload, "reload", "reload", "re-read the config file and apply it live", 0, 0},
    {CommandKind::resolve, "resolve", "resolve POOL", "re-resolve the pool's DNS names now", 1, 1},
    {CommandKind::metrics, "metrics", "metrics", "Prometheus text exposition", 0, 0},
};

void help(const Spec& s, FILE* out) {
    std::fprintf(out,
                 "usage: siplbctl %s [--socket PATH] [--json] [--timeout SECONDS]\n  %s\n\n"
                 "--socket  control socket (default: [control] socket of %s, else %s)\n"
                 "--json    print the daemon's JSON result\n"
                 "--        the rest are arguments, also when they start with '-' (a Call-ID)\n"
                 "Exit status: 0 ok, 1 refused by the daemon, 2 usage, 3 daemon not reachable.\n",
                 s.usage, s.summary, kDefaultConfig, kDefaultSocket);
}

int run(const Spec& s, int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            help(s, stdout);
            return 0;
        } else if (a == "--json") {
            o.json_out = true;
        } else if (a == "--socket" || a == "-s" || a == "--timeout") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "siplbctl %s: %s needs a value\n", s.name, a.c_str());
                return 2;
            }
            const std::string v = argv[++i];
            if (a == "--timeout") {
                char* end = nullptr;
                const double t = std::strtod(v.c_str(), &end);
                if (!end || *end || t <= 0 || t > 3600) {
                    std::fprintf(stderr, "siplbctl %s: bad --timeout '%s'\n", s.name, v.c_str());
                    return 2;
                }
                o.timeout_ms = static_cast<int>(t * 1000);
            } else {
                o.socket = v;
            }
        } else if (a == "--key" && s.kind == CommandKind::lookup) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "siplbctl %s: --key needs a value\n", s.name);
                return 2;
            }
            o.key = argv[++i];
        } else if (a.rfind("--socket=", 0) == 0) {
            o.socket = a.substr(9);
        } else if (a == "--") {
            // The rest is positional, e.g. a Call-ID that starts with '-'.
            for (++i; i < argc; ++i) o.args.emplace_back(argv[i]);
        } else if (a.size() > 1 && a[0] == '-' && a != "-") {
            std::fprintf(stderr, "siplbctl %s: unknown option '%s'\n", s.name, a.c_str());
            help(s, stderr);
            return 2;
        } else {
            o.args.push_back(a);
        }
    }
    if (o.args.size() < s.min_args || o.args.size() > s.max_args) {
        help(s, stderr);
        return 2;
    }
    if (o.socket.empty()) o.socket = default_socket();

    std::vector<control::Request> reqs;
    control::Request base;
    base.cmd = s.kind;
    if (!o.args.empty()) base.pool = o.args[0];
    if (o.args.size() >= 2 && s.kind != CommandKind::lookup) {
        auto ep = Endpoint::parse(o.args[1], control::kDefaultSipPort, true);
        if (!ep) {
            std::fprintf(stderr, "siplbctl %s: '%s' is not an address like 192.0.2.10:5060\n", s.name,
                         o.args[1].c_str());
            return 2;
        }
        base.backend = *ep;
    }
    if (o.args.size() >= 3 && (s.kind == CommandKind::weight || s.kind == CommandKind::add)) {
        char* end = nullptr;
        const long w = std::strtol(o.args[2].c_str(), &end, 10);
        if (!end || *end || w < 0 || w > 65535) {
            std::fprintf(stderr, "siplbctl %s: weight '%s' is not a number 0..65535\n", s.name, o.args[2].c_str());
            return 2;
        }
        base.weight = static_cast<uint32_t>(w);
    }
    if (s.kind == CommandKind::lookup) {
        for (size_t i = 1; i < o.args.size(); ++i) {
            control::Request r = base;
            r.call_id = o.args[i];
            r.key = o.key;
            reqs.push_back(r);
        }
    } else {
        reqs.push_back(base);
    }
    int rc = 0;
    for (const auto& r : reqs) {
        auto resp = call(o.socket, control::encode_request(r), o.timeout_ms);
        if (!resp) {
            std::fprintf(stderr, "siplbctl %s: %s\n", s.name, resp.message().c_str());
            return 3;
        }
        if (!resp->value("ok", false)) {
            std::fprintf(stderr, "siplbctl %s: %s\n", s.name,
                         resp->value("error", std::string("request failed")).c_str());
            rc = 1;
            continue;
        }
        const json& result = (*resp)["result"];
        if (o.json_out)
            std::printf("%s\n", result.dump(2, ' ', false, json::error_handler_t::replace).c_str());
        else
            print_human(s.kind, result);
    }
    return rc;
}

struct RegisterAll {
    RegisterAll() {
        for (const Spec& s : kSpecs)
            command_registry().push_back(
                Command{s.name, s.usage, s.summary, [&s](int argc, char** argv) { return run(s, argc, argv); }});
    }
} const kRegisterAll;

}  // namespace
}  // namespace siplb::cli
