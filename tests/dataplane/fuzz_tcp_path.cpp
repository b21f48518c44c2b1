// fuzz-sources: src/common/endpoint.cpp src/common/table_memory.cpp src/net/packet.cpp src/net/checksum.cpp src/net/nat.cpp src/net/arp.cpp src/net/ndp.cpp src/net/icmp.cpp src/net/neighbor_table.cpp src/net/route_table.cpp src/sip/parser.cpp src/sip/find_header.cpp src/sip/dialog_ref.cpp src/protect/rules.cpp src/protect/rate_limiter.cpp src/protect/guard.cpp src/balance/hash.cpp src/balance/maglev.cpp src/balance/affinity.cpp src/balance/connection_table.cpp src/balance/rcu.cpp src/balance/snapshot.cpp src/balance/pick.cpp src/balance/table_size.cpp src/balance/key.cpp src/dataplane/forwarder.cpp src/dataplane/egress.cpp src/dataplane/neighbor_stage.cpp src/dataplane/to_backend_stage.cpp src/dataplane/to_client_stage.cpp src/dataplane/tcp_stage.cpp src/dataplane/icmp_stage.cpp src/dataplane/icmp_errors.cpp src/dataplane/counters.cpp src/dataplane/tap.cpp
// fuzz-pkg: libhs libxxhash
// fuzz-corpus: tests/dataplane/fuzz_tcp_seeds
//
// The worker's TCP path through the same Forwarder the worker runs, without
// EAL: SIP over TCP and TLS to tcp:// and tls:// VIPs (an IPv4 and an IPv6
// nat pool, an ipip pool) and the backends' replies, through a small shared
// connection table (so entries are evicted, capped per source and expire)
// and the idle sweep. Every transmitted segment must parse again with valid
// IP and TCP checksums, reach a backend of the pool at the port of its VIP's
// kind (or a client from a VIP of the pool), and all segments of one client
// connection the same backend (the snapshot never changes, so the table pick
// and the connection entry agree). The connection counters must stay within
// the table: tcp.active never below the live entries or above the capacity.
//
// Input byte 0 bit 0 set: the rest is one raw frame (any bytes) on the port
// byte 1 names. Else the rest is a sequence of segments, each 8 bytes of
// header then its payload:
//   h[0] bits 0-2: what: 0-3 client -> VIP (tcp v4, tls v4, tcp v6, tls v6),
//        4 client -> the ipip pool's VIP, 5-6 the backend's reply to the
//        client (tcp, tls; from the backend the client's segments reached,
//        else the one h[4] names), 7 an idle poll (no frame: the idle sweep); bit 3: VLAN tag;
//        bit 4: TTL 1; bits 5-7: client index (with h[1] bits 0-2: 64 clients)
//   h[1] bits 3-7: port of the client
//   h[2]: TCP flags, as they are (SYN, data, FIN, RST and any mix)
//   h[3]: damage: bit 0 data offset = h[4] low nibble, bit 1 cut the frame by
//        h[4] bytes, bit 2 options of (h[4] >> 4) words, bit 3 flip a payload
//        or checksum bit, bit 4 IP length off by h[4], bit 5 NIC verified the
//        checksum (no software check), bits 6-7 in port
//   h[4]: the damage's parameter
//   h[5]: payload length / 4 (the bytes that follow, as many as there are)
//   h[6]: time step: below 200 in 10 ms, else (h[6] - 199) minutes
//   h[7]: sequence number low byte
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "../../src/dataplane/forwarder.h"
#include "../support/frame_builder.h"
#include "siplb/balance/connection_table.h"
#include "siplb/net/packet.h"

using namespace siplb;

namespace {

const MacAddress kExtMac{{0x02, 0, 0, 0, 0x01, 0x01}};
const MacAddress kIntMac{{0x02, 0, 0, 0, 0x02, 0x02}};
const MacAddress kPeerMac{{0x02, 0, 0, 0, 0x00, 0xfe}};

// VIPs: tcp and tls of the IPv4 nat pool, of the IPv6 one, then the ipip pool's.
const Endpoint kVips[5] = {*Endpoint::parse("198.51.100.20:5060"), *Endpoint::parse("198.51.100.20:5061"),
                           *Endpoint::parse("[2001:db8:100::20]:5060"), *Endpoint::parse("[2001:db8:100::20]:5061"),
                           *Endpoint::parse("198.51.100.30:5060")};
constexpr bool kVipTls[5] = {false, true, false, true, false};
// Two backends of each nat pool (TLS on 5061 and 5071), then the ipip pool's.
const Endpoint kBackends[5] = {*Endpoint::parse("203.0.113.11:5060"), *Endpoint::parse("203.0.113.12:5060"),
                               *Endpoint::parse("[2001:db8:113::11]:5060"), *Endpoint::parse("[2001:db8:113::12]:5060"),
                               *Endpoint::parse("203.0.113.21:5060")};
constexpr uint16_t kTlsPorts[5] = {5061, 5071, 5061, 5071, 5061};
constexpr uint32_t kClients = 64;
constexpr uint32_t kCapacity = 64;  // 16 buckets: evictions, full buckets and the source cap all happen

struct World {
    std::unique_ptr<const balance::DataplaneSnapshot> snap;
    std::unique_ptr<balance::AffinityTable> affinity;
    std::unique_ptr<balance::ConnectionTable> connections;
    net::NeighborTable neighbors{64, 0};
    dataplane::ForwardContext ctx;
    std::unique_ptr<dataplane::WorkerCounters> counters = std::make_unique<dataplane::WorkerCounters>();
    std::unique_ptr<dataplane::Forwarder> forwarder;
};

balance::PoolSpec pool_spec(const char* name, uint32_t slot, std::initializer_list<int> vips,
                            std::initializer_list<int> backends) {
    balance::PoolSpec s;
    s.name = name;
    s.counter_slot = slot;
    for (int v : vips) s.tcp_listen.push_back({kVips[v], kVipTls[v]});
    for (int b : backends) s.backends.push_back({.address = kBackends[b], .tls_port = kTlsPorts[b]});
    s.table_size = 251;
    s.tcp_idle_s = 120;
    s.tcp_close_grace_s = 5;
    s.tcp_handshake_s = 10;
    return s;
}

World& world() {
    // On the heap: the Forwarder and the context keep references into it.
    static World* const world = [] {
        auto* made = new World;
        World& w = *made;
        auto nat4 = balance::PoolSnapshot::build(pool_spec("trunk", 0, {0, 1}, {0, 1}), 1);
        auto nat6 = balance::PoolSnapshot::build(pool_spec("trunk6", 1, {2, 3}, {2, 3}), 1);
        balance::PoolSpec tunnel_spec = pool_spec("tunnel", 2, {4}, {4});
        tunnel_spec.mode = balance::ForwardMode::ipip;
        auto tunnel = balance::PoolSnapshot::build(tunnel_spec, 1);
        if (!nat4 || !nat6 || !tunnel) abort();
        auto d = balance::DataplaneSnapshot::build({nat4.value(), nat6.value(), tunnel.value()}, 1);
        if (!d) abort();
        w.snap = std::move(d).value();
        w.affinity = balance::AffinityTable::create(1024).value();
        w.connections = balance::ConnectionTable::create(kCapacity, 16).value();

        dataplane::PortContext ext, in;
        ext.name = "ext";
        ext.mac = kExtMac;
        ext.addresses = {*Prefix::parse("198.51.100.1/24", true), *Prefix::parse("2001:db8:100::1/64", true)};
        ext.source_v4 = *IpAddress::parse("198.51.100.1");
        ext.source_v6 = *IpAddress::parse("2001:db8:100::1");
        in.name = "int";
        in.mac = kIntMac;
        in.addresses = {*Prefix::parse("203.0.113.1/24", true), *Prefix::parse("2001:db8:113::1/64", true)};
        in.source_v4 = *IpAddress::parse("203.0.113.1");
        in.source_v6 = *IpAddress::parse("2001:db8:113::1");
        w.ctx.ports = {ext, in};
        auto routes =
            net::RouteTable::build({{"ext", ext.addresses}, {"int", in.addresses}},
                                   {{*Prefix::parse("192.0.2.0/24"), *IpAddress::parse("198.51.100.254"), ""},
                                    {*Prefix::parse("2001:db8:2::/48"), *IpAddress::parse("2001:db8:100::fe"), ""}});
        if (!routes) abort();
        w.ctx.routes = std::move(routes).value();
        (void)w.neighbors.learn(*IpAddress::parse("198.51.100.254"), kPeerMac, 0, true);
        (void)w.neighbors.learn(*IpAddress::parse("2001:db8:100::fe"), kPeerMac, 0, true);
        for (const Endpoint& b : kBackends) (void)w.neighbors.learn(b.ip, kPeerMac, 1, true);
        w.ctx.neighbors = &w.neighbors;
        w.ctx.affinity = w.affinity.get();
        w.ctx.connections = w.connections.get();
        w.ctx.connection_source_cap = 6;
        w.ctx.syn_rate_per_s = 50;
        w.ctx.syn_burst = 20;
        w.forwarder = std::make_unique<dataplane::Forwarder>(w.ctx, *w.counters);
        return made;
    }();
    return *world;
}

uint64_t now_ms = 1'000'000'000ull;

Endpoint client_of(uint32_t i, bool v6, uint8_t port_bits) {
    const auto port = static_cast<uint16_t>(30000 + port_bits);
    if (v6) {
        uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(1 + i)};
        return Endpoint{IpAddress::from_v6(a), port};
    }
    Endpoint e = *Endpoint::parse("192.0.2.0:1");
    e.ip.bytes[3] = static_cast<uint8_t>(1 + i);
    e.port = port;
    return e;
}

// A signed view of a level counter (levels move down by wrapping adds).
int64_t level(const std::atomic<uint64_t>& c) { return static_cast<int64_t>(c.load(std::memory_order_relaxed)); }

// The counters stay within the table.
void check_levels(World& w) {
    int64_t active = 0;
    for (uint32_t slot : {0u, 1u, 2u}) {
        const int64_t a = level(w.counters->pools[slot].tcp_active);
        if (a < 0 || a > int64_t{kCapacity}) abort();
        active += a;
    }
    if (active < static_cast<int64_t>(w.connections->count_live(static_cast<uint32_t>(now_ms / 1000)))) abort();
}

// Backend of each (client, VIP) connection seen in this input; -1: none yet.
int8_t g_backend_of[kClients][5][32];

constexpr size_t kHeadroom = 128;
uint8_t g_buf[kHeadroom + 4200];

// Runs `len` bytes at g_buf + kHeadroom through the Forwarder; the frame as
// transmitted, if it was, in *out.
dataplane::Action run(World& w, size_t len, uint16_t port, bool nic_verified, std::pair<uint8_t*, size_t>* out) {
    net::ParseOptions parse;
    parse.verify_udp_checksum = !nic_verified;
    const dataplane::Action a = w.forwarder->process(g_buf + kHeadroom, static_cast<uint16_t>(len), kHeadroom,
                                                     static_cast<uint16_t>(sizeof(g_buf) - kHeadroom - len), port,
                                                     w.snap.get(), static_cast<uint32_t>(now_ms / 1000), now_ms, parse);
    if (a.kind == dataplane::Action::Kind::transmit) {
        if (a.port > 1 || int(kHeadroom) + a.shift < 0 || kHeadroom + a.shift + a.len > sizeof(g_buf)) abort();
        *out = {g_buf + kHeadroom + a.shift, a.len};
    }
    check_levels(w);
    return a;
}

// A transmitted segment (nat pool or reply) parses with valid checksums; its endpoints.
void parse_out(const std::pair<uint8_t*, size_t>& out, Endpoint& src, Endpoint& dst) {
    net::PacketView v;
    if (net::parse_frame(out.first, out.second, v) != net::ParseStatus::not_udp || v.ip_proto != net::kIpProtoTcp)
        abort();
    net::TcpSegment seg;
    if (net::parse_tcp(out.first, v, seg, true) != net::TcpStatus::ok) abort();
    src = net::source_endpoint(out.first, v);
    dst = net::destination_endpoint(out.first, v);
}

void raw(World& w, const uint8_t* data, size_t size, uint16_t port) {
    const size_t len = std::min(size, sizeof(g_buf) - kHeadroom - 64);
    std::memcpy(g_buf + kHeadroom, data, len);
    std::pair<uint8_t*, size_t> out;
    const dataplane::Action a = run(w, len, port, false, &out);
    if (a.kind != dataplane::Action::Kind::transmit) return;
    // Whatever went out still has valid IP (and, for TCP, TCP) checksums:
    // the input's were verified and the rewrite is incremental.
    net::PacketView v;
    const net::ParseStatus st = net::parse_frame(out.first, out.second, v);
    if (st == net::ParseStatus::bad_ip_checksum || st == net::ParseStatus::bad_udp_checksum) abort();
    if (st == net::ParseStatus::not_udp && v.ip_proto == net::kIpProtoTcp) {
        net::TcpSegment seg;
        if (net::parse_tcp(out.first, v, seg, true) == net::TcpStatus::bad_checksum) abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    World& w = world();
    if (data[0] & 1) {
        now_ms += data[1];
        raw(w, data + 2, size - 2, data[1] & 1);
        return 0;
    }
    std::memset(g_backend_of, -1, sizeof g_backend_of);
    data += 1;
    size -= 1;
    while (size >= 8) {
        const uint8_t* h = data;
        data += 8;
        size -= 8;
        now_ms += h[6] < 200 ? uint64_t{h[6]} * 10 : uint64_t{h[6] - 199u} * 60'000;
        const unsigned what = h[0] & 7;
        if (what == 7) {
            w.forwarder->sweep_idle(static_cast<uint32_t>(now_ms / 1000));
            check_levels(w);
            continue;
        }
        const uint32_t ci = ((h[0] >> 5) | (h[1] & 7) << 3) % kClients;
        const uint8_t port_bits = h[1] >> 3;
        const size_t payload_len = std::min<size_t>(size, size_t{h[5]} * 4);
        test::TcpFrameSpec s;
        s.vlan = (h[0] & 8) ? 7 : 0;  // no port has this VLAN: dropped as a mismatch
        s.ttl = (h[0] & 16) ? 1 : 64;
        s.flags = h[2];
        s.seq = 1000u + h[7];
        s.ack = 77;
        s.payload = std::string_view(reinterpret_cast<const char*>(data), payload_len);
        data += payload_len;
        size -= payload_len;
        const uint8_t damage = h[3], param = h[4];
        if (damage & 4)
            for (unsigned i = 0; i < ((param >> 4) % 11u) * 4; ++i)
                s.options.push_back(i == 0 ? 2 : static_cast<uint8_t>(param + i));  // MSS kind, then anything
        int vip = -1, backend = -1;
        bool v6;
        if (what <= 4) {
            vip = static_cast<int>(what);
            v6 = kVips[vip].ip.is_v6();
            s.src = client_of(ci, v6, port_bits);
            s.dst = kVips[vip];
            s.src_mac = kPeerMac;
            s.dst_mac = kExtMac;
        } else {
            // A reply to the client's connection: from the backend its
            // segments reached, else from the one h[4] names.
            vip = what == 5 ? 0 : 1;
            backend = g_backend_of[ci][vip][port_bits] >= 0       ? g_backend_of[ci][vip][port_bits]
                      : g_backend_of[ci][vip + 2][port_bits] >= 0 ? g_backend_of[ci][vip + 2][port_bits]
                                                                  : param % 4;
            v6 = kBackends[backend].ip.is_v6();
            if (v6) vip += 2;
            s.src = kBackends[backend];
            if (kVipTls[vip]) s.src.port = kTlsPorts[backend];
            s.dst = client_of(ci, v6, port_bits);
            s.src_mac = kPeerMac;
            s.dst_mac = kIntMac;
        }
        test::Frame f = test::build_tcp_frame(s);
        std::vector<uint8_t>& b = f.bytes;
        if (damage & 1) b[f.l4 + 12] = static_cast<uint8_t>((param & 0x0F) << 4 | (b[f.l4 + 12] & 0x0F));
        if ((damage & 8) && b.size() > f.l4 + 17) b[param % 2 ? b.size() - 1 : f.l4 + 16] ^= 0x10;
        if (damage & 16) {
            const size_t at = f.l3 + (v6 ? 4 : 2);
            test::put16(b, at, static_cast<uint16_t>(test::get16(b, at) + (param & 0x80 ? -(param & 0x7F) : param)));
        }
        size_t len = b.size();
        if (damage & 2) len -= std::min<size_t>(len, param);
        if (len > sizeof(g_buf) - kHeadroom - 64) continue;
        std::memcpy(g_buf + kHeadroom, b.data(), len);
        const uint16_t in_port = (damage >> 6) & 1;
        const bool nic_verified = damage & 32;
        const bool intact = !(damage & (1 | 2 | 8 | 16));  // the checks below compare with what was sent
        std::pair<uint8_t*, size_t> out;
        const dataplane::Action a = run(w, len, in_port, nic_verified, &out);
        if (a.kind != dataplane::Action::Kind::transmit) continue;
        if (s.vlan || s.ttl == 1) abort();  // a VLAN no port has, or a datagram that expires here
        if (!intact) {
            // A damaged segment that went out anyway: the NIC said its
            // checksum was good, or the damage left it a valid segment.
            continue;
        }
        if (vip == 4) {
            // ipip: the segment as received inside IPv4 to the pool's backend.
            net::PacketView v;
            net::parse_frame(out.first, out.second, v);
            if (v.ip_version != 4 || v.ip_proto != 4) abort();
            if (net::destination_endpoint(out.first, v).ip != kBackends[4].ip) abort();
            continue;
        }
        Endpoint src, dst;
        parse_out(out, src, dst);
        if (backend < 0) {
            // To a backend of the VIP's pool, at the port of the VIP's kind.
            int got = -1;
            for (int i = v6 ? 2 : 0; i < (v6 ? 4 : 2); ++i)
                if (dst.ip == kBackends[i].ip && dst.port == (kVipTls[vip] ? kTlsPorts[i] : kBackends[i].port)) got = i;
            if (got < 0 || src != s.src) abort();
            int8_t& seen = g_backend_of[ci][vip][port_bits];
            if (seen >= 0 && seen != got) abort();
            seen = static_cast<int8_t>(got);
        } else {
            // To the client, from a VIP of the pool of the reply's kind and family.
            if (dst != s.dst) abort();
            bool from_vip = false;
            for (int i = 0; i < 4; ++i)
                from_vip |= src == kVips[i] && kVipTls[i] == kVipTls[vip] && kVips[i].ip.is_v6() == v6;
            if (!from_vip) abort();
        }
    }
    return 0;
}
