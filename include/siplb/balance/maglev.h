// Weighted Maglev lookup table (Eisenbud et al., NSDI 2016, §3.4).
//
// Determinism: the table depends only on the set of (identity, weight) pairs
// and the seed. Backends are sorted by identity (the canonical
// Endpoint::to_string(), so a DNS re-resolution that returns the same
// address:port does not reshuffle anything), each identity is hashed with
// XXH3 to its permutation (offset, skip), and the population order is the
// sorted order. Two processes on two hosts therefore build byte-identical
// tables, which is what lets siptrunk1 and siptrunk2 agree without talking.
//
// Weights: katran-style credit rounds. Every round each backend earns its
// weight in credit; whenever its credit reaches the largest weight it spends
// it and claims its next preferred free slot. A backend of weight 2 thus
// claims twice as many slots as one of weight 1, and the heaviest backend
// claims one slot every round, so population ends after about M/sum(w/wmax)
// rounds. Weight 0 means "no slots" (draining, overloaded, weight 0 config).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "siplb/common/result.h"

namespace siplb::balance {

struct MaglevBackend {
    std::string identity;  // Endpoint::to_string(): "192.0.2.1:5060"
    uint32_t weight = 1;   // 0: takes no slots
};

class MaglevTable {
public:
    static constexpr uint16_t kNone = 0xFFFF;
    static constexpr uint32_t kMaxSize = 1u << 26;  // 128 MiB of slots at most
    static constexpr size_t kMaxBackends = kNone;   // indices 0..65534

    // Pools without a configured size use maglev_table_size() (table_size.h).
    // Validates: size prime, 2 <= size <= kMaxSize, no duplicate identity,
    // at most kMaxBackends backends, at most `size` backends with weight > 0.
    // Input order does not matter.
    static Result<MaglevTable> build(std::span<const MaglevBackend> backends, uint32_t size, uint64_t seed);

    MaglevTable() = default;

    // Index into the backends sorted by identity (byte-wise std::string
    // order), or kNone when no backend has weight. One multiply and one load:
    // the slot is the high 64 bits of hash * size (Lemire's fastrange), which
    // is as uniform as hash % size without a division.
    uint16_t lookup(uint64_t hash) const noexcept {
        return slots_[static_cast<size_t>((static_cast<unsigned __int128>(hash) * size_) >> 64)];
    }
    static uint32_t slot_of(uint64_t hash, uint32_t size) noexcept {
        return static_cast<uint32_t>((static_cast<unsigned __int128>(hash) * size) >> 64);
    }

    uint32_t size() const noexcept { return size_; }
    uint64_t seed() const noexcept { return seed_; }
    bool empty() const noexcept { return participating_ == 0; }
    // Backends that own at least one slot (weight > 0).
    size_t participating() const noexcept { return participating_; }
    // Raw slots (backend indices), for tests and diffing tables.
    std::span<const uint16_t> slots() const noexcept { return slots_; }
    // Slots owned by each backend index (sorted order).
    std::vector<uint32_t> slot_counts(size_t backend_count) const;
    // XXH3 over the assignment slot -> (identity, weight) of the participating
    // backends plus size and seed: equal fingerprints mean equal decisions,
    // whatever weight-0 backends each side also carries.
    uint64_t fingerprint() const noexcept { return fingerprint_; }

    size_t memory_bytes() const noexcept { return slots_.size() * sizeof(uint16_t); }

private:
    // A default table has one empty slot so lookup() needs no branch.
    std::vector<uint16_t> slots_{kNone};
    uint32_t size_ = 1;
    uint64_t seed_ = 0;
    size_t participating_ = 0;
    uint64_t fingerprint_ = 0;
};

}  // namespace siplb::balance
