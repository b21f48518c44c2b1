// deploy/grafana/siplb.json against the daemon's real exposition: the file
// is a Grafana dashboard JSON model, and every metric, label and label value
// its queries name is one render_metrics() produces. A renamed counter or a
// typo in a query fails here instead of showing an empty panel.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "siplb/control/log.h"
#include "siplb/control/metrics.h"

namespace siplb::control {
namespace {

using json = nlohmann::json;

// Labels Prometheus adds to every scraped series; the daemon never exports them.
const std::set<std::string> kTargetLabels = {"instance", "job"};

struct Family {
    std::set<std::string> labels;
    std::map<std::string, std::set<std::string>> values;  // label -> values seen
};

// One worker, port, pool and backend: every family with every label value
// the schema has (values do not matter, only names).
std::map<std::string, Family> exposition() {
    set_log_level(LogLevel::error);
    config::Config c;
    config::PoolConfig p;
    p.name = "lund";
    p.backends.push_back({*Endpoint::parse("198.51.100.11:5060"), 1, true});
    c.pools.push_back(p);
    PoolManager pm(c);
    StatsSnapshot s;
    s.dataplane.workers.emplace_back();
    s.dataplane.ports.emplace_back();
    s.dataplane.ports.back().name = "ext";
    s.dataplane.pools.emplace_back();
    s.dataplane.pools.back().name = "lund";
    s.dataplane.backends.emplace_back();
    s.dataplane.backends.back().pool = "lund";
    s.dataplane.backends.back().address = *Endpoint::parse("198.51.100.11:5060");
    MetricsInfo info;
    info.version = "test";
    const std::string text = render_metrics(pm.pools(), s, info);

    std::map<std::string, Family> out;
    const std::regex sample(R"(^([a-z_]+)(\{(.*)\})? \S+$)");
    const std::regex label(R"(([a-z_]+)="((?:[^"\\]|\\.)*)\")");
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        std::smatch m;
        if (line.rfind("# TYPE ", 0) == 0) {
            out[line.substr(7, line.find(' ', 7) - 7)];
            continue;
        }
        if (line.empty() || line[0] == '#' || !std::regex_match(line, m, sample)) continue;
        Family& f = out[m[1]];
        const std::string labels = m[3];
        for (auto it = std::sregex_iterator(labels.begin(), labels.end(), label); it != std::sregex_iterator(); ++it) {
            f.labels.insert((*it)[1]);
            f.values[(*it)[1]].insert((*it)[2]);
        }
    }
    return out;
}

json load_dashboard() {
    std::ifstream in(SIPLB_DASHBOARD);
    if (!in) return json();
    return json::parse(in, nullptr, /*allow_exceptions=*/false);
}

struct Query {
    std::string where;  // panel title or variable name, for messages
    std::string expr;
};

void panel_queries(const json& panels, std::vector<Query>& out) {
    for (const auto& p : panels) {
        for (const auto& t : p.value("targets", json::array()))
            if (t.contains("expr")) out.push_back({p.value("title", "?"), t["expr"].get<std::string>()});
        if (p.contains("panels")) panel_queries(p["panels"], out);  // rows, collapsed or not
    }
}

std::vector<Query> all_queries(const json& d) {
    std::vector<Query> q;
    panel_queries(d.value("panels", json::array()), q);
    for (const auto& v : d["templating"].value("list", json::array())) {
        const json& query = v.value("query", json());
        const std::string text = query.is_object()   ? query.value("query", "")
                                 : query.is_string() ? query.get<std::string>()
                                                     : "";
        if (!text.empty()) q.push_back({"variable " + v.value("name", "?"), text});
    }
    for (const auto& a : d["annotations"].value("list", json::array()))
        if (a.contains("expr")) q.push_back({"annotation " + a.value("name", "?"), a["expr"].get<std::string>()});
    return q;
}

TEST(GrafanaDashboard, IsADashboardModelWithAPrometheusInput) {
    const json d = load_dashboard();
    ASSERT_TRUE(d.is_object()) << SIPLB_DASHBOARD << " is missing or not valid JSON";
    EXPECT_GE(d.value("schemaVersion", 0), 37);
    EXPECT_EQ(d.value("uid", ""), "siplb");
    bool input = false;
    for (const auto& i : d.value("__inputs", json::array()))
        input = input || (i.value("name", "") == "DS_PROMETHEUS" && i.value("pluginId", "") == "prometheus");
    EXPECT_TRUE(input) << "no DS_PROMETHEUS datasource input";
    std::set<int> ids;
    size_t graphs = 0;
    for (const auto& p : d["panels"]) {
        EXPECT_TRUE(ids.insert(p.value("id", -1)).second) << "duplicate panel id " << p.value("id", -1);
        const json& g = p.value("gridPos", json());
        EXPECT_LE(g.value("x", 99) + g.value("w", 99), 24) << p.value("title", "?");
        if (p.value("type", "") == "row") continue;
        ++graphs;
        EXPECT_EQ(p["datasource"].value("uid", ""), "${DS_PROMETHEUS}") << p.value("title", "?");
        EXPECT_FALSE(p.value("targets", json::array()).empty()) << p.value("title", "?");
        for (const auto& t : p.value("targets", json::array()))
            EXPECT_EQ(t["datasource"].value("uid", ""), "${DS_PROMETHEUS}") << p.value("title", "?");
    }
    EXPECT_GE(graphs, 10u);
}

TEST(GrafanaDashboard, QueriesNameOnlyWhatTheDaemonExports) {
    const json d = load_dashboard();
    ASSERT_TRUE(d.is_object()) << SIPLB_DASHBOARD;
    const auto families = exposition();
    ASSERT_TRUE(families.count("siplb_backend_state")) << "exposition not parsed";
    ASSERT_TRUE(families.at("siplb_poll_total").values.at("kind").count("busy_polls"));

    const std::regex name(R"(siplb_[a-z_]+)");
    const std::regex selector(R"((siplb_[a-z_]+)\{([^}]*)\})");
    const std::regex matcher(R"(([a-zA-Z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)\")");
    const std::regex by(R"(\b(?:by|without)\s*\(([^)]*)\))");
    const std::regex literal_alternatives(R"([a-z0-9_]+(\|[a-z0-9_]+)*)");
    std::set<std::string> used;
    const auto queries = all_queries(d);
    ASSERT_GE(queries.size(), 20u);
    for (const auto& q : queries) {
        std::set<std::string> labels_here = kTargetLabels;
        for (auto it = std::sregex_iterator(q.expr.begin(), q.expr.end(), name); it != std::sregex_iterator(); ++it) {
            const std::string n = it->str();
            used.insert(n);
            auto f = families.find(n);
            if (f == families.end()) {
                ADD_FAILURE() << q.where << ": " << n << " is not exported (" << q.expr << ")";
                continue;
            }
            labels_here.insert(f->second.labels.begin(), f->second.labels.end());
        }
        const auto selectors = std::sregex_iterator(q.expr.begin(), q.expr.end(), selector);
        for (auto it = selectors; it != std::sregex_iterator(); ++it) {
            auto f = families.find((*it)[1]);
            if (f == families.end()) continue;
            const std::string body = (*it)[2];
            for (auto m = std::sregex_iterator(body.begin(), body.end(), matcher); m != std::sregex_iterator(); ++m) {
                const std::string label = (*m)[1], op = (*m)[2], value = (*m)[3];
                if (kTargetLabels.count(label)) continue;
                if (!f->second.labels.count(label)) {
                    ADD_FAILURE() << q.where << ": " << f->first << " has no label " << label << " (" << q.expr << ")";
                    continue;
                }
                if (value.find('$') != std::string::npos || (op != "=" && op != "=~")) continue;
                if (op == "=~" && !std::regex_match(value, literal_alternatives)) continue;
                std::stringstream alternatives(value);
                for (std::string v; std::getline(alternatives, v, '|');)
                    EXPECT_TRUE(f->second.values.at(label).count(v)) << q.where << ": " << f->first << " never has "
                                                                     << label << "=\"" << v << "\" (" << q.expr << ")";
            }
        }
        for (auto it = std::sregex_iterator(q.expr.begin(), q.expr.end(), by); it != std::sregex_iterator(); ++it) {
            std::stringstream list((*it)[1]);
            for (std::string l; std::getline(list, l, ',');) {
                l.erase(0, l.find_first_not_of(' '));
                l.erase(l.find_last_not_of(' ') + 1);
                EXPECT_TRUE(labels_here.count(l))
                    << q.where << ": grouping by " << l << ", a label none of its metrics has (" << q.expr << ")";
            }
        }
    }
    // What the dashboard is for: traffic per pool and backend, drops, backend state, worker load.
    for (const char* must : {"siplb_pool_traffic_total", "siplb_backend_traffic_total", "siplb_drops_total",
                             "siplb_backend_state", "siplb_backend_up", "siplb_poll_total"})
        EXPECT_TRUE(used.count(must)) << "no panel uses " << must;
}

}  // namespace
}  // namespace siplb::control
