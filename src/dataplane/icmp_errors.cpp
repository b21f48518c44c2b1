#include "icmp_errors.h"

namespace siplb::dataplane {

Action IcmpErrors::send(const Frame& f, uint8_t type, uint8_t code, const IpAddress* source, uint64_t now_ms,
                        uint32_t rest) noexcept {
    if (!source) return Action{};
    if (!bucket_.take(now_ms)) {
        bump(c_.icmp_errors_rate_limited);
        return Action{};
    }
    const size_t room = static_cast<size_t>(f.len) + f.tailroom - f.view.l3_offset;
    const size_t ip_len = net::write_icmp_error(f.data, f.view, type, code, *source, room, rest);
    if (ip_len == 0) return Action{};
    bump(c_.icmp_errors_sent);
    return transmit_back(f, ctx_.ports[f.in_port], f.view.l3_offset + ip_len);
}

Action IcmpErrors::answer_too_big(Action dropped, const Frame& f, uint64_t now_ms) noexcept {
    if (!dropped.too_big_mtu()) return dropped;
    // RFC 1191: the sender lowers its path MTU to the VIP (or client) and
    // sends smaller datagrams; SIP over UDP retransmits the lost one.
    const auto& source = ctx_.ports[f.in_port].source_v4;
    return send(f, net::kIcmpDestUnreachable, net::kIcmpCodeFragNeeded, source ? &*source : nullptr, now_ms,
                dropped.too_big_mtu());
}

}  // namespace siplb::dataplane
