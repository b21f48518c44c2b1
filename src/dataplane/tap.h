// The tap: what a worker copies for operators looking at traffic, as a small
// stage beside the forwarding ones. The to-backend and to-client stages ask
// it, once they know the pool, the backend and the Call-ID, whether a
// balanced datagram is wanted (Action::kCapture for `siplbctl capture`,
// Action::kMirror for the HEP mirror); the worker then hands it the frame as
// sent, and the tap also writes the frame as received from the headers it
// kept before the stages rewrote them (the payload is never rewritten and
// stays where it was). Slots go into bounded per-worker rings (slot_ring.h)
// drained by the control thread; a full ring loses the copy, counted.
//
// With no capture running and no mirror configured begin_burst() returns
// nullptr and the stages see Frame::tap == nullptr: one predictable branch.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "counters.h"
#include "siplb/dataplane/capture.h"
#include "siplb/sip/parser.h"
#include "slot_ring.h"
#include "stage.h"

namespace siplb::balance {
class PoolSnapshot;
}

namespace siplb::dataplane {

// A running capture: published by the control thread (Dataplane), read by
// the workers once per burst, freed after a grace period.
struct CaptureSession {
    CaptureFilter filter;
    std::vector<std::unique_ptr<SlotRing<CaptureSlot>>> rings;  // one per worker
};

// What the workers need of [mirror], fixed while the dataplane runs.
struct MirrorSelect {
    std::vector<std::string> pools;  // empty: all
    uint64_t sample_max = ~0ull;     // a call is mirrored when its Call-ID hash is <= this
    uint32_t rate_per_worker = 0;    // datagrams per second
    static MirrorSelect from(const MirrorSpec& spec, unsigned workers) noexcept;
};

// One balanced datagram as the stage that forwards it sees it.
struct TapSubject {
    const Frame* frame = nullptr;
    const std::string* pool = nullptr;  // name of the pool it is balanced in
    Endpoint client, backend;
    bool to_backend = true;            // client -> backend; else backend -> client
    const uint8_t* call_id = nullptr;  // nullptr: none (keepalive, or not parsed)
    uint16_t call_id_len = 0;
    uint64_t now_ms = 0;

    // A client datagram to `backend`, before its destination is rewritten.
    static TapSubject to_backend_of(const Frame& f, const balance::PoolSnapshot& pool, const Endpoint& backend,
                                    const sip::SipMessage& msg, uint64_t now_ms) noexcept;
    // A backend's datagram to a client, before its source is rewritten.
    // `msg`: its parse, or nullptr when it was not parsed.
    static TapSubject to_client_of(const Frame& f, const balance::PoolSnapshot& pool, const sip::SipMessage* msg,
                                   uint64_t now_ms) noexcept;
};

bool capture_matches(const CaptureFilter& filter, const TapSubject& s) noexcept;
// Pool and sampling only (the rate limit is the Tap's).
bool mirror_selects(const MirrorSelect& sel, const TapSubject& s) noexcept;

class Tap {
public:
    Tap(unsigned worker, WorkerCounters& counters) noexcept : worker_(worker), c_(counters) {}
    Tap(const Tap&) = delete;
    Tap& operator=(const Tap&) = delete;

    // Before the worker runs: where captures are published, and the mirror.
    void attach_capture(const std::atomic<CaptureSession*>* session) noexcept { published_ = session; }
    void attach_mirror(const MirrorSelect* sel, SlotRing<MirrorSlot>* ring) noexcept {
        mirror_ = sel;
        mirror_ring_ = ring;
    }

    // Once per burst: this tap when someone looks, else nullptr.
    Tap* begin_burst() noexcept {
        session_ = published_ ? published_->load(std::memory_order_acquire) : nullptr;
        return (session_ || mirror_) ? this : nullptr;
    }
    // Before the stages see a frame: keeps its headers for the copy as received.
    void before(const uint8_t* frame, uint16_t len) noexcept {
        if (session_) {
            scratch_len_ = len < kScratch ? len : kScratch;
            std::memcpy(scratch_, frame, scratch_len_);
        }
    }
    // Whether the to-client stage must parse this payload for its Call-ID
    // (a reply is otherwise often forwarded unparsed): always for the
    // mirror; for a capture's Call-ID only when those bytes occur in it, so
    // that a capture of one call does not parse every reply.
    bool wants_call_id(const uint8_t* payload, size_t len) const noexcept {
        if (mirror_) return true;
        if (!session_ || session_->filter.call_id.empty()) return false;
        const std::string& id = session_->filter.call_id;
        return memmem(payload, len, id.data(), id.size()) != nullptr;
    }
    // Stage: Action flags (kCapture, kMirror) for a balanced datagram.
    uint8_t match(const TapSubject& s) noexcept;
    // Worker: the frame as it leaves (`sent`, a.len bytes), for the Action
    // match() flagged; the frame as received started at sent - a.shift.
    void after(const Action& a, const uint8_t* sent) noexcept;

    static constexpr uint16_t kScratch = 128;  // covers L2 (one tag) + IPv4 with options / IPv6 + UDP

private:
    bool take_token(uint64_t now_ms) noexcept;
    void copy_capture(const Action& a, const uint8_t* sent, uint64_t ts_ns) noexcept;
    void copy_mirror(const Action& a, const uint8_t* sent, uint64_t ts_ns) noexcept;

    unsigned worker_;
    WorkerCounters& c_;
    const std::atomic<CaptureSession*>* published_ = nullptr;
    CaptureSession* session_ = nullptr;  // this burst's
    const MirrorSelect* mirror_ = nullptr;
    SlotRing<MirrorSlot>* mirror_ring_ = nullptr;
    uint64_t tokens_ = 0, tokens_ms_ = 0;  // rate limit: thousandths of a datagram
    // What match() found for after().
    uint16_t orig_len_ = 0, payload_offset_ = 0, payload_len_ = 0, call_id_offset_ = 0, call_id_len_ = 0;
    Endpoint mirror_src_, mirror_dst_;
    uint16_t scratch_len_ = 0;
    uint8_t scratch_[kScratch];
};

}  // namespace siplb::dataplane
