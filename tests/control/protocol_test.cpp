#include "siplb/control/protocol.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "siplb/control/commands.h"
#include "siplb/control/log.h"

using namespace siplb;
using namespace siplb::control;

namespace {

TEST(Protocol, ParsesEveryCommand) {
    auto r = parse_request(R"({"cmd":"status"})");
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->cmd, CommandKind::status);
    r = parse_request(R"({"cmd":"backends"})");
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->pool.empty());
    r = parse_request(R"({"cmd":"drain","pool":"lund","backend":"192.0.2.1:5070"})");
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->backend->to_string(), "192.0.2.1:5070");
    r = parse_request(R"({"cmd":"add","pool":"lund","backend":"2001:db8::1"})");
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->backend->to_string(), "[2001:db8::1]:5060");
    EXPECT_EQ(r->weight, 1u);
    r = parse_request(R"({"cmd":"weight","pool":"lund","backend":"192.0.2.1:5060","weight":7})");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->weight, 7u);
    r = parse_request(R"({"cmd":"lookup","pool":"lund","call_id":"abc@host"})");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->call_id, "abc@host");
    for (const char* c : {"pools", "stats", "reload", "metrics"}) {
        auto x = parse_request(std::string(R"({"cmd":")") + c + "\"}");
        ASSERT_TRUE(x.ok()) << c;
        EXPECT_EQ(to_string(x->cmd), c);
    }
}

TEST(Protocol, RoundTripsEncode) {
    Request r;
    r.cmd = CommandKind::weight;
    r.pool = "lund";
    r.backend = Endpoint::parse("[2001:db8::5]:5080");
    r.weight = 9;
    const std::string line = encode_request(r);
    ASSERT_EQ(line.back(), '\n');
    auto back = parse_request(std::string_view(line).substr(0, line.size() - 1));
    ASSERT_TRUE(back.ok()) << back.message();
    EXPECT_EQ(back->cmd, CommandKind::weight);
    EXPECT_EQ(back->backend, r.backend);
    EXPECT_EQ(back->weight, 9u);
}

struct BadCase {
    const char* line;
    const char* error_part;
};

TEST(Protocol, RejectsBadInputWithClearErrors) {
    const BadCase cases[] = {
        {"garbage", "not valid JSON"},
        {"{\"cmd\":", "not valid JSON"},
        {"[1,2]", "JSON object"},
        {"{}", "missing field 'cmd'"},
        {R"({"cmd":7})", "must be a string"},
        {R"({"cmd":"explode"})", "unknown command 'explode'"},
        {R"({"cmd":"drain","pool":"lund"})", "drain: missing field 'backend'"},
        {R"({"cmd":"drain","backend":"192.0.2.1:5060"})", "drain: missing field 'pool'"},
        {R"({"cmd":"drain","pool":"lund","backend":"not-an-ip"})", "is not an address"},
        {R"({"cmd":"weight","pool":"lund","backend":"192.0.2.1:5060"})", "missing field 'weight'"},
        {R"({"cmd":"weight","pool":"lund","backend":"192.0.2.1:5060","weight":-1})", "out of range"},
        {R"({"cmd":"weight","pool":"lund","backend":"192.0.2.1:5060","weight":"x"})", "must be an integer"},
        {R"({"cmd":"lookup","pool":"lund"})", "missing field 'call_id'"},
        {"\xff\xfe\x00", "not valid JSON"},
    };
    for (const auto& c : cases) {
        auto r = parse_request(c.line);
        ASSERT_FALSE(r.ok()) << c.line;
        EXPECT_NE(r.message().find(c.error_part), std::string::npos) << c.line << " -> " << r.message();
    }
    std::string huge = R"({"cmd":"status","pad":")" + std::string(kMaxRequestLine, 'x') + "\"}";
    auto r = parse_request(huge);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("exceeds"), std::string::npos);
}

TEST(Protocol, ErrorResponseIsOneJsonLine) {
    const std::string e = error_response("bad \"x\"\n\xff");
    ASSERT_EQ(e.back(), '\n');
    EXPECT_EQ(e.find('\n'), e.size() - 1);
    auto j = nlohmann::json::parse(e);
    EXPECT_EQ(j["ok"], false);
}

config::Config one_pool() {
    config::Config c;
    config::PoolConfig p;
    p.name = "lund";
    p.backends.push_back({*Endpoint::parse("192.0.2.1:5060"), 1, true});
    p.backends.push_back({*Endpoint::parse("192.0.2.2:5060"), 1, true});
    c.pools.push_back(p);
    return c;
}

TEST(CommandHandler, ExecutesChangesAndReportsErrors) {
    set_log_level(LogLevel::error);
    config::Config cfg = one_pool();
    PoolManager pm(cfg);
    CommandHandler h(pm, ControlHooks{});
    PeerCred peer{42, 1000, 1000};
    auto j = nlohmann::json::parse(h.handle(R"({"cmd":"drain","pool":"lund","backend":"192.0.2.2:5060"})", peer));
    ASSERT_EQ(j["ok"], true) << j.dump();
    EXPECT_EQ(j["result"]["state"], "draining");
    EXPECT_EQ(pm.find_pool("lund")->find(*Endpoint::parse("192.0.2.2:5060"))->admin_by, "uid=1000 pid=42");

    j = nlohmann::json::parse(h.handle(R"({"cmd":"backends","pool":"lund"})", peer));
    ASSERT_EQ(j["ok"], true);
    ASSERT_EQ(j["result"]["backends"].size(), 2u);
    EXPECT_EQ(j["result"]["backends"][1]["state"], "draining");
    EXPECT_EQ(j["result"]["backends"][1]["source"], "static");

    j = nlohmann::json::parse(h.handle(R"({"cmd":"backends","pool":"nope"})", peer));
    EXPECT_EQ(j["ok"], false);
    EXPECT_EQ(j["error"], "unknown pool 'nope'");
    j = nlohmann::json::parse(h.handle(R"({"cmd":"resolve","pool":"lund"})", peer));
    EXPECT_EQ(j["ok"], false);
    EXPECT_NE(j["error"].get<std::string>().find("DNS discovery"), std::string::npos);
    j = nlohmann::json::parse(h.handle(R"({"cmd":"remove","pool":"lund","backend":"192.0.2.9:5060"})", peer));
    EXPECT_EQ(j["ok"], false);
    j = nlohmann::json::parse(h.handle(R"({"cmd":"pools"})", peer));
    EXPECT_EQ(j["result"]["pools"][0]["draining"], 1);
    j = nlohmann::json::parse(h.handle(R"({"cmd":"metrics"})", peer));
    EXPECT_NE(j["result"]["text"].get<std::string>().find(
                  "siplb_backend_up{pool=\"lund\",backend=\"192.0.2.1:5060\"} 1"),
              std::string::npos);
}

}  // namespace

TEST(Protocol, CaptureRequestsRoundTripAndReject) {
    Request r;
    r.cmd = CommandKind::capture_start;
    r.pool = "lund";
    r.backend = Endpoint::parse("192.0.2.10:5060");
    r.call_id = "a84b@pbx";
    r.client = IpAddress::parse("2001:db8::5");
    const std::string line = encode_request(r);
    auto back = parse_request(std::string_view(line).substr(0, line.size() - 1));
    ASSERT_TRUE(back.ok()) << back.message();
    EXPECT_EQ(back->cmd, CommandKind::capture_start);
    EXPECT_EQ(back->pool, "lund");
    EXPECT_EQ(back->backend, r.backend);
    EXPECT_EQ(back->call_id, "a84b@pbx");
    EXPECT_EQ(back->client, r.client);
    auto bare = parse_request(R"({"cmd":"capture_start"})");
    ASSERT_TRUE(bare.ok()) << "every filter is optional";
    EXPECT_FALSE(bare->backend);
    EXPECT_FALSE(bare->client);
    auto rd = parse_request(R"({"cmd":"capture_read","id":7})");
    ASSERT_TRUE(rd.ok());
    EXPECT_EQ(rd->capture_id, 7u);
    for (const char* bad :
         {R"({"cmd":"capture_read"})", R"({"cmd":"capture_stop","id":"7"})",
          R"({"cmd":"capture_start","client":"pbx.example"})", R"({"cmd":"capture_start","backend":"nope"})"})
        EXPECT_FALSE(parse_request(bad).ok()) << bad;
}

TEST(Protocol, Base64) {
    const std::string all = [] {
        std::string s;
        for (int i = 0; i < 256; ++i) s += static_cast<char>(i);
        return s;
    }();
    for (size_t n : {0, 1, 2, 3, 4, 5, 256}) {
        const std::string in = all.substr(0, n);
        const std::string enc = base64_encode(reinterpret_cast<const uint8_t*>(in.data()), in.size());
        EXPECT_EQ(enc.size(), (n + 2) / 3 * 4);
        EXPECT_EQ(base64_decode(enc), in) << n;
    }
    EXPECT_EQ(base64_encode(reinterpret_cast<const uint8_t*>("foobar"), 6), "Zm9vYmFy");
    EXPECT_EQ(base64_encode(reinterpret_cast<const uint8_t*>("fo"), 2), "Zm8=");
    EXPECT_FALSE(base64_decode("Zm9"));
    EXPECT_FALSE(base64_decode("Zm!v"));
    EXPECT_FALSE(base64_decode("Z=8="));
}
