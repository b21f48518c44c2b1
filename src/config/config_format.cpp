// Canonical TOML output of a Config: every key written explicitly, so the
// text shows the effective configuration (defaults and [health] inheritance
// resolved) and parses back to the same Config.
#include <cstdio>
#include <sstream>

#include "siplb/config/config.h"

namespace siplb::config {
namespace {

std::string toml_string(std::string_view s) {
    std::string out = "\"";
    for (char ch : s) {
        switch (ch) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            default:
                if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(ch)));
                    out += buf;
                } else {
                    out += ch;
                }
        }
    }
    return out + "\"";
}

std::string toml_double(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    std::string s = buf;
    if (s.find_first_of(".eE") == std::string::npos) s += ".0";
    return s;
}

const char* toml_bool(bool b) { return b ? "true" : "false"; }

template <class T, class Fn>
std::string toml_array(const std::vector<T>& v, Fn&& item) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
        if (i) out += ", ";
        out += item(v[i]);
    }
    return out + "]";
}

void write_health(std::ostream& o, const HealthConfig& h) {
    o << "enabled = " << toml_bool(h.enabled) << "\n"
      << "interval_ms = " << h.interval_ms << "\n"
      << "jitter = " << toml_double(h.jitter) << "\n"
      << "timeout_ms = " << h.timeout_ms << "\n"
      << "down_after = " << h.down_after << "\n"
      << "up_after = " << h.up_after << "\n"
      << "overload_codes = " << toml_array(h.overload_codes, [](uint16_t c) { return std::to_string(c); }) << "\n"
      << "honor_retry_after = " << toml_bool(h.honor_retry_after) << "\n"
      << "panic_threshold = " << toml_double(h.panic_threshold) << "\n"
      << "from_uri = " << toml_string(h.from_uri) << "\n"
      << "passive = " << toml_bool(h.passive) << "\n"
      << "passive_503_threshold = " << h.passive_503_threshold << "\n";
    // Unset only in [health] (pools' values are always set): absent there.
    for (auto [key, check] : {std::pair{"udp", h.udp}, std::pair{"tcp", h.tcp}, std::pair{"tls", h.tls}})
        if (check) o << key << " = " << toml_string(std::string(to_string(*check))) << "\n";
}

}  // namespace

std::vector<std::string> listen_entries(const PoolConfig& pool) {
    std::vector<std::string> out;
    for (const auto& v : pool.listen) out.push_back(v.to_string());
    for (const auto& v : pool.tcp_listen) out.push_back("tcp://" + v.to_string());
    for (const auto& v : pool.tls_listen) out.push_back("tls://" + v.to_string());
    return out;
}

std::string format_config(const Config& c) {
    std::ostringstream o;
    auto str = [](const auto& x) { return toml_string(x.to_string()); };

    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", c.control.socket_mode);
    o << "[control]\n"
      << "socket = " << toml_string(c.control.socket) << "\n"
      << "socket_mode = " << toml_string(mode) << "\n"
      << "socket_owner = " << toml_string(c.control.socket_owner) << "\n"
      << "socket_group = " << toml_string(c.control.socket_group) << "\n";
    if (c.control.metrics_listen) o << "metrics = " << str(*c.control.metrics_listen) << "\n";
    o << "stop_grace_ms = " << c.control.stop_grace_ms << "\n";

    o << "\n[log]\nlevel = " << toml_string(c.log.level) << "\n";

    const auto& d = c.dataplane;
    o << "\n[dataplane]\n"
      << "eal = " << toml_array(d.eal, [](const std::string& s) { return toml_string(s); }) << "\n"
      << "workers = " << d.workers << "\n"
      << "burst = " << d.burst << "\n"
      << "mbufs = " << d.mbufs << "\n"
      << "mbuf_cache = " << d.mbuf_cache << "\n"
      << "mbuf_size = " << d.mbuf_size << "\n"
      << "rx_ring = " << d.rx_ring << "\n"
      << "tx_ring = " << d.tx_ring << "\n"
      << "affinity_capacity = " << d.affinity_capacity << "\n"
      << "client_vip_capacity = " << d.client_vip_capacity << "\n"
      << "connection_capacity = " << d.connection_capacity << "\n"
      << "connection_source_cap = " << d.connection_source_cap << "\n"
      << "syn_rate = " << d.syn_rate << "\n"
      << "syn_burst = " << d.syn_burst << "\n"
      << "frag_max_flows = " << d.frag_max_flows << "\n"
      << "frag_timeout_ms = " << d.frag_timeout_ms << "\n"
      << "announce = " << toml_bool(d.announce) << "\n"
      << "verify_l4_checksums = " << toml_bool(d.verify_l4_checksums) << "\n"
      << "neighbor_reachable_s = " << d.neighbor_reachable_s << "\n"
      << "icmp_error_rate = " << d.icmp_error_rate << "\n"
      << "icmp_error_burst = " << d.icmp_error_burst << "\n";
    for (const auto& p : d.ports) {
        o << "\n[[dataplane.port]]\n"
          << "name = " << toml_string(p.name) << "\n"
          << "device = " << toml_string(p.device) << "\n"
          << "vdev_args = " << toml_string(p.vdev_args) << "\n"
          << "addresses = " << toml_array(p.addresses, str) << "\n";
        if (p.mac) o << "mac = " << str(*p.mac) << "\n";
        o << "vlan = " << p.vlan << "\n"
          << "mtu = " << p.mtu << "\n"
          << "rx_queues = " << p.rx_queues << "\n"
          << "tx_queues = " << p.tx_queues << "\n"
          << "kernel_path = " << toml_bool(p.kernel_path) << "\n";
    }
    for (const auto& r : d.routes) {
        o << "\n[[dataplane.route]]\nprefix = " << str(r.prefix) << "\nvia = " << str(r.via) << "\n";
        if (!r.port.empty()) o << "port = " << toml_string(r.port) << "\n";
    }
    for (const auto& n : d.neighbors) {
        o << "\n[[dataplane.neighbor]]\nip = " << str(n.ip) << "\nmac = " << str(n.mac) << "\n";
        if (!n.port.empty()) o << "port = " << toml_string(n.port) << "\n";
    }

    o << "\n[health]\n";
    write_health(o, c.health);

    if (const auto& m = d.mirror; m.enabled()) {
        o << "\n[mirror]\nhep = " << str(*m.hep) << "\n"
          << "pools = " << toml_array(m.pools, [](const std::string& s) { return toml_string(s); }) << "\n"
          << "sample = " << toml_double(m.sample) << "\n"
          << "rate = " << m.rate << "\n"
          << "agent_id = " << m.agent_id << "\n"
          << "ring = " << m.ring << "\n";
    }

    o << "\n[dns]\n"
      << "resolvers = " << toml_array(c.dns.resolvers, str) << "\n"
      << "ttl_floor_s = " << c.dns.ttl_floor_s << "\n"
      << "ttl_ceiling_s = " << c.dns.ttl_ceiling_s << "\n"
      << "retry_initial_ms = " << c.dns.retry_initial_ms << "\n"
      << "retry_max_ms = " << c.dns.retry_max_ms << "\n"
      << "drain_grace_s = " << c.dns.drain_grace_s << "\n"
      << "timeout_ms = " << c.dns.timeout_ms << "\n";

    for (const auto& p : c.pools) {
        o << "\n[[pool]]\n"
          << "name = " << toml_string(p.name) << "\n"
          << "listen = " << toml_array(listen_entries(p), [](const std::string& x) { return toml_string(x); }) << "\n"
          << "backends = "
          << toml_array(p.backends,
                        [](const BackendConfig& b) {
                            return "{ address = " + toml_string(b.address.to_string()) +
                                   ", weight = " + std::to_string(b.weight) + ", enabled = " + toml_bool(b.enabled) +
                                   ", tls_port = " + std::to_string(b.tls_port) + " }";
                        })
          << "\n"
          << "dns = " << toml_array(p.dns, [](const std::string& s) { return toml_string(s); }) << "\n"
          << "default_port = " << p.default_port << "\n"
          << "table_size = "
          << (p.table_size == balance::kAutoTableSize ? std::string("\"auto\"") : std::to_string(p.table_size)) << "\n"
          << "seed = " << p.seed << "\n"
          << "mode = " << (p.mode == ForwardMode::nat ? "\"nat\"" : "\"ipip\"") << "\n"
          << "dialog_idle_s = " << p.dialog_idle_s << "\n"
          << "transaction_idle_s = " << p.transaction_idle_s << "\n"
          << "key = " << toml_string(balance::to_string(p.key)) << "\n"
          << "key_fallback = " << toml_string(balance::to_string(p.key_fallback)) << "\n";
        o << "\n[pool.health]\n";
        write_health(o, p.health);
        o << "\n[pool.rate_limit]\n"
          << "enabled = " << toml_bool(p.rate_limit.enabled) << "\n"
          << "requests_per_s = " << toml_double(p.rate_limit.requests_per_s) << "\n"
          << "burst = " << toml_double(p.rate_limit.burst) << "\n"
          << "prefix_requests_per_s = " << toml_double(p.rate_limit.prefix_requests_per_s) << "\n"
          << "prefix_burst = " << toml_double(p.rate_limit.prefix_burst) << "\n"
          << "table_size = " << p.rate_limit.table_size << "\n";
        for (const auto& r : p.rules) {
            static const char* actions[] = {"drop", "allow", "route"};
            o << "\n[[pool.rule]]\n"
              << "name = " << toml_string(r.name) << "\n"
              << "field = " << toml_string(r.field) << "\n"
              << "pattern = " << toml_string(r.pattern) << "\n"
              << "caseless = " << toml_bool(r.caseless) << "\n"
              << "action = \"" << actions[static_cast<int>(r.action)] << "\"\n";
            if (r.action == RuleAction::route) o << "route_pool = " << toml_string(r.route_pool) << "\n";
        }
    }
    return o.str();
}

}  // namespace siplb::config
