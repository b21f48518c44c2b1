// TOML config loader: toml++ parses, this file maps every key onto the schema
// in config.h and validates it. Every mistake is collected (not just the
// first) with file:line:column and the key path, so an operator fixes a bad
// file in one pass. toml++ throws on syntax errors; that exception is caught
// here, at the boundary, and never leaves this file.
#include "siplb/config/config.h"

#include <algorithm>
#include <charconv>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <net/if.h>
#include <toml++/toml.h>
#include <unistd.h>

#include "siplb/balance/table_size.h"

namespace siplb::config {
namespace {

// The EAL argument "--vdev=DEVICE[,ARGS]" that creates `device`, if any.
const std::string* eal_vdev_argument(const std::vector<std::string>& eal, std::string_view device) {
    for (const auto& arg : eal) {
        std::string_view a = arg;
        if (a.rfind("--vdev=", 0) != 0) continue;
        a.remove_prefix(7);
        if (a.substr(0, a.find(',')) == device) return &arg;
    }
    return nullptr;
}

std::string squote(std::string_view s) { return "'" + std::string(s) + "'"; }

// A port's vdev arguments: those of its EAL --vdev argument if it has one,
// else its vdev_args.
std::string_view port_vdev_args(const std::vector<std::string>& eal, const PortConfig& p) {
    if (const std::string* arg = eal_vdev_argument(eal, p.device); arg && arg->find(',') != std::string::npos)
        return std::string_view(*arg).substr(arg->find(',') + 1);
    return p.vdev_args;
}

// "k1=v1,k2=v2" -> {k, v} pairs in order ("k" alone: empty value, has_value false).
struct VdevArg {
    std::string_view key, value;
    bool has_value = false;
};
std::vector<VdevArg> split_vdev_args(std::string_view args) {
    std::vector<VdevArg> out;
    for (size_t at = 0; at < args.size();) {
        size_t end = args.find(',', at);
        if (end == args.npos) end = args.size();
        std::string_view kv = args.substr(at, end - at);
        const size_t eq = kv.find('=');
        out.push_back(eq == kv.npos ? VdevArg{kv, {}, false} : VdevArg{kv.substr(0, eq), kv.substr(eq + 1), true});
        at = end + 1;
    }
    return out;
}

std::optional<uint64_t> decimal(std::string_view v) {
    uint64_t n = 0;
    auto [rest, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc{} || rest != v.data() + v.size()) return std::nullopt;
    return n;
}

// A Linux interface name: 1..15 bytes (IFNAMSIZ - 1), no '/', ':' or space.
bool valid_interface_name(std::string_view n) {
    return !n.empty() && n.size() < 16 && n != "." && n != ".." &&
           std::none_of(n.begin(), n.end(), [](char ch) { return ch == '/' || ch == ':' || std::isspace(ch); });
}

std::vector<std::string> af_xdp_arg_problems(std::string_view args, uint32_t rx_queues, uint32_t workers) {
    std::vector<std::string> out;
    static const std::set<std::string_view> keys = {"iface",    "start_queue", "queue_count", "shared_umem",
                                                    "xdp_prog", "busy_budget", "force_copy"};
    std::set<std::string_view> seen;
    std::optional<uint64_t> queue_count;
    bool have_iface = false;
    for (const VdevArg& a : split_vdev_args(args)) {
        const std::string kv(a.has_value ? std::string(a.key) + "=" + std::string(a.value) : std::string(a.key));
        if (!keys.count(a.key)) {
            out.push_back("net_af_xdp does not know " + squote(kv) +
                          " (keys: iface, start_queue, queue_count, shared_umem, xdp_prog, busy_budget, force_copy)");
            continue;
        }
        if (!seen.insert(a.key).second) out.push_back("net_af_xdp " + squote(a.key) + " given twice");
        if (!a.has_value || a.value.empty()) {
            out.push_back("net_af_xdp " + squote(a.key) + " needs a value");
            continue;
        }
        const auto n = decimal(a.value);
        if (a.key == "iface") {
            have_iface = true;
            if (!valid_interface_name(a.value)) out.push_back(squote(kv) + " is not an interface name");
        } else if (a.key == "xdp_prog") {
            // a path, checked on the host by check_host()
        } else if (a.key == "start_queue" && (!n || *n > 65535)) {
            out.push_back(squote(kv) + " is not a queue number (0..65535)");
        } else if (a.key == "queue_count") {
            if (!n || *n < 1 || *n > 65535)
                out.push_back(squote(kv) + " is not a queue count (1..65535)");
            else
                queue_count = n;
        } else if ((a.key == "shared_umem" || a.key == "force_copy") && (!n || *n > 1)) {
            out.push_back(squote(kv) + " must be 0 or 1");
        } else if (a.key == "busy_budget" && (!n || *n > 65535)) {
            out.push_back(squote(kv) + " is not a busy-poll budget (0..65535)");
        }
    }
    if (!have_iface) out.push_back("net_af_xdp needs iface=<interface>");
    const uint64_t qc = queue_count.value_or(1);  // the PMD's default
    if (rx_queues > qc)
        out.push_back("rx_queues = " + std::to_string(rx_queues) +
                      " but net_af_xdp binds queue_count=" + std::to_string(qc) + " queue(s)");
    if (workers > qc)
        out.push_back("every worker needs its own TX queue (" + std::to_string(workers) +
                      " workers) but net_af_xdp binds queue_count=" + std::to_string(qc) + " queue(s)");
    return out;
}

constexpr size_t kMaxReportedErrors = 25;

std::string type_name(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::table: return "a table";
        case toml::node_type::array: return "an array";
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a float";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::date: return "a date";
        case toml::node_type::time: return "a time";
        case toml::node_type::date_time: return "a date-time";
        default: return "nothing";
    }
}

// Collects errors; positions come from toml++'s source regions.
class Diagnostics {
public:
    explicit Diagnostics(std::string source) : source_(std::move(source)) {}

    void error(const toml::source_region& where, const std::string& path, const std::string& what) {
        std::string line = source_;
        if (where.begin.line > 0)
            line += ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column);
        line += ": ";
        if (!path.empty()) line += path + ": ";
        line += what;
        errors_.push_back(std::move(line));
    }
    bool empty() const { return errors_.empty(); }
    std::string joined() const {
        std::string out;
        for (size_t i = 0; i < errors_.size() && i < kMaxReportedErrors; ++i) {
            if (i) out += '\n';
            out += errors_[i];
        }
        if (errors_.size() > kMaxReportedErrors)
            out += "\n(" + std::to_string(errors_.size() - kMaxReportedErrors) + " more errors)";
        return out;
    }
    const std::string& source() const { return source_; }

private:
    std::string source_;
    std::vector<std::string> errors_;
};

size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j)
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::string join_path(const std::string& base, std::string_view key) {
    return base.empty() ? std::string(key) : base + "." + std::string(key);
}

// A view of one TOML table that remembers which keys were asked for, so
// finish() can report every other key as unknown (typos are the most common
// config mistake and must not be silently ignored).
class Section {
public:
    Section(Diagnostics& diag, const toml::table* table, std::string path)
        : diag_(diag), table_(table), path_(std::move(path)) {}

    const toml::node* get(std::string_view key) {
        known_.emplace_back(key);
        return table_ ? table_->get(key) : nullptr;
    }
    std::string path(std::string_view key) const { return join_path(path_, key); }
    const std::string& path() const { return path_; }
    Diagnostics& diag() { return diag_; }
    const toml::table* table() const { return table_; }
    toml::source_region where() const { return table_ ? table_->source() : toml::source_region{}; }

    void finish() {
        if (!table_) return;
        for (auto&& [key, node] : *table_) {
            (void)node;
            std::string_view k = key.str();
            if (std::find(known_.begin(), known_.end(), k) != known_.end()) continue;
            std::string msg = "unknown key " + squote(k);
            std::string best;
            size_t best_d = 3;
            for (const auto& cand : known_) {
                size_t d = edit_distance(k, cand);
                if (d < best_d) best_d = d, best = cand;
            }
            if (!best.empty()) msg += " (did you mean " + squote(best) + "?)";
            diag_.error(key.source(), path_, msg);
        }
    }

private:
    Diagnostics& diag_;
    const toml::table* table_;
    std::string path_;
    std::vector<std::string> known_;
};

// --- typed readers: leave `out` untouched (default) when the key is absent ---

bool read_string(Section& s, std::string_view key, std::string& out) {
    const toml::node* n = s.get(key);
    if (!n) return false;
    if (!n->is_string()) {
        s.diag().error(n->source(), s.path(key), "expected a string, got " + type_name(*n));
        return false;
    }
    out = n->as_string()->get();
    return true;
}

bool read_bool(Section& s, std::string_view key, bool& out) {
    const toml::node* n = s.get(key);
    if (!n) return false;
    if (!n->is_boolean()) {
        s.diag().error(n->source(), s.path(key), "expected true or false, got " + type_name(*n));
        return false;
    }
    out = n->as_boolean()->get();
    return true;
}

bool read_int_node(Diagnostics& d, const toml::node& n, const std::string& path, int64_t min, int64_t max,
                   int64_t& out) {
    if (!n.is_integer()) {
        d.error(n.source(), path, "expected an integer, got " + type_name(n));
        return false;
    }
    int64_t v = n.as_integer()->get();
    if (v < min || v > max) {
        d.error(n.source(), path,
                std::to_string(v) + " is out of range " + std::to_string(min) + ".." + std::to_string(max));
        return false;
    }
    out = v;
    return true;
}

template <class U>
bool read_uint(Section& s, std::string_view key, U& out, int64_t min, int64_t max) {
    const toml::node* n = s.get(key);
    if (!n) return false;
    int64_t v = 0;
    if (!read_int_node(s.diag(), *n, s.path(key), min, max, v)) return false;
    out = static_cast<U>(v);
    return true;
}

bool read_double(Section& s, std::string_view key, double& out, double min, double max) {
    const toml::node* n = s.get(key);
    if (!n) return false;
    double v = 0;
    if (n->is_floating_point())
        v = n->as_floating_point()->get();
    else if (n->is_integer())
        v = static_cast<double>(n->as_integer()->get());
    else {
        s.diag().error(n->source(), s.path(key), "expected a number, got " + type_name(*n));
        return false;
    }
    if (!std::isfinite(v) || v < min || v > max) {
        char buf[128];
        std::snprintf(buf, sizeof buf, "%g is out of range %g..%g", v, min, max);
        s.diag().error(n->source(), s.path(key), buf);
        return false;
    }
    out = v;
    return true;
}

// Calls fn(node, index_path) for each element; reports a non-array.
template <class Fn>
bool for_each_in_array(Section& s, std::string_view key, Fn&& fn) {
    const toml::node* n = s.get(key);
    if (!n) return false;
    const toml::array* arr = n->as_array();
    if (!arr) {
        s.diag().error(n->source(), s.path(key), "expected an array, got " + type_name(*n));
        return false;
    }
    for (size_t i = 0; i < arr->size(); ++i) fn(*arr->get(i), s.path(key) + "[" + std::to_string(i) + "]");
    return true;
}

// Tables given as [[name]] (or an inline array of tables).
template <class Fn>
void for_each_table(Section& s, std::string_view key, Fn&& fn) {
    const toml::node* n = s.get(key);
    if (!n) return;
    const toml::array* arr = n->as_array();
    if (!arr) {
        s.diag().error(n->source(), s.path(key),
                       "expected an array of tables ([[" + s.path(key) + "]]), got " + type_name(*n));
        return;
    }
    for (size_t i = 0; i < arr->size(); ++i) {
        const toml::node& el = *arr->get(i);
        std::string path = s.path(key) + "[" + std::to_string(i) + "]";
        if (!el.is_table()) {
            s.diag().error(el.source(), path, "expected a table, got " + type_name(el));
            continue;
        }
        Section sub(s.diag(), el.as_table(), path);
        fn(sub, i);
        sub.finish();
    }
}

// A sub-table ([x.y]); absent is fine (defaults), non-table is an error.
const toml::table* sub_table(Section& s, std::string_view key) {
    const toml::node* n = s.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) {
        s.diag().error(n->source(), s.path(key), "expected a table, got " + type_name(*n));
        return nullptr;
    }
    return n->as_table();
}

const std::string* string_of(Diagnostics& d, const toml::node& n, const std::string& path) {
    if (!n.is_string()) {
        d.error(n.source(), path, "expected a string, got " + type_name(n));
        return nullptr;
    }
    return &n.as_string()->get();
}

bool is_power_of_two(uint64_t v) { return v && !(v & (v - 1)); }

// --- sections ---

void read_control(Section& s, ControlConfig& c) {
    if (read_string(s, "socket", c.socket)) {
        // sun_path holds 108 bytes including the terminating NUL.
        if (c.socket.empty() || c.socket.size() > 107)
            s.diag().error(s.table()->get("socket")->source(), s.path("socket"),
                           "socket path must be 1..107 characters");
    }
    std::string mode;
    if (read_string(s, "socket_mode", mode)) {
        auto where = s.table()->get("socket_mode")->source();
        bool octal = !mode.empty() && mode.size() <= 4 &&
                     std::all_of(mode.begin(), mode.end(), [](char ch) { return ch >= '0' && ch <= '7'; });
        uint32_t v = octal ? static_cast<uint32_t>(std::stoul(mode, nullptr, 8)) : 01000;
        if (!octal || v > 0777)
            s.diag().error(where, s.path("socket_mode"), squote(mode) + " is not an octal file mode like \"0660\"");
        else if ((v & 0600) != 0600)
            s.diag().error(where, s.path("socket_mode"), squote(mode) + " must give the owner read and write (0600)");
        else
            c.socket_mode = v;
    }
    auto check_name = [&](std::string_view key, std::string& out) {
        if (!read_string(s, key, out)) return;
        bool ok = out.size() <= 32 && std::all_of(out.begin(), out.end(), [](unsigned char ch) {
                      return std::isalnum(ch) || ch == '_' || ch == '-' || ch == '.';
                  });
        if (!ok || (!out.empty() && out[0] == '-'))
            s.diag().error(s.table()->get(key)->source(), s.path(key), squote(out) + " is not a valid name");
    };
    check_name("socket_owner", c.socket_owner);
    check_name("socket_group", c.socket_group);
    std::string metrics;
    if (read_string(s, "metrics", metrics)) {
        auto ep = Endpoint::parse(metrics);
        if (!ep)
            s.diag().error(s.table()->get("metrics")->source(), s.path("metrics"),
                           squote(metrics) + " is not an address:port (use \"[v6]:port\" for IPv6)");
        else
            c.metrics_listen = *ep;
    }
    read_uint(s, "stop_grace_ms", c.stop_grace_ms, 0, 600000);
}

void read_log(Section& s, LogConfig& c) {
    if (read_string(s, "level", c.level)) {
        static const std::set<std::string> levels = {"debug", "info", "warn", "error"};
        if (!levels.count(c.level))
            s.diag().error(s.table()->get("level")->source(), s.path("level"),
                           squote(c.level) + " is not a log level (debug, info, warn, error)");
    }
}

// [mirror]: HEP mirroring. The pool names are checked once the pools are read.
void read_mirror(Section& s, dataplane::MirrorSpec& m,
                 std::vector<std::pair<std::string, toml::source_region>>& pools) {
    std::string hep;
    if (read_string(s, "hep", hep)) {
        auto ep = Endpoint::parse(hep);
        if (!ep || ep->port == 0)
            s.diag().error(s.table()->get("hep")->source(), s.path("hep"),
                           squote(hep) +
                               " is not the HEP collector's address:port (\"192.0.2.50:9060\", \"[v6]:port\")");
        else
            m.hep = *ep;
    }
    for_each_in_array(s, "pools", [&](const toml::node& n, const std::string& path) {
        if (const std::string* name = string_of(s.diag(), n, path)) {
            m.pools.push_back(*name);
            pools.emplace_back(*name, n.source());
        }
    });
    if (read_double(s, "sample", m.sample, 0.0, 1.0) && m.sample <= 0.0)
        s.diag().error(s.table()->get("sample")->source(), s.path("sample"),
                       "sample 0 would mirror nothing: leave out 'hep' to turn the mirror off");
    read_uint(s, "rate", m.rate, 1, 10000000);
    read_uint(s, "agent_id", m.agent_id, 0, 4294967295LL);
    if (read_uint(s, "ring", m.ring, 16, 65536) && !is_power_of_two(m.ring))
        s.diag().error(s.table()->get("ring")->source(), s.path("ring"),
                       std::to_string(m.ring) + " is not a power of two (16..65536)");
    if (!m.hep && s.table() && s.table()->size() > 0)
        s.diag().error(s.where(), s.path(), "[mirror] without 'hep': set the collector's address:port");
}

bool valid_port_name(std::string_view n) {
    return !n.empty() && n.size() <= 32 && std::all_of(n.begin(), n.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
    });
}

void read_port(Section& s, PortConfig& p) {
    auto& d = s.diag();
    if (!read_string(s, "name", p.name))
        d.error(s.where(), s.path(), "missing key 'name'");
    else if (!valid_port_name(p.name))
        d.error(s.table()->get("name")->source(), s.path("name"),
                squote(p.name) + " is not a valid port name ([a-z0-9_-]+, at most 32 characters)");
    if (!read_string(s, "device", p.device))
        d.error(s.where(), s.path(), "missing key 'device' (PCI address or vdev name)");
    else if (p.device.empty())
        d.error(s.table()->get("device")->source(), s.path("device"), "must not be empty");
    read_string(s, "vdev_args", p.vdev_args);
    for_each_in_array(s, "addresses", [&](const toml::node& n, const std::string& path) {
        const std::string* text = string_of(d, n, path);
        if (!text) return;
        auto pfx = Prefix::parse(*text, /*allow_host_bits=*/true);
        if (!pfx)
            d.error(n.source(), path, squote(*text) + " is not an address/prefix-length like \"198.51.100.1/24\"");
        else
            p.addresses.push_back(*pfx);
    });
    std::string mac;
    if (read_string(s, "mac", mac)) {
        auto m = MacAddress::parse(mac);
        if (!m)
            d.error(s.table()->get("mac")->source(), s.path("mac"), squote(mac) + " is not a MAC address");
        else
            p.mac = *m;
    }
    read_uint(s, "vlan", p.vlan, 0, 4094);
    read_uint(s, "mtu", p.mtu, 576, 9216);
    read_uint(s, "rx_queues", p.rx_queues, 1, 64);
    read_uint(s, "tx_queues", p.tx_queues, 1, 64);
    read_bool(s, "kernel_path", p.kernel_path);
    bool has_v6 = std::any_of(p.addresses.begin(), p.addresses.end(), [](const Prefix& a) { return a.ip.is_v6(); });
    if (has_v6 && p.mtu < 1280) d.error(s.where(), s.path("mtu"), "IPv6 needs an MTU of at least 1280");
}

void read_dataplane(Section& s, DataplaneConfig& c) {
    auto& d = s.diag();
    for_each_in_array(s, "eal", [&](const toml::node& n, const std::string& path) {
        if (const std::string* a = string_of(d, n, path)) c.eal.push_back(*a);
    });
    read_uint(s, "workers", c.workers, 1, 128);
    read_uint(s, "burst", c.burst, 1, 256);
    read_uint(s, "mbufs", c.mbufs, 512, 1 << 24);
    read_uint(s, "mbuf_cache", c.mbuf_cache, 0, 512);  // RTE_MEMPOOL_CACHE_MAX_SIZE
    read_uint(s, "mbuf_size", c.mbuf_size, 512, 65535);
    if (read_uint(s, "rx_ring", c.rx_ring, 64, 32768) && !is_power_of_two(c.rx_ring))
        d.error(s.table()->get("rx_ring")->source(), s.path("rx_ring"), "must be a power of two");
    if (read_uint(s, "tx_ring", c.tx_ring, 64, 32768) && !is_power_of_two(c.tx_ring))
        d.error(s.table()->get("tx_ring")->source(), s.path("tx_ring"), "must be a power of two");
    if (read_uint(s, "affinity_capacity", c.affinity_capacity, 16, 1 << 30) && !is_power_of_two(c.affinity_capacity))
        d.error(s.table()->get("affinity_capacity")->source(), s.path("affinity_capacity"),
                std::to_string(c.affinity_capacity) + " is not a power of two");
    if (read_uint(s, "client_vip_capacity", c.client_vip_capacity, 16, 1 << 30) &&
        !is_power_of_two(c.client_vip_capacity))
        d.error(s.table()->get("client_vip_capacity")->source(), s.path("client_vip_capacity"),
                std::to_string(c.client_vip_capacity) + " is not a power of two");
    if (read_uint(s, "connection_capacity", c.connection_capacity, 16, 1 << 28) &&
        !is_power_of_two(c.connection_capacity))
        d.error(s.table()->get("connection_capacity")->source(), s.path("connection_capacity"),
                std::to_string(c.connection_capacity) + " is not a power of two");
    read_uint(s, "connection_source_cap", c.connection_source_cap, 0, 1 << 28);
    read_uint(s, "syn_rate", c.syn_rate, 0, 1000000);
    read_uint(s, "syn_burst", c.syn_burst, 1, 1000000);
    read_uint(s, "frag_max_flows", c.frag_max_flows, 1, 1 << 20);
    read_uint(s, "frag_timeout_ms", c.frag_timeout_ms, 1, 60000);
    read_bool(s, "announce", c.announce);
    read_bool(s, "verify_l4_checksums", c.verify_l4_checksums);
    read_uint(s, "neighbor_reachable_s", c.neighbor_reachable_s, 1, 86400);
    read_uint(s, "icmp_error_rate", c.icmp_error_rate, 0, 1000000);
    read_uint(s, "icmp_error_burst", c.icmp_error_burst, 1, 1000000);
    if (c.mbuf_cache > 0 && c.mbuf_cache * 3 / 2 > c.mbufs)
        d.error(s.where(), s.path("mbuf_cache"), "must be at most mbufs / 1.5 (DPDK mempool rule)");

    std::map<std::string, size_t> port_names;
    std::set<std::string> devices;
    for_each_table(s, "port", [&](Section& ps, size_t) {
        PortConfig p;
        read_port(ps, p);
        if (!p.name.empty() && !port_names.emplace(p.name, c.ports.size()).second)
            d.error(ps.table()->get("name")->source(), ps.path("name"), "duplicate port name " + squote(p.name));
        if (!p.device.empty() && !devices.insert(p.device + "," + p.vdev_args).second)
            d.error(ps.table()->get("device")->source(), ps.path("device"),
                    "device " + squote(p.device) + " is used by two ports");
        c.ports.push_back(std::move(p));
    });

    // net_af_packet copies each frame into one mbuf and refuses, at start, a
    // frame size (framesz, default 2048) that does not fit the data room
    // after the 128-byte headroom (the frame's first 32 bytes are the
    // tpacket header). framesz matters: the kernel hands the PMD's socket
    // IPv4 fragments already reassembled, so a fragmented INVITE arrives as
    // one frame of its full size, and a frame larger than framesz is cut.
    for (size_t i = 0; i < c.ports.size(); ++i) {
        const PortConfig& p = c.ports[i];
        if (p.device.rfind("net_af_packet", 0) != 0) continue;
        std::string_view args = p.vdev_args;
        if (const std::string* arg = eal_vdev_argument(c.eal, p.device); arg && arg->find(',') != std::string::npos)
            args = std::string_view(*arg).substr(arg->find(',') + 1);
        const std::string where = s.path("port") + "[" + std::to_string(i) + "].vdev_args";
        uint64_t framesz = 2048;  // the PMD's default
        bool framesz_ok = true;
        for (size_t at = 0; at <= args.size();) {
            size_t end = args.find(',', at);
            if (end == args.npos) end = args.size();
            std::string_view kv = args.substr(at, end - at);
            if (kv.rfind("framesz=", 0) == 0) {
                const std::string_view v = kv.substr(8);
                auto [rest, ec] = std::from_chars(v.data(), v.data() + v.size(), framesz);
                if (ec != std::errc{} || rest != v.data() + v.size() || v.empty()) {
                    d.error(s.where(), where, squote(std::string(kv)) + " is not a frame size in bytes");
                    framesz_ok = false;
                }
            }
            at = end + 1;
        }
        if (framesz_ok && framesz > 65535 - 96)
            d.error(s.where(), where,
                    "net_af_packet framesz=" + std::to_string(framesz) +
                        " cannot fit an mbuf (dataplane.mbuf_size is at most 65535)");
        else if (framesz_ok && framesz + 96 > c.mbuf_size)
            d.error(s.where(), where,
                    "net_af_packet frames of framesz=" + std::to_string(framesz) +
                        " need dataplane.mbuf_size >= " + std::to_string(framesz + 96) + " (it is " +
                        std::to_string(c.mbuf_size) + "): the PMD copies each frame into one mbuf");
    }

    // net_af_xdp: DPDK's PMD ignores keys it does not know and reads numbers
    // with strtol (no error on "2x"), so a typo would only show as a port
    // that silently runs with defaults. Every queue the port opens (one RX
    // queue per rx_queues, one TX queue per worker) must be one of the
    // queue_count queues it binds, starting at start_queue.
    for (size_t i = 0; i < c.ports.size(); ++i) {
        const PortConfig& p = c.ports[i];
        if (p.device.rfind("net_af_xdp", 0) != 0) continue;
        const std::string where = s.path("port") + "[" + std::to_string(i) + "].vdev_args";
        for (const std::string& problem : af_xdp_arg_problems(port_vdev_args(c.eal, p), p.rx_queues, c.workers))
            d.error(s.where(), where, problem);
    }

    // A vdev is created either by an EAL --vdev argument or from the port's
    // device + vdev_args, never both (DPDK would refuse the second one).
    for (size_t i = 0; i < c.ports.size(); ++i) {
        const PortConfig& p = c.ports[i];
        if (p.vdev_args.empty()) continue;
        if (const std::string* arg = eal_vdev_argument(c.eal, p.device))
            d.error(s.where(), s.path("port") + "[" + std::to_string(i) + "].vdev_args",
                    "vdev " + squote(p.device) + " is also created by EAL argument " + squote(*arg) +
                        "; give its arguments in one place only");
    }

    auto check_port_ref = [&](Section& rs, const std::string& port) {
        if (!port.empty() && !port_names.count(port))
            d.error(rs.table()->get("port")->source(), rs.path("port"), "unknown port " + squote(port));
    };
    // With no port given, the dataplane picks the port whose subnet holds the
    // next hop; a next hop on no port's subnet can never be reached.
    auto on_some_subnet = [&](const IpAddress& ip) {
        for (const auto& p : c.ports)
            for (const auto& a : p.addresses)
                if (a.ip.family == ip.family && Prefix{a.ip, a.length}.contains(ip)) return true;
        return false;
    };

    for_each_table(s, "route", [&](Section& rs, size_t) {
        RouteConfig r;
        std::string text;
        bool ok = true;
        if (!read_string(rs, "prefix", text)) {
            d.error(rs.where(), rs.path(), "missing key 'prefix' (\"0.0.0.0/0\" for the default route)");
            ok = false;
        } else if (auto p = Prefix::parse(text)) {
            r.prefix = *p;
        } else {
            d.error(rs.table()->get("prefix")->source(), rs.path("prefix"),
                    squote(text) + " is not a prefix like \"0.0.0.0/0\" (host bits must be zero)");
            ok = false;
        }
        if (!read_string(rs, "via", text)) {
            d.error(rs.where(), rs.path(), "missing key 'via' (next-hop address)");
            ok = false;
        } else if (auto ip = IpAddress::parse(text)) {
            r.via = *ip;
        } else {
            d.error(rs.table()->get("via")->source(), rs.path("via"), squote(text) + " is not an IP address");
            ok = false;
        }
        read_string(rs, "port", r.port);
        check_port_ref(rs, r.port);
        if (ok && r.prefix.ip.family != r.via.family)
            d.error(rs.table()->get("via")->source(), rs.path("via"),
                    "next hop " + r.via.to_string() + " is not of the same address family as " + r.prefix.to_string());
        else if (ok && r.port.empty() && !c.ports.empty() && !on_some_subnet(r.via))
            d.error(rs.table()->get("via")->source(), rs.path("via"),
                    "next hop " + r.via.to_string() + " is on no port's subnet; add 'port' or a port address");
        c.routes.push_back(std::move(r));
    });

    for_each_table(s, "neighbor", [&](Section& ns, size_t) {
        NeighborConfig nb;
        std::string text;
        if (!read_string(ns, "ip", text))
            d.error(ns.where(), ns.path(), "missing key 'ip'");
        else if (auto ip = IpAddress::parse(text))
            nb.ip = *ip;
        else
            d.error(ns.table()->get("ip")->source(), ns.path("ip"), squote(text) + " is not an IP address");
        if (!read_string(ns, "mac", text))
            d.error(ns.where(), ns.path(), "missing key 'mac'");
        else if (auto m = MacAddress::parse(text))
            nb.mac = *m;
        else
            d.error(ns.table()->get("mac")->source(), ns.path("mac"), squote(text) + " is not a MAC address");
        read_string(ns, "port", nb.port);
        check_port_ref(ns, nb.port);
        c.neighbors.push_back(std::move(nb));
    });
}

void read_transport_check(Section& s, std::string_view key, std::optional<TransportCheck>& out,
                          std::initializer_list<TransportCheck> allowed) {
    std::string text;
    if (!read_string(s, key, text)) return;
    std::string names;
    for (TransportCheck c : allowed) {
        if (text == to_string(c)) {
            out = c;
            return;
        }
        names += (names.empty() ? "" : ", ") + std::string(to_string(c));
    }
    s.diag().error(s.table()->get(key)->source(), s.path(key),
                   squote(text) + " is not a " + std::string(key) + " check (" + names + ")");
}

// Reads the keys present in `s` over `h` (so [pool.health] overrides only
// what it names), then checks cross-key rules.
void read_health(Section& s, HealthConfig& h) {
    auto& d = s.diag();
    read_bool(s, "enabled", h.enabled);
    read_uint(s, "interval_ms", h.interval_ms, 100, 3600000);
    read_double(s, "jitter", h.jitter, 0.0, 0.5);
    read_uint(s, "timeout_ms", h.timeout_ms, 10, 600000);
    read_uint(s, "down_after", h.down_after, 1, 1000);
    read_uint(s, "up_after", h.up_after, 1, 1000);
    std::vector<uint16_t> codes;
    if (for_each_in_array(s, "overload_codes", [&](const toml::node& n, const std::string& path) {
            int64_t v = 0;
            if (read_int_node(d, n, path, 400, 699, v)) codes.push_back(static_cast<uint16_t>(v));
        }))
        h.overload_codes = std::move(codes);
    read_bool(s, "honor_retry_after", h.honor_retry_after);
    read_double(s, "panic_threshold", h.panic_threshold, 0.0, 1.0);
    if (read_string(s, "from_uri", h.from_uri) &&
        !(h.from_uri.rfind("sip:", 0) == 0 || h.from_uri.rfind("sips:", 0) == 0))
        d.error(s.table()->get("from_uri")->source(), s.path("from_uri"),
                squote(h.from_uri) + " is not a SIP URI (sip:user@host)");
    read_bool(s, "passive", h.passive);
    read_uint(s, "passive_503_threshold", h.passive_503_threshold, 1, 1000000);
    using TC = TransportCheck;
    read_transport_check(s, "udp", h.udp, {TC::options, TC::off});
    read_transport_check(s, "tcp", h.tcp, {TC::options, TC::connect, TC::off});
    read_transport_check(s, "tls", h.tls, {TC::connect, TC::off});
}

// Which transports a pool serves, for its health checks: route targets
// without VIPs receive UDP (rules route UDP SIP).
struct PoolTransports {
    bool udp, tcp, tls;
};
PoolTransports transports_of(const PoolConfig& p) {
    return {!p.listen.empty() || (p.tcp_listen.empty() && p.tls_listen.empty()), !p.tcp_listen.empty(),
            !p.tls_listen.empty()};
}

struct TransportCheckKey {
    const char* key;
    std::optional<TransportCheck> HealthConfig::*field;
    bool PoolTransports::*serves;
    TransportCheck by_default;
    const char* vips;  // what the pool lacks when a check is pointless
};
constexpr TransportCheckKey kTransportCheckKeys[] = {
    {"udp", &HealthConfig::udp, &PoolTransports::udp, TransportCheck::options, "UDP VIPs"},
    {"tcp", &HealthConfig::tcp, &PoolTransports::tcp, TransportCheck::options, "tcp:// VIPs"},
    {"tls", &HealthConfig::tls, &PoolTransports::tls, TransportCheck::connect, "tls:// VIPs"},
};

// Sets every transport check of a pool: its [pool.health] value, else the
// [health] one, else the default, each only for a transport it listens on.
void resolve_transport_checks(Diagnostics& d, const toml::table* pool_health, const std::string& path, PoolConfig& p,
                              const HealthConfig& global) {
    const PoolTransports serves = transports_of(p);
    for (const auto& k : kTransportCheckKeys) {
        auto& value = p.health.*k.field;
        const toml::node* given = pool_health ? pool_health->get(k.key) : nullptr;
        if (given) {
            if (value && *value != TransportCheck::off && !(serves.*k.serves))
                d.error(given->source(), join_path(path, k.key),
                        std::string(k.key) + " = \"" + std::string(to_string(*value)) + "\" checks nothing: pool " +
                            squote(p.name) + " has no " + k.vips);
            if (value) continue;
        }
        value = serves.*k.serves ? (global.*k.field).value_or(k.by_default) : TransportCheck::off;
    }
}

void check_health(Diagnostics& d, const toml::source_region& where, const std::string& path, const HealthConfig& h) {
    // A probe still outstanding when the next is due would overlap it.
    if (h.timeout_ms > h.interval_ms)
        d.error(where, path,
                "timeout_ms (" + std::to_string(h.timeout_ms) + ") must not exceed interval_ms (" +
                    std::to_string(h.interval_ms) + ")");
}

void read_dns(Section& s, DnsConfig& c) {
    auto& d = s.diag();
    for_each_in_array(s, "resolvers", [&](const toml::node& n, const std::string& path) {
        const std::string* text = string_of(d, n, path);
        if (!text) return;
        auto ep = Endpoint::parse(*text, 53, /*allow_no_port=*/true);
        if (!ep)
            d.error(n.source(), path, squote(*text) + " is not an address or address:port");
        else
            c.resolvers.push_back(*ep);
    });
    read_uint(s, "ttl_floor_s", c.ttl_floor_s, 0, 86400);
    read_uint(s, "ttl_ceiling_s", c.ttl_ceiling_s, 1, 7 * 86400);
    read_uint(s, "retry_initial_ms", c.retry_initial_ms, 10, 3600000);
    read_uint(s, "retry_max_ms", c.retry_max_ms, 10, 3600000);
    read_uint(s, "drain_grace_s", c.drain_grace_s, 0, 7 * 86400);
    read_uint(s, "timeout_ms", c.timeout_ms, 10, 60000);
    if (c.ttl_floor_s > c.ttl_ceiling_s) d.error(s.where(), s.path("ttl_floor_s"), "must not exceed ttl_ceiling_s");
    if (c.retry_initial_ms > c.retry_max_ms)
        d.error(s.where(), s.path("retry_initial_ms"), "must not exceed retry_max_ms");
}

bool is_prime(uint64_t n) {
    if (n < 2) return false;
    if (n % 2 == 0) return n == 2;
    for (uint64_t i = 3; i * i <= n; i += 2)
        if (n % i == 0) return false;
    return true;
}

uint64_t next_prime(uint64_t n) {
    while (!is_prime(n)) ++n;
    return n;
}

const std::set<std::string>& rule_fields() {
    static const std::set<std::string> f = {"method", "request_uri", "user_agent", "from", "to"};
    return f;
}

bool is_token_char(char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) ||
           std::string_view("-.!%*_+`'~").find(ch) != std::string_view::npos;
}

struct PendingRoute {
    std::string pool;
    std::string target;
    toml::source_region where;
    std::string path;
};

void read_rule(Section& s, RuleConfig& r, std::vector<PendingRoute>& routes, const std::string& pool_name) {
    auto& d = s.diag();
    if (!read_string(s, "name", r.name) || r.name.empty())
        d.error(s.where(), s.path(), "rule needs a non-empty 'name'");
    if (!read_string(s, "field", r.field)) {
        d.error(s.where(), s.path(), "missing key 'field'");
    } else if (!rule_fields().count(r.field)) {
        bool header = r.field.rfind("header:", 0) == 0 && r.field.size() > 7 &&
                      std::all_of(r.field.begin() + 7, r.field.end(), is_token_char);
        if (!header)
            d.error(s.table()->get("field")->source(), s.path("field"),
                    squote(r.field) + " is not a rule field (method, request_uri, user_agent, from, to, header:NAME)");
    }
    if (!read_string(s, "pattern", r.pattern))
        d.error(s.where(), s.path(), "missing key 'pattern'");
    else if (r.pattern.empty())
        d.error(s.table()->get("pattern")->source(), s.path("pattern"), "must not be empty");
    read_bool(s, "caseless", r.caseless);
    std::string action;
    if (read_string(s, "action", action)) {
        if (action == "drop")
            r.action = RuleAction::drop;
        else if (action == "allow")
            r.action = RuleAction::allow;
        else if (action == "route")
            r.action = RuleAction::route;
        else
            d.error(s.table()->get("action")->source(), s.path("action"),
                    squote(action) + " is not an action (drop, allow, route)");
    }
    bool has_route_pool = read_string(s, "route_pool", r.route_pool);
    if (r.action == RuleAction::route) {
        if (r.route_pool.empty())
            d.error(s.where(), s.path(), "action 'route' needs 'route_pool'");
        else if (r.route_pool == pool_name)
            d.error(s.table()->get("route_pool")->source(), s.path("route_pool"), "a pool cannot route to itself");
        else
            routes.push_back({pool_name, r.route_pool, s.table()->get("route_pool")->source(), s.path("route_pool")});
    } else if (has_route_pool) {
        d.error(s.table()->get("route_pool")->source(), s.path("route_pool"),
                "'route_pool' is only meaningful with action = \"route\"");
    }
}

void read_rate_limit(Section& s, RateLimitConfig& r) {
    auto& d = s.diag();
    read_bool(s, "enabled", r.enabled);
    read_double(s, "requests_per_s", r.requests_per_s, 0.001, 1e9);
    read_double(s, "burst", r.burst, 1, 1e9);
    read_double(s, "prefix_requests_per_s", r.prefix_requests_per_s, 0.001, 1e9);
    read_double(s, "prefix_burst", r.prefix_burst, 1, 1e9);
    if (read_uint(s, "table_size", r.table_size, 1024, 1 << 26) && !is_power_of_two(r.table_size))
        d.error(s.table()->get("table_size")->source(), s.path("table_size"),
                std::to_string(r.table_size) + " is not a power of two");
    if (r.prefix_requests_per_s < r.requests_per_s)
        d.error(s.where(), s.path("prefix_requests_per_s"),
                "must be at least requests_per_s (a prefix holds many sources)");
}

bool valid_pool_name(std::string_view n) { return valid_port_name(n); }

}  // namespace

bool valid_dns_name(std::string_view name, std::string* why) {
    auto fail = [&](std::string msg) {
        if (why) *why = std::move(msg);
        return false;
    };
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    if (name.empty()) return fail("empty name");
    if (name.size() > 253) return fail("longer than 253 characters");
    std::vector<std::string_view> labels;
    size_t start = 0;
    while (true) {
        size_t dot = name.find('.', start);
        labels.push_back(name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    bool srv = name.front() == '_';
    if (srv) {
        // SRV owner names: _service._proto.domain (RFC 3263: _sip._udp and
        // _sip._tcp give the SIP port, _sips._tcp the TLS port).
        if (labels.size() < 3 || labels[0].size() < 2 || (labels[1] != "_udp" && labels[1] != "_tcp"))
            return fail("SRV names look like _sip._udp.example.net, _sip._tcp.example.net or _sips._tcp.example.net");
        if (labels[0] == "_sips" && labels[1] == "_udp")
            return fail("SIP over TLS runs on TCP: _sips._tcp, not _sips._udp");
        if (labels[1] == "_tcp" && labels[0] != "_sip" && labels[0] != "_sips")
            return fail("TCP SRV names are _sip._tcp (SIP port) or _sips._tcp (TLS port)");
        for (char ch : labels[0].substr(1))
            if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-') return fail("bad SRV service label");
    }
    for (size_t i = srv ? 2 : 0; i < labels.size(); ++i) {
        auto l = labels[i];
        if (l.empty()) return fail("empty label");
        if (l.size() > 63) return fail("label longer than 63 characters");
        if (l.front() == '-' || l.back() == '-') return fail("label starts or ends with '-'");
        for (char ch : l)
            if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-')
                return fail("character '" + std::string(1, ch) + "' is not allowed in a host name");
    }
    if (std::all_of(labels.back().begin(), labels.back().end(),
                    [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); }))
        return fail("looks like an address, not a name (put addresses in 'backends')");
    return true;
}

namespace {

// A backend as written, for checks that need every pool and port read first.
struct PendingBackend {
    Endpoint address;
    toml::source_region where;
    std::string path;
};

void read_pool(Section& s, PoolConfig& p, const HealthConfig& global_health, std::vector<PendingRoute>& routes,
               std::vector<PendingBackend>& backends_read) {
    auto& d = s.diag();
    if (!read_string(s, "name", p.name))
        d.error(s.where(), s.path(), "missing key 'name'");
    else if (!valid_pool_name(p.name))
        d.error(s.table()->get("name")->source(), s.path("name"),
                squote(p.name) + " is not a valid pool name ([a-z0-9_-]+, at most 32 characters)");

    // default_port first: nothing below depends on it, but read it early so
    // errors come out in file order for the common layout.
    read_uint(s, "default_port", p.default_port, 1, 65535);

    // TCP and TLS VIPs share one set: both are TCP on the wire, so one
    // address:port cannot be both.
    std::set<Endpoint> seen_vips, seen_tcp_vips;
    for_each_in_array(s, "listen", [&](const toml::node& n, const std::string& path) {
        const std::string* text = string_of(d, n, path);
        if (!text) return;
        std::string_view rest = *text;
        std::vector<Endpoint>* into = &p.listen;
        std::set<Endpoint>* seen = &seen_vips;
        if (auto sep = rest.find("://"); sep != std::string_view::npos) {
            const std::string_view scheme = rest.substr(0, sep);
            if (scheme == "tcp") {
                into = &p.tcp_listen;
                seen = &seen_tcp_vips;
            } else if (scheme == "tls") {
                into = &p.tls_listen;
                seen = &seen_tcp_vips;
            } else if (scheme != "udp") {
                d.error(n.source(), path,
                        "unknown transport " + squote(std::string(scheme)) + " (udp://, tcp:// or tls://)");
                return;
            }
            rest.remove_prefix(sep + 3);
        }
        const std::string addr(rest);
        auto ep = Endpoint::parse(addr);
        if (!ep) {
            bool bare = Endpoint::parse(addr, 5060, true).has_value();
            d.error(n.source(), path,
                    squote(*text) + (bare ? " has no port (write \"" + *text + ":5060\")" : " is not an address:port"));
            return;
        }
        if (!seen->insert(*ep).second) {
            d.error(n.source(), path, "duplicate VIP " + *text);
            return;
        }
        into->push_back(*ep);
    });

    std::set<Endpoint> seen_backends;
    for_each_in_array(s, "backends", [&](const toml::node& n, const std::string& path) {
        BackendConfig b;
        std::string text;
        toml::source_region where = n.source();
        if (n.is_string()) {
            text = n.as_string()->get();
        } else if (n.is_table()) {
            Section bs(d, n.as_table(), path);
            if (!read_string(bs, "address", text)) {
                d.error(n.source(), path, "missing key 'address'");
                bs.finish();
                return;
            }
            where = n.as_table()->get("address")->source();
            read_uint(bs, "weight", b.weight, 0, 65535);
            read_bool(bs, "enabled", b.enabled);
            read_uint(bs, "tls_port", b.tls_port, 1, 65535);
            bs.finish();
        } else {
            d.error(n.source(), path,
                    "expected \"address:port\" or { address = \"...\", weight = N }, got " + type_name(n));
            return;
        }
        auto ep = Endpoint::parse(text);
        if (!ep) {
            d.error(where, path, squote(text) + " is not an address:port");
            return;
        }
        if (!seen_backends.insert(*ep).second) {
            d.error(where, path, "duplicate backend " + ep->to_string());
            return;
        }
        b.address = *ep;
        p.backends.push_back(b);
        backends_read.push_back({*ep, where, path});
    });

    std::set<std::string> seen_names;
    std::vector<std::pair<toml::source_region, std::string>> sips_names;
    for_each_in_array(s, "dns", [&](const toml::node& n, const std::string& path) {
        const std::string* text = string_of(d, n, path);
        if (!text) return;
        std::string why;
        if (!valid_dns_name(*text, &why)) {
            d.error(n.source(), path, squote(*text) + " is not a valid DNS name: " + why);
            return;
        }
        if (!seen_names.insert(*text).second) {
            d.error(n.source(), path, "duplicate DNS name " + squote(*text));
            return;
        }
        if (is_tls_srv_name(*text)) sips_names.push_back({n.source(), path});
        p.dns.push_back(*text);
    });

    // A TLS port is only used by tls:// VIPs (listen is read above).
    if (p.tls_listen.empty())
        for (const auto& [where, path] : sips_names)
            d.error(where, path, "_sips._tcp names give TLS ports, but the pool has no tls:// VIPs");

    // Absent or "auto": derived from the backend count when the table is
    // built (balance/table_size.h), so it follows DNS-discovered backends too.
    static_assert(balance::kAutoTableSize == 0, "PoolConfig::table_size defaults to auto");
    const toml::node* ts = s.get("table_size");
    if (ts && ts->is_string()) {
        if (ts->as_string()->get() != "auto")
            d.error(ts->source(), s.path("table_size"),
                    squote(ts->as_string()->get()) + " is not a table size (a prime, or \"auto\")");
    } else if (ts) {
        int64_t v = 0;
        if (read_int_node(d, *ts, s.path("table_size"), 7, 16777259, v)) {
            if (!is_prime(static_cast<uint64_t>(v)))
                d.error(ts->source(), s.path("table_size"),
                        std::to_string(v) +
                            " is not prime (next prime: " + std::to_string(next_prime(static_cast<uint64_t>(v))) + ")");
            else
                p.table_size = static_cast<uint32_t>(v);
        }
    }
    if (p.table_size != balance::kAutoTableSize && p.table_size <= p.backends.size()) {
        d.error(ts->source(), s.path("table_size"),
                std::to_string(p.table_size) + " must exceed the number of backends (" +
                    std::to_string(p.backends.size()) + "); leave it \"auto\" or use a prime at least " +
                    std::to_string(balance::kSlotsPerBackend) + "x that, e.g. " +
                    std::to_string(next_prime(p.backends.size() * balance::kSlotsPerBackend)));
    }
    if (const toml::node* seed = s.get("seed")) {
        int64_t v = 0;
        if (read_int_node(d, *seed, s.path("seed"), 0, INT64_MAX, v)) p.seed = static_cast<uint64_t>(v);
    }
    std::string mode;
    if (read_string(s, "mode", mode)) {
        if (mode == "nat")
            p.mode = ForwardMode::nat;
        else if (mode == "ipip")
            p.mode = ForwardMode::ipip;
        else
            d.error(s.table()->get("mode")->source(), s.path("mode"), squote(mode) + " is not a mode (nat, ipip)");
    }
    read_uint(s, "dialog_idle_s", p.dialog_idle_s, 1, 7 * 86400);
    read_uint(s, "transaction_idle_s", p.transaction_idle_s, 1, 3600);
    for (auto [name, spec] : {std::pair{"key", &p.key}, std::pair{"key_fallback", &p.key_fallback}}) {
        std::string text;
        if (!read_string(s, name, text)) continue;
        auto parsed = balance::parse_key_spec(text);
        if (parsed)
            *spec = *parsed;
        else
            d.error(s.table()->get(name)->source(), s.path(name), parsed.message());
    }

    p.health = global_health;
    const toml::table* ht = sub_table(s, "health");
    if (ht) {
        Section hs(d, ht, s.path("health"));
        read_health(hs, p.health);
        hs.finish();
        check_health(d, ht->source(), s.path("health"), p.health);
    }
    resolve_transport_checks(d, ht, s.path("health"), p, global_health);

    std::set<std::string> rule_names;
    for_each_table(s, "rule", [&](Section& rs, size_t) {
        RuleConfig r;
        read_rule(rs, r, routes, p.name);
        if (!r.name.empty() && !rule_names.insert(r.name).second)
            d.error(rs.table()->get("name")->source(), rs.path("name"), "duplicate rule name " + squote(r.name));
        p.rules.push_back(std::move(r));
    });

    if (const toml::table* rt = sub_table(s, "rate_limit")) {
        Section rs(d, rt, s.path("rate_limit"));
        read_rate_limit(rs, p.rate_limit);
        rs.finish();
    }

    if (p.backends.empty() && p.dns.empty())
        d.error(s.where(), s.path(), "pool " + squote(p.name) + " has neither 'backends' nor 'dns' names");
}

}  // namespace

Result<Config> parse_config(std::string_view toml_text, std::string_view source_name) {
    Diagnostics diag{std::string(source_name)};
    toml::table root;
    try {
        root = toml::parse(toml_text, source_name);
    } catch (const toml::parse_error& e) {
        diag.error(e.source(), "", std::string(e.description()));
        return Result<Config>::fail(diag.joined());
    }

    Config cfg;
    cfg.source_path = std::string(source_name);
    Section top(diag, &root, "");

    auto section = [&](std::string_view key, auto&& reader) {
        const toml::table* t = sub_table(top, key);
        if (!t) return;
        Section s(diag, t, std::string(key));
        reader(s);
        s.finish();
    };
    section("control", [&](Section& s) { read_control(s, cfg.control); });
    section("log", [&](Section& s) { read_log(s, cfg.log); });
    section("dataplane", [&](Section& s) { read_dataplane(s, cfg.dataplane); });
    section("health", [&](Section& s) {
        read_health(s, cfg.health);
        check_health(diag, s.where(), "health", cfg.health);
    });
    section("dns", [&](Section& s) { read_dns(s, cfg.dns); });
    std::vector<std::pair<std::string, toml::source_region>> mirror_pools;
    section("mirror", [&](Section& s) { read_mirror(s, cfg.dataplane.mirror, mirror_pools); });

    std::vector<PendingRoute> routes;
    std::vector<PendingBackend> backends_read;
    std::map<std::string, std::string> pool_paths;  // name -> path
    std::map<Endpoint, std::string> vip_owner;      // VIP -> pool name
    std::map<Endpoint, std::string> tcp_vip_owner;  // TCP or TLS VIP -> pool name
    struct PoolWithoutVip {
        std::string name, path;
        toml::source_region where;
    };
    std::vector<PoolWithoutVip> pools_without_vip;
    for_each_table(top, "pool", [&](Section& ps, size_t) {
        PoolConfig p;
        read_pool(ps, p, cfg.health, routes, backends_read);
        if (!p.name.empty() && !pool_paths.emplace(p.name, ps.path()).second)
            diag.error(ps.table()->get("name")->source(), ps.path("name"),
                       "duplicate pool name " + squote(p.name) + " (first at " + pool_paths[p.name] + ")");
        const toml::node* listen = ps.table()->get("listen");
        for (size_t i = 0; i < p.listen.size(); ++i) {
            auto [it, fresh] = vip_owner.emplace(p.listen[i], p.name);
            if (!fresh) {
                const toml::node* el = listen && listen->as_array() ? listen->as_array()->get(i) : nullptr;
                diag.error(el ? el->source() : ps.where(), ps.path("listen"),
                           "VIP " + p.listen[i].to_string() + " is already used by pool " + squote(it->second));
            }
        }
        for (const auto* tcp : {&p.tcp_listen, &p.tls_listen})
            for (const auto& vip : *tcp) {
                auto [it, fresh] = tcp_vip_owner.emplace(vip, p.name);
                if (!fresh)
                    diag.error(ps.where(), ps.path("listen"),
                               "TCP VIP " + vip.to_string() + " is already used by pool " + squote(it->second));
            }
        if (p.listen.empty() && p.tcp_listen.empty() && p.tls_listen.empty())
            pools_without_vip.push_back({p.name, ps.path("listen"), ps.where()});
        cfg.pools.push_back(std::move(p));
    });
    top.finish();

    // A [health] transport check that no pool's VIPs use would do nothing.
    if (const toml::table* ht = root.get_as<toml::table>("health"))
        for (const auto& k : kTransportCheckKeys) {
            const auto& value = cfg.health.*k.field;
            const toml::node* given = ht->get(k.key);
            if (!given || !value || *value == TransportCheck::off) continue;
            if (std::none_of(cfg.pools.begin(), cfg.pools.end(),
                             [&](const PoolConfig& p) { return transports_of(p).*k.serves; }))
                diag.error(given->source(), join_path("health", k.key),
                           std::string(k.key) + " = \"" + std::string(to_string(*value)) +
                               "\" checks nothing: no pool has " + k.vips);
        }

    std::set<std::string> route_targets;
    for (const auto& r : routes) {
        if (!pool_paths.count(r.target))
            diag.error(r.where, r.path, "route_pool names unknown pool " + squote(r.target));
        route_targets.insert(r.target);
    }
    for (const auto& [name, where] : mirror_pools)
        if (!pool_paths.count(name)) diag.error(where, "mirror.pools", "names unknown pool " + squote(name));
    // A pool only reachable through another pool's route rules needs no VIP
    // of its own; any other pool without one could never receive traffic.
    for (const auto& p : pools_without_vip)
        if (!route_targets.count(p.name))
            diag.error(p.where, p.path, "pool " + squote(p.name) + " has no 'listen' VIPs and no rule routes to it");

    // siplb answers ARP/ND for its port addresses and every VIP address, so
    // no server can sit at one of them: datagrams for such a backend come
    // back into siplb, and are balanced again when they hit a VIP (a
    // forwarding loop) or dropped otherwise. Any port: the address is ours.
    std::map<IpAddress, std::string> own_addresses;  // address -> where the config makes it ours
    for (const auto& port : cfg.dataplane.ports)
        for (const auto& a : port.addresses)
            own_addresses.emplace(a.ip, "address " + a.to_string() + " of port " + squote(port.name));
    for (const auto& pool : cfg.pools)
        for (const auto* vips : {&pool.listen, &pool.tcp_listen, &pool.tls_listen})
            for (const auto& vip : *vips)
                own_addresses.emplace(vip.ip, "VIP " + vip.to_string() + " of pool " + squote(pool.name));
    for (const auto& b : backends_read)
        if (auto it = own_addresses.find(b.address.ip); it != own_addresses.end())
            diag.error(b.where, b.path,
                       "backend " + b.address.to_string() + " is one of this node's own addresses (" + it->second +
                           "): what siplb forwards to it comes back to siplb");

    if (!diag.empty()) return Result<Config>::fail(diag.joined());
    return cfg;
}

Status check_host(const Config& c) {
    std::string problems;
    auto fail = [&](const std::string& what) { problems += (problems.empty() ? "" : "\n") + what; };
    for (size_t i = 0; i < c.dataplane.ports.size(); ++i) {
        const PortConfig& p = c.dataplane.ports[i];
        const bool xdp = p.device.rfind("net_af_xdp", 0) == 0;
        if (!xdp && p.device.rfind("net_af_packet", 0) != 0) continue;
        const std::string where = "dataplane.port[" + std::to_string(i) + "] (" + p.name + ")";
        for (const VdevArg& a : split_vdev_args(port_vdev_args(c.dataplane.eal, p))) {
            if (a.key == "iface" && valid_interface_name(a.value) && if_nametoindex(std::string(a.value).c_str()) == 0)
                fail(where + ": no interface " + squote(a.value) + " on this host (" + p.device + " iface)");
            if (xdp && a.key == "xdp_prog" && ::access(std::string(a.value).c_str(), R_OK) != 0)
                fail(where + ": xdp_prog " + squote(a.value) + ": " + std::strerror(errno));
        }
    }
    if (!problems.empty()) return Status::fail(problems);
    return ok_status();
}

Result<Config> load_config(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        return Result<Config>::fail(path + ": is a directory, not a config file");
    std::ifstream in(path, std::ios::binary);
    if (!in) return Result<Config>::fail(path + ": cannot open config file: " + std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return Result<Config>::fail(path + ": cannot read config file: " + std::strerror(errno));
    return parse_config(text.str(), path);
}

}  // namespace siplb::config
