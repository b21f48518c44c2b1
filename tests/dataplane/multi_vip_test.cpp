// One pool on two IPv4 and two IPv6 VIPs (two trunk names that land on one
// node after a failover, or a provider's second address), over net_ring with
// a real worker: every datagram a backend sends toward a client (responses,
// BYEs, its own new calls) must leave from the VIP the client used, since a
// client behind NAT or a strict firewall drops anything else. Snapshots come
// from the daemon's path (config -> PoolManager -> SnapshotBuilder), so
// reloads are the daemon's too.
#include <gtest/gtest.h>

#include <time.h>

#include <cstring>

#include "support/frame_builder.h"
#include "dataplane_test_util.h"
#include "ring_fixture.h"
#include "siplb/balance/hash.h"
#include "siplb/control/snapshot_builder.h"

using namespace siplb;
using namespace siplb::test;
using namespace siplb::dataplane::testing;

namespace {

const Endpoint kVip4a = *Endpoint::parse("198.51.100.10:5060");
const Endpoint kVip4b = *Endpoint::parse("198.51.100.20:5060");
const Endpoint kVip6a = *Endpoint::parse("[2001:db8:1::10]:5060");
const Endpoint kVip6b = *Endpoint::parse("[2001:db8:1::20]:5060");
const Endpoint kBackend11 = *Endpoint::parse("203.0.113.11:5060");
const Endpoint kBackend12 = *Endpoint::parse("203.0.113.12:5060");
const Endpoint kBackend6 = *Endpoint::parse("[2001:db8:2::11]:5060");

std::string request(const std::string& method, const std::string& call_id, int cseq, const Endpoint& from) {
    return method + " sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP " + from.to_string() + ";branch=z9hG4bK" +
           call_id + std::to_string(cseq) + "\r\nFrom: <sip:alice@example.net>;tag=1\r\nTo: <sip:bob@example.net>" +
           "\r\nCall-ID: " + call_id + "\r\nCSeq: " + std::to_string(cseq) + " " + method +
           "\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
}

std::string ok_for(const std::string& call_id, const std::string& method, const Endpoint& client,
                   const std::string& contact) {
    return "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP " + client.to_string() + ";branch=z9hG4bK" + call_id +
           "\r\nFrom: <sip:alice@example.net>;tag=1\r\nTo: <sip:bob@example.net>;tag=2\r\nCall-ID: " + call_id +
           "\r\nCSeq: 1 " + method + "\r\nContact: <sip:bob@" + contact + ">\r\nContent-Length: 0\r\n\r\n";
}

MacAddress backend_mac(const Endpoint& b) {
    if (b.ip.is_v6()) return kBackend6Mac;
    return b == kBackend11 ? kBackend11Mac : kBackend12Mac;
}

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new RingEalEnvironment("siplb_multivip", "multivip_frames"));

config::PoolConfig lund(std::vector<Endpoint> backends) {
    config::PoolConfig p;
    p.name = "lund";
    p.listen = {kVip4a, kVip6a, kVip4b, kVip6b};
    for (const auto& b : backends) p.backends.push_back({b, 1, true});
    return p;
}

class MultiVip : public RingDataplaneTest<MultiVip> {
protected:
    static void SetUpTestSuite() {
        open_ports("multivip");
        if (HasFatalFailure()) return;
        config::Config cfg;
        set_test_sizes(cfg.dataplane, "siplb_multivip");
        set_two_ports(cfg.dataplane, ext_, int_, /*v6_default_route=*/true);
        cfg.pools = {lund({kBackend11, kBackend6})};
        start_from_config(cfg);
    }

    // A Call-ID lund's table sends to a backend of the client's family.
    static std::string call_id_for(const std::string& prefix, bool v6) {
        for (int i = 0;; ++i) {
            const std::string id = prefix + "-" + std::to_string(i) + "@client";
            if (table_choice("lund", id).ip.is_v6() == v6) return id;
        }
    }
    static Endpoint client_for(const Endpoint& vip, int i) {
        return *Endpoint::parse(vip.ip.is_v6() ? "[2001:db8:5::" + std::to_string(10 + i) + "]:5062"
                                               : "192.0.2." + std::to_string(10 + i) + ":5062");
    }
    std::vector<uint8_t> from_client(const Endpoint& client, const Endpoint& vip, const std::string& payload) {
        return build_frame({.src_mac = kGatewayMac,
                            .dst_mac = kExtMac,
                            .src = client,
                            .dst = vip,
                            .ttl = 64,
                            .payload = payload})
            .bytes;
    }
    std::vector<uint8_t> from_backend(const Endpoint& backend, const Endpoint& client, const std::string& payload) {
        return build_frame({.src_mac = backend_mac(backend),
                            .dst_mac = kIntMac,
                            .vlan = kIntVlan,
                            .src = backend,
                            .dst = client,
                            .ttl = 64,
                            .payload = payload})
            .bytes;
    }
    // What the client must receive: the datagram from `vip`, byte for byte.
    std::vector<uint8_t> to_client(const Endpoint& vip, const Endpoint& client, const std::string& payload) {
        return build_frame({.src_mac = kExtMac,
                            .dst_mac = kGatewayMac,
                            .src = vip,
                            .dst = client,
                            .ttl = 63,
                            .payload = payload})
            .bytes;
    }
    // `siplbctl query lund CALLID` as the daemon answers it (monotonic seconds: the workers' clock).
    static nlohmann::json query(const std::string& call_id) {
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        auto r =
            control::lookup_call(*publisher_->current(), affinity_, "lund", call_id, static_cast<uint32_t>(ts.tv_sec));
        EXPECT_TRUE(r) << (r ? "" : r.message());
        return r ? r.value() : nlohmann::json();
    }
    static uint64_t backend_count(const dataplane::DataplaneStats& s, const Endpoint& b, const char* group,
                                  const char* name) {
        const auto* e = s.backend("lund", b);
        return e ? e->at(group, name) : 0;
    }

    struct Call {
        std::string id;
        Endpoint client, vip, backend;
    };
    // `per_vip` calls arriving on each of the four VIPs; returns them with the backend each reached.
    std::vector<Call> start_calls(const std::string& tag, int per_vip) {
        std::vector<Call> calls;
        std::vector<std::vector<uint8_t>> frames;
        for (const Endpoint& vip : {kVip4a, kVip4b, kVip6a, kVip6b})
            for (int i = 0; i < per_vip; ++i) {
                Call c{call_id_for(tag + vip.to_string() + std::to_string(i), vip.ip.is_v6()),
                       client_for(vip, i),
                       vip,
                       {}};
                c.backend = table_choice("lund", c.id);
                frames.push_back(from_client(c.client, vip, request("INVITE", c.id, 1, c.client)));
                calls.push_back(c);
            }
        send(ext_, frames);
        EXPECT_EQ(receive(int_, calls.size()).size(), calls.size());
        return calls;
    }
    // Each call's backend sends `make(call)`; every datagram must reach its client from its call's VIP.
    template <class Make>
    void expect_from_call_vips(const std::vector<Call>& calls, Make make) {
        std::vector<std::vector<uint8_t>> frames;
        std::vector<std::vector<uint8_t>> expected;
        for (const auto& c : calls) {
            const std::string payload = make(c);
            frames.push_back(from_backend(c.backend, c.client, payload));
            expected.push_back(to_client(c.vip, c.client, payload));
        }
        send(int_, frames);
        auto out = receive(ext_, calls.size());
        ASSERT_EQ(out.size(), calls.size());
        size_t right = 0;
        for (size_t i = 0; i < out.size(); ++i) {
            EXPECT_EQ(out[i], expected[i]) << calls[i].id << " via " << calls[i].vip.to_string();
            right += out[i] == expected[i];
        }
        EXPECT_EQ(right, calls.size());
    }
};

TEST_F(MultiVip, RepliesAndByesLeaveFromTheVipOfTheirCallAlsoAfterReloads) {
    const auto before = dp_->stats();
    const auto calls = start_calls("call", 5);
    expect_from_call_vips(calls, [](const Call& c) {
        return ok_for(c.id, "INVITE", c.client, c.vip.ip.is_v6() ? "[2001:db8:1::10]" : "198.51.100.10");
    });
    // siplbctl query shows each call's VIP next to its backend.
    for (const auto& c : calls) {
        const auto q = query(c.id);
        EXPECT_EQ(q["reason"], "affinity");
        EXPECT_EQ(q["backend"], c.backend.to_string());
        EXPECT_EQ(q["vip"], c.vip.to_string()) << c.id;
    }
    EXPECT_TRUE(query("never-seen@client")["vip"].is_null());
    // A reload that leaves lund unchanged (another pool added): it keeps its snapshot and the calls their VIPs.
    config::Config next = *cfg_;
    config::PoolConfig other;
    other.name = "other";
    other.listen = {*Endpoint::parse("198.51.100.30:5060")};
    other.backends = {{kBackend12, 1, true}};
    next.pools.push_back(other);
    ASSERT_TRUE(reload(next));
    expect_from_call_vips(calls, [](const Call& c) { return request("BYE", c.id, 2, c.backend); });
    // A reload that rebuilds lund with the same VIPs (a backend added): the VIPs keep their slots.
    next.pools[0] = lund({kBackend11, kBackend6, kBackend12});
    ASSERT_TRUE(reload(next));
    expect_from_call_vips(calls, [](const Call& c) { return request("NOTIFY", c.id, 3, c.backend); });
    const auto after = dp_->stats();
    for (const Endpoint& b : {kBackend11, kBackend6})
        EXPECT_EQ(backend_count(after, b, "vip", "first_vip_fallback"),
                  backend_count(before, b, "vip", "first_vip_fallback"));
}

TEST_F(MultiVip, PhoneRegisteredThroughTheSecondVipGetsTheBackendsCallFromIt) {
    for (const Endpoint& vip : {kVip4b, kVip6b}) {
        const Endpoint phone = client_for(vip, 40);
        const std::string reg = call_id_for("register" + vip.to_string(), vip.ip.is_v6());
        const Endpoint registrar = table_choice("lund", reg);
        send(ext_, from_client(phone, vip, request("REGISTER", reg, 1, phone)));
        ASSERT_EQ(receive(int_, 1).size(), 1u);
        // An inbound call for the phone: a new Call-ID, started by the backend.
        const std::string inbound = "inbound" + vip.to_string() + "@pbx";
        const std::string invite = request("INVITE", inbound, 1, registrar);
        send(int_, from_backend(registrar, phone, invite));
        auto out = receive(ext_, 1);
        ASSERT_EQ(out.size(), 1u);
        EXPECT_EQ(out[0], to_client(vip, phone, invite)) << vip.to_string();
        // The phone's 200 OK comes back to the VIP and reaches the calling backend; its BYE leaves from the VIP too.
        const std::string ok = ok_for(inbound, "INVITE", registrar, vip.ip.is_v6() ? "[2001:db8:5::50]" : "192.0.2.50");
        send(ext_, from_client(phone, vip, ok));
        out = receive(int_, 1);
        ASSERT_EQ(out.size(), 1u);
        EXPECT_EQ(out[0], build_frame({.src_mac = kIntMac,
                                       .dst_mac = backend_mac(registrar),
                                       .vlan = kIntVlan,
                                       .src = phone,
                                       .dst = registrar,
                                       .ttl = 63,
                                       .payload = ok})
                              .bytes);
        const std::string bye = request("BYE", inbound, 2, registrar);
        send(int_, from_backend(registrar, phone, bye));
        out = receive(ext_, 1);
        ASSERT_EQ(out.size(), 1u);
        EXPECT_EQ(out[0], to_client(vip, phone, bye));
    }
}

TEST_F(MultiVip, KeepaliveAnswersAndUnknownClientsAndTheFallbackCount) {
    // CRLF keepalive through the second IPv6 VIP (from a phone whose
    // keepalives the table gives to the IPv6 backend); its pong leaves from it.
    Endpoint phone;
    for (int i = 60;; ++i) {
        phone = client_for(kVip6b, i);
        uint8_t key[18];
        std::memcpy(key, phone.ip.bytes.data(), 16);
        key[16] = static_cast<uint8_t>(phone.port >> 8);
        key[17] = static_cast<uint8_t>(phone.port);
        const auto& p = pool("lund");
        if (p.backends()[p.table().lookup(balance::hash_call_id(key, sizeof key, p.seed()))].address == kBackend6)
            break;
    }
    send(ext_, from_client(phone, kVip6b, "\r\n\r\n"));
    auto in = receive(int_, 1);
    ASSERT_EQ(in.size(), 1u);
    send(int_, from_backend(kBackend6, phone, "\r\n"));
    auto out = receive(ext_, 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], to_client(kVip6b, phone, "\r\n"));
    // Nothing known of this call or client: the pool's first VIP of the family, counted.
    const auto before = dp_->stats();
    const Endpoint stranger = client_for(kVip4b, 70);
    const std::string reply = ok_for("stranger@client", "INVITE", stranger, "198.51.100.20");
    send(int_, from_backend(kBackend11, stranger, reply));
    out = receive(ext_, 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], to_client(kVip4a, stranger, reply));
    EXPECT_EQ(backend_count(dp_->stats(), kBackend11, "vip", "first_vip_fallback"),
              backend_count(before, kBackend11, "vip", "first_vip_fallback") + 1);
}

TEST_F(MultiVip, BackendWhoseOkCarriesItsOwnAddressIsCounted) {
    const auto before = dp_->stats();
    std::this_thread::sleep_for(std::chrono::milliseconds(150));  // past the worker's last look at the backend
    const Endpoint client = client_for(kVip4a, 80);
    const std::string ok = ok_for("self@client", "INVITE", client, "203.0.113.11:5060");
    send(int_, from_backend(kBackend11, client, ok));
    auto out = receive(ext_, 1);  // still forwarded
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], to_client(kVip4a, client, ok));
    const auto after = dp_->stats();
    EXPECT_EQ(backend_count(after, kBackend11, "vip", "backend_advertises_itself"),
              backend_count(before, kBackend11, "vip", "backend_advertises_itself") + 1);
    EXPECT_EQ(backend_count(after, kBackend6, "vip", "backend_advertises_itself"),
              backend_count(before, kBackend6, "vip", "backend_advertises_itself"));
}

}  // namespace
