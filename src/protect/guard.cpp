#include "siplb/protect/guard.h"

namespace siplb::protect {

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

Result<std::shared_ptr<const ProtectSnapshot>> ProtectSnapshot::build(std::span<const PoolProtectionSpec> pools) {
    using R = Result<std::shared_ptr<const ProtectSnapshot>>;
    std::vector<std::string> names;
    for (const auto& p : pools) names.push_back(p.name);
    auto snap = std::make_shared<ProtectSnapshot>();
    for (const auto& p : pools) {
        auto rules = CompiledRules::build(p.rules, names);
        if (!rules) return R::fail("pool '" + p.name + "': " + rules.message());
        if (p.rate_limit.enabled) {
            // Validate now so a worker never fails to create its tables.
            RateLimitSpec small = p.rate_limit;
            small.table_size = 16;  // same checks, tiny tables
            auto probe = RateLimiter::create(small);
            if (!probe) return R::fail("pool '" + p.name + "': " + probe.message());
            if (p.rate_limit.table_size < 16 || p.rate_limit.table_size > (1u << 26) ||
                (p.rate_limit.table_size & (p.rate_limit.table_size - 1)))
                return R::fail("pool '" + p.name + "': rate_limit: table_size must be a power of two in [16, 2^26]");
        }
        snap->pools_.push_back(Pool{p.name, std::move(rules).value(), p.rate_limit});
    }
    return std::shared_ptr<const ProtectSnapshot>(std::move(snap));
}

Result<std::unique_ptr<WorkerGuard>> WorkerGuard::create(std::shared_ptr<const ProtectSnapshot> snapshot,
                                                         uint64_t seed) {
    using R = Result<std::unique_ptr<WorkerGuard>>;
    if (!snapshot) return R::fail("no protect snapshot");
    std::unique_ptr<WorkerGuard> g(new WorkerGuard());
    for (const auto& p : snapshot->pools()) {
        auto st = std::make_unique<PoolState>(p.rules);
        if (auto s = g->scratch_.reserve(*p.rules); !s) return R::fail("pool '" + p.name + "': " + s.message());
        if (p.rate_limit.enabled) {
            auto rl = RateLimiter::create(p.rate_limit, seed ^ (0x9e3779b97f4a7c15ull * (g->pools_.size() + 1)));
            if (!rl) return R::fail("pool '" + p.name + "': " + rl.message());
            st->limiter = std::make_unique<RateLimiter>(std::move(rl).value());
        }
        g->pools_.push_back(std::move(st));
    }
    g->snap_ = std::move(snapshot);
    return g;
}

GuardDecision WorkerGuard::check(uint32_t pool_index, const uint8_t* payload, size_t len, const sip::SipMessage& msg,
                                 const IpAddress& src, uint64_t now_ns) noexcept {
    GuardDecision d;
    if (pool_index >= pools_.size() || msg.verdict != sip::Verdict::ok) return d;
    PoolState& p = *pools_[pool_index];
    if (!p.rules->empty()) {
        RuleVerdict v = evaluate(*p.rules, payload, len, msg, scratch_, p.counters);
        d.rule = v.rule;
        switch (v.action) {
            case RuleVerdict::Action::drop:
                p.rule_drops.store(p.rule_drops.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
                d.action = GuardDecision::Action::drop_rule;
                return d;
            case RuleVerdict::Action::route:
                if (v.route_pool != kNoPool) {
                    d.action = GuardDecision::Action::route;
                    d.route_pool = v.route_pool;
                }
                break;
            case RuleVerdict::Action::allow:
            case RuleVerdict::Action::none: break;
        }
    }
    if (p.limiter && msg.kind == sip::Kind::request) {
        switch (p.limiter->admit(src, now_ns)) {
            case RateVerdict::pass: break;
            case RateVerdict::source_limited: d.action = GuardDecision::Action::drop_rate_source; break;
            case RateVerdict::prefix_limited: d.action = GuardDecision::Action::drop_rate_prefix; break;
        }
    }
    return d;
}

}  // namespace siplb::protect
