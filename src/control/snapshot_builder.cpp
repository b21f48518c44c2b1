#include "siplb/control/snapshot_builder.h"

#include <algorithm>
#include <cstring>

#include "siplb/balance/hash.h"
#include "siplb/balance/pick.h"
#include "siplb/control/log.h"

namespace siplb::control {

balance::BackendState to_balance_state(EffectiveState s) {
    switch (s) {
        case EffectiveState::active: return balance::BackendState::active;
        case EffectiveState::draining: return balance::BackendState::draining;
        case EffectiveState::standby: return balance::BackendState::draining;
        case EffectiveState::overloaded: return balance::BackendState::overloaded;
        case EffectiveState::down: return balance::BackendState::down;
        case EffectiveState::disabled: return balance::BackendState::disabled;
    }
    return balance::BackendState::disabled;
}

SnapshotBuilder::SnapshotBuilder(const config::Config& cfg) { set_config(cfg); }

void SnapshotBuilder::set_config(const config::Config& cfg) {
    std::map<std::string, config::PoolConfig, std::less<>> next;
    for (const auto& p : cfg.pools) {
        auto old = params_.find(p.name);
        if (old != params_.end() &&
            (old->second.table_size != p.table_size || old->second.seed != p.seed || old->second.mode != p.mode ||
             old->second.dialog_idle_s != p.dialog_idle_s || old->second.transaction_idle_s != p.transaction_idle_s ||
             old->second.key != p.key || old->second.key_fallback != p.key_fallback || old->second.listen != p.listen ||
             old->second.tcp_listen != p.tcp_listen || old->second.tls_listen != p.tls_listen ||
             old->second.health.overload_codes != p.health.overload_codes || old->second.rules != p.rules ||
             old->second.rate_limit != p.rate_limit))
            cache_.erase(p.name);  // table parameters changed: rebuild
        next[p.name] = p;
    }
    for (auto it = protection_.begin(); it != protection_.end();)
        it = next.count(it->first) ? std::next(it) : protection_.erase(it);
    params_ = std::move(next);
    workers_ = cfg.dataplane.workers;
}

Result<std::shared_ptr<const protect::PoolProtection>> SnapshotBuilder::protection(const config::PoolConfig& pool) {
    protect::PoolProtectionSpec spec{pool.name, pool.rules, pool.rate_limit};
    auto cached = protection_.find(pool.name);
    if (cached != protection_.end() && cached->second.first == spec) return cached->second.second;
    auto built = protect::PoolProtection::build(spec);  // compiles the pool's Hyperscan databases
    if (!built) return built;
    protection_[pool.name] = {std::move(spec), *built};
    return built;
}

Result<std::unique_ptr<const balance::DataplaneSnapshot>> SnapshotBuilder::build(
    const PoolManager& pm, const balance::DataplaneSnapshot* previous) {
    using R = Result<std::unique_ptr<const balance::DataplaneSnapshot>>;
    std::vector<std::shared_ptr<const balance::PoolSnapshot>> pools;
    std::map<std::string, Cached, std::less<>> next_cache;
    for (const auto& view : pm.pools()) {
        auto cached = cache_.find(view.name);
        if (cached != cache_.end() && cached->second.version == view.version) {
            pools.push_back(cached->second.snap);
            next_cache[view.name] = cached->second;
            continue;
        }
        auto param = params_.find(view.name);
        if (param == params_.end()) return R::fail("pool '" + view.name + "' has no configuration");
        balance::PoolSpec spec;
        spec.name = view.name;
        spec.listen = param->second.listen;
        for (const auto& v : param->second.tcp_listen) spec.tcp_listen.push_back({v, false});
        for (const auto& v : param->second.tls_listen) spec.tcp_listen.push_back({v, true});
        spec.table_size = param->second.table_size;
        spec.seed = param->second.seed;
        spec.mode = param->second.mode;
        spec.dialog_idle_s = param->second.dialog_idle_s;
        spec.transaction_idle_s = param->second.transaction_idle_s;
        spec.key = param->second.key;
        spec.key_fallback = param->second.key_fallback;
        spec.overload_codes = param->second.health.overload_codes;
        spec.counter_slot = counter_slot(view.name);
        auto prot = protection(param->second);
        if (!prot) return R::fail(prot.message());
        spec.protection = std::move(prot).value();
        for (const auto& rule : param->second.rules)
            spec.rule_counter_slots.push_back(rule_counter_slot(view.name, rule.name));
        for (const auto& b : view.backends) {
            balance::BackendSpec bs;
            bs.address = b.address;
            bs.tls_port = b.tls_port;  // the pool manager's: config for static backends, _sips._tcp for DNS ones
            bs.weight = b.weight;
            bs.state = to_balance_state(b.state);
            bs.source = b.is_static ? balance::BackendSource::static_config : balance::BackendSource::dns;
            spec.backends.push_back(bs);
        }
        auto snap = balance::PoolSnapshot::build(spec, view.version);
        if (!snap) return R::fail("pool '" + view.name + "': " + snap.message());
        if (cached != cache_.end() && cached->second.snap->table().size() != (*snap)->table().size())
            log(LogLevel::warn,
                "Maglev table resized: most new calls move to other backends; dialogs in progress keep theirs "
                "through affinity",
                {{"pool", view.name},
                 {"from", std::to_string(cached->second.snap->table().size())},
                 {"to", std::to_string((*snap)->table().size())},
                 {"backends", std::to_string(spec.backends.size())}});
        ++rebuilt_;
        pools.push_back(*snap);
        next_cache[view.name] = Cached{view.version, *snap};
    }
    auto dp = balance::DataplaneSnapshot::build(std::move(pools), pm.version(), workers_, previous);
    if (!dp) return R::fail(dp.message());
    cache_ = std::move(next_cache);
    return R(std::move(*dp));
}

uint32_t SnapshotBuilder::counter_slot(const std::string& pool) {
    auto [it, added] = counter_slots_.try_emplace(pool, next_counter_slot_);
    if (added) {
        if (next_counter_slot_ < max_counter_slots_) {
            ++next_counter_slot_;
        } else {
            it->second = balance::kNoCounterSlot;
            log(LogLevel::warn, "pool gets no counters: more distinct pool names than counter slots since start",
                {{"pool", pool}, {"slots", std::to_string(max_counter_slots_)}});
        }
    }
    return it->second;
}

uint32_t SnapshotBuilder::rule_counter_slot(const std::string& pool, const std::string& rule) {
    auto [it, added] = rule_counter_slots_.try_emplace({pool, rule}, next_rule_counter_slot_);
    if (added) {
        if (next_rule_counter_slot_ < max_rule_counter_slots_) {
            ++next_rule_counter_slot_;
        } else {
            it->second = balance::kNoCounterSlot;
            log(LogLevel::warn,
                "rule gets no counters: more distinct pool and rule names than rule counter slots since start",
                {{"pool", pool}, {"rule", rule}, {"slots", std::to_string(max_rule_counter_slots_)}});
        }
    }
    return it->second;
}

std::map<std::string, std::map<std::string, double>> table_shares(const balance::DataplaneSnapshot& snap) {
    std::map<std::string, std::map<std::string, double>> out;
    for (const auto& p : snap.pools()) {
        auto& m = out[p->name()];
        const auto backends = p->backends();
        const auto counts = p->table().slot_counts(backends.size());
        const double size = p->table().size();
        for (size_t i = 0; i < backends.size(); ++i)
            m[backends[i].identity] = (i < counts.size() && size > 0) ? counts[i] / size : 0.0;
    }
    return out;
}

std::set<std::string> tcp_pools(const balance::DataplaneSnapshot& snap) {
    std::set<std::string> out;
    for (const auto& p : snap.pools())
        if (!p->tcp_listen().empty()) out.insert(p->name());
    return out;
}

namespace {
const char* connection_state_name(balance::ConnectionTable::State s) {
    switch (s) {
        case balance::ConnectionTable::State::half_open: return "half_open";
        case balance::ConnectionTable::State::established: return "established";
        case balance::ConnectionTable::State::closing: return "closing";
    }
    return "unknown";
}

// What TcpStage decides for a client's connection, read-only.
nlohmann::json lookup_connection(const balance::PoolSnapshot& p, const Endpoint& client,
                                 const balance::ConnectionTable* connections, uint32_t now_s) {
    nlohmann::json list = nlohmann::json::array();
    uint8_t key_bytes[18];
    const size_t alen = client.ip.is_v4() ? 4 : 16;
    std::memcpy(key_bytes, client.ip.bytes.data(), alen);
    key_bytes[alen] = static_cast<uint8_t>(client.port >> 8);
    key_bytes[alen + 1] = static_cast<uint8_t>(client.port);
    const uint64_t client_hash = balance::hash_call_id(key_bytes, alen + 2, p.seed());
    const auto backends = p.backends();
    for (bool tls : {false, true}) {
        const auto& vips = p.tcp_listen();
        if (std::none_of(vips.begin(), vips.end(), [&](const balance::TcpVip& v) { return v.tls == tls; })) continue;
        nlohmann::json j;
        j["transport"] = tls ? "tls" : "tcp";
        j["vip"] = nullptr;
        const uint64_t key = balance::connection_key(p, client_hash, tls);
        if (connections)
            if (auto c = connections->lookup(key, now_s)) {
                const uint16_t idx = p.index_of_id(c->backend_id);
                if (idx != balance::PoolSnapshot::kNoBackend && balance::keeps_affinity(backends[idx].state)) {
                    const balance::TcpVip* vip = p.tcp_vip_at(c->vip);
                    j["backend"] = backends[idx].tcp_address(tls).to_string();
                    j["reason"] = "connection";
                    j["state"] = balance::to_string(backends[idx].state);
                    j["connection_state"] = connection_state_name(c->state);
                    j["expires_in_s"] = static_cast<int32_t>(c->expiry_s - now_s);
                    j["vip"] = vip ? nlohmann::json(vip->address.to_string()) : nlohmann::json(nullptr);
                    list.push_back(std::move(j));
                    continue;
                }
            }
        const uint16_t idx = p.table().lookup(client_hash);
        if (idx == balance::MaglevTable::kNone) {
            j["backend"] = nullptr;
            j["reason"] = "no_backend";
        } else {
            j["backend"] = backends[idx].tcp_address(tls).to_string();
            j["reason"] = "table";
            j["state"] = balance::to_string(backends[idx].state);
        }
        list.push_back(std::move(j));
    }
    return list;
}
}  // namespace

Result<nlohmann::json> lookup_call(const balance::DataplaneSnapshot& snap, const balance::AffinityTable* affinity,
                                   const std::string& pool, const std::string& call_id, uint32_t now_s,
                                   const std::optional<std::string>& key, const balance::ConnectionTable* connections) {
    using R = Result<nlohmann::json>;
    const balance::PoolSnapshot* p = snap.find_pool(pool);
    if (!p) return R::fail("unknown pool '" + pool + "'");
    if (!p->tcp_listen().empty())
        if (auto client = Endpoint::parse(call_id)) {
            nlohmann::json j;
            j["client"] = client->to_string();
            j["connections"] = lookup_connection(*p, *client, connections, now_s);
            return j;
        }
    const uint64_t hash = balance::hash_call_id(call_id, p->seed());
    const auto backends = p->backends();
    nlohmann::json j;
    j["key"] = balance::to_string(p->key());
    // Same order as balance::pick(), but read-only: lookup must not create
    // affinity entries for Call-IDs that exist only in an operator's query.
    if (affinity) {
        if (auto hit = affinity->lookup(hash ^ p->affinity_salt(), now_s)) {
            const uint16_t idx = p->index_of_id(hit->backend_id);
            if (idx != balance::PoolSnapshot::kNoBackend && balance::keeps_affinity(backends[idx].state)) {
                j["backend"] = backends[idx].identity;
                j["reason"] = "affinity";
                j["state"] = balance::to_string(backends[idx].state);
                j["expires_in_s"] = static_cast<int32_t>(hit->expiry_s - now_s);
                const Endpoint* vip = p->vip_at(hit->vip);
                j["vip"] = vip ? nlohmann::json(vip->to_string()) : nlohmann::json(nullptr);
                return j;
            }
        }
    }
    // The key places calls without an entry; the Call-ID when the pool
    // balances on it, or when no key value was given.
    const bool by_key = key && !key->empty() && !p->keyed_by_call_id();
    const uint64_t table_hash = by_key ? balance::hash_call_id(*key, p->seed()) : hash;
    j["table_key"] = by_key ? balance::to_string(p->key()) : "call_id";
    const balance::Decision d = balance::pick_keyed(*p, hash, table_hash, false, now_s, nullptr);
    j["vip"] = nullptr;  // no live entry: no VIP recorded
    if (!d.entry) {
        j["backend"] = nullptr;
        j["reason"] = "no_backend";
        return j;
    }
    j["backend"] = d.entry->identity;
    j["reason"] = "table";
    j["state"] = balance::to_string(d.entry->state);
    return j;
}

}  // namespace siplb::control
