// fuzz-sources: src/common/endpoint.cpp src/common/table_memory.cpp src/net/packet.cpp src/net/checksum.cpp src/net/nat.cpp src/sip/parser.cpp src/sip/find_header.cpp src/protect/rules.cpp src/protect/rate_limiter.cpp src/protect/guard.cpp src/balance/hash.cpp src/balance/maglev.cpp src/balance/affinity.cpp src/balance/rcu.cpp src/balance/snapshot.cpp src/balance/pick.cpp src/balance/table_size.cpp src/balance/key.cpp src/sip/dialog_ref.cpp
// fuzz-pkg: libhs libxxhash
// fuzz-corpus: tests/sip/data
//
// The worker's per-datagram path without EAL, from the pure libraries:
// bytes -> Ethernet frame -> net::parse_frame -> SIP parse -> protect guard
// -> balance::pick (Maglev + affinity) -> TTL and DNAT rewrite -> the
// rewritten frame must parse again with valid checksums and the backend as
// destination.
//
// Input byte 0 picks the mode: bit 0 set = the rest is a raw frame (any
// bytes at all), else the rest is a UDP payload sent to a VIP in a
// well-formed frame (bit 1: IPv6, bit 2: VLAN tag, bits 3-7 + byte 1: the
// client address). Byte 1 also advances the clock.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "../support/frame_builder.h"
#include "siplb/balance/pick.h"
#include "siplb/balance/snapshot.h"
#include "siplb/net/nat.h"
#include "siplb/net/packet.h"
#include "siplb/protect/guard.h"
#include "siplb/sip/parser.h"

using namespace siplb;

namespace {

struct World {
    std::unique_ptr<const balance::DataplaneSnapshot> snap;
    std::unique_ptr<balance::AffinityTable> affinity;
    std::unique_ptr<protect::WorkerGuard> guard;
};

balance::PoolSpec spec(const char* name, std::vector<const char*> vips, std::vector<const char*> backends) {
    balance::PoolSpec s;
    s.name = name;
    for (auto* v : vips) s.listen.push_back(*Endpoint::parse(v));
    for (auto* b : backends) s.backends.push_back({*Endpoint::parse(b), 1, balance::BackendState::active, {}});
    s.table_size = 251;
    s.counter_slot = name[0] == 'a' ? 0 : 1;
    return s;
}

World& world() {
    static World w = [] {
        World w;
        auto a =
            balance::PoolSnapshot::build(spec("accounts", {"192.0.2.1:5060", "[2001:db8::1]:5060"},
                                              {"198.51.100.10:5060", "198.51.100.11:5060", "[2001:db8:1::10]:5060"}),
                                         1);
        auto t = balance::PoolSnapshot::build(spec("trunk", {"192.0.2.2:5060"}, {"198.51.100.20:5060"}), 1);
        if (!a || !t) abort();
        auto d = balance::DataplaneSnapshot::build({a.value(), t.value()}, 1);
        if (!d) abort();
        w.snap = std::move(d).value();
        w.affinity = balance::AffinityTable::create(1024).value();

        std::vector<protect::PoolProtectionSpec> pools(2);
        pools[0].name = "accounts";
        pools[1].name = "trunk";
        protect::RuleSpec scan;
        scan.name = "scanners";
        scan.field = "user_agent";
        scan.pattern = "friendly-scanner|sipvicious";
        protect::RuleSpec route;
        route.name = "trunk";
        route.field = "request_uri";
        route.pattern = "@siptrunk\\.";
        route.action = protect::RuleAction::route;
        route.route_pool = "trunk";
        pools[0].rules = {scan, route};
        pools[0].rate_limit.enabled = true;
        pools[0].rate_limit.requests_per_s = 20;
        pools[0].rate_limit.burst = 10;
        pools[0].rate_limit.table_size = 64;
        w.guard = protect::WorkerGuard::create(protect::ProtectSnapshot::build(pools).value()).value();
        return w;
    }();
    return w;
}

uint64_t now_ns = 1'000'000'000ull;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    World& w = world();
    uint8_t mode = data[0], b1 = data[1];
    now_ns += uint64_t(b1) * 3'000'000ull;
    uint32_t now_s = static_cast<uint32_t>(now_ns / 1'000'000'000ull);
    data += 2;
    size -= 2;

    constexpr size_t kHeadroom = 128;
    static uint8_t buf[kHeadroom + 70000];
    uint8_t* frame = buf + kHeadroom;
    size_t len;
    if (mode & 1) {
        len = std::min(size, sizeof(buf) - kHeadroom);
        std::memcpy(frame, data, len);
    } else {
        test::FrameSpec fs;
        bool v6 = mode & 2;
        fs.vlan = (mode & 4) ? 42 : 0;
        if (v6) {
            uint8_t s6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(mode >> 3),
                              b1};
            fs.src = Endpoint{IpAddress::from_v6(s6), 5060};
            fs.dst = *Endpoint::parse("[2001:db8::1]:5060");
        } else {
            uint8_t s4[4] = {203, 0, 113, static_cast<uint8_t>(mode ^ b1)};
            uint32_t be;
            std::memcpy(&be, s4, 4);
            fs.src = Endpoint{IpAddress::from_v4_be(be), static_cast<uint16_t>(5060 + (mode >> 3))};
            fs.dst = *Endpoint::parse((b1 & 1) ? "192.0.2.2:5060" : "192.0.2.1:5060");
        }
        fs.payload = std::string_view(reinterpret_cast<const char*>(data), std::min<size_t>(size, 60000));
        test::Frame f = test::build_frame(fs);
        len = f.bytes.size();
        std::memcpy(frame, f.bytes.data(), len);
    }

    net::PacketView v;
    if (net::parse_frame(frame, len, v) != net::ParseStatus::udp) return 0;
    const Endpoint dst = net::destination_endpoint(frame, v);
    auto ref = w.snap->find_pool_by_vip(dst);
    if (!ref.pool) return 0;
    const uint8_t* payload = frame + v.payload_offset();
    sip::SipMessage msg;
    sip::SipParser::parse(payload, v.payload_len(), msg);
    if (msg.verdict == sip::Verdict::reject) return 0;
    if (msg.verdict == sip::Verdict::ok && msg.call_id.end() > v.payload_len()) abort();

    const Endpoint src = net::source_endpoint(frame, v);
    auto g = w.guard->check(ref.pool_index, payload, v.payload_len(), msg, src.ip, now_ns);
    // What the dataplane counts per pool: never a refused scan, at most one
    // scan or memo answer per database, none for a keepalive.
    if (g.scan_errors != 0) abort();
    const auto& rules = *w.guard->snapshot().pools()[ref.pool_index].protection->rules();
    if (g.scans + g.memo_hits > rules.databases()) abort();
    if (msg.verdict != sip::Verdict::ok && (g.scans | g.memo_hits)) abort();
    if (g.dropped()) return 0;
    const balance::PoolSnapshot* pool = ref.pool;
    if (g.action == protect::GuardDecision::Action::route) {
        if (g.route_pool >= w.snap->pools().size()) abort();
        pool = w.snap->pools()[g.route_pool].get();
    }

    balance::Decision d;
    if (msg.verdict == sip::Verdict::keepalive) {
        d = balance::pick(*pool, std::hash<Endpoint>{}(src), false, now_s, nullptr);
    } else {
        uint64_t key = balance::hash_call_id(payload + msg.call_id.offset, msg.call_id.length, pool->seed());
        bool dialog = msg.kind == sip::Kind::request && msg.method == sip::Method::invite;
        d = balance::pick(*pool, key, dialog, now_s, w.affinity.get());
    }
    if (!d.entry) return 0;
    const Endpoint& backend = d.entry->address;
    if (backend.ip.family != dst.ip.family) return 0;
    if (!net::decrement_ttl(frame, v)) return 0;
    if (!net::dnat(frame, v, backend)) abort();

    // The rewritten frame is still valid, checksums included, and goes to the backend.
    net::PacketView after;
    if (net::parse_frame(frame, len, after) != net::ParseStatus::udp) abort();
    if (net::destination_endpoint(frame, after) != backend) abort();
    if (net::source_endpoint(frame, after) != src) abort();
    if (after.ttl + 1 != v.ttl) abort();
    return 0;
}
