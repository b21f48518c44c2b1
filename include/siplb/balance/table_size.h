// The Maglev table size a pool gets when its configuration does not set one.
//
// Maglev moves more than the ideal 1/N of the keys when a backend comes or
// goes: filling the table again, permutations collide differently and some
// slots change hands between backends that stayed. That extra shrinks as the
// table grows per backend (Eisenbud et al., NSDI 2016, §5.3 and Fig. 12;
// measured here in bench/balance and bench/harness/disruption): at 100
// backends, adding one moves 1.56/N of the keys at 655 slots per backend,
// 1.23/N at 2621, 1.15/N at 5243 and 1.10/N at 10486.
//
// The size is a function of the backend count alone, and coarse on purpose:
// a table of another size is a different table (every permutation starts
// elsewhere), so a change of size moves almost every key, not 1/N. The
// rungs are the smallest primes at or above a power of two, and a pool takes
// the lowest rung with at least kSlotsPerBackend slots per backend, within
// [kMinAutoTableSize, kMaxAutoTableSize]. With 4096 slots per backend the
// size changes only when the count passes a power of two (16 -> 17, 32 -> 33,
// 64 -> 65, ..., 512 -> 513; past 1024 backends it stays at the cap), and
// every node that sees the same backends derives the same size.
//
// "Backends" means every backend of the pool's spec, configured or
// discovered, whatever its health, state or weight: a backend going down or
// being drained must never resize the table.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace siplb::balance {

// PoolSpec::table_size value meaning "derive it from the backend count".
inline constexpr uint32_t kAutoTableSize = 0;

// K: at 100 backends (rung 2^19, 5243 slots each) adding one moves 1.15/N
// and removing one moves 0.16 % of the other backends' keys; at the top of a
// rung (exactly 4096 slots each) 1.21/N and 0.17 %.
inline constexpr uint32_t kSlotsPerBackend = 4096;

// The ladder: smallest prime >= 2^16, 2^17, ..., 2^22 (checked in tests).
// The floor is the former fixed default (pools of up to 16 backends keep
// their table); the cap bounds memory to 8 MiB per pool (2 bytes a slot)
// and a build to about half a second; pools of 513 and more backends get
// it (more than 1024 get fewer than 4096 slots each).
inline constexpr std::array<uint32_t, 7> kTableSizeLadder = {65537, 131101, 262147, 524309, 1048583, 2097169, 4194319};
inline constexpr uint32_t kMinAutoTableSize = kTableSizeLadder.front();
inline constexpr uint32_t kMaxAutoTableSize = kTableSizeLadder.back();

// Lowest rung >= kSlotsPerBackend * backends, else kMaxAutoTableSize. Always
// greater than `backends` for any count a pool can have (kMaxBackends).
uint32_t maglev_table_size(size_t backends) noexcept;

// `configured` unless it is kAutoTableSize, then maglev_table_size(backends).
inline uint32_t effective_table_size(uint32_t configured, size_t backends) noexcept {
    return configured != kAutoTableSize ? configured : maglev_table_size(backends);
}

}  // namespace siplb::balance
