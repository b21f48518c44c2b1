// siplbctl online commands: talk to the running daemon over its control
// socket (protocol: include/siplb/control/protocol.h). Human-readable tables
// by default, the daemon's raw JSON result with --json.
// Exit status: 0 ok, 1 the daemon refused the request, 2 usage,
// 3 the daemon cannot be reached (not running, no permission, timeout).
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "command.h"
#include "control_client.h"
#include "control_text.h"
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
    {CommandKind::lookup, "query", "query POOL CALLID|CLIENT:PORT... [--key VALUE]",
     "backend the running daemon picks now (affinity or table) and the call's VIP; --key: the value of the "
     "pool's balancing key (pools not keyed by the Call-ID); in a pool with tcp:// or tls:// VIPs, a client's "
     "IP:PORT: per transport, the backend of its connection (entry or table), VIP, connection state, expiry",
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
            std::fputs(render_result(s.kind, result).c_str(), stdout);
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
