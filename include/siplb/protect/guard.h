// The protect stage of the worker path: after the SIP parse, before the
// backend choice. Self-contained facade over the rule engine (rules.h) and
// the rate limiter (rate_limiter.h).
//
//   PoolProtection   one pool's compiled rules and rate-limit parameters,
//                    immutable, built by the control thread (bad patterns
//                    fail here with the pool and rule named). A pool whose
//                    rules and limits did not change keeps its object.
//   ProtectSnapshot  the PoolProtections of one published dataplane snapshot,
//                    in its pool order, route targets resolved by name.
//   WorkerGuard      one per worker per snapshot: Hyperscan scratch for every
//                    pool's databases, a memo of scanned field values
//                    (rules.h, RuleCache) and a rate limiter per pool.
//                    Built by the control thread before the snapshot is
//                    published (it allocates); check() never allocates,
//                    locks, logs or throws. Only its worker uses it.
//
// Order inside check(): rules first (a `drop` rule costs the flood nothing
// from anyone's rate budget), then the rate limit on requests only
// (responses and keepalives are never limited: they belong to calls in
// progress). A `route` verdict is rate-limited like any other request.
//
// Counting: the guard keeps no counters of its own. Its decision says which
// rule matched and what the check cost (scans, memo hits, bucket
// evictions); the dataplane counts them per pool and per rule name, where
// they survive reloads (a guard lives for one snapshot).
//
// Reloads: a new ProtectSnapshot takes the unchanged pools' PoolProtection
// objects, and each new WorkerGuard takes over the rate limiter of its
// worker's previous guard for every pool whose name and limits are
// unchanged, so those buckets carry on.
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
        forward,           // balance in the VIP's pool
        route,             // balance in pool `route_pool` instead
        drop_rule,         // a drop rule matched (`rule`)
        drop_rate_source,  // source address over its request rate
        drop_rate_prefix,  // its /24 or /64 over the prefix rate
    };
    Action action = Action::forward;
    // Live rate-limit buckets this request's admission gave up for it (its
    // address's, its prefix's: 0-2); the table is too small for the sources.
    uint8_t rate_evictions = 0;
    // The rules' work (RuleVerdict): Hyperscan scans, memo answers, refused scans.
    uint16_t scans = 0;
    uint16_t memo_hits = 0;
    uint16_t scan_errors = 0;
    uint32_t rule = kNoRule;        // matching rule (any action), kNoRule if none
    uint32_t route_pool = kNoPool;  // with route

    bool dropped() const noexcept { return action >= Action::drop_rule; }
};
// check() runs for every message: its answer stays within two registers.
static_assert(sizeof(GuardDecision) <= 16);

const char* to_string(GuardDecision::Action a) noexcept;

class PoolProtection {
public:
    // Errors: "pool 'lund': rule 'scanner' (rules[2]): pattern '(': ...".
    static Result<std::shared_ptr<const PoolProtection>> build(const PoolProtectionSpec& spec);

    const std::string& pool() const noexcept { return pool_; }
    const std::shared_ptr<const CompiledRules>& rules() const noexcept { return rules_; }  // never null
    const RateLimitSpec& rate_limit() const noexcept { return rate_limit_; }
    // Anything to do: some rule, or rate limiting on.
    bool active() const noexcept { return !rules_->empty() || rate_limit_.enabled; }

private:
    PoolProtection() = default;
    std::string pool_;
    std::shared_ptr<const CompiledRules> rules_;
    RateLimitSpec rate_limit_;
};

class ProtectSnapshot {
public:
    struct Pool {
        std::string name;
        std::shared_ptr<const PoolProtection> protection;  // never null
        std::vector<uint32_t> route_targets;  // per rule: index of its route_pool in this snapshot, or kNoPool
    };
    // Compiles every pool (pool order = index).
    static Result<std::shared_ptr<const ProtectSnapshot>> build(std::span<const PoolProtectionSpec> pools);
    // From compiled pools, in the dataplane snapshot's pool order (nullptr:
    // the pool has no protection). Route targets are resolved by name; a
    // target that is not in the list routes nowhere (kNoPool).
    static std::shared_ptr<const ProtectSnapshot> assemble(
        std::span<const std::string> names, std::span<const std::shared_ptr<const PoolProtection>> pools);

    std::span<const Pool> pools() const noexcept { return pools_; }
    bool active() const noexcept { return active_; }

private:
    std::vector<Pool> pools_;
    bool active_ = false;
};

// A secret of this process (getrandom at first use) for salting the
// workers' memo and rate-table hashes: a source code constant would let
// anyone who reads it aim field values at one memo set or addresses at
// one bucket line, and evict what it holds.
uint64_t process_salt() noexcept;

class WorkerGuard {
public:
    struct PoolState {
        explicit PoolState(std::shared_ptr<const CompiledRules> r) : rules(std::move(r)) {}
        std::shared_ptr<const CompiledRules> rules;
        RuleCache memo;                        // this worker's scan results by field value
        std::shared_ptr<RateLimiter> limiter;  // null when rate limiting is off
        RateLimitSpec limits;                  // what `limiter` was made with
        std::string name;
    };

    // Allocates scratch, memos and rate tables for every pool. `seed`
    // salts the memos' and rate tables' hashes (the daemon gives each
    // worker its own, from process_salt()). `previous`:
    // the same worker's guard of the snapshot being replaced; its rate
    // limiters are taken over for pools with the same name and limits.
    static Result<std::unique_ptr<WorkerGuard>> create(std::shared_ptr<const ProtectSnapshot> snapshot,
                                                       uint64_t seed = 0x5349504c42ull,
                                                       const WorkerGuard* previous = nullptr);

    // Where check() finds one request's buckets in one pool's rate tables,
    // worked out ahead of it: burst loops locate() every message of a burst
    // and then prefetch() all of their lines back to back before the first
    // check(), so that the cache misses of the burst overlap instead of
    // stalling every message in turn. Changes no state and no verdict.
    struct Probe {
        RateLimiter::Probe rate{};
        bool located = false;  // a request in a rate-limited pool
    };
    Probe probe(uint32_t pool_index, const sip::SipMessage& msg, const IpAddress& src) const noexcept {
        const Probe p = locate(pool_index, msg, src);
        prefetch(pool_index, p);
        return p;
    }
    // probe() in its two steps.
    Probe locate(uint32_t pool_index, const sip::SipMessage& msg, const IpAddress& src) const noexcept {
        Probe p;
        if (pool_index < pools_.size() && msg.verdict == sip::Verdict::ok && msg.kind == sip::Kind::request)
            if (const RateLimiter* rl = pools_[pool_index]->limiter.get()) p = {rl->locate(src), true};
        return p;
    }
    // Always inlined: see balance::prefetch_pick().
    [[gnu::always_inline]] void prefetch(uint32_t pool_index, const Probe& p) const noexcept {
        if (p.located && pool_index < pools_.size())
            if (const RateLimiter* rl = pools_[pool_index]->limiter.get()) rl->prefetch(p.rate);
    }

    // payload/len: the UDP payload the parser saw; src: the client's
    // address; ahead: probe() of this message in this pool, or nullptr
    // (then check() works everything out itself). pool_index outside the
    // snapshot: forward (nothing configured).
    GuardDecision check(uint32_t pool_index, const uint8_t* payload, size_t len, const sip::SipMessage& msg,
                        const IpAddress& src, const Probe* ahead, uint64_t now_ns) noexcept;
    GuardDecision check(uint32_t pool_index, const uint8_t* payload, size_t len, const sip::SipMessage& msg,
                        const IpAddress& src, uint64_t now_ns) noexcept {
        return check(pool_index, payload, len, msg, src, nullptr, now_ns);
    }

    const ProtectSnapshot& snapshot() const noexcept { return *snap_; }
    // For stats and tests: per pool (nullptr outside the range).
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
