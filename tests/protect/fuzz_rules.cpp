// fuzz-sources: src/common/table_memory.cpp src/sip/parser.cpp src/sip/find_header.cpp src/protect/rules.cpp src/protect/rate_limiter.cpp src/protect/guard.cpp
// fuzz-pkg: libhs libxxhash
// fuzz-corpus: tests/sip/data
//
// Arbitrary bytes through the SIP parser, the rule engine (rules on every
// field kind, including named headers and compact forms) and the rate
// limiter. The first two bytes pick the source address and the clock step.
// The guard answers from its memo of field values; the same rules evaluated
// without a memo, and with a tiny memo that collides all the time, must give
// the same rule for every input.
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "siplb/protect/guard.h"

using namespace siplb;

namespace {

protect::RuleSpec rule(const char* name, const char* field, const char* pattern, protect::RuleAction a,
                       const char* route = "") {
    protect::RuleSpec r;
    r.name = name;
    r.field = field;
    r.pattern = pattern;
    r.action = a;
    r.route_pool = route;
    return r;
}

std::shared_ptr<const protect::ProtectSnapshot> reference_snapshot;

protect::WorkerGuard& guard() {
    static std::unique_ptr<protect::WorkerGuard> g = [] {
        std::vector<protect::PoolProtectionSpec> pools(2);
        pools[0].name = "accounts";
        pools[1].name = "trunk";
        using A = protect::RuleAction;
        pools[0].rules = {
            rule("allow-trusted", "header:X-Trusted", "^yes$", A::allow),
            rule("scanners", "user_agent", "friendly-scanner|sipvicious|sip-?cli|VaxSIPUserAgent", A::drop),
            rule("trunk", "request_uri", "@siptrunk\\.", A::route, "trunk"),
            rule("method", "method", "^(PUBLISH|MESSAGE)$", A::drop),
            rule("from", "from", "<sip:[0-9]{10,}@", A::drop),
            rule("to", "header:t", "\\b(100|101)@", A::drop),
            rule("callid", "header:i", "^scan", A::drop),
            rule("cseq", "header:CSeq", "^1 OPTIONS$", A::allow),
            rule("contact", "header:m", "evil", A::drop),
            rule("via", "header:Via", "rport.*rport", A::drop),
        };
        for (auto& p : pools) {
            p.rate_limit.enabled = true;
            p.rate_limit.requests_per_s = 5;
            p.rate_limit.burst = 5;
            p.rate_limit.prefix_requests_per_s = 20;
            p.rate_limit.prefix_burst = 20;
            p.rate_limit.table_size = 16;  // tiny: evictions happen
        }
        auto snap = protect::ProtectSnapshot::build(pools);
        if (!snap) abort();
        reference_snapshot = snap.value();
        auto w = protect::WorkerGuard::create(snap.value());
        if (!w) abort();
        return std::move(w).value();
    }();
    return *g;
}

uint64_t now_ns = 1;

// Pool 0's rules evaluated outside the guard: no memo, and a 16-entry memo.
struct Reference {
    const protect::CompiledRules& rules;
    protect::RuleScratch scratch;
    protect::RuleCache tiny;
    explicit Reference(const protect::CompiledRules& r) : rules(r), tiny(protect::RuleCache::create(r, 16).value()) {
        if (!scratch.reserve(r)) abort();
    }
};

Reference& reference() {
    static Reference r(*reference_snapshot->pools()[0].protection->rules());
    return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    uint8_t addr = data[0], step = data[1];
    data += 2;
    size -= 2;
    sip::SipMessage msg;
    sip::SipParser::parse(data, size, msg);
    now_ns += uint64_t(step) * 1'000'000ull;
    uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, static_cast<uint8_t>(addr & 3u), 0, 0, 0, 0, 0, 0, 0, addr};
    IpAddress src = (addr & 0x80) ? IpAddress::from_v6(v6)
                                  : IpAddress::from_v4_be(0x000071cbu | (uint32_t(addr) << 24));
    auto& g = guard();
    // The burst loop's way (probe in the first pass) on odd steps, the
    // one-call way on even ones: both must reach the same buckets.
    protect::GuardDecision d;
    if (step & 1u) {
        const protect::WorkerGuard::Probe ahead = g.probe(addr & 1u, msg, src);
        d = g.check(addr & 1u, data, size, msg, src, &ahead, now_ns);
    } else {
        d = g.check(addr & 1u, data, size, msg, src, now_ns);
    }
    if ((addr & 1u) == 0) {
        auto& ref = reference();
        auto plain = protect::evaluate(ref.rules, data, size, msg, ref.scratch);
        auto tiny = protect::evaluate(ref.rules, data, size, msg, ref.scratch, &ref.tiny);
        if (plain.rule != d.rule || tiny.rule != d.rule) abort();
        // Each memo answers or scans exactly the fields the plain run scans.
        if (plain.memo_hits != 0 || tiny.scans + tiny.memo_hits != plain.scans) abort();
        if (d.scans + d.memo_hits != plain.scans) abort();
        if (plain.scan_errors != 0 || tiny.scan_errors != 0) abort();
    }
    if (d.action == protect::GuardDecision::Action::route && d.route_pool != 1) abort();
    if (d.rule != protect::kNoRule && d.rule >= g.snapshot().pools()[0].protection->rules()->size()) abort();
    if (d.scan_errors != 0) abort();
    // The decisions' evictions add up to each pool limiter's own count.
    static uint64_t evicted[2];
    evicted[addr & 1u] += d.rate_evictions;
    if (evicted[addr & 1u] != g.pool(addr & 1u)->limiter->evictions()) abort();
    // No scan without a field to scan: at most one per database, none for
    // what is not a parsed SIP message.
    const auto& pool_rules = *g.snapshot().pools()[addr & 1u].protection->rules();
    if (d.scans + d.memo_hits > pool_rules.databases()) abort();
    if (msg.verdict != sip::Verdict::ok && (d.scans | d.memo_hits)) abort();
    return 0;
}
