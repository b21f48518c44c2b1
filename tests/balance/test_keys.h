// Shared test fixtures: a million random Call-IDs hashed once per process.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "siplb/balance/hash.h"
#include "siplb/common/endpoint.h"

namespace siplb::balance::testing {

inline std::string random_call_id(std::mt19937_64& rng) {
    static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    std::string s(32, 'x');
    for (auto& c : s) c = kAlphabet[rng() % (sizeof kAlphabet - 1)];
    return s + "@192.0.2.7";  // 42 bytes, like a typical phone's Call-ID
}

inline const std::vector<uint64_t>& million_call_hashes() {
    static const std::vector<uint64_t> hashes = [] {
        std::mt19937_64 rng(20161);
        std::vector<uint64_t> v(1'000'000);
        for (auto& h : v) h = hash_call_id(random_call_id(rng), kDefaultSeed);
        return v;
    }();
    return hashes;
}

// "10.0.X.Y:5060" backends, i in [0, 65535).
inline std::string backend_identity(uint32_t i) {
    return "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":5060";
}
inline Endpoint backend_endpoint(uint32_t i) { return *Endpoint::parse(backend_identity(i)); }

}  // namespace siplb::balance::testing
