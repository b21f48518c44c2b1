// What the workers copy for an operator looking at traffic: frames for
// `siplbctl capture` (as received and as sent) and SIP datagrams for the
// HEP mirror (with the client's and the backend's addresses). Workers write
// fixed-size slots into bounded per-worker rings; the control thread drains
// them through Dataplane (dataplane.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "siplb/common/endpoint.h"

namespace siplb::dataplane {

// Which balanced datagrams a capture takes; every field given must match.
// Frames of both directions match: `client` is the client's address whether
// it sends or receives, `backend` likewise.
struct CaptureFilter {
    std::string pool;                 // empty: any pool (the pool the datagram is balanced in)
    std::optional<Endpoint> backend;  // backend address:port
    std::optional<IpAddress> client;  // client address
    std::string call_id;              // empty: any; else the exact Call-ID (keepalives never match)

    bool operator==(const CaptureFilter&) const = default;
};

// One captured frame. 2 KiB, so a ring of them is a plain array.
struct CaptureSlot {
    static constexpr uint16_t kSnapLen = 2048 - 16;
    uint64_t ts_ns = 0;     // CLOCK_REALTIME when the worker copied it
    uint16_t orig_len = 0;  // the frame's length on the wire
    uint16_t cap_len = 0;   // bytes kept (<= kSnapLen)
    uint8_t sent = 0;       // 0: as received, 1: as sent (after the rewrite)
    uint8_t worker = 0;
    uint8_t pad[2]{};
    uint8_t data[kSnapLen];
};
static_assert(sizeof(CaptureSlot) == 2048);

// One SIP datagram for the HEP mirror: the addresses are the client's and
// the backend's (not the VIP's), as HEP receivers correlate by them.
struct MirrorSlot {
    static constexpr uint16_t kMaxPayload = 2048 - 64;
    uint64_t ts_ns = 0;  // CLOCK_REALTIME
    Endpoint src, dst;
    uint16_t payload_len = 0;
    uint16_t call_id_offset = 0;  // within the payload
    uint16_t call_id_len = 0;
    uint8_t data[kMaxPayload];
};

// [mirror]: which balanced SIP datagrams are sent to a HEP collector. The
// dataplane selects and queues them; the control side sends them.
struct MirrorSpec {
    std::optional<Endpoint> hep;     // collector; unset: no mirror
    std::vector<std::string> pools;  // empty: every pool
    double sample = 1.0;             // fraction of calls (by Call-ID hash: whole calls or nothing)
    uint32_t rate = 20000;           // datagrams per second at most (all workers together)
    uint32_t agent_id = 0;           // HEP capture agent id
    uint32_t ring = 1024;            // slots per worker (power of two)

    bool enabled() const noexcept { return hep.has_value(); }
    bool operator==(const MirrorSpec&) const = default;
};

}  // namespace siplb::dataplane
