// disruption: fraction of calls that change backend when one backend is
// removed from, or added to, a pool of N, next to the ideal 1/N
// (removal) and 1/(N+1) (addition). Keys are the Call-IDs of a generated
// SIP mix plus synthetic ones, hashed with XXH3 as the balancers do.
//
//   disruption --backends 2,100,1000 [--keys 200000]
// Prints one JSON document on stdout. The choice is siplb's Maglev table
// (siplb_balance); the removed backend is one in the middle.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_set>
#include <vector>

#include "sip_mix.h"
#include "siplb/balance/affinity.h"

using namespace siplb::bench;

int main(int argc, char** argv) {
    std::vector<uint32_t> sizes = {2, 100, 1000};
    size_t nkeys = 200000;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--backends" && i + 1 < argc) {
            sizes.clear();
            std::string s = argv[++i];
            for (size_t p = 0; p < s.size();) {
                size_t c = s.find(',', p);
                if (c == std::string::npos) c = s.size();
                unsigned long v = std::strtoul(s.substr(p, c - p).c_str(), nullptr, 10);
                if (v < 2 || v > 65536) {
                    std::fprintf(stderr, "disruption: bad backend count\n");
                    return 2;
                }
                sizes.push_back(static_cast<uint32_t>(v));
                p = c + 1;
            }
        } else if (a == "--keys" && i + 1 < argc) {
            nkeys = std::strtoul(argv[++i], nullptr, 10);
            if (nkeys == 0 || nkeys > 10000000) {
                std::fprintf(stderr, "disruption: bad --keys\n");
                return 2;
            }
        } else {
            std::fprintf(stderr, "usage: disruption [--backends 2,100,1000] [--keys N]\n");
            return 2;
        }
    }
    // Call-IDs: from the SIP mix (realistic shapes), then synthetic.
    std::vector<std::string> call_ids;
    std::unordered_set<std::string> seen;
    for (auto& m : build_message_mix(std::min<size_t>(nkeys, 50000), 7, true)) {
        auto cid = std::string(find_call_id(m));
        if (!cid.empty() && seen.insert(cid).second) call_ids.push_back(cid);
    }
    for (uint64_t i = 0; call_ids.size() < nkeys; ++i)
        call_ids.push_back(std::to_string(i) + "-synthetic@bench.invalid");
    const uint64_t seed = 0x5349504c42ull;
    std::printf("{\"algorithm\": \"%s\", \"keys\": %zu", BackendChooser::algorithm(), call_ids.size());
    std::printf(", \"affinity_bytes_per_dialog\": %zu", siplb::balance::AffinityTable::kEntryBytes);
    std::printf(", \"results\": [");
    for (size_t si = 0; si < sizes.size(); ++si) {
        uint32_t n = sizes[si];
        std::vector<std::string> ids, fewer, more;
        for (uint32_t i = 0; i < n; ++i)
            ids.push_back("203.0.113." + std::to_string(1 + i % 250) + ":" + std::to_string(5060 + i / 250));
        uint32_t removed = n / 2;
        for (uint32_t i = 0; i < n; ++i)
            if (i != removed) fewer.push_back(ids[i]);
        more = ids;
        more.push_back("203.0.113.254:6000");
        BackendChooser c_all(ids, seed), c_fewer(fewer, seed), c_more(more, seed);
        if (!c_all.ok() || !c_fewer.ok() || !c_more.ok()) {
            std::fprintf(stderr, "disruption: cannot build tables for %u backends\n", n);
            return 1;
        }
        size_t moved_rm = 0, moved_add = 0;
        for (auto& cid : call_ids) {
            const std::string& b = ids[c_all.pick(cid)];
            if (fewer[c_fewer.pick(cid)] != b) ++moved_rm;
            if (more[c_more.pick(cid)] != b) ++moved_add;
        }
        double k = static_cast<double>(call_ids.size());
        std::printf(
            "%s{\"backends\": %u, \"removal_moved\": %.5f, \"removal_ideal\": %.5f, "
            "\"addition_moved\": %.5f, \"addition_ideal\": %.5f}",
            si ? ", " : "", n, static_cast<double>(moved_rm) / k, 1.0 / n, static_cast<double>(moved_add) / k,
            1.0 / (n + 1));
    }
    std::printf("]}\n");
    return 0;
}
