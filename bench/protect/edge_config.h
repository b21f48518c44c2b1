// The edge configuration the protect and forward benchmarks measure: rules
// as an edge operator writes them against scanners and toll fraud, 6 on
// User-Agent and 4 on From, none of which matches the generated mix (the
// benchmarks measure their cost, not their drops), and per-source and
// per-prefix rate limits that no client of the mix reaches.
#pragma once

#include <memory>
#include <stdexcept>

#include "siplb/protect/guard.h"
#include "siplb/protect/spec.h"

namespace siplb::bench {

inline protect::PoolProtectionSpec edge_protection_spec(const std::string& pool) {
    protect::PoolProtectionSpec spec;
    spec.name = pool;
    auto rule = [&](const char* name, const char* field, const char* pattern) {
        protect::RuleSpec r;
        r.name = name;
        r.field = field;
        r.pattern = pattern;
        spec.rules.push_back(std::move(r));
    };
    rule("friendly-scanner", "user_agent", "friendly-scanner");
    rule("sipvicious", "user_agent", "sipvicious|sip-scan|sipsak");
    rule("sipcli", "user_agent", "^sipcli/v[0-9]");
    rule("vaxsip", "user_agent", "VaxSIPUserAgent");
    rule("pplsip", "user_agent", "pplsip|sundayddr|iWar");
    rule("empty-probe", "user_agent", "^(test|probe|scan)[ /]?[0-9.]*$");
    rule("premium-caller", "from", "<sip:\\+?(900|976|1900)[0-9]{4,}@");
    rule("extension-probe", "from", "\"[0-9]{2,4}\" <sip:[0-9]{2,4}@[0-9.]+>");
    rule("anonymous-ip", "from",
         "<sip:[0-9]+@[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(:[0-9]+)?>;tag=[0-9]{12,}$");
    rule("blocked-domain", "from", "@(spam|fraud)[a-z0-9-]*\\.(example|invalid)>");
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
