#include "to_backend_stage.h"

#include <cstring>

#include "call_keys.h"
#include "siplb/balance/hash.h"
#include "siplb/balance/pick.h"
#include "siplb/net/nat.h"
#include "tap.h"

namespace siplb::dataplane {

namespace {

DropReason drop_for(sip::RejectReason r) noexcept {
    switch (r) {
        case sip::RejectReason::empty: return DropReason::sip_empty;
        case sip::RejectReason::oversize: return DropReason::sip_oversize;
        case sip::RejectReason::binary: return DropReason::sip_binary;
        case sip::RejectReason::bad_start_line: return DropReason::sip_bad_start_line;
        case sip::RejectReason::truncated_headers: return DropReason::sip_truncated_headers;
        case sip::RejectReason::no_call_id: return DropReason::sip_no_call_id;
        case sip::RejectReason::conflicting_call_id: return DropReason::sip_conflicting_call_id;
        case sip::RejectReason::bad_call_id: return DropReason::sip_bad_call_id;
        case sip::RejectReason::bad_header: return DropReason::sip_bad_header;
        default: return DropReason::sip_bad_start_line;
    }
}

IpAddress source_address(const uint8_t* frame, const net::PacketView& v) noexcept {
    IpAddress src;
    // Fixed-size copies: a variable length one is a call into libc.
    if (v.ip_version == 6) {
        src.family = IpAddress::Family::v6;
        std::memcpy(src.bytes.data(), frame + v.src_addr_offset(), 16);
    } else {
        std::memcpy(src.bytes.data(), frame + v.src_addr_offset(), 4);
    }
    return src;
}

}  // namespace

uint64_t ToBackendStage::balancing_key(const uint8_t* frame, const net::PacketView& v, const sip::SipMessage& msg,
                                       const balance::PoolSnapshot& pool) noexcept {
    // Keepalives have no Call-ID: the client's address:port keeps them on
    // one backend (the one its NAT binding matters to).
    if (msg.verdict == sip::Verdict::keepalive) return endpoint_hash(frame, v, pool.seed());
    return balance::hash_call_id(frame + v.payload_offset() + msg.call_id.offset, msg.call_id.length, pool.seed());
}

void ToBackendStage::count_protection(const protect::GuardDecision& g, const balance::PoolSnapshot& pool,
                                      PoolCounters* pc) noexcept {
    if (pc) {
        if (g.scans | g.memo_hits) {
            bump(pc->rule_scans, g.scans);
            bump(pc->rule_memo_hits, g.memo_hits);
        }
        if (g.scan_errors | g.rate_evictions) [[unlikely]] {
            bump(pc->rule_scan_errors, g.scan_errors);
            bump(pc->rate_evictions, g.rate_evictions);
        }
    }
    // The rule is one of the VIP's pool, whatever pool a route rule picks.
    if (g.rule != protect::kNoRule)
        if (RuleCounters* rc = c_.rule(pool.rule_counter_slot(g.rule))) bump(rc->hits);
}

void ToBackendStage::prepare(const Frame& f, const balance::DataplaneSnapshot* snap,
                             const balance::DataplaneSnapshot::PoolRef& vip, Prepared& p) const noexcept {
    const net::PacketView& v = f.view;
    // Balancer depth: neither pick() nor the protect rules read tags or the
    // top via-parm; and only the headers some pool's balancing reads.
    sip::SipParser::parse(f.data + v.payload_offset(), v.payload_len(), p.msg, sip::ParseDepth::balancer,
                          snap->request_headers());
    if (p.msg.verdict == sip::Verdict::reject) return;
    p.key = balancing_key(f.data, v, p.msg, *vip.pool);
    // The source's rate-limit buckets, which forward()'s check() reads
    // (only requests are limited).
    p.source.located = false;
    if (p.msg.verdict == sip::Verdict::ok && p.msg.kind == sip::Kind::request)
        if (const protect::WorkerGuard* guard = snap->guard(worker_))
            p.source = guard->locate(vip.pool_index, p.msg, source_address(f.data, v));
}

Action ToBackendStage::forward(const Frame& f, const balance::DataplaneSnapshot* snap,
                               const balance::DataplaneSnapshot::PoolRef& vip, const Prepared& p, uint32_t now_s,
                               uint64_t now_ms) noexcept {
    uint8_t* frame = f.data;
    const net::PacketView& v = f.view;
    const bool v6 = v.ip_version == 6;
    const balance::PoolSnapshot* target = vip.pool;
    const uint32_t pool_index = vip.pool_index;
    const sip::SipMessage& msg = p.msg;
    PoolCounters* pc = c_.pool(target->counter_slot());
    uint64_t key;
    bool dialog = false;
    if (msg.verdict == sip::Verdict::reject) {
        if (pc) bump(pc->rejected);
        return drop(drop_for(msg.reason));
    }
    // Protect stage (Hyperscan rules, rate limits): it sees the parsed
    // message and the pool before any backend is chosen. Keepalives pass.
    // The guard belongs to this snapshot: its pools are the snapshot's.
    protect::WorkerGuard* guard = snap->guard(worker_);
    if (guard && msg.verdict == sip::Verdict::ok) {
        const protect::GuardDecision g = guard->check(pool_index, frame + v.payload_offset(), v.payload_len(), msg,
                                                      source_address(frame, v), &p.source, now_ms * 1000000);
        count_protection(g, *vip.pool, pc);
        if (g.dropped()) {
            const bool by_rule = g.action == protect::GuardDecision::Action::drop_rule;
            if (pc) bump(by_rule ? pc->rule_drops : pc->rate_limited);
            return drop(by_rule ? DropReason::protect_rule : DropReason::rate_limited);
        }
        if (g.action == protect::GuardDecision::Action::route) {
            // Balanced in the rule's target pool (not in this snapshot: nothing to balance to).
            if (g.route_pool >= snap->pools().size()) {
                if (pc) bump(pc->no_backend);
                return drop(DropReason::no_backend);
            }
            if (pc) bump(pc->routed_away);
            target = snap->pools()[g.route_pool].get();
            pc = c_.pool(target->counter_slot());
        }
    }
    const balance::PoolSnapshot& pool = *target;
    // The VIP the datagram came in on goes with its call, so that the
    // backend's answers leave from it. A routed message's VIP belongs to
    // another pool than the one it is balanced in: not recorded.
    const uint8_t vip_slot = target == vip.pool ? vip.vip : balance::AffinityTable::kNoVip;
    const bool keepalive = msg.verdict == sip::Verdict::keepalive;
    balance::Decision d;
    // prepare() derived the key in the VIP's pool; a routed message is balanced with its target pool's seed.
    key = target == vip.pool ? p.key : balancing_key(frame, v, msg, pool);
    if (keepalive) {
        d = balance::pick(pool, key, false, now_s, nullptr);
    } else {
        dialog = creates_dialog(msg);
        if (pool.keyed_by_call_id() && msg.dialog_ref_count == 0) [[likely]]
            d = balance::pick(pool, key, dialog, now_s, ctx_.affinity, vip_slot);
        else
            d = pick_by_pool_key(f, pool, msg, pc, key, dialog, now_s, vip_slot);
        if (d.affinity_evicted) bump(c_.affinity_evictions);
    }
    if (d.reason == balance::Decision::Reason::no_backend || !d.entry) {
        if (pc) bump(pc->no_backend);
        return drop(DropReason::no_backend);
    }
    // Several VIPs of this family: remember which one the client uses
    // (REGISTERs, other requests, keepalives), for what the backends send it
    // outside any recorded call, such as an INVITE to a registered phone.
    if (vip.pool->several_vips(v6) && ctx_.client_vips && msg.kind != sip::Kind::response) [[unlikely]] {
        const uint64_t client = keepalive ? key : endpoint_hash(frame, v, vip.pool->seed());
        if (ctx_.client_vips->record(*vip.pool, client, vip.vip, now_s) == balance::AffinityTable::Store::evicted)
            bump(c_.client_vip_evictions);
    }
    const Endpoint& backend = d.entry->address;
    Action a;
    if (pool.mode() == balance::ForwardMode::ipip) {
        // Direct server return: the backend answers from the VIP.
        a = tunnel(f, backend.ip, now_ms, true);
        if (a.kind == Action::Kind::drop) return errors_.answer_too_big(a, f, now_ms);
    } else {
        if (backend.ip.is_v6() != v6) return drop(DropReason::family_mismatch);
        neighbors_.glean(frame, v, f.in_port, now_ms);
        a = egress_.forward(f, backend.ip, now_ms);
        if (a.kind == Action::Kind::drop) return errors_.answer_too_big(a, f, now_ms);
        net::dnat(frame, v, backend);
    }
    if (f.tap) [[unlikely]]  // siplbctl capture / HEP mirror (tap.h)
        a.flags |= f.tap->match(TapSubject::to_backend_of(f, pool, backend, msg, now_ms));
    bump(c_.to_backend);
    if (pc) {
        bump(pc->packets);
        bump(pc->bytes, a.len);
        if (dialog) bump(pc->calls);
        if (keepalive) bump(pc->keepalives);
    }
    if (auto* bc = c_.backend(pool.counter_slot(), d.entry->id)) {
        bump(bc->packets);
        bump(bc->bytes, a.len);
        if (dialog) bump(bc->calls);
    }
    return a;
}

balance::Decision ToBackendStage::pick_by_pool_key(const Frame& f, const balance::PoolSnapshot& pool,
                                                   const sip::SipMessage& msg, PoolCounters* pc, uint64_t call_hash,
                                                   bool dialog, uint32_t now_s, uint8_t vip_slot) noexcept {
    const net::PacketView& v = f.view;
    const uint8_t* payload = f.data + v.payload_offset();
    const size_t len = v.payload_len();
    uint64_t table_hash = call_hash;
    bool fallback = false;
    if (!pool.keyed_by_call_id()) {
        const std::string_view src{reinterpret_cast<const char*>(f.data + v.src_addr_offset()), v.addr_len()};
        std::string_view value = balance::key_value(pool.key(), payload, len, msg, src);
        if (value.empty()) {
            fallback = true;
            value = balance::key_value(pool.key_fallback(), payload, len, msg, src);
        }
        // A fallback field the message lacks too leaves the Call-ID.
        if (!value.empty()) table_hash = balance::hash_call_id(value.data(), value.size(), pool.seed());
    }
    if (dialog && msg.method == sip::Method::invite && msg.dialog_ref_count != 0) {
        sip::DialogRef ref;
        std::string_view named;
        if (sip::parse_dialog_ref(payload, msg, ref))
            named = sip::dialog_ref_call_id(payload, ref, dialog_ref_scratch_, sizeof dialog_ref_scratch_);
        if (!named.empty()) {
            const uint64_t ref_hash = balance::hash_call_id(named.data(), named.size(), pool.seed());
            // Without an entry, the table slot the named dialog's first
            // message had: its Call-ID's in a Call-ID pool. Other keys
            // cannot be recovered from the new INVITE, which is then placed
            // by its own key.
            const uint64_t ref_table_hash = pool.keyed_by_call_id() ? ref_hash : table_hash;
            balance::Decision d =
                balance::pick_joining(pool, call_hash, ref_hash, ref_table_hash, now_s, ctx_.affinity, vip_slot);
            if (pc && d.reason == balance::Decision::Reason::dialog_ref) bump(pc->dialog_refs_followed);
            return d;
        }
        if (pc) bump(pc->dialog_refs_malformed);
    }
    balance::Decision d = balance::pick_keyed(pool, call_hash, table_hash, dialog, now_s, ctx_.affinity, vip_slot);
    if (fallback && pc && d.reason == balance::Decision::Reason::table) bump(pc->key_fallbacks);
    return d;
}

}  // namespace siplb::dataplane
