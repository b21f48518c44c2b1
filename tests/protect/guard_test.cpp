#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "siplb/protect/guard.h"
#include "test_util.h"

namespace siplb::protect {
namespace {

using protect::RuleAction;
using test::request;
using test::rule;

constexpr uint64_t kMs = 1'000'000ull;

std::vector<protect::PoolProtectionSpec> pools() {
    protect::PoolProtectionSpec acc;
    acc.name = "accounts";
    acc.rules = {rule("scanners", "user_agent", "friendly-scanner|sipvicious"),
                 rule("trunk", "request_uri", "@siptrunk\\.example\\.net", RuleAction::route, "trunk")};
    acc.rate_limit.enabled = true;
    acc.rate_limit.requests_per_s = 10;
    acc.rate_limit.burst = 20;
    acc.rate_limit.prefix_requests_per_s = 1000;
    acc.rate_limit.prefix_burst = 1000;
    acc.rate_limit.table_size = 1024;
    protect::PoolProtectionSpec trunk;
    trunk.name = "trunk";
    return {acc, trunk};
}

struct Msg {
    std::string text;
    sip::SipMessage m;
    explicit Msg(std::string t) : text(std::move(t)), m(sip::SipParser::parse(text)) {}
    const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(text.data()); }
};

TEST(Guard, RulesThenRateLimit) {
    auto snap = ProtectSnapshot::build(pools());
    ASSERT_TRUE(snap.ok()) << snap.message();
    auto g = WorkerGuard::create(snap.value()).value();
    IpAddress src = *IpAddress::parse("203.0.113.9");
    Msg scan(request("REGISTER", "sip:example.net", "friendly-scanner"));
    auto d = g->check(0, scan.data(), scan.text.size(), scan.m, src, kMs);
    EXPECT_EQ(d.action, GuardDecision::Action::drop_rule);
    EXPECT_TRUE(d.dropped());
    EXPECT_EQ(d.rule, 0u);
    // The User-Agent database decided it; the Request-URI one (rule 1 and
    // later) cannot beat rule 0 and is not scanned.
    EXPECT_EQ(d.scans, 1u);
    EXPECT_EQ(d.memo_hits, 0u);
    d = g->check(0, scan.data(), scan.text.size(), scan.m, src, kMs);
    EXPECT_EQ(d.rule, 0u);
    EXPECT_EQ(d.scans, 0u);  // this worker's memo knows the value now
    EXPECT_EQ(d.memo_hits, 1u);
    EXPECT_EQ(d.scan_errors, 0u);
    EXPECT_EQ(d.rate_evictions, 0u);  // rule drops never reach the rate tables

    Msg trunk(request("INVITE", "sip:4640@siptrunk.example.net", "pbx"));
    d = g->check(0, trunk.data(), trunk.text.size(), trunk.m, src, kMs);
    EXPECT_EQ(d.action, GuardDecision::Action::route);
    EXPECT_EQ(d.route_pool, 1u);
    // Rule drops were not charged to the source's bucket: 19 more fit the burst of 20.
    Msg reg(request("REGISTER", "sip:example.net", "Yealink"));
    int passed = 0;
    for (int i = 0; i < 100; ++i) passed += !g->check(0, reg.data(), reg.text.size(), reg.m, src, kMs).dropped();
    EXPECT_EQ(passed, 19);
    EXPECT_EQ(g->pool(0)->limiter->source_limited(), 81u);
    // Another source is unaffected.
    EXPECT_FALSE(g->check(0, reg.data(), reg.text.size(), reg.m, *IpAddress::parse("192.0.2.1"), kMs).dropped());
}

TEST(Guard, ResponsesAndKeepalivesAreNotLimited) {
    auto g = WorkerGuard::create(ProtectSnapshot::build(pools()).value()).value();
    IpAddress src = *IpAddress::parse("203.0.113.9");
    Msg resp(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nFrom: <sip:a@x>;tag=1\r\n"
        "To: <sip:b@x>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
    Msg ka("\r\n\r\n");
    for (int i = 0; i < 1000; ++i) {
        EXPECT_FALSE(g->check(0, resp.data(), resp.text.size(), resp.m, src, kMs).dropped());
        EXPECT_FALSE(g->check(0, ka.data(), ka.text.size(), ka.m, src, kMs).dropped());
    }
}

TEST(Guard, InviteFloodDroppedWhileOthersCall) {
    auto g = WorkerGuard::create(ProtectSnapshot::build(pools()).value()).value();
    Msg inv(request("INVITE", "sip:1000@example.net", "Linphone"));
    IpAddress flood = *IpAddress::parse("198.51.100.66"), good = *IpAddress::parse("192.0.2.77");
    int flood_ok = 0, good_ok = 0;
    for (int ms = 0; ms < 5000; ++ms) {  // flood 1000/s, caller 5/s, limit 10/s burst 20
        uint64_t now = 1'000'000'000ull + ms * kMs;
        flood_ok += !g->check(0, inv.data(), inv.text.size(), inv.m, flood, now).dropped();
        if (ms % 200 == 0) good_ok += !g->check(0, inv.data(), inv.text.size(), inv.m, good, now).dropped();
    }
    EXPECT_EQ(good_ok, 25);
    EXPECT_LE(flood_ok, 20 + 50 + 1);
}

TEST(Guard, BadPatternFailsSnapshotWithPoolAndRule) {
    auto p = pools();
    p[1].rules = {rule("oops", "header:X-Foo", "[unterminated")};
    auto snap = ProtectSnapshot::build(p);
    ASSERT_FALSE(snap.ok());
    EXPECT_NE(snap.message().find("pool 'trunk': rule 'oops' (rules[0])"), std::string::npos) << snap.message();
}

// Each decision reports the live buckets its admission gave up, so the
// decisions of a run add up to the limiter's own count.
TEST(Guard, DecisionsReportRateTableEvictions) {
    auto spec = pools();
    spec[0].rate_limit.table_size = 16;
    auto g = WorkerGuard::create(ProtectSnapshot::build(spec).value()).value();
    Msg reg(request("REGISTER", "sip:example.net", "Yealink"));
    uint64_t reported = 0;
    for (uint32_t i = 0; i < 200; ++i) {
        const IpAddress src = IpAddress::from_v4_be(__builtin_bswap32(0xcb007100u + (i << 8) + i % 251));
        const GuardDecision d = g->check(0, reg.data(), reg.text.size(), reg.m, src, kMs);
        EXPECT_LE(d.rate_evictions, 2u);
        reported += d.rate_evictions;
    }
    EXPECT_GT(reported, 0u);
    EXPECT_EQ(reported, g->pool(0)->limiter->evictions());
    // Responses are never admitted, so they evict nothing.
    Msg ok(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nFrom: <sip:a@x>;tag=1\r\n"
        "To: <sip:b@x>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(g->check(0, ok.data(), ok.text.size(), ok.m, *IpAddress::parse("198.51.100.7"), kMs).rate_evictions, 0u);
}

TEST(Guard, UnknownPoolIndexForwards) {
    auto g = WorkerGuard::create(ProtectSnapshot::build(pools()).value()).value();
    Msg scan(request("REGISTER", "sip:example.net", "friendly-scanner"));
    EXPECT_EQ(g->check(7, scan.data(), scan.text.size(), scan.m, IpAddress{}, 0).action,
              GuardDecision::Action::forward);
}

TEST(Guard, PrefetchChangesNoVerdict) {
    auto snap = ProtectSnapshot::build(pools());
    ASSERT_TRUE(snap.ok()) << snap.message();
    auto a = WorkerGuard::create(snap.value(), 11).value();
    auto b = WorkerGuard::create(snap.value(), 11).value();
    // Phones and a scanner: memo hits, memo misses and a drop rule.
    Msg inv(request("INVITE", "sip:1000@example.net", "phone"));
    Msg other(request("INVITE", "sip:1000@example.net", "other phone"));
    Msg scan(request("REGISTER", "sip:example.net", "friendly-scanner"));
    const Msg* msgs[] = {&inv, &other, &inv, &scan};
    int dropped = 0, by_rule = 0;
    for (int i = 0; i < 200; ++i) {
        const IpAddress src = *IpAddress::parse("198.51.100." + std::to_string(i % 3));
        const uint64_t now = 1000 * kMs + static_cast<uint64_t>(i) * kMs;
        const Msg& m = *msgs[i % 4];
        const auto probe = a->probe(0, m.m, src);
        EXPECT_TRUE(probe.located);
        EXPECT_FALSE(a->probe(1, m.m, src).located);  // a pool without rate limits
        EXPECT_FALSE(a->probe(7, m.m, src).located);  // outside the snapshot
        auto da = a->check(0, m.data(), m.text.size(), m.m, src, &probe, now);
        auto db = b->check(0, m.data(), m.text.size(), m.m, src, now);
        ASSERT_EQ(da.action, db.action) << i;
        ASSERT_EQ(da.rule, db.rule) << i;
        ASSERT_EQ(da.scans, db.scans) << i;
        ASSERT_EQ(da.memo_hits, db.memo_hits) << i;
        dropped += da.dropped();
        by_rule += da.action == GuardDecision::Action::drop_rule;
    }
    EXPECT_GT(dropped, by_rule);  // the limits were reached: the comparison covered every verdict
    EXPECT_GT(by_rule, 0);
    EXPECT_EQ(a->pool(0)->limiter->passed(), b->pool(0)->limiter->passed());
    // A probe made without the rate tables' answer (a default one) still gets the source limited.
    auto c = WorkerGuard::create(snap.value(), 11).value();
    const WorkerGuard::Probe none;
    int limited = 0;
    for (int i = 0; i < 100; ++i)
        limited += c->check(0, inv.data(), inv.text.size(), inv.m, *IpAddress::parse("198.51.100.9"), &none, 1000 * kMs)
                       .dropped();
    EXPECT_GT(limited, 0);
}

// The tables' salt is secret and per process: a child started before the
// parent draws its salt gets another one (equal with odds 2^-64).
TEST(ProcessSalt, DiffersBetweenProcessesAndStaysWithinOne) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        const uint64_t s = process_salt();
        _exit(write(fds[1], &s, sizeof s) == sizeof s ? 0 : 1);
    }
    close(fds[1]);
    uint64_t theirs = 0;
    const ssize_t got = read(fds[0], &theirs, sizeof theirs);
    close(fds[0]);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_EQ(got, static_cast<ssize_t>(sizeof theirs));
    const uint64_t ours = process_salt();
    EXPECT_NE(ours, theirs);
    EXPECT_EQ(ours, process_salt());
}

}  // namespace
}  // namespace siplb::protect
