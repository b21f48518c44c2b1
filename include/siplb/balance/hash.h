// Call-ID hashing for consistent hashing. Every balancer node must compute
// the same 64-bit key for the same Call-ID bytes, so this is XXH3-64 with an
// explicit per-pool seed and nothing else (no per-process randomisation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace siplb::balance {

// Default per-pool seed ("SIPLB"); matches config::PoolConfig::seed.
inline constexpr uint64_t kDefaultSeed = 0x5349504c42ull;

// XXH3-64 with seed over exactly the Call-ID span the SIP parser returns.
uint64_t hash_call_id(const void* data, size_t len, uint64_t seed) noexcept;
inline uint64_t hash_call_id(std::string_view call_id, uint64_t seed) noexcept {
    return hash_call_id(call_id.data(), call_id.size(), seed);
}

// Deterministic trial division; table sizes are at most a few million.
bool is_prime(uint32_t n) noexcept;

}  // namespace siplb::balance
