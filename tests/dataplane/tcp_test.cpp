// SIP over TCP/TLS through a real worker over net_ring ports: every segment
// of 1000 interleaved connections reaches one backend with valid checksums,
// connections spread by weight, replies leave from the VIP the client
// connected to, a draining backend keeps its connections while new SYNs go
// elsewhere, and the per-source cap and SYN rate hold a flood back.
#include <gtest/gtest.h>
#include <rte_ring.h>

#include <map>
#include <random>
#include <set>

#include "dataplane_test_util.h"
#include "ring_fixture.h"
#include "siplb/net/packet.h"
#include "support/frame_builder.h"

using namespace siplb;
using namespace siplb::test;
using namespace siplb::dataplane::testing;

namespace {

const auto* const g_env = ::testing::AddGlobalTestEnvironment(new RingEalEnvironment("siplb_dp_tcp", "tcp_frames"));

const Endpoint kTcpVip = *Endpoint::parse("198.51.100.20:5060");
const Endpoint kTlsVip = *Endpoint::parse("198.51.100.20:5061");
const Endpoint kB11 = *Endpoint::parse("203.0.113.11:5060");
const Endpoint kB12 = *Endpoint::parse("203.0.113.12:5060");

std::vector<uint8_t> tcp_frame(const MacAddress& src_mac, const MacAddress& dst_mac, uint16_t vlan, const Endpoint& src,
                               const Endpoint& dst, uint8_t flags, uint32_t seq, std::string_view payload = {}) {
    return build_tcp_frame({.src_mac = src_mac,
                            .dst_mac = dst_mac,
                            .vlan = vlan,
                            .src = src,
                            .dst = dst,
                            .flags = flags,
                            .seq = seq,
                            .payload = payload})
        .bytes;
}

struct Seen {
    Endpoint src, dst;
    uint8_t flags = 0;
    bool checksums_ok = false;
    std::string payload;
};

Seen inspect(const std::vector<uint8_t>& f) {
    Seen s;
    size_t l3 = get16(f, 12) == 0x8100 ? 18 : 14;
    if (f.size() < l3 + 40 || f[l3 + 9] != 6) return s;
    const size_t l4 = l3 + 20, end = l3 + get16(f, l3 + 2);
    std::copy(f.begin() + l3 + 12, f.begin() + l3 + 16, s.src.ip.bytes.begin());
    std::copy(f.begin() + l3 + 16, f.begin() + l3 + 20, s.dst.ip.bytes.begin());
    s.src.port = get16(f, l4);
    s.dst.port = get16(f, l4 + 2);
    s.flags = f[l4 + 13];
    const size_t data = l4 + (f[l4 + 12] >> 4) * 4u;
    s.payload.assign(f.begin() + data, f.begin() + end);
    // 0x0000 and 0xFFFF are the same ones' complement value (RFC 1624).
    const uint16_t want = naive_tcp_checksum(f, l3, l4, end, false), got = get16(f, l4 + 16);
    s.checksums_ok = naive_ipv4_checksum(f, l3) == get16(f, l3 + 10) &&
                     (want == got || (want == 0 && got == 0xFFFF) || (want == 0xFFFF && got == 0));
    return s;
}

Endpoint client(uint32_t i) {
    Endpoint e = *Endpoint::parse("192.0.2.0:1");
    e.ip.bytes[2] = static_cast<uint8_t>(1 + i / 250);  // in-process rings only: never on a wire
    e.ip.bytes[3] = static_cast<uint8_t>(1 + i % 250);
    e.port = static_cast<uint16_t>(20000 + i);
    return e;
}

class DataplaneTcp : public RingDataplaneTest<DataplaneTcp> {
protected:
    static void SetUpTestSuite() {
        open_ports("tcp");
        if (HasFatalFailure()) return;
        config::Config cfg;
        set_test_sizes(cfg.dataplane, "siplb_dp_tcp");
        set_two_ports(cfg.dataplane, ext_, int_, false);
        cfg.dataplane.connection_capacity = 1u << 14;
        cfg.dataplane.connection_source_cap = 20;
        cfg.dataplane.syn_rate = 1000000;  // per source: the flood test lowers nothing, the cap holds it
        cfg.dataplane.syn_burst = 1000000;
        config::PoolConfig p;
        p.name = "trunk";
        p.tcp_listen = {kTcpVip};
        p.tls_listen = {kTlsVip};
        p.backends = {{kB11, 1, true, 5061}, {kB12, 3, true, 5071}};
        p.health.enabled = false;
        cfg.pools = {p};
        start_from_config(cfg);
    }

    // After an operator command on manager_: the snapshot the daemon would publish.
    static void republish() {
        auto snap = builder_->build(*manager_, publisher_->current());
        ASSERT_TRUE(snap) << snap.message();
        const uint64_t version = snap.value()->version();
        publisher_->publish(std::move(snap).value());
        ASSERT_TRUE(wait_until([&] { return dp_->stats().snapshot_version == version; }));
        publisher_->reclaim();
    }

    uint64_t pool_counter(const char* name) { return dp_->stats().pools.at(0).at("tcp", name); }

    // Sends in chunks the rings take, collecting what comes out on `out`.
    std::vector<std::vector<uint8_t>> pass(RingPort& in, RingPort& out, const std::vector<std::vector<uint8_t>>& frames,
                                           size_t expect) {
        std::vector<std::vector<uint8_t>> got;
        for (size_t i = 0; i < frames.size(); i += 200) {
            std::vector<std::vector<uint8_t>> chunk(frames.begin() + i,
                                                    frames.begin() + std::min(frames.size(), i + 200));
            send(in, chunk);
            void* m;
            while (rte_ring_dequeue(out.tx, &m) == 0) {
                got.push_back(from_mbuf(static_cast<rte_mbuf*>(m)));
                rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
            }
        }
        auto rest = receive(out, expect - std::min(expect, got.size()));
        got.insert(got.end(), rest.begin(), rest.end());
        return got;
    }
};

TEST_F(DataplaneTcp, ThousandInterleavedConnectionsEachStayOnOneBackend) {
    constexpr uint32_t kConns = 1000, kSegments = 4;  // SYN, ACK, data, FIN
    const auto before = dp_->stats();
    const uint64_t opened0 = pool_counter("opened"), closed0 = pool_counter("closed");
    // Connection i's k-th segment; every connection's segments in order,
    // the connections shuffled among each other.
    std::vector<std::pair<uint32_t, uint32_t>> order;
    std::vector<uint32_t> next(kConns, 0);
    std::mt19937 rng(20);
    std::vector<uint32_t> pending;
    for (uint32_t i = 0; i < kConns; ++i)
        for (uint32_t k = 0; k < kSegments; ++k) pending.push_back(i);
    std::shuffle(pending.begin(), pending.end(), rng);
    for (uint32_t i : pending) order.push_back({i, next[i]++});
    std::vector<std::vector<uint8_t>> frames;
    for (auto [i, k] : order) {
        const Endpoint vip = i % 2 ? kTlsVip : kTcpVip;
        static const uint8_t kFlags[] = {net::kTcpSyn, net::kTcpAck, net::kTcpAck | 0x08, net::kTcpFin | net::kTcpAck};
        frames.push_back(tcp_frame(kGatewayMac, kExtMac, 0, client(i), vip, kFlags[k], 1000 + k,
                                   k == 2 ? "OPTIONS sip:x SIP/2.0\r\n\r\n" : ""));
    }
    auto out = pass(ext_, int_, frames, frames.size());
    ASSERT_EQ(out.size(), frames.size());
    std::map<Endpoint, std::set<Endpoint>> backends_of;
    std::map<Endpoint, uint32_t> conns_per_backend;
    for (const auto& f : out) {
        Seen s = inspect(f);
        ASSERT_TRUE(s.checksums_ok);
        backends_of[s.src].insert(s.dst);
    }
    ASSERT_EQ(backends_of.size(), kConns);
    for (const auto& [c, set] : backends_of) {
        ASSERT_EQ(set.size(), 1u) << c.to_string();
        const Endpoint b = *set.begin();
        const bool tls = c.port % 2;  // client(i) has port 20000 + i: odd i went to the TLS VIP
        // The TLS VIP reaches the backends' TLS ports (5061 and 5071), TCP their SIP port.
        EXPECT_EQ(b.port, tls ? (b.ip == kB11.ip ? 5061 : 5071) : 5060);
        ++conns_per_backend[Endpoint{b.ip, 0}];
    }
    // Weights 1:3.
    const double share12 = conns_per_backend[Endpoint{kB12.ip, 0}] / double(kConns);
    EXPECT_GT(share12, 0.65);
    EXPECT_LT(share12, 0.85);
    // The first choice is the Maglev pick over the client's address and port.
    const auto& pool = this->pool("trunk");
    for (uint32_t i = 0; i < kConns; i += 97) {
        const Endpoint c = client(i);
        uint8_t key[6];
        std::copy(c.ip.bytes.begin(), c.ip.bytes.begin() + 4, key);
        key[4] = static_cast<uint8_t>(c.port >> 8);
        key[5] = static_cast<uint8_t>(c.port);
        const auto& want = pool.backends()[pool.table().lookup(balance::hash_call_id(key, 6, pool.seed()))];
        auto it = backends_of.find(client(i));
        ASSERT_NE(it, backends_of.end()) << client(i).to_string();
        EXPECT_EQ(it->second.begin()->ip, want.address.ip) << i;
    }
    const auto after = dp_->stats();
    EXPECT_EQ(after.dropped(), before.dropped());
    EXPECT_EQ(pool_counter("opened") - opened0, kConns);
    EXPECT_EQ(pool_counter("closed") - closed0, kConns);
}

TEST_F(DataplaneTcp, RepliesLeaveFromTheVipTheClientConnectedTo) {
    const Endpoint c = client(3000);
    send(ext_, tcp_frame(kGatewayMac, kExtMac, 0, c, kTlsVip, net::kTcpSyn, 1));
    auto in = receive(int_, 1);
    ASSERT_EQ(in.size(), 1u);
    const Endpoint backend = inspect(in[0]).dst;
    // SYN-ACK and data from the backend's TLS port: SNAT to the TLS VIP.
    send(int_, tcp_frame(backend.ip == kB11.ip ? kBackend11Mac : kBackend12Mac, kIntMac, kIntVlan, backend, c,
                         net::kTcpSyn | net::kTcpAck, 7));
    auto out = receive(ext_, 1);
    ASSERT_EQ(out.size(), 1u);
    Seen s = inspect(out[0]);
    EXPECT_TRUE(s.checksums_ok);
    EXPECT_EQ(s.src, kTlsVip);
    EXPECT_EQ(s.dst, c);
    EXPECT_EQ(s.flags, net::kTcpSyn | net::kTcpAck);
    // A segment from a backend port that is no listener of the pool is not ours.
    const uint64_t nfu = drops(dp_->stats(), "not_for_us");
    send(int_, tcp_frame(kBackend11Mac, kIntMac, kIntVlan, Endpoint{kB11.ip, 22}, c, net::kTcpAck, 9));
    EXPECT_TRUE(receive(ext_, 0).empty());
    EXPECT_EQ(drops(dp_->stats(), "not_for_us"), nfu + 1);
}

TEST_F(DataplaneTcp, CorruptSegmentReachesItsBackendStillCorrupt) {
    // dataplane.verify_l4_checksums is off (the default): the segment is
    // forwarded, and the incremental rewrite keeps its checksum wrong for
    // the backend's stack to drop. (The check itself: tests/net/nat_test.cpp.)
    auto f = tcp_frame(kGatewayMac, kExtMac, 0, client(3001), kTcpVip, net::kTcpSyn, 1, "x");
    f.back() ^= 0x55;
    const uint64_t bad = drops(dp_->stats(), "bad_checksum");
    send(ext_, f);
    auto out = receive(int_, 1);
    ASSERT_EQ(out.size(), 1u);
    const Seen s = inspect(out[0]);
    EXPECT_EQ(s.src, client(3001));
    EXPECT_EQ(s.flags, net::kTcpSyn);
    EXPECT_FALSE(s.checksums_ok);
    EXPECT_EQ(drops(dp_->stats(), "bad_checksum"), bad);
}

TEST_F(DataplaneTcp, DrainingBackendKeepsItsConnectionsNewSynsGoElsewhere) {
    // 200 connections established.
    std::vector<std::vector<uint8_t>> syns, data;
    for (uint32_t i = 4000; i < 4200; ++i) {
        syns.push_back(tcp_frame(kGatewayMac, kExtMac, 0, client(i), kTcpVip, net::kTcpSyn, 1));
        data.push_back(tcp_frame(kGatewayMac, kExtMac, 0, client(i), kTcpVip, net::kTcpAck, 2, "REGISTER"));
    }
    std::map<Endpoint, Endpoint> first;
    for (const auto& f : pass(ext_, int_, syns, syns.size())) first[inspect(f).src] = inspect(f).dst;
    ASSERT_EQ(first.size(), 200u);
    ASSERT_TRUE(manager_->drain("trunk", kB12, control::Actor{"test"}));
    republish();
    // Established connections stay, on both backends.
    for (const auto& f : pass(ext_, int_, data, data.size())) EXPECT_EQ(inspect(f).dst, first[inspect(f).src]);
    // New connections all go to the backend that is not draining.
    std::vector<std::vector<uint8_t>> fresh;
    for (uint32_t i = 5000; i < 5100; ++i)
        fresh.push_back(tcp_frame(kGatewayMac, kExtMac, 0, client(i), kTcpVip, net::kTcpSyn, 1));
    for (const auto& f : pass(ext_, int_, fresh, fresh.size())) EXPECT_EQ(inspect(f).dst, kB11);
    // Disabled (as a failed health check leaves it): its connections move.
    ASSERT_TRUE(manager_->disable("trunk", kB12, control::Actor{"test"}));
    republish();
    for (const auto& f : pass(ext_, int_, data, data.size())) EXPECT_EQ(inspect(f).dst, kB11);
    ASSERT_TRUE(manager_->enable("trunk", kB12, control::Actor{"test"}));
    republish();
}

TEST_F(DataplaneTcp, SynFloodFromOneSourceIsCappedOthersStillConnect) {
    const uint64_t capped0 = pool_counter("source_cap");
    Endpoint flooder = *Endpoint::parse("192.0.2.251:1");  // no other test's client
    std::vector<std::vector<uint8_t>> flood;
    for (uint16_t p = 1; p <= 300; ++p) {
        flooder.port = static_cast<uint16_t>(40000 + p);
        flood.push_back(tcp_frame(kGatewayMac, kExtMac, 0, flooder, kTcpVip, net::kTcpSyn, p));
    }
    // connection_source_cap = 20: at most 20 pass (fewer when another
    // source shares the flooder's counter slot), the rest are dropped and counted.
    for (size_t i = 0; i < flood.size(); i += 100)
        send(ext_, std::vector<std::vector<uint8_t>>(flood.begin() + i, flood.begin() + i + 100));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    size_t passed = 0;
    for (void* m; rte_ring_dequeue(int_.tx, &m) == 0; ++passed) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    EXPECT_LE(passed, 20u);
    EXPECT_GE(passed, 10u);
    EXPECT_EQ(pool_counter("source_cap") - capped0, flood.size() - passed);
    // Other sources connect.
    std::vector<std::vector<uint8_t>> legit;
    for (uint32_t i = 6000; i < 6050; ++i)
        legit.push_back(tcp_frame(kGatewayMac, kExtMac, 0, client(i), kTcpVip, net::kTcpSyn, 1));
    EXPECT_EQ(pass(ext_, int_, legit, legit.size()).size(), legit.size());
}

}  // namespace

namespace {

uint32_t monotonic_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint32_t>(ts.tv_sec);
}

TEST_F(DataplaneTcp, QueryAnswersForAClientAddressAndPort) {
    const Endpoint c = client(7000);
    send(ext_, tcp_frame(kGatewayMac, kExtMac, 0, c, kTlsVip, net::kTcpSyn, 1));
    auto in = receive(int_, 1);
    ASSERT_EQ(in.size(), 1u);
    const Endpoint backend = inspect(in[0]).dst;
    auto r = control::lookup_call(*publisher_->current(), nullptr, "trunk", c.to_string(), monotonic_seconds(),
                                  std::nullopt, &dp_->connections());
    ASSERT_TRUE(r) << r.message();
    const auto& j = r.value();
    EXPECT_EQ(j["client"], c.to_string());
    ASSERT_EQ(j["connections"].size(), 2u);
    // TCP: nothing recorded, the table's pick; TLS: the connection's entry.
    EXPECT_EQ(j["connections"][0]["transport"], "tcp");
    EXPECT_EQ(j["connections"][0]["reason"], "table");
    EXPECT_EQ(j["connections"][1]["transport"], "tls");
    EXPECT_EQ(j["connections"][1]["reason"], "connection");
    EXPECT_EQ(j["connections"][1]["backend"], backend.to_string());
    EXPECT_EQ(j["connections"][1]["vip"], kTlsVip.to_string());
    EXPECT_EQ(j["connections"][1]["connection_state"], "half_open");
    // Without the table: the same backend by the Maglev pick.
    auto t = control::lookup_call(*publisher_->current(), nullptr, "trunk", c.to_string(), monotonic_seconds());
    ASSERT_TRUE(t);
    EXPECT_EQ(t.value()["connections"][1]["backend"], backend.to_string());
    EXPECT_EQ(t.value()["connections"][1]["reason"], "table");
    // A Call-ID is still a Call-ID.
    auto call = control::lookup_call(*publisher_->current(), nullptr, "trunk", "abc@host", monotonic_seconds());
    ASSERT_TRUE(call);
    EXPECT_FALSE(call.value().contains("connections"));
}

}  // namespace

namespace {

// No TCP segments arrive after a burst of SYNs: the worker's idle polls
// still expire the half-open entries (a past SYN flood must not hold table
// space, per-source counts and tcp.active up until the next segment).
TEST_F(DataplaneTcp, IdleWorkerExpiresHalfOpenEntries) {
    // The same pool with a one-second handshake time (not a config key).
    const balance::PoolSnapshot& now = pool("trunk");
    balance::PoolSpec spec;
    spec.name = "trunk";
    spec.counter_slot = now.counter_slot();
    spec.seed = now.seed();
    spec.tcp_listen = {{kTcpVip, false}, {kTlsVip, true}};
    spec.backends = {{.address = kB11, .weight = 1, .tls_port = 5061},
                     {.address = kB12, .weight = 3, .tls_port = 5071}};
    spec.tcp_handshake_s = 1;
    auto short_pool = balance::PoolSnapshot::build(spec, publisher_->current()->version() + 1);
    ASSERT_TRUE(short_pool) << short_pool.message();
    auto snap = balance::DataplaneSnapshot::build({short_pool.value()}, publisher_->current()->version() + 1);
    ASSERT_TRUE(snap) << snap.message();
    const uint64_t version = snap.value()->version();
    publisher_->publish(std::move(snap).value());
    ASSERT_TRUE(wait_until([&] { return dp_->stats().snapshot_version == version; }));
    publisher_->reclaim();

    constexpr uint32_t kConns = 50;
    const uint64_t expired0 = pool_counter("expired"), active0 = pool_counter("active");
    const uint64_t opened0 = pool_counter("opened");
    std::vector<std::vector<uint8_t>> syns;
    for (uint32_t i = 8000; i < 8000 + kConns; ++i)
        syns.push_back(tcp_frame(kGatewayMac, kExtMac, 0, client(i), kTcpVip, net::kTcpSyn, 1));
    ASSERT_EQ(pass(ext_, int_, syns, syns.size()).size(), syns.size());
    // Recorded: counted by `opened`, which only grows. (`active` may already
    // have lost entries of earlier tests expiring meanwhile, or one of these
    // on a host slow enough to take the handshake time over the pass.)
    EXPECT_EQ(pool_counter("opened") - opened0, kConns);
    // Then silence: within the handshake time plus a pass over the table
    // (4096 buckets, 16 a millisecond), every one of them is reclaimed.
    EXPECT_TRUE(wait_until([&] { return pool_counter("expired") >= expired0 + kConns; }, std::chrono::seconds(8)))
        << pool_counter("expired") - expired0;
    EXPECT_LE(pool_counter("active"), active0);
    republish();  // the configured pool again
}

}  // namespace
