// Balancing core benchmarks. Absolute numbers depend on the machine; read
// them as ratios against the baselines measured in the same run:
//   BM_HashOnly          XXH3 of the Call-ID alone (the floor of any scheme)
//   BM_MaglevLookup/N    hash + Maglev table at the derived size for N
//                        backends (what the dataplane pays); 4096 Call-IDs,
//                        so the slots they hit stay in cache
//   BM_MaglevLookupSpread/N  the same, every lookup a fresh slot anywhere in
//                        the table (each call a different Call-ID): the cost
//                        with the table's memory in play; table_bytes counter
//   BM_MaglevLookupFixed/N   BM_MaglevLookupSpread at 65537, the former
//                        fixed default (the baseline of the two above)
//   BM_HrwLookup/N       hash + rendezvous over N backends
//   BM_JumpLookup/N      hash + jump consistent hashing
//   BM_Pick*             pick() with and without the shared affinity table
//   BM_MaglevBuild/N/M   table construction (M = 0: the derived size), what
//                        the control thread spends per pool change
//   BM_Disruption/algo   keys moved (percent) on removal/addition, as counters
//   BM_DisruptionAuto/N  the same at the derived size for N backends, with
//                        addition as a multiple of 1/N and removal as the
//                        share of the other backends' keys that moved
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "siplb/balance/balance.h"

namespace {

using namespace siplb::balance;

constexpr size_t kCallIds = 4096;

std::string backend_identity(uint32_t i) {
    return "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":5060";
}

// 40-byte Call-IDs, as phones send them.
const std::vector<std::string>& call_ids() {
    static const std::vector<std::string> ids = [] {
        std::mt19937_64 rng(7);
        static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        std::vector<std::string> v(kCallIds);
        for (auto& s : v) {
            s.assign(29, 'x');
            for (auto& c : s) c = kAlphabet[rng() % 36];
            s += "@192.0.2.7";
            s.push_back('0' + static_cast<char>(rng() % 10));
        }
        return v;
    }();
    return ids;
}

std::vector<MaglevBackend> backends(uint32_t n) {
    std::vector<MaglevBackend> v;
    for (uint32_t i = 0; i < n; ++i) v.push_back({backend_identity(i), 1});
    return v;
}

// --- baselines and the three schemes ---------------------------------------

inline uint64_t mix64(uint64_t x) {  // splitmix64 finaliser
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Rendezvous (HRW): the backend with the highest mix(key, backend) wins.
struct Hrw {
    std::vector<uint64_t> ids;  // XXH3 of each identity
    explicit Hrw(const std::vector<MaglevBackend>& b) {
        for (const auto& x : b) ids.push_back(hash_call_id(x.identity, 1));
    }
    size_t pick(uint64_t key) const {
        size_t best = 0;
        uint64_t best_score = 0;
        for (size_t i = 0; i < ids.size(); ++i) {
            const uint64_t s = mix64(key ^ ids[i]);
            if (s > best_score) best_score = s, best = i;
        }
        return best;
    }
};

// Jump consistent hash (Lamping & Veach 2014): buckets 0..n-1.
inline int32_t jump(uint64_t key, int32_t n) {
    int64_t b = -1, j = 0;
    while (j < n) {
        b = j;
        key = key * 2862933555777941757ull + 1;
        j = static_cast<int64_t>((b + 1) * (double(1ll << 31) / double((key >> 33) + 1)));
    }
    return static_cast<int32_t>(b);
}

void BM_HashOnly(benchmark::State& state) {
    const auto& ids = call_ids();
    size_t i = 0;
    for (auto _ : state) {
        const auto& id = ids[i++ & (kCallIds - 1)];
        benchmark::DoNotOptimize(hash_call_id(id.data(), id.size(), kDefaultSeed));
    }
}
BENCHMARK(BM_HashOnly);

void table_counters(benchmark::State& state, const MaglevTable& t) {
    state.counters["table_size"] = t.size();
    state.counters["table_bytes"] = static_cast<double>(t.memory_bytes());
}

void BM_MaglevLookup(benchmark::State& state) {
    const auto& ids = call_ids();
    const auto n = static_cast<uint32_t>(state.range(0));
    auto t = MaglevTable::build(backends(n), maglev_table_size(n), kDefaultSeed).value();
    size_t i = 0;
    for (auto _ : state) {
        const auto& id = ids[i++ & (kCallIds - 1)];
        benchmark::DoNotOptimize(t.lookup(hash_call_id(id.data(), id.size(), kDefaultSeed)));
    }
    table_counters(state, t);
}
BENCHMARK(BM_MaglevLookup)->Arg(10)->Arg(100)->Arg(1000);

// The seed changes every iteration, so each hash lands on an unrelated slot
// of the whole table at the same hashing cost as BM_MaglevLookup.
void lookup_spread(benchmark::State& state, uint32_t size) {
    const auto& ids = call_ids();
    const auto n = static_cast<uint32_t>(state.range(0));
    auto t = MaglevTable::build(backends(n), size, kDefaultSeed).value();
    uint64_t i = 0;
    for (auto _ : state) {
        const auto& id = ids[i & (kCallIds - 1)];
        benchmark::DoNotOptimize(t.lookup(hash_call_id(id.data(), id.size(), kDefaultSeed + i++)));
    }
    table_counters(state, t);
}
void BM_MaglevLookupSpread(benchmark::State& state) {
    lookup_spread(state, maglev_table_size(static_cast<size_t>(state.range(0))));
}
BENCHMARK(BM_MaglevLookupSpread)->Arg(10)->Arg(100)->Arg(1000);
void BM_MaglevLookupFixed(benchmark::State& state) { lookup_spread(state, 65537); }
BENCHMARK(BM_MaglevLookupFixed)->Arg(10)->Arg(100)->Arg(1000);

void BM_HrwLookup(benchmark::State& state) {
    const auto& ids = call_ids();
    Hrw h(backends(static_cast<uint32_t>(state.range(0))));
    size_t i = 0;
    for (auto _ : state) {
        const auto& id = ids[i++ & (kCallIds - 1)];
        benchmark::DoNotOptimize(h.pick(hash_call_id(id.data(), id.size(), kDefaultSeed)));
    }
}
BENCHMARK(BM_HrwLookup)->Arg(100)->Arg(1000);

void BM_JumpLookup(benchmark::State& state) {
    const auto& ids = call_ids();
    const auto n = static_cast<int32_t>(state.range(0));
    size_t i = 0;
    for (auto _ : state) {
        const auto& id = ids[i++ & (kCallIds - 1)];
        benchmark::DoNotOptimize(jump(hash_call_id(id.data(), id.size(), kDefaultSeed), n));
    }
}
BENCHMARK(BM_JumpLookup)->Arg(100)->Arg(1000);

std::shared_ptr<const PoolSnapshot> bench_pool(uint32_t n) {
    PoolSpec spec;
    spec.name = "lund";
    for (uint32_t i = 0; i < n; ++i) spec.backends.push_back({*siplb::Endpoint::parse(backend_identity(i)), 1});
    return PoolSnapshot::build(spec, 1).value();
}

void BM_PickNoAffinity(benchmark::State& state) {
    const auto& ids = call_ids();
    auto pool = bench_pool(100);
    size_t i = 0;
    for (auto _ : state) {
        const auto& id = ids[i++ & (kCallIds - 1)];
        benchmark::DoNotOptimize(pick(*pool, hash_call_id(id.data(), id.size(), kDefaultSeed), true, 10, nullptr));
    }
}
BENCHMARK(BM_PickNoAffinity);

// Steady state of a call: the affinity entry exists (hit, read-only path).
void BM_PickAffinityHit(benchmark::State& state) {
    const auto& ids = call_ids();
    auto pool = bench_pool(100);
    auto table = std::move(AffinityTable::create(1u << 20).value());
    for (const auto& id : ids) pick(*pool, hash_call_id(id, kDefaultSeed), true, 10, table.get());
    size_t i = 0;
    for (auto _ : state) {
        const auto& id = ids[i++ & (kCallIds - 1)];
        benchmark::DoNotOptimize(pick(*pool, hash_call_id(id.data(), id.size(), kDefaultSeed), true, 10, table.get()));
    }
    state.counters["bytes_per_entry"] = AffinityTable::kEntryBytes;
}
BENCHMARK(BM_PickAffinityHit);

// New calls: miss, Maglev, insert (with eviction once the table is full).
void BM_PickAffinityInsert(benchmark::State& state) {
    auto pool = bench_pool(100);
    auto table = std::move(AffinityTable::create(1u << 16).value());
    uint64_t h = 1;
    for (auto _ : state) {
        h = mix64(h + 0x9E3779B97F4A7C15ull);
        benchmark::DoNotOptimize(pick(*pool, h, true, 10, table.get()));
    }
}
BENCHMARK(BM_PickAffinityInsert);

void BM_MaglevBuild(benchmark::State& state) {
    const auto n = static_cast<uint32_t>(state.range(0));
    auto b = backends(n);
    const auto m = effective_table_size(static_cast<uint32_t>(state.range(1)), n);
    for (auto _ : state) benchmark::DoNotOptimize(MaglevTable::build(b, m, kDefaultSeed));
    state.counters["table_size"] = m;
}
BENCHMARK(BM_MaglevBuild)->ArgsProduct({{10, 100, 1000}, {65537, kAutoTableSize}})->Unit(benchmark::kMillisecond);

// --- disruption: percent of keys that change backend -----------------------

enum class Algo { maglev_65537, maglev_655373, hrw, jump };

double moved_pct(Algo algo, uint32_t n, bool add, uint32_t removed_pos) {
    auto before = backends(n);
    auto after = before;
    if (add)
        after.push_back({backend_identity(5000), 1});
    else
        after.erase(after.begin() + removed_pos);
    // For jump, backend k is bucket k of the current list (no identity).
    auto owner = [&](const std::vector<MaglevBackend>& set) {
        std::vector<std::string> sorted;
        for (auto& x : set) sorted.push_back(x.identity);
        std::sort(sorted.begin(), sorted.end());
        std::vector<std::string> out;
        std::mt19937_64 rng(11);
        const uint32_t m = algo == Algo::maglev_655373 ? 655373 : 65537;
        std::optional<MaglevTable> t;
        std::optional<Hrw> hrw;
        if (algo == Algo::maglev_65537 || algo == Algo::maglev_655373) t = MaglevTable::build(set, m, 1).value();
        if (algo == Algo::hrw) hrw.emplace(set);
        for (int i = 0; i < 200000; ++i) {
            const uint64_t k = rng();
            if (t)
                out.push_back(sorted[t->lookup(k)]);
            else if (hrw)
                out.push_back(set[hrw->pick(k)].identity);
            else
                out.push_back(set[static_cast<size_t>(jump(k, static_cast<int32_t>(set.size())))].identity);
        }
        return out;
    };
    auto a = owner(before), b = owner(after);
    size_t moved = 0;
    for (size_t i = 0; i < a.size(); ++i) moved += a[i] != b[i];
    return 100.0 * moved / a.size();
}

void BM_Disruption(benchmark::State& state) {
    const auto algo = static_cast<Algo>(state.range(0));
    double add = 0, remove_mid = 0, remove_last = 0;
    for (auto _ : state) {
        add = moved_pct(algo, 100, true, 0);
        remove_mid = moved_pct(algo, 100, false, 42);
        remove_last = moved_pct(algo, 100, false, 99);
    }
    state.counters["add_moved_pct"] = add;                // ideal 100/101 = 0.99
    state.counters["remove_mid_moved_pct"] = remove_mid;  // ideal 1.00
    state.counters["remove_last_moved_pct"] = remove_last;
}
BENCHMARK(BM_Disruption)
    ->ArgName("algo_maglev65537_maglev655373_hrw_jump")
    ->DenseRange(0, 3)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// Exact shares over the table's slots (each slot is 1/M of all keys): no key
// sampling noise. Adds one backend to n, and removes the middle one.
void BM_DisruptionAuto(benchmark::State& state) {
    const auto n = static_cast<uint32_t>(state.range(0));
    const uint32_t m = maglev_table_size(n);
    auto ids_of = [](std::vector<MaglevBackend> set) {
        std::vector<std::string> v;
        for (auto& b : set) v.push_back(std::move(b.identity));
        std::sort(v.begin(), v.end());
        return v;
    };
    const auto base = backends(n);
    auto more = base;
    more.push_back({backend_identity(5000), 1});
    auto fewer = base;
    const std::string removed = fewer[n / 2].identity;
    fewer.erase(fewer.begin() + n / 2);
    const auto ids = ids_of(base), ids_more = ids_of(more), ids_fewer = ids_of(fewer);
    double add_times_n = 0, remove_others_pct = 0;
    for (auto _ : state) {
        const auto t = MaglevTable::build(base, m, kDefaultSeed).value();
        const auto t_more = MaglevTable::build(more, maglev_table_size(more.size()), kDefaultSeed).value();
        const auto t_fewer = MaglevTable::build(fewer, maglev_table_size(fewer.size()), kDefaultSeed).value();
        if (t_more.size() != m || t_fewer.size() != m) state.SkipWithError("size rung crossed");
        size_t added_moved = 0, others = 0, others_moved = 0;
        for (uint32_t s = 0; s < m; ++s) {
            const std::string& owner = ids[t.slots()[s]];
            added_moved += owner != ids_more[t_more.slots()[s]];
            if (owner == removed) continue;
            ++others;
            others_moved += owner != ids_fewer[t_fewer.slots()[s]];
        }
        add_times_n = static_cast<double>(added_moved) / m * n;
        remove_others_pct = 100.0 * static_cast<double>(others_moved) / static_cast<double>(others);
    }
    state.counters["table_size"] = m;
    state.counters["table_bytes"] = m * 2.0;
    state.counters["add_moved_times_n"] = add_times_n;              // ideal n/(n+1)
    state.counters["remove_others_moved_pct"] = remove_others_pct;  // ideal 0
}
BENCHMARK(BM_DisruptionAuto)->Arg(10)->Arg(100)->Arg(1000)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
