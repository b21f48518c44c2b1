// Calls that belong together stay together, over net_ring with a real
// worker and snapshots from the daemon's path (config -> PoolManager ->
// SnapshotBuilder):
//  - an INVITE with Replaces or Join reaches the backend of the dialog it
//    names, through that dialog's affinity entry or, on a node that never
//    saw it, through its Call-ID's table slot; its own later messages follow;
//  - per-pool balancing keys place every call of one user (or trunk) on one
//    backend, while in-dialog requests from either side follow the Call-ID's
//    affinity entry.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "dataplane_test_util.h"
#include "ring_fixture.h"
#include "siplb/balance/hash.h"
#include "support/frame_builder.h"

using namespace siplb;
using namespace siplb::test;
using namespace siplb::dataplane::testing;

namespace {

const std::vector<Endpoint> kBackends = {ep("203.0.113.11:5060"), ep("203.0.113.12:5060"), ep("203.0.113.13:5060"),
                                         ep("203.0.113.14:5060")};
const Endpoint kAddedBackend = ep("203.0.113.15:5060");

const auto* const g_env =
    ::testing::AddGlobalTestEnvironment(new RingEalEnvironment("siplb_callkey", "callkey_frames"));

struct Msg {
    std::string method = "INVITE";
    std::string call_id;
    std::string from_user = "alice", to_user = "bob", ruri_user = "bob";
    int cseq = 1;
    std::string extra;  // more header lines, each ending in CRLF
};

std::string request(const Msg& m) {
    return m.method + " sip:" + m.ruri_user + "@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK" +
           m.call_id + std::to_string(m.cseq) + "\r\nFrom: \"U\" <sip:" + m.from_user +
           "@example.net>;tag=1\r\nTo: <sip:" + m.to_user + "@example.net>\r\nCall-ID: " + m.call_id +
           "\r\nCSeq: " + std::to_string(m.cseq) + " " + m.method + "\r\n" + m.extra +
           "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
}

config::PoolConfig pool_config(const std::string& name, const std::string& vip, const std::string& key) {
    config::PoolConfig p;
    p.name = name;
    p.listen = {ep(vip)};
    for (const auto& b : kBackends) p.backends.push_back({b, 1, true});
    p.key = *balance::parse_key_spec(key);
    return p;
}

class CallKeys : public RingDataplaneTest<CallKeys> {
protected:
    static void SetUpTestSuite() {
        open_ports("callkey");
        if (HasFatalFailure()) return;
        config::Config cfg;
        set_test_sizes(cfg.dataplane, "siplb_callkey");
        set_two_ports(cfg.dataplane, ext_, int_, /*v6_default_route=*/false);
        for (int i = 3; i <= 5; ++i)
            cfg.dataplane.neighbors.push_back({*IpAddress::parse("203.0.113.1" + std::to_string(i)),
                                               MacAddress{{0x02, 0, 0, 0, 0x0b, uint8_t(0x10 + i)}}, "int"});
        cfg.pools = {pool_config("transfer", "198.51.100.10:5060", "call_id"),
                     pool_config("cold", "198.51.100.11:5060", "call_id"),
                     pool_config("by_from", "198.51.100.12:5060", "from_user"),
                     pool_config("by_to", "198.51.100.13:5060", "to_user"),
                     pool_config("by_ruri", "198.51.100.14:5060", "ruri_user"),
                     pool_config("by_source", "198.51.100.15:5060", "source_ip"),
                     pool_config("by_header", "198.51.100.16:5060", "header:X-Tenant")};
        start_from_config(cfg, 16384);
    }

    static Endpoint vip_of(const std::string& pool_name) { return pool(pool_name).listen().front(); }

    std::vector<uint8_t> frame(const Endpoint& client, const std::string& pool_name, const std::string& payload) {
        return build_frame({.src_mac = kGatewayMac,
                            .dst_mac = kExtMac,
                            .src = client,
                            .dst = vip_of(pool_name),
                            .ttl = 64,
                            .payload = payload})
            .bytes;
    }

public:
    // Sends each (client, payload) to the pool's VIP; the backend each reached (by the rewritten destination).
    std::vector<IpAddress> deliver(const std::string& pool_name,
                                   const std::vector<std::pair<Endpoint, std::string>>& messages) {
        std::vector<std::vector<uint8_t>> frames;
        for (const auto& [client, payload] : messages) frames.push_back(frame(client, pool_name, payload));
        std::vector<IpAddress> out;
        for (size_t at = 0; at < frames.size(); at += 200) {  // within the rings' room
            const std::vector<std::vector<uint8_t>> part(frames.begin() + long(at),
                                                         frames.begin() + long(std::min(frames.size(), at + 200)));
            send(ext_, part);
            for (const auto& f : receive(int_, part.size())) {
                // Ethernet + VLAN tag, then IPv4: destination at 16.
                IpAddress dst;
                if (f.size() >= 18 + 20) std::memcpy(dst.bytes.data(), f.data() + 18 + 16, 4);
                out.push_back(dst);
            }
        }
        EXPECT_EQ(out.size(), messages.size());
        return out;
    }

protected:
    static uint64_t pool_count(const std::string& pool_name, const char* group, const char* name) {
        const auto s = dp_->stats();
        const auto* p = s.pool(pool_name);
        return p ? p->at(group, name) : 0;
    }
    static IpAddress table_ip(const std::string& pool_name, const std::string& value) {
        return table_choice(pool_name, value).ip;
    }
};

const Endpoint kCaller = ep("192.0.2.10:5062");
const Endpoint kCallee = ep("192.0.2.20:5062");

std::string replaces(const std::string& call_id) { return "Replaces: " + call_id + ";to-tag=2;from-tag=1\r\n"; }

// RFC 3891 value with every reserved character escaped, as copied from a Refer-To.
std::string escaped_replaces(const std::string& call_id) {
    std::string e;
    for (char c : call_id) e += c == '@' ? std::string("%40") : std::string(1, c);
    return "Replaces: " + e + "%3Bto-tag%3D2%3Bfrom-tag%3D1\r\n";
}

TEST_F(CallKeys, ReplacesFollowTheAffinityEntryOfTheReplacedCall) {
    std::vector<std::pair<Endpoint, std::string>> calls, transfers, byes;
    for (int i = 0; i < 100; ++i)
        calls.push_back({kCaller, request({.call_id = "orig-" + std::to_string(i) + "@pbx"})});
    const auto placed = deliver("transfer", calls);
    // A backend joins: the table moves about a fifth of the calls, their
    // entries keep them where they are, and so must their transfers.
    config::Config next = *cfg_;
    next.pools[0].backends.push_back({kAddedBackend, 1, true});
    ASSERT_TRUE(reload(next));
    size_t moved_in_table = 0;
    for (int i = 0; i < 100; ++i) {
        const std::string old_id = "orig-" + std::to_string(i) + "@pbx";
        moved_in_table += table_ip("transfer", old_id) != placed[size_t(i)];
        const std::string hdr = i % 2 ? replaces(old_id) : escaped_replaces(old_id);
        transfers.push_back({kCallee, request({.call_id = "xfer-" + std::to_string(i) + "@phone", .extra = hdr})});
        byes.push_back(
            {kCallee, request({.method = "BYE", .call_id = "xfer-" + std::to_string(i) + "@phone", .cseq = 2})});
    }
    EXPECT_GT(moved_in_table, 5u);  // otherwise the test shows nothing about the entries
    const uint64_t followed = pool_count("transfer", "dialogs", "replaces_followed");
    const auto reached = deliver("transfer", transfers);
    EXPECT_EQ(reached, placed);
    EXPECT_EQ(pool_count("transfer", "dialogs", "replaces_followed"), followed + 100);
    // The new dialogs' own entries record that backend.
    EXPECT_EQ(deliver("transfer", byes), placed);
}

TEST_F(CallKeys, ReplacesAndJoinWithoutAnEntryGoThroughTheTable) {
    // Calls this node never saw (another cluster node's, or before a restart).
    std::vector<std::pair<Endpoint, std::string>> transfers, byes;
    std::vector<IpAddress> expected;
    size_t differs = 0;
    for (int i = 0; i < 100; ++i) {
        const std::string old_id = "unseen-" + std::to_string(i) + "@pbx";
        const std::string new_id = "cold-" + std::to_string(i) + "@phone";
        expected.push_back(table_ip("cold", old_id));
        differs += expected.back() != table_ip("cold", new_id);
        const std::string hdr = i % 3 == 0   ? "Join: " + old_id + ";to-tag=2;from-tag=1\r\n"
                                : i % 3 == 1 ? escaped_replaces(old_id)
                                             : replaces(old_id);
        transfers.push_back({kCallee, request({.call_id = new_id, .extra = hdr})});
        byes.push_back({kCaller, request({.method = "BYE", .call_id = new_id, .cseq = 2})});
    }
    EXPECT_GT(differs, 50u);
    EXPECT_EQ(deliver("cold", transfers), expected);
    EXPECT_EQ(deliver("cold", byes), expected);
}

TEST_F(CallKeys, MalformedReplacesIsANewCallAndCounted) {
    const uint64_t malformed = pool_count("cold", "dialogs", "replaces_malformed");
    std::vector<std::pair<Endpoint, std::string>> msgs;
    std::vector<IpAddress> expected;
    const std::vector<std::string> bad = {"Replaces: ;to-tag=2;from-tag=1\r\n", "Replaces: x@pbx;to-tag=2\r\n",
                                          replaces("a@pbx") + replaces("b@pbx")};
    for (size_t i = 0; i < bad.size(); ++i) {
        const std::string id = "malformed-" + std::to_string(i);
        msgs.push_back({kCaller, request({.call_id = id, .extra = bad[i]})});
        expected.push_back(table_ip("cold", id));
    }
    EXPECT_EQ(deliver("cold", msgs), expected);
    EXPECT_EQ(pool_count("cold", "dialogs", "replaces_malformed"), malformed + bad.size());
}

// For one key kind: `users` users with `per_user` calls each, the first
// message of a call from the caller, then an in-dialog request from the
// callee (From/To swapped, another address, no tenant header).
struct KeyCase {
    std::string pool;
    // The message of call `c` of user `u` and the client that sends it.
    std::function<std::pair<Endpoint, Msg>(int u, int c)> first;
};

void check_key(CallKeys& t, const KeyCase& k,
               std::vector<IpAddress> (CallKeys::*deliver)(const std::string&,
                                                           const std::vector<std::pair<Endpoint, std::string>>&)) {
    constexpr int kUsers = 12, kPerUser = 8;
    std::vector<std::pair<Endpoint, std::string>> firsts, callee_side, caller_side;
    for (int u = 0; u < kUsers; ++u)
        for (int c = 0; c < kPerUser; ++c) {
            auto [client, m] = k.first(u, c);
            m.call_id = k.pool + "-" + std::to_string(u) + "-" + std::to_string(c) + "@ua";
            firsts.push_back({client, request(m)});
            Msg bye = m;
            bye.method = "BYE";
            bye.cseq = 2;
            bye.extra.clear();
            std::swap(bye.from_user, bye.to_user);
            bye.ruri_user = "contact-" + std::to_string(c);
            callee_side.push_back({ep("192.0.2." + std::to_string(100 + c) + ":5070"), request(bye)});
            Msg reinvite = m;
            reinvite.cseq = 3;
            reinvite.ruri_user = "contact";
            caller_side.push_back({client, request(reinvite)});
        }
    const auto placed = (t.*deliver)(k.pool, firsts);
    ASSERT_EQ(placed.size(), size_t(kUsers * kPerUser));
    std::set<IpAddress> used;
    for (int u = 0; u < kUsers; ++u) {
        std::set<IpAddress> of_user;
        for (int c = 0; c < kPerUser; ++c) of_user.insert(placed[size_t(u * kPerUser + c)]);
        EXPECT_EQ(of_user.size(), 1u) << k.pool << ": calls of user " << u << " on several backends";
        used.insert(of_user.begin(), of_user.end());
    }
    EXPECT_GT(used.size(), 1u) << k.pool << ": every user on one backend; the key is not balancing";
    EXPECT_EQ((t.*deliver)(k.pool, callee_side), placed) << k.pool;
    EXPECT_EQ((t.*deliver)(k.pool, caller_side), placed) << k.pool;
}

TEST_F(CallKeys, EachKeyKeepsAUsersCallsTogetherAndDialogsFollowTheirEntry) {
    auto user = [](int u) { return "user" + std::to_string(u); };
    const std::vector<KeyCase> cases = {
        {"by_from",
         [&](int u, int c) {
             return std::pair{ep("192.0.2." + std::to_string(30 + c) + ":5062"),
                              Msg{.from_user = user(u), .to_user = "dest" + std::to_string(c)}};
         }},
        {"by_to",
         [&](int u, int c) {
             return std::pair{ep("192.0.2." + std::to_string(30 + c) + ":5062"),
                              Msg{.from_user = "src" + std::to_string(c), .to_user = user(u)}};
         }},
        {"by_ruri",
         [&](int u, int c) {
             return std::pair{ep("192.0.2." + std::to_string(30 + c) + ":5062"),
                              Msg{.from_user = "src" + std::to_string(c), .ruri_user = user(u)}};
         }},
        {"by_source",
         [&](int u, int c) {
             return std::pair{ep("192.0.2." + std::to_string(30 + u) + ":" + std::to_string(5000 + c)),
                              Msg{.from_user = "src" + std::to_string(c)}};
         }},
        {"by_header",
         [&](int u, int c) {
             return std::pair{ep("192.0.2." + std::to_string(30 + c) + ":5062"),
                              Msg{.from_user = "src" + std::to_string(c), .extra = "X-Tenant: " + user(u) + "\r\n"}};
         }},
    };
    for (const auto& k : cases) check_key(*this, k, &CallKeys::deliver);
    EXPECT_EQ(dp_->stats().total("affinity", "evictions"), 0u);
}

TEST_F(CallKeys, MessagesWithoutTheKeyFieldUseTheFallback) {
    // No X-Tenant header: placed by the Call-ID (key_fallback's default), counted.
    const uint64_t before = pool_count("by_header", "dialogs", "key_fallbacks");
    std::vector<std::pair<Endpoint, std::string>> msgs;
    std::vector<IpAddress> expected;
    for (int i = 0; i < 20; ++i) {
        const std::string id = "nokey-" + std::to_string(i);
        msgs.push_back({kCaller, request({.call_id = id})});
        expected.push_back(table_ip("by_header", id));
    }
    EXPECT_EQ(deliver("by_header", msgs), expected);
    EXPECT_EQ(pool_count("by_header", "dialogs", "key_fallbacks"), before + 20);
}

}  // namespace
