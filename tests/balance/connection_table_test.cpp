#include "siplb/balance/connection_table.h"

#include "siplb/balance/entry_word.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace siplb::balance {
namespace {

using Open = ConnectionTable::Open;
using State = ConnectionTable::State;
using Conn = ConnectionTable::Conn;

std::unique_ptr<ConnectionTable> make(uint32_t capacity, uint32_t sources = 1024) {
    auto t = ConnectionTable::create(capacity, sources);
    EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.message());
    return std::move(t.value());
}

Conn conn(uint32_t backend, uint32_t expiry, uint32_t source = 1, uint8_t vip = 1) {
    Conn c;
    c.backend_id = backend;
    c.expiry_s = expiry;
    c.source = source;
    c.pool_slot = 3;
    c.vip = vip;
    c.state = State::half_open;
    return c;
}

// Keys of one bucket: same low bits, distinct tags.
uint64_t bucket_key(uint64_t bucket, uint64_t n) { return bucket | (n + 1) << 32; }

TEST(ConnectionTable, CapacityValidated) {
    EXPECT_FALSE(ConnectionTable::create(0, 16).ok());
    EXPECT_FALSE(ConnectionTable::create(1000, 16).ok());
    EXPECT_FALSE(ConnectionTable::create(1024, 0).ok());
    EXPECT_FALSE(ConnectionTable::create(1024, 12).ok());
    EXPECT_NE(ConnectionTable::create(1000, 16).message().find("power of two"), std::string::npos);
    auto t = make(1u << 12, 256);
    EXPECT_EQ(t->capacity(), 1u << 12);
    EXPECT_EQ(t->memory_bytes(), (1u << 12) * 32u + 256u * 4u);
}

TEST(ConnectionTable, SynThenDataThenFinThenGrace) {
    auto t = make(1024);
    const uint64_t key = 0xfeedface12345678ull;
    EXPECT_FALSE(t->lookup(key, 100).has_value());
    auto r = t->open(key, conn(7, 130, 42, 2), 100, 0);
    EXPECT_EQ(r.outcome, Open::inserted);
    EXPECT_FALSE(r.displaced.has_value());
    auto c = t->lookup(key, 101);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->backend_id, 7u);
    EXPECT_EQ(c->vip, 2u);
    EXPECT_EQ(c->pool_slot, 3u);
    EXPECT_EQ(c->source, 42u);
    EXPECT_EQ(c->state, State::half_open);
    EXPECT_EQ(t->source_entries(42), 1u);

    // Data: established with the idle timeout.
    EXPECT_EQ(t->update(key, State::established, 3700, 101), State::half_open);
    c = t->lookup(key, 3000);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->state, State::established);
    EXPECT_EQ(c->backend_id, 7u);

    // FIN: the expiry moves back to the grace period.
    EXPECT_EQ(t->update(key, State::closing, 3010, 3000), State::established);
    EXPECT_EQ(t->lookup(key, 3005)->state, State::closing);
    // A late data segment does not reopen it.
    EXPECT_EQ(t->update(key, State::established, 6000, 3005), State::closing);
    EXPECT_EQ(t->lookup(key, 3006)->state, State::closing);
    EXPECT_FALSE(t->lookup(key, 6001).has_value());
}

TEST(ConnectionTable, RetransmittedSynKeepsTheEntry) {
    auto t = make(1024);
    const uint64_t key = 0xabcdef0011223344ull;
    ASSERT_EQ(t->open(key, conn(7, 200), 100, 0).outcome, Open::inserted);
    auto r = t->open(key, conn(9, 300), 101, 0);
    EXPECT_EQ(r.outcome, Open::exists);
    EXPECT_EQ(r.existing.backend_id, 7u);
    EXPECT_EQ(t->lookup(key, 102)->backend_id, 7u);
    EXPECT_EQ(t->source_entries(1), 1u);
}

TEST(ConnectionTable, RstThenNewSynOnTheSamePortReplaces) {
    auto t = make(1024);
    const uint64_t key = 0x5555aaaa5555aaaaull;
    ASSERT_EQ(t->open(key, conn(7, 200), 100, 0).outcome, Open::inserted);
    EXPECT_EQ(t->update(key, State::closing, 110, 101), State::half_open);
    auto r = t->open(key, conn(9, 300), 102, 0);
    EXPECT_EQ(r.outcome, Open::inserted);
    ASSERT_TRUE(r.displaced);
    EXPECT_EQ(r.displaced->state, State::closing);
    EXPECT_EQ(t->lookup(key, 103)->backend_id, 9u);
    EXPECT_EQ(t->source_entries(1), 1u);
}

TEST(ConnectionTable, IdleTimeoutAndSweep) {
    auto t = make(64);
    for (uint64_t i = 0; i < 20; ++i)
        ASSERT_EQ(t->open(i * 0x9E3779B97F4A7C15ull, conn(1, 150, 5), 100, 0).outcome, Open::inserted);
    EXPECT_EQ(t->count_live(120), 20u);
    EXPECT_EQ(t->source_entries(5), 20u);
    std::vector<Conn> removed;
    // Not expired yet: a full sweep removes nothing.
    EXPECT_EQ(t->sweep(149, t->bucket_count(), [&](const Conn& c) { removed.push_back(c); }), 0u);
    EXPECT_EQ(t->sweep(150, t->bucket_count(), [&](const Conn& c) { removed.push_back(c); }), 20u);
    EXPECT_EQ(removed.size(), 20u);
    EXPECT_EQ(removed[0].backend_id, 1u);
    EXPECT_EQ(t->count_live(120), 0u);
    EXPECT_EQ(t->source_entries(5), 0u);
    EXPECT_FALSE(t->lookup(0, 100).has_value());
}

TEST(ConnectionTable, EvictsOnlyHalfOpenConnections) {
    auto t = make(64);  // 16 buckets of 4
    const uint64_t b = 5;
    // Three established, one half-open.
    for (uint64_t n = 0; n < 3; ++n) {
        ASSERT_EQ(t->open(bucket_key(b, n), conn(uint32_t(n), 1000 + uint32_t(n)), 100, 0).outcome, Open::inserted);
        ASSERT_TRUE(t->update(bucket_key(b, n), State::established, 5000, 100));
    }
    ASSERT_EQ(t->open(bucket_key(b, 3), conn(3, 130), 100, 0).outcome, Open::inserted);
    // A fifth connection displaces the half-open one.
    auto r = t->open(bucket_key(b, 4), conn(4, 140), 101, 0);
    EXPECT_EQ(r.outcome, Open::evicted);
    ASSERT_TRUE(r.displaced);
    EXPECT_EQ(r.displaced->backend_id, 3u);
    EXPECT_FALSE(t->lookup(bucket_key(b, 3), 102));
    // Mark it established too: now the bucket is full of established connections.
    ASSERT_TRUE(t->update(bucket_key(b, 4), State::established, 5000, 102));
    EXPECT_EQ(t->open(bucket_key(b, 5), conn(5, 150), 103, 0).outcome, Open::bucket_full);
    for (uint64_t n : {0, 1, 2, 4}) EXPECT_TRUE(t->lookup(bucket_key(b, n), 104)) << n;
    // Once one of them expires its slot is reused (reported as displaced).
    auto late = t->open(bucket_key(b, 5), conn(5, 6000), 5000, 0);
    EXPECT_EQ(late.outcome, Open::inserted);
    EXPECT_TRUE(late.displaced);
}

TEST(ConnectionTable, FullTableKeepsEstablishedConnections) {
    auto t = make(256);
    std::vector<uint64_t> keys;
    for (uint64_t i = 0; keys.size() < 256 && i < 100000; ++i) {
        const uint64_t k = (i + 1) * 0x9E3779B97F4A7C15ull;
        auto r = t->open(k, conn(1, 10000, uint32_t(i)), 100, 0);
        if (r.outcome == Open::inserted) {
            keys.push_back(k);
            ASSERT_TRUE(t->update(k, State::established, 10000, 100));
        }
    }
    ASSERT_EQ(keys.size(), 256u);
    EXPECT_EQ(t->count_live(101), 256u);
    size_t full = 0;
    for (uint64_t i = 0; i < 1000; ++i)
        full += t->open(0xdead0000ull + i * 0x9E3779B97F4A7C15ull, conn(2, 10000, 77), 101, 0).outcome ==
                Open::bucket_full;
    EXPECT_EQ(full, 1000u);
    for (uint64_t k : keys) ASSERT_EQ(t->lookup(k, 102)->backend_id, 1u);
}

TEST(ConnectionTable, PerSourceCap) {
    auto t = make(4096, 256);
    size_t inserted = 0, capped = 0;
    for (uint64_t i = 0; i < 100; ++i) {
        const auto o = t->open((i + 1) * 0x9E3779B97F4A7C15ull, conn(1, 1000, 9), 100, 10).outcome;
        inserted += o == Open::inserted;
        capped += o == Open::source_cap;
    }
    EXPECT_EQ(inserted, 10u);
    EXPECT_EQ(capped, 90u);
    EXPECT_EQ(t->source_entries(9), 10u);
    // Another source is not affected.
    EXPECT_EQ(t->open(0x1234567ull, conn(1, 1000, 10), 100, 10).outcome, Open::inserted);
    // As the source's entries go, it may open again.
    t->sweep(1000, t->bucket_count(), [](const Conn&) {});
    EXPECT_EQ(t->source_entries(9), 0u);
    EXPECT_EQ(t->open(0x7654321ull, conn(1, 2000, 9), 1000, 10).outcome, Open::inserted);
}

// Concurrent writers and readers: a reader never sees a torn entry (backend
// id and VIP always belong together).
// A reader trusts what it read between two equal loads of the word, so a
// slot's word must not come back while it is rewritten: 16383 rewrites of
// the same key and extra byte all give words the reader tells apart.
TEST(EntryWord, VersionOutlastsThousandsOfRewrites) {
    using namespace entry_word;
    const uint64_t tag = tag_of(0x0123456789abcdefull);
    const uint64_t start = next_word(0, tag, 0xA5);
    EXPECT_EQ(start & kTagMask, tag);
    EXPECT_EQ(extra_of(start), 0xA5);
    EXPECT_EQ(start & kBusy, 0u);
    uint64_t w = start;
    for (int i = 1; i < 16384; ++i) {
        w = next_word(w | kBusy, tag, 0xA5);  // writers bump the claimed word
        ASSERT_NE(w, start) << i;
        ASSERT_EQ(w & kBusy, 0u);
        ASSERT_EQ(extra_of(w), 0xA5);
        ASSERT_EQ(w & kTagMask, tag);
    }
    EXPECT_EQ(tag_of(0x123), uint64_t{1} << 24);  // a key without tag bits still marks the slot used
}

TEST(ConnectionTable, ConcurrentReadersSeeWholeEntries) {
    auto t = make(64);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> torn{0};
    const uint64_t key = 0x42ull << 32 | 3;
    std::thread writer([&] {
        for (uint32_t i = 0; i < 200000; ++i) {
            Conn c = conn(i, 1u << 30, 1, static_cast<uint8_t>(i & 0xFF));
            c.pool_slot = static_cast<uint16_t>(i & 0xFFFF);
            t->open(key, c, 100, 0);
            t->update(key, State::closing, 1u << 30, 100);
        }
        stop = true;
    });
    std::thread reader([&] {
        while (!stop) {
            if (auto c = t->lookup(key, 100))
                if ((c->backend_id & 0xFF) != c->vip || (c->backend_id & 0xFFFF) != c->pool_slot) ++torn;
        }
    });
    writer.join();
    reader.join();
    EXPECT_EQ(torn.load(), 0u);
}

}  // namespace
}  // namespace siplb::balance
