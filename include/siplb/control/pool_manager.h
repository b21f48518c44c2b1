// PoolManager: the control plane's authoritative state of every pool and
// backend. Every change (operator, DNS, health, reload) goes through one of
// its methods; each change bumps the version of the pools it touched and
// calls the change listener once, which builds and publishes a new dataplane
// snapshot. Pools not touched by a change keep their version, so their
// tables can be reused unchanged.
//
// Contract for discovery (DNS) and health checking:
//   - DNS: after each resolution of a pool's name call
//       set_discovered(pool, dns_name, backends)
//     with the full current answer (an empty vector means "the name has no
//     backends now"; do NOT call it on resolution failure: keep the old set).
//     A TLS-port name (_sips._tcp) does not make backends of its own for a
//     host that another source (static, SIP-port SRV, A/AAAA) already names:
//     its port becomes the tls_port of every such backend of that address;
//     a host only it names becomes a backend at the pool's default_port.
//     Weight and priority come from the SIP-port records when a backend has
//     any (one Maglev table places all transports), else from the TLS ones.
//     Only the best (lowest) SRV priority of a pool takes calls; lower
//     priorities are standby and take over when every better backend is out.
//     A backend that disappears from every source drains for
//     dns.drain_grace_s, then expire(now) removes it.
//   - Health: call set_health(pool, address, verdict, detail) on each state
//     transition (after your own hysteresis). Health alone never takes out
//     more than the pool's health.panic_threshold fraction of its eligible
//     backends; those kept in are reported with `panic = true`.
//   - probe_targets() lists what to probe (every known backend of every pool,
//     including drained/disabled ones so their health stays visible).
// All methods are control-thread only (not thread-safe); nothing blocks.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"
#include "siplb/config/config.h"

namespace siplb::control {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

struct DiscoveredBackend {
    Endpoint address;
    uint32_t weight = 1;    // SRV weight; 0 is treated as 1 (lowest share, still selectable)
    uint16_t priority = 0;  // SRV priority, lower is preferred; A/AAAA answers use 0
    uint32_t ttl_s = 0;
    // Set for _sips._tcp names: the record gives the host's TLS port, and
    // `address` is {host, pool default_port} until set_discovered merges it
    // into the backends that other sources give that host (see there).
    std::optional<uint16_t> tls_port;
};

enum class HealthVerdict : uint8_t { up, down, overloaded };
enum class AdminState : uint8_t { enabled, disabled, draining };

// What the dataplane is told for a backend; mirrors balance::BackendState.
// standby (a lower SRV priority held in reserve) maps to balance's draining:
// no new calls, existing dialogs stay.
enum class EffectiveState : uint8_t { active, draining, overloaded, down, disabled, standby };

std::string_view to_string(HealthVerdict v);
std::string_view to_string(AdminState s);
std::string_view to_string(EffectiveState s);
std::optional<HealthVerdict> parse_health_verdict(std::string_view text);

struct BackendView {
    Endpoint address;
    bool is_static = false;                        // configured in the file or added by `add`
    std::map<std::string, DiscoveredBackend> dns;  // DNS names that currently return it
    uint32_t configured_weight = 1;                // static weight (config or `weight` command)
    std::optional<uint32_t> weight_override;       // operator `weight` on a DNS-only backend
    uint16_t priority = 0;                         // 0 for static; best SRV priority otherwise
    uint16_t configured_tls_port = 5061;           // static: the config's tls_port
    uint16_t tls_port = 5061;  // effective: static -> configured; else best _sips._tcp record; else 5061
    AdminState admin = AdminState::enabled;
    std::string admin_by;  // who set admin state
    HealthVerdict health = HealthVerdict::up;
    std::string health_detail;
    TimePoint health_since{};
    std::optional<TimePoint> gone_since;  // vanished from every source: draining until grace ends
    // Computed on every change:
    EffectiveState state = EffectiveState::active;
    uint32_t weight = 1;  // effective weight given to the table
    bool panic = false;   // health says out, kept in by the panic threshold

    std::string source() const;  // "static", "dns:NAME", "static+dns:NAME"
};

struct PoolView {
    std::string name;
    uint64_t version = 0;  // bumped on every change of this pool
    double panic_threshold = 0.5;
    uint32_t drain_grace_s = 300;
    std::vector<BackendView> backends;  // sorted by address (deterministic table builds)
    uint64_t panic_events = 0;          // times health was overridden by the panic threshold
    uint16_t default_port = 5060;       // config default_port: hosts only a TLS-port name gives
    // Last answer of each TLS-port name, merged again whenever another
    // name's answer changes the pool's hosts.
    std::map<std::string, std::vector<DiscoveredBackend>> tls_answers;

    const BackendView* find(const Endpoint& ep) const;
};

struct ProbeTarget {
    std::string pool;
    Endpoint address;
    uint16_t tls_port = 5061;
};

// Who made a change: "uid=1000 pid=4242" (control socket, SO_PEERCRED),
// "dns", "health", "reload", "startup".
struct Actor {
    std::string who;
};

class PoolManager {
public:
    // Called after every change with the names of the pools whose version changed.
    using ChangeListener = std::function<void(const PoolManager&, const std::vector<std::string>& changed)>;
    using ClockFn = std::function<TimePoint()>;

    explicit PoolManager(
        const config::Config& cfg, ClockFn clock = [] { return Clock::now(); });

    void set_listener(ChangeListener listener) { listener_ = std::move(listener); }

    // --- discovery and health (see the contract above) ---
    Status set_discovered(const std::string& pool, const std::string& dns_name,
                          const std::vector<DiscoveredBackend>& backends);
    Status set_health(const std::string& pool, const Endpoint& address, HealthVerdict verdict, std::string detail);
    std::vector<ProbeTarget> probe_targets() const;
    // Removes backends whose DNS drain grace ended; returns how many.
    size_t expire();

    // --- operator commands ---
    Status drain(const std::string& pool, const Endpoint& address, const Actor& who);
    Status disable(const std::string& pool, const Endpoint& address, const Actor& who);
    Status enable(const std::string& pool, const Endpoint& address, const Actor& who);
    Status set_weight(const std::string& pool, const Endpoint& address, uint32_t weight, const Actor& who);
    Status add_static(const std::string& pool, const Endpoint& address, uint32_t weight, const Actor& who);
    Status remove_static(const std::string& pool, const Endpoint& address, const Actor& who);

    // Applies a reloaded config's pools: pools added/removed, static
    // backends, weights, enabled flags, panic threshold, DNS grace, DNS names
    // dropped. The caller has already refused changes that need a restart
    // (config::restart_required_changes). Operator drain/disable on backends
    // whose config did not change survive the reload; operator-added static
    // backends stay. Returns one human line per change.
    Result<std::vector<std::string>> apply_config(const config::Config& cfg, const Actor& who);

    // --- read side ---
    const std::vector<PoolView>& pools() const { return pools_; }
    const PoolView* find_pool(std::string_view name) const;
    uint64_t version() const { return version_; }  // bumped on every change (any pool)

private:
    static PoolView make_pool(const config::PoolConfig& pc, uint32_t drain_grace_s, TimePoint now);
    PoolView* pool_mut(std::string_view name);
    BackendView* backend_mut(PoolView& p, const Endpoint& ep);
    static void recompute(PoolView& p);
    // One name's answer, already keyed by the backend it belongs to; true if
    // anything changed.
    bool apply_answer(PoolView& p, const std::string& dns_name, std::map<Endpoint, DiscoveredBackend> answer,
                      TimePoint now);
    static std::map<Endpoint, DiscoveredBackend> merge_answer(const PoolView& p,
                                                              const std::vector<DiscoveredBackend>& found);
    void commit(std::vector<std::string> changed);
    Status set_admin(const std::string& pool, const Endpoint& address, AdminState s, const Actor& who);

    ClockFn clock_;
    ChangeListener listener_;
    std::vector<PoolView> pools_;
    // Last applied config per pool, to tell what a reload changed.
    std::map<std::string, config::PoolConfig, std::less<>> applied_;
    uint64_t version_ = 1;
};

}  // namespace siplb::control
