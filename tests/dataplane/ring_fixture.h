// The net_ring harness the in-process dataplane tests share: EAL start-up
// with a frame pool, ring-backed ports, the usual two-port (ext + tagged int)
// configuration, and a suite fixture that runs one dataplane for all its
// tests and feeds and drains its rings.
#pragma once

#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ring.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "dataplane_test_util.h"
#include "siplb/config/config.h"
#include "siplb/control/pool_manager.h"
#include "siplb/control/snapshot_builder.h"
#include "siplb/balance/hash.h"
#include "siplb/dataplane/dataplane.h"

namespace siplb::dataplane::testing {

inline const MacAddress kExtMac{{0x02, 0, 0, 0, 0x01, 0x01}};
inline const MacAddress kIntMac{{0x02, 0, 0, 0, 0x02, 0x02}};
inline const MacAddress kGatewayMac{{0x02, 0, 0, 0, 0x00, 0xfe}};
inline const MacAddress kBackend11Mac{{0x02, 0, 0, 0, 0x0b, 0x11}};
inline const MacAddress kBackend12Mac{{0x02, 0, 0, 0, 0x0b, 0x12}};
inline const MacAddress kBackend6Mac{{0x02, 0, 0, 0, 0x0b, 0x66}};
inline constexpr uint16_t kIntVlan = 100;

struct RingPort {
    rte_ring* rx = nullptr;  // test -> dataplane
    rte_ring* tx = nullptr;  // dataplane -> test
    int port_id = -1;
    std::string device;  // ethdev name the config refers to
};

inline RingPort make_ring_port(const std::string& name) {
    RingPort p;
    p.rx = rte_ring_create((name + "_rx").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    p.tx = rte_ring_create((name + "_tx").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    p.port_id = rte_eth_from_rings(name.c_str(), &p.rx, 1, &p.tx, 1, 0);
    char dev[RTE_ETH_NAME_MAX_LEN] = {};
    if (p.port_id >= 0 && rte_eth_dev_get_name_by_port(static_cast<uint16_t>(p.port_id), dev) == 0) p.device = dev;
    return p;
}

// Frames the tests inject come from this pool (created with EAL).
inline rte_mempool* g_frame_pool = nullptr;

// Starts EAL for the process and creates g_frame_pool. Without EAL no test
// can run: the whole program fails loudly.
class RingEalEnvironment : public ::testing::Environment {
public:
    // `data_room`: frames up to data_room - RTE_PKTMBUF_HEADROOM bytes are
    // injected as one segment.
    RingEalEnvironment(std::string eal_prefix, std::string pool_name, uint16_t data_room = RTE_MBUF_DEFAULT_BUF_SIZE)
        : eal_prefix_(std::move(eal_prefix)), pool_name_(std::move(pool_name)), data_room_(data_room) {}
    void SetUp() override {
        auto st = init_eal(siplb::test::test_eal_args(eal_prefix_));
        if (!st) {
            fprintf(stderr, "%s\n", st.message().c_str());
            std::exit(1);
        }
        g_frame_pool = rte_pktmbuf_pool_create(pool_name_.c_str(), 2048, 0, 0, data_room_, 0);
        if (!g_frame_pool) std::exit(1);
    }

private:
    std::string eal_prefix_;
    std::string pool_name_;
    uint16_t data_room_;
};

// One worker, small rings and pool: what every in-process test runs with.
inline void set_test_sizes(config::DataplaneConfig& dc, const std::string& eal_prefix) {
    dc.eal = siplb::test::test_eal_args(eal_prefix);
    dc.workers = 1;
    dc.mbufs = 4096;
    dc.mbuf_cache = 32;
    dc.rx_ring = 256;
    dc.tx_ring = 256;
    dc.announce = false;  // tests count every frame a port sends; announce_test.cpp checks these
}

// ext (198.51.100.1/24, 2001:db8:1::1/64) and int tagged kIntVlan
// (203.0.113.1/24, 2001:db8:2::1/64); a default route via the gateway
// 198.51.100.254 (and via 2001:db8:1::fe with `v6_default_route`), static
// neighbors for the gateway and the backends .11, .12 and 2001:db8:2::11.
inline void set_two_ports(config::DataplaneConfig& dc, const RingPort& ext_port, const RingPort& int_port,
                          bool v6_default_route) {
    config::PortConfig ext;
    ext.name = "ext";
    ext.device = ext_port.device;
    ext.addresses = {*Prefix::parse("198.51.100.1/24", true), *Prefix::parse("2001:db8:1::1/64", true)};
    ext.mac = kExtMac;
    config::PortConfig in;
    in.name = "int";
    in.device = int_port.device;
    in.addresses = {*Prefix::parse("203.0.113.1/24", true), *Prefix::parse("2001:db8:2::1/64", true)};
    in.mac = kIntMac;
    in.vlan = kIntVlan;
    dc.ports = {ext, in};
    dc.routes = {{*Prefix::parse("0.0.0.0/0"), *IpAddress::parse("198.51.100.254"), ""}};
    dc.neighbors = {{*IpAddress::parse("198.51.100.254"), kGatewayMac, "ext"}};
    if (v6_default_route) {
        dc.routes.push_back({*Prefix::parse("::/0"), *IpAddress::parse("2001:db8:1::fe"), ""});
        dc.neighbors.push_back({*IpAddress::parse("2001:db8:1::fe"), kGatewayMac, "ext"});
    }
    dc.neighbors.push_back({*IpAddress::parse("203.0.113.11"), kBackend11Mac, "int"});
    dc.neighbors.push_back({*IpAddress::parse("203.0.113.12"), kBackend12Mac, "int"});
    dc.neighbors.push_back({*IpAddress::parse("2001:db8:2::11"), kBackend6Mac, ""});
}

// A suite fixture over two ring ports and one running dataplane shared by
// all tests of `Suite` (the parameter keeps each suite's statics apart).
template <class Suite>
class RingDataplaneTest : public ::testing::Test {
protected:
    // Creates `<prefix>_ext` and `<prefix>_int`.
    static void open_ports(const std::string& prefix) {
        ext_ = make_ring_port(prefix + "_ext");
        int_ = make_ring_port(prefix + "_int");
        ASSERT_GE(ext_.port_id, 0);
        ASSERT_GE(int_.port_id, 0);
    }
    // `affinity_entries`: room for every call a suite keeps (entries are evicted near capacity).
    static void start(const config::Config& cfg, std::unique_ptr<const balance::DataplaneSnapshot> snapshot,
                      size_t affinity_entries = 1024) {
        publisher_ = new balance::SnapshotPublisher(std::move(snapshot));
        affinity_ = balance::AffinityTable::create(affinity_entries).value().release();
        auto dp = Dataplane::create(cfg.dataplane, *publisher_, *affinity_);
        ASSERT_TRUE(dp) << dp.message();
        dp_ = dp.value().release();
        auto st = dp_->start();
        ASSERT_TRUE(st) << st.message();
    }
    // Starts with the snapshot the daemon would build from `cfg` (PoolManager
    // -> SnapshotBuilder: tables, compiled rules, rate limits, counter slots).
    static void start_from_config(const config::Config& cfg, size_t affinity_entries = 1024) {
        cfg_ = new config::Config(cfg);
        manager_ = new control::PoolManager(*cfg_);
        builder_ = new control::SnapshotBuilder(*cfg_);
        auto first = builder_->build(*manager_);
        ASSERT_TRUE(first) << first.message();
        start(*cfg_, std::move(first).value(), affinity_entries);
    }
    // A live reload as the daemon applies it (SIGHUP): a trial build of the
    // new config first, so an unbuildable one changes nothing; the result of
    // that build is returned (ok, or the reason it was refused).
    static Status reload(const config::Config& next) {
        {
            control::PoolManager trial(next);
            control::SnapshotBuilder trial_builder(next);
            if (auto s = trial_builder.build(trial); !s) return Status::fail(s.message());
        }
        *cfg_ = next;
        builder_->set_config(*cfg_);
        if (auto r = manager_->apply_config(*cfg_, control::Actor{"test"}); !r) return Status::fail(r.message());
        auto snap = builder_->build(*manager_, publisher_->current());
        if (!snap) return Status::fail(snap.message());
        const uint64_t version = snap.value()->version();
        publisher_->publish(std::move(snap).value());
        if (!siplb::test::wait_until([&] { return dp_->stats().snapshot_version == version; }))
            return Status::fail("the workers did not take the new snapshot");
        publisher_->reclaim();
        return ok_status();
    }
    // Frees what is left in the rings and the dataplane (stopped already).
    static void release() {
        for (RingPort* p : {&ext_, &int_}) {
            void* m;
            while (p->tx && rte_ring_dequeue(p->tx, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
            while (p->rx && rte_ring_dequeue(p->rx, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        }
        delete dp_;
        delete affinity_;
        delete publisher_;
        dp_ = nullptr;
        delete builder_;
        delete manager_;
        delete cfg_;
        builder_ = nullptr;
        manager_ = nullptr;
        cfg_ = nullptr;
    }
    static void TearDownTestSuite() {
        if (dp_) dp_->stop();
        release();
    }

    void SetUp() override { ASSERT_NE(dp_, nullptr); }

    // Sends frames and waits until the worker has received them all.
    void send(RingPort& p, const std::vector<std::vector<uint8_t>>& frames) {
        uint64_t before = dp_->stats().total("traffic", "rx_packets");
        for (const auto& f : frames) {
            rte_mbuf* m = siplb::test::to_mbuf(g_frame_pool, f);
            ASSERT_NE(m, nullptr);
            ASSERT_EQ(rte_ring_enqueue(p.rx, m), 0);
        }
        ASSERT_TRUE(siplb::test::wait_until(
            [&] { return dp_->stats().total("traffic", "rx_packets") >= before + frames.size(); }));
    }
    void send(RingPort& p, const std::vector<uint8_t>& frame) { send(p, std::vector<std::vector<uint8_t>>{frame}); }

    // Collects exactly `n` frames (waiting up to 5 s), then checks nothing more comes.
    std::vector<std::vector<uint8_t>> receive(RingPort& p, size_t n) {
        std::vector<std::vector<uint8_t>> out;
        auto drain = [&] {
            void* m;
            while (rte_ring_dequeue(p.tx, &m) == 0) {
                out.push_back(siplb::test::from_mbuf(static_cast<rte_mbuf*>(m)));
                rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
            }
            return out.size() >= n;
        };
        siplb::test::wait_until(drain);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        drain();
        EXPECT_EQ(out.size(), n);
        return out;
    }

    static uint64_t drops(const DataplaneStats& s, const std::string& reason) {
        if (counter_index(CounterScope::worker, "drops", reason) < 0) ADD_FAILURE() << "no drop reason " << reason;
        return s.total("drops", reason);
    }

    static const balance::PoolSnapshot& pool(const std::string& name) {
        return *publisher_->current()->find_pool(name);
    }
    // The backend the Maglev table gives a Call-ID (no affinity yet).
    static Endpoint table_choice(const std::string& pool_name, const std::string& call_id) {
        const auto& p = pool(pool_name);
        return p.backends()[p.table().lookup(balance::hash_call_id(call_id, p.seed()))].address;
    }

    static inline RingPort ext_, int_;
    static inline balance::SnapshotPublisher* publisher_ = nullptr;
    static inline balance::AffinityTable* affinity_ = nullptr;
    static inline Dataplane* dp_ = nullptr;
    // With start_from_config().
    static inline config::Config* cfg_ = nullptr;
    static inline control::PoolManager* manager_ = nullptr;
    static inline control::SnapshotBuilder* builder_ = nullptr;
};

}  // namespace siplb::dataplane::testing
