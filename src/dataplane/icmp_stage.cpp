#include "icmp_stage.h"

#include <cstring>

#include "siplb/balance/hash.h"
#include "siplb/balance/pick.h"
#include "siplb/net/checksum.h"
#include "siplb/net/nat.h"

namespace siplb::dataplane {

namespace {

bool is_ci(const uint8_t* p, const char* lower, size_t n) noexcept {
    for (size_t i = 0; i < n; ++i) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<uint8_t>(c + 32);
        if (c != static_cast<uint8_t>(lower[i])) return false;
    }
    return true;
}

}  // namespace

bool IcmpStage::find_quoted_call_id(const uint8_t* p, size_t len, sip::Span& out) noexcept {
    // A quote is usually cut (576 bytes for ICMPv4): the full parser then
    // rejects the message as truncated. The Call-ID line, when it is
    // complete inside the quote, is enough to find the call.
    sip::SipParser::parse(p, len, msg_);
    if (msg_.ok() && !msg_.call_id.empty()) {
        out = msg_.call_id;
        return true;
    }
    size_t line = 0;
    while (line < len) {
        size_t eol = line;
        while (eol < len && p[eol] != '\n') ++eol;
        if (eol == len) return false;  // cut line: its value may be cut too
        size_t name_len = 0;
        if (eol - line > 7 && is_ci(p + line, "call-id", 7))
            name_len = 7;
        else if (eol - line > 1 && (p[line] == 'i' || p[line] == 'I'))
            name_len = 1;
        if (name_len) {
            size_t i = line + name_len;
            while (i < eol && (p[i] == ' ' || p[i] == '\t')) ++i;
            if (i < eol && p[i] == ':') {
                ++i;
                while (i < eol && (p[i] == ' ' || p[i] == '\t')) ++i;
                size_t end = eol;
                while (end > i && (p[end - 1] == '\r' || p[end - 1] == ' ' || p[end - 1] == '\t')) --end;
                if (end == i) return false;
                out.offset = static_cast<uint16_t>(i);
                out.length = static_cast<uint16_t>(end - i);
                return true;
            }
        }
        if (eol == line || (eol == line + 1 && p[line] == '\r')) return false;  // end of headers
        line = eol + 1;
    }
    return false;
}

bool IcmpStage::is_icmp(const uint8_t* frame, const net::PacketView& v) noexcept {
    if (v.ip_version == 4) return v.ip_proto == net::kIpProtoIcmp;
    if (v.ip_proto != net::kIpProtoIcmpv6 || v.l4_offset >= v.l3_end) return false;
    const uint8_t type = frame[v.l4_offset];
    return type < 133 || type > 137;  // router/neighbor discovery and redirects: NeighborStage
}

Action IcmpStage::ttl_expired(const Frame& f, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept {
    const uint8_t* frame = f.data;
    const net::PacketView& v = f.view;
    // Only datagrams we would have forwarded earn a time exceeded.
    const bool forwarded = snap && (snap->find_pool_by_vip(net::destination_endpoint(frame, v)).pool ||
                                    snap->find_backend(net::source_endpoint(frame, v)).pool);
    const PortContext& port = ctx_.ports[f.in_port];
    const auto& source = v.ip_version == 4 ? port.source_v4 : port.source_v6;
    if (!forwarded || !source) return drop(c_, DropReason::ttl_expired);
    const uint8_t type = v.ip_version == 4 ? net::kIcmpTimeExceeded : net::kIcmpv6TimeExceeded;
    return errors_.answer(f, type, 0, &*source, now_ms, DropReason::ttl_expired);
}

Action IcmpStage::unmatched_udp(const Frame& f, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept {
    const net::PacketView& v = f.view;
    // UDP to a VIP address on a port no pool listens on: port unreachable,
    // from the address it was sent to.
    const Endpoint dst = net::destination_endpoint(f.data, v);
    if (!is_vip_address(dst.ip, snap)) return not_for_us(c_);
    const uint8_t type = v.ip_version == 4 ? net::kIcmpDestUnreachable : net::kIcmpv6DestUnreachable;
    const uint8_t code = v.ip_version == 4 ? net::kIcmpCodePortUnreachable : net::kIcmpv6CodePortUnreachable;
    Action a = errors_.answer(f, type, code, &dst.ip, now_ms, DropReason::not_for_us);
    // Not answered (no token): counted not_for_us and untouched, as any datagram no pool takes.
    if (a.kind == Action::Kind::drop) a.flags |= Action::kToKernel;
    return a;
}

Action IcmpStage::handle(const Frame& f, const balance::DataplaneSnapshot* snap, uint32_t now_s,
                         uint64_t now_ms) noexcept {
    uint8_t* frame = f.data;
    const net::PacketView& v = f.view;
    auto m = net::parse_icmp(frame, v);
    if (!m) return drop(c_, DropReason::bad_checksum);
    IpAddress dst;
    if (v.ip_version == 6) dst.family = IpAddress::Family::v6;
    std::memcpy(dst.bytes.data(), frame + v.dst_addr_offset(), v.addr_len());

    const uint8_t echo = v.ip_version == 4 ? net::kIcmpEchoRequest : net::kIcmpv6EchoRequest;
    if (m->type == echo && m->code == 0) {
        if (!is_our_address(ctx_.ports[f.in_port], dst, snap)) return not_for_us(c_);
        const size_t ip_len = net::write_echo_reply(frame, v, *m);
        bump(c_.icmp_echo_replies);
        return transmit_back(f, ctx_.ports[f.in_port], v.l3_offset + ip_len);
    }
    if (!m->is_error || !is_vip_address(dst, snap)) return not_for_us(c_);

    // An error about a datagram VIP:port -> client: it came from the backend
    // the call's Call-ID picks, as the forward path chose it.
    auto q = net::parse_quoted_udp(frame, v, *m);
    const balance::DataplaneSnapshot::PoolRef ref = q ? snap->find_pool_by_vip(q->src)
                                                      : balance::DataplaneSnapshot::PoolRef{};
    sip::Span call_id;
    if (!ref.pool || !find_quoted_call_id(frame + q->payload_offset(), q->payload_len(), call_id)) {
        bump(c_.icmp_errors_unmatched);
        return not_for_us(c_);
    }
    const balance::PoolSnapshot& pool = *ref.pool;
    const uint64_t key =
        balance::hash_call_id(frame + q->payload_offset() + call_id.offset, call_id.length, pool.seed());
    balance::Decision d = balance::pick(pool, key, false, now_s, ctx_.affinity);
    if (!d.entry) {
        bump(c_.icmp_errors_unmatched);
        return drop(c_, DropReason::no_backend);
    }
    const Endpoint& backend = d.entry->address;
    Action a;
    if (pool.mode() == balance::ForwardMode::ipip) {
        // The backend sent it from the VIP itself: the error travels
        // unchanged in the tunnel, as the datagrams toward it do.
        a = to_backend_.tunnel(f, backend.ip, now_ms, false);
        if (a.kind == Action::Kind::drop) return a;
    } else {
        if (backend.ip.family != dst.family) return drop(c_, DropReason::family_mismatch);
        a = egress_.forward(f, backend.ip, now_ms);
        if (a.kind == Action::Kind::drop) return a;
        net::redirect_icmp_error(frame, v, *m, *q, backend);
    }
    bump(c_.icmp_errors_to_backend);
    return a;
}

}  // namespace siplb::dataplane
