// Pure parts of health checking: hysteresis state machine, OPTIONS
// building, response parsing, passive evaluation.
#include <gtest/gtest.h>

#include "siplb/health/health.h"

using namespace siplb;
using namespace siplb::health;
using namespace std::chrono_literals;

namespace {
ProbeResult ok() { return {ProbeOutcome::ok, 200, std::nullopt, "200 OK"}; }
ProbeResult timeout() { return {ProbeOutcome::timeout, 0, std::nullopt, "timeout"}; }
ProbeResult unreachable() { return {ProbeOutcome::unreachable, 0, std::nullopt, "ICMP"}; }
ProbeResult busy(std::optional<uint32_t> ra = std::nullopt) { return {ProbeOutcome::overloaded, 503, ra, "503"}; }
const TimePoint t0{};
}  // namespace

TEST(Hysteresis, DownAfterNConsecutiveFailuresUpAfterM) {
    HealthState s({3, 2, true});
    EXPECT_EQ(s.verdict(), Verdict::up);
    EXPECT_FALSE(s.record(timeout(), t0));
    EXPECT_FALSE(s.record(unreachable(), t0));
    EXPECT_TRUE(s.record(timeout(), t0));
    EXPECT_EQ(s.verdict(), Verdict::down);
    EXPECT_FALSE(s.record(timeout(), t0));
    EXPECT_FALSE(s.record(ok(), t0));
    EXPECT_EQ(s.verdict(), Verdict::down);
    EXPECT_TRUE(s.record(ok(), t0));
    EXPECT_EQ(s.verdict(), Verdict::up);
}

TEST(Hysteresis, SuccessResetsFailureCount) {
    HealthState s({3, 2, true});
    s.record(timeout(), t0);
    s.record(timeout(), t0);
    s.record(ok(), t0);
    s.record(timeout(), t0);
    s.record(timeout(), t0);
    EXPECT_EQ(s.verdict(), Verdict::up);
    EXPECT_EQ(s.consecutive_failures(), 2u);
    // A failure between successes restarts the count towards up.
    HealthState d({1, 3, true});
    d.record(timeout(), t0);
    d.record(ok(), t0);
    d.record(ok(), t0);
    d.record(timeout(), t0);
    d.record(ok(), t0);
    d.record(ok(), t0);
    EXPECT_EQ(d.verdict(), Verdict::down);
    EXPECT_TRUE(d.record(ok(), t0));
}

TEST(Hysteresis, RetryAfterOverloadsAtOnceAndHolds) {
    HealthState s({3, 2, true});
    EXPECT_TRUE(s.record(busy(10), t0));
    EXPECT_EQ(s.verdict(), Verdict::overloaded);
    ASSERT_TRUE(s.overloaded_until().has_value());
    // Healthy answers during the hold do not bring it back.
    s.record(ok(), t0 + 1s);
    s.record(ok(), t0 + 2s);
    s.record(ok(), t0 + 9s);
    EXPECT_EQ(s.verdict(), Verdict::overloaded);
    EXPECT_TRUE(s.record(ok(), t0 + 10s));
    EXPECT_EQ(s.verdict(), Verdict::up);
}

TEST(Hysteresis, OverloadWithoutRetryAfterNeedsNAnswers) {
    HealthState s({3, 2, true});
    EXPECT_FALSE(s.record(busy(), t0));
    EXPECT_FALSE(s.record(busy(), t0));
    EXPECT_TRUE(s.record(busy(), t0));
    EXPECT_EQ(s.verdict(), Verdict::overloaded);
    s.record(ok(), t0);
    EXPECT_TRUE(s.record(ok(), t0));
    EXPECT_EQ(s.verdict(), Verdict::up);
}

TEST(Hysteresis, RetryAfterIgnoredWhenNotHonored) {
    HealthState s({2, 1, false});
    EXPECT_FALSE(s.record(busy(3600), t0));
    EXPECT_TRUE(s.record(busy(3600), t0));
    EXPECT_FALSE(s.overloaded_until().has_value());
    EXPECT_TRUE(s.record(ok(), t0 + 1s));
}

TEST(Hysteresis, OverloadedThenSilentGoesDownAndDownAnswering503IsOverloaded) {
    HealthState s({2, 2, true});
    s.record(busy(1), t0);
    EXPECT_EQ(s.verdict(), Verdict::overloaded);
    EXPECT_FALSE(s.record(timeout(), t0));
    EXPECT_TRUE(s.record(timeout(), t0));
    EXPECT_EQ(s.verdict(), Verdict::down);
    EXPECT_TRUE(s.record(busy(), t0));
    EXPECT_EQ(s.verdict(), Verdict::overloaded);
}

TEST(OptionsRequest, WellFormed) {
    ProbeIds ids{"abc123@siplb", "z9hG4bKdeadbeef", "7a9", 42};
    auto m = build_options_request(*Endpoint::parse("192.0.2.10:5060"), *Endpoint::parse("192.0.2.1:40000"),
                                   "sip:siplb@invalid", ids);
    EXPECT_EQ(m.rfind("OPTIONS sip:192.0.2.10:5060 SIP/2.0\r\n", 0), 0u);
    EXPECT_NE(m.find("\r\nVia: SIP/2.0/UDP 192.0.2.1:40000;branch=z9hG4bKdeadbeef;rport\r\n"), std::string::npos);
    EXPECT_NE(m.find("\r\nMax-Forwards: 70\r\n"), std::string::npos);
    EXPECT_NE(m.find("\r\nFrom: <sip:siplb@invalid>;tag=7a9\r\n"), std::string::npos);
    EXPECT_NE(m.find("\r\nTo: <sip:192.0.2.10:5060>\r\n"), std::string::npos);
    EXPECT_NE(m.find("\r\nCall-ID: abc123@siplb\r\n"), std::string::npos);
    EXPECT_NE(m.find("\r\nCSeq: 42 OPTIONS\r\n"), std::string::npos);
    EXPECT_NE(m.find("\r\nUser-Agent: siplb\r\n"), std::string::npos);
    EXPECT_EQ(m.substr(m.size() - 23), "\r\nContent-Length: 0\r\n\r\n");
    auto v6 = build_options_request(*Endpoint::parse("[2001:db8::5]:5070"), *Endpoint::parse("[2001:db8::1]:4000"),
                                    "sip:siplb@invalid", ids);
    EXPECT_EQ(v6.rfind("OPTIONS sip:[2001:db8::5]:5070 SIP/2.0\r\n", 0), 0u);
}

TEST(SipResponse, ParsesStatusCallIdBranchRetryAfter) {
    const std::string r =
        "SIP/2.0 503 Service Unavailable\r\n"
        "v: SIP/2.0/UDP 192.0.2.1:40000;rport=40000;branch=z9hG4bKabc;received=192.0.2.1\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKother\r\n"
        "From: <sip:siplb@invalid>;tag=1\r\n"
        "i: xyz@siplb\r\n"
        "CSeq: 7 OPTIONS\r\n"
        "retry-after: 120 (maintenance);duration=3600\r\n"
        "Content-Length: 0\r\n\r\n";
    auto info = parse_sip_response(r);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->status, 503);
    EXPECT_EQ(info->reason, "Service Unavailable");
    EXPECT_EQ(info->call_id, "xyz@siplb");
    EXPECT_EQ(info->branch, "z9hG4bKabc");
    EXPECT_EQ(info->cseq_method, "OPTIONS");
    ASSERT_TRUE(info->retry_after_s.has_value());
    EXPECT_EQ(*info->retry_after_s, 120u);
}

TEST(SipResponse, RejectsRequestsAndGarbage) {
    EXPECT_FALSE(parse_sip_response("OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\n\r\n"));
    EXPECT_FALSE(parse_sip_response("SIP/2.0 2000 OK\r\nCall-ID: a\r\n\r\n"));
    EXPECT_FALSE(parse_sip_response("SIP/2.0 200 OK\r\nFrom: a\r\n\r\n"));  // no Call-ID
    EXPECT_FALSE(parse_sip_response(""));
    EXPECT_FALSE(parse_sip_response(std::string(3, '\0')));
    auto ok = parse_sip_response("SIP/2.0 200 OK\r\nCall-ID: a\r\n\r\n");
    ASSERT_TRUE(ok);
    EXPECT_FALSE(ok->retry_after_s.has_value());
}

TEST(Passive, ThresholdsCrossed) {
    PassiveParams p{50, 0.5, 20};
    EXPECT_EQ(evaluate_passive({1000, 49, 0}, p).outcome, ProbeOutcome::ok);
    EXPECT_EQ(evaluate_passive({1000, 50, 0}, p).outcome, ProbeOutcome::overloaded);
    EXPECT_EQ(evaluate_passive({19, 0, 19}, p).outcome, ProbeOutcome::ok);  // too few to judge
    EXPECT_EQ(evaluate_passive({20, 0, 10}, p).outcome, ProbeOutcome::timeout);
    EXPECT_EQ(evaluate_passive({20, 0, 9}, p).outcome, ProbeOutcome::ok);
    // Fed through the same hysteresis as active probes.
    HealthState s({2, 2, true});
    s.record(evaluate_passive({100, 60, 0}, p), t0);
    EXPECT_TRUE(s.record(evaluate_passive({100, 60, 0}, p), t0));
    EXPECT_EQ(s.verdict(), Verdict::overloaded);
}
