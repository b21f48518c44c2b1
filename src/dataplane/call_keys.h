// How the to-backend and to-client stages key a datagram's call the same
// way: both must find the backend (or pool) the other direction chose.
#pragma once

#include <cstdint>
#include <cstring>

#include "siplb/balance/hash.h"
#include "siplb/net/packet.h"
#include "siplb/sip/parser.h"

namespace siplb::dataplane {

// Requests that open a dialog (or a subscription usage): their affinity
// entry lives for the dialog idle time and they count as calls.
inline bool creates_dialog(const sip::SipMessage& m) noexcept {
    return m.kind == sip::Kind::request &&
           (m.method == sip::Method::invite || m.method == sip::Method::subscribe || m.method == sip::Method::refer);
}

// The client's address:port hash that balances keepalives: of the source
// of a client datagram, or of the destination of a backend's answer.
inline uint64_t endpoint_hash(const uint8_t* frame, const net::PacketView& v, uint64_t seed,
                              bool client_is_source = true) noexcept {
    // Client address bytes then port, as on the wire: stable across nodes.
    uint8_t key[18];
    std::memcpy(key, frame + (client_is_source ? v.src_addr_offset() : v.dst_addr_offset()), v.addr_len());
    std::memcpy(key + v.addr_len(), frame + v.l4_offset + (client_is_source ? 0 : 2), 2);
    return balance::hash_call_id(key, v.addr_len() + 2u, seed);
}

}  // namespace siplb::dataplane
