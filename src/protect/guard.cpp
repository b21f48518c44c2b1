#include "siplb/protect/guard.h"

#include <sys/random.h>
#include <unistd.h>

#include <chrono>

namespace siplb::protect {

uint64_t process_salt() noexcept {
    static const uint64_t salt = []() -> uint64_t {
        uint64_t s = 0;
        if (getrandom(&s, sizeof s, 0) == static_cast<ssize_t>(sizeof s)) return s;
        // No getrandom (a very old kernel): still different in every process.
        const auto t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        return (t ^ static_cast<uint64_t>(getpid()) << 32) * 0x9e3779b97f4a7c15ull;
    }();
    return salt;
}

const char* to_string(GuardDecision::Action a) noexcept {
    switch (a) {
        case GuardDecision::Action::forward: return "forward";
        case GuardDecision::Action::route: return "route";
        case GuardDecision::Action::drop_rule: return "drop_rule";
        case GuardDecision::Action::drop_rate_source: return "drop_rate_source";
        case GuardDecision::Action::drop_rate_prefix: return "drop_rate_prefix";
    }
    return "unknown";
}

Result<std::shared_ptr<const PoolProtection>> PoolProtection::build(const PoolProtectionSpec& spec) {
    using R = Result<std::shared_ptr<const PoolProtection>>;
    auto rules = CompiledRules::build(spec.rules);
    if (!rules) return R::fail("pool '" + spec.name + "': " + rules.message());
    if (spec.rate_limit.enabled) {
        // Validate now so a worker's guard never fails to create its tables.
        RateLimitSpec small = spec.rate_limit;
        small.table_size = 16;  // same checks, tiny tables
        auto probe = RateLimiter::create(small);
        if (!probe) return R::fail("pool '" + spec.name + "': " + probe.message());
        const uint32_t size = spec.rate_limit.table_size;
        if (size < 16 || size > (1u << 26) || (size & (size - 1)))
            return R::fail("pool '" + spec.name + "': rate_limit: table_size must be a power of two in [16, 2^26]");
    }
    std::shared_ptr<PoolProtection> p(new PoolProtection());
    p->pool_ = spec.name;
    p->rules_ = std::move(rules).value();
    p->rate_limit_ = spec.rate_limit;
    return std::shared_ptr<const PoolProtection>(std::move(p));
}

Result<std::shared_ptr<const ProtectSnapshot>> ProtectSnapshot::build(std::span<const PoolProtectionSpec> pools) {
    using R = Result<std::shared_ptr<const ProtectSnapshot>>;
    std::vector<std::string> names;
    std::vector<std::shared_ptr<const PoolProtection>> built;
    for (const auto& p : pools) {
        auto pp = PoolProtection::build(p);
        if (!pp) return R::fail(pp.message());
        names.push_back(p.name);
        built.push_back(std::move(pp).value());
    }
    return assemble(names, built);
}

std::shared_ptr<const ProtectSnapshot> ProtectSnapshot::assemble(
    std::span<const std::string> names, std::span<const std::shared_ptr<const PoolProtection>> pools) {
    static const auto kNone = PoolProtection::build(PoolProtectionSpec{}).value();
    auto snap = std::make_shared<ProtectSnapshot>();
    for (size_t i = 0; i < names.size(); ++i) {
        Pool p;
        p.name = names[i];
        p.protection = i < pools.size() && pools[i] ? pools[i] : kNone;
        for (const auto& rule : p.protection->rules()->rules()) {
            uint32_t target = kNoPool;
            if (rule.action == RuleAction::route)
                for (size_t j = 0; j < names.size(); ++j)
                    if (names[j] == rule.route_pool) target = static_cast<uint32_t>(j);
            p.route_targets.push_back(target);
        }
        snap->active_ = snap->active_ || p.protection->active();
        snap->pools_.push_back(std::move(p));
    }
    return snap;
}

Result<std::unique_ptr<WorkerGuard>> WorkerGuard::create(std::shared_ptr<const ProtectSnapshot> snapshot, uint64_t seed,
                                                         const WorkerGuard* previous) {
    using R = Result<std::unique_ptr<WorkerGuard>>;
    if (!snapshot) return R::fail("no protect snapshot");
    std::unique_ptr<WorkerGuard> g(new WorkerGuard());
    for (const auto& p : snapshot->pools()) {
        const PoolProtection& pp = *p.protection;
        auto st = std::make_unique<PoolState>(pp.rules());
        st->name = p.name;
        st->limits = pp.rate_limit();
        if (auto s = g->scratch_.reserve(*pp.rules()); !s) return R::fail("pool '" + p.name + "': " + s.message());
        auto memo = RuleCache::create(*pp.rules(), RuleCache::kDefaultEntries, seed * 0xff51afd7ed558ccdull);
        if (!memo) return R::fail("pool '" + p.name + "': " + memo.message());
        st->memo = std::move(memo).value();
        if (pp.rate_limit().enabled) {
            if (previous)
                for (const auto& old : previous->pools_)
                    if (old->limiter && old->name == p.name && old->limits == pp.rate_limit())
                        st->limiter = old->limiter;
            if (!st->limiter) {
                auto rl = RateLimiter::create(pp.rate_limit(), seed ^ (0x9e3779b97f4a7c15ull * (g->pools_.size() + 1)));
                if (!rl) return R::fail("pool '" + p.name + "': " + rl.message());
                st->limiter = std::make_shared<RateLimiter>(std::move(rl).value());
            }
        }
        g->pools_.push_back(std::move(st));
    }
    g->snap_ = std::move(snapshot);
    return g;
}

GuardDecision WorkerGuard::check(uint32_t pool_index, const uint8_t* payload, size_t len, const sip::SipMessage& msg,
                                 const IpAddress& src, const Probe* ahead, uint64_t now_ns) noexcept {
    GuardDecision d;
    if (pool_index >= pools_.size() || msg.verdict != sip::Verdict::ok) return d;
    PoolState& p = *pools_[pool_index];
    if (!p.rules->empty()) {
        const RuleVerdict v = evaluate(*p.rules, payload, len, msg, scratch_, &p.memo);
        d.rule = v.rule;
        d.scans = v.scans;
        d.memo_hits = v.memo_hits;
        d.scan_errors = v.scan_errors;
        switch (v.action) {
            case RuleVerdict::Action::drop: d.action = GuardDecision::Action::drop_rule; return d;
            case RuleVerdict::Action::route: {
                // A target that is not in this snapshot leaves route_pool = kNoPool.
                const auto& targets = snap_->pools()[pool_index].route_targets;
                d.action = GuardDecision::Action::route;
                d.route_pool = v.rule < targets.size() ? targets[v.rule] : kNoPool;
                break;
            }
            case RuleVerdict::Action::allow:
            case RuleVerdict::Action::none: break;
        }
    }
    if (p.limiter && msg.kind == sip::Kind::request) {
        const Admission a = p.limiter->admit(ahead && ahead->located ? ahead->rate : p.limiter->locate(src), now_ns);
        switch (a.verdict) {
            case RateVerdict::pass: break;
            case RateVerdict::source_limited: d.action = GuardDecision::Action::drop_rate_source; break;
            case RateVerdict::prefix_limited: d.action = GuardDecision::Action::drop_rate_prefix; break;
        }
        d.rate_evictions = a.evictions;
    }
    return d;
}

}  // namespace siplb::protect
