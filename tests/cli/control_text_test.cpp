// siplbctl's text output for `backends` and `query`, rendered from the
// results the daemon's own CommandHandler sends: its backends listing, and
// lookups answered by control::lookup_call on a snapshot SnapshotBuilder
// built, with a real connection table.
#include "control_text.h"
#include "text_columns.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "siplb/balance/hash.h"
#include "siplb/balance/pick.h"
#include "siplb/control/commands.h"
#include "siplb/control/log.h"
#include "siplb/control/snapshot_builder.h"

namespace siplb::cli {
namespace {

using json = nlohmann::json;
using control::CommandKind;
using dataplane::CounterScope;

constexpr uint32_t kNow = 1000;  // monotonic seconds of the lookups

const std::vector<std::string> kBaseColumns = {"POOL",    "BACKEND", "SOURCE", "WEIGHT",   "STATE", "SHARE",
                                               "PACKETS", "BYTES",   "CALLS",  "SELF_ADV", "HEALTH"};

using test::words;

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < text.size()) {
        const size_t nl = text.find('\n', i);
        EXPECT_NE(nl, std::string::npos) << "unterminated line in:\n" << text;
        if (nl == std::string::npos) break;
        out.push_back(text.substr(i, nl - i));
        i = nl + 1;
    }
    return out;
}

// The words of the table row whose second column is `backend`.
std::vector<std::string> row_of(const std::string& text, const std::string& backend) {
    for (const auto& l : lines(text)) {
        auto w = words(l);
        if (w.size() > 1 && w[1] == backend) return w;
    }
    return {};
}

std::string upper(std::string t) {
    for (auto& ch : t) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return t;
}

// The backend scope's connection counters, in the schema's order.
std::vector<std::string> connection_counters() {
    std::vector<std::string> names;
    for (const auto& c : dataplane::counter_schema(CounterScope::backend))
        if (c.group == control::kConnectionCounterGroup) names.emplace_back(c.name);
    return names;
}

class ControlText : public ::testing::Test {
protected:
    void SetUp() override {
        control::set_log_level(control::LogLevel::error);
        config::PoolConfig lund;
        lund.name = "lund";
        lund.listen = {*Endpoint::parse("203.0.113.10:5060")};
        for (const char* a : {"198.51.100.11:5060", "198.51.100.12:5060"})
            lund.backends.push_back({*Endpoint::parse(a), 1, true});
        config::PoolConfig trunk;
        trunk.name = "trunk";
        trunk.listen = {*Endpoint::parse("203.0.113.20:5060")};
        trunk.tcp_listen = {*Endpoint::parse("203.0.113.20:5060")};
        trunk.tls_listen = {*Endpoint::parse("203.0.113.20:5061")};
        trunk.backends = {{*Endpoint::parse("198.51.100.21:5060"), 1, true, 5061},
                          {*Endpoint::parse("198.51.100.22:5060"), 1, true, 5071}};
        cfg_.pools = {lund, trunk};
        pools_ = std::make_unique<control::PoolManager>(cfg_);
        control::SnapshotBuilder builder(cfg_);
        auto snap = builder.build(*pools_);
        ASSERT_TRUE(snap) << snap.message();
        snap_ = std::move(snap).value();
        auto conns = balance::ConnectionTable::create(1024, 64);
        ASSERT_TRUE(conns) << conns.message();
        conns_ = std::move(conns).value();

        control::ControlHooks hooks;
        hooks.stats = [this] { return stats_; };
        // As the daemon fills it from its published snapshot.
        hooks.metrics_info = [this] {
            control::MetricsInfo m;
            m.table_share = control::table_shares(*snap_);
            m.tcp_pools = control::tcp_pools(*snap_);
            return m;
        };
        hooks.lookup = [this](const std::string& pool, const std::string& call_id,
                              const std::optional<std::string>& key) {
            return control::lookup_call(*snap_, nullptr, pool, call_id, kNow, key, conns_.get());
        };
        handler_ = std::make_unique<control::CommandHandler>(*pools_, std::move(hooks));
    }

    json ask(CommandKind kind, const std::string& pool = "", const std::string& call_id = "") {
        control::Request r;
        r.cmd = kind;
        r.pool = pool;
        r.call_id = call_id;
        auto res = handler_->execute(r, control::Actor{"test"});
        EXPECT_TRUE(res) << res.message();
        return res ? *res : json();
    }

    void count(const char* address, const char* name, uint64_t v) {
        dataplane::DataplaneStats::Backend* b = nullptr;
        for (auto& x : stats_.dataplane.backends)
            if (x.address == *Endpoint::parse(address)) b = &x;
        if (!b) {
            stats_.dataplane.backends.emplace_back();
            b = &stats_.dataplane.backends.back();
            b->pool = "trunk";
            b->address = *Endpoint::parse(address);
        }
        const int i = dataplane::counter_index(CounterScope::backend, control::kConnectionCounterGroup, name);
        ASSERT_GE(i, 0) << name;
        b->values[static_cast<size_t>(i)] = v;
    }

    // Records a connection of `client` to the trunk's TLS VIP on `backend`,
    // keyed as TcpStage keys it: the client's address bytes and big-endian
    // port hashed with the pool's seed.
    void open_tls(const Endpoint& client, const std::string& backend, uint32_t lifetime_s) {
        const balance::PoolSnapshot* p = snap_->find_pool("trunk");
        ASSERT_NE(p, nullptr);
        uint8_t bytes[18];
        const size_t alen = client.ip.is_v4() ? 4 : 16;
        std::memcpy(bytes, client.ip.bytes.data(), alen);
        bytes[alen] = static_cast<uint8_t>(client.port >> 8);
        bytes[alen + 1] = static_cast<uint8_t>(client.port);
        const uint64_t key = balance::connection_key(*p, balance::hash_call_id(bytes, alen + 2, p->seed()), true);
        balance::ConnectionTable::Conn c;
        for (const auto& b : p->backends())
            if (b.identity == backend) c.backend_id = b.id;
        ASSERT_NE(c.backend_id, 0u) << backend;
        for (size_t i = 0; i < p->tcp_listen().size(); ++i)  // slots count from 1 (0: none)
            if (p->tcp_listen()[i].tls) c.vip = static_cast<uint8_t>(i + 1);
        ASSERT_NE(c.vip, 0u);
        c.expiry_s = kNow + lifetime_s;
        c.state = balance::ConnectionTable::State::established;
        ASSERT_EQ(conns_->open(key, c, kNow, 0).outcome, balance::ConnectionTable::Open::inserted);
    }

    config::Config cfg_;
    std::unique_ptr<control::PoolManager> pools_;
    std::unique_ptr<const balance::DataplaneSnapshot> snap_;
    std::unique_ptr<balance::ConnectionTable> conns_;
    std::unique_ptr<control::CommandHandler> handler_;
    control::StatsSnapshot stats_;
};

// `stats` shows each protected pool's protect counters in one row, the
// schema's order, and every rule's hits; a pool without rules and with
// nothing counted has no protect row, and the pool table leaves protection
// out of its OTHER column.
TEST_F(ControlText, StatsShowEachPoolsProtectionAndItsRulesHits) {
    auto set = [](auto& entity, CounterScope scope, const char* group, const char* name, uint64_t v) {
        const int i = dataplane::counter_index(scope, group, name);
        ASSERT_GE(i, 0) << name;
        entity.values[static_cast<size_t>(i)] = v;
    };
    dataplane::DataplaneStats::Pool lund, trunk;
    lund.name = "lund";
    trunk.name = "trunk";
    set(lund, CounterScope::pool, "traffic", "packets_in", 1000);
    set(lund, CounterScope::pool, "protect", "rule_drops", 7);
    set(lund, CounterScope::pool, "protect", "scans", 120);
    set(lund, CounterScope::pool, "protect", "memo_hits", 880);
    set(trunk, CounterScope::pool, "traffic", "packets_in", 3);
    stats_.dataplane.pools = {lund, trunk};
    dataplane::DataplaneStats::Rule scanner, trunks;
    scanner.pool = trunks.pool = "lund";
    scanner.name = "scanner";
    scanner.action = "drop";
    trunks.name = "trunks";
    trunks.action = "route";
    set(scanner, CounterScope::rule, "protect", "hits", 7);
    set(trunks, CounterScope::rule, "protect", "hits", 3);
    stats_.dataplane.rules = {scanner, trunks};

    const std::string text = render_result(CommandKind::stats, ask(CommandKind::stats));
    std::vector<std::string> protect_header{"POOL"}, protect_row{"lund"};
    for (const auto& c : dataplane::counter_schema(CounterScope::pool))
        if (std::string_view(c.group) == "protect") {
            protect_header.push_back(upper(c.name));
            protect_row.push_back(std::string_view(c.name) == "rule_drops"  ? "7"
                                  : std::string_view(c.name) == "scans"     ? "120"
                                  : std::string_view(c.name) == "memo_hits" ? "880"
                                                                            : "0");
        }
    ASSERT_GT(protect_header.size(), 6u);  // rule_drops ... scans, memo_hits, scan_errors, rate_evictions
    const auto ls = lines(text);
    size_t at = 0;
    while (at < ls.size() && words(ls[at]) != protect_header) ++at;
    ASSERT_LT(at + 1, ls.size()) << text;
    EXPECT_EQ(words(ls[at + 1]), protect_row) << text;
    EXPECT_TRUE(at + 2 >= ls.size() || words(ls[at + 2]).empty() || words(ls[at + 2])[0] != "trunk") << text;
    while (at < ls.size() && words(ls[at]) != std::vector<std::string>{"POOL", "RULE", "ACTION", "HITS"}) ++at;
    ASSERT_LT(at + 2, ls.size()) << text;
    EXPECT_EQ(words(ls[at + 1]), (std::vector<std::string>{"lund", "scanner", "drop", "7"})) << text;
    EXPECT_EQ(words(ls[at + 2]), (std::vector<std::string>{"lund", "trunks", "route", "3"})) << text;
    EXPECT_EQ(text.find("protect."), std::string::npos) << text;  // not repeated as OTHER
}

TEST_F(ControlText, BackendsOfUdpPoolsKeepTheirColumns) {
    const json r = ask(CommandKind::backends, "lund");
    ASSERT_EQ(r["backends"].size(), 2u);
    for (const auto& b : r["backends"]) EXPECT_FALSE(b.contains(control::kConnectionCounterGroup)) << b.dump();
    const std::string text = render_result(CommandKind::backends, r);
    const auto ls = lines(text);
    ASSERT_EQ(ls.size(), 3u) << text;
    EXPECT_EQ(words(ls[0]), kBaseColumns) << text;
    EXPECT_EQ(row_of(text, "198.51.100.11:5060"),
              (std::vector<std::string>{"lund", "198.51.100.11:5060", "static", "1", "active", "50.0%", "0", "0", "0",
                                        "0", "up"}))
        << text;
}

TEST_F(ControlText, BackendsOfTcpPoolsShowEveryConnectionCounter) {
    count("198.51.100.21:5060", "opened", 7);
    count("198.51.100.21:5060", "closed", 4);
    count("198.51.100.21:5060", "active", 3);
    auto want = [](const json& b, const std::string& name) -> uint64_t {
        if (b["address"] != "198.51.100.21:5060") return 0;  // not counted by the workers yet
        return name == "opened" ? 7 : name == "closed" ? 4 : name == "active" ? 3 : 0;
    };
    const json r = ask(CommandKind::backends, "trunk");
    ASSERT_EQ(r["backends"].size(), 2u);
    // Every connection counter of the schema, for every backend.
    const auto names = connection_counters();
    ASSERT_GE(names.size(), 5u);
    for (const auto& b : r["backends"]) {
        const json& conns = b[std::string(control::kConnectionCounterGroup)];
        ASSERT_EQ(conns.size(), names.size()) << b.dump();
        for (const auto& n : names) EXPECT_EQ(conns.value(n, json()), want(b, n)) << n << " " << b.dump();
    }
    // Text: a TCP_<NAME> column per counter, in the schema's order, before HEALTH.
    const std::string text = render_result(CommandKind::backends, r);
    const auto ls = lines(text);
    ASSERT_EQ(ls.size(), 3u) << text;
    std::vector<std::string> header(kBaseColumns.begin(), kBaseColumns.end() - 1);
    for (const auto& n : names) header.push_back("TCP_" + upper(n));
    header.push_back("HEALTH");
    EXPECT_EQ(words(ls[0]), header) << text;
    for (const auto& b : r["backends"]) {
        const auto row = row_of(text, b["address"]);
        ASSERT_EQ(row.size(), header.size()) << text;
        for (size_t i = 0; i < names.size(); ++i)
            EXPECT_EQ(row[kBaseColumns.size() - 1 + i], std::to_string(want(b, names[i]))) << names[i] << "\n" << text;
        EXPECT_EQ(row.back(), "up") << text;
    }
    EXPECT_NE(ls[0].find("TCP_OPENED"), std::string::npos) << text;
    EXPECT_NE(ls[0].find("TCP_ACTIVE"), std::string::npos) << text;
}

TEST_F(ControlText, BackendsOfAllPoolsMarkUdpPoolsWithoutConnections) {
    count("198.51.100.22:5060", "active", 2);
    const json r = ask(CommandKind::backends);
    ASSERT_EQ(r["backends"].size(), 4u);
    const std::string text = render_result(CommandKind::backends, r);
    const size_t columns = kBaseColumns.size() + connection_counters().size();
    EXPECT_EQ(words(lines(text).at(0)).size(), columns) << text;
    const auto udp = row_of(text, "198.51.100.11:5060");
    ASSERT_EQ(udp.size(), columns) << text;
    for (size_t i = kBaseColumns.size() - 1; i + 1 < columns; ++i) EXPECT_EQ(udp[i], "-") << i << "\n" << text;
    const auto tcp = row_of(text, "198.51.100.22:5060");
    ASSERT_EQ(tcp.size(), columns) << text;
    EXPECT_EQ(tcp[columns - 2], "2") << text;  // TCP_ACTIVE, the schema's last connection counter
}

TEST_F(ControlText, QueryOfACallIdIsOneLine) {
    const json r = ask(CommandKind::lookup, "lund", "a84b4c76e66710@pbx");
    ASSERT_TRUE(r["backend"].is_string()) << r.dump();
    EXPECT_EQ(render_result(CommandKind::lookup, r),
              "a84b4c76e66710@pbx\t" + r["backend"].get<std::string>() + "\t-\ttable\n");
    // A Call-ID in a TCP pool is still a Call-ID.
    const json t = ask(CommandKind::lookup, "trunk", "a84b4c76e66710@pbx");
    EXPECT_EQ(render_result(CommandKind::lookup, t),
              "a84b4c76e66710@pbx\t" + t["backend"].get<std::string>() + "\t-\ttable\n");
}

TEST_F(ControlText, QueryOfAClientShowsEachTransportsConnection) {
    const Endpoint client = *Endpoint::parse("192.0.2.13:53005");
    const json before = ask(CommandKind::lookup, "trunk", client.to_string());
    ASSERT_EQ(before["connections"].size(), 2u) << before.dump();
    const std::string tcp_pick = before["connections"][0]["backend"];
    const std::string tls_pick = before["connections"][1]["backend"];
    // No entry: the table's pick, no VIP recorded, no connection state.
    EXPECT_EQ(render_result(CommandKind::lookup, before), "tcp://192.0.2.13:53005\t" + tcp_pick +
                                                              "\t-\ttable\t-\t-\n"
                                                              "tls://192.0.2.13:53005\t" +
                                                              tls_pick + "\t-\ttable\t-\t-\n");
    // An established TLS connection on the other backend than the table's
    // pick (the backend it had before a weight change, say): the entry wins.
    const std::string other = tls_pick == "198.51.100.21:5061" ? "198.51.100.22:5060" : "198.51.100.21:5060";
    const std::string other_tls = other == "198.51.100.21:5060" ? "198.51.100.21:5061" : "198.51.100.22:5071";
    open_tls(client, other, 240);
    if (HasFatalFailure()) return;
    const json after = ask(CommandKind::lookup, "trunk", client.to_string());
    ASSERT_EQ(after["connections"].size(), 2u) << after.dump();
    ASSERT_EQ(after["connections"][1]["reason"], "connection") << after.dump();
    EXPECT_EQ(render_result(CommandKind::lookup, after), "tcp://192.0.2.13:53005\t" + tcp_pick +
                                                             "\t-\ttable\t-\t-\n"
                                                             "tls://192.0.2.13:53005\t" +
                                                             other_tls +
                                                             "\t203.0.113.20:5061\tconnection\testablished\t240s\n");
}

TEST_F(ControlText, QueryTextSurvivesMissingFields) {
    // A pool without a usable backend answers no_backend and a null backend.
    const json r = {{"pool", "trunk"},
                    {"call_id", "[2001:db8::7]:5070"},
                    {"client", "[2001:db8::7]:5070"},
                    {"connections",
                     json::array(
                         {{{"transport", "tcp"}, {"backend", nullptr}, {"reason", "no_backend"}, {"vip", nullptr}}})}};
    EXPECT_EQ(render_result(CommandKind::lookup, r), "tcp://[2001:db8::7]:5070\t-\t-\tno_backend\t-\t-\n");
}

}  // namespace
}  // namespace siplb::cli
