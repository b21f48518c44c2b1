#include "siplb/common/table_memory.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <string>

namespace siplb {
namespace {

struct Slot {
    uint64_t key = 0;
    uint32_t value = 7;  // value-initialised, not only zeroed
    uint32_t pad = 0;
};

TEST(TableArray, SmallTablesAreZeroedAndLineAligned) {
    TableArray<Slot> t(100);
    ASSERT_TRUE(t);
    EXPECT_EQ(t.size(), 100u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.get()) % 64, 0u);
    for (size_t i = 0; i < t.size(); ++i) {
        EXPECT_EQ(t[i].key, 0u);
        EXPECT_EQ(t[i].value, 7u);
    }
    EXPECT_EQ(table_memory::reserved_bytes(100 * sizeof(Slot)), 100 * sizeof(Slot));
    // Below one huge page nothing is rounded up.
    EXPECT_EQ(table_memory::reserved_bytes(size_t{1} << 20), size_t{1} << 20);
    EXPECT_EQ(table_memory::reserved_bytes(table_memory::kHugePage), table_memory::kHugePage);
}

TEST(TableArray, LargeTablesStartOnAHugePage) {
    const size_t n = (size_t{3} << 20) / sizeof(Slot) + 5;  // just over 3 MiB: rounded up to 4
    TableArray<Slot> t(n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.get()) % table_memory::kHugePage, 0u);
    EXPECT_EQ(table_memory::reserved_bytes(n * sizeof(Slot)), size_t{4} << 20);
    EXPECT_EQ(t[0].value, 7u);
    EXPECT_EQ(t[n - 1].value, 7u);
    t[n - 1].key = 42;  // the whole range is writable
    EXPECT_EQ(t[n - 1].key, 42u);
    // The advice is on the mapping (whether the kernel backs it with huge
    // pages depends on its THP mode; with THP off the flag is not shown).
    std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string mode;
    std::getline(thp, mode);
    if (mode.find("[never]") != std::string::npos || mode.empty()) GTEST_SKIP() << "THP off: " << mode;
    std::ifstream smaps("/proc/self/smaps");
    char start[32];
    snprintf(start, sizeof start, "%lx-", static_cast<unsigned long>(reinterpret_cast<uintptr_t>(t.get())));
    bool in_table = false, advised = false;
    for (std::string line; std::getline(smaps, line);) {
        if (line.rfind(start, 0) == 0) in_table = true;
        if (in_table && line.rfind("VmFlags:", 0) == 0) {  // the mapping's last line
            advised = line.find(" hg") != std::string::npos;
            break;
        }
    }
    EXPECT_TRUE(in_table);
    EXPECT_TRUE(advised) << "MADV_HUGEPAGE missing on the table's mapping";
}

TEST(TableArray, MovesOwnership) {
    TableArray<Slot> a((size_t{2} << 20) / sizeof(Slot));
    Slot* p = a.get();
    TableArray<Slot> b(std::move(a));
    EXPECT_EQ(b.get(), p);
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty
    TableArray<Slot> c(10);
    c = std::move(b);
    EXPECT_EQ(c.get(), p);
    EXPECT_EQ(c.size(), (size_t{2} << 20) / sizeof(Slot));
    TableArray<Slot> empty;
    EXPECT_FALSE(empty);
}

}  // namespace
}  // namespace siplb
