#include "siplb/control/pool_manager.h"

#include <algorithm>
#include <cmath>

#include "siplb/control/log.h"

namespace siplb::control {

std::string_view to_string(HealthVerdict v) {
    switch (v) {
        case HealthVerdict::up: return "up";
        case HealthVerdict::down: return "down";
        case HealthVerdict::overloaded: return "overloaded";
    }
    return "?";
}

std::string_view to_string(AdminState s) {
    switch (s) {
        case AdminState::enabled: return "enabled";
        case AdminState::disabled: return "disabled";
        case AdminState::draining: return "draining";
    }
    return "?";
}

std::string_view to_string(EffectiveState s) {
    switch (s) {
        case EffectiveState::active: return "active";
        case EffectiveState::draining: return "draining";
        case EffectiveState::overloaded: return "overloaded";
        case EffectiveState::down: return "down";
        case EffectiveState::disabled: return "disabled";
        case EffectiveState::standby: return "standby";
    }
    return "?";
}

std::optional<HealthVerdict> parse_health_verdict(std::string_view text) {
    if (text == "up") return HealthVerdict::up;
    if (text == "down") return HealthVerdict::down;
    if (text == "overloaded") return HealthVerdict::overloaded;
    return std::nullopt;
}

std::string BackendView::source() const {
    std::string s;
    if (is_static) s = "static";
    for (const auto& [name, rec] : dns) {
        if (!s.empty()) s += '+';
        s += "dns:" + name;
    }
    if (s.empty()) s = "none";
    return s;
}

const BackendView* PoolView::find(const Endpoint& ep) const {
    for (const auto& b : backends)
        if (b.address == ep) return &b;
    return nullptr;
}

namespace {

BackendView make_backend(const Endpoint& ep, TimePoint now) {
    BackendView b;
    b.address = ep;
    b.health_since = now;
    return b;
}

void sort_backends(PoolView& p) {
    std::sort(p.backends.begin(), p.backends.end(),
              [](const BackendView& a, const BackendView& b) { return a.address < b.address; });
}

bool same_backend_config(const config::BackendConfig& a, const config::BackendConfig& b) {
    return a.address == b.address && a.weight == b.weight && a.enabled == b.enabled && a.tls_port == b.tls_port;
}

// SIP-port records say where a backend is; TLS-port ones only add its TLS
// port, unless nothing else names the backend.
bool has_sip_port_record(const BackendView& b) {
    return std::any_of(b.dns.begin(), b.dns.end(), [](const auto& kv) { return !kv.second.tls_port; });
}
bool counts_for_placement(const BackendView& b, const DiscoveredBackend& rec) {
    return !rec.tls_port || !has_sip_port_record(b);
}

}  // namespace

PoolView PoolManager::make_pool(const config::PoolConfig& pc, uint32_t drain_grace_s, TimePoint now) {
    PoolView p;
    p.name = pc.name;
    p.version = 1;
    p.panic_threshold = pc.health.panic_threshold;
    p.drain_grace_s = drain_grace_s;
    p.default_port = pc.default_port;
    for (const auto& bc : pc.backends) {
        if (p.find(bc.address)) continue;  // the loader rejects duplicates; be safe anyway
        BackendView b = make_backend(bc.address, now);
        b.is_static = true;
        b.configured_weight = bc.weight;
        b.configured_tls_port = bc.tls_port;
        if (!bc.enabled) {
            b.admin = AdminState::disabled;
            b.admin_by = "config";
        }
        p.backends.push_back(std::move(b));
    }
    sort_backends(p);
    recompute(p);
    return p;
}

PoolManager::PoolManager(const config::Config& cfg, ClockFn clock) : clock_(std::move(clock)) {
    const TimePoint now = clock_();
    for (const auto& pc : cfg.pools) {
        applied_[pc.name] = pc;
        pools_.push_back(make_pool(pc, cfg.dns.drain_grace_s, now));
    }
}

const PoolView* PoolManager::find_pool(std::string_view name) const {
    for (const auto& p : pools_)
        if (p.name == name) return &p;
    return nullptr;
}

PoolView* PoolManager::pool_mut(std::string_view name) {
    for (auto& p : pools_)
        if (p.name == name) return &p;
    return nullptr;
}

BackendView* PoolManager::backend_mut(PoolView& p, const Endpoint& ep) {
    for (auto& b : p.backends)
        if (b.address == ep) return &b;
    return nullptr;
}

// Effective state of every backend of one pool. Order of precedence:
// operator (disabled, draining) > gone from all sources (draining) > health
// (down/overloaded, limited by the panic threshold) > SRV priority (standby).
void PoolManager::recompute(PoolView& p) {
    size_t eligible = 0;
    std::vector<BackendView*> unhealthy;
    for (auto& b : p.backends) {
        const bool is_eligible = b.admin == AdminState::enabled && !b.gone_since;
        if (!is_eligible) continue;
        ++eligible;
        if (b.health != HealthVerdict::up) unhealthy.push_back(&b);
    }
    const double threshold = std::clamp(p.panic_threshold, 0.0, 1.0);
    const size_t allowed_out = static_cast<size_t>(std::floor(threshold * static_cast<double>(eligible) + 1e-9));
    // The first to fail stay out; later failures beyond the limit are kept in.
    std::sort(unhealthy.begin(), unhealthy.end(), [](const BackendView* a, const BackendView* b) {
        if (a->health_since != b->health_since) return a->health_since < b->health_since;
        return a->address < b->address;
    });
    std::set<const BackendView*> kept_in;
    for (size_t i = allowed_out; i < unhealthy.size(); ++i) kept_in.insert(unhealthy[i]);

    std::optional<uint16_t> best_priority;
    for (auto& b : p.backends) {
        const bool was_panic = b.panic;
        b.panic = kept_in.count(&b) > 0;
        if (b.panic && !was_panic) {
            ++p.panic_events;
            log(LogLevel::warn, "health panic threshold reached, backend kept in rotation",
                {{"pool", p.name}, {"backend", b.address.to_string()}, {"health", std::string(to_string(b.health))}});
        }
        const bool available = b.admin == AdminState::enabled && !b.gone_since &&
                               (b.health == HealthVerdict::up || b.panic);
        if (available && (!best_priority || b.priority < *best_priority)) best_priority = b.priority;
    }
    for (auto& b : p.backends) {
        if (b.is_static) {
            b.weight = b.configured_weight;
        } else if (b.weight_override) {
            b.weight = *b.weight_override;
        } else {
            uint32_t w = 0;
            for (const auto& [name, rec] : b.dns)
                if (counts_for_placement(b, rec)) w = std::max(w, rec.weight);
            b.weight = std::max<uint32_t>(w, 1);
        }
        b.tls_port = b.is_static ? b.configured_tls_port : 5061;
        if (!b.is_static) {
            // The best-priority TLS record (names in order break ties).
            std::optional<uint16_t> best;
            for (const auto& [name, rec] : b.dns)
                if (rec.tls_port && (!best || rec.priority < *best)) {
                    best = rec.priority;
                    b.tls_port = *rec.tls_port;
                }
        }
        if (b.admin == AdminState::disabled) {
            b.state = EffectiveState::disabled;
        } else if (b.admin == AdminState::draining || b.gone_since) {
            b.state = EffectiveState::draining;
        } else if (b.health != HealthVerdict::up && !b.panic) {
            b.state = b.health == HealthVerdict::down ? EffectiveState::down : EffectiveState::overloaded;
        } else if (best_priority && b.priority > *best_priority) {
            b.state = EffectiveState::standby;
        } else {
            b.state = EffectiveState::active;
        }
    }
}

void PoolManager::commit(std::vector<std::string> changed) {
    if (changed.empty()) return;
    std::sort(changed.begin(), changed.end());
    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
    ++version_;
    for (const auto& name : changed) {
        if (PoolView* p = pool_mut(name)) {
            sort_backends(*p);
            recompute(*p);
            ++p->version;
        }
    }
    if (listener_) listener_(*this, changed);
}

std::map<Endpoint, DiscoveredBackend> PoolManager::merge_answer(const PoolView& p,
                                                                const std::vector<DiscoveredBackend>& found) {
    // Best record per backend: the answer may list one twice.
    std::map<Endpoint, DiscoveredBackend> answer;
    auto add = [&](const Endpoint& ep, DiscoveredBackend d) {
        d.address = ep;
        auto [it, inserted] = answer.emplace(ep, d);
        if (!inserted && d.priority < it->second.priority) it->second = d;
    };
    for (const auto& d : found) {
        if (!d.tls_port) {
            add(d.address, d);
            continue;
        }
        bool named = false;
        for (const auto& b : p.backends)
            if (b.address.ip == d.address.ip && (b.is_static || has_sip_port_record(b))) {
                add(b.address, d);
                named = true;
            }
        if (!named) add(Endpoint{d.address.ip, p.default_port}, d);
    }
    return answer;
}

Status PoolManager::set_discovered(const std::string& pool, const std::string& dns_name,
                                   const std::vector<DiscoveredBackend>& found) {
    PoolView* p = pool_mut(pool);
    if (!p) return Status::fail("unknown pool '" + pool + "'");
    const TimePoint now = clock_();
    const bool tls_name = config::is_tls_srv_name(dns_name);
    if (tls_name) p->tls_answers[dns_name] = found;
    bool changed = apply_answer(*p, dns_name, merge_answer(*p, found), now);
    // Another source's hosts changed: TLS ports follow them.
    if (!tls_name)
        for (const auto& [name, last] : p->tls_answers) changed |= apply_answer(*p, name, merge_answer(*p, last), now);
    if (changed) commit({pool});
    return ok_status();
}

bool PoolManager::apply_answer(PoolView& pv, const std::string& dns_name, std::map<Endpoint, DiscoveredBackend> answer,
                               TimePoint now) {
    PoolView* p = &pv;
    const std::string& pool = pv.name;
    bool changed = false;
    for (auto& b : p->backends) {
        auto it = answer.find(b.address);
        auto old = b.dns.find(dns_name);
        if (it == answer.end()) {
            if (old == b.dns.end()) continue;
            b.dns.erase(old);
            changed = true;
            if (!b.is_static && b.dns.empty() && !b.gone_since) {
                b.gone_since = now;
                log(LogLevel::info, "backend gone from DNS, draining",
                    {{"pool", pool},
                     {"backend", b.address.to_string()},
                     {"name", dns_name},
                     {"grace_s", std::to_string(p->drain_grace_s)},
                     {"by", "dns"}});
            }
            continue;
        }
        const DiscoveredBackend& d = it->second;
        if (old == b.dns.end() || old->second.weight != d.weight || old->second.priority != d.priority ||
            old->second.tls_port != d.tls_port)
            changed = true;
        if (old != b.dns.end() && old->second.ttl_s != d.ttl_s) old->second.ttl_s = d.ttl_s;
        b.dns[dns_name] = d;
        if (b.gone_since) {
            b.gone_since.reset();
            changed = true;
            log(LogLevel::info, "backend back in DNS",
                {{"pool", pool}, {"backend", b.address.to_string()}, {"by", "dns"}});
        }
        answer.erase(it);
    }
    for (const auto& [ep, d] : answer) {
        BackendView b = make_backend(ep, now);
        b.dns[dns_name] = d;
        p->backends.push_back(std::move(b));
        changed = true;
        log(LogLevel::info, "backend discovered",
            {{"pool", pool},
             {"backend", ep.to_string()},
             {"name", dns_name},
             {"priority", std::to_string(d.priority)},
             {"weight", std::to_string(d.weight)},
             {"by", "dns"}});
    }
    // Priorities follow the records: the best priority over all names.
    for (auto& b : p->backends) {
        if (b.is_static || b.dns.empty()) continue;
        uint16_t prio = UINT16_MAX;
        for (const auto& [n, rec] : b.dns)
            if (counts_for_placement(b, rec)) prio = std::min(prio, rec.priority);
        if (prio != b.priority) {
            b.priority = prio;
            changed = true;
        }
    }
    return changed;
}

Status PoolManager::set_health(const std::string& pool, const Endpoint& address, HealthVerdict verdict,
                               std::string detail) {
    PoolView* p = pool_mut(pool);
    if (!p) return Status::fail("unknown pool '" + pool + "'");
    BackendView* b = backend_mut(*p, address);
    if (!b) return Status::fail("pool '" + pool + "' has no backend " + address.to_string());
    if (b->health == verdict) {
        b->health_detail = std::move(detail);  // detail refresh only: no new snapshot
        return ok_status();
    }
    log(verdict == HealthVerdict::up ? LogLevel::info : LogLevel::warn, "backend health changed",
        {{"pool", pool},
         {"backend", address.to_string()},
         {"from", std::string(to_string(b->health))},
         {"to", std::string(to_string(verdict))},
         {"detail", detail},
         {"by", "health"}});
    b->health = verdict;
    b->health_detail = std::move(detail);
    b->health_since = clock_();
    commit({pool});
    return ok_status();
}

std::vector<ProbeTarget> PoolManager::probe_targets() const {
    std::vector<ProbeTarget> out;
    for (const auto& p : pools_)
        for (const auto& b : p.backends) out.push_back({p.name, b.address, b.tls_port});
    return out;
}

size_t PoolManager::expire() {
    const TimePoint now = clock_();
    size_t removed = 0;
    std::vector<std::string> changed;
    for (auto& p : pools_) {
        const auto grace = std::chrono::seconds(p.drain_grace_s);
        auto it = std::remove_if(p.backends.begin(), p.backends.end(), [&](const BackendView& b) {
            if (!b.gone_since || now - *b.gone_since < grace) return false;
            log(LogLevel::info, "drained backend removed",
                {{"pool", p.name}, {"backend", b.address.to_string()}, {"by", "dns"}});
            return true;
        });
        if (it != p.backends.end()) {
            removed += static_cast<size_t>(p.backends.end() - it);
            p.backends.erase(it, p.backends.end());
            changed.push_back(p.name);
        }
    }
    commit(std::move(changed));
    return removed;
}

Status PoolManager::set_admin(const std::string& pool, const Endpoint& address, AdminState s, const Actor& who) {
    PoolView* p = pool_mut(pool);
    if (!p) return Status::fail("unknown pool '" + pool + "'");
    BackendView* b = backend_mut(*p, address);
    if (!b) return Status::fail("pool '" + pool + "' has no backend " + address.to_string());
    if (b->admin == s) return ok_status();
    log(LogLevel::info, "backend admin state changed",
        {{"pool", pool},
         {"backend", address.to_string()},
         {"from", std::string(to_string(b->admin))},
         {"to", std::string(to_string(s))},
         {"by", who.who}});
    b->admin = s;
    b->admin_by = who.who;
    commit({pool});
    return ok_status();
}

Status PoolManager::drain(const std::string& pool, const Endpoint& address, const Actor& who) {
    return set_admin(pool, address, AdminState::draining, who);
}
Status PoolManager::disable(const std::string& pool, const Endpoint& address, const Actor& who) {
    return set_admin(pool, address, AdminState::disabled, who);
}
Status PoolManager::enable(const std::string& pool, const Endpoint& address, const Actor& who) {
    return set_admin(pool, address, AdminState::enabled, who);
}

Status PoolManager::set_weight(const std::string& pool, const Endpoint& address, uint32_t weight, const Actor& who) {
    PoolView* p = pool_mut(pool);
    if (!p) return Status::fail("unknown pool '" + pool + "'");
    BackendView* b = backend_mut(*p, address);
    if (!b) return Status::fail("pool '" + pool + "' has no backend " + address.to_string());
    if (b->weight == weight) return ok_status();
    log(LogLevel::info, "backend weight changed",
        {{"pool", pool},
         {"backend", address.to_string()},
         {"from", std::to_string(b->weight)},
         {"to", std::to_string(weight)},
         {"by", who.who}});
    if (b->is_static)
        b->configured_weight = weight;
    else
        b->weight_override = weight;
    commit({pool});
    return ok_status();
}

Status PoolManager::add_static(const std::string& pool, const Endpoint& address, uint32_t weight, const Actor& who) {
    PoolView* p = pool_mut(pool);
    if (!p) return Status::fail("unknown pool '" + pool + "'");
    if (address.port == 0) return Status::fail("backend " + address.to_string() + " needs a port");
    if (BackendView* b = backend_mut(*p, address)) {
        if (b->is_static) return Status::fail("pool '" + pool + "' already has static backend " + address.to_string());
        b->is_static = true;
        b->priority = 0;
        b->configured_weight = weight;
        b->gone_since.reset();
    } else {
        BackendView nb = make_backend(address, clock_());
        nb.is_static = true;
        nb.configured_weight = weight;
        p->backends.push_back(std::move(nb));
    }
    log(LogLevel::info, "static backend added",
        {{"pool", pool}, {"backend", address.to_string()}, {"weight", std::to_string(weight)}, {"by", who.who}});
    commit({pool});
    return ok_status();
}

Status PoolManager::remove_static(const std::string& pool, const Endpoint& address, const Actor& who) {
    PoolView* p = pool_mut(pool);
    if (!p) return Status::fail("unknown pool '" + pool + "'");
    BackendView* b = backend_mut(*p, address);
    if (!b || !b->is_static) return Status::fail("pool '" + pool + "' has no static backend " + address.to_string());
    if (b->dns.empty()) {
        p->backends.erase(p->backends.begin() + (b - p->backends.data()));
        log(LogLevel::info, "static backend removed",
            {{"pool", pool}, {"backend", address.to_string()}, {"by", who.who}});
    } else {
        b->is_static = false;
        log(LogLevel::info, "static source removed, backend stays from DNS",
            {{"pool", pool}, {"backend", address.to_string()}, {"source", b->source()}, {"by", who.who}});
    }
    commit({pool});
    return ok_status();
}

Result<std::vector<std::string>> PoolManager::apply_config(const config::Config& cfg, const Actor& who) {
    std::vector<std::string> lines;
    std::vector<std::string> changed;
    // Pools removed from the file go away with their backends; new pools
    // start from their static backends. Pool order follows the file.
    for (const auto& p : pools_) {
        if (cfg.find_pool(p.name)) continue;
        lines.push_back("pool " + p.name + " removed");
        applied_.erase(p.name);
    }
    std::vector<PoolView> ordered;
    for (const auto& pc : cfg.pools) {
        if (PoolView* p = pool_mut(pc.name)) {
            ordered.push_back(std::move(*p));
            continue;
        }
        PoolView p = make_pool(pc, cfg.dns.drain_grace_s, clock_());
        lines.push_back("pool " + pc.name + " added with " + std::to_string(p.backends.size()) + " static backends");
        changed.push_back(pc.name);
        applied_[pc.name] = pc;
        ordered.push_back(std::move(p));
    }
    const bool pool_set_changed = !lines.empty();
    pools_ = std::move(ordered);
    const TimePoint now = clock_();
    for (const auto& pc : cfg.pools) {
        PoolView& p = *pool_mut(pc.name);
        const config::PoolConfig& old = applied_[pc.name];
        const size_t before = lines.size();
        auto note = [&](std::string what) { lines.push_back("pool " + pc.name + ": " + std::move(what)); };

        if (p.panic_threshold != pc.health.panic_threshold) {
            note("panic_threshold " + std::to_string(p.panic_threshold) + " -> " +
                 std::to_string(pc.health.panic_threshold));
            p.panic_threshold = pc.health.panic_threshold;
        }
        if (p.default_port != pc.default_port) {
            // Hosts only a TLS-port name gives move to the new port at its next answer.
            note("default_port " + std::to_string(p.default_port) + " -> " + std::to_string(pc.default_port));
            p.default_port = pc.default_port;
        }
        if (p.drain_grace_s != cfg.dns.drain_grace_s) {
            note("drain_grace_s " + std::to_string(p.drain_grace_s) + " -> " + std::to_string(cfg.dns.drain_grace_s));
            p.drain_grace_s = cfg.dns.drain_grace_s;
        }
        auto old_cfg = [&](const Endpoint& ep) -> const config::BackendConfig* {
            for (const auto& bc : old.backends)
                if (bc.address == ep) return &bc;
            return nullptr;
        };
        for (const auto& bc : pc.backends) {
            const config::BackendConfig* prev = old_cfg(bc.address);
            if (prev && same_backend_config(*prev, bc)) continue;  // unchanged: keep runtime state
            BackendView* b = backend_mut(p, bc.address);
            if (!b) {
                p.backends.push_back(make_backend(bc.address, now));
                b = &p.backends.back();
                note("backend " + bc.address.to_string() + " added");
            } else if (!prev) {
                note("backend " + bc.address.to_string() + " now configured statically");
            }
            b->is_static = true;
            b->priority = 0;
            b->gone_since.reset();
            if (!prev || prev->weight != bc.weight) {
                if (prev)
                    note("backend " + bc.address.to_string() + " weight " + std::to_string(prev->weight) + " -> " +
                         std::to_string(bc.weight));
                b->configured_weight = bc.weight;
            }
            if (!prev || prev->tls_port != bc.tls_port) {
                if (prev)
                    note("backend " + bc.address.to_string() + " tls_port " + std::to_string(prev->tls_port) + " -> " +
                         std::to_string(bc.tls_port));
                b->configured_tls_port = bc.tls_port;
            }
            if (!prev || prev->enabled != bc.enabled) {
                const AdminState s = bc.enabled ? AdminState::enabled : AdminState::disabled;
                if (b->admin != s) {
                    note("backend " + bc.address.to_string() + " " + std::string(to_string(s)));
                    b->admin = s;
                    b->admin_by = who.who;
                }
            }
        }
        for (const auto& bc : old.backends) {
            bool still = false;
            for (const auto& nb : pc.backends) still = still || nb.address == bc.address;
            if (still) continue;
            BackendView* b = backend_mut(p, bc.address);
            if (!b || !b->is_static) continue;
            b->is_static = false;
            if (b->dns.empty()) {
                b->gone_since = now;
                note("backend " + bc.address.to_string() + " removed from config, draining for " +
                     std::to_string(p.drain_grace_s) + "s");
            } else {
                note("backend " + bc.address.to_string() + " no longer static, stays from DNS");
            }
        }
        // DNS names dropped from the config no longer contribute backends.
        for (const auto& name : old.dns) {
            if (std::find(pc.dns.begin(), pc.dns.end(), name) != pc.dns.end()) continue;
            note("dns name " + name + " removed");
            p.tls_answers.erase(name);
            for (auto& b : p.backends) {
                if (b.dns.erase(name) && !b.is_static && b.dns.empty() && !b.gone_since) b.gone_since = now;
            }
        }
        for (const auto& name : pc.dns)
            if (std::find(old.dns.begin(), old.dns.end(), name) == old.dns.end()) note("dns name " + name + " added");
        applied_[pc.name] = pc;
        if (lines.size() != before) changed.push_back(pc.name);
    }
    for (const auto& l : lines) log(LogLevel::info, "reload change", {{"change", l}, {"by", who.who}});
    if (pool_set_changed && changed.empty()) {
        // Only removals: still a new snapshot without the removed pools.
        ++version_;
        if (listener_) listener_(*this, changed);
        return lines;
    }
    commit(std::move(changed));
    return lines;
}

}  // namespace siplb::control
