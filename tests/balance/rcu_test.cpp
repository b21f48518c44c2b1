#include "siplb/balance/rcu.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "siplb/balance/pick.h"
#include "test_keys.h"

namespace siplb::balance {
namespace {

struct Canary {
    static constexpr uint64_t kAlive = 0xA11CEA11CEA11CEull;
    explicit Canary(uint64_t v) : value(v) { ++live; }
    ~Canary() {
        magic = 0xDEADDEADDEADDEADull;
        --live;
    }
    uint64_t magic = kAlive;
    uint64_t value;
    static inline std::atomic<int64_t> live{0};
};

TEST(Qsbr, OnlineReaderHoldsBackReclamationOfflineDoesNot) {
    RcuPublisher<Canary> pub(std::make_unique<Canary>(0));
    auto r = pub.register_reader();
    ASSERT_TRUE(r.ok());
    const Canary* held = pub.current();
    pub.publish(std::make_unique<Canary>(1));
    EXPECT_EQ(pub.retired_count(), 1u);  // reader may still use `held`
    EXPECT_EQ(pub.reclaim(), 0u);
    EXPECT_EQ(held->magic, Canary::kAlive);
    pub.quiescent(*r);
    EXPECT_EQ(pub.reclaim(), 1u);
    EXPECT_EQ(pub.current()->value, 1u);
    pub.offline(*r);
    pub.publish(std::make_unique<Canary>(2));  // offline: freed at once
    EXPECT_EQ(pub.retired_count(), 0u);
    pub.online(*r);
    pub.publish(std::make_unique<Canary>(3));
    EXPECT_EQ(pub.retired_count(), 1u);
    pub.unregister_reader(*r);
    pub.synchronize();
    EXPECT_EQ(pub.retired_count(), 0u);
}

TEST(Qsbr, ReaderSlotsAreBoundedAndReused) {
    QsbrDomain d;
    std::vector<ReaderId> ids;
    for (uint32_t i = 0; i < QsbrDomain::kMaxReaders; ++i) ids.push_back(*d.register_reader());
    EXPECT_FALSE(d.register_reader().ok());
    d.unregister_reader(ids[5]);
    auto again = d.register_reader();
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, 5u);
    EXPECT_EQ(d.registered_readers(), QsbrDomain::kMaxReaders);
}

TEST(Qsbr, ConcurrentReadersAndWriterSwappingThousandsOfTimes) {
    const int64_t live_before = Canary::live.load();
    {
        RcuPublisher<Canary> pub(std::make_unique<Canary>(0));
        std::atomic<bool> stop{false}, bad{false};
        std::atomic<int> ready{0};
        std::vector<std::thread> readers;
        for (int i = 0; i < 3; ++i) {
            readers.emplace_back([&, i] {
                auto id = *pub.register_reader();
                ++ready;
                uint64_t last = 0;
                uint64_t n = 0;
                while (!stop.load(std::memory_order_relaxed)) {
                    const Canary* c = pub.current();
                    // Read twice with some work between: a freed object would
                    // show the poisoned magic (or trip ASan/TSan).
                    if (c->magic != Canary::kAlive || c->value < last) bad = true;
                    last = c->value;
                    if (c->magic != Canary::kAlive) bad = true;
                    if (++n % 4 == 0) pub.quiescent(id);
                    if (i == 0 && n % 1000 == 0) {  // one reader idles now and then
                        pub.offline(id);
                        std::this_thread::yield();
                        pub.online(id);
                    }
                }
                pub.unregister_reader(id);
            });
        }
        while (ready.load() < 3) std::this_thread::yield();
        for (uint64_t v = 1; v <= 5000; ++v) {
            pub.publish(std::make_unique<Canary>(v));
            if (v % 64 == 0) std::this_thread::yield();
        }
        stop = true;
        for (auto& t : readers) t.join();
        pub.synchronize();
        EXPECT_EQ(pub.retired_count(), 0u);
        EXPECT_EQ(pub.current()->value, 5000u);
        EXPECT_FALSE(bad.load());
    }
    EXPECT_EQ(Canary::live.load(), live_before);  // nothing leaked, nothing freed twice
}

// The real thing: workers pick() on DataplaneSnapshots the control thread swaps.
TEST(Qsbr, WorkersPickWhileSnapshotsAreSwapped) {
    auto make_snapshot = [](uint64_t version) {
        PoolSpec spec;
        spec.name = "lund";
        spec.listen = {*Endpoint::parse("198.51.100.10:5060")};
        spec.table_size = 1009;
        for (uint32_t i = 0; i < 8; ++i)
            spec.backends.push_back(
                {testing::backend_endpoint(i), 1, (i + version) % 8 == 0 ? BackendState::down : BackendState::active});
        auto pool = PoolSnapshot::build(spec, version);
        auto snap = DataplaneSnapshot::build({*pool}, version);
        return std::move(snap.value());
    };
    SnapshotPublisher pub(make_snapshot(0));
    auto affinity = std::move(AffinityTable::create(4096).value());
    std::atomic<bool> stop{false}, bad{false};
    std::atomic<int> ready{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < 2; ++w) {
        workers.emplace_back([&, w] {
            auto id = *pub.register_reader();
            ++ready;
            uint64_t h = static_cast<uint64_t>(w) * 0x9E3779B97F4A7C15ull;
            const Endpoint vip = *Endpoint::parse("198.51.100.10:5060");
            while (!stop.load(std::memory_order_relaxed)) {
                const DataplaneSnapshot* snap = pub.current();
                for (int burst = 0; burst < 32; ++burst) {
                    h = h * 6364136223846793005ull + 1442695040888963407ull;
                    auto ref = snap->find_pool_by_vip(vip);
                    if (!ref.pool) {
                        bad = true;
                        continue;
                    }
                    Decision d = pick(*ref.pool, h % 4096, true, 1, affinity.get());
                    if (d.reason == Decision::Reason::no_backend || d.entry->state == BackendState::down) bad = true;
                }
                pub.quiescent(id);
            }
            pub.unregister_reader(id);
        });
    }
    while (ready.load() < 2) std::this_thread::yield();
    for (uint64_t v = 1; v <= 2000; ++v) pub.publish(make_snapshot(v));
    stop = true;
    for (auto& t : workers) t.join();
    pub.synchronize();
    EXPECT_FALSE(bad.load());
    EXPECT_EQ(pub.current()->version(), 2000u);
}

}  // namespace
}  // namespace siplb::balance
