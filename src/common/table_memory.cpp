#include "siplb/common/table_memory.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstring>

namespace siplb::table_memory {

namespace {

bool huge(size_t bytes) noexcept { return bytes >= kHugeThreshold; }
size_t round_up(size_t bytes) noexcept { return (bytes + kHugePage - 1) & ~(kHugePage - 1); }

}  // namespace

size_t reserved_bytes(size_t bytes) noexcept { return huge(bytes) ? round_up(bytes) : bytes; }

void* allocate(size_t bytes, size_t align) {
    if (!huge(bytes)) {
        void* p = ::operator new (bytes, std::align_val_t{align});
        std::memset(p, 0, bytes);
        return p;
    }
    const size_t size = round_up(bytes);
    // Over-map by one huge page and trim, so that the table starts on a
    // 2 MiB boundary (THP only backs aligned 2 MiB extents).
    void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const auto start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
    if (aligned > start) munmap(raw, aligned - start);
    if (const size_t tail = start + size + kHugePage - (aligned + size))
        munmap(reinterpret_cast<void*>(aligned + size), tail);
    // Advice only: a kernel without THP leaves the table on small pages.
    madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);
    return reinterpret_cast<void*>(aligned);
}

void release(void* p, size_t bytes, size_t align) noexcept {
    if (!p) return;
    if (!huge(bytes)) {
        ::operator delete (p, std::align_val_t{align});
        return;
    }
    munmap(p, round_up(bytes));
}

}  // namespace siplb::table_memory
