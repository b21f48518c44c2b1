// disruption: fraction of calls that change backend when one backend is
// removed from, or added to, a pool of N, next to the ideal 1/N
// (removal) and 1/(N+1) (addition). Keys are the Call-IDs of a generated
// SIP mix plus synthetic ones, hashed with XXH3 as the balancers do.
//
//   disruption --backends 2,100,1000 [--keys 200000] [--table-size auto|PRIME]
// Prints one JSON document on stdout. The choice is siplb's Maglev table
// (siplb_balance) at the size siplb gives the pool (derived from the backend
// count unless --table-size fixes it; a set one larger or smaller may land on
// another rung, see balance/table_size.h); the removed backend is one in the
// middle. Per backend count also: the table's size and bytes, its build time
// (the control thread's work per pool change), addition as a multiple of 1/N
// and the share of the other backends' calls that a removal moved.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "sip_mix.h"
#include "siplb/balance/affinity.h"
#include "siplb/balance/table_size.h"

using namespace siplb::bench;

int main(int argc, char** argv) {
    std::vector<uint32_t> sizes = {2, 100, 1000};
    size_t nkeys = 200000;
    uint32_t table_size = siplb::balance::kAutoTableSize;
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
        } else if (a == "--table-size" && i + 1 < argc) {
            const std::string v = argv[++i];
            table_size = v == "auto" ? siplb::balance::kAutoTableSize
                                     : static_cast<uint32_t>(std::strtoul(v.c_str(), nullptr, 10));
            if (v != "auto" && table_size < 2) {
                std::fprintf(stderr, "disruption: bad --table-size\n");
                return 2;
            }
        } else {
            std::fprintf(stderr, "usage: disruption [--backends 2,100,1000] [--keys N] [--table-size auto|PRIME]\n");
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
        using siplb::balance::effective_table_size;
        const uint32_t size = effective_table_size(table_size, ids.size());
        const auto t0 = std::chrono::steady_clock::now();
        auto c_all = std::make_unique<BackendChooser>(ids, seed, size);
        const double build_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        BackendChooser c_fewer(fewer, seed, effective_table_size(table_size, fewer.size()));
        BackendChooser c_more(more, seed, effective_table_size(table_size, more.size()));
        if (!c_all->ok() || !c_fewer.ok() || !c_more.ok()) {
            std::fprintf(stderr, "disruption: cannot build tables for %u backends\n", n);
            return 1;
        }
        size_t moved_rm = 0, moved_add = 0, others = 0, others_moved = 0;
        for (auto& cid : call_ids) {
            const std::string& b = ids[c_all->pick(cid)];
            const bool rm_moved = fewer[c_fewer.pick(cid)] != b;
            moved_rm += rm_moved;
            if (b != ids[removed]) {
                ++others;
                others_moved += rm_moved;
            }
            if (more[c_more.pick(cid)] != b) ++moved_add;
        }
        double k = static_cast<double>(call_ids.size());
        std::printf(
            "%s{\"backends\": %u, \"table_size\": %u, \"table_bytes\": %zu, \"build_ms\": %.2f, "
            "\"removal_moved\": %.5f, \"removal_ideal\": %.5f, \"removal_others_moved\": %.5f, "
            "\"addition_moved\": %.5f, \"addition_ideal\": %.5f, \"addition_times_n\": %.3f}",
            si ? ", " : "", n, size, size * sizeof(uint16_t), build_ms, static_cast<double>(moved_rm) / k, 1.0 / n,
            others ? static_cast<double>(others_moved) / static_cast<double>(others) : 0.0,
            static_cast<double>(moved_add) / k, 1.0 / (n + 1), static_cast<double>(moved_add) / k * n);
    }
    std::printf("]}\n");
    return 0;
}
