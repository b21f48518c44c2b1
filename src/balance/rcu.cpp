#include "siplb/balance/rcu.h"

#include <chrono>
#include <thread>

namespace siplb::balance {

QsbrDomain::QsbrDomain() = default;

Result<ReaderId> QsbrDomain::register_reader() {
    std::lock_guard lock(register_mutex_);
    for (uint32_t i = 0; i < kMaxReaders; ++i) {
        if (readers_[i].in_use.load(std::memory_order_relaxed)) continue;
        readers_[i].in_use.store(true, std::memory_order_relaxed);
        // Widen the scanned range before going online, so a writer that
        // sees this reader's counter also scans its slot.
        if (i + 1 > high_water_.load(std::memory_order_relaxed)) high_water_.store(i + 1, std::memory_order_seq_cst);
        online(i);
        return ReaderId{i};
    }
    return Result<ReaderId>::fail("QSBR: all " + std::to_string(kMaxReaders) + " reader slots in use");
}

void QsbrDomain::unregister_reader(ReaderId id) noexcept {
    if (id >= kMaxReaders) return;
    std::lock_guard lock(register_mutex_);
    offline(id);
    readers_[id].in_use.store(false, std::memory_order_relaxed);
}

uint64_t QsbrDomain::start_grace_period() noexcept {
    // seq_cst orders the caller's pointer swap before the new token and
    // before the counter loads in passed().
    return token_.fetch_add(1, std::memory_order_seq_cst) + 1;
}

bool QsbrDomain::passed(uint64_t token) const noexcept {
    // seq_cst loads: ordered after the caller's pointer exchange and token
    // increment, against the readers' seq_cst counter stores in online().
    const uint32_t n = high_water_.load(std::memory_order_seq_cst);
    for (uint32_t i = 0; i < n; ++i) {
        const uint64_t c = readers_[i].counter.load(std::memory_order_seq_cst);
        if (c != kOffline && c < token) return false;
    }
    return true;
}

uint32_t QsbrDomain::registered_readers() const noexcept {
    uint32_t n = 0;
    for (const auto& r : readers_) n += r.in_use.load(std::memory_order_relaxed) ? 1 : 0;
    return n;
}

void qsbr_backoff(unsigned attempt) noexcept {
    if (attempt < 16)
        std::this_thread::yield();
    else
        std::this_thread::sleep_for(std::chrono::microseconds(attempt < 64 ? 10 : 200));
}

}  // namespace siplb::balance
