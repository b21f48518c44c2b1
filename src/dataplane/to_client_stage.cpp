#include "to_client_stage.h"

#include <cstring>

#include "call_keys.h"
#include "siplb/balance/hash.h"
#include "siplb/balance/pick.h"
#include "siplb/net/nat.h"
#include "tap.h"

namespace siplb::dataplane {

namespace {

// Cheap pre-check on the reverse path: only these requests are parsed.
bool may_create_dialog(const uint8_t* payload, size_t len) noexcept {
    auto starts = [&](const char* m, size_t n) { return len > n && std::memcmp(payload, m, n) == 0; };
    return starts("INVITE ", 7) || starts("SUBSCRIBE ", 10) || starts("REFER ", 6);
}

// The status code of a SIP response ("SIP/2.0 200 ..."), 0 for anything else.
uint16_t response_status(const uint8_t* p, size_t len) noexcept {
    if (len < 12 || std::memcmp(p, "SIP/2.0 ", 8) != 0 || p[11] != ' ') return 0;
    auto digit = [](uint8_t ch) { return static_cast<unsigned>(ch - '0') <= 9; };
    if (!digit(p[8]) || !digit(p[9]) || !digit(p[10])) return 0;
    return static_cast<uint16_t>((p[8] - '0') * 100 + (p[9] - '0') * 10 + (p[10] - '0'));
}

// Pre-check from the start line alone: a request (a method is upper case)
// or a 101..299 response may carry a Contact or Record-Route that phones
// will use as their next hop. `status`: response_status() of the payload.
bool may_carry_contact(const uint8_t* payload, size_t len, uint16_t status) noexcept {
    if (status) return status > 100 && status < 300;
    return len > 0 && payload[0] >= 'A' && payload[0] <= 'Z';
}

// How often a worker looks at one backend's Contact / Record-Route: often
// enough to notice a misconfigured backend within a second, rarely enough
// that the replies' parse costs nothing measurable.
constexpr uint64_t kAdvertiseCheckMs = 100;

}  // namespace

Action ToClientStage::forward(const Frame& f, const balance::DataplaneSnapshot* snap,
                              balance::DataplaneSnapshot::BackendRef& ref, uint32_t now_s, uint64_t now_ms) noexcept {
    uint8_t* frame = f.data;
    const net::PacketView& v = f.view;
    const bool v6 = v.ip_version == 6;
    // A backend answering one of our own addresses: the control plane's
    // health probe (OPTIONS from the node address). Not client traffic;
    // with a kernel path it goes to the kernel's socket.
    if (ctx_.routes.is_local_address(frame + v.dst_addr_offset(), v6)) [[unlikely]]
        return not_for_us(c_);
    // msg_ holds this datagram's SIP parse once `parsed`; most replies need none.
    bool parsed = false;
    // A backend of several pools answers from the VIP its call came in on.
    if (!ref.pools.empty()) [[unlikely]] {
        place_shared_backend(frame, v, snap, ref, now_s);
        parsed = true;
    }
    // Backend -> client: SNAT to the pool's VIP of the family. With one VIP
    // per family no SIP parsing is needed, but for the rare dialog a backend
    // starts and the sampled Contact check (below).
    if (ref.snat_vip->ip.is_v6() != v6) return drop(c_, DropReason::family_mismatch);
    const Endpoint* source = ref.snat_vip;
    // Several VIPs of the family: the one the call came in on, else the one
    // the client last sent to, else (counted) the first one.
    bool vip_fallback = false;
    const bool several_vips = ref.pool->several_vips(v6);
    if (several_vips) [[unlikely]] {
        if (!parsed)
            sip::SipParser::parse(frame + v.payload_offset(), v.payload_len(), msg_, sip::ParseDepth::balancer);
        parsed = true;
        if (const Endpoint* recorded = recorded_vip(frame, v, *ref.pool, now_s))
            source = recorded;
        else
            vip_fallback = true;
    }
    neighbors_.glean(frame, v, f.in_port, now_ms);
    IpAddress client;
    if (v6) client.family = IpAddress::Family::v6;
    std::memcpy(client.bytes.data(), frame + v.dst_addr_offset(), v.addr_len());
    Action a = egress_.forward(f, client, now_ms);
    if (a.kind == Action::Kind::drop) return errors_.answer_too_big(a, f, now_ms);
    if (ref.backend != balance::PoolSnapshot::kNoBackend &&
        may_create_dialog(frame + v.payload_offset(), v.payload_len()))
        remember_backend_dialog(frame, v, *ref.pool, ref.backend, now_s, parsed,
                                several_vips ? ref.pool->vip_slot(source) : balance::AffinityTable::kNoVip);
    if (f.tap) [[unlikely]] {  // siplbctl capture / HEP mirror (tap.h), before the source is rewritten
        if (!parsed && f.tap->wants_call_id(frame + v.payload_offset(), v.payload_len())) {
            sip::SipParser::parse(frame + v.payload_offset(), v.payload_len(), msg_, sip::ParseDepth::balancer);
            parsed = true;
        }
        a.flags |= f.tap->match(TapSubject::to_client_of(f, *ref.pool, parsed ? &msg_ : nullptr, now_ms));
    }
    net::snat(frame, v, *source);
    bump(c_.to_client);
    if (PoolCounters* pc = c_.pool(ref.pool->counter_slot())) {
        bump(pc->reply_packets);
        bump(pc->reply_bytes, a.len);
    }
    if (ref.backend != balance::PoolSnapshot::kNoBackend) {
        uint32_t id = ref.pool->backends()[ref.backend].id;
        if (auto* bc = c_.backend(ref.pool->counter_slot(), id)) {
            bump(bc->reply_packets);
            bump(bc->reply_bytes, a.len);
            if (vip_fallback) [[unlikely]]
                bump(bc->vip_fallback);
            const uint8_t* payload = frame + v.payload_offset();
            if (ref.pool->is_overload_response(payload, v.payload_len())) [[unlikely]]
                count_overload(payload, v.payload_len(), *bc);
            else if (now_ms >= bc->next_advertise_check_ms &&
                     may_carry_contact(payload, v.payload_len(), response_status(payload, v.payload_len())))
                [[unlikely]] {
                bc->next_advertise_check_ms = now_ms + kAdvertiseCheckMs;
                if (!parsed) sip::SipParser::parse(payload, v.payload_len(), msg_, sip::ParseDepth::balancer);
                if (advertises_backend(payload, v.payload_len(), *ref.pool)) bump(bc->advertises_itself);
            }
        }
    }
    return a;
}

bool ToClientStage::advertises_backend(const uint8_t* payload, size_t len,
                                       const balance::PoolSnapshot& pool) const noexcept {
    // Requests, and 1xx/2xx answers to what opens a dialog: there a phone
    // takes Contact (or the Record-Route set) as where to send ACK, BYE and
    // re-INVITEs, and siplb never rewrites it.
    if (!msg_.ok()) return false;
    if (msg_.kind == sip::Kind::response && msg_.cseq_method != sip::Method::invite &&
        msg_.cseq_method != sip::Method::subscribe)
        return false;
    for (const char* name : {"Contact", "Record-Route"}) {
        const sip::Span host = sip::uri_host(payload, sip::find_header(payload, len, msg_, name));
        if (host.empty()) continue;
        const auto ip = IpAddress::parse(host.view(payload));
        if (ip && pool.is_backend_ip(*ip)) return true;
    }
    return false;
}

void ToClientStage::count_overload(const uint8_t* payload, size_t len, BackendCounters& bc) noexcept {
    bump(bc.overload_responses);
    sip::SipParser::parse(payload, len, msg_, sip::ParseDepth::balancer);
    if (!msg_.ok()) return;
    const sip::Span retry = sip::find_header(payload, len, msg_, "Retry-After");
    // delta-seconds, possibly followed by a comment or parameters (RFC 3261 §20.33).
    uint64_t seconds = 0;
    size_t digits = 0;
    for (; digits < retry.length && digits < 9; ++digits) {
        const uint8_t ch = payload[retry.offset + digits];
        if (ch < '0' || ch > '9') break;
        seconds = seconds * 10 + (ch - '0');
    }
    if (digits > 0) raise_to(bc.overload_retry_after_s, seconds);
}

void ToClientStage::place_shared_backend(const uint8_t* frame, const net::PacketView& v,
                                         const balance::DataplaneSnapshot* snap,
                                         balance::DataplaneSnapshot::BackendRef& ref, uint32_t now_s) noexcept {
    // Stateless: the request came through one pool's VIP, and that pool
    // recorded the call in the affinity table (pick() does for every
    // request) or its table maps the call to this backend. Keepalive
    // answers are placed by the client's address, as keepalives are.
    const uint8_t* payload = frame + v.payload_offset();
    sip::SipParser::parse(payload, v.payload_len(), msg_, sip::ParseDepth::balancer);
    const bool keepalive = msg_.verdict == sip::Verdict::keepalive;
    if (keepalive || (msg_.ok() && !msg_.call_id.empty())) {
        for (int pass = keepalive ? 1 : 0; pass < 2; ++pass) {
            for (const auto& in : ref.pools) {
                if (!in.snat_vip || in.pool_index >= snap->pools().size()) continue;
                const balance::PoolSnapshot& pool = *snap->pools()[in.pool_index];
                // ipip backends answer from the VIP themselves: a datagram
                // from the backend's own address is never one of theirs.
                if (pool.mode() == balance::ForwardMode::ipip) continue;
                const uint64_t key =
                    keepalive ? endpoint_hash(frame, v, pool.seed(), /*client_is_source=*/false)
                              : balance::hash_call_id(payload + msg_.call_id.offset, msg_.call_id.length, pool.seed());
                bool match;
                if (pass == 0) {  // the pool the call came through (affinity entry)
                    auto hit = ctx_.affinity ? ctx_.affinity->lookup(balance::affinity_key(pool, key), now_s)
                                             : std::nullopt;
                    match = hit && hit->backend_id == pool.backends()[in.backend].id;
                } else {  // else the pool whose table sends it here
                    match = pool.table().lookup(key) == in.backend;
                }
                if (match) {
                    ref.pool = &pool;
                    ref.pool_index = in.pool_index;
                    ref.backend = in.backend;
                    ref.snat_vip = in.snat_vip;
                    return;
                }
            }
        }
    }
    bump(c_.shared_backend_first_pool);
}

const Endpoint* ToClientStage::recorded_vip(const uint8_t* frame, const net::PacketView& v,
                                            const balance::PoolSnapshot& pool, uint32_t now_s) const noexcept {
    uint8_t slot = balance::AffinityTable::kNoVip;
    if (msg_.ok() && ctx_.affinity) {
        const uint64_t call =
            balance::hash_call_id(frame + v.payload_offset() + msg_.call_id.offset, msg_.call_id.length, pool.seed());
        if (auto hit = ctx_.affinity->lookup(balance::affinity_key(pool, call), now_s)) slot = hit->vip;
    }
    // No call entry with a VIP (a call the backend starts, a keepalive
    // answer, an entry gone with a restart or its idle time): where the
    // client last sent to, which is where its NAT lets datagrams in from.
    if (slot == balance::AffinityTable::kNoVip && ctx_.client_vips)
        slot = ctx_.client_vips->lookup(pool, endpoint_hash(frame, v, pool.seed(), /*client_is_source=*/false), now_s);
    const Endpoint* vip = pool.vip_at(slot);
    // A slot recorded before a reload changed the VIPs may name another family.
    return vip && vip->ip.is_v6() == (v.ip_version == 6) ? vip : nullptr;
}

void ToClientStage::remember_backend_dialog(const uint8_t* frame, const net::PacketView& v,
                                            const balance::PoolSnapshot& pool, uint16_t backend, uint32_t now_s,
                                            bool& parsed, uint8_t vip) noexcept {
    // A dialog a backend starts toward a customer (INVITE to a registered
    // phone, SUBSCRIBE, REFER): the customer's answers arrive on the VIP and
    // must reach this backend even where the table names another one, and
    // the dialog keeps the VIP its first request left from.
    if (!parsed) sip::SipParser::parse(frame + v.payload_offset(), v.payload_len(), msg_, sip::ParseDepth::balancer);
    parsed = true;
    if (!msg_.ok() || !creates_dialog(msg_) || !ctx_.affinity) return;
    uint64_t key =
        balance::hash_call_id(frame + v.payload_offset() + msg_.call_id.offset, msg_.call_id.length, pool.seed()) ^
        pool.affinity_salt();
    auto r = ctx_.affinity->upsert(key, pool.backends()[backend].id, now_s + pool.dialog_idle_s(), now_s, vip);
    if (r == balance::AffinityTable::Store::evicted) bump(c_.affinity_evictions);
    bump(c_.backend_dialogs);
}

}  // namespace siplb::dataplane
