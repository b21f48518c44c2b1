// Runs the built `siplbctl lookup` (path in SIPLBCTL) on a temporary config
// and checks it answers exactly what the library's pick() answers.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "siplb/balance/hash.h"
#include "siplb/balance/pick.h"
#include "siplb/config/config.h"
#include "siplb/control/pool_manager.h"
#include "siplb/control/snapshot_builder.h"

namespace siplb::balance {
namespace {

constexpr const char* kConfig = R"(
[[pool]]
name = "lund"
listen = ["198.51.100.10:5060"]
backends = ["192.0.2.11:5060", "192.0.2.12:5060", { address = "192.0.2.13:5060", weight = 3 },
            { address = "192.0.2.14:5060", enabled = false }]
seed = 4242

[[pool]]
name = "empty"
listen = ["198.51.100.20:5060"]
backends = [{ address = "192.0.2.21:5060", enabled = false }]
)";

struct CmdResult {
    int status;
    std::string out;
};

CmdResult run(const std::string& cmd) {
    CmdResult r{-1, {}};
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    const int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

class LookupCli : public ::testing::Test {
protected:
    void SetUp() override {
        const char* bin = std::getenv("SIPLBCTL");
        if (!bin) GTEST_SKIP() << "SIPLBCTL not set";
        siplbctl_ = bin;
        char dir[] = "/tmp/siplb-lookup-XXXXXX";
        ASSERT_NE(mkdtemp(dir), nullptr);
        dir_ = dir;
        config_path_ = dir_ + "/siplb.toml";
        std::ofstream(config_path_) << kConfig;
    }
    void TearDown() override {
        if (!config_path_.empty()) std::remove(config_path_.c_str());
        if (!dir_.empty()) rmdir(dir_.c_str());
    }
    std::string lookup(const std::string& args) const {
        return siplbctl_ + " lookup --config " + config_path_ + " " + args;
    }
    std::string siplbctl_, dir_, config_path_;
};

TEST_F(LookupCli, AgreesWithLibraryPick) {
    auto cfg = config::load_config(config_path_);
    ASSERT_TRUE(cfg.ok()) << cfg.message();
    control::PoolManager manager(*cfg);
    control::SnapshotBuilder builder(*cfg);
    auto snapshot = builder.build(manager);
    ASSERT_TRUE(snapshot.ok()) << snapshot.message();
    const PoolSnapshot* pool = (*snapshot)->find_pool("lund");
    ASSERT_NE(pool, nullptr);

    std::string expected, args;
    for (int i = 0; i < 200; ++i) {
        const std::string id = "call" + std::to_string(i * 7919) + "@192.0.2.99";
        Decision d = pick(*pool, hash_call_id(id, 4242), true, 0, nullptr);
        ASSERT_NE(d.entry, nullptr);
        EXPECT_NE(d.entry->identity, "192.0.2.14:5060");  // disabled never chosen
        expected += id + "\t" + d.entry->identity + "\n";
        args += id + " ";
    }
    CmdResult by_args = run(lookup("--pool lund " + args));
    EXPECT_EQ(by_args.status, 0);
    EXPECT_EQ(by_args.out, expected);

    // Same Call-IDs on stdin, one per line.
    const std::string list = dir_ + "/ids";
    {
        std::ofstream f(list);
        for (int i = 0; i < 200; ++i) f << "call" << i * 7919 << "@192.0.2.99\n";
    }
    CmdResult by_stdin = run(lookup("--pool lund < " + list));
    std::remove(list.c_str());
    EXPECT_EQ(by_stdin.status, 0);
    EXPECT_EQ(by_stdin.out, expected);
}

TEST_F(LookupCli, UnknownPoolIsAClearError) {
    CmdResult r = run(lookup("--pool nosuchpool abc 2>&1"));
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.out.find("no pool 'nosuchpool'"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("lund"), std::string::npos) << r.out;  // lists the pools there are
}

TEST_F(LookupCli, MissingConfigAndUsageErrors) {
    CmdResult r = run(siplbctl_ + " lookup --config " + dir_ + "/missing.toml --pool lund x 2>&1");
    EXPECT_EQ(r.status, 1);
    EXPECT_FALSE(r.out.empty());
    EXPECT_EQ(run(siplbctl_ + " lookup --pool lund x 2>/dev/null").status, 2);
}

TEST_F(LookupCli, PoolWithoutUsableBackendAnswersDash) {
    CmdResult r = run(lookup("--pool empty abc 2>/dev/null"));
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "abc\t-\n");
}

}  // namespace
}  // namespace siplb::balance
