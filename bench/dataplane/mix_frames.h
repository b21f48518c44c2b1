// Frames of a realistic SIP mix for the dataplane benchmarks: requests from
// clients (behind a gateway) to the VIP, responses from the backend the
// Maglev table names for the call, toward the client.
#pragma once

#include <string>
#include <vector>

#include "siplb/balance/hash.h"
#include "siplb/balance/snapshot.h"
#include "siplb/net/checksum.h"
#include "siplb/sip/parser.h"

namespace siplb::bench {

inline const MacAddress kPortMac{{0x02, 0, 0, 0, 0x01, 0x01}};
inline const MacAddress kPeerMac{{0x02, 0, 0, 0, 0x00, 0xfe}};
inline const Endpoint kVip = *Endpoint::parse("198.51.100.10:5060");

// RFC 2544 benchmarking range 198.18.0.0/15, on-link of the TX port.
inline std::vector<Endpoint> bench_backends(size_t n) {
    std::vector<Endpoint> out;
    for (size_t i = 0; i < n; ++i)
        out.push_back(*Endpoint::parse("198.18." + std::to_string(1 + i / 250) + "." + std::to_string(1 + i % 250) +
                                       ":5060"));
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

inline std::vector<uint8_t> udp_frame(const Endpoint& src, const Endpoint& dst, const std::string& payload) {
    std::vector<uint8_t> f(14 + 20 + 8 + payload.size());
    std::copy(kPortMac.bytes.begin(), kPortMac.bytes.end(), f.begin());
    std::copy(kPeerMac.bytes.begin(), kPeerMac.bytes.end(), f.begin() + 6);
    f[12] = 0x08;
    uint8_t* ip = f.data() + 14;
    ip[0] = 0x45;
    net::store_be16(ip + 2, static_cast<uint16_t>(20 + 8 + payload.size()));
    ip[8] = 64;
    ip[9] = 17;
    std::copy(src.ip.bytes.begin(), src.ip.bytes.begin() + 4, ip + 12);
    std::copy(dst.ip.bytes.begin(), dst.ip.bytes.begin() + 4, ip + 16);
    net::store_be16(ip + 10, net::ipv4_header_checksum(ip, 20));
    uint8_t* udp = ip + 20;
    net::store_be16(udp, src.port);
    net::store_be16(udp + 2, dst.port);
    net::store_be16(udp + 4, static_cast<uint16_t>(8 + payload.size()));
    std::copy(payload.begin(), payload.end(), udp + 8);
    net::store_be16(udp + 6, net::udp_checksum_ipv4(ip + 12, ip + 16, udp, 8 + payload.size()));
    return f;
}

inline std::vector<std::vector<uint8_t>> mix_frames(size_t count, const balance::DataplaneSnapshot& snap) {
    const auto& pool = *snap.pools()[0];
    std::vector<std::vector<uint8_t>> frames;
    for (const auto& msg : sip::generate_message_mix(count, 7)) {
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
