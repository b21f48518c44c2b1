// Every config shipped in deploy/ must load, so examples cannot rot.
#include <gtest/gtest.h>

#include <filesystem>

#include "siplb/config/config.h"
#include "siplb_build_config.h"

namespace fs = std::filesystem;

TEST(DeployExamples, EveryShippedConfigLoads) {
    fs::path deploy = fs::path(SIPLB_SOURCE_ROOT) / "deploy";
    std::vector<fs::path> files;
    if (fs::exists(deploy / "siplb.toml")) files.push_back(deploy / "siplb.toml");
    if (fs::is_directory(deploy / "examples"))
        for (const auto& e : fs::directory_iterator(deploy / "examples"))
            if (e.path().extension() == ".toml") files.push_back(e.path());
    ASSERT_GE(files.size(), 3u) << "expected deploy/siplb.toml and deploy/examples/*.toml";
    for (const auto& f : files) {
        auto r = siplb::config::load_config(f.string());
        EXPECT_TRUE(r.ok()) << r.message();
        if (r.ok()) {
            EXPECT_FALSE(r->pools.empty()) << f;
        }
    }
}

TEST(DeployExamples, MainExampleHasTheDocumentedPools) {
    auto r = siplb::config::load_config((fs::path(SIPLB_SOURCE_ROOT) / "deploy" / "siplb.toml").string());
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_NE(r->find_pool("lund"), nullptr);
    ASSERT_NE(r->find_pool("trunk"), nullptr);
    EXPECT_FALSE(r->find_pool("lund")->backends.empty());
    EXPECT_FALSE(r->find_pool("trunk")->dns.empty());
}
