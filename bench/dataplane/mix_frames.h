// Frames of a realistic SIP mix for the dataplane benchmarks: requests from
// clients (behind a gateway) to the VIP, responses from the backend the
// Maglev table names for the call, toward the client. Over UDP, or over
// established TCP connections to a tcp:// VIP (the same messages as data
// segments).
#pragma once

#include <string>
#include <vector>

#include "siplb/balance/hash.h"
#include "siplb/balance/snapshot.h"
#include "siplb/sip/parser.h"
#include "support/frame_builder.h"
#include "support/message_mix.h"

namespace siplb::bench {

inline const MacAddress kPortMac{{0x02, 0, 0, 0, 0x01, 0x01}};
inline const MacAddress kPeerMac{{0x02, 0, 0, 0, 0x00, 0xfe}};
inline const Endpoint kVip = *Endpoint::parse("198.51.100.10:5060");

// RFC 2544 benchmarking range 198.18.0.0/15, on-link of the TX port.
inline std::vector<Endpoint> bench_backends(size_t n) {
    std::vector<Endpoint> out;
    for (size_t i = 0; i < n; ++i)
        out.push_back(
            *Endpoint::parse("198.18." + std::to_string(1 + i / 250) + "." + std::to_string(1 + i % 250) + ":5060"));
    return out;
}

// `tcp`: the pool listens on tcp://kVip instead (its connections balanced per client address and port).
// `protection`: the pool's rules and rate limits (one worker's guard).
inline std::unique_ptr<const balance::DataplaneSnapshot> bench_snapshot(
    const std::vector<Endpoint>& bs, bool tcp = false,
    std::shared_ptr<const protect::PoolProtection> protection = nullptr) {
    balance::PoolSpec spec;
    spec.name = "bench";
    spec.counter_slot = 0;  // counted like a daemon pool
    if (tcp)
        spec.tcp_listen = {{kVip, false}};
    else
        spec.listen = {kVip};
    for (const auto& b : bs) spec.backends.push_back({b});
    spec.protection = protection;
    auto pool = balance::PoolSnapshot::build(spec, 1);
    if (!pool) throw std::runtime_error(pool.message());
    auto dp = balance::DataplaneSnapshot::build({pool.value()}, 1, /*workers=*/protection ? 1 : 0);
    if (!dp) throw std::runtime_error(dp.message());
    return std::move(dp.value());
}

// From the peer to the port, so the forwarder takes it as received.
inline std::vector<uint8_t> udp_frame(const Endpoint& src, const Endpoint& dst, const std::string& payload) {
    return test::build_frame({.src_mac = kPeerMac, .dst_mac = kPortMac, .src = src, .dst = dst, .payload = payload})
        .bytes;
}

inline std::vector<std::vector<uint8_t>> mix_frames(size_t count, const balance::DataplaneSnapshot& snap) {
    const auto& pool = *snap.pools()[0];
    std::vector<std::vector<uint8_t>> frames;
    for (const auto& msg : test::generate_message_mix(count, 7)) {
        sip::SipMessage m;
        sip::SipParser::parse(reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), m);
        if (!m.ok()) continue;
        auto call = m.call_id.view(reinterpret_cast<const uint8_t*>(msg.data()));
        uint64_t h = balance::hash_call_id(call, pool.seed());
        Endpoint client =
            *Endpoint::parse("192.0.2." + std::to_string(1 + h % 250) + ":" + std::to_string(5060 + h % 50));
        frames.push_back(m.kind == sip::Kind::request
                             ? udp_frame(client, kVip, msg)
                             : udp_frame(pool.backends()[pool.table().lookup(h)].address, client, msg));
    }
    return frames;
}

// The same messages over `connections` TCP connections to tcp://kVip (a
// snapshot from bench_snapshot(bs, true)): first a SYN per connection, then
// each message as one data segment (ACK|PSH) of the connection its Call-ID
// hashes to, requests client -> VIP and responses from the backend the
// Maglev table picks for the connection. Replayed in a loop (net_pcap
// infinite_rx), the SYNs find their connection's entry: retransmissions,
// answered from the table.
inline std::vector<std::vector<uint8_t>> tcp_mix_frames(size_t count, const balance::DataplaneSnapshot& snap,
                                                        uint32_t connections) {
    const auto& pool = *snap.pools()[0];
    auto client = [](uint32_t c) {
        return *Endpoint::parse("192.0.2." + std::to_string(1 + c % 250) + ":" + std::to_string(10000 + c));
    };
    auto backend_of = [&](const Endpoint& c) {
        uint8_t key[6];
        std::copy(c.ip.bytes.begin(), c.ip.bytes.begin() + 4, key);
        key[4] = static_cast<uint8_t>(c.port >> 8);
        key[5] = static_cast<uint8_t>(c.port);
        return pool.backends()[pool.table().lookup(balance::hash_call_id(key, 6, pool.seed()))].address;
    };
    auto segment = [](const Endpoint& src, const Endpoint& dst, uint8_t flags, uint32_t seq, std::string_view data) {
        return test::build_tcp_frame({.src_mac = kPeerMac,
                                      .dst_mac = kPortMac,
                                      .src = src,
                                      .dst = dst,
                                      .flags = flags,
                                      .seq = seq,
                                      .ack = 1,
                                      .payload = data})
            .bytes;
    };
    constexpr uint8_t kSyn = 0x02, kPshAck = 0x18;
    std::vector<std::vector<uint8_t>> frames;
    for (uint32_t c = 0; c < connections; ++c) frames.push_back(segment(client(c), kVip, kSyn, 0, {}));
    std::vector<uint32_t> seq(connections, 1);
    for (const auto& msg : test::generate_message_mix(count, 7)) {
        sip::SipMessage m;
        sip::SipParser::parse(reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), m);
        if (!m.ok()) continue;
        const auto c = static_cast<uint32_t>(
            balance::hash_call_id(m.call_id.view(reinterpret_cast<const uint8_t*>(msg.data())), pool.seed()) %
            connections);
        const Endpoint cl = client(c);
        frames.push_back(m.kind == sip::Kind::request ? segment(cl, kVip, kPshAck, seq[c], msg)
                                                      : segment(backend_of(cl), cl, kPshAck, seq[c], msg));
        seq[c] += static_cast<uint32_t>(msg.size());
    }
    return frames;
}

}  // namespace siplb::bench
