// The edge configuration the protect and forward benchmarks measure: the
// rules of edge_rules.toml (one definition for every benchmark, the daemon's
// edge case in scripts/bench included), read with siplb's config parser,
// and per-source and per-prefix rate limits that no client of the mix
// reaches.
#pragma once

#include <memory>
#include <stdexcept>

#include "siplb/config/config.h"
#include "siplb/protect/guard.h"
#include "siplb/protect/spec.h"

namespace siplb::bench {

inline protect::PoolProtectionSpec edge_protection_spec(const std::string& pool) {
    auto loaded = config::load_config(SIPLB_BENCH_EDGE_RULES);
    if (!loaded) throw std::runtime_error(loaded.message());
    protect::PoolProtectionSpec spec;
    spec.name = pool;
    spec.rules = loaded.value().pools.at(0).rules;
    // The mix's clients (a few hundred, in one /24, ~1 Mpps in total) get
    // nowhere near these.
    spec.rate_limit.enabled = true;
    spec.rate_limit.requests_per_s = 1e6;
    spec.rate_limit.burst = 1e5;
    spec.rate_limit.prefix_requests_per_s = 1e8;
    spec.rate_limit.prefix_burst = 1e6;
    return spec;
}

inline std::shared_ptr<const protect::PoolProtection> edge_protection(const std::string& pool) {
    auto built = protect::PoolProtection::build(edge_protection_spec(pool));
    if (!built) throw std::runtime_error(built.message());
    return built.value();
}

}  // namespace siplb::bench
