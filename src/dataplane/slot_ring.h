// A bounded single-producer single-consumer ring of fixed-size slots: the
// worker fills a slot in place (no allocation, no copy out of a temporary)
// and publishes it; the control thread reads it in place and releases it.
// Free of DPDK so it is testable on its own.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace siplb::dataplane {

template <class Slot>
class SlotRing {
public:
    // `capacity`: rounded up to a power of two, at least 2.
    explicit SlotRing(uint32_t capacity) {
        uint32_t n = 2;
        while (n < capacity && n < (1u << 30)) n <<= 1;
        mask_ = n - 1;
        slots_ = std::make_unique<Slot[]>(n);
    }
    SlotRing(const SlotRing&) = delete;
    SlotRing& operator=(const SlotRing&) = delete;

    uint32_t capacity() const noexcept { return mask_ + 1; }

    // Producer: the next free slot, or nullptr when the ring is full.
    Slot* reserve() noexcept {
        const uint32_t head = head_.load(std::memory_order_relaxed);
        if (head - tail_.load(std::memory_order_acquire) > mask_) return nullptr;
        return &slots_[head & mask_];
    }
    // Producer: publishes the slot reserve() returned.
    void commit() noexcept { head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

    // Consumer: the oldest published slot, or nullptr.
    const Slot* front() const noexcept {
        const uint32_t tail = tail_.load(std::memory_order_relaxed);
        if (tail == head_.load(std::memory_order_acquire)) return nullptr;
        return &slots_[tail & mask_];
    }
    // Consumer: frees the slot front() returned.
    void pop() noexcept { tail_.store(tail_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

private:
    uint32_t mask_ = 0;
    std::unique_ptr<Slot[]> slots_;
    alignas(64) std::atomic<uint32_t> head_{0};  // producer's
    alignas(64) std::atomic<uint32_t> tail_{0};  // consumer's
};

}  // namespace siplb::dataplane
