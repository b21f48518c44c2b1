// Pure parts of health checking: hysteresis state machine, OPTIONS
// building, response parsing, passive windows.
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

TEST(OptionsRequest, OverTcpSaysSoAndFramesItself) {
    ProbeIds ids{"abc@siplb", "z9hG4bK1", "7a9", 3};
    auto m = build_options_request(*Endpoint::parse("192.0.2.10:5060"), *Endpoint::parse("192.0.2.1:40000"),
                                   "sip:siplb@invalid", ids, "siplb", "TCP");
    EXPECT_NE(m.find("\r\nVia: SIP/2.0/TCP 192.0.2.1:40000;branch=z9hG4bK1;rport\r\n"), std::string::npos);
    EXPECT_NE(m.find("\r\nContact: <sip:siplb@192.0.2.1:40000;transport=tcp>\r\n"), std::string::npos);
    const StreamFrame f = frame_stream_message(m);
    EXPECT_EQ(f.kind, StreamFrame::Kind::message);
    EXPECT_EQ(f.length, m.size());
}

TEST(StreamFraming, HeadersThenContentLengthBody) {
    const std::string head = "SIP/2.0 200 OK\r\nCall-ID: a\r\nContent-Length: 5\r\n\r\n";
    // Every prefix short of the whole message is incomplete.
    for (size_t n = 0; n < head.size() + 5; ++n)
        EXPECT_EQ(frame_stream_message((head + "hello").substr(0, n)).kind, StreamFrame::Kind::incomplete) << n;
    StreamFrame f = frame_stream_message(head + "hello" + "SIP/2.0 180 Ringing\r\n");
    ASSERT_EQ(f.kind, StreamFrame::Kind::message);
    EXPECT_EQ(f.skip, 0u);
    EXPECT_EQ(f.length, head.size() + 5);  // the next message is not part of it
    // Compact form, any case, spaces around the value; keep-alive CRLFs skipped.
    f = frame_stream_message("\r\n\r\nSIP/2.0 200 OK\r\ni: a\r\nL:  0 \r\n\r\n");
    ASSERT_EQ(f.kind, StreamFrame::Kind::message);
    EXPECT_EQ(f.skip, 4u);
    EXPECT_EQ(f.length, std::string("SIP/2.0 200 OK\r\ni: a\r\nL:  0 \r\n\r\n").size());
    // Only CRLFs: nothing yet.
    f = frame_stream_message("\r\n\r\n");
    EXPECT_EQ(f.kind, StreamFrame::Kind::incomplete);
    EXPECT_EQ(f.skip, 4u);
}

TEST(StreamFraming, MalformedMessages) {
    auto error = [](std::string_view m, size_t max = 65535) {
        const StreamFrame f = frame_stream_message(m, max);
        return f.kind == StreamFrame::Kind::malformed ? f.error : std::string("not malformed");
    };
    EXPECT_EQ(error("SIP/2.0 200 OK\r\nCall-ID: a\r\n\r\n"), "no Content-Length (mandatory on stream transports)");
    EXPECT_EQ(error("SIP/2.0 200 OK\r\nContent-Length: x1\r\n\r\n"), "bad Content-Length 'x1'");
    EXPECT_EQ(error("SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n"), "bad Content-Length '-1'");
    EXPECT_EQ(error("SIP/2.0 200 OK\r\nContent-Length: 1\r\nl: 2\r\n\r\n"), "conflicting Content-Length headers");
    EXPECT_EQ(error("SIP/2.0 200 OK\r\nContent-Length: 99999\r\n\r\n"), "message longer than 65535 bytes");
    EXPECT_EQ(error(std::string(100, 'x'), 64), "no end of headers within 64 bytes");
    EXPECT_EQ(error(std::string(64, 'x'), 64), "not malformed");  // still could end
}

TEST(SipResponse, ClassifiedByOverloadCodes) {
    auto info = parse_sip_response("SIP/2.0 503 Busy\r\nCall-ID: a\r\nRetry-After: 20\r\n\r\n");
    ASSERT_TRUE(info);
    ProbeResult r = classify_response(*info, {503});
    EXPECT_EQ(r.outcome, ProbeOutcome::overloaded);
    EXPECT_EQ(r.retry_after_s, std::optional<uint32_t>(20));
    EXPECT_EQ(r.detail, "503 Busy (Retry-After 20)");
    r = classify_response(*info, {480});
    EXPECT_EQ(r.outcome, ProbeOutcome::ok);  // any other final answer: alive
    EXPECT_EQ(r.status_code, 503);
    EXPECT_FALSE(r.retry_after_s);
}

TEST(Hysteresis, BadResponsesCountAsFailures) {
    HealthState s({2, 1, true});
    const ProbeResult bad{ProbeOutcome::bad_response, 0, std::nullopt, "malformed"};
    EXPECT_FALSE(s.record(bad, t0));
    EXPECT_TRUE(s.record(bad, t0));
    EXPECT_EQ(s.verdict(), Verdict::down);
}

namespace {
PassiveParams passive(uint64_t threshold, std::chrono::milliseconds interval, bool probed = true) {
    PassiveParams p;
    p.enabled = true;
    p.threshold = threshold;
    p.interval = interval;
    p.probed = probed;
    return p;
}
}  // namespace

TEST(Passive, ThresholdReachedWithinOneInterval) {
    const auto p = passive(50, 2000ms);
    PassiveWindow w;
    EXPECT_FALSE(w.observe(1000, 0, t0, p));  // first reading: a baseline, whatever its value
    EXPECT_FALSE(w.observe(1020, 0, t0 + 500ms, p));
    EXPECT_FALSE(w.observe(1049, 0, t0 + 1000ms, p));
    auto e = w.observe(1057, 0, t0 + 1500ms, p);
    ASSERT_TRUE(e);
    EXPECT_TRUE(e->overloaded);
    EXPECT_EQ(e->count, 57u);
    EXPECT_EQ(e->span, 1500ms);
    EXPECT_FALSE(e->retry_after_s);
    EXPECT_EQ(e->detail, "passive: 57 overload responses in 1500 ms");
    // The window starts afresh: the same responses never count twice.
    EXPECT_FALSE(w.observe(1060, 0, t0 + 2000ms, p));
    EXPECT_FALSE(w.observe(1100, 0, t0 + 3000ms, p));
    EXPECT_TRUE(w.observe(1110, 0, t0 + 3250ms, p));
}

TEST(Passive, ThresholdNotReachedWithinOneInterval) {
    const auto p = passive(50, 1000ms);
    PassiveWindow w;
    w.observe(0, 0, t0, p);
    // 49 per second for ten seconds, read every 250 ms: never 50 in one second.
    uint64_t c = 0;
    for (int i = 1; i <= 40; ++i) {
        c += (i % 4 == 0) ? 13 : 12;
        EXPECT_FALSE(w.observe(c, 0, t0 + i * 250ms, p)) << i;
    }
    EXPECT_EQ(c, 490u);
    // Responses older than the interval no longer count: 40 early, 40 late.
    PassiveWindow v;
    v.observe(0, 0, t0, p);
    EXPECT_FALSE(v.observe(40, 0, t0 + 100ms, p));
    for (int i = 2; i <= 15; ++i) EXPECT_FALSE(v.observe(40, 0, t0 + i * 100ms, p)) << i;
    EXPECT_FALSE(v.observe(80, 0, t0 + 1600ms, p));
    auto e = v.observe(90, 0, t0 + 1700ms, p);  // 50 within the last second
    ASSERT_TRUE(e);
    EXPECT_EQ(e->count, 50u);
}

TEST(Passive, TripsWhenTheLastIntervalHoldsTheThresholdNotBefore) {
    // One response every 10 ms, readings every 10 ms: 100 per second reached
    // exactly when a full second has passed, whatever the reading rate.
    const auto p = passive(100, 1000ms);
    PassiveWindow w;
    w.observe(0, 0, t0, p);
    for (int i = 1; i < 100; ++i) ASSERT_FALSE(w.observe(i, 0, t0 + i * 10ms, p)) << i;
    auto e = w.observe(100, 0, t0 + 1000ms, p);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->count, 100u);
    EXPECT_EQ(e->span, 1000ms);
    // At 99 per second it never trips, however long it runs.
    PassiveWindow slow;
    slow.observe(0, 0, t0, p);
    uint64_t c = 0;
    for (int i = 1; i <= 1000; ++i) {
        if (i % 100 != 0) ++c;  // one gap per second
        ASSERT_FALSE(slow.observe(c, 0, t0 + i * 10ms, p)) << i;
    }
}

TEST(Passive, SlidingWindowIsPreciseToASixteenthOfTheInterval) {
    // Quiet for seconds, then one response every 10 ms from 5230 ms on:
    // 100 within one second first holds at 6230 ms. The window trips then,
    // late by at most interval/16 (its reading granularity), never early.
    const auto p = passive(100, 1000ms);
    PassiveWindow w;
    w.observe(0, 0, t0, p);
    std::optional<TimePoint> tripped;
    for (int ms = 10; ms <= 8000 && !tripped; ms += 10) {
        const uint64_t c = ms > 5230 ? static_cast<uint64_t>(ms - 5230) / 10 : 0;
        if (w.observe(c, 0, t0 + std::chrono::milliseconds(ms), p)) tripped = t0 + std::chrono::milliseconds(ms);
    }
    ASSERT_TRUE(tripped);
    EXPECT_GE(*tripped, t0 + 6230ms);
    EXPECT_LE(*tripped, t0 + 6230ms + 1000ms / 16 + 10ms);
}

TEST(Passive, BurstWithinTheWindowCountsInFullWhenReadingsStraddleItsStart) {
    // Readings every 300 ms against a 1000 ms interval: the anchor before the
    // window start is 1200 ms old, but a burst since the reading inside the
    // window is an exact count and must not be diluted by the longer span.
    const auto p = passive(10, 1000ms);
    PassiveWindow w;
    w.observe(0, 0, t0, p);
    for (int i = 1; i <= 3; ++i) EXPECT_FALSE(w.observe(0, 0, t0 + i * 300ms, p)) << i;
    auto e = w.observe(11, 0, t0 + 1200ms, p);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->detail, "passive: 11 overload responses in 900 ms");
}

TEST(Passive, ReadingsSlowerThanTheIntervalAreScaledToOneInterval) {
    const auto p = passive(10, 500ms);
    PassiveWindow w;
    w.observe(0, 0, t0, p);
    EXPECT_FALSE(w.observe(19, 0, t0 + 1000ms, p));  // 9.5 per 500 ms
    auto e = w.observe(40, 0, t0 + 2000ms, p);       // 21 in 1000 ms: 10.5 per 500 ms
    ASSERT_TRUE(e);
    EXPECT_EQ(e->detail, "passive: 21 overload responses in 1000 ms");
}

TEST(Passive, DecreasingCounterIsANewBaseline) {
    const auto p = passive(50, 2000ms);
    PassiveWindow w;
    w.observe(5000, 0, t0, p);
    EXPECT_FALSE(w.observe(10, 0, t0 + 500ms, p));  // reset: not a huge bogus delta, nothing at all
    EXPECT_FALSE(w.observe(40, 0, t0 + 1000ms, p));
    EXPECT_EQ(w.last_count(), 40u);
    auto e = w.observe(60, 0, t0 + 1500ms, p);  // 50 since the new baseline
    ASSERT_TRUE(e);
    EXPECT_EQ(e->count, 50u);
}

TEST(Passive, OffMeansNothing) {
    PassiveParams off = passive(1, 100ms, false);
    off.enabled = false;
    PassiveWindow w;
    for (int i = 0; i < 50; ++i) EXPECT_FALSE(w.observe(i * 1000, 30, t0 + i * 100ms, off)) << i;
    EXPECT_FALSE(w.primed());
    // Turned on later, its first reading is a baseline.
    const auto on = passive(1, 100ms);
    EXPECT_FALSE(w.observe(1000000, 0, t0 + 10s, on));
    EXPECT_TRUE(w.observe(1000001, 0, t0 + 10s + 50ms, on));

    config::HealthConfig c;
    EXPECT_FALSE(passive_params(c).enabled);
    c.passive = true;
    c.passive_503_threshold = 7;
    c.interval_ms = 300;
    c.enabled = false;
    const auto q = passive_params(c);
    EXPECT_TRUE(q.enabled);
    EXPECT_EQ(q.threshold, 7u);
    EXPECT_EQ(q.interval, 300ms);
    EXPECT_FALSE(q.probed);
}

TEST(Passive, RetryAfterHonouredThroughOkProbes) {
    const auto p = passive(5, 1000ms);
    PassiveWindow w;
    HealthState s({3, 2, true});
    w.observe(0, 0, t0, p);
    auto e = w.observe(8, 20, t0 + 400ms, p);
    ASSERT_TRUE(e);
    ASSERT_TRUE(e->retry_after_s);
    EXPECT_EQ(*e->retry_after_s, 20u);
    EXPECT_EQ(e->detail, "passive: 8 overload responses in 400 ms (Retry-After 20 s)");
    const TimePoint trip = t0 + 400ms;
    EXPECT_TRUE(s.record_passive(*e, trip));  // at once, not after down_after
    EXPECT_EQ(s.verdict(), Verdict::overloaded);
    // OPTIONS keep answering 200: out until Retry-After ends.
    for (int i = 1; i < 20; ++i) {
        EXPECT_FALSE(s.record(ok(), trip + i * 1s)) << i;
        EXPECT_FALSE(w.observe(8, 20, trip + i * 1s, p)) << i;  // out of rotation: no new 503s
    }
    EXPECT_TRUE(s.record(ok(), trip + 20s));
    EXPECT_EQ(s.verdict(), Verdict::up);
}

TEST(Passive, OkProbesBringItBackAfterUpAfterWithoutRetryAfter) {
    const auto p = passive(5, 1000ms);
    PassiveWindow w;
    HealthState s({3, 3, true});
    s.record(ok(), t0);
    w.observe(100, 0, t0, p);
    auto e = w.observe(105, 0, t0 + 200ms, p);
    ASSERT_TRUE(e);
    EXPECT_TRUE(s.record_passive(*e, t0 + 200ms));
    EXPECT_EQ(s.consecutive_ok(), 0u);  // earlier successes do not count towards up
    EXPECT_FALSE(s.overloaded_until());
    EXPECT_FALSE(s.record(ok(), t0 + 1s));
    EXPECT_FALSE(s.record(ok(), t0 + 2s));
    EXPECT_TRUE(s.record(ok(), t0 + 3s));
    EXPECT_EQ(s.verdict(), Verdict::up);
    // A probe timeout in between restarts the count; a down backend that
    // rejects calls is alive: overloaded.
    HealthState d({1, 2, true});
    d.record(timeout(), t0);
    EXPECT_EQ(d.verdict(), Verdict::down);
    EXPECT_TRUE(d.record_passive(*e, t0 + 1s));
    EXPECT_EQ(d.verdict(), Verdict::overloaded);
    // Retry-After is ignored when not honoured.
    HealthState n({3, 1, false});
    PassiveEvidence ra = *e;
    ra.retry_after_s = 600;
    EXPECT_TRUE(n.record_passive(ra, t0));
    EXPECT_FALSE(n.overloaded_until());
    EXPECT_TRUE(n.record(ok(), t0 + 1s));
}

TEST(Passive, UnprobedBackendComesBackAfterQuietIntervals) {
    // Health checks off: nothing but quiet intervals can bring it back.
    const auto p = passive(5, 1000ms, /*probed=*/false);
    PassiveWindow w;
    HealthState s({3, 2, true});
    w.observe(0, 0, t0, p);
    auto e = w.observe(9, 0, t0 + 250ms, p);
    ASSERT_TRUE(e);
    EXPECT_TRUE(s.record_passive(*e, t0 + 250ms));
    std::vector<std::pair<TimePoint, PassiveEvidence>> quiet;
    for (int i = 2; i <= 16; ++i) {
        const TimePoint now = t0 + i * 250ms;
        if (auto q = w.observe(10, 0, now, p)) quiet.emplace_back(now, *q);
    }
    // One per interval, not one per reading.
    ASSERT_EQ(quiet.size(), 3u);
    EXPECT_EQ(quiet[0].first, t0 + 1250ms);
    EXPECT_EQ(quiet[1].first, t0 + 2250ms);
    EXPECT_FALSE(quiet[0].second.overloaded);
    EXPECT_EQ(quiet[0].second.detail, "passive: 1 overload responses in 1000 ms, below 5");
    EXPECT_FALSE(s.record_passive(quiet[0].second, quiet[0].first));
    EXPECT_TRUE(s.record_passive(quiet[1].second, quiet[1].first));
    EXPECT_EQ(s.verdict(), Verdict::up);
    // With Retry-After it stays out at least that long.
    PassiveWindow r;
    HealthState h({3, 2, true});
    r.observe(0, 0, t0, p);
    h.record_passive(*r.observe(9, 6, t0 + 250ms, p), t0 + 250ms);
    TimePoint back{};
    for (int i = 2; i <= 60 && back == TimePoint{}; ++i) {
        const TimePoint now = t0 + i * 250ms;
        if (auto q = r.observe(9, 6, now, p); q && h.record_passive(*q, now)) back = now;
    }
    EXPECT_EQ(h.verdict(), Verdict::up);
    EXPECT_GE(back, t0 + 250ms + 6s);
    EXPECT_LE(back, t0 + 250ms + 7s);
    // A probed backend never gets quiet evidence: only probes bring it back.
    PassiveWindow pw;
    const auto probed = passive(5, 1000ms);
    pw.observe(0, 0, t0, probed);
    for (int i = 1; i <= 20; ++i) EXPECT_FALSE(pw.observe(0, 0, t0 + i * 500ms, probed)) << i;
}

TEST(Hysteresis, AssumeTakesOverAVerdictWithoutCounts) {
    HealthState s({3, 2, true});
    s.record(ok(), t0);
    s.assume(Verdict::down);
    EXPECT_EQ(s.verdict(), Verdict::down);
    EXPECT_EQ(s.consecutive_ok(), 0u);
    EXPECT_FALSE(s.record(ok(), t0));
    EXPECT_TRUE(s.record(ok(), t0));
    EXPECT_EQ(s.verdict(), Verdict::up);
}
