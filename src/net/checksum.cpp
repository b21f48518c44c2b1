#include "siplb/net/checksum.h"

#include <bit>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace siplb::net {

uint32_t checksum_accumulate(const void* data, size_t len, uint32_t sum) noexcept {
    const auto* p = static_cast<const uint8_t*>(data);
    // Plain sum of native-order words (16, 32 or 64 bits wide) in a 64-bit
    // accumulator: 2^16, 2^32 and 2^64 are all 1 modulo 2^16 - 1,
    // so folding it below gives the ones' complement sum.
    uint64_t acc = 0;
#if defined(__SSE2__)
    // Native 16-bit words summed into 32-bit lanes: per 16 bytes one
    // and, one shift and two adds, no carry chain, so the vector ALUs run
    // it in parallel (an adc chain is bound to one add per cycle). A lane
    // gains at most 2 * 0xFFFF per step: blocks of 32 KiB cannot overflow.
    while (len >= 16) {
        const size_t block = len < 32768 ? len & ~size_t(15) : 32768;
        const __m128i lo16 = _mm_set1_epi32(0xFFFF);
        __m128i s0 = _mm_setzero_si128(), s1 = _mm_setzero_si128();
        size_t i = 0;
        for (; i + 32 <= block; i += 32) {
            const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 16));
            s0 = _mm_add_epi32(s0, _mm_add_epi32(_mm_and_si128(a, lo16), _mm_srli_epi32(a, 16)));
            s1 = _mm_add_epi32(s1, _mm_add_epi32(_mm_and_si128(b, lo16), _mm_srli_epi32(b, 16)));
        }
        if (i < block) {
            const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
            s0 = _mm_add_epi32(s0, _mm_add_epi32(_mm_and_si128(a, lo16), _mm_srli_epi32(a, 16)));
        }
        // Four 32-bit lanes of each sum, widened to 64 bits before adding.
        const __m128i zero = _mm_setzero_si128();
        __m128i w = _mm_add_epi64(_mm_unpacklo_epi32(s0, zero), _mm_unpackhi_epi32(s0, zero));
        w = _mm_add_epi64(w, _mm_add_epi64(_mm_unpacklo_epi32(s1, zero), _mm_unpackhi_epi32(s1, zero)));
        acc += static_cast<uint64_t>(_mm_cvtsi128_si64(w)) + static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(w, w)));
        p += block;
        len -= block;
    }
    if (len >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        acc += (w & 0xFFFFFFFFu) + (w >> 32);
        p += 8;
        len -= 8;
    }
#else
    uint64_t carries = 0;
    while (len >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        acc += w;
        carries += acc < w;
        p += 8;
        len -= 8;
    }
    acc += carries;
    acc += acc < carries;
#endif
    acc = (acc & 0xFFFFFFFFu) + (acc >> 32);
    // Fold native-order partial sum to 16 bits and convert to big-endian lanes.
    while (acc >> 16) acc = (acc & 0xFFFF) + (acc >> 16);
    uint32_t native = static_cast<uint32_t>(acc);
    if constexpr (std::endian::native == std::endian::little) {
        native = static_cast<uint16_t>((native >> 8) | (native << 8));
    }
    uint64_t total = static_cast<uint64_t>(native) + sum;
    while (len >= 2) {
        total += load_be16(p);
        p += 2;
        len -= 2;
    }
    if (len) total += static_cast<uint32_t>(p[0]) << 8;
    while (total >> 32) total = (total & 0xFFFFFFFFu) + (total >> 32);
    return static_cast<uint32_t>(total);
}

uint16_t ipv4_header_checksum(const uint8_t* ip_header, size_t header_len) noexcept {
    uint32_t sum = checksum_accumulate(ip_header, 10);
    sum = checksum_accumulate(ip_header + 12, header_len - 12, sum);
    return checksum_finish(sum);
}

namespace {
uint16_t udp_checksum(uint32_t pseudo, const uint8_t* udp, size_t udp_len) noexcept {
    uint32_t sum = checksum_accumulate(udp, 6, pseudo);
    if (udp_len > 8) sum = checksum_accumulate(udp + 8, udp_len - 8, sum);
    uint16_t c = checksum_finish(sum);
    return c == 0 ? 0xFFFF : c;
}
}  // namespace

uint16_t udp_checksum_ipv4(const uint8_t src[4], const uint8_t dst[4], const uint8_t* udp,
                           size_t udp_len) noexcept {
    uint32_t sum = checksum_accumulate(src, 4);
    sum = checksum_accumulate(dst, 4, sum);
    sum += 17;  // zero byte + protocol
    sum += static_cast<uint32_t>(udp_len);
    return udp_checksum(sum, udp, udp_len);
}

uint16_t udp_checksum_ipv6(const uint8_t src[16], const uint8_t dst[16], const uint8_t* udp,
                           size_t udp_len) noexcept {
    uint32_t sum = checksum_accumulate(src, 16);
    sum = checksum_accumulate(dst, 16, sum);
    sum += static_cast<uint32_t>(udp_len >> 16);
    sum += static_cast<uint32_t>(udp_len & 0xFFFF);
    sum += 17;
    return udp_checksum(sum, udp, udp_len);
}

uint16_t icmpv6_checksum(const uint8_t src[16], const uint8_t dst[16], const uint8_t* msg, size_t len) noexcept {
    uint32_t sum = checksum_accumulate(src, 16);
    sum = checksum_accumulate(dst, 16, sum);
    sum += static_cast<uint32_t>(len >> 16);
    sum += static_cast<uint32_t>(len & 0xFFFF);
    sum += 58;
    sum = checksum_accumulate(msg, 2, sum);
    if (len > 4) sum = checksum_accumulate(msg + 4, len - 4, sum);
    return checksum_finish(sum);
}

}  // namespace siplb::net
