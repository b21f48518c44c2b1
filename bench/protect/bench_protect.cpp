// Protect stage costs, each next to a baseline measured in the same run:
//  - parser alone vs parser + rule engine with 10 and 1000 rules;
//  - finding the Call-ID header: Hyperscan `(?m)^(call-id|i)[ \t]*:` over the
//    datagram vs the hand-written SipParser::parse (which finds Call-ID and
//    every other header the balancer needs in the same pass);
//  - the edge configuration's rules, one by one and per field, per scan,
//    against a literal that never occurs scanned over the same values;
//  - rate limiter per packet (10k sources, bounded table);
//  - legitimate requests through parse + guard while one source floods at
//    10x their combined rate (legit_accepted, flood_accepted counters).
// Run: build-protect/bench/protect/bench_protect --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <hs/hs.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "edge_config.h"
#include "siplb/protect/guard.h"
#include "siplb/sip/parser.h"
#include "support/message_mix.h"

using namespace siplb;

namespace {

const std::vector<std::string>& mix() {
    static std::vector<std::string> m = test::generate_message_mix(2048, 7);
    return m;
}

const uint8_t* bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

std::vector<protect::RuleSpec> make_rules(int n) {
    std::vector<protect::RuleSpec> rules;
    static const char* fields[] = {"user_agent", "request_uri", "from", "to", "header:Contact", "method"};
    for (int i = 0; i < n; ++i) {
        protect::RuleSpec r;
        std::string k = std::to_string(i);
        r.name = std::string("rule").append(k);
        r.field = fields[i % 6];
        switch (i % 6) {
            case 0: r.pattern = std::string("scanner-").append(k).append("\\b"); break;
            case 1: r.pattern = std::string("^sip:\\+?99").append(k).append("[0-9]*@"); break;
            case 2: r.pattern = std::string("<sip:blocked").append(k).append("@"); break;
            case 3: r.pattern = std::string("premium").append(k).append("@"); break;
            case 4: r.pattern = std::string("evil").append(k).append("\\.example"); break;
            case 5: r.pattern = std::string("^X-BAD").append(k).append("$"); break;
        }
        rules.push_back(std::move(r));
    }
    return rules;
}

void BM_ParserOnly(benchmark::State& st) {
    const auto& m = mix();
    sip::SipMessage msg;
    size_t i = 0;
    for (auto _ : st) {
        const auto& s = m[i++ & 2047];
        sip::SipParser::parse(bytes(s), s.size(), msg);
        benchmark::DoNotOptimize(msg.call_id);
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_ParserOnly);

void BM_ParserPlusRules(benchmark::State& st) {
    auto cfg = make_rules(static_cast<int>(st.range(0)));
    auto rules = protect::CompiledRules::build(cfg).value();
    protect::RuleScratch scratch;
    if (!scratch.reserve(*rules)) std::abort();
    const auto& m = mix();
    sip::SipMessage msg;
    size_t i = 0, matched = 0;
    for (auto _ : st) {
        const auto& s = m[i++ & 2047];
        sip::SipParser::parse(bytes(s), s.size(), msg);
        auto v = protect::evaluate(*rules, bytes(s), s.size(), msg, scratch);
        matched += v.rule != protect::kNoRule;
    }
    st.SetItemsProcessed(st.iterations());
    st.counters["matched"] = static_cast<double>(matched);
    st.counters["databases"] = static_cast<double>(rules->databases());
}
BENCHMARK(BM_ParserPlusRules)->Arg(10)->Arg(1000);

void BM_CallIdHandwrittenParser(benchmark::State& st) {
    const auto& m = mix();
    sip::SipMessage msg;
    size_t i = 0;
    for (auto _ : st) {
        const auto& s = m[i++ & 2047];
        sip::SipParser::parse(bytes(s), s.size(), msg);
        benchmark::DoNotOptimize(msg.call_id.offset);
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_CallIdHandwrittenParser);

int on_first(unsigned, unsigned long long, unsigned long long to, unsigned, void* ctx) {
    *static_cast<unsigned long long*>(ctx) = to;
    return 1;  // first match is enough
}

void BM_CallIdHyperscan(benchmark::State& st) {
    const char* expr = "(?m)^(call-id|i)[ \\t]*:";
    hs_database_t* db = nullptr;
    hs_compile_error_t* err = nullptr;
    if (hs_compile(expr, HS_FLAG_CASELESS, HS_MODE_BLOCK, nullptr, &db, &err) != HS_SUCCESS) std::abort();
    hs_scratch_t* scratch = nullptr;
    if (hs_alloc_scratch(db, &scratch) != HS_SUCCESS) std::abort();
    const auto& m = mix();
    size_t i = 0, found = 0;
    for (auto _ : st) {
        const auto& s = m[i++ & 2047];
        unsigned long long end = 0;
        hs_scan(db, s.data(), static_cast<unsigned>(s.size()), 0, scratch, on_first, &end);
        found += end != 0;
        benchmark::DoNotOptimize(end);
    }
    st.SetItemsProcessed(st.iterations());
    st.counters["found_fraction"] = static_cast<double>(found) / static_cast<double>(st.iterations());
    hs_free_scratch(scratch);
    hs_free_database(db);
}
BENCHMARK(BM_CallIdHyperscan);

// The edge configuration (edge_config.h) on the mix, each message from one
// of 1000 sources: parse, then the guard's work. Arg 1: WorkerGuard::check
// (rules with the memo, rate limits). Arg 0: the same rules evaluated
// without a memo, then the same rate limiter, i.e. what check() did before
// the memo. Real time per message against BM_ParserBalancerDepth is what
// protection costs.
void BM_EdgeGuard(benchmark::State& st) {
    const bool memo = st.range(0) != 0;
    std::vector<protect::PoolProtectionSpec> pools = {bench::edge_protection_spec("edge")};
    auto snap = protect::ProtectSnapshot::build(pools).value();
    auto guard = protect::WorkerGuard::create(snap).value();
    const auto& rules = *snap->pools()[0].protection->rules();
    protect::RuleScratch scratch;
    if (!scratch.reserve(rules)) std::abort();
    auto limiter = protect::RateLimiter::create(pools[0].rate_limit).value();
    const auto& m = mix();
    std::vector<IpAddress> srcs;
    for (uint32_t k = 0; k < 1000; ++k)
        srcs.push_back(IpAddress::from_v4_be(__builtin_bswap32(0xc0000200u + (k % 250) + ((k / 250) << 8))));
    sip::SipMessage msg;
    uint64_t now = 1'000'000'000ull;
    size_t i = 0, dropped = 0;
    uint64_t scans = 0, memo_hits = 0;  // what the dataplane counts per pool from each decision
    for (auto _ : st) {
        const auto& s = m[i & 2047];
        const IpAddress& src = srcs[i++ % 1000];
        sip::SipParser::parse(bytes(s), s.size(), msg, sip::ParseDepth::balancer);
        now += 1000;
        if (memo) {
            const protect::GuardDecision d = guard->check(0, bytes(s), s.size(), msg, src, now);
            dropped += d.dropped();
            scans += d.scans;
            memo_hits += d.memo_hits;
        } else if (msg.ok()) {
            auto v = protect::evaluate(rules, bytes(s), s.size(), msg, scratch);
            scans += v.scans;
            bool limited = msg.kind == sip::Kind::request &&
                           limiter.admit(src, now).verdict != protect::RateVerdict::pass;
            dropped += v.action == protect::RuleVerdict::Action::drop || limited;
        }
    }
    const auto n = static_cast<double>(std::max<int64_t>(1, st.iterations()));
    st.SetItemsProcessed(st.iterations());
    st.counters["dropped"] = static_cast<double>(dropped);
    st.counters["scans_per_msg"] = static_cast<double>(scans) / n;
    st.counters["memo_hits_per_msg"] = static_cast<double>(memo_hits) / n;
}
BENCHMARK(BM_EdgeGuard)->Arg(0)->Arg(1);

// Rules of the edge configuration without the memo, on the values of their
// field in the mix (each iteration: one scan of one value), next to a
// literal that never occurs, scanned over the same values in the same run
// (x_literal). Args 0-9: one rule alone; 10 and 11: every rule on
// User-Agent, on From (one database, what a value the memo does not know
// costs). A memo hit costs no scan; a From carries a new tag in every
// request outside a dialog.
void BM_EdgeRuleScan(benchmark::State& st) {
    const auto spec = bench::edge_protection_spec("edge");
    const auto arg = static_cast<size_t>(st.range(0));
    std::vector<protect::RuleSpec> rules;
    if (arg < spec.rules.size()) {
        rules.push_back(spec.rules[arg]);
    } else {
        const char* field = arg == spec.rules.size() ? "user_agent" : "from";
        for (const auto& r : spec.rules)
            if (r.field == field) rules.push_back(r);
    }
    protect::RuleSpec literal = rules.front();
    literal.name = "literal";
    literal.pattern = "zq-in-no-value-qz";
    auto compiled = protect::CompiledRules::build(rules).value();
    auto baseline = protect::CompiledRules::build(std::span(&literal, 1)).value();
    protect::RuleScratch scratch;
    if (!scratch.reserve(*compiled) || !scratch.reserve(*baseline)) std::abort();
    struct Parsed {
        const std::string* text;
        sip::SipMessage msg;
    };
    std::vector<Parsed> carrying;  // the mix's messages that carry the rule's field
    for (const auto& s : mix()) {
        Parsed p{&s, {}};
        sip::SipParser::parse(bytes(s), s.size(), p.msg, sip::ParseDepth::balancer);
        if (protect::evaluate(*baseline, bytes(s), s.size(), p.msg, scratch).scans == 1) carrying.push_back(p);
    }
    if (carrying.empty()) std::abort();
    size_t matched = 0;
    auto scan = [&](const protect::CompiledRules& set, size_t k) {
        const Parsed& p = carrying[k % carrying.size()];
        matched += protect::evaluate(set, bytes(*p.text), p.text->size(), p.msg, scratch).rule != protect::kNoRule;
    };
    size_t i = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (auto _ : st) scan(*compiled, i++);
    const auto t1 = std::chrono::steady_clock::now();
    const size_t n = std::max<size_t>(i, 1);
    for (size_t k = 0; k < n; ++k) scan(*baseline, k);
    const auto t2 = std::chrono::steady_clock::now();
    const double rule_ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(n);
    const double literal_ns = std::chrono::duration<double, std::nano>(t2 - t1).count() / static_cast<double>(n);
    st.SetLabel(rules.size() == 1 ? rules[0].field + " " + rules[0].name
                                  : rules[0].field + ": all " + std::to_string(rules.size()) + " rules");
    st.SetItemsProcessed(st.iterations());
    st.counters["ns_per_scan"] = rule_ns;
    st.counters["literal_ns_per_scan"] = literal_ns;
    st.counters["x_literal"] = literal_ns > 0 ? rule_ns / literal_ns : 0;
    st.counters["matched"] = static_cast<double>(matched);
}
BENCHMARK(BM_EdgeRuleScan)->DenseRange(0, 11);

void BM_ParserBalancerDepth(benchmark::State& st) {
    const auto& m = mix();
    sip::SipMessage msg;
    size_t i = 0;
    for (auto _ : st) {
        const auto& s = m[i++ & 2047];
        sip::SipParser::parse(bytes(s), s.size(), msg, sip::ParseDepth::balancer);
        benchmark::DoNotOptimize(msg.call_id);
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_ParserBalancerDepth);

protect::RateLimitSpec limits() {
    protect::RateLimitSpec c;  // the config defaults: 50/s burst 100, prefix 500/s burst 1000
    c.enabled = true;
    c.table_size = 65536;
    return c;
}

void BM_RateLimiter(benchmark::State& st) {
    auto rl = protect::RateLimiter::create(limits()).value();
    std::vector<IpAddress> srcs;
    for (uint32_t k = 0; k < 10000; ++k) srcs.push_back(IpAddress::from_v4_be(__builtin_bswap32(0x0a000000u + k * 7)));
    uint64_t now = 1'000'000'000ull;
    size_t i = 0;
    for (auto _ : st) {
        now += 1000;  // 1M packets/s
        benchmark::DoNotOptimize(rl.admit(srcs[i++ % srcs.size()], now).verdict);
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_RateLimiter);

// 200 legitimate sources (distinct /24s) at 5 requests/s each = 1000/s in
// total, plus (with flood) one source sending REGISTER and INVITE at
// 10000/s, 10x their combined rate; simulated clock, 10 s of traffic per
// pass. Real time per message is the throughput through parse + guard.
void BM_GuardFlood(benchmark::State& st) {
    const bool flood = st.range(0) != 0;
    std::vector<protect::PoolProtectionSpec> pools(1);
    pools[0].name = "accounts";
    pools[0].rules = make_rules(10);
    pools[0].rate_limit = limits();
    auto snap = protect::ProtectSnapshot::build(pools).value();
    auto guard = protect::WorkerGuard::create(snap).value();

    struct Event {
        uint64_t t;
        uint32_t src;  // 0 = flooder
        uint32_t msg;
    };
    std::vector<Event> ev;
    constexpr uint64_t kSec = 1'000'000'000ull, kSpan = 10 * kSec;
    for (uint32_t s = 1; s <= 200; ++s)
        for (uint64_t t = s * 1'000'000ull; t < kSpan; t += kSec / 5) ev.push_back({t, s, s * 7});
    if (flood)
        for (uint64_t t = 0; t < kSpan; t += kSec / 10000) ev.push_back({t, 0, static_cast<uint32_t>(t / 100000)});
    std::sort(ev.begin(), ev.end(), [](const Event& a, const Event& b) { return a.t < b.t; });
    // Requests only: legit ones from the mix, flood alternates REGISTER and INVITE.
    std::vector<const std::string*> reqs;
    for (const auto& s : mix())
        if (s.rfind("SIP/2.0", 0) != 0) reqs.push_back(&s);
    std::vector<const std::string*> flood_msgs;
    for (const auto* s : reqs)
        if (s->rfind("REGISTER", 0) == 0 || s->rfind("INVITE", 0) == 0) flood_msgs.push_back(s);

    uint64_t legit = 0, legit_ok = 0, bad = 0, bad_ok = 0, base = 0;
    sip::SipMessage msg;
    for (auto _ : st) {
        for (const auto& e : ev) {
            const std::string& s = e.src ? *reqs[e.msg % reqs.size()] : *flood_msgs[e.msg % flood_msgs.size()];
            sip::SipParser::parse(bytes(s), s.size(), msg);
            IpAddress src = IpAddress::from_v4_be(__builtin_bswap32(e.src ? 0x0a000001u + (e.src << 8) : 0xc6336442u));
            bool ok = !guard->check(0, bytes(s), s.size(), msg, src, base + e.t).dropped();
            if (e.src) {
                ++legit;
                legit_ok += ok;
            } else {
                ++bad;
                bad_ok += ok;
            }
        }
        base += kSpan + 100 * kSec;  // next pass starts with refilled buckets
    }
    st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * ev.size()));
    st.counters["legit_accepted"] = legit ? static_cast<double>(legit_ok) / static_cast<double>(legit) : 0;
    st.counters["flood_accepted"] = bad ? static_cast<double>(bad_ok) / static_cast<double>(bad) : 0;
    st.counters["legit_per_s_sim"] = static_cast<double>(legit_ok) / static_cast<double>(st.iterations()) / 10.0;
}
BENCHMARK(BM_GuardFlood)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
