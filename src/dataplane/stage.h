// What the forwarding stages take (a Frame, parsed once by the Forwarder)
// and give back (an Action for the worker), free of DPDK.
#pragma once

#include <cstdint>

#include "counters.h"
#include "siplb/net/packet.h"

namespace siplb::dataplane {

class Tap;

// A received frame, rewritten in place by the stage that handles it.
struct Frame {
    uint8_t* data = nullptr;
    uint16_t len = 0;
    uint16_t headroom = 0;  // writable bytes before data
    uint16_t tailroom = 0;  // writable bytes after data + len
    uint16_t in_port = 0;   // ForwardContext::ports index it arrived on
    Tap* tap = nullptr;     // capture or mirror active (tap.h): the stages ask it; nullptr: nobody looks
    net::PacketView view;   // as parse_frame() found it on arrival
};

// What to do with a frame. Eight bytes, so it comes back in one register:
// built field by field in memory and copied out (as a 12- or 40-byte
// struct is), it cost a store-forwarding stall per frame.
struct Action {
    enum class Kind : uint8_t { drop, transmit };
    Kind kind = Kind::drop;
    uint8_t flags = 0;  // kResolve | kFragment | kTooBig | kToKernel | kCapture | kMirror
    uint16_t port = 0;  // ForwardContext::ports index to transmit on
    int16_t shift = 0;  // new frame start relative to the old one (L2 header grew: < 0)
    uint16_t len = 0;   // transmit: new frame length; drop with kTooBig: the next-hop MTU

    // Set with a no_neighbor drop, or with a transmit to a stale neighbor:
    // send an ARP request (IPv4) or a neighbor solicitation (IPv6) for
    // Forwarder::resolve_target() on `port`.
    static constexpr uint8_t kResolve = 1;
    // Transmit: the IP datagram is larger than the egress port's MTU and may
    // be fragmented (IPv6, or IPv4 without DF); the worker cuts it into
    // pieces of at most ports[port].mtu bytes.
    static constexpr uint8_t kFragment = 2;
    // Drop (counted mtu_exceeded): an IPv4 datagram with DF does not fit the
    // egress MTU; the caller may answer "fragmentation needed" with the MTU
    // in `len`. Nothing in the frame has been changed.
    static constexpr uint8_t kTooBig = 4;
    // Drop (counted not_for_us): the frame is not for the balancer and has
    // not been changed; a port with a kernel path hands it to the kernel
    // (SSH, BGP, ARP replies, answers to the node's own probes).
    static constexpr uint8_t kToKernel = 8;

    // Transmit: the tap (tap.h) wants a copy of this datagram for
    // `siplbctl capture` (as received and as sent) / for the HEP mirror;
    // the worker calls Tap::after() with the frame as sent.
    static constexpr uint8_t kCapture = 16;
    static constexpr uint8_t kMirror = 32;
    static constexpr uint8_t kTapped = kCapture | kMirror;

    bool resolve() const noexcept { return flags & kResolve; }
    bool fragment() const noexcept { return flags & kFragment; }
    uint16_t too_big_mtu() const noexcept { return (flags & kTooBig) ? len : 0; }
    bool to_kernel() const noexcept { return flags & kToKernel; }
    bool tapped() const noexcept { return flags & kTapped; }
};
static_assert(sizeof(Action) == 8, "Action is returned in one register");

// Counts the drop.
inline Action drop(WorkerCounters& c, DropReason r) noexcept {
    c.drop(r);
    return Action{};
}

// Counts a not_for_us drop of a frame left untouched: the kernel's, if the port has a kernel path.
inline Action not_for_us(WorkerCounters& c) noexcept {
    c.drop(DropReason::not_for_us);
    Action a;
    a.flags = Action::kToKernel;
    return a;
}

}  // namespace siplb::dataplane
