// Quiescent-state-based reclamation (QSBR), the scheme of DPDK's
// rte_rcu_qsbr, in portable C++ atomics so it runs (and is tested under
// ASan/TSan) without EAL.
//
// Readers (worker lcores) load the current pointer with no lock, no write
// and no allocation, and call quiescent() between bursts, when they hold no
// reference into any snapshot. The writer (control thread) swaps the pointer,
// starts a grace period (token += 1) and frees the old object only once
// every online reader has reported a quiescent state at or after that token.
// A reader that blocks or idles goes offline() so it does not hold up
// reclamation, and online() before touching snapshots again.
//
// Differences from rte_rcu_qsbr: register_reader() returns an id and puts
// the reader online at once; reader slots are a fixed array (kMaxReaders).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "siplb/common/result.h"

namespace siplb::balance {

using ReaderId = uint32_t;

class QsbrDomain {
public:
    static constexpr uint32_t kMaxReaders = 128;

    QsbrDomain();
    QsbrDomain(const QsbrDomain&) = delete;
    QsbrDomain& operator=(const QsbrDomain&) = delete;

    // Thread-safe; fails when kMaxReaders readers are registered.
    Result<ReaderId> register_reader();
    void unregister_reader(ReaderId id) noexcept;

    // Reader side, wait-free.
    void quiescent(ReaderId id) noexcept {
        readers_[id].counter.store(token_.load(std::memory_order_acquire), std::memory_order_release);
    }
    void offline(ReaderId id) noexcept { readers_[id].counter.store(kOffline, std::memory_order_release); }
    void online(ReaderId id) noexcept {
        // The counter store must be ordered before this reader's next load of
        // a shared pointer, or a writer could miss it and free under it: a
        // store-load order, which only seq_cst gives. The store, the
        // pointer's load and exchange, and the writer's counter loads are all
        // seq_cst (no standalone fence: ThreadSanitizer models these).
        readers_[id].counter.store(token_.load(std::memory_order_acquire), std::memory_order_seq_cst);
    }

    // Writer side: call after unpublishing an object; returns its token.
    uint64_t start_grace_period() noexcept;
    // True when every online reader has reported at or after `token`.
    bool passed(uint64_t token) const noexcept;
    uint32_t registered_readers() const noexcept;

private:
    static constexpr uint64_t kOffline = 0;
    struct alignas(64) ReaderSlot {
        std::atomic<uint64_t> counter{kOffline};
        std::atomic<bool> in_use{false};
    };
    alignas(64) std::atomic<uint64_t> token_{1};
    ReaderSlot readers_[kMaxReaders];
    std::atomic<uint32_t> high_water_{0};  // slots [0, high_water_) may be in use
    std::mutex register_mutex_;
};

// Publishes immutable objects of type T to QSBR readers. One writer at a
// time (publish/reclaim/synchronize are serialised by a mutex).
template <class T>
class RcuPublisher {
public:
    RcuPublisher() = default;
    explicit RcuPublisher(std::unique_ptr<const T> initial) : current_(initial.release()) {}
    RcuPublisher(const RcuPublisher&) = delete;
    RcuPublisher& operator=(const RcuPublisher&) = delete;
    // Readers must have stopped (unregistered or gone) by now.
    ~RcuPublisher() {
        delete current_.load(std::memory_order_relaxed);
        for (auto& r : retired_) delete r.object;
    }

    Result<ReaderId> register_reader() { return domain_.register_reader(); }
    void unregister_reader(ReaderId id) noexcept { domain_.unregister_reader(id); }
    void quiescent(ReaderId id) noexcept { domain_.quiescent(id); }
    void offline(ReaderId id) noexcept { domain_.offline(id); }
    void online(ReaderId id) noexcept { domain_.online(id); }

    // Reader side: valid until this reader's next quiescent()/offline().
    // nullptr before the first publish.
    // seq_cst (see QsbrDomain::online()): the same plain load as acquire on
    // x86-64 and AArch64.
    const T* current() const noexcept { return current_.load(std::memory_order_seq_cst); }

    // Writer side: swaps in `next`, retires the previous object and frees
    // whatever retired objects are already safe. Never blocks on readers.
    void publish(std::unique_ptr<const T> next) {
        std::lock_guard lock(writer_mutex_);
        const T* old = current_.exchange(next.release(), std::memory_order_seq_cst);
        if (old) retired_.push_back({old, domain_.start_grace_period()});
        reclaim_locked();
    }
    // Frees retired objects whose grace period is over; returns how many.
    size_t reclaim() {
        std::lock_guard lock(writer_mutex_);
        return reclaim_locked();
    }
    // Waits (yielding) until every retired object is freed. Must not be
    // called from a registered, online reader thread (it would wait on itself).
    void synchronize();
    size_t retired_count() const {
        std::lock_guard lock(writer_mutex_);
        return retired_.size();
    }
    // Objects freed since construction: with retired_count(), shows that
    // every replaced snapshot is reclaimed (the soak watches both).
    uint64_t freed_count() const {
        std::lock_guard lock(writer_mutex_);
        return freed_total_;
    }
    QsbrDomain& domain() noexcept { return domain_; }

private:
    struct Retired {
        const T* object;
        uint64_t token;
    };
    size_t reclaim_locked() {
        size_t freed = 0;
        // Tokens are increasing; stop at the first one still in its grace period.
        auto it = retired_.begin();
        while (it != retired_.end() && domain_.passed(it->token)) {
            delete it->object;
            ++it;
            ++freed;
        }
        retired_.erase(retired_.begin(), it);
        freed_total_ += freed;
        return freed;
    }

    QsbrDomain domain_;
    std::atomic<const T*> current_{nullptr};
    mutable std::mutex writer_mutex_;
    std::vector<Retired> retired_;
    uint64_t freed_total_ = 0;
};

void qsbr_backoff(unsigned attempt) noexcept;

template <class T>
void RcuPublisher<T>::synchronize() {
    for (unsigned attempt = 0;; ++attempt) {
        if (reclaim(), retired_count() == 0) return;
        qsbr_backoff(attempt);
    }
}

}  // namespace siplb::balance
