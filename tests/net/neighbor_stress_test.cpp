// The neighbor table's per-slot seqlock under real concurrency: writer
// threads learn, move (new MAC) and age out far more neighbors than the
// table holds, so slots keep passing from one address to another, while
// reader threads look them up, each on its own CPU where there are several.
// Every MAC carries a checksum of its address and of its own generation
// bytes, and the port is a function of the address, so a reader that pairs
// one neighbor's address with another's MAC or port (a torn read) is
// detected; zero are tolerated. Runs SIPLB_STRESS_SECONDS (default 8)
// seconds; scripts/tsan runs it too. Its window is narrow: with the
// sequence checks removed from lookup() it counted 2 torn reads in 15 s on
// a loaded 2-core host (the affinity test: 117 in 3 s), so run it for
// minutes (SIPLB_STRESS_SECONDS=300) after touching the table.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "siplb/net/neighbor_table.h"
#include "support/stress.h"

namespace {

using siplb::test::mix;
using siplb::test::pin_to_cpu;
using siplb::test::stress_seconds;

using siplb::IpAddress;
using siplb::MacAddress;
using siplb::net::NeighborTable;

uint32_t checksum(uint32_t addr, uint16_t gen) { return static_cast<uint32_t>(mix((uint64_t{addr} << 16) | gen)); }

// bytes 0-1: generation (locally administered: byte 0 = 0x02 | gen bits), 2-5: checksum.
MacAddress mac_for(uint32_t addr, uint16_t gen) {
    gen = static_cast<uint16_t>((gen & 0xFCFF) | 0x0200);
    MacAddress m;
    m.bytes[0] = static_cast<uint8_t>(gen >> 8);
    m.bytes[1] = static_cast<uint8_t>(gen);
    const uint32_t c = checksum(addr, gen);
    for (int i = 0; i < 4; ++i) m.bytes[2 + i] = static_cast<uint8_t>(c >> (8 * i));
    return m;
}

bool mac_matches(uint32_t addr, const MacAddress& m) {
    const uint16_t gen = static_cast<uint16_t>(m.bytes[0] << 8 | m.bytes[1]);
    const uint32_t c = checksum(addr, gen);
    for (int i = 0; i < 4; ++i)
        if (m.bytes[2 + i] != static_cast<uint8_t>(c >> (8 * i))) return false;
    return true;
}

uint16_t port_for(uint32_t addr) { return static_cast<uint16_t>(mix(addr) & 0x3FF); }

TEST(NeighborStress, NoTornReadsWhileWritersLearnMoveAndExpireConcurrently) {
    constexpr uint32_t kAddrs = 96;  // 6x the 16 slots: learning fills the table, aging frees slots for others
    NeighborTable table(16, /*reachable_ms=*/1);
    std::vector<uint32_t> addrs(kAddrs);
    std::vector<IpAddress> ips(kAddrs);
    for (uint32_t i = 0; i < kAddrs; ++i) {
        addrs[i] = 0xC6336400u + i;  // 198.51.100.i
        ips[i] = IpAddress::from_v4_be(__builtin_bswap32(addrs[i]));
    }
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> clock_ms{1};
    std::atomic<uint64_t> learned{0}, expired{0}, lookups{0}, hits{0}, torn{0};
    const auto run_for = std::chrono::duration<double>(stress_seconds(8.0));

    auto writer = [&](unsigned cpu, uint64_t seed, bool ages) {
        pin_to_cpu(cpu);
        uint64_t r = seed, n = 0, freed = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            r = mix(r + 1);
            const uint32_t i = static_cast<uint32_t>(r % kAddrs);
            const uint64_t now = clock_ms.fetch_add(1, std::memory_order_relaxed);
            const auto l =
                table.learn(ips[i], mac_for(addrs[i], static_cast<uint16_t>(r >> 32)), port_for(addrs[i]), false, now);
            n += l == NeighborTable::Learn::inserted || l == NeighborTable::Learn::updated;
            if (ages && (r >> 48) % 8 == 0) freed += table.expire(now);
        }
        learned += n, expired += freed;
    };
    auto reader = [&](unsigned cpu, uint64_t seed) {
        pin_to_cpu(cpu);
        uint64_t r = seed, n = 0, h = 0, bad = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            r = mix(r + 1);
            const uint32_t i = static_cast<uint32_t>(r % kAddrs);
            if (auto e = table.lookup(ips[i])) {
                ++h;
                if (!mac_matches(addrs[i], e->mac) || e->port != port_for(addrs[i])) ++bad;
            }
            ++n;
        }
        lookups += n, hits += h, torn += bad;
    };

    std::vector<std::thread> threads;
    threads.emplace_back(writer, 0, 11, true);
    threads.emplace_back(reader, 1, 12);
    threads.emplace_back(writer, 2, 13, false);
    threads.emplace_back(reader, 3, 14);
    std::this_thread::sleep_for(run_for);
    stop = true;
    for (auto& t : threads) t.join();

    std::printf("neighbor stress %.1fs: %llu learned/moved, %llu aged out, %llu lookups, %llu hits, %llu torn\n",
                run_for.count(), static_cast<unsigned long long>(learned.load()),
                static_cast<unsigned long long>(expired.load()), static_cast<unsigned long long>(lookups.load()),
                static_cast<unsigned long long>(hits.load()), static_cast<unsigned long long>(torn.load()));
    EXPECT_EQ(torn.load(), 0u);
    EXPECT_GT(learned.load(), 1000u);
    EXPECT_GT(expired.load(), 100u);
    EXPECT_GT(hits.load(), 1000u);
}

}  // namespace
