// Internet checksums (RFC 1071) and their incremental update (RFC 1624).
// The forwarding path only ever updates checksums incrementally from the
// bytes it changes; the full computations exist for validation on input
// and for tests that must check results independently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace siplb::net {

// Ones' complement sum of a byte range (big-endian 16-bit words, odd byte
// padded with zero), added to `sum`; not folded.
uint32_t checksum_accumulate(const void* data, size_t len, uint32_t sum = 0) noexcept;

// x86-64 with GCC or Clang: an AVX2 variant is built too and used when the
// CPU has it (checked once at start).
#if defined(__x86_64__) && defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#define SIPLB_CHECKSUM_AVX2 1
#else
#define SIPLB_CHECKSUM_AVX2 0
#endif

// The vector kernels behind checksum_accumulate, exposed so tests can hold
// each to the same results: 64-bit sum of the native-order 16-bit words of
// `block` bytes (a multiple of 16, at most 32768).
namespace detail {
#if defined(__SSE2__)
uint64_t sum_words_sse2(const uint8_t* p, size_t block) noexcept;
#endif
#if SIPLB_CHECKSUM_AVX2
uint64_t sum_words_avx2(const uint8_t* p, size_t block) noexcept;
bool cpu_has_avx2() noexcept;
#endif
}  // namespace detail

inline uint16_t checksum_fold(uint32_t sum) noexcept {
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

// Full checksum value (already complemented) in host order; store with
// store_be16.
inline uint16_t checksum_finish(uint32_t sum) noexcept { return static_cast<uint16_t>(~checksum_fold(sum)); }

inline uint16_t load_be16(const uint8_t* p) noexcept { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline void store_be16(uint8_t* p, uint16_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

// Whether an IPv4 header of `header_len` bytes (checksum field included)
// sums to all ones, as a valid one does (0x0000 and 0xFFFF in the field
// both count as zero, RFC 1624). Inline for the 20 bytes of almost every
// header: three loads, where a call to checksum_accumulate() cost more than
// the sum (4 % of the worker, which checks every frame a NIC did not).
inline bool ipv4_header_valid(const uint8_t* ip_header, size_t header_len) noexcept {
    if (header_len != 20) return checksum_fold(checksum_accumulate(ip_header, header_len)) == 0xFFFF;
    // Native-order words, as checksum_accumulate() sums them: all ones is
    // the same in either byte order.
    uint64_t a, b;
    uint32_t c;
    std::memcpy(&a, ip_header, 8);
    std::memcpy(&b, ip_header + 8, 8);
    std::memcpy(&c, ip_header + 16, 4);
    uint64_t sum = (a & 0xFFFFFFFFu) + (a >> 32) + (b & 0xFFFFFFFFu) + (b >> 32) + c;  // below 2^35
    sum = (sum & 0xFFFFFFFFu) + (sum >> 32);
    return checksum_fold(static_cast<uint32_t>(sum) + static_cast<uint32_t>(sum >> 32)) == 0xFFFF;
}

// IPv4 header checksum over `header_len` bytes with the checksum field taken
// as zero (whatever it currently holds).
uint16_t ipv4_header_checksum(const uint8_t* ip_header, size_t header_len) noexcept;

// UDP checksum of the datagram at `udp` (header + payload, `udp_len` bytes)
// with the checksum field taken as zero, including the pseudo-header.
// A computed 0 is returned as 0xFFFF (RFC 768: 0 means "no checksum").
uint16_t udp_checksum_ipv4(const uint8_t src[4], const uint8_t dst[4], const uint8_t* udp, size_t udp_len) noexcept;
uint16_t udp_checksum_ipv6(const uint8_t src[16], const uint8_t dst[16], const uint8_t* udp, size_t udp_len) noexcept;

// ICMPv6 checksum (RFC 4443) of the message at `msg` (`len` bytes) with its
// checksum field (bytes 2-3) taken as zero, including the pseudo-header.
uint16_t icmpv6_checksum(const uint8_t src[16], const uint8_t dst[16], const uint8_t* msg, size_t len) noexcept;

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for one 16-bit field changing
// from old_word to new_word (host-order values of the big-endian words).
inline uint16_t checksum_update16(uint16_t checksum, uint16_t old_word, uint16_t new_word) noexcept {
    uint32_t sum = static_cast<uint16_t>(~checksum);
    sum += static_cast<uint16_t>(~old_word);
    sum += new_word;
    return static_cast<uint16_t>(~checksum_fold(sum));
}

// Same for a run of bytes (even length: 2, 4 or 16 for ports and addresses)
// changing from old_bytes to new_bytes at an even offset in the summed data.
// The change as a sum (~m + m' over the words), for several checksums
// covering the same bytes (an address in the IPv4 header and the UDP or TCP
// pseudo-header): computed once, applied with checksum_apply().
inline uint32_t checksum_delta(const uint8_t* old_bytes, const uint8_t* new_bytes, size_t len) noexcept {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2) {
        sum += static_cast<uint16_t>(~load_be16(old_bytes + i));
        sum += load_be16(new_bytes + i);
    }
    return sum;
}

inline uint16_t checksum_apply(uint16_t checksum, uint32_t delta) noexcept {
    const uint64_t sum = uint64_t{static_cast<uint16_t>(~checksum)} + delta;
    return static_cast<uint16_t>(~checksum_fold(static_cast<uint32_t>((sum & 0xFFFFFFFFu) + (sum >> 32))));
}

inline uint16_t checksum_update_bytes(uint16_t checksum, const uint8_t* old_bytes, const uint8_t* new_bytes,
                                      size_t len) noexcept {
    return checksum_apply(checksum, checksum_delta(old_bytes, new_bytes, len));
}

}  // namespace siplb::net
