// ICMP stage: echo replies for our addresses, the errors siplb generates
// (time exceeded, port unreachable, fragmentation needed; rate-limited per
// worker) and customers' errors about VIP datagrams, passed on to the
// backend that sent them. Replies and generated errors go back out of the
// ingress port to the MAC they came from, on the same VLAN: the sender (or
// the router that delivered its packet) is there, whatever the route table
// says.
#pragma once

#include <cstdint>

#include "egress.h"
#include "forward_context.h"
#include "siplb/net/icmp.h"
#include "siplb/sip/parser.h"
#include "stage.h"
#include "to_backend_stage.h"

namespace siplb::dataplane {

class IcmpStage {
public:
    IcmpStage(const ForwardContext& ctx, WorkerCounters& counters, Egress& egress, ToBackendStage& to_backend) noexcept
        : ctx_(ctx), c_(counters), egress_(egress), to_backend_(to_backend) {}
    IcmpStage(const IcmpStage&) = delete;
    IcmpStage& operator=(const IcmpStage&) = delete;

    // ICMP, or ICMPv6 other than router/neighbor discovery and redirects (NeighborStage).
    static bool is_icmp(const uint8_t* frame, const net::PacketView& v) noexcept;
    // An ICMP message on its port's VLAN.
    Action handle(const Frame& f, const balance::DataplaneSnapshot* snap, uint32_t now_s, uint64_t now_ms) noexcept;

    // A forwarding drop that may earn an ICMP error: "fragmentation needed"
    // to the sender of an IPv4 DF datagram too big for the egress MTU (the
    // drop itself is already counted). Other drops come back unchanged.
    Action answer_too_big(Action dropped, const Frame& f, uint64_t now_ms) noexcept;
    // A UDP datagram whose TTL runs out here.
    Action ttl_expired(const Frame& f, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept;
    // A UDP datagram neither to a pool's VIP:port nor from a backend.
    Action unmatched_udp(const Frame& f, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept;

private:
    // Counts the offending datagram's drop, then answers it (send_error).
    Action error(const Frame& f, uint8_t type, uint8_t code, const IpAddress* source, uint64_t now_ms,
                 DropReason reason) noexcept {
        c_.drop(reason);
        return send_error(f, type, code, source, now_ms, 0);
    }
    // The error in place of the datagram, back out of its port, within the
    // per-worker rate; a drop Action (frame untouched) when there is no
    // source address or no token.
    Action send_error(const Frame& f, uint8_t type, uint8_t code, const IpAddress* source, uint64_t now_ms,
                      uint32_t rest) noexcept;
    bool find_quoted_call_id(const uint8_t* p, size_t len, sip::Span& out) noexcept;

    const ForwardContext& ctx_;
    WorkerCounters& c_;
    Egress& egress_;
    ToBackendStage& to_backend_;
    sip::SipMessage msg_;  // reused: no per-packet construction
    net::TokenBucket error_bucket_{ctx_.icmp_error_rate_per_s, ctx_.icmp_error_burst};
};

}  // namespace siplb::dataplane
