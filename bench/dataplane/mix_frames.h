// Frames of a realistic SIP mix for the dataplane benchmarks: requests from
// clients (behind a gateway) to the VIP, responses from the backend the
// Maglev table names for the call, toward the client.
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

inline std::unique_ptr<const balance::DataplaneSnapshot> bench_snapshot(const std::vector<Endpoint>& bs) {
    balance::PoolSpec spec;
    spec.name = "bench";
    spec.counter_slot = 0;  // counted like a daemon pool
    spec.listen = {kVip};
    for (const auto& b : bs) spec.backends.push_back({b});
    auto pool = balance::PoolSnapshot::build(spec, 1);
    if (!pool) throw std::runtime_error(pool.message());
    auto dp = balance::DataplaneSnapshot::build({pool.value()}, 1);
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

}  // namespace siplb::bench
