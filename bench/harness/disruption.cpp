// disruption: fraction of calls that change backend when one backend is
// removed from, or added to, a pool of N, next to the ideal 1/N
// (removal) and 1/(N+1) (addition). Keys are the Call-IDs of a generated
// SIP mix plus synthetic ones, hashed with XXH3 as the balancers do.
//
//   disruption --backends 2,100,1000 [--keys 200000]
// Prints one JSON document on stdout.
#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_set>
#include <vector>

#include "sip_mix.h"

using namespace siplb::bench;

namespace {

// Backend choice for a key hash, over the backend identities `ids`.
// Jump hash only supports removing the last bucket, so the removal
// scenario for it removes the last backend (the best case it can offer;
// an arbitrary removal would renumber buckets).
uint32_t choose(uint64_t h, const std::vector<uint32_t>& ids) {
    return ids[jump_hash(h, static_cast<uint32_t>(ids.size()))];
}

}  // namespace

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
                if (v < 2 || v > 65536) { std::fprintf(stderr, "disruption: bad backend count\n"); return 2; }
                sizes.push_back(static_cast<uint32_t>(v));
                p = c + 1;
            }
        } else if (a == "--keys" && i + 1 < argc) {
            nkeys = std::strtoul(argv[++i], nullptr, 10);
            if (nkeys == 0 || nkeys > 10000000) { std::fprintf(stderr, "disruption: bad --keys\n"); return 2; }
        } else {
            std::fprintf(stderr, "usage: disruption [--backends 2,100,1000] [--keys N]\n");
            return 2;
        }
    }
    // Call-IDs: from the SIP mix (realistic shapes), then synthetic.
    std::vector<uint64_t> keys;
    std::unordered_set<uint64_t> seen;
    for (auto& m : build_message_mix(std::min<size_t>(nkeys, 50000), 7, true)) {
        auto cid = find_call_id(m);
        uint64_t h = XXH3_64bits_withSeed(cid.data(), cid.size(), 0x5349504c42ull);
        if (!cid.empty() && seen.insert(h).second) keys.push_back(h);
    }
    for (uint64_t i = 0; keys.size() < nkeys; ++i) {
        std::string cid = std::to_string(i) + "-synthetic@bench.invalid";
        keys.push_back(XXH3_64bits_withSeed(cid.data(), cid.size(), 0x5349504c42ull));
    }
    std::printf("{\"algorithm\": \"xxh3+jump\", \"source\": \"harness\", \"keys\": %zu, \"results\": [", keys.size());
    for (size_t si = 0; si < sizes.size(); ++si) {
        uint32_t n = sizes[si];
        std::vector<uint32_t> ids(n), fewer, more;
        for (uint32_t i = 0; i < n; ++i) ids[i] = i;
        fewer.assign(ids.begin(), ids.end() - 1);
        more = ids;
        more.push_back(n);
        size_t moved_rm = 0, moved_add = 0;
        for (uint64_t h : keys) {
            uint32_t b = choose(h, ids);
            if (choose(h, fewer) != b) ++moved_rm;
            if (choose(h, more) != b) ++moved_add;
        }
        double k = static_cast<double>(keys.size());
        std::printf("%s{\"backends\": %u, \"removal_moved\": %.5f, \"removal_ideal\": %.5f, "
                    "\"addition_moved\": %.5f, \"addition_ideal\": %.5f}",
                    si ? ", " : "", n, static_cast<double>(moved_rm) / k, 1.0 / n,
                    static_cast<double>(moved_add) / k, 1.0 / (n + 1));
    }
    std::printf("]}\n");
    return 0;
}
