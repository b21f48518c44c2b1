#include "siplb/control/commands.h"

#include "siplb/control/log.h"
#include "siplb/dataplane/counter_schema.h"

namespace siplb::control {

using json = nlohmann::json;
using JResult = Result<json>;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json pool_summary(const PoolView& p) {
    json j;
    j["name"] = p.name;
    j["version"] = p.version;
    j["backends"] = p.backends.size();
    for (auto s : {EffectiveState::active, EffectiveState::draining, EffectiveState::overloaded, EffectiveState::down,
                   EffectiveState::disabled, EffectiveState::standby}) {
        size_t n = 0;
        for (const auto& b : p.backends) n += b.state == s;
        j[std::string(to_string(s))] = n;
    }
    j["panic_events"] = p.panic_events;
    return j;
}

json change_result(const PoolManager& pm, const std::string& pool, const Endpoint& ep) {
    json j;
    j["pool"] = pool;
    j["backend"] = ep.to_string();
    const PoolView* p = pm.find_pool(pool);
    const BackendView* b = p ? p->find(ep) : nullptr;
    if (b) {
        j["state"] = std::string(to_string(b->state));
        j["weight"] = b->weight;
    } else {
        j["state"] = "removed";
    }
    return j;
}

}  // namespace

std::string CommandHandler::handle(std::string_view line, const PeerCred& peer) {
    auto req = parse_request(line);
    if (!req) return error_response(req.message());
    auto res = execute(*req, Actor{peer.to_string()});
    if (!res) return error_response(res.message());
    json out;
    out["ok"] = true;
    out["result"] = std::move(*res);
    return dump(out) + "\n";
}

json CommandHandler::backends_json(const std::string& pool_filter) const {
    StatsSnapshot stats = hooks_.stats ? hooks_.stats() : StatsSnapshot{};
    MetricsInfo info = hooks_.metrics_info ? hooks_.metrics_info() : MetricsInfo{};
    const auto now = Clock::now();
    json list = json::array();
    for (const auto& p : pools_.pools()) {
        if (!pool_filter.empty() && p.name != pool_filter) continue;
        for (const auto& b : p.backends) {
            const std::string addr = b.address.to_string();
            json j;
            j["pool"] = p.name;
            j["address"] = addr;
            j["source"] = b.source();
            j["weight"] = b.weight;
            j["state"] = std::string(to_string(b.state));
            j["admin"] = std::string(to_string(b.admin));
            if (!b.admin_by.empty()) j["admin_by"] = b.admin_by;
            j["health"] = std::string(to_string(b.health));
            j["health_detail"] = b.health_detail;
            j["health_since_s"] = std::chrono::duration_cast<std::chrono::seconds>(now - b.health_since).count();
            j["panic"] = b.panic;
            j["priority"] = b.priority;
            double share = 0;
            if (auto it = info.table_share.find(p.name); it != info.table_share.end())
                if (auto jt = it->second.find(addr); jt != it->second.end()) share = jt->second;
            j["table_share"] = share;
            uint64_t packets = 0, bytes = 0, calls = 0, overloads = 0, advertises = 0;
            const auto* c = stats.dataplane.backend(p.name, b.address);
            if (c) {
                packets = c->at("traffic", "packets_to") + c->at("traffic", "packets_from");
                bytes = c->at("traffic", "bytes_to") + c->at("traffic", "bytes_from");
                calls = c->at("traffic", "calls");
                overloads = c->at("overload", "responses");
                advertises = c->at("vip", "backend_advertises_itself");
            }
            j["packets"] = packets;
            j["bytes"] = bytes;
            j["calls"] = calls;
            j["overload_responses"] = overloads;
            j["advertises_itself"] = advertises;
            if (info.tcp_pools.count(p.name)) {
                // Every connection counter of the schema's backend scope, 0 before any traffic.
                json conns = json::object();
                for (const auto& ci : dataplane::counter_schema(dataplane::CounterScope::backend))
                    if (ci.group == kConnectionCounterGroup) conns[ci.name] = c ? c->at(ci.group, ci.name) : 0;
                j[std::string(kConnectionCounterGroup)] = std::move(conns);
            }
            list.push_back(std::move(j));
        }
    }
    json out;
    out["backends"] = std::move(list);
    return out;
}

std::string CommandHandler::metrics_text() const {
    StatsSnapshot stats = hooks_.stats ? hooks_.stats() : StatsSnapshot{};
    MetricsInfo info = hooks_.metrics_info ? hooks_.metrics_info() : MetricsInfo{};
    return render_metrics(pools_.pools(), stats, info);
}

JResult CommandHandler::execute(const Request& r, const Actor& who) {
    auto need_pool = [&]() -> Status {
        if (!pools_.find_pool(r.pool)) return Status::fail("unknown pool '" + r.pool + "'");
        return ok_status();
    };
    switch (r.cmd) {
        case CommandKind::status: {
            json j = hooks_.status ? hooks_.status() : json::object();
            j["pools"] = pools_.pools().size();
            j["pool_manager_version"] = pools_.version();
            return j;
        }
        case CommandKind::pools: {
            json list = json::array();
            for (const auto& p : pools_.pools()) list.push_back(pool_summary(p));
            return json{{"pools", std::move(list)}};
        }
        case CommandKind::backends:
            if (!r.pool.empty())
                if (auto s = need_pool(); !s) return JResult::fail(s.message());
            return backends_json(r.pool);
        case CommandKind::stats: {
            StatsSnapshot s = hooks_.stats ? hooks_.stats() : StatsSnapshot{};
            return stats_json(s);
        }
        case CommandKind::lookup: {
            if (auto s = need_pool(); !s) return JResult::fail(s.message());
            if (!hooks_.lookup) return JResult::fail("lookup is not available: the dataplane has no snapshot yet");
            auto res = hooks_.lookup(r.pool, r.call_id, r.key);
            if (!res) return res;
            json j = std::move(*res);
            j["pool"] = r.pool;
            j["call_id"] = r.call_id;
            return j;
        }
        case CommandKind::drain:
        case CommandKind::disable:
        case CommandKind::enable:
        case CommandKind::weight:
        case CommandKind::add:
        case CommandKind::remove: {
            Status s = ok_status();
            const Endpoint& ep = *r.backend;
            switch (r.cmd) {
                case CommandKind::drain: s = pools_.drain(r.pool, ep, who); break;
                case CommandKind::disable: s = pools_.disable(r.pool, ep, who); break;
                case CommandKind::enable: s = pools_.enable(r.pool, ep, who); break;
                case CommandKind::weight: s = pools_.set_weight(r.pool, ep, r.weight, who); break;
                case CommandKind::add: s = pools_.add_static(r.pool, ep, r.weight, who); break;
                default: s = pools_.remove_static(r.pool, ep, who); break;
            }
            if (!s) return JResult::fail(s.message());
            return change_result(pools_, r.pool, ep);
        }
        case CommandKind::reload: {
            if (!hooks_.reload) return JResult::fail("reload is not available");
            auto res = hooks_.reload(who);
            if (!res) return JResult::fail(res.message());
            json j;
            j["changes"] = *res;
            if (hooks_.status) {
                json st = hooks_.status();
                if (st.contains("config")) j["config"] = st["config"];
            }
            return j;
        }
        case CommandKind::resolve: {
            if (auto s = need_pool(); !s) return JResult::fail(s.message());
            if (!hooks_.resolve)
                return JResult::fail("resolve is not available: DNS discovery is not running in this daemon");
            auto res = hooks_.resolve(r.pool);
            if (!res) return res;
            json j = std::move(*res);
            j["pool"] = r.pool;
            return j;
        }
        case CommandKind::metrics: return json{{"text", metrics_text()}};
        case CommandKind::capture_start:
        case CommandKind::capture_read:
        case CommandKind::capture_stop:
            if (!hooks_.capture) return JResult::fail("capture: not available in this daemon");
            if (r.cmd == CommandKind::capture_start && !r.pool.empty())
                if (auto s = need_pool(); !s) return JResult::fail("capture: " + s.message());
            return hooks_.capture(r, who);
    }
    return JResult::fail("unhandled command");
}

}  // namespace siplb::control
