// Glue between discovery/health and the PoolManager (see the header).
#include "siplb/control/discovery_wiring.h"

#include <algorithm>
#include <map>

#include "siplb/control/log.h"

namespace siplb::control {

using discovery::DnsDiscovery;
using discovery::TimePoint;

namespace {

control::LogLevel to_control(discovery::LogLevel l) {
    switch (l) {
        case discovery::LogLevel::debug: return control::LogLevel::debug;
        case discovery::LogLevel::info: return control::LogLevel::info;
        case discovery::LogLevel::warn: return control::LogLevel::warn;
        case discovery::LogLevel::error: return control::LogLevel::error;
    }
    return control::LogLevel::info;
}

control::LogLevel to_control(health::LogLevel l) { return to_control(static_cast<discovery::LogLevel>(l)); }

control::HealthVerdict to_control(health::Verdict v) {
    switch (v) {
        case health::Verdict::up: return control::HealthVerdict::up;
        case health::Verdict::down: return control::HealthVerdict::down;
        case health::Verdict::overloaded: return control::HealthVerdict::overloaded;
    }
    return control::HealthVerdict::up;
}

health::Verdict from_control(control::HealthVerdict v) {
    switch (v) {
        case control::HealthVerdict::up: return health::Verdict::up;
        case control::HealthVerdict::down: return health::Verdict::down;
        case control::HealthVerdict::overloaded: return health::Verdict::overloaded;
    }
    return health::Verdict::up;
}

int64_t ms_until(TimePoint t, TimePoint now) {
    return std::max<int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(t - now).count());
}

}  // namespace

Result<std::unique_ptr<DiscoveryWiring>> DiscoveryWiring::create(const config::Config& cfg, control::PoolManager& pm) {
    using R = Result<std::unique_ptr<DiscoveryWiring>>;
    std::unique_ptr<DiscoveryWiring> w(new DiscoveryWiring(pm));
    DiscoveryWiring* self = w.get();
    auto dns = DnsDiscovery::create(
        cfg.dns,
        [self](const std::string& pool, const std::string& name, const std::vector<discovery::DiscoveredBackend>& set) {
            std::vector<control::DiscoveredBackend> out;
            out.reserve(set.size());
            for (const auto& b : set) out.push_back({b.address, b.weight, b.priority, b.ttl_s, b.tls_port});
            auto st = self->pm_.set_discovered(pool, name, out);
            if (!st.ok())
                control::log(control::LogLevel::error, "dns result rejected",
                             {{"pool", pool}, {"name", name}, {"error", st.message()}});
            self->sync_targets(Clock::now());
        },
        [](discovery::LogLevel l, const std::string& m) { control::log(to_control(l), m); });
    if (!dns.ok()) return R::fail(dns.message());
    w->dns_ = std::move(dns.value());

    health::HealthChecker::Options opts;
    opts.log = [](health::LogLevel l, const std::string& m) { control::log(to_control(l), m); };
    opts.user_agent = "siplb";
    auto hc = health::HealthChecker::create(
        [self](const std::string& pool, const Endpoint& ep, health::Verdict v, const std::string& detail) {
            auto st = self->pm_.set_health(pool, ep, to_control(v), detail);
            if (!st.ok())
                control::log(control::LogLevel::warn, "health verdict rejected",
                             {{"pool", pool}, {"backend", ep.to_string()}, {"error", st.message()}});
        },
        std::move(opts));
    if (!hc.ok()) return R::fail(hc.message());
    w->health_ = std::move(hc.value());

    for (const auto& p : cfg.pools) {
        w->pools_.push_back(p.name);
        w->health_->set_pool(p.name, p.health);
        for (const auto& name : p.dns) {
            auto st = w->dns_->add_name(p.name, name, p.default_port);
            if (!st.ok()) return R::fail("pool '" + p.name + "': " + st.message());
        }
    }
    w->sync_targets(Clock::now());
    w->adopt_verdicts();
    return w;
}

void DiscoveryWiring::adopt_verdicts() {
    std::vector<std::pair<std::string, Endpoint>> unchecked;
    for (const auto& p : pm_.pools()) {
        for (const auto& b : p.backends) {
            if (b.health == control::HealthVerdict::up) continue;
            if (!health_->assume(p.name, b.address, from_control(b.health))) unchecked.emplace_back(p.name, b.address);
        }
    }
    for (const auto& [pool, ep] : unchecked) {
        auto st = pm_.set_health(pool, ep, control::HealthVerdict::up, "health checks off");
        if (!st.ok())
            control::log(control::LogLevel::warn, "health verdict rejected",
                         {{"pool", pool}, {"backend", ep.to_string()}, {"error", st.message()}});
    }
}

void DiscoveryWiring::observe_passive(const std::vector<health::PassiveSample>& samples, TimePoint now) {
    // Track backends added since the last process(), so this reading is
    // already their baseline.
    if (pm_.version() != synced_version_) sync_targets(now);
    health_->observe_passive(samples, now);
}

void DiscoveryWiring::sync_targets(TimePoint now) {
    std::map<std::string, std::vector<health::CheckTarget>> by_pool;
    for (const auto& p : pools_) by_pool[p];
    for (const auto& t : pm_.probe_targets()) by_pool[t.pool].push_back({t.address, t.tls_port});
    for (const auto& [pool, eps] : by_pool) health_->set_targets(pool, eps, now);
    synced_version_ = pm_.version();
}

int DiscoveryWiring::timeout_ms(TimePoint now) {
    const int a = dns_->timeout_ms(now);
    const int b = health_->timeout_ms(now);
    if (a < 0) return b;
    if (b < 0) return a;
    return std::min(a, b);
}

std::vector<pollfd> DiscoveryWiring::fds() {
    std::vector<pollfd> v;
    dns_->fds(v);
    health_->fds(v);
    return v;
}

void DiscoveryWiring::process(const std::vector<pollfd>& ready, TimePoint now) {
    // Operator add/remove and config reloads change the backend list too.
    if (pm_.version() != synced_version_) sync_targets(now);
    dns_->process(ready, now);
    health_->process(ready, now);
}

control::EventLoop::Source DiscoveryWiring::as_source() {
    control::EventLoop::Source s;
    s.fds = [this] { return fds(); };
    s.timeout_ms = [this] { return timeout_ms(Clock::now()); };
    s.process = [this](const std::vector<pollfd>& ready) { process(ready, Clock::now()); };
    return s;
}

bool DiscoveryWiring::resolve_now(const std::string& pool) { return dns_->resolve_now(pool); }

nlohmann::json DiscoveryWiring::status_json(TimePoint now, const std::string& pool) const {
    nlohmann::json dns = nlohmann::json::array();
    for (const auto& n : dns_->status()) {
        if (!pool.empty() && n.pool != pool) continue;
        nlohmann::json backends = nlohmann::json::array();
        for (const auto& b : n.backends)
            backends.push_back({{"address", b.address.to_string()},
                                {"weight", b.weight},
                                {"priority", b.priority},
                                {"tls_port", b.tls_port ? nlohmann::json(*b.tls_port) : nlohmann::json(nullptr)},
                                {"target", b.target}});
        dns.push_back({{"pool", n.pool},
                       {"name", n.name},
                       {"type", n.srv ? "SRV" : "A/AAAA"},
                       {"resolutions_ok", n.resolutions_ok},
                       {"resolutions_failed", n.resolutions_failed},
                       {"consecutive_failures", n.consecutive_failures},
                       {"changes", n.changes},
                       {"last_error", n.last_error},
                       {"last_ttl_s", n.last_ttl_s},
                       {"in_flight", n.in_flight},
                       {"has_result", n.has_result},
                       {"next_refresh_in_ms", n.in_flight ? 0 : ms_until(n.next_refresh, now)},
                       {"backends", backends}});
    }
    nlohmann::json probes = nlohmann::json::array();
    for (const auto& s : health_->status(now)) {
        if (!pool.empty() && s.pool != pool) continue;
        nlohmann::json checks = nlohmann::json::array();
        for (const auto& c : s.checks)
            checks.push_back({{"check", c.check},
                              {"method", c.method},
                              {"target", c.target.to_string()},
                              {"verdict", std::string(health::to_string(c.verdict))},
                              {"consecutive_ok", c.consecutive_ok},
                              {"consecutive_failures", c.consecutive_failures},
                              {"probes_sent", c.probes_sent},
                              {"responses", c.responses},
                              {"timeouts", c.timeouts},
                              {"unreachable", c.unreachable},
                              {"bad_responses", c.bad_responses},
                              {"overloads", c.overloads},
                              {"last_status", c.last_status},
                              {"last_detail", c.last_detail},
                              {"last_rtt_ms", c.last_rtt_ms}});
        probes.push_back({{"pool", s.pool},
                          {"backend", s.address.to_string()},
                          {"verdict", std::string(health::to_string(s.verdict))},
                          {"consecutive_ok", s.consecutive_ok},
                          {"consecutive_failures", s.consecutive_failures},
                          {"probes_sent", s.probes_sent},
                          {"responses", s.responses},
                          {"timeouts", s.timeouts},
                          {"unreachable", s.unreachable},
                          {"overloads", s.overloads},
                          {"last_status", s.last_status},
                          {"last_detail", s.last_detail},
                          {"last_rtt_ms", s.last_rtt_ms},
                          {"overloaded_for_ms", s.overloaded_for_ms},
                          {"next_probe_in_ms", s.next_probe_in_ms},
                          {"passive_trips", s.passive_trips},
                          {"passive_detail", s.passive_detail},
                          {"checks", checks}});
    }
    return {{"dns", dns}, {"probes", probes}};
}

}  // namespace siplb::control
