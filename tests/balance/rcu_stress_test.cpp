// QSBR reclamation under real concurrency: a writer publishes objects as
// fast as it can while readers, each on its own CPU where there are
// several, read every word of the current one, report quiescent states and
// now and then go offline and online again (the path whose store-load
// ordering the grace period depends on). Each object carries a checksum of
// its own payload and its destructor overwrites it before the memory is
// freed, so a reader still using an object the writer reclaimed too early
// sees a bad checksum (ASan, in the ASan run, sees the use after free);
// zero are tolerated. Runs SIPLB_STRESS_SECONDS (default 4) seconds;
// scripts/tsan runs it too.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "siplb/balance/rcu.h"
#include "support/stress.h"

namespace {

using siplb::test::pin_to_cpu;
using siplb::test::stress_seconds;

using siplb::balance::RcuPublisher;

struct Sealed {
    explicit Sealed(uint64_t v) {
        for (size_t i = 0; i < words.size(); ++i) words[i] = v * 0x9E3779B97F4A7C15ULL + i;
        sum = seal();
    }
    ~Sealed() {
        // A reader still here after reclamation must notice: break the seal
        // (volatile: stores to an object about to be freed are otherwise dead).
        for (auto& w : words) *static_cast<volatile uint64_t*>(&w) = 0;
        *static_cast<volatile uint64_t*>(&sum) = 1;
    }
    uint64_t seal() const {
        uint64_t s = 0xcbf29ce484222325ULL;
        for (uint64_t w : words) s = (s ^ w) * 0x100000001b3ULL;
        return s;
    }
    std::array<uint64_t, 30> words{};  // several cache lines
    uint64_t sum = 0;
};

TEST(RcuStress, ReadersNeverSeeAReclaimedObject) {
    RcuPublisher<Sealed> pub(std::make_unique<Sealed>(0));
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> reads{0}, bad{0}, rejoins{0};
    const auto run_for = std::chrono::duration<double>(stress_seconds(4.0));

    auto reader = [&](unsigned cpu) {
        pin_to_cpu(cpu);
        auto id = pub.register_reader();
        ASSERT_TRUE(id.ok());
        uint64_t n = 0, b = 0, r = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            for (int burst = 0; burst < 64; ++burst) {
                const Sealed* s = pub.current();
                if (s->seal() != s->sum) ++b;
                ++n;
            }
            pub.quiescent(*id);
            if (n % 4096 == 0) {  // idle for a moment, as a worker without traffic would
                pub.offline(*id);
                std::this_thread::yield();
                pub.online(*id);
                ++r;
            }
        }
        pub.unregister_reader(*id);
        reads += n, bad += b, rejoins += r;
    };

    std::vector<std::thread> readers;
    for (unsigned i = 0; i < 3; ++i) readers.emplace_back(reader, i + 1);
    pin_to_cpu(0);
    uint64_t published = 0;
    const auto end = std::chrono::steady_clock::now() + run_for;
    while (std::chrono::steady_clock::now() < end) {
        pub.publish(std::make_unique<Sealed>(++published));
        // Bound the backlog a descheduled reader can cause on a small machine.
        if (pub.retired_count() > 1024) pub.synchronize();
    }
    stop = true;
    for (auto& t : readers) t.join();
    pub.synchronize();

    std::printf("rcu stress %.1fs: %llu published, %llu freed, %llu reads, %llu offline/online, %llu bad\n",
                run_for.count(), static_cast<unsigned long long>(published),
                static_cast<unsigned long long>(pub.freed_count()), static_cast<unsigned long long>(reads.load()),
                static_cast<unsigned long long>(rejoins.load()), static_cast<unsigned long long>(bad.load()));
    EXPECT_EQ(bad.load(), 0u);
    EXPECT_EQ(pub.freed_count(), published);  // every replaced object was reclaimed
    EXPECT_EQ(pub.retired_count(), 0u);
    EXPECT_GT(published, 1000u);
    EXPECT_GT(rejoins.load(), 10u);
}

}  // namespace
