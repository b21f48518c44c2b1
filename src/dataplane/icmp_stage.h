// ICMP stage: echo replies for our addresses, the errors siplb answers
// undeliverable UDP with (time exceeded, port unreachable: IcmpErrors) and
// customers' errors about VIP datagrams, passed on to the backend that sent
// them (the quoted datagram's Call-ID names it).
#pragma once

#include <cstdint>

#include "egress.h"
#include "forward_context.h"
#include "icmp_errors.h"
#include "siplb/net/icmp.h"
#include "siplb/sip/parser.h"
#include "stage.h"
#include "to_backend_stage.h"

namespace siplb::dataplane {

class IcmpStage {
public:
    IcmpStage(const ForwardContext& ctx, WorkerCounters& counters, Egress& egress, ToBackendStage& to_backend,
              IcmpErrors& errors) noexcept
        : ctx_(ctx), c_(counters), egress_(egress), to_backend_(to_backend), errors_(errors) {}
    IcmpStage(const IcmpStage&) = delete;
    IcmpStage& operator=(const IcmpStage&) = delete;

    // ICMP, or ICMPv6 other than router/neighbor discovery and redirects (NeighborStage).
    static bool is_icmp(const uint8_t* frame, const net::PacketView& v) noexcept;
    // An ICMP message on its port's VLAN.
    Action handle(const Frame& f, const balance::DataplaneSnapshot* snap, uint32_t now_s, uint64_t now_ms) noexcept;

    // A UDP datagram whose TTL runs out here.
    Action ttl_expired(const Frame& f, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept;
    // A UDP datagram neither to a pool's VIP:port nor from a backend.
    Action unmatched_udp(const Frame& f, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept;

private:
    bool find_quoted_call_id(const uint8_t* p, size_t len, sip::Span& out) noexcept;

    const ForwardContext& ctx_;
    WorkerCounters& c_;
    Egress& egress_;
    ToBackendStage& to_backend_;
    IcmpErrors& errors_;
    sip::SipMessage msg_;  // reused: no per-packet construction
};

}  // namespace siplb::dataplane
