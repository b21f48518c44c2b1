#include "siplb/balance/table_size.h"

namespace siplb::balance {

uint32_t maglev_table_size(size_t backends) noexcept {
    const uint64_t wanted = static_cast<uint64_t>(backends) * kSlotsPerBackend;
    for (uint32_t rung : kTableSizeLadder)
        if (rung >= wanted) return rung;
    return kMaxAutoTableSize;
}

}  // namespace siplb::balance
