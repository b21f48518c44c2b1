// Memory for the big tables that workers probe at random: dialog affinity,
// TCP connections, rate-limit buckets and the rule memo.
//
// Why not `new T[n]`: with 4 KiB pages a random probe of a table of several
// MiB misses the TLB nearly every time (a 16 MiB affinity table spans 4096
// pages, more than the second-level TLB holds), and the page walk comes on
// top of the cache miss the prefetches were meant to hide. Tables of at
// least kHugeThreshold are therefore mapped 2 MiB-aligned, rounded up to
// whole 2 MiB pages, and advised as transparent huge pages (MADV_HUGEPAGE,
// which the Debian kernel honours in its default `madvise` mode). Where THP
// is off the advice is ignored and the table works as before, on small
// pages. Smaller tables come from the C++ allocator.
//
// The lower layers allocate with this instead of DPDK's hugepage heap so
// that they keep working (and are tested) without EAL.
//
// Allocation happens on the control thread (table creation); every element
// is value-initialised, which also faults the pages in there rather than on
// a worker's first probe.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace siplb {

namespace table_memory {

inline constexpr size_t kHugePage = size_t{2} << 20;
// From one huge page up: the rounding then never costs more than part of
// one page per table, and smaller tables keep their size.
inline constexpr size_t kHugeThreshold = kHugePage;

// `bytes` of zeroed memory, `align`-aligned (at most 4096); huge-page
// backed when bytes >= kHugeThreshold. Throws std::bad_alloc like new.
void* allocate(size_t bytes, size_t align);
void release(void* p, size_t bytes, size_t align) noexcept;
// The bytes allocate() reserves for a request of `bytes` (the tables' memory_bytes()).
size_t reserved_bytes(size_t bytes) noexcept;

}  // namespace table_memory

// A fixed-size array of trivially destructible elements in table memory,
// starting on a cache line.
template <class T>
class TableArray {
    static_assert(std::is_trivially_destructible_v<T>, "table elements are never destroyed one by one");

public:
    TableArray() = default;
    explicit TableArray(size_t n) : n_(n) {
        if (n == 0) return;
        p_ = static_cast<T*>(table_memory::allocate(n * sizeof(T), kAlign));
        std::uninitialized_value_construct_n(p_, n);
    }
    ~TableArray() { reset(); }
    TableArray(TableArray&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    TableArray& operator=(TableArray&& o) noexcept {
        if (this != &o) {
            reset();
            p_ = std::exchange(o.p_, nullptr);
            n_ = std::exchange(o.n_, 0);
        }
        return *this;
    }
    TableArray(const TableArray&) = delete;
    TableArray& operator=(const TableArray&) = delete;

    T& operator[](size_t i) noexcept { return p_[i]; }
    const T& operator[](size_t i) const noexcept { return p_[i]; }
    T* get() noexcept { return p_; }
    const T* get() const noexcept { return p_; }
    size_t size() const noexcept { return n_; }
    explicit operator bool() const noexcept { return p_ != nullptr; }

private:
    static constexpr size_t kAlign = alignof(T) > 64 ? alignof(T) : 64;
    void reset() noexcept {
        if (p_) table_memory::release(p_, n_ * sizeof(T), kAlign);
        p_ = nullptr;
        n_ = 0;
    }
    T* p_ = nullptr;
    size_t n_ = 0;
};

}  // namespace siplb
