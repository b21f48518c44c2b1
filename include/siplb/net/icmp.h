// ICMPv4 (RFC 792) and ICMPv6 (RFC 4443), the part an edge balancer needs:
// validating and answering echo requests, building the errors a router
// sends (time exceeded, port unreachable) in place over the offending
// datagram, and redirecting an error a customer sends about a datagram it
// received from a VIP to the backend that really sent it. Pure: byte
// buffers only, no DPDK.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "siplb/common/endpoint.h"
#include "siplb/net/packet.h"

namespace siplb::net {

inline constexpr uint8_t kIpProtoIcmp = 1;
inline constexpr uint8_t kIpProtoIcmpv6 = 58;

inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpDestUnreachable = 3;
inline constexpr uint8_t kIcmpEchoRequest = 8;
inline constexpr uint8_t kIcmpTimeExceeded = 11;
inline constexpr uint8_t kIcmpParameterProblem = 12;
inline constexpr uint8_t kIcmpCodeHostUnreachable = 1;
inline constexpr uint8_t kIcmpCodePortUnreachable = 3;
inline constexpr uint8_t kIcmpCodeFragNeeded = 4;

inline constexpr uint8_t kIcmpv6DestUnreachable = 1;
inline constexpr uint8_t kIcmpv6PacketTooBig = 2;
inline constexpr uint8_t kIcmpv6TimeExceeded = 3;
inline constexpr uint8_t kIcmpv6ParameterProblem = 4;
inline constexpr uint8_t kIcmpv6EchoRequest = 128;
inline constexpr uint8_t kIcmpv6EchoReply = 129;
inline constexpr uint8_t kIcmpv6CodeAddressUnreachable = 3;
inline constexpr uint8_t kIcmpv6CodePortUnreachable = 4;

inline constexpr size_t kIcmpHeaderLen = 8;  // type, code, checksum, 4 bytes rest-of-header
// RFC 1812 4.3.2.3 / RFC 4443 2.4(c): an error datagram stays within the
// minimum MTU the destination must accept.
inline constexpr size_t kIcmpv4ErrorMax = 576;
inline constexpr size_t kIcmpv6ErrorMax = 1280;

struct IcmpView {
    uint8_t type = 0, code = 0;
    uint16_t offset = 0;    // ICMP header in the frame (PacketView::l4_offset)
    uint16_t len = 0;       // ICMP message length (to PacketView::l3_end)
    bool is_error = false;  // destination unreachable, too big, time exceeded, parameter problem
};

// Validates (length, checksum) the ICMPv4 or ICMPv6 message of a frame that
// parse_frame() reported as not_udp with protocol 1 (IPv4) / 58 (IPv6).
// nullopt when it is not one or is damaged.
std::optional<IcmpView> parse_icmp(const uint8_t* frame, const PacketView& v) noexcept;

// Turns an echo request into its reply in place: IP header rewritten (IPv4
// options and IPv6 extension headers dropped, addresses swapped, TTL/hop
// limit 64), identifier, sequence and data kept, checksums computed. The
// reply starts at v.l3_offset; returns its IP length. `m` must be an echo
// request of v's family.
size_t write_echo_reply(uint8_t* frame, const PacketView& v, const IcmpView& m) noexcept;

// Turns the datagram at v.l3_offset into an ICMP error to its source from
// `source`, in place: a fresh IP header and ICMP header in front of as much
// of the original datagram as fits kIcmpv4ErrorMax / kIcmpv6ErrorMax and
// `room` (bytes writable from v.l3_offset). Returns the IP length of the
// error, 0 when `room` cannot hold the headers plus the 8 bytes of the
// original payload RFC 792 requires. `source` must be of v's family.
// `rest` fills bytes 4..7 of the ICMP header: 0 for most errors, the
// next-hop MTU for fragmentation needed (RFC 1191, low 16 bits) and the MTU
// for an IPv6 packet too big (RFC 4443 3.2).
size_t write_icmp_error(uint8_t* frame, const PacketView& v, uint8_t type, uint8_t code, const IpAddress& source,
                        size_t room, uint32_t rest = 0) noexcept;

// The UDP datagram an ICMP error quotes (its IP header and at least the
// 8-byte UDP header must be present; the rest may be truncated).
struct QuotedUdp {
    uint16_t l3 = 0;   // quoted IP header, frame offset
    uint16_t l4 = 0;   // quoted UDP header, frame offset
    uint16_t end = 0;  // end of the quote (v.l3_end)
    Endpoint src, dst;
    uint16_t payload_offset() const noexcept { return static_cast<uint16_t>(l4 + kUdpHeaderLen); }
    uint16_t payload_len() const noexcept { return static_cast<uint16_t>(end - payload_offset()); }
};
std::optional<QuotedUdp> parse_quoted_udp(const uint8_t* frame, const PacketView& v, const IcmpView& m) noexcept;

// An error from a customer about a datagram VIP:port -> client: rewrites the
// quoted source to `backend` (its IPv4 header checksum and its UDP checksum
// incrementally, so a truncated quote stays consistent) and the outer
// destination to backend.ip, then recomputes the ICMP checksum and updates
// the outer IPv4 header checksum. The TTL is the caller's (egress).
// false (frame untouched) when backend is of another family.
bool redirect_icmp_error(uint8_t* frame, const PacketView& v, const IcmpView& m, const QuotedUdp& q,
                         const Endpoint& backend) noexcept;

// Token bucket for ICMP error generation (RFC 1812 4.3.2.8, RFC 4443 2.4(f)).
// Single owner (one per worker): no synchronisation.
class TokenBucket {
public:
    TokenBucket(uint32_t rate_per_s, uint32_t burst) noexcept
        : rate_per_s_(rate_per_s), burst_milli_(uint64_t{burst} * 1000), milli_(uint64_t{burst} * 1000) {}
    // Takes one token at now_ms; false when empty.
    bool take(uint64_t now_ms) noexcept {
        if (now_ms > last_ms_) {
            milli_ += (now_ms - last_ms_) * rate_per_s_;  // tokens/s * ms = millitokens
            if (milli_ > burst_milli_) milli_ = burst_milli_;
            last_ms_ = now_ms;
        }
        if (milli_ < 1000) return false;
        milli_ -= 1000;
        return true;
    }

private:
    uint64_t rate_per_s_, burst_milli_, milli_;
    uint64_t last_ms_ = 0;
};

}  // namespace siplb::net
