// What changed between two configs, for reload logging and for refusing a
// live reload that the running daemon cannot apply (see config.h for which
// sections need a restart and why).
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <type_traits>

#include "siplb/config/config.h"

namespace siplb::config {
namespace {

std::string text(const std::string& s) { return "\"" + s + "\""; }
std::string text(bool b) { return b ? "true" : "false"; }
std::string text(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}
template <class T>
requires std::is_integral_v<T> std::string text(T v) { return std::to_string(v); }
template <class T>
requires requires(const T& t) { t.to_string(); }
std::string text(const T& v) { return v.to_string(); }

template <class T>
std::string text(const std::vector<T>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + text(v[i]);
    return out + "]";
}
std::string text(TransportCheck c) { return std::string(to_string(c)); }
template <class T>
std::string text(const std::optional<T>& v) {
    return v ? text(*v) : std::string("(none)");
}
std::string text(ForwardMode m) { return m == ForwardMode::nat ? "nat" : "ipip"; }

class Differ {
public:
    std::vector<ConfigChange> changes;

    void add(std::string what, bool restart) { changes.push_back({std::move(what), restart}); }

    template <class T>
    void field(const std::string& prefix, const char* name, const T& a, const T& b, bool restart,
               const char* note = nullptr) {
        if (a == b) return;
        std::string line = prefix + name + ": " + text(a) + " -> " + text(b);
        if (note) line += std::string(" (") + note + ")";
        add(std::move(line), restart);
    }
};

void diff_health(Differ& d, const std::string& prefix, const HealthConfig& a, const HealthConfig& b,
                 const HealthConfig* global_a = nullptr, const HealthConfig* global_b = nullptr) {
    // For a pool, skip values that merely follow a changed [health] default:
    // that change is reported once, for the [health] section.
#define SIPLB_HEALTH_FIELD(f) \
    if (!(global_a && global_b && a.f == global_a->f && b.f == global_b->f)) d.field(prefix, #f, a.f, b.f, false);
    SIPLB_HEALTH_FIELD(enabled)
    SIPLB_HEALTH_FIELD(interval_ms)
    SIPLB_HEALTH_FIELD(jitter)
    SIPLB_HEALTH_FIELD(timeout_ms)
    SIPLB_HEALTH_FIELD(down_after)
    SIPLB_HEALTH_FIELD(up_after)
    SIPLB_HEALTH_FIELD(overload_codes)
    SIPLB_HEALTH_FIELD(honor_retry_after)
    SIPLB_HEALTH_FIELD(panic_threshold)
    SIPLB_HEALTH_FIELD(from_uri)
    SIPLB_HEALTH_FIELD(passive)
    SIPLB_HEALTH_FIELD(passive_503_threshold)
    SIPLB_HEALTH_FIELD(udp)
    SIPLB_HEALTH_FIELD(tcp)
    SIPLB_HEALTH_FIELD(tls)
#undef SIPLB_HEALTH_FIELD
}

void diff_dataplane(Differ& d, const DataplaneConfig& a, const DataplaneConfig& b) {
    const std::string p = "dataplane.";
    d.field(p, "eal", a.eal, b.eal, true);
    d.field(p, "workers", a.workers, b.workers, true);
    d.field(p, "burst", a.burst, b.burst, true);
    d.field(p, "mbufs", a.mbufs, b.mbufs, true);
    d.field(p, "mbuf_cache", a.mbuf_cache, b.mbuf_cache, true);
    d.field(p, "mbuf_size", a.mbuf_size, b.mbuf_size, true);
    d.field(p, "rx_ring", a.rx_ring, b.rx_ring, true);
    d.field(p, "tx_ring", a.tx_ring, b.tx_ring, true);
    d.field(p, "affinity_capacity", a.affinity_capacity, b.affinity_capacity, true);
    d.field(p, "client_vip_capacity", a.client_vip_capacity, b.client_vip_capacity, true);
    d.field(p, "connection_capacity", a.connection_capacity, b.connection_capacity, true);
    d.field(p, "connection_source_cap", a.connection_source_cap, b.connection_source_cap, true);
    d.field(p, "syn_rate", a.syn_rate, b.syn_rate, true);
    d.field(p, "syn_burst", a.syn_burst, b.syn_burst, true);
    d.field(p, "frag_max_flows", a.frag_max_flows, b.frag_max_flows, true);
    d.field(p, "frag_timeout_ms", a.frag_timeout_ms, b.frag_timeout_ms, true);
    d.field(p, "announce", a.announce, b.announce, true);
    d.field(p, "verify_l4_checksums", a.verify_l4_checksums, b.verify_l4_checksums, true);
    d.field(p, "neighbor_reachable_s", a.neighbor_reachable_s, b.neighbor_reachable_s, true);
    d.field(p, "icmp_error_rate", a.icmp_error_rate, b.icmp_error_rate, true);
    d.field(p, "icmp_error_burst", a.icmp_error_burst, b.icmp_error_burst, true);
    // [mirror]: the workers' selection and rings are fixed when the dataplane starts.
    const std::string m = "mirror.";
    d.field(m, "hep", a.mirror.hep, b.mirror.hep, true);
    d.field(m, "pools", a.mirror.pools, b.mirror.pools, true);
    d.field(m, "sample", a.mirror.sample, b.mirror.sample, true);
    d.field(m, "rate", a.mirror.rate, b.mirror.rate, true);
    d.field(m, "agent_id", a.mirror.agent_id, b.mirror.agent_id, true);
    d.field(m, "ring", a.mirror.ring, b.mirror.ring, true);

    std::map<std::string, const PortConfig*> pa, pb;
    for (const auto& x : a.ports) pa[x.name] = &x;
    for (const auto& x : b.ports) pb[x.name] = &x;
    for (const auto& [name, port] : pa) {
        auto it = pb.find(name);
        if (it == pb.end()) {
            d.add("dataplane.port " + name + " removed", true);
            continue;
        }
        const PortConfig& x = *port;
        const PortConfig& y = *it->second;
        std::string pre = "dataplane.port " + name + ": ";
        d.field(pre, "device", x.device, y.device, true);
        d.field(pre, "vdev_args", x.vdev_args, y.vdev_args, true);
        d.field(pre, "addresses", x.addresses, y.addresses, true);
        d.field(pre, "mac", x.mac, y.mac, true);
        d.field(pre, "vlan", x.vlan, y.vlan, true);
        d.field(pre, "mtu", x.mtu, y.mtu, true);
        d.field(pre, "rx_queues", x.rx_queues, y.rx_queues, true);
        d.field(pre, "tx_queues", x.tx_queues, y.tx_queues, true);
        d.field(pre, "kernel_path", x.kernel_path, y.kernel_path, true);
    }
    for (const auto& [name, port] : pb)
        if (!pa.count(name)) d.add("dataplane.port " + name + " added (" + port->device + ")", true);

    auto route_text = [](const RouteConfig& r) {
        return r.prefix.to_string() + " via " + r.via.to_string() + (r.port.empty() ? "" : " port " + r.port);
    };
    std::set<std::string> ra, rb;
    for (const auto& r : a.routes) ra.insert(route_text(r));
    for (const auto& r : b.routes) rb.insert(route_text(r));
    for (const auto& r : ra)
        if (!rb.count(r)) d.add("dataplane.route " + r + " removed", true);
    for (const auto& r : rb)
        if (!ra.count(r)) d.add("dataplane.route " + r + " added", true);

    auto neighbor_text = [](const NeighborConfig& n) {
        return n.ip.to_string() + " is " + n.mac.to_string() + (n.port.empty() ? "" : " on port " + n.port);
    };
    std::set<std::string> na, nb;
    for (const auto& n : a.neighbors) na.insert(neighbor_text(n));
    for (const auto& n : b.neighbors) nb.insert(neighbor_text(n));
    for (const auto& n : na)
        if (!nb.count(n)) d.add("dataplane.neighbor " + n + " removed", true);
    for (const auto& n : nb)
        if (!na.count(n)) d.add("dataplane.neighbor " + n + " added", true);
}

void diff_pool(Differ& d, const PoolConfig& a, const PoolConfig& b, const Config& ca, const Config& cb) {
    const std::string pre = "pool " + a.name + ": ";
    const auto vips = [](const PoolConfig& p) {
        std::vector<std::string> v = listen_entries(p);
        return std::set<std::string>(v.begin(), v.end());
    };
    const std::set<std::string> la = vips(a), lb = vips(b);
    for (const auto& v : la)
        if (!lb.count(v)) d.add(pre + "VIP " + v + " removed", false);
    for (const auto& v : lb)
        if (!la.count(v)) d.add(pre + "VIP " + v + " added", false);

    std::map<Endpoint, const BackendConfig*> ba, bb;
    for (const auto& x : a.backends) ba[x.address] = &x;
    for (const auto& x : b.backends) bb[x.address] = &x;
    for (const auto& [ep, x] : ba) {
        auto it = bb.find(ep);
        if (it == bb.end()) {
            d.add(pre + "backend " + ep.to_string() + " removed", false);
            continue;
        }
        const BackendConfig& y = *it->second;
        if (x->weight != y.weight)
            d.add(pre + "backend " + ep.to_string() + " reweighted " + std::to_string(x->weight) + " -> " +
                      std::to_string(y.weight),
                  false);
        if (x->enabled != y.enabled)
            d.add(pre + "backend " + ep.to_string() + (y.enabled ? " enabled" : " disabled"), false);
        if (x->tls_port != y.tls_port)
            d.add(pre + "backend " + ep.to_string() + " tls_port " + std::to_string(x->tls_port) + " -> " +
                      std::to_string(y.tls_port),
                  false);
    }
    for (const auto& [ep, y] : bb)
        if (!ba.count(ep))
            d.add(pre + "backend " + ep.to_string() + " added (weight " + std::to_string(y->weight) +
                      (y->enabled ? "" : ", disabled") + ")",
                  false);

    std::set<std::string> da(a.dns.begin(), a.dns.end()), db(b.dns.begin(), b.dns.end());
    for (const auto& n : da)
        if (!db.count(n)) d.add(pre + "DNS name " + n + " removed", false);
    for (const auto& n : db)
        if (!da.count(n)) d.add(pre + "DNS name " + n + " added", false);

    d.field(pre, "default_port", a.default_port, b.default_port, false);
    const auto size_text = [](uint32_t v) {
        return v == balance::kAutoTableSize ? std::string("auto") : std::to_string(v);
    };
    if (a.table_size != b.table_size)  // a new size is a new table: not 1/N, nearly every key moves
        d.add(pre + "table_size: " + size_text(a.table_size) + " -> " + size_text(b.table_size) +
                  " (remaps most new calls)",
              false);
    d.field(pre, "seed", a.seed, b.seed, false, "remaps calls; both cluster nodes must agree");
    d.field(pre, "mode", a.mode, b.mode, false);
    d.field(pre, "dialog_idle_s", a.dialog_idle_s, b.dialog_idle_s, false);
    d.field(pre, "transaction_idle_s", a.transaction_idle_s, b.transaction_idle_s, false);
    d.field(pre, "key", balance::to_string(a.key), balance::to_string(b.key), false,
            "places new calls elsewhere; both cluster nodes must agree");
    d.field(pre, "key_fallback", balance::to_string(a.key_fallback), balance::to_string(b.key_fallback), false,
            "places new calls elsewhere; both cluster nodes must agree");
    diff_health(d, pre + "health.", a.health, b.health, &ca.health, &cb.health);

    // Rules and rate limits apply live: the snapshot builder compiles the
    // new ones and the workers take them with the next snapshot; unchanged
    // limits keep their buckets.
    std::map<std::string, const RuleConfig*> qa, qb;
    for (const auto& r : a.rules) qa[r.name] = &r;
    for (const auto& r : b.rules) qb[r.name] = &r;
    for (const auto& [name, r] : qa) {
        auto it = qb.find(name);
        if (it == qb.end())
            d.add(pre + "rule " + name + " removed", false);
        else if (!(*r == *it->second))
            d.add(pre + "rule " + name + " changed", false);
    }
    for (const auto& [name, r] : qb)
        if (!qa.count(name)) d.add(pre + "rule " + name + " added", false);
    bool order_changed = false;
    if (a.rules.size() == b.rules.size() && qa.size() == qb.size()) {
        for (size_t i = 0; i < a.rules.size(); ++i) order_changed |= a.rules[i].name != b.rules[i].name;
        if (order_changed) d.add(pre + "rule order changed", false);
    }

    const auto& ra = a.rate_limit;
    const auto& rb = b.rate_limit;
    d.field(pre + "rate_limit.", "enabled", ra.enabled, rb.enabled, false);
    d.field(pre + "rate_limit.", "requests_per_s", ra.requests_per_s, rb.requests_per_s, false);
    d.field(pre + "rate_limit.", "burst", ra.burst, rb.burst, false);
    d.field(pre + "rate_limit.", "prefix_requests_per_s", ra.prefix_requests_per_s, rb.prefix_requests_per_s, false);
    d.field(pre + "rate_limit.", "prefix_burst", ra.prefix_burst, rb.prefix_burst, false);
    d.field(pre + "rate_limit.", "table_size", ra.table_size, rb.table_size, false);
}

}  // namespace

std::vector<ConfigChange> diff_configs(const Config& before, const Config& after) {
    Differ d;
    const auto& ca = before.control;
    const auto& cb = after.control;
    d.field("control.", "socket", ca.socket, cb.socket, true);
    if (ca.socket_mode != cb.socket_mode) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "control.socket_mode: %04o -> %04o", ca.socket_mode, cb.socket_mode);
        d.add(buf, true);
    }
    d.field("control.", "socket_owner", ca.socket_owner, cb.socket_owner, true);
    d.field("control.", "socket_group", ca.socket_group, cb.socket_group, true);
    d.field("control.", "metrics", ca.metrics_listen, cb.metrics_listen, true);
    d.field("control.", "stop_grace_ms", ca.stop_grace_ms, cb.stop_grace_ms, true);
    d.field("log.", "level", before.log.level, after.log.level, false);
    diff_dataplane(d, before.dataplane, after.dataplane);
    diff_health(d, "health.", before.health, after.health);

    const auto& da = before.dns;
    const auto& db = after.dns;
    d.field("dns.", "resolvers", da.resolvers, db.resolvers, false);
    d.field("dns.", "ttl_floor_s", da.ttl_floor_s, db.ttl_floor_s, false);
    d.field("dns.", "ttl_ceiling_s", da.ttl_ceiling_s, db.ttl_ceiling_s, false);
    d.field("dns.", "retry_initial_ms", da.retry_initial_ms, db.retry_initial_ms, false);
    d.field("dns.", "retry_max_ms", da.retry_max_ms, db.retry_max_ms, false);
    d.field("dns.", "drain_grace_s", da.drain_grace_s, db.drain_grace_s, false);
    d.field("dns.", "timeout_ms", da.timeout_ms, db.timeout_ms, false);

    for (const auto& p : before.pools) {
        const PoolConfig* q = after.find_pool(p.name);
        if (!q)
            d.add("pool " + p.name + " removed", false);
        else
            diff_pool(d, p, *q, before, after);
    }
    for (const auto& q : after.pools)
        if (!before.find_pool(q.name))
            d.add("pool " + q.name + " added (" + std::to_string(q.listen.size()) + " VIPs, " +
                      std::to_string(q.backends.size()) + " backends, " + std::to_string(q.dns.size()) + " DNS names" +
                      (q.rules.empty() && !q.rate_limit.enabled ? "" : ", with protect rules") + ")",
                  false);
    return d.changes;
}

std::vector<std::string> describe_changes(const Config& before, const Config& after) {
    std::vector<std::string> out;
    for (auto& c : diff_configs(before, after))
        out.push_back(c.needs_restart ? c.description + " (needs restart)" : c.description);
    return out;
}

std::vector<std::string> restart_required_changes(const Config& before, const Config& after) {
    std::vector<std::string> out;
    for (auto& c : diff_configs(before, after))
        if (c.needs_restart) out.push_back(c.description);
    return out;
}

}  // namespace siplb::config
