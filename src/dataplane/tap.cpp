#include "tap.h"

#include <ctime>

#include "siplb/balance/hash.h"
#include "siplb/balance/snapshot.h"

namespace siplb::dataplane {

namespace {

// Sampling must not follow the pools' own hash seeds: a sample of calls that
// went to one backend would tell an operator nothing about the others.
constexpr uint64_t kSampleSeed = 0x6d6972726f72ull;  // "mirror"

Endpoint endpoint_at(const uint8_t* frame, const net::PacketView& v, bool source) noexcept {
    Endpoint e;
    if (v.ip_version == 6) e.ip.family = IpAddress::Family::v6;
    std::memcpy(e.ip.bytes.data(), frame + (source ? v.src_addr_offset() : v.dst_addr_offset()), v.addr_len());
    const uint8_t* port = frame + v.l4_offset + (source ? 0 : 2);
    e.port = static_cast<uint16_t>(port[0] << 8 | port[1]);
    return e;
}

uint64_t realtime_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

MirrorSelect MirrorSelect::from(const MirrorSpec& spec, unsigned workers) noexcept {
    MirrorSelect s;
    s.pools = spec.pools;
    if (spec.sample < 1.0)
        s.sample_max = spec.sample <= 0.0 ? 0 : static_cast<uint64_t>(spec.sample * 18446744073709551615.0);
    const unsigned n = workers ? workers : 1;
    s.rate_per_worker = spec.rate / n ? spec.rate / n : 1;
    return s;
}

TapSubject TapSubject::to_backend_of(const Frame& f, const balance::PoolSnapshot& pool, const Endpoint& backend,
                                     const sip::SipMessage& msg, uint64_t now_ms) noexcept {
    TapSubject s;
    s.frame = &f;
    s.pool = &pool.name();
    s.client = endpoint_at(f.data, f.view, true);
    s.backend = backend;
    s.to_backend = true;
    if (msg.verdict == sip::Verdict::ok && !msg.call_id.empty()) {
        s.call_id = f.data + f.view.payload_offset() + msg.call_id.offset;
        s.call_id_len = msg.call_id.length;
    }
    s.now_ms = now_ms;
    return s;
}

TapSubject TapSubject::to_client_of(const Frame& f, const balance::PoolSnapshot& pool, const sip::SipMessage* msg,
                                    uint64_t now_ms) noexcept {
    TapSubject s;
    s.frame = &f;
    s.pool = &pool.name();
    s.client = endpoint_at(f.data, f.view, false);
    s.backend = endpoint_at(f.data, f.view, true);
    s.to_backend = false;
    if (msg && msg->verdict == sip::Verdict::ok && !msg->call_id.empty()) {
        s.call_id = f.data + f.view.payload_offset() + msg->call_id.offset;
        s.call_id_len = msg->call_id.length;
    }
    s.now_ms = now_ms;
    return s;
}

bool capture_matches(const CaptureFilter& filter, const TapSubject& s) noexcept {
    if (!filter.pool.empty() && (!s.pool || *s.pool != filter.pool)) return false;
    if (filter.backend && *filter.backend != s.backend) return false;
    if (filter.client && *filter.client != s.client.ip) return false;
    if (!filter.call_id.empty() && (!s.call_id || s.call_id_len != filter.call_id.size() ||
                                    std::memcmp(s.call_id, filter.call_id.data(), s.call_id_len) != 0))
        return false;
    return true;
}

bool mirror_selects(const MirrorSelect& sel, const TapSubject& s) noexcept {
    if (!s.call_id) return false;  // keepalives are not SIP messages a HEP receiver shows
    if (!sel.pools.empty()) {
        bool listed = false;
        for (const auto& p : sel.pools) listed = listed || (s.pool && *s.pool == p);
        if (!listed) return false;
    }
    return sel.sample_max == ~0ull || balance::hash_call_id(s.call_id, s.call_id_len, kSampleSeed) <= sel.sample_max;
}

bool Tap::take_token(uint64_t now_ms) noexcept {
    // Token bucket in thousandths of a datagram: rate_per_worker of them per
    // ms, holding at most a tenth of a second's worth.
    const uint64_t per_ms = mirror_->rate_per_worker;
    const uint64_t cap = per_ms * 100 > 1000 ? per_ms * 100 : 1000;
    if (now_ms > tokens_ms_) {
        const uint64_t add = (now_ms - tokens_ms_) * per_ms;
        tokens_ = cap - tokens_ < add ? cap : tokens_ + add;
        tokens_ms_ = now_ms;
    }
    if (tokens_ < 1000) return false;
    tokens_ -= 1000;
    return true;
}

uint8_t Tap::match(const TapSubject& s) noexcept {
    uint8_t flags = 0;
    if (session_ && capture_matches(session_->filter, s)) flags |= Action::kCapture;
    if (mirror_ && mirror_selects(*mirror_, s)) {
        if (take_token(s.now_ms))
            flags |= Action::kMirror;
        else
            bump(c_.mirror_rate_limited);
    }
    if (!flags) return 0;
    const Frame& f = *s.frame;
    orig_len_ = f.len;
    payload_offset_ = static_cast<uint16_t>(f.view.payload_offset());
    payload_len_ = static_cast<uint16_t>(f.view.payload_len());
    if (flags & Action::kMirror) {
        mirror_src_ = s.to_backend ? s.client : s.backend;
        mirror_dst_ = s.to_backend ? s.backend : s.client;
        call_id_offset_ = static_cast<uint16_t>(s.call_id - (f.data + payload_offset_));
        call_id_len_ = s.call_id_len;
    }
    return flags;
}

void Tap::after(const Action& a, const uint8_t* sent) noexcept {
    const uint64_t ts = realtime_ns();
    if ((a.flags & Action::kCapture) && session_) copy_capture(a, sent, ts);
    if ((a.flags & Action::kMirror) && mirror_ring_) copy_mirror(a, sent, ts);
}

void Tap::copy_capture(const Action& a, const uint8_t* sent, uint64_t ts_ns) noexcept {
    SlotRing<CaptureSlot>& ring = *session_->rings[worker_];
    const uint8_t* received = sent - a.shift;
    for (int pass = 0; pass < 2; ++pass) {
        CaptureSlot* slot = ring.reserve();
        if (!slot) {
            bump(c_.capture_ring_full);
            continue;
        }
        slot->ts_ns = ts_ns;
        slot->worker = static_cast<uint8_t>(worker_);
        if (pass == 0) {
            // As received: the headers the worker kept, then the payload in place.
            slot->sent = 0;
            slot->orig_len = orig_len_;
            slot->cap_len = orig_len_ < CaptureSlot::kSnapLen ? orig_len_ : CaptureSlot::kSnapLen;
            const uint16_t head = scratch_len_ < slot->cap_len ? scratch_len_ : slot->cap_len;
            std::memcpy(slot->data, scratch_, head);
            if (slot->cap_len > head) std::memcpy(slot->data + head, received + head, slot->cap_len - head);
        } else {
            slot->sent = 1;
            slot->orig_len = a.len;
            slot->cap_len = a.len < CaptureSlot::kSnapLen ? a.len : CaptureSlot::kSnapLen;
            std::memcpy(slot->data, sent, slot->cap_len);
        }
        ring.commit();
    }
}

void Tap::copy_mirror(const Action& a, const uint8_t* sent, uint64_t ts_ns) noexcept {
    if (payload_len_ > MirrorSlot::kMaxPayload) {
        bump(c_.mirror_too_big);
        return;
    }
    MirrorSlot* slot = mirror_ring_->reserve();
    if (!slot) {
        bump(c_.mirror_ring_full);
        return;
    }
    slot->ts_ns = ts_ns;
    slot->src = mirror_src_;
    slot->dst = mirror_dst_;
    slot->payload_len = payload_len_;
    slot->call_id_offset = call_id_offset_;
    slot->call_id_len = call_id_len_;
    std::memcpy(slot->data, sent - a.shift + payload_offset_, payload_len_);
    mirror_ring_->commit();
    bump(c_.mirror_queued);
}

}  // namespace siplb::dataplane
