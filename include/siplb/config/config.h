// The whole daemon's configuration, as loaded from one TOML file.
// This header is the schema: every field documented here is accepted in
// the file under the same name (TOML keys use the field names below).
// load_config() validates everything and names file:line and key on error.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "siplb/balance/forward_mode.h"
#include "siplb/balance/key_spec.h"
#include "siplb/balance/table_size.h"
#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"
#include "siplb/dataplane/spec.h"
#include "siplb/protect/spec.h"

namespace siplb::config {

struct ControlConfig {
    std::string socket = "/run/siplb/siplb.sock";  // [control] socket
    uint32_t socket_mode = 0660;                   // socket_mode = "0660"
    std::string socket_owner;                      // user name; empty: keep
    std::string socket_group;                      // group name; empty: keep
    std::optional<Endpoint> metrics_listen;        // metrics = "127.0.0.1:9560"; off when absent
    // stop_grace_ms = 2000: on SIGTERM/SIGINT report "dataplane":"stopping"
    // in status (so a BGP watcher withdraws the VIPs) and keep forwarding
    // this long before stopping; 0 stops at once. A second signal stops at once.
    uint32_t stop_grace_ms = 0;

    bool operator==(const ControlConfig&) const = default;
};

struct LogConfig {
    std::string level = "info";  // [log] level: debug|info|warn|error

    bool operator==(const LogConfig&) const = default;
};

// [dataplane] and its tables are the dataplane's own spec (spec.h).
using PortConfig = dataplane::PortSpec;
using RouteConfig = dataplane::RouteSpec;
using NeighborConfig = dataplane::NeighborSpec;
using DataplaneConfig = dataplane::DataplaneSpec;

// How a pool's health checks exercise one transport of its backends.
//   options: a SIP OPTIONS request, its final response read as for UDP
//            (overload_codes and Retry-After included); over TCP one
//            connection per probe, framed by Content-Length (RFC 3261 §18.3);
//   connect: a TCP connect to the port, closed at once (TLS: siplb never
//            terminates TLS, so it cannot send SIP there);
//   off:     not checked.
enum class TransportCheck : uint8_t { off, options, connect };
inline std::string_view to_string(TransportCheck c) {
    switch (c) {
        case TransportCheck::off: return "off";
        case TransportCheck::options: return "options";
        case TransportCheck::connect: return "connect";
    }
    return "?";
}

struct HealthConfig {
    bool enabled = true;  // active checks; off: only passive ones (if any)
    uint32_t interval_ms = 2000;
    double jitter = 0.1;  // fraction of interval, 0..0.5
    uint32_t timeout_ms = 1000;
    uint32_t down_after = 3;  // consecutive failures
    uint32_t up_after = 2;    // consecutive successes
    std::vector<uint16_t> overload_codes = {503};
    bool honor_retry_after = true;
    double panic_threshold = 0.5;                // never take out more than this fraction by health alone
    std::string from_uri = "sip:siplb@invalid";  // From of OPTIONS probes
    // Passive checks (per pool; off by default): the dataplane counts each
    // backend's responses whose status is in overload_codes; when those
    // within one interval_ms reach passive_503_threshold, the backend is out
    // at once as overloaded (detail "passive: ..."), held for Retry-After
    // with honor_retry_after, and brought back by up_after OK probes. With
    // enabled = false passive checks still apply, and up_after intervals
    // below the threshold bring it back instead (nothing else could).
    bool passive = false;
    uint32_t passive_503_threshold = 50;  // overload responses per interval
    // Which transports the active checks exercise; a backend is up only while
    // every check asked for passes (each with its own down_after/up_after).
    // Unset in [health]: follows each pool's VIPs. A pool's values are
    // always set after loading:
    //   udp = "options" | "off": default options when the pool has UDP VIPs
    //         (or no VIPs: a route target receives UDP), else off;
    //   tcp = "options" | "connect" | "off": SIP port (address.port) over TCP,
    //         default options when the pool has tcp:// VIPs, else off;
    //   tls = "connect" | "off": the backend's tls_port, default connect when
    //         the pool has tls:// VIPs, else off.
    // A value other than off for a transport the pool does not listen on is
    // an error. Unset in a HealthConfig built in code: udp options, tcp and
    // tls off.
    std::optional<TransportCheck> udp;
    std::optional<TransportCheck> tcp;
    std::optional<TransportCheck> tls;

    bool operator==(const HealthConfig&) const = default;
};

struct DnsConfig {
    std::vector<Endpoint> resolvers;  // empty: /etc/resolv.conf
    uint32_t ttl_floor_s = 5;
    uint32_t ttl_ceiling_s = 3600;
    uint32_t retry_initial_ms = 1000;  // backoff after a failed resolution
    uint32_t retry_max_ms = 60000;
    uint32_t drain_grace_s = 300;  // backends removed from DNS drain this long
    uint32_t timeout_ms = 2000;

    bool operator==(const DnsConfig&) const = default;
};

using ForwardMode = balance::ForwardMode;

struct BackendConfig {
    Endpoint address;
    uint32_t weight = 1;  // 0 = configured but takes no new calls
    bool enabled = true;
    // Port of the backend's SIP over TLS listener, for the pool's tls://
    // VIPs (TCP and UDP VIPs use the address's port).
    uint16_t tls_port = 5061;

    bool operator==(const BackendConfig&) const = default;
};

// [[pool.rule]] and [pool.rate_limit] are the protect stage's spec (spec.h).
using RuleAction = protect::RuleAction;
using RuleConfig = protect::RuleSpec;
using RateLimitConfig = protect::RateLimitSpec;

struct PoolConfig {
    std::string name;
    std::vector<Endpoint> listen;         // VIPs (UDP): "ip:port" or "udp://ip:port"
    std::vector<Endpoint> tcp_listen;     // TCP VIPs: "tcp://ip:port" in listen
    std::vector<Endpoint> tls_listen;     // TLS VIPs: "tls://ip:port" in listen (carried, never terminated)
    std::vector<BackendConfig> backends;  // "ip:port" strings or {address, weight, enabled} tables
    std::vector<std::string> dns;         // SRV names (_sip._udp.x) or A/AAAA names
    uint16_t default_port = 5060;         // for A/AAAA discovered backends
    uint32_t table_size = 0;              // prime; 0 (auto): balance::maglev_table_size()
    uint64_t seed = 0x5349504c42ull;      // "SIPLB"
    ForwardMode mode = ForwardMode::nat;
    uint32_t dialog_idle_s = 7200;     // affinity idle time for INVITE dialogs
    uint32_t transaction_idle_s = 64;  // for REGISTER/OPTIONS/... transactions
    balance::KeySpec key;              // what places new dialogs and transactions
    balance::KeySpec key_fallback;     // for messages without the key's field
    HealthConfig health;               // [pool.health] overrides [health]
    std::vector<RuleConfig> rules;     // [[pool.rule]]
    RateLimitConfig rate_limit;        // [pool.rate_limit]

    bool operator==(const PoolConfig&) const = default;
};

struct Config {
    std::string source_path;  // file it was loaded from
    ControlConfig control;
    LogConfig log;
    DataplaneConfig dataplane;
    HealthConfig health;  // defaults for every pool
    DnsConfig dns;
    std::vector<PoolConfig> pools;

    const PoolConfig* find_pool(std::string_view name) const {
        for (const auto& p : pools)
            if (p.name == name) return &p;
        return nullptr;
    }
    bool operator==(const Config&) const = default;
};

// Errors read "FILE:LINE:COL: pool[0].backends[1]: what is wrong", one line
// per mistake (every mistake in the file is reported, not only the first).
// load_config() also reports a file that cannot be read.
Result<Config> load_config(const std::string& path);
Result<Config> parse_config(std::string_view toml_text, std::string_view source_name);

// What only the host can tell (run by `siplb --check`, not by load_config,
// so a config can be checked and tested away from its host): every
// net_af_packet / net_af_xdp port's iface exists, a net_af_xdp xdp_prog is
// readable. One line per problem.
Status check_host(const Config& c);

// Host names and SRV names (_sip._udp, _sip._tcp, _sips._tcp) accepted in pool.dns;
// on false, *why says what is wrong.
bool valid_dns_name(std::string_view name, std::string* why = nullptr);
// An SRV name whose records give TLS ports (RFC 3263 _sips._tcp), not SIP ports.
inline bool is_tls_srv_name(std::string_view name) {
    constexpr std::string_view prefix = "_sips._tcp.";
    return name.size() > prefix.size() && name.substr(0, prefix.size()) == prefix;
}

// Canonical TOML for a config: parse_config(format_config(c)) == c (apart
// from source_path). Used by tests and for showing the effective config.
std::string format_config(const Config& config);

// A pool's VIPs as written in `listen`: UDP ones as "ip:port", then
// "tcp://ip:port" and "tls://ip:port".
std::vector<std::string> listen_entries(const PoolConfig& pool);

// One difference between two configs, for reload logging. Changes that the
// running daemon cannot apply live have needs_restart set:
//   - every [dataplane] key (EAL args, workers, burst, mempools, rings,
//     affinity capacity, ports, routes, neighbors, reassembly): the ports and
//     lcores are set up once at start;
//   - every [control] key (socket path, mode, owner, group, metrics listener,
//     stop grace): bound once at start;
// Everything else applies live: log level, [health], [dns], pools added or
// removed, VIPs, backends, weights, DNS names, table size, seed (remaps
// calls, so it is flagged in the text), mode, timers, rules and rate limits
// (compiled into the next snapshot; unchanged limits keep their buckets).
struct ConfigChange {
    std::string description;  // "pool lund: backend 198.51.100.13:5060 added"
    bool needs_restart = false;
    bool operator==(const ConfigChange&) const = default;
};
std::vector<ConfigChange> diff_configs(const Config& before, const Config& after);

// Human-readable list of differences; lines of changes that need a restart
// end in " (needs restart)". Empty when the configs are equivalent.
std::vector<std::string> describe_changes(const Config& before, const Config& after);
// Only the changes that need a restart; a live reload must refuse when this
// is not empty.
std::vector<std::string> restart_required_changes(const Config& before, const Config& after);

}  // namespace siplb::config
