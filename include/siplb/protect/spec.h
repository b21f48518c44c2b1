// What a pool's protection is made of, as plain values: its rules and its
// per-source rate limits. The config loader fills these; the snapshot
// builder compiles them (rules.h, rate_limiter.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace siplb::protect {

enum class RuleAction : uint8_t { drop, allow, route };

struct RuleSpec {
    std::string name;
    std::string field;    // "method", "request_uri", "user_agent", "from", "to", "header:NAME"
    std::string pattern;  // Hyperscan regex
    bool caseless = true;
    RuleAction action = RuleAction::drop;
    std::string route_pool;  // for action = "route"

    bool operator==(const RuleSpec&) const = default;
};

struct RateLimitSpec {
    bool enabled = false;
    double requests_per_s = 50;  // per source address
    double burst = 100;
    double prefix_requests_per_s = 500;  // per /24 (v4) or /64 (v6)
    double prefix_burst = 1000;
    uint32_t table_size = 65536;

    bool operator==(const RateLimitSpec&) const = default;
};

// One pool's protection: its rules in order and its rate limits.
struct PoolProtectionSpec {
    std::string name;  // the pool
    std::vector<RuleSpec> rules;
    RateLimitSpec rate_limit;

    bool operator==(const PoolProtectionSpec&) const = default;
};

}  // namespace siplb::protect
