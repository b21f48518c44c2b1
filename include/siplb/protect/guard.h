// The protect stage of the worker path: after the SIP parse, before the
// backend choice. Self-contained facade over the rule engine (rules.h) and
// the rate limiter (rate_limiter.h).
//
//   ProtectSnapshot  immutable, built by the control thread from the config
//                    (compiles every pool's rules; bad patterns fail here
//                    with the pool and rule named). Shared by all workers.
//   WorkerGuard      one per worker: Hyperscan scratch, per-rule counters
//                    and rate-limit tables per pool. Created off the hot path
//                    (it allocates); check() never allocates, locks, logs or
//                    throws.
//
// Order inside check(): rules first (a `drop` rule costs the flood nothing
// from anyone's rate budget), then the rate limit on requests only
// (responses and keepalives are never limited: they belong to calls in
// progress). A `route` verdict is rate-limited like any other request.
//
// Pools are indexed like config.pools (= DataplaneSnapshot pool_index).
// On reload, build a new ProtectSnapshot and a new WorkerGuard per worker
// and swap it in between bursts; rate-limit state starts with full buckets.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"
#include "siplb/protect/spec.h"
#include "siplb/protect/rate_limiter.h"
#include "siplb/protect/rules.h"
#include "siplb/sip/parser.h"

namespace siplb::protect {

struct GuardDecision {
    enum class Action : uint8_t {
        forward,             // balance in the VIP's pool
        route,               // balance in pool `route_pool` instead
        drop_rule,           // a drop rule matched (`rule`)
        drop_rate_source,    // source address over its request rate
        drop_rate_prefix,    // its /24 or /64 over the prefix rate
    };
    Action action = Action::forward;
    uint32_t rule = kNoRule;        // matching rule (any action), kNoRule if none
    uint32_t route_pool = kNoPool;  // with route

    bool dropped() const noexcept { return action >= Action::drop_rule; }
};

const char* to_string(GuardDecision::Action a) noexcept;

class ProtectSnapshot {
public:
    struct Pool {
        std::string name;
        std::shared_ptr<const CompiledRules> rules;  // never null (may be empty)
        RateLimitSpec rate_limit;
    };
    // Errors: "pool 'lund': rule 'scanner' (rules[2]): pattern '(': ...".
    static Result<std::shared_ptr<const ProtectSnapshot>> build(std::span<const PoolProtectionSpec> pools);

    std::span<const Pool> pools() const noexcept { return pools_; }

private:
    std::vector<Pool> pools_;
};

class WorkerGuard {
public:
    struct PoolState {
        explicit PoolState(std::shared_ptr<const CompiledRules> r) : rules(std::move(r)), counters(rules->size()) {}
        std::shared_ptr<const CompiledRules> rules;
        RuleCounters counters;
        std::unique_ptr<RateLimiter> limiter;  // null when rate limiting is off
        std::atomic<uint64_t> rule_drops{0};
    };

    // Allocates scratch, counters and rate tables for every pool. `seed`
    // salts the rate tables' hash (give each worker its own).
    static Result<std::unique_ptr<WorkerGuard>> create(std::shared_ptr<const ProtectSnapshot> snapshot,
                                                       uint64_t seed = 0x5349504c42ull);

    // payload/len: the UDP payload the parser saw; src: the client address.
    // pool_index outside the snapshot: forward (nothing configured).
    GuardDecision check(uint32_t pool_index, const uint8_t* payload, size_t len, const sip::SipMessage& msg,
                        const IpAddress& src, uint64_t now_ns) noexcept;

    const ProtectSnapshot& snapshot() const noexcept { return *snap_; }
    // For stats: per pool (nullptr outside the range).
    const PoolState* pool(uint32_t pool_index) const noexcept {
        return pool_index < pools_.size() ? pools_[pool_index].get() : nullptr;
    }

private:
    WorkerGuard() = default;
    std::shared_ptr<const ProtectSnapshot> snap_;
    std::vector<std::unique_ptr<PoolState>> pools_;
    RuleScratch scratch_;  // reserved for every pool's rules
};

}  // namespace siplb::protect
