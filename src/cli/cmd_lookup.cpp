// siplbctl lookup: which backend a Call-ID goes to, offline, from the
// config's static backends, through the same SnapshotBuilder and pick() the
// daemon runs (without affinity: a first message's decision).
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "command.h"
#include "siplb/balance/hash.h"
#include "siplb/balance/pick.h"
#include "siplb/balance/snapshot.h"
#include "siplb/config/config.h"
#include "siplb/control/pool_manager.h"
#include "siplb/control/snapshot_builder.h"

namespace siplb::cli {
namespace {

constexpr const char* kUsage = "lookup --config FILE --pool NAME [--key VALUE]... [CALLID...]";

void help(FILE* out) {
    std::fprintf(out,
                 "usage: siplbctl %s\n\n"
                 "Prints CALLID<TAB>BACKEND for each Call-ID (arguments, or one per line on\n"
                 "stdin when none are given), computed from the pool's static backends with\n"
                 "the dataplane's Maglev table. BACKEND is '-' when the pool has no usable\n"
                 "backend.\n\n"
                 "--key VALUE  for a pool balancing on another key than the Call-ID (key =\n"
                 "             from_user, source_ip, header:NAME, ...): prints VALUE<TAB>BACKEND,\n"
                 "             the backend of every new call with that key value (a user, an\n"
                 "             address, a header value). Repeatable. A Call-ID of such a pool\n"
                 "             answers as a message without the key's field would go with\n"
                 "             key_fallback = \"call_id\".\n\n"
                 "Exit status: 0 ok, 1 config or pool error, 2 usage.\n",
                 kUsage);
}

int run_lookup(int argc, char** argv) {
    std::string config_path, pool_name;
    std::vector<std::string> call_ids, key_values;
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        auto value = [&](const char* flag) -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "siplbctl lookup: %s needs a value\n", flag);
                return nullptr;
            }
            return argv[++i];
        };
        if (!std::strcmp(a, "--help") || !std::strcmp(a, "-h")) {
            help(stdout);
            return 0;
        } else if (!std::strcmp(a, "--config") || !std::strcmp(a, "-c")) {
            const char* v = value(a);
            if (!v) return 2;
            config_path = v;
        } else if (!std::strcmp(a, "--pool") || !std::strcmp(a, "-p")) {
            const char* v = value(a);
            if (!v) return 2;
            pool_name = v;
        } else if (!std::strcmp(a, "--key") || !std::strcmp(a, "-k")) {
            const char* v = value(a);
            if (!v) return 2;
            key_values.emplace_back(v);
        } else if (!std::strcmp(a, "--")) {
            for (++i; i < argc; ++i) call_ids.emplace_back(argv[i]);
        } else if (a[0] == '-' && a[1] == '-') {
            std::fprintf(stderr, "siplbctl lookup: unknown option '%s'\n", a);
            help(stderr);
            return 2;
        } else {
            call_ids.emplace_back(a);
        }
    }
    if (config_path.empty() || pool_name.empty()) {
        help(stderr);
        return 2;
    }

    auto cfg = config::load_config(config_path);
    if (!cfg) {
        std::fprintf(stderr, "siplbctl lookup: %s\n", cfg.message().c_str());
        return 1;
    }
    const config::PoolConfig* pc = cfg->find_pool(pool_name);
    if (!pc) {
        std::string known;
        for (const auto& p : cfg->pools) known += (known.empty() ? "" : ", ") + p.name;
        std::fprintf(stderr, "siplbctl lookup: no pool '%s' in %s (pools: %s)\n", pool_name.c_str(),
                     config_path.c_str(), known.empty() ? "none" : known.c_str());
        return 1;
    }
    // The daemon's own path from config to tables: PoolManager state
    // through the SnapshotBuilder (DNS-discovered backends are unknown offline).
    control::PoolManager manager(*cfg);
    control::SnapshotBuilder builder(*cfg);
    auto snapshot = builder.build(manager);
    if (!snapshot) {
        std::fprintf(stderr, "siplbctl lookup: %s\n", snapshot.message().c_str());
        return 1;
    }
    const balance::PoolSnapshot* pool = (*snapshot)->find_pool(pool_name);
    if (pool->usable_backends() == 0)
        std::fprintf(stderr, "siplbctl lookup: pool '%s' has no enabled backend with weight > 0\n", pool_name.c_str());
    const std::string key_name = balance::to_string(pool->key());
    if (!key_values.empty() && pool->keyed_by_call_id())
        std::fprintf(stderr, "siplbctl lookup: pool '%s' balances on the Call-ID: --key values are Call-IDs\n",
                     pool_name.c_str());
    if (!call_ids.empty() && !pool->keyed_by_call_id())
        std::fprintf(stderr,
                     "siplbctl lookup: pool '%s' places new calls by %s (use --key VALUE); a Call-ID answers "
                     "only for messages without that field\n",
                     pool_name.c_str(), key_name.c_str());
    for (const auto& k : key_values) {
        const balance::Decision d = balance::pick(*pool, balance::hash_call_id(k, pool->seed()), true, 0, nullptr);
        std::printf("%s\t%s\n", k.c_str(), d.entry ? d.entry->identity.c_str() : "-");
    }
    if (!key_values.empty() && call_ids.empty()) return std::fflush(stdout) == 0 ? 0 : 1;

    auto answer = [&](const std::string& call_id) {
        const uint64_t h = balance::hash_call_id(call_id, pool->seed());
        const balance::Decision d = balance::pick(*pool, h, true, 0, nullptr);
        std::printf("%s\t%s\n", call_id.c_str(), d.entry ? d.entry->identity.c_str() : "-");
    };
    if (!call_ids.empty()) {
        for (const auto& c : call_ids) answer(c);
    } else {
        std::string line;
        while (std::getline(std::cin, line)) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty()) continue;
            answer(line);
        }
    }
    return std::fflush(stdout) == 0 ? 0 : 1;
}

const CommandRegistrar kRegister({"lookup", kUsage, "backend of each Call-ID from the config (offline)", run_lookup});

}  // namespace
}  // namespace siplb::cli
