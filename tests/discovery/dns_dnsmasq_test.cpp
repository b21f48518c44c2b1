// DnsDiscovery against a real dnsmasq on 127.0.0.1:<free port>.
#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <map>

#include "common/child_process.h"
#include "siplb/discovery/discovery.h"

using namespace siplb;
using namespace siplb::discovery;
using namespace std::chrono_literals;

namespace {

struct Delivery {
    std::string pool, name;
    std::vector<DiscoveredBackend> set;
};

class DnsTest : public ::testing::Test {
protected:
    siplb::testing::TempDir dir;
    siplb::testing::Dnsmasq dns{dir};
    std::vector<Delivery> deliveries;
    std::unique_ptr<DnsDiscovery> disc;

    void make(uint32_t floor_s = 1, uint32_t ceiling_s = 3600, uint32_t retry_initial_ms = 200,
              uint32_t retry_max_ms = 800) {
        config::DnsConfig cfg;
        cfg.resolvers = {*Endpoint::parse("127.0.0.1:" + std::to_string(dns.port()))};
        cfg.ttl_floor_s = floor_s;
        cfg.ttl_ceiling_s = ceiling_s;
        cfg.retry_initial_ms = retry_initial_ms;
        cfg.retry_max_ms = retry_max_ms;
        cfg.timeout_ms = 300;
        auto r = DnsDiscovery::create(cfg, [this](const std::string& p, const std::string& n,
                                                  const std::vector<DiscoveredBackend>& s) {
            deliveries.push_back({p, n, s});
        });
        ASSERT_TRUE(r.ok()) << r.message();
        disc = std::move(r.value());
    }

    // Drives the poll loop the way the daemon does, until pred() or limit.
    template <class Pred>
    bool run_until(Pred pred, std::chrono::milliseconds limit) {
        const auto deadline = Clock::now() + limit;
        while (Clock::now() < deadline) {
            if (pred()) return true;
            auto fds = disc->fds();
            int t = disc->timeout_ms(Clock::now());
            if (t < 0 || t > 50) t = 50;
            ::poll(fds.data(), fds.size(), t);
            disc->process(fds, Clock::now());
        }
        return pred();
    }

    NameStatus status_of(const std::string& name) {
        for (auto& s : disc->status())
            if (s.name == name) return s;
        ADD_FAILURE() << "no status for " << name;
        return {};
    }

    static std::vector<std::string> endpoints(const std::vector<DiscoveredBackend>& v) {
        std::vector<std::string> out;
        for (const auto& b : v) out.push_back(b.address.to_string());
        return out;
    }
};

const std::vector<std::string> kSrvRecords = {
    "srv-host=_sip._udp.pool.test,a.pool.test,5060,10,60",
    "srv-host=_sip._udp.pool.test,b.pool.test,5070,10,0",
    "srv-host=_sip._udp.pool.test,c.pool.test,5080,20,5",
    "host-record=a.pool.test,127.0.0.11,2001:db8::11",
    "host-record=b.pool.test,127.0.0.12",
    "host-record=c.pool.test,127.0.0.13",
    "srv-host=_sip._tcp.pool.test,a.pool.test,5060,10,60",
    "srv-host=_sips._tcp.pool.test,a.pool.test,5061,10,60",
    "srv-host=_sips._tcp.pool.test,b.pool.test,5071,10,10",
};

}  // namespace

TEST_F(DnsTest, SrvPriorityWeightPortAndTargetsAAndAAAA) {
    ASSERT_TRUE(dns.start(kSrvRecords, 30));
    make();
    ASSERT_TRUE(disc->add_name("lund", "_sip._udp.pool.test", 5060).ok());
    ASSERT_TRUE(run_until([&] { return !deliveries.empty(); }, 5s));
    const auto& d = deliveries.back();
    EXPECT_EQ(d.pool, "lund");
    EXPECT_EQ(d.name, "_sip._udp.pool.test");
    ASSERT_EQ(endpoints(d.set), (std::vector<std::string>{"127.0.0.11:5060", "127.0.0.12:5070", "[2001:db8::11]:5060",
                                                          "127.0.0.13:5080"}));
    EXPECT_EQ(d.set[0].weight, 60u);
    EXPECT_EQ(d.set[0].priority, 10);
    EXPECT_EQ(d.set[1].weight, 1u);  // SRV weight 0
    EXPECT_EQ(d.set[2].weight, 60u);
    EXPECT_EQ(d.set[3].priority, 20);
    EXPECT_EQ(d.set[3].weight, 5u);
    EXPECT_EQ(d.set[0].ttl_s, 30u);
    auto st = status_of("_sip._udp.pool.test");
    EXPECT_TRUE(st.srv);
    EXPECT_EQ(st.resolutions_ok, 1u);
    EXPECT_EQ(st.last_ttl_s, 30u);
    EXPECT_TRUE(st.last_error.empty());
}

TEST_F(DnsTest, PlainNameGivesEveryAddressOnDefaultPort) {
    ASSERT_TRUE(
        dns.start({"host-record=plain.pool.test,127.0.0.21,2001:db8::21", "host-record=plain.pool.test,127.0.0.22"},
                  30));
    make();
    ASSERT_TRUE(disc->add_name("malmo", "plain.pool.test", 5062).ok());
    ASSERT_TRUE(run_until([&] { return !deliveries.empty(); }, 5s));
    EXPECT_EQ(endpoints(deliveries.back().set),
              (std::vector<std::string>{"127.0.0.21:5062", "127.0.0.22:5062", "[2001:db8::21]:5062"}));
    EXPECT_FALSE(status_of("plain.pool.test").srv);
}

TEST_F(DnsTest, TtlExpiryReResolvesAndDeliversOnlyChanges) {
    ASSERT_TRUE(dns.start({"host-record=ttl.pool.test,127.0.0.31"}, 1));
    make(/*floor_s=*/1);
    ASSERT_TRUE(disc->add_name("p", "ttl.pool.test", 5060).ok());
    ASSERT_TRUE(run_until([&] { return !deliveries.empty(); }, 5s));
    // Same answer again after the 1 s TTL: resolved, but no new delivery.
    ASSERT_TRUE(run_until([&] { return status_of("ttl.pool.test").resolutions_ok >= 3; }, 6s));
    EXPECT_EQ(deliveries.size(), 1u);
    EXPECT_EQ(status_of("ttl.pool.test").last_ttl_s, 1u);
    // New record: picked up by the next TTL-driven refresh without any prompt.
    ASSERT_TRUE(dns.start({"host-record=ttl.pool.test,127.0.0.31", "host-record=ttl.pool.test,127.0.0.32"}, 1));
    ASSERT_TRUE(run_until([&] { return deliveries.size() >= 2; }, 6s));
    EXPECT_EQ(endpoints(deliveries.back().set), (std::vector<std::string>{"127.0.0.31:5060", "127.0.0.32:5060"}));
    EXPECT_EQ(status_of("ttl.pool.test").changes, 2u);
}

TEST_F(DnsTest, TtlFloorHoldsBackRefresh) {
    ASSERT_TRUE(dns.start({"host-record=floor.pool.test,127.0.0.41"}, 1));
    make(/*floor_s=*/30);
    ASSERT_TRUE(disc->add_name("p", "floor.pool.test", 5060).ok());
    ASSERT_TRUE(run_until([&] { return !deliveries.empty(); }, 5s));
    EXPECT_EQ(status_of("floor.pool.test").last_ttl_s, 30u);
    const int t = disc->timeout_ms(Clock::now());
    EXPECT_GT(t, 25000);
    run_until([] { return false; }, 2500ms);
    EXPECT_EQ(status_of("floor.pool.test").resolutions_ok, 1u);
}

TEST_F(DnsTest, FailureKeepsLastGoodSetWithBackoffThenRecovers) {
    ASSERT_TRUE(dns.start(kSrvRecords, 1));
    make(/*floor_s=*/1, 3600, /*retry_initial_ms=*/200, /*retry_max_ms=*/800);
    ASSERT_TRUE(disc->add_name("lund", "_sip._udp.pool.test", 5060).ok());
    ASSERT_TRUE(run_until([&] { return !deliveries.empty(); }, 5s));
    const auto good = deliveries.back().set;
    dns.stop();
    // Failures are counted, retried with growing delays, and never empty the set.
    std::vector<TimePoint> failure_times;
    uint64_t seen = 0;
    ASSERT_TRUE(run_until(
        [&] {
            auto st = status_of("_sip._udp.pool.test");
            if (st.resolutions_failed > seen) {
                seen = st.resolutions_failed;
                failure_times.push_back(Clock::now());
            }
            return st.resolutions_failed >= 4;
        },
        15s));
    auto st = status_of("_sip._udp.pool.test");
    EXPECT_FALSE(st.last_error.empty());
    EXPECT_EQ(st.consecutive_failures, st.resolutions_failed);
    EXPECT_EQ(endpoints(st.backends), endpoints(good));
    EXPECT_EQ(deliveries.size(), 1u);
    for (const auto& d : deliveries) EXPECT_FALSE(d.set.empty());
    ASSERT_GE(failure_times.size(), 4u);
    // Gaps grow: 200 -> 400 -> 800 ms (plus query time); the last gap is at least the cap.
    const auto gap_last = failure_times[3] - failure_times[2];
    EXPECT_GE(gap_last, 700ms);
    // The server comes back with a changed answer: delivered, counters reset.
    auto changed = kSrvRecords;
    changed.push_back("srv-host=_sip._udp.pool.test,d.pool.test,5090,10,10");
    changed.push_back("host-record=d.pool.test,127.0.0.14");
    ASSERT_TRUE(dns.start(changed, 1));
    ASSERT_TRUE(run_until([&] { return deliveries.size() >= 2; }, 5s));
    EXPECT_EQ(deliveries.back().set.size(), 5u);
    EXPECT_EQ(status_of("_sip._udp.pool.test").consecutive_failures, 0u);
    EXPECT_TRUE(status_of("_sip._udp.pool.test").last_error.empty());
}

TEST_F(DnsTest, EmptyAnswerNeverEmptiesThePool) {
    ASSERT_TRUE(dns.start({"host-record=gone.pool.test,127.0.0.51"}, 1));
    make(/*floor_s=*/1);
    ASSERT_TRUE(disc->add_name("p", "gone.pool.test", 5060).ok());
    ASSERT_TRUE(run_until([&] { return !deliveries.empty(); }, 5s));
    // The name disappears (NXDOMAIN/REFUSED from dnsmasq): failures, set kept.
    ASSERT_TRUE(dns.start({"host-record=other.pool.test,127.0.0.52"}, 1));
    ASSERT_TRUE(run_until([&] { return status_of("gone.pool.test").resolutions_failed >= 2; }, 8s));
    EXPECT_EQ(deliveries.size(), 1u);
    EXPECT_EQ(status_of("gone.pool.test").backends.size(), 1u);
}

TEST_F(DnsTest, ResolveNowPicksUpChangeBeforeTtl) {
    ASSERT_TRUE(dns.start({"host-record=now.pool.test,127.0.0.61"}, 600));
    make(/*floor_s=*/1);
    ASSERT_TRUE(disc->add_name("p", "now.pool.test", 5060).ok());
    ASSERT_TRUE(run_until([&] { return !deliveries.empty(); }, 5s));
    ASSERT_TRUE(dns.start({"host-record=now.pool.test,127.0.0.62"}, 600));
    run_until([] { return false; }, 300ms);
    EXPECT_EQ(deliveries.size(), 1u);  // TTL 600 s: no refresh yet
    EXPECT_FALSE(disc->resolve_now("nosuchpool"));
    EXPECT_TRUE(disc->resolve_now("p"));
    ASSERT_TRUE(run_until([&] { return deliveries.size() >= 2; }, 5s));
    EXPECT_EQ(endpoints(deliveries.back().set), (std::vector<std::string>{"127.0.0.62:5060"}));
}

TEST_F(DnsTest, SeveralNamesAndPoolsAreIndependent) {
    auto recs = kSrvRecords;
    recs.push_back("host-record=plain.pool.test,127.0.0.71");
    ASSERT_TRUE(dns.start(recs, 30));
    make();
    ASSERT_TRUE(disc->add_name("lund", "_sip._udp.pool.test", 5060).ok());
    ASSERT_TRUE(disc->add_name("lund", "plain.pool.test", 5060).ok());
    ASSERT_TRUE(disc->add_name("malmo", "plain.pool.test", 5999).ok());
    ASSERT_TRUE(run_until([&] { return deliveries.size() >= 3; }, 5s));
    std::map<std::pair<std::string, std::string>, size_t> sizes;
    for (const auto& d : deliveries) sizes[{d.pool, d.name}] = d.set.size();
    EXPECT_EQ(sizes[std::make_pair(std::string("lund"), std::string("_sip._udp.pool.test"))], 4u);
    EXPECT_EQ(sizes[std::make_pair(std::string("lund"), std::string("plain.pool.test"))], 1u);
    EXPECT_EQ(sizes[std::make_pair(std::string("malmo"), std::string("plain.pool.test"))], 1u);
    disc->remove_pool("lund");
    EXPECT_EQ(disc->status().size(), 1u);
}

TEST_F(DnsTest, TcpAndTlsSrvNames) {
    ASSERT_TRUE(dns.start(kSrvRecords, 30));
    make();
    ASSERT_TRUE(disc->add_name("trunk", "_sip._tcp.pool.test", 5060).ok());
    ASSERT_TRUE(disc->add_name("trunk", "_sips._tcp.pool.test", 5062).ok());
    ASSERT_TRUE(run_until([&] { return deliveries.size() >= 2; }, 5s));
    std::map<std::string, std::vector<DiscoveredBackend>> by_name;
    for (const auto& d : deliveries) by_name[d.name] = d.set;
    // _sip._tcp: the SIP port, as for UDP.
    EXPECT_EQ(endpoints(by_name["_sip._tcp.pool.test"]),
              (std::vector<std::string>{"127.0.0.11:5060", "[2001:db8::11]:5060"}));
    EXPECT_FALSE(by_name["_sip._tcp.pool.test"][0].tls_port);
    // _sips._tcp: TLS ports, on the pool's default port.
    const auto& tls = by_name["_sips._tcp.pool.test"];
    ASSERT_EQ(endpoints(tls), (std::vector<std::string>{"127.0.0.11:5062", "127.0.0.12:5062", "[2001:db8::11]:5062"}));
    EXPECT_EQ(tls[0].tls_port, std::optional<uint16_t>(5061));
    EXPECT_EQ(tls[1].tls_port, std::optional<uint16_t>(5071));
    EXPECT_EQ(tls[1].weight, 10u);
}
