#include <gtest/gtest.h>

#include "siplb/protect/rules.h"
#include "test_util.h"

namespace siplb::protect {
namespace {

using protect::RuleAction;
using test::request;
using test::rule;

// What a run of verdicts adds up to: wins per rule, scans, memo answers
// and refused scans (what the dataplane counts from each verdict).
struct Tally {
    std::vector<uint64_t> hits;
    uint64_t scans = 0, memo_hits = 0, scan_errors = 0;
    void add(const RuleVerdict& v) {
        if (v.rule != kNoRule) {
            if (hits.size() <= v.rule) hits.resize(v.rule + 1);
            ++hits[v.rule];
        }
        scans += v.scans;
        memo_hits += v.memo_hits;
        scan_errors += v.scan_errors;
    }
    uint64_t hit(size_t rule) const { return rule < hits.size() ? hits[rule] : 0; }
};

// Every evaluation runs twice: without a memo (tallied in `plain`) and with
// one (`memoized`); both must give the same verdict, and the memo must
// answer or scan exactly the fields the plain run scanned, so every test
// here also checks that the memo changes nothing.
struct Harness {
    std::shared_ptr<const CompiledRules> rules;
    RuleScratch scratch;
    Tally plain, memoized;
    RuleCache memo;

    explicit Harness(std::vector<protect::RuleSpec> cfg, std::vector<std::string> pools = {}) {
        auto r = CompiledRules::build(cfg, pools);
        if (!r) ADD_FAILURE() << r.message();
        rules = r.value();
        EXPECT_TRUE(scratch.reserve(*rules).ok());
        memo = RuleCache::create(*rules).value();
    }
    RuleVerdict eval(const std::string& datagram) {
        sip::SipMessage m = sip::SipParser::parse(datagram);
        EXPECT_TRUE(m.ok() || m.verdict == sip::Verdict::keepalive) << sip::to_string(m.reason);
        const auto* bytes = reinterpret_cast<const uint8_t*>(datagram.data());
        RuleVerdict with_memo = evaluate(*rules, bytes, datagram.size(), m, scratch, &memo);
        RuleVerdict v = evaluate(*rules, bytes, datagram.size(), m, scratch);
        EXPECT_EQ(with_memo.rule, v.rule) << datagram;
        EXPECT_EQ(with_memo.action, v.action) << datagram;
        EXPECT_EQ(v.memo_hits, 0u);
        EXPECT_EQ(with_memo.scans + with_memo.memo_hits, v.scans) << datagram;
        EXPECT_EQ(v.scan_errors + with_memo.scan_errors, 0u);
        memoized.add(with_memo);
        plain.add(v);
        return v;
    }
};

TEST(Rules, DropsScannerByUserAgentCaseless) {
    Harness h({rule("scanner", "user_agent", "friendly-scanner|sipvicious|sipcli")});
    auto v = h.eval(request("REGISTER", "sip:example.net", "Friendly-Scanner"));
    EXPECT_EQ(v.action, RuleVerdict::Action::drop);
    EXPECT_EQ(v.rule, 0u);
    EXPECT_EQ(h.eval(request("REGISTER", "sip:example.net", "Yealink SIP-T46S")).action, RuleVerdict::Action::none);
    EXPECT_EQ(h.eval(request("REGISTER", "sip:example.net", "")).action, RuleVerdict::Action::none);
    EXPECT_EQ(h.plain.hit(0), 1u);
}

TEST(Rules, CaseSensitiveWhenAsked) {
    Harness h({rule("exact", "user_agent", "^BadUA$", RuleAction::drop, {}, false)});
    EXPECT_EQ(h.eval(request("OPTIONS", "sip:x@example.net", "BadUA")).action, RuleVerdict::Action::drop);
    EXPECT_EQ(h.eval(request("OPTIONS", "sip:x@example.net", "badua")).action, RuleVerdict::Action::none);
}

TEST(Rules, AnchorsApplyToTheFieldNotTheDatagram) {
    Harness h({rule("uri", "request_uri", "^sip:\\+?46"), rule("m", "method", "^INVITE$")});
    // "^INVITE$" must match the method token only, not "INVITE" in CSeq.
    auto v = h.eval(request("OPTIONS", "sip:1000@example.net", "x"));
    EXPECT_EQ(v.action, RuleVerdict::Action::none);
    EXPECT_EQ(h.eval(request("INVITE", "sip:1000@example.net", "x")).rule, 1u);
    EXPECT_EQ(h.eval(request("INVITE", "sip:+46701234@example.net", "x")).rule, 0u);
}

TEST(Rules, FirstRuleInConfigOrderWins) {
    Harness h({rule("allow-trunk", "from", "@trunk\\.example", RuleAction::allow),
               rule("drop-ua", "user_agent", "scanner"), rule("drop-all-invites", "method", "INVITE")});
    auto trunk = request("INVITE", "sip:1@x", "scanner", "");
    // From is alice@example.net: rule 0 does not match, rule 1 (UA) wins over rule 2.
    EXPECT_EQ(h.eval(trunk).rule, 1u);
    std::string from_trunk = trunk;
    from_trunk.replace(from_trunk.find("alice@example.net"), 17, "pbx@trunk.example");
    auto v = h.eval(from_trunk);
    EXPECT_EQ(v.action, RuleVerdict::Action::allow);
    EXPECT_EQ(v.rule, 0u);
    EXPECT_EQ(h.eval(request("INVITE", "sip:1@x", "phone")).rule, 2u);
    EXPECT_EQ(h.plain.hit(0), 1u);
    EXPECT_EQ(h.plain.hit(1), 1u);
    EXPECT_EQ(h.plain.hit(2), 1u);
}

TEST(Rules, NamedHeadersAndCompactForms) {
    Harness h({rule("x-scan", "header:X-Scanner", "yes"), rule("to-test", "header:t", "test@"),
               rule("contact", "header:Contact", "evil\\.example")});
    EXPECT_EQ(h.eval(request("OPTIONS", "sip:a@x", "ua", "X-Scanner: YES\r\n")).rule, 0u);
    std::string m = request("OPTIONS", "sip:a@x", "ua", "m: <sip:bob@evil.example>\r\n");
    EXPECT_EQ(h.eval(m).rule, 2u);
    EXPECT_EQ(h.eval(request("OPTIONS", "sip:a@x", "ua")).action, RuleVerdict::Action::none);
    // header:t shares the parser's To span, header:X-Scanner and header:Contact get their own database.
    EXPECT_EQ(h.rules->databases(), 3u);
}

TEST(Rules, RouteResolvesPoolIndex) {
    Harness h({rule("trunks", "request_uri", "@siptrunk\\.", RuleAction::route, "trunk")}, {"accounts", "trunk"});
    auto v = h.eval(request("INVITE", "sip:4670@siptrunk.example.net", "pbx"));
    EXPECT_EQ(v.action, RuleVerdict::Action::route);
    EXPECT_EQ(v.route_pool, 1u);
    EXPECT_EQ(v.route_pool_name, "trunk");
}

TEST(Rules, ResponsesHaveNoMethodOrUri) {
    Harness h({rule("m", "method", "."), rule("ua", "user_agent", "bad")});
    std::string resp =
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nFrom: <sip:a@x>;tag=1\r\n"
        "To: <sip:b@x>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nUser-Agent: bad\r\nContent-Length: 0\r\n\r\n";
    EXPECT_EQ(h.eval(resp).rule, 1u);
    EXPECT_EQ(h.eval("\r\n\r\n").action, RuleVerdict::Action::none);  // keepalive: never matched
}

TEST(Rules, BadPatternNamesTheRule) {
    std::vector<protect::RuleSpec> cfg = {rule("ok", "user_agent", "fine"), rule("broken", "user_agent", "abc(")};
    auto r = CompiledRules::build(cfg);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("rule 'broken' (rules[1])"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("abc("), std::string::npos) << r.message();

    std::vector<protect::RuleSpec> empty_match = {rule("any", "method", ".*")};
    auto e = CompiledRules::build(empty_match);
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.message().find("rule 'any'"), std::string::npos) << e.message();

    std::vector<protect::RuleSpec> field = {rule("f", "body", "x")};
    EXPECT_FALSE(CompiledRules::build(field).ok());

    std::vector<protect::RuleSpec> route = {rule("r", "method", "INVITE", RuleAction::route, "nowhere")};
    std::vector<std::string> pools = {"lund"};
    auto rr = CompiledRules::build(route, pools);
    ASSERT_FALSE(rr.ok());
    EXPECT_NE(rr.message().find("'nowhere'"), std::string::npos);
}

TEST(Rules, ScratchCloneServesTheSameRules) {
    Harness h({rule("ua", "user_agent", "sipcli")});
    auto clone = h.scratch.clone();
    ASSERT_TRUE(clone.ok());
    std::string m = request("REGISTER", "sip:x", "sipcli/v1.8");
    sip::SipMessage msg = sip::SipParser::parse(m);
    auto v = evaluate(*h.rules, reinterpret_cast<const uint8_t*>(m.data()), m.size(), msg, clone.value());
    EXPECT_EQ(v.rule, 0u);
    EXPECT_EQ(v.scans, 1u);
    EXPECT_EQ(v.scan_errors, 0u);
}

TEST(Rules, UnreservedScratchIsCountedNotCrashed) {
    Harness h({rule("ua", "user_agent", "sipcli")});
    RuleScratch empty;
    std::string m = request("REGISTER", "sip:x", "sipcli");
    sip::SipMessage msg = sip::SipParser::parse(m);
    auto v = evaluate(*h.rules, reinterpret_cast<const uint8_t*>(m.data()), m.size(), msg, empty);
    EXPECT_EQ(v.action, RuleVerdict::Action::none);
    EXPECT_EQ(v.scans, 1u);
    EXPECT_EQ(v.scan_errors, 1u);
    // A refused scan is not remembered: the next one, with a good scratch, matches.
    v = evaluate(*h.rules, reinterpret_cast<const uint8_t*>(m.data()), m.size(), msg, empty, &h.memo);
    EXPECT_EQ(v.scan_errors, 1u);
    v = evaluate(*h.rules, reinterpret_cast<const uint8_t*>(m.data()), m.size(), msg, h.scratch, &h.memo);
    EXPECT_EQ(v.rule, 0u);
    EXPECT_EQ(v.memo_hits, 0u);
}

TEST(Rules, ThousandRulesCompileIntoFewDatabases) {
    std::vector<protect::RuleSpec> cfg;
    for (int i = 0; i < 1000; ++i) {
        std::string n = std::to_string(i);  // (GCC 12 -Wrestrict false positive on "lit" + string)
        cfg.push_back(rule(std::string("r").append(n), i % 2 ? "user_agent" : "request_uri",
                           std::string("blocked").append(n).append("\\b")));
    }
    Harness h(cfg);
    EXPECT_EQ(h.rules->databases(), 2u);
    EXPECT_EQ(h.eval(request("INVITE", "sip:1@x", "blocked999")).rule, 999u);
    EXPECT_EQ(h.eval(request("INVITE", "sip:blocked4@x", "blocked999")).rule, 4u);
    EXPECT_EQ(h.eval(request("INVITE", "sip:1@x", "blocked9999")).action, RuleVerdict::Action::none);
}

// The From value of test::request(), verbatim.
constexpr const char* kFromValue = "\"Alice\" <sip:alice@example.net>;tag=1928301774";

TEST(Rules, PatternForOneFieldNeverMatchesAnother) {
    // Rule 0 matches this exact User-Agent; the From carries the same bytes.
    Harness h({rule("ua-exact", "user_agent", "^\"Alice\" <sip:alice@example\\.net>;tag=1928301774$"),
               rule("from-other", "from", "^nobody$"), rule("ua-alice", "user_agent", "alice@")});
    EXPECT_EQ(h.eval(request("INVITE", "sip:1@x", kFromValue)).rule, 0u);
    // Same From value, and the UA matches nothing: the From must not be
    // answered with the UA's result, from the memo or otherwise.
    EXPECT_EQ(h.eval(request("INVITE", "sip:1@x", "phone")).action, RuleVerdict::Action::none);
    EXPECT_EQ(h.eval(request("INVITE", "sip:1@x", "phone")).action, RuleVerdict::Action::none);
    EXPECT_EQ(h.memoized.hit(0), 1u);
}

TEST(Rules, RuleOrderHoldsAcrossFieldsAndMemo) {
    // From rules are rules 0 and 2, the UA rule is rule 1: one database
    // holds 0 and 2, another holds 1.
    Harness h({rule("from-bob", "from", "bob@"), rule("ua-scanner", "user_agent", "scanner"),
               rule("from-alice", "from", "alice@")});
    ASSERT_EQ(h.rules->databases(), 2u);
    for (int pass = 0; pass < 2; ++pass) {  // the second pass answers from the memo
        EXPECT_EQ(h.eval(request("INVITE", "sip:1@x", "scanner")).rule, 1u) << pass;
        EXPECT_EQ(h.eval(request("INVITE", "sip:1@x", "phone")).rule, 2u) << pass;
        std::string bob = request("INVITE", "sip:1@x", "scanner");
        bob.replace(bob.find("alice@"), 6, "bob@xy");
        EXPECT_EQ(h.eval(bob).rule, 0u) << pass;
    }
    EXPECT_GT(h.memoized.memo_hits, 0u);
    // Reversed order: the UA rule comes first and wins over From.
    Harness r({rule("ua-scanner", "user_agent", "scanner"), rule("from-alice", "from", "alice@")});
    EXPECT_EQ(r.eval(request("INVITE", "sip:1@x", "scanner")).rule, 0u);
    EXPECT_EQ(r.eval(request("INVITE", "sip:1@x", "scanner")).rule, 0u);
}

TEST(Rules, MemoAnswersRepeatedValuesAndScansNewOnes) {
    Harness h({rule("ua", "user_agent", "scanner"), rule("from", "from", "mallory@")});
    const std::string m = request("REGISTER", "sip:x", "Yealink SIP-T46S");
    h.eval(m);
    EXPECT_EQ(h.memoized.scans, 2u);  // User-Agent and From
    EXPECT_EQ(h.memoized.memo_hits, 0u);
    h.eval(m);
    EXPECT_EQ(h.memoized.scans, 2u);
    EXPECT_EQ(h.memoized.memo_hits, 2u);
    h.eval(request("REGISTER", "sip:x", "Yealink SIP-T46S 2"));  // new UA, known From
    EXPECT_EQ(h.memoized.scans, 3u);
    EXPECT_EQ(h.memoized.memo_hits, 3u);
    // A new call: known User-Agent, From with a new tag. Only the From is
    // scanned (a memo of whole tuples would rescan the User-Agent too).
    std::string next_call = m;
    next_call.replace(next_call.find("tag=1928301774"), 14, "tag=5550001111");
    h.eval(next_call);
    EXPECT_EQ(h.memoized.scans, 4u);
    EXPECT_EQ(h.memoized.memo_hits, 4u);
    // Without a memo every field is scanned every time.
    EXPECT_EQ(h.plain.scans, 8u);
    // Values longer than the memo keeps are scanned every time.
    const std::string long_ua = request("REGISTER", "sip:x", std::string(RuleCache::kMaxValue + 1, 'a'));
    h.eval(long_ua);
    h.eval(long_ua);
    EXPECT_EQ(h.memoized.scans, 6u);
}

// A set holds kWays values: in a memo of two sets, any kWays values that
// come back in turn are each scanned once, however they hash. (With two-way
// sets, three values drawing the same set would evict each other forever.)
TEST(Rules, MemoKeepsAWholeSetOfValuesThatAlternate) {
    Harness h({rule("ua", "user_agent", "scanner")});
    h.memo = RuleCache::create(*h.rules, 2 * RuleCache::kWays).value();
    for (int pass = 0; pass < 4; ++pass)
        for (uint32_t i = 0; i < RuleCache::kWays; ++i)
            h.eval(request("OPTIONS", "sip:x", "Phone model " + std::to_string(i)));
    EXPECT_EQ(h.memoized.scans, RuleCache::kWays);
    EXPECT_EQ(h.memoized.memo_hits, 3 * RuleCache::kWays);
    // One value more than a set holds: still exact, scanned when evicted.
    for (int pass = 0; pass < 3; ++pass)
        for (uint32_t i = 0; i <= 2 * RuleCache::kWays; ++i)
            EXPECT_EQ(h.eval(request("OPTIONS", "sip:x", i == 5 ? "scanner" : "Phone " + std::to_string(i))).rule,
                      i == 5 ? 0u : kNoRule);
}

TEST(Rules, NoScanWhenTheMessageHasNoneOfTheFields) {
    Harness h({rule("ua", "user_agent", "scanner"), rule("x", "header:X-Scan", "yes")});
    h.eval(request("OPTIONS", "sip:x", ""));  // neither User-Agent nor X-Scan
    EXPECT_EQ(h.plain.scans, 0u);
    EXPECT_EQ(h.memoized.scans, 0u);
    EXPECT_EQ(h.memoized.memo_hits, 0u);
    EXPECT_EQ(h.eval(request("OPTIONS", "sip:x", "", "X-Scan: yes\r\n")).rule, 1u);
    EXPECT_EQ(h.plain.scans, 1u);
}

TEST(Rules, MemoSizeIsChecked) {
    Harness h({rule("ua", "user_agent", "scanner")});
    EXPECT_FALSE(RuleCache::create(*h.rules, 100).ok());
    EXPECT_FALSE(RuleCache::create(*h.rules, 8).ok());
    EXPECT_TRUE(RuleCache::create(*h.rules, 16).ok());
    EXPECT_FALSE(RuleCache().enabled());
}

}  // namespace
}  // namespace siplb::protect
