// XXH3 compiled inline here so hash_call_id is one call with no PLT hop.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "siplb/balance/hash.h"

namespace siplb::balance {

uint64_t hash_call_id(const void* data, size_t len, uint64_t seed) noexcept {
    return XXH3_64bits_withSeed(data, len, seed);
}

bool is_prime(uint32_t n) noexcept {
    if (n < 2) return false;
    if (n < 4) return true;
    if (n % 2 == 0 || n % 3 == 0) return false;
    for (uint64_t d = 5; d * d <= n; d += 6)
        if (n % d == 0 || n % (d + 2) == 0) return false;
    return true;
}

}  // namespace siplb::balance
