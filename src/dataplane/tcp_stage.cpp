#include "tcp_stage.h"

#include <cstring>

#include "call_keys.h"
#include "siplb/balance/pick.h"
#include "siplb/net/nat.h"

namespace siplb::dataplane {

namespace {

using balance::ConnectionTable;
using Conn = ConnectionTable::Conn;

// The per-source key of a client address (cap and SYN rate): 32 bits of a
// multiply-mix of the address words, private to this process.
uint32_t source_of(const uint8_t* frame, const net::PacketView& v, bool client_is_source) noexcept {
    const AddressWords w =
        address_words(frame + (client_is_source ? v.src_addr_offset() : v.dst_addr_offset()), v.ip_version == 6);
    const uint64_t h = (w.lo ^ (w.hi * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
    return static_cast<uint32_t>(h >> 32);
}

// A level counter moves down by a wrapping add (its sum over workers is exact).
inline void lower(std::atomic<uint64_t>& level) noexcept { bump(level, ~uint64_t{0}); }

// Counter slots fit in the entry's 16 bits; kNoCounterSlot comes back as 0xFFFF.
inline uint16_t slot16(uint32_t slot) noexcept { return slot < kMaxPools ? static_cast<uint16_t>(slot) : 0xFFFF; }

}  // namespace

void TcpStage::count_opened(const balance::PoolSnapshot& pool, uint32_t backend_id) noexcept {
    if (PoolCounters* pc = c_.pool(pool.counter_slot())) {
        bump(pc->tcp_opened);
        bump(pc->tcp_active);
    }
    if (BackendCounters* bc = c_.backend(pool.counter_slot(), backend_id)) {
        bump(bc->tcp_opened);
        bump(bc->tcp_active);
    }
}

void TcpStage::count_closed(const balance::PoolSnapshot& pool, uint32_t backend_id) noexcept {
    if (PoolCounters* pc = c_.pool(pool.counter_slot())) bump(pc->tcp_closed);
    if (BackendCounters* bc = c_.backend(pool.counter_slot(), backend_id)) bump(bc->tcp_closed);
}

void TcpStage::count_removed(const Conn& c, bool evicted) noexcept {
    if (c.pool_slot >= kMaxPools) return;
    // A closing connection was counted closed already; others expired or were evicted.
    const bool idle = c.state != ConnectionTable::State::closing;
    PoolCounters& pc = c_.pools[c.pool_slot];
    lower(pc.tcp_active);
    if (evicted)
        bump(pc.tcp_evicted);
    else if (idle)
        bump(pc.tcp_expired);
    if (BackendCounters* bc = c_.backend(c.pool_slot, c.backend_id)) {
        lower(bc->tcp_active);
        if (evicted)
            bump(bc->tcp_evicted);
        else if (idle)
            bump(bc->tcp_expired);
    }
}

Action TcpStage::handle(Frame& f, const balance::DataplaneSnapshot* snap, uint32_t now_s, uint64_t now_ms,
                        bool verify_checksum) noexcept {
    if (!snap) return not_for_us(c_);
    uint8_t* frame = f.data;
    net::PacketView& v = f.view;
    const bool v6 = v.ip_version == 6;
    if (v.l3_end < v.l4_offset + 4) return not_for_us(c_);  // no ports: not ours to judge
    using Key = balance::DataplaneSnapshot::EndpointKey;
    const auto vip = snap->find_tcp_vip(Key::from_wire(frame + v.dst_addr_offset(), v6, frame + v.l4_offset + 2));
    balance::DataplaneSnapshot::TcpBackendRef backend;
    if (!vip.pool) {
        // Member by member, as Forwarder::prepare takes its PoolRef: GCC
        // copies the 15-byte struct as bytes 0-7 and 7-14, and the second
        // load spans both words just stored (no store forwarding).
        const auto found = snap->find_tcp_backend(Key::from_wire(frame + v.src_addr_offset(), v6, frame + v.l4_offset));
        backend.pool = found.pool;
        backend.pool_index = found.pool_index;
        backend.backend = found.backend;
        backend.tls = found.tls;
        // Not ours, or a backend talking to this node (a health check's
        // connection): the kernel's.
        if (!backend.pool || ctx_.routes.is_local_address(frame + v.dst_addr_offset(), v6)) return not_for_us(c_);
    }
    net::TcpSegment seg;
    switch (net::parse_tcp(frame, v, seg, verify_checksum)) {
        case net::TcpStatus::ok: break;
        case net::TcpStatus::short_segment: return drop(c_, DropReason::short_frame);
        case net::TcpStatus::bad_offset: return drop(c_, DropReason::bad_length);
        case net::TcpStatus::bad_checksum: return drop(c_, DropReason::bad_checksum);
    }
    // Reclaim a little of the table per segment: expired entries leave the
    // per-source counts and the active level without a sweeper thread.
    if (ctx_.connections) ctx_.connections->sweep(now_s, 1, [this](const Conn& c) { count_removed(c, false); });
    return vip.pool ? to_backend(f, vip, seg, now_s, now_ms) : to_client(f, backend, seg, now_s, now_ms);
}

Action TcpStage::to_backend(Frame& f, const balance::DataplaneSnapshot::PoolRef& ref, const net::TcpSegment& seg,
                            uint32_t now_s, uint64_t now_ms) noexcept {
    uint8_t* frame = f.data;
    const net::PacketView& v = f.view;
    const balance::PoolSnapshot& pool = *ref.pool;
    const auto backends = pool.backends();
    PoolCounters* pc = c_.pool(pool.counter_slot());
    const balance::TcpVip* vip = pool.tcp_vip_at(ref.vip);
    if (!vip) return drop(c_, DropReason::not_for_us);  // cannot happen: the snapshot gave the slot
    const uint64_t client_hash = endpoint_hash(frame, v, pool.seed());
    const uint64_t key = balance::connection_key(pool, client_hash, vip->tls);
    ConnectionTable* table = ctx_.connections;
    const bool syn = (seg.flags & (net::kTcpSyn | net::kTcpAck | net::kTcpRst)) == net::kTcpSyn;
    uint16_t idx = balance::PoolSnapshot::kNoBackend;
    if (syn) {
        const uint32_t source = source_of(frame, v, true);
        if (!syn_limiter_.allow(source, now_ms, ctx_.syn_rate_per_s, ctx_.syn_burst)) {
            if (pc) bump(pc->syn_rate_limited);
            return drop(c_, DropReason::rate_limited);
        }
        idx = pool.table().lookup(client_hash);  // new connections: active backends only (drain)
        if (table) {
            Conn c;
            c.backend_id = idx != balance::MaglevTable::kNone ? backends[idx].id : 0;
            c.expiry_s = now_s + pool.tcp_handshake_s();
            c.source = source;
            c.pool_slot = slot16(pool.counter_slot());
            c.vip = ref.vip;
            c.state = ConnectionTable::State::half_open;
            const auto existing = table->lookup(key, now_s);
            if (existing && existing->state != ConnectionTable::State::closing) {
                // A retransmitted SYN: where the first one went, while that backend keeps connections.
                const uint16_t was = pool.index_of_id(existing->backend_id);
                if (was != balance::PoolSnapshot::kNoBackend && balance::keeps_affinity(backends[was].state)) idx = was;
            } else if (idx != balance::MaglevTable::kNone) {
                const auto r = table->open(key, c, now_s, ctx_.connection_source_cap);
                switch (r.outcome) {
                    case ConnectionTable::Open::inserted:
                    case ConnectionTable::Open::evicted:
                        if (r.displaced) count_removed(*r.displaced, r.outcome == ConnectionTable::Open::evicted);
                        count_opened(pool, c.backend_id);
                        break;
                    case ConnectionTable::Open::exists: {
                        const uint16_t was = pool.index_of_id(r.existing.backend_id);
                        if (was != balance::PoolSnapshot::kNoBackend && balance::keeps_affinity(backends[was].state))
                            idx = was;
                        break;
                    }
                    case ConnectionTable::Open::source_cap:
                        if (pc) bump(pc->tcp_source_cap);
                        return drop(c_, DropReason::rate_limited);
                    case ConnectionTable::Open::bucket_full:
                    case ConnectionTable::Open::busy:
                        if (pc) bump(pc->tcp_untracked);
                        break;
                }
            }
        }
    } else {
        std::optional<Conn> c = table ? table->lookup(key, now_s) : std::nullopt;
        if (c) {
            const uint16_t was = pool.index_of_id(c->backend_id);
            // A backend that is down or disabled loses its connections: the
            // table decides (the client's stack then sees a reset and reconnects).
            if (was != balance::PoolSnapshot::kNoBackend && balance::keeps_affinity(backends[was].state)) idx = was;
            const bool closing = seg.flags & (net::kTcpFin | net::kTcpRst);
            if (closing) {
                if (c->state != ConnectionTable::State::closing) {
                    const auto before =
                        table->update(key, ConnectionTable::State::closing, now_s + pool.tcp_close_grace_s(), now_s);
                    if (before && *before != ConnectionTable::State::closing) count_closed(pool, c->backend_id);
                }
            } else if (c->state != ConnectionTable::State::closing &&
                       (c->state != ConnectionTable::State::established || c->expiry_s != now_s + pool.tcp_idle_s())) {
                // At most one write a second per connection.
                table->update(key, ConnectionTable::State::established, now_s + pool.tcp_idle_s(), now_s);
            }
        } else if (pc) {
            bump(pc->tcp_no_entry);
        }
        if (idx == balance::PoolSnapshot::kNoBackend) idx = pool.table().lookup(client_hash);
    }
    if (idx == balance::MaglevTable::kNone || idx >= backends.size()) {
        if (pc) bump(pc->no_backend);
        return drop(c_, DropReason::no_backend);
    }
    const balance::BackendEntry& be = backends[idx];
    Action a;
    if (pool.mode() == balance::ForwardMode::ipip) {
        a = to_backend_.tunnel(f, be.address.ip, now_ms, true);
        if (a.kind == Action::Kind::drop) return errors_.answer_too_big(a, f, now_ms);
    } else {
        if (be.address.ip.is_v6() != (v.ip_version == 6)) return drop(c_, DropReason::family_mismatch);
        neighbors_.glean(frame, v, f.in_port, now_ms);
        a = egress_.forward(f, be.address.ip, now_ms);
        if (a.kind == Action::Kind::drop) return errors_.answer_too_big(a, f, now_ms);
        net::dnat(frame, v, be.tcp_address(vip->tls));
    }
    bump(c_.to_backend);
    if (pc) {
        bump(pc->packets);
        bump(pc->bytes, a.len);
    }
    if (BackendCounters* bc = c_.backend(pool.counter_slot(), be.id)) {
        bump(bc->packets);
        bump(bc->bytes, a.len);
    }
    return a;
}

Action TcpStage::to_client(Frame& f, const balance::DataplaneSnapshot::TcpBackendRef& ref, const net::TcpSegment& seg,
                           uint32_t now_s, uint64_t now_ms) noexcept {
    uint8_t* frame = f.data;
    const net::PacketView& v = f.view;
    const bool v6 = v.ip_version == 6;
    const balance::PoolSnapshot& pool = *ref.pool;
    PoolCounters* pc = c_.pool(pool.counter_slot());
    const uint64_t key = balance::connection_key(pool, endpoint_hash(frame, v, pool.seed(), false), ref.tls);
    ConnectionTable* table = ctx_.connections;
    std::optional<Conn> c = table ? table->lookup(key, now_s) : std::nullopt;
    // The VIP the client connected to, else the pool's first of the kind and family.
    const balance::TcpVip* vip = c ? pool.tcp_vip_at(c->vip) : nullptr;
    if (!vip || vip->address.ip.is_v6() != v6) {
        if (!c && pc) bump(pc->tcp_no_entry);
        vip = pool.tcp_vip_at(pool.first_tcp_vip(ref.tls, v6));
    }
    if (!vip) return drop(c_, DropReason::family_mismatch);
    if (c && (seg.flags & (net::kTcpFin | net::kTcpRst)) && c->state != ConnectionTable::State::closing) {
        const auto before =
            table->update(key, ConnectionTable::State::closing, now_s + pool.tcp_close_grace_s(), now_s);
        if (before && *before != ConnectionTable::State::closing) count_closed(pool, c->backend_id);
    }
    IpAddress client;
    if (v6) client.family = IpAddress::Family::v6;
    std::memcpy(client.bytes.data(), frame + v.dst_addr_offset(), v.addr_len());
    neighbors_.glean(frame, v, f.in_port, now_ms);
    Action a = egress_.forward(f, client, now_ms);
    if (a.kind == Action::Kind::drop) return errors_.answer_too_big(a, f, now_ms);
    net::snat(frame, v, vip->address);
    bump(c_.to_client);
    const auto backends = pool.backends();
    if (pc) {
        bump(pc->reply_packets);
        bump(pc->reply_bytes, a.len);
    }
    if (ref.backend < backends.size())
        if (BackendCounters* bc = c_.backend(pool.counter_slot(), backends[ref.backend].id)) {
            bump(bc->reply_packets);
            bump(bc->reply_bytes, a.len);
        }
    return a;
}

}  // namespace siplb::dataplane
