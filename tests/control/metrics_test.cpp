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

TEST(Metrics, ExpositionIsWellFormed) {
    set_log_level(LogLevel::error);
    StatsSnapshot s;
    s.workers.push_back({0, 1, 100, 90, 10});
    s.ports.push_back({"ext", 100, 90, 6400, 5760, 1, 0, 0});
    s.drops["not_sip"] = 7;
    s.drops["no_backend"] = 3;
    s.backends.push_back({"lund", *Endpoint::parse("192.0.2.1:5060"), 5, 500, 4, 400, 2});
    s.backends[0].packets_to = 18446744073709551615ull;  // exact uint64
    s.edge = {{"icmp", "echo_replies", 4}, {"icmp", "errors_sent", 1}, {"fragments", "reassembled", 9}};
    s.neighbors = 5;
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
    EXPECT_GT(samples, 20u);
    for (const char* fam : {"siplb_packets_total", "siplb_bytes_total", "siplb_drops_total", "siplb_backend_up",
                            "siplb_backend_state", "siplb_backend_weight", "siplb_snapshot_version",
                            "siplb_worker_packets_total"})
        EXPECT_TRUE(typed.count(fam)) << fam;
    EXPECT_NE(text.find("siplb_packets_total{pool=\"lund\",backend=\"192.0.2.1:5060\",direction=\"to_backend\"} "
                        "18446744073709551615\n"),
              std::string::npos);
    EXPECT_NE(text.find("siplb_drops_total{reason=\"not_sip\"} 7\n"), std::string::npos);
    EXPECT_NE(text.find("siplb_backend_weight{pool=\"lu\\\"nd\\\\x\\ny\",backend=\"192.0.2.1:5060\"} 3\n"),
              std::string::npos);
    EXPECT_NE(text.find("siplb_backend_state{pool=\"lu\\\"nd\\\\x\\ny\",backend=\"[2001:db8::1]:5060\",state=\"disabled\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("siplb_snapshot_version 12\n"), std::string::npos);
    EXPECT_TRUE(typed.count("siplb_icmp_total"));
    EXPECT_TRUE(typed.count("siplb_fragments_total"));
    EXPECT_NE(text.find("siplb_icmp_total{kind=\"echo_replies\"} 4\nsiplb_icmp_total{kind=\"errors_sent\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("siplb_fragments_total{kind=\"reassembled\"} 9\n"), std::string::npos);
    EXPECT_NE(text.find("siplb_neighbors 5\n"), std::string::npos);
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
