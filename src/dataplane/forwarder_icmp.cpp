// ICMP stage of the Forwarder: echo replies for our addresses, errors we
// generate (time exceeded, port unreachable; rate-limited per worker) and
// customer errors about VIP datagrams passed on to the backend that sent
// them. Replies and generated errors go back out of the ingress port to the
// MAC they came from, on the same VLAN: the sender (or the router that
// delivered its packet) is there, whatever the route table says.
#include <cstring>

#include "forwarder.h"
#include "siplb/balance/hash.h"
#include "siplb/balance/pick.h"
#include "siplb/net/checksum.h"
#include "siplb/net/icmp.h"
#include "siplb/net/nat.h"

namespace siplb::dataplane {

namespace {

Action transmit_back(uint8_t* frame, const PortContext& port, uint16_t in_port, size_t frame_len) noexcept {
    std::memcpy(frame, frame + 6, 6);
    std::memcpy(frame + 6, port.mac.bytes.data(), 6);
    Action a;
    a.kind = Action::Kind::transmit;
    a.port = in_port;
    a.len = static_cast<uint16_t>(frame_len);
    return a;
}

bool is_vip_address(const IpAddress& a, const balance::DataplaneSnapshot* snap) noexcept {
    if (!snap) return false;
    for (const auto& pool : snap->pools())
        for (const auto& vip : pool->listen())
            if (vip.ip == a) return true;
    return false;
}

bool is_ci(const uint8_t* p, const char* lower, size_t n) noexcept {
    for (size_t i = 0; i < n; ++i) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<uint8_t>(c + 32);
        if (c != static_cast<uint8_t>(lower[i])) return false;
    }
    return true;
}

}  // namespace

bool Forwarder::find_quoted_call_id(const uint8_t* p, size_t len, sip::Span& out) noexcept {
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
        if (eol - line > 7 && is_ci(p + line, "call-id", 7)) name_len = 7;
        else if (eol - line > 1 && (p[line] == 'i' || p[line] == 'I')) name_len = 1;
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

bool Forwarder::is_icmp(const uint8_t* frame, const net::PacketView& v) noexcept {
    if (v.ip_version == 4) return v.ip_proto == net::kIpProtoIcmp;
    if (v.ip_proto != net::kIpProtoIcmpv6 || v.l4_offset >= v.l3_end) return false;
    const uint8_t type = frame[v.l4_offset];
    return type < 133 || type > 137;  // router/neighbor discovery and redirects: handle_ndp
}

Action Forwarder::send_icmp_error(uint8_t* frame, uint16_t len, uint16_t tailroom, const net::PacketView& v,
                                  uint16_t in_port, uint8_t type, uint8_t code, const IpAddress* source,
                                  uint64_t now_ms, uint32_t rest) noexcept {
    if (!source) return Action{};
    if (!icmp_error_bucket_.take(now_ms)) {
        bump(c_.icmp_errors_rate_limited);
        return Action{};
    }
    const size_t room = static_cast<size_t>(len) + tailroom - v.l3_offset;
    const size_t ip_len = net::write_icmp_error(frame, v, type, code, *source, room, rest);
    if (ip_len == 0) return Action{};
    bump(c_.icmp_errors_sent);
    return transmit_back(frame, ctx_.ports[in_port], in_port, v.l3_offset + ip_len);
}

Action Forwarder::egress_dropped(Action a, uint8_t* frame, uint16_t len, uint16_t tailroom,
                                 const net::PacketView& v, uint16_t in_port, uint64_t now_ms) noexcept {
    if (!a.too_big_mtu()) return a;
    // RFC 1191: the sender lowers its path MTU to the VIP (or client) and
    // sends smaller datagrams; SIP over UDP retransmits the lost one.
    const auto& source = ctx_.ports[in_port].source_v4;
    return send_icmp_error(frame, len, tailroom, v, in_port, net::kIcmpDestUnreachable, net::kIcmpCodeFragNeeded,
                           source ? &*source : nullptr, now_ms, a.too_big_mtu());
}

Action Forwarder::ttl_expired(uint8_t* frame, uint16_t len, uint16_t tailroom, const net::PacketView& v,
                              uint16_t in_port, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept {
    // Only datagrams we would have forwarded earn a time exceeded.
    const bool forwarded = snap && (snap->find_pool_by_vip(net::destination_endpoint(frame, v)).pool ||
                                    snap->find_backend(net::source_endpoint(frame, v)).pool);
    const PortContext& port = ctx_.ports[in_port];
    const auto& source = v.ip_version == 4 ? port.source_v4 : port.source_v6;
    if (!forwarded || !source) return drop(DropReason::ttl_expired);
    const uint8_t type = v.ip_version == 4 ? net::kIcmpTimeExceeded : net::kIcmpv6TimeExceeded;
    return icmp_error(frame, len, tailroom, v, in_port, type, 0, &*source, now_ms, DropReason::ttl_expired);
}

Action Forwarder::unmatched_udp(uint8_t* frame, uint16_t len, uint16_t tailroom, const net::PacketView& v,
                                uint16_t in_port, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept {
    // UDP to a VIP address on a port no pool listens on: port unreachable,
    // from the address it was sent to.
    const Endpoint dst = net::destination_endpoint(frame, v);
    if (!is_vip_address(dst.ip, snap)) return drop(DropReason::not_for_us);
    const uint8_t type = v.ip_version == 4 ? net::kIcmpDestUnreachable : net::kIcmpv6DestUnreachable;
    const uint8_t code = v.ip_version == 4 ? net::kIcmpCodePortUnreachable : net::kIcmpv6CodePortUnreachable;
    return icmp_error(frame, len, tailroom, v, in_port, type, code, &dst.ip, now_ms, DropReason::not_for_us);
}

Action Forwarder::handle_icmp(uint8_t* frame, uint16_t headroom, const net::PacketView& v, uint16_t in_port,
                              const balance::DataplaneSnapshot* snap, uint32_t now_s, uint64_t now_ms) noexcept {
    auto m = net::parse_icmp(frame, v);
    if (!m) return drop(DropReason::bad_checksum);
    IpAddress dst;
    if (v.ip_version == 6) dst.family = IpAddress::Family::v6;
    std::memcpy(dst.bytes.data(), frame + v.dst_addr_offset(), v.addr_len());

    const uint8_t echo = v.ip_version == 4 ? net::kIcmpEchoRequest : net::kIcmpv6EchoRequest;
    if (m->type == echo && m->code == 0) {
        if (!is_our_address(in_port, dst, snap)) return drop(DropReason::not_for_us);
        const size_t ip_len = net::write_echo_reply(frame, v, *m);
        bump(c_.icmp_echo_replies);
        return transmit_back(frame, ctx_.ports[in_port], in_port, v.l3_offset + ip_len);
    }
    if (!m->is_error || !is_vip_address(dst, snap)) return drop(DropReason::not_for_us);

    // An error about a datagram VIP:port -> client: it came from the backend
    // the call's Call-ID picks, as the forward path chose it.
    auto q = net::parse_quoted_udp(frame, v, *m);
    const balance::DataplaneSnapshot::PoolRef ref = q ? snap->find_pool_by_vip(q->src)
                                                      : balance::DataplaneSnapshot::PoolRef{};
    sip::Span call_id;
    if (!ref.pool || !find_quoted_call_id(frame + q->payload_offset(), q->payload_len(), call_id)) {
        bump(c_.icmp_errors_unmatched);
        return drop(DropReason::not_for_us);
    }
    const balance::PoolSnapshot& pool = *ref.pool;
    const uint64_t key =
        balance::hash_call_id(frame + q->payload_offset() + call_id.offset, call_id.length, pool.seed());
    balance::Decision d = balance::pick(pool, key, false, now_s, ctx_.affinity);
    if (!d.entry) {
        bump(c_.icmp_errors_unmatched);
        return drop(DropReason::no_backend);
    }
    const Endpoint& backend = d.entry->address;
    Action a;
    if (pool.mode() == balance::ForwardMode::ipip) {
        // The backend sent it from the VIP itself: the error travels
        // unchanged in the tunnel, as the datagrams toward it do.
        a = tunnel_to_backend(frame, v, headroom, backend.ip, now_ms, false, in_port);
        if (a.kind == Action::Kind::drop) return a;
    } else {
        if (backend.ip.family != dst.family) return drop(DropReason::family_mismatch);
        a = egress(frame, v, headroom, backend.ip, now_ms);
        if (a.kind == Action::Kind::drop) return a;
        net::redirect_icmp_error(frame, v, *m, *q, backend);
    }
    bump(c_.icmp_errors_to_backend);
    return a;
}

}  // namespace siplb::dataplane
