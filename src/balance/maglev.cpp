#include "siplb/balance/maglev.h"

#include <xxhash.h>

#include <algorithm>
#include <numeric>

#include "siplb/balance/hash.h"

namespace siplb::balance {
namespace {

// Seeds for the two permutation hashes (offset, skip), derived from the pool
// seed so that pools with different seeds get unrelated tables.
constexpr uint64_t kOffsetSalt = 0x6f66667365746d67ull;  // "offsetmg"
constexpr uint64_t kSkipSalt = 0x736b69706d61676cull;    // "skipmagl"

}  // namespace

Result<MaglevTable> MaglevTable::build(std::span<const MaglevBackend> backends, uint32_t size, uint64_t seed) {
    if (size < 2 || size > kMaxSize)
        return Result<MaglevTable>::fail("table size " + std::to_string(size) + " out of range 2.." +
                                         std::to_string(kMaxSize));
    if (!is_prime(size))
        return Result<MaglevTable>::fail("table size " + std::to_string(size) + " is not prime (e.g. 65537, 655373)");
    if (backends.size() > kMaxBackends)
        return Result<MaglevTable>::fail("too many backends: " + std::to_string(backends.size()) + " (at most " +
                                         std::to_string(kMaxBackends) + ")");

    std::vector<uint32_t> order(backends.size());
    std::iota(order.begin(), order.end(), 0u);
    std::sort(order.begin(), order.end(),
              [&](uint32_t a, uint32_t b) { return backends[a].identity < backends[b].identity; });
    for (size_t i = 1; i < order.size(); ++i)
        if (backends[order[i]].identity == backends[order[i - 1]].identity)
            return Result<MaglevTable>::fail("duplicate backend '" + backends[order[i]].identity + "'");

    // Participants, in sorted order, with their permutation state.
    struct Perm {
        uint16_t index;  // sorted index
        uint32_t weight;
        uint32_t pos;  // next preferred slot
        uint32_t skip;
        uint64_t credit;
    };
    std::vector<Perm> perms;
    uint32_t max_weight = 0;
    for (size_t i = 0; i < order.size(); ++i) {
        const auto& b = backends[order[i]];
        if (b.weight == 0) continue;
        const uint64_t h1 = XXH3_64bits_withSeed(b.identity.data(), b.identity.size(), seed ^ kOffsetSalt);
        const uint64_t h2 = XXH3_64bits_withSeed(b.identity.data(), b.identity.size(), seed ^ kSkipSalt);
        perms.push_back({static_cast<uint16_t>(i), b.weight, static_cast<uint32_t>(h1 % size),
                         static_cast<uint32_t>(h2 % (size - 1) + 1), 0});
        max_weight = std::max(max_weight, b.weight);
    }
    if (perms.size() > size)
        return Result<MaglevTable>::fail("table size " + std::to_string(size) + " is smaller than the " +
                                         std::to_string(perms.size()) + " weighted backends");

    MaglevTable t;
    t.size_ = size;
    t.seed_ = seed;
    t.participating_ = perms.size();
    t.slots_.assign(size, kNone);

    // Occupancy as a bitmap: filling the last free slots takes ~M ln M
    // probes in total, and probing M/8 bytes of bits (in L2 up to M = 2^24)
    // instead of 2M bytes of slots is what keeps a 4M-slot build from
    // paying a cache miss per probe.
    std::vector<uint64_t> taken((size + 63) / 64, 0);
    uint32_t filled = 0;
    while (!perms.empty() && filled < size) {
        for (auto& p : perms) {
            p.credit += p.weight;
            if (p.credit < max_weight) continue;
            p.credit -= max_weight;
            // Walk this backend's permutation to its next free slot. Each
            // permutation visits every slot once (size prime, 0 < skip < size).
            uint32_t pos = p.pos;
            while (taken[pos >> 6] >> (pos & 63) & 1) {
                pos += p.skip;
                if (pos >= size) pos -= size;
            }
            taken[pos >> 6] |= uint64_t{1} << (pos & 63);
            t.slots_[pos] = p.index;
            pos += p.skip;
            if (pos >= size) pos -= size;
            p.pos = pos;
            if (++filled == size) break;
        }
    }

    // Fingerprint of the assignment: slots renumbered to participant order,
    // then the participants' (identity, weight), size and seed.
    std::vector<uint16_t> compact(order.size(), kNone);
    for (size_t k = 0; k < perms.size(); ++k) compact[perms[k].index] = static_cast<uint16_t>(k);
    XXH3_state_t* st = XXH3_createState();
    XXH3_64bits_reset_withSeed(st, 0);
    uint16_t chunk[4096];
    for (uint32_t off = 0; off < size; off += 4096) {
        const uint32_t n = std::min<uint32_t>(4096, size - off);
        for (uint32_t j = 0; j < n; ++j) {
            const uint16_t s = t.slots_[off + j];
            chunk[j] = s == kNone ? kNone : compact[s];
        }
        XXH3_64bits_update(st, chunk, n * sizeof(uint16_t));
    }
    for (const auto& p : perms) {
        const auto& id = backends[order[p.index]].identity;
        XXH3_64bits_update(st, id.data(), id.size() + 0);
        const uint8_t sep = 0;
        XXH3_64bits_update(st, &sep, 1);
        XXH3_64bits_update(st, &p.weight, sizeof p.weight);
    }
    XXH3_64bits_update(st, &size, sizeof size);
    XXH3_64bits_update(st, &seed, sizeof seed);
    t.fingerprint_ = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return t;
}

std::vector<uint32_t> MaglevTable::slot_counts(size_t backend_count) const {
    std::vector<uint32_t> counts(backend_count, 0);
    for (uint16_t s : slots_)
        if (s != kNone && s < backend_count) ++counts[s];
    return counts;
}

}  // namespace siplb::balance
