// The ICMP errors a worker sends about datagrams it does not deliver: time
// exceeded, port unreachable, fragmentation needed. One token bucket per
// worker bounds them all (dataplane.icmp_error_rate / icmp_error_burst).
// Like echo replies they go back out of the ingress port to the MAC the
// datagram came from, on the same VLAN: the sender (or the router that
// delivered its packet) is there, whatever the route table says.
#pragma once

#include <cstdint>
#include <cstring>

#include "forward_context.h"
#include "siplb/net/icmp.h"
#include "stage.h"

namespace siplb::dataplane {

// `frame_len` bytes of `f`, rewritten into an answer, back to the MAC `f` came from.
inline Action transmit_back(const Frame& f, const PortContext& port, size_t frame_len) noexcept {
    std::memcpy(f.data, f.data + 6, 6);
    std::memcpy(f.data + 6, port.mac.bytes.data(), 6);
    Action a;
    a.kind = Action::Kind::transmit;
    a.port = f.in_port;
    a.len = static_cast<uint16_t>(frame_len);
    return a;
}

class IcmpErrors {
public:
    IcmpErrors(const ForwardContext& ctx, WorkerCounters& counters) noexcept : ctx_(ctx), c_(counters) {}
    IcmpErrors(const IcmpErrors&) = delete;
    IcmpErrors& operator=(const IcmpErrors&) = delete;

    // Counts the datagram's drop (`reason`), then answers it with the error
    // from `source`, in its place.
    Action answer(const Frame& f, uint8_t type, uint8_t code, const IpAddress* source, uint64_t now_ms,
                  DropReason reason) noexcept {
        c_.drop(reason);
        return send(f, type, code, source, now_ms, 0);
    }
    // A forwarding drop that may earn an ICMP error: "fragmentation needed"
    // to the sender of an IPv4 DF datagram too big for the egress MTU (the
    // drop itself is already counted). Other drops come back unchanged.
    Action answer_too_big(Action dropped, const Frame& f, uint64_t now_ms) noexcept;

private:
    // The error in place of the datagram; a drop Action (frame untouched)
    // when there is no source address or no token.
    Action send(const Frame& f, uint8_t type, uint8_t code, const IpAddress* source, uint64_t now_ms,
                uint32_t rest) noexcept;

    const ForwardContext& ctx_;
    WorkerCounters& c_;
    net::TokenBucket bucket_{ctx_.icmp_error_rate_per_s, ctx_.icmp_error_burst};
};

}  // namespace siplb::dataplane
