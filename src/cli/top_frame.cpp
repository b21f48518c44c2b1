#include "top_frame.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <utility>

#include "json_field.h"

namespace siplb::cli {
namespace {

using json = nlohmann::json;

// Column widths of the pool/backend table; HEALTH takes what is left.
constexpr size_t kNameW = 24, kStateW = 10, kNumW = 7;
constexpr size_t kTopDrops = 4;

std::string text(const json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    return "";
}

// Printable ASCII only, so one byte is one column and nothing from the
// network is taken for an escape sequence.
std::string printable(std::string s) {
    for (char& c : s)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    return s;
}

// Longer than n: cut, with '~' where the cut is.
std::string fit(std::string s, size_t n) {
    if (s.size() <= n) return s;
    if (n == 0) return "";
    s.resize(n - 1);
    return s + '~';
}

std::string left(std::string s, size_t n) {
    s = fit(std::move(s), n);
    return s + std::string(n - s.size(), ' ');
}

std::string right(std::string s, size_t n) {
    s = fit(std::move(s), n);
    return std::string(n - s.size(), ' ') + s;
}

std::optional<uint64_t> number(const json& v) {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
    return std::nullopt;
}

std::optional<uint64_t> counter(const json& entity, const char* group, const std::string& name) {
    const json& g = json_field(entity, group);
    if (!g.is_object()) return std::nullopt;
    auto it = g.find(name);
    return it == g.end() ? std::nullopt : number(*it);
}

// A counter's rate between two polls; none when either side lacks it or it
// went backwards (the daemon restarted in between).
std::optional<double> rate(const json& cur, const json& prev, const char* group, const std::string& name,
                           double elapsed_s) {
    const auto c = counter(cur, group, name), p = counter(prev, group, name);
    if (!c || !p || !(elapsed_s > 0) || *c < *p) return std::nullopt;
    return static_cast<double>(*c - *p) / elapsed_s;
}

std::string show(std::optional<double> r) { return r ? format_rate(*r) : "-"; }

// The element of stats[list] whose keys have the given values.
const json& entity(const json& stats, const char* list,
                   std::initializer_list<std::pair<const char*, std::string>> keys) {
    static const json kNull;
    const json& l = json_field(stats, list);
    if (!l.is_array()) return kNull;
    for (const auto& e : l) {
        bool match = true;
        for (const auto& [k, v] : keys) match = match && text(json_field(e, k)) == v;
        if (match) return e;
    }
    return kNull;
}

std::string duration(uint64_t s) {
    char b[32];
    if (s >= 86400)
        std::snprintf(b, sizeof(b), "%llud%02lluh", static_cast<unsigned long long>(s / 86400),
                      static_cast<unsigned long long>(s % 86400 / 3600));
    else if (s >= 3600)
        std::snprintf(b, sizeof(b), "%lluh%02llum", static_cast<unsigned long long>(s / 3600),
                      static_cast<unsigned long long>(s % 3600 / 60));
    else if (s >= 60)
        std::snprintf(b, sizeof(b), "%llum%02llus", static_cast<unsigned long long>(s / 60),
                      static_cast<unsigned long long>(s % 60));
    else
        std::snprintf(b, sizeof(b), "%llus", static_cast<unsigned long long>(s));
    return b;
}

std::string header_line(const TopInput& in) {
    std::string h = "siplb";
    const json& st = in.status;
    if (!in.error.empty()) return h + ": " + printable(in.error);
    if (!st.is_object()) return h;
    if (auto v = text(json_field(st, "version")); !v.empty()) h += " " + printable(v);
    if (auto v = text(json_field(st, "pid")); !v.empty()) h += "  pid " + v;
    if (auto up = number(json_field(st, "uptime_s"))) h += "  up " + duration(*up);
    if (auto v = text(json_field(st, "dataplane")); !v.empty()) h += "  " + printable(v);
    if (auto v = text(json_field(st, "workers")); !v.empty()) h += ", " + v + (v == "1" ? " worker" : " workers");
    if (auto v = text(json_field(st, "snapshot_version")); !v.empty()) h += ", snapshot " + v;
    if (in.elapsed_s > 0) {
        char b[32];
        std::snprintf(b, sizeof(b), "  (%.1fs)", in.elapsed_s);
        h += b;
    }
    return h;
}

std::string traffic_line(const TopInput& in) {
    const json& cur_t = json_field(in.cur, "totals");
    const json& prev_t = json_field(in.prev, "totals");
    std::optional<double> drops, calls;
    if (in.prev.is_object() && in.elapsed_s > 0) {
        drops = 0;
        for (const auto& [name, v] : json_field(cur_t, "drops").items()) {
            if (auto r = rate(cur_t, prev_t, "drops", name, in.elapsed_s)) *drops += *r;
        }
        calls = 0;
        for (const auto& p : json_field(in.cur, "pools")) {
            const json& before = entity(in.prev, "pools", {{"pool", text(json_field(p, "pool"))}});
            if (auto r = rate(p, before, "traffic", "calls", in.elapsed_s)) *calls += *r;
        }
    }
    return "total    rx " + show(rate(cur_t, prev_t, "traffic", "rx_packets", in.elapsed_s)) + "/s  tx " +
           show(rate(cur_t, prev_t, "traffic", "tx_packets", in.elapsed_s)) + "/s  calls " + show(calls) +
           "/s  drops " + show(drops) + "/s";
}

std::string drops_line(const TopInput& in) {
    std::string line = "drops/s ";
    if (!in.prev.is_object() || !(in.elapsed_s > 0)) return line + " -";
    const json& cur_t = json_field(in.cur, "totals");
    const json& prev_t = json_field(in.prev, "totals");
    std::vector<std::pair<double, std::string>> reasons;
    for (const auto& [name, v] : json_field(cur_t, "drops").items())
        if (auto r = rate(cur_t, prev_t, "drops", name, in.elapsed_s); r && *r > 0) reasons.emplace_back(*r, name);
    if (reasons.empty()) return line + " none";
    std::sort(reasons.begin(), reasons.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    for (size_t i = 0; i < reasons.size() && i < kTopDrops; ++i)
        line += " " + printable(reasons[i].second) + " " + format_rate(reasons[i].first);
    if (reasons.size() > kTopDrops) line += " +" + std::to_string(reasons.size() - kTopDrops) + " more";
    return line;
}

// Share of RX bursts that returned frames, per worker: how busy its core is.
std::string busy_line(const TopInput& in) {
    std::string line = "busy    ";
    const json& workers = json_field(in.cur, "workers");
    if (!workers.is_array() || workers.empty()) return line + " -";
    for (const auto& w : workers) {
        const std::string id = text(json_field(w, "worker"));
        bool stalled = false;
        for (const auto& s : json_field(in.status, "worker_status"))
            if (text(json_field(s, "worker")) == id) stalled = json_field(s, "stalled") == true;
        std::string share = "-";
        const json& before = entity(in.prev, "workers", {{"worker", id}});
        const auto busy = rate(w, before, "poll", "busy_polls", in.elapsed_s);
        const auto polls = rate(w, before, "poll", "polls", in.elapsed_s);
        if (busy && polls && *polls > 0) {
            char b[16];
            std::snprintf(b, sizeof(b), "%.0f%%", std::min(100.0, *busy / *polls * 100.0));
            share = b;
        }
        line += " w" + printable(id) + " " + (stalled ? "STALLED" : share);
    }
    return line;
}

std::string table_row(const std::string& name, const std::string& state, const std::string& in_s,
                      const std::string& out_s, const std::string& calls_s, const std::string& health) {
    return left(name, kNameW) + " " + left(state, kStateW) + right(in_s, kNumW) + " " + right(out_s, kNumW) + " " +
           right(calls_s, kNumW) + "  " + health;
}

void pool_and_backend_lines(const TopInput& in, std::vector<std::string>& out) {
    // Pools in the order of the daemon's snapshot, then any only `backends` names.
    std::vector<std::string> pools;
    for (const auto& p : json_field(in.cur, "pools")) pools.push_back(text(json_field(p, "pool")));
    for (const auto& b : json_field(in.backends, "backends")) {
        const std::string p = text(json_field(b, "pool"));
        if (std::find(pools.begin(), pools.end(), p) == pools.end()) pools.push_back(p);
    }
    for (const auto& pool : pools) {
        size_t total = 0, up = 0;
        for (const auto& b : json_field(in.backends, "backends"))
            if (text(json_field(b, "pool")) == pool) {
                ++total;
                up += text(json_field(b, "state")) == "active";
            }
        const json& cur = entity(in.cur, "pools", {{"pool", pool}});
        const json& prev = entity(in.prev, "pools", {{"pool", pool}});
        out.push_back(table_row(printable(pool), std::to_string(up) + "/" + std::to_string(total) + " up",
                                show(rate(cur, prev, "traffic", "packets_in", in.elapsed_s)),
                                show(rate(cur, prev, "traffic", "packets_out", in.elapsed_s)),
                                show(rate(cur, prev, "traffic", "calls", in.elapsed_s)), ""));
        auto backend_row = [&](const std::string& address, const json& info) {
            const json& bc = entity(in.cur, "backends", {{"pool", pool}, {"backend", address}});
            const json& bp = entity(in.prev, "backends", {{"pool", pool}, {"backend", address}});
            std::string health = text(json_field(info, "health"));
            if (json_field(info, "panic") == true) health += " panic";
            if (auto d = text(json_field(info, "health_detail")); !d.empty()) health += ": " + d;
            const std::string state = text(json_field(info, "state"));
            out.push_back(table_row("  " + printable(address), printable(state.empty() ? "-" : state),
                                    show(rate(bc, bp, "traffic", "packets_to", in.elapsed_s)),
                                    show(rate(bc, bp, "traffic", "packets_from", in.elapsed_s)),
                                    show(rate(bc, bp, "traffic", "calls", in.elapsed_s)), printable(health)));
        };
        std::vector<std::string> listed;
        for (const auto& b : json_field(in.backends, "backends")) {
            if (text(json_field(b, "pool")) != pool) continue;
            listed.push_back(text(json_field(b, "address")));
            backend_row(listed.back(), b);
        }
        // Still in the workers' snapshot but no longer managed (just removed).
        for (const auto& b : json_field(in.cur, "backends"))
            if (text(json_field(b, "pool")) == pool &&
                std::find(listed.begin(), listed.end(), text(json_field(b, "backend"))) == listed.end())
                backend_row(text(json_field(b, "backend")), json());
    }
}

}  // namespace

std::string format_rate(double x) {
    char b[16];
    if (!(x >= 0)) return "-";
    if (x < 99.95) {
        std::snprintf(b, sizeof(b), "%.1f", x);
        return b;
    }
    if (x < 999.5) {
        std::snprintf(b, sizeof(b), "%.0f", x);
        return b;
    }
    static constexpr std::pair<double, char> kUnits[] = {{1e3, 'k'}, {1e6, 'M'}, {1e9, 'G'}, {1e12, 'T'}};
    for (const auto& [scale, unit] : kUnits) {
        const double v = x / scale;
        if (v < 9.995)
            std::snprintf(b, sizeof(b), "%.2f%c", v, unit);
        else if (v < 99.95)
            std::snprintf(b, sizeof(b), "%.1f%c", v, unit);
        else if (v < 999.5 || unit == 'T')
            std::snprintf(b, sizeof(b), "%.0f%c", std::min(v, 999.0), unit);
        else
            continue;
        return b;
    }
    return "-";
}

std::vector<std::string> top_frame(const TopInput& in, size_t width, size_t max_lines) {
    std::vector<std::string> lines;
    lines.push_back(header_line(in));
    lines.push_back(traffic_line(in));
    lines.push_back(drops_line(in));
    lines.push_back(busy_line(in));
    lines.push_back("");
    lines.push_back(table_row("POOL / BACKEND", "STATE", "IN/s", "OUT/s", "CALLS/s", "HEALTH"));
    pool_and_backend_lines(in, lines);
    if (max_lines > 0 && lines.size() > max_lines) {
        const size_t cut = lines.size() - (max_lines - 1);
        if (max_lines == 1) {
            lines.resize(1);
        } else {
            lines.resize(max_lines - 1);
            lines.push_back("... " + std::to_string(cut) + " more lines (a taller terminal shows them)");
        }
    }
    for (auto& l : lines) {
        while (!l.empty() && l.back() == ' ') l.pop_back();
        l = fit(std::move(l), width);
    }
    return lines;
}

}  // namespace siplb::cli
