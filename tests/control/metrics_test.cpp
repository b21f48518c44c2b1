#include "siplb/control/metrics.h"

#include <gtest/gtest.h>

#include <set>
#include <cstdlib>
#include <sstream>

#include "siplb/control/log.h"
#include "siplb/control/metrics_http.h"

using namespace siplb;
using namespace siplb::control;

namespace {

// Validates one exposition sample line: name{label="value",...} number.
// Returns the metric name, or "" when the line is malformed.
std::string check_sample(const std::string& line) {
    size_t i = 0;
    auto is_name = [](char c) { return (c >= 'a' && c <= 'z') || c == '_' || (c >= '0' && c <= '9'); };
    while (i < line.size() && is_name(line[i])) ++i;
    const std::string name = line.substr(0, i);
    if (name.empty()) return "";
    if (i < line.size() && line[i] == '{') {
        ++i;
        while (true) {
            const size_t k = i;
            while (i < line.size() && is_name(line[i])) ++i;
            if (i == k || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') return "";
            i += 2;
            while (i < line.size() && line[i] != '"') {
                if (line[i] == '\\') {
                    if (i + 1 >= line.size()) return "";
                    const char e = line[i + 1];
                    if (e != '\\' && e != '"' && e != 'n') return "";
                    ++i;
                }
                if (line[i] == '\n') return "";
                ++i;
            }
            if (i >= line.size()) return "";
            ++i;  // closing quote
            if (i < line.size() && line[i] == ',') {
                ++i;
                continue;
            }
            if (i < line.size() && line[i] == '}') {
                ++i;
                break;
            }
            return "";
        }
    }
    if (i >= line.size() || line[i] != ' ') return "";
    const std::string value = line.substr(i + 1);
    if (value.empty()) return "";
    char* end = nullptr;
    std::strtod(value.c_str(), &end);
    return (end && *end == '\0') ? name : "";
}

std::vector<PoolView> views() {
    config::Config c;
    config::PoolConfig p;
    p.name = "lu\"nd\\x\ny";  // hostile name: must be escaped
    p.backends.push_back({*Endpoint::parse("192.0.2.1:5060"), 3, true});
    p.backends.push_back({*Endpoint::parse("[2001:db8::1]:5060"), 1, false});
    c.pools.push_back(p);
    PoolManager pm(c);
    return pm.pools();
}

TEST(Metrics, EscapesLabelValues) {
    EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    EXPECT_EQ(escape_label_value("plain"), "plain");
    // The checker itself must reject malformed lines.
    EXPECT_EQ(check_sample("x{a=\"b\"} 1"), "x");
    EXPECT_EQ(check_sample("x{a=\"b} 1"), "");
    EXPECT_EQ(check_sample("x{a=\"b\\q\"} 1"), "");
    EXPECT_EQ(check_sample("x 1z"), "");
}

// A StatsSnapshot where every counter of every scope has its own value:
// entity e, counter i -> base + 1000 * e + i.
StatsSnapshot distinct_stats() {
    using dataplane::CounterScope;
    StatsSnapshot s;
    auto fill = [](std::vector<uint64_t>& v, uint64_t base) {
        for (size_t i = 0; i < v.size(); ++i) v[i] = base + i;
    };
    for (unsigned w = 0; w < 2; ++w) {
        dataplane::DataplaneStats::Worker wk;
        wk.index = w;
        wk.lcore = w + 1;
        fill(wk.values, 100000 + 1000 * w);
        s.dataplane.workers.push_back(wk);
    }
    dataplane::DataplaneStats::Port port;
    port.name = "ext";
    port.device = "net_null0";
    fill(port.values, 200000);
    s.dataplane.ports.push_back(port);
    dataplane::DataplaneStats::Pool pool;
    pool.name = "lu\"nd\\x\ny";
    fill(pool.values, 300000);
    s.dataplane.pools.push_back(pool);
    dataplane::DataplaneStats::Backend backend;
    backend.pool = pool.name;
    backend.address = *Endpoint::parse("192.0.2.1:5060");
    fill(backend.values, 400000);
    s.dataplane.backends.push_back(backend);
    dataplane::DataplaneStats::Rule rule;
    rule.pool = pool.name;
    rule.name = "scan\"ners";  // hostile name: must be escaped
    rule.action = "drop";
    fill(rule.values, 500000);
    s.dataplane.rules.push_back(rule);
    s.dataplane.neighbors = 5;
    s.affinity_entries = 6;
    s.affinity_capacity = 1024;
    return s;
}

TEST(Metrics, ExpositionIsWellFormed) {
    set_log_level(LogLevel::error);
    StatsSnapshot s = distinct_stats();
    s.dataplane.backends[0].values[0] = 18446744073709551615ull;  // exact uint64
    MetricsInfo info;
    info.version = "0.1.0";
    info.snapshot_version = 12;
    const std::string text = render_metrics(views(), s, info);

    std::istringstream in(text);
    std::string line;
    std::set<std::string> typed;
    std::string last_help;
    size_t samples = 0;
    while (std::getline(in, line)) {
        if (line.rfind("# HELP ", 0) == 0) {
            last_help = line.substr(7, line.find(' ', 7) - 7);
            continue;
        }
        if (line.rfind("# TYPE ", 0) == 0) {
            std::string name = line.substr(7, line.find(' ', 7) - 7);
            EXPECT_EQ(name, last_help) << "TYPE without HELP: " << line;
            std::string type = line.substr(line.rfind(' ') + 1);
            EXPECT_TRUE(type == "counter" || type == "gauge") << line;
            if (type == "counter") {
                EXPECT_TRUE(name.size() > 6 && name.substr(name.size() - 6) == "_total") << name;
            }
            EXPECT_TRUE(typed.insert(name).second) << "duplicate family " << name;
            continue;
        }
        const std::string name = check_sample(line);
        ASSERT_FALSE(name.empty()) << "bad sample line: " << line;
        EXPECT_TRUE(typed.count(name)) << "sample before its TYPE: " << line;
        ++samples;
    }
    EXPECT_GT(samples, 100u);
    for (const char* fam :
         {"siplb_traffic_total", "siplb_drops_total", "siplb_backend_traffic_total", "siplb_backend_up",
          "siplb_backend_state", "siplb_backend_weight", "siplb_snapshot_version", "siplb_port_driver_total",
          "siplb_pool_protect_total", "siplb_icmp_total", "siplb_fragments_total",
          "siplb_backend_overload_retry_after_s", "siplb_rule_protect_total"})
        EXPECT_TRUE(typed.count(fam)) << fam;
    EXPECT_NE(text.find("siplb_backend_traffic_total{pool=\"lu\\\"nd\\\\x\\ny\",backend=\"192.0.2.1:5060\","
                        "kind=\"packets_to\"} 18446744073709551615\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("siplb_backend_weight{pool=\"lu\\\"nd\\\\x\\ny\",backend=\"192.0.2.1:5060\"} 3\n"),
              std::string::npos);
    EXPECT_NE(text.find("siplb_backend_state{pool=\"lu\\\"nd\\\\x\\ny\",backend=\"[2001:db8::1]:5060\",state="
                        "\"disabled\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("siplb_snapshot_version 12\n"), std::string::npos);
    EXPECT_NE(text.find("siplb_neighbors 5\n"), std::string::npos);
    EXPECT_NE(text.find("siplb_affinity_entries 6\n"), std::string::npos);
}

// Every entry of the counter schema, in every scope, reaches both `stats`
// (JSON group.name) and /metrics (its family and label), with its own value.
TEST(Metrics, EverySchemaCounterReachesStatsAndMetrics) {
    using dataplane::CounterKind;
    using dataplane::CounterScope;
    set_log_level(LogLevel::error);
    const StatsSnapshot s = distinct_stats();
    const std::string text = render_metrics({}, s, MetricsInfo{});
    const nlohmann::json j = stats_json(s);

    struct Scope {
        CounterScope scope;
        const char* list;    // JSON array of entities ("" = totals object)
        std::string labels;  // Prometheus labels of the first entity, before the counter's own
        uint64_t base;       // distinct_stats() value of counter 0
    };
    const Scope scopes[] = {
        {CounterScope::worker, "workers", "worker=\"0\"", 100000},
        {CounterScope::port, "ports", "port=\"ext\"", 200000},
        {CounterScope::pool, "pools", "pool=\"lu\\\"nd\\\\x\\ny\"", 300000},
        {CounterScope::backend, "backends", "pool=\"lu\\\"nd\\\\x\\ny\",backend=\"192.0.2.1:5060\"", 400000},
        {CounterScope::rule, "rules", "pool=\"lu\\\"nd\\\\x\\ny\",rule=\"scan\\\"ners\"", 500000},
    };
    size_t checked = 0;
    for (const auto& sc : scopes) {
        const auto schema = dataplane::counter_schema(sc.scope);
        ASSERT_FALSE(schema.empty());
        const nlohmann::json& entity = j.at(sc.list).at(0);
        for (size_t i = 0; i < schema.size(); ++i) {
            const auto& c = schema[i];
            const uint64_t want = sc.base + i;
            ASSERT_TRUE(entity.contains(c.group) && entity[c.group].contains(c.name))
                << sc.list << ": " << c.group << "." << c.name << " missing from stats";
            EXPECT_EQ(entity[c.group][c.name].get<uint64_t>(), want) << c.group << "." << c.name;
            const char* prefix = sc.scope == CounterScope::worker    ? "siplb_"
                                 : sc.scope == CounterScope::port    ? "siplb_port_"
                                 : sc.scope == CounterScope::pool    ? "siplb_pool_"
                                 : sc.scope == CounterScope::backend ? "siplb_backend_"
                                                                     : "siplb_rule_";
            std::string sample = std::string(prefix) + c.group;
            if (c.kind == CounterKind::counter)
                sample += "_total{" + sc.labels + "," + dataplane::counter_label(c) + "=\"" + c.name + "\"}";
            else
                sample += std::string("_") + c.name + "{" + sc.labels + "}";
            EXPECT_NE(text.find(sample + " " + std::to_string(want) + "\n"), std::string::npos)
                << "metrics lack " << sample;
            ++checked;
        }
    }
    EXPECT_GT(checked, 60u);
    // A rule's identity in stats: its pool, name and action.
    EXPECT_EQ(j["rules"][0]["pool"], "lu\"nd\\x\ny");
    EXPECT_EQ(j["rules"][0]["rule"], "scan\"ners");
    EXPECT_EQ(j["rules"][0]["action"], "drop");
    // The protection's work per pool: scans, memo answers, refused scans, evictions.
    for (const char* name : {"scans", "memo_hits", "scan_errors", "rate_evictions"})
        EXPECT_TRUE(j["pools"][0]["protect"].contains(name)) << name;
    // Worker totals: counters summed over the two workers, gauges the largest.
    const auto worker_schema = dataplane::counter_schema(CounterScope::worker);
    for (size_t i = 0; i < worker_schema.size(); ++i) {
        const uint64_t w0 = 100000 + i, w1 = 101000 + i;
        const uint64_t want = worker_schema[i].kind == CounterKind::counter ? w0 + w1 : w1;
        EXPECT_EQ(j["totals"][worker_schema[i].group][worker_schema[i].name].get<uint64_t>(), want);
    }
    EXPECT_EQ(j["node"]["neighbors"], 5);
    EXPECT_EQ(j["node"]["affinity_capacity"], 1024);
}

TEST(MetricsHttp, Routes) {
    auto render = [] { return std::string("x 1\n"); };
    std::string r = http_metrics_response("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", render);
    EXPECT_EQ(r.rfind("HTTP/1.0 200 OK\r\n", 0), 0u);
    EXPECT_NE(r.find("text/plain; version=0.0.4"), std::string::npos);
    EXPECT_NE(r.find("Content-Length: 4\r\n"), std::string::npos);
    EXPECT_EQ(r.substr(r.size() - 4), "x 1\n");
    EXPECT_EQ(http_metrics_response("GET /metrics?x=1 HTTP/1.0\r\n\r\n", render).rfind("HTTP/1.0 200", 0), 0u);
    EXPECT_EQ(http_metrics_response("GET / HTTP/1.1\r\n\r\n", render).rfind("HTTP/1.0 404", 0), 0u);
    EXPECT_EQ(http_metrics_response("POST /metrics HTTP/1.1\r\n\r\n", render).rfind("HTTP/1.0 405", 0), 0u);
    EXPECT_EQ(http_metrics_response("garbage\r\n\r\n", render).rfind("HTTP/1.0 400", 0), 0u);
    const std::string h = http_metrics_response("HEAD /metrics HTTP/1.1\r\n\r\n", render);
    EXPECT_EQ(h.substr(h.size() - 4), "\r\n\r\n");
}

}  // namespace
