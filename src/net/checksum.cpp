#include "siplb/net/checksum.h"

#include <bit>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if SIPLB_CHECKSUM_AVX2
#include <immintrin.h>
#endif

namespace siplb::net {

namespace detail {

#if defined(__SSE2__)
// Native 16-bit words summed into 32-bit lanes: per 16 bytes one and, one
// shift and two adds, no carry chain, so the vector ALUs run it in parallel
// (an adc chain is bound to one add per cycle). A lane gains at most
// 2 * 0xFFFF per step, so a block of up to 32 KiB cannot overflow it.
uint64_t sum_words_sse2(const uint8_t* p, size_t block) noexcept {
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
    return static_cast<uint64_t>(_mm_cvtsi128_si64(w)) +
           static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(w, w)));
}
#endif

#if SIPLB_CHECKSUM_AVX2
// The same sum over 32-byte vectors, 64 bytes per step. Compiled for AVX2
// and chosen at run time: the build's baseline (DPDK's -march) stops at
// SSE4.2, while every current x86 server has AVX2.
__attribute__((target("avx2"))) uint64_t sum_words_avx2(const uint8_t* p, size_t block) noexcept {
    const __m256i lo16 = _mm256_set1_epi32(0xFFFF);
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 64 <= block; i += 64) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32));
        s0 = _mm256_add_epi32(s0, _mm256_add_epi32(_mm256_and_si256(a, lo16), _mm256_srli_epi32(a, 16)));
        s1 = _mm256_add_epi32(s1, _mm256_add_epi32(_mm256_and_si256(b, lo16), _mm256_srli_epi32(b, 16)));
    }
    if (i + 32 <= block) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
        s0 = _mm256_add_epi32(s0, _mm256_add_epi32(_mm256_and_si256(a, lo16), _mm256_srli_epi32(a, 16)));
        i += 32;
    }
    if (i < block) {  // 16 bytes left (blocks are multiples of 16)
        const __m256i a = _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)));
        s1 = _mm256_add_epi32(s1, _mm256_add_epi32(_mm256_and_si256(a, lo16), _mm256_srli_epi32(a, 16)));
    }
    const __m256i zero = _mm256_setzero_si256();
    __m256i w = _mm256_add_epi64(_mm256_unpacklo_epi32(s0, zero), _mm256_unpackhi_epi32(s0, zero));
    w = _mm256_add_epi64(w, _mm256_add_epi64(_mm256_unpacklo_epi32(s1, zero), _mm256_unpackhi_epi32(s1, zero)));
    const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    return static_cast<uint64_t>(_mm_cvtsi128_si64(h)) +
           static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(h, h)));
}

bool cpu_has_avx2() noexcept {
    static const bool has = [] {
        __builtin_cpu_init();  // may run before libgcc's own constructor
        return __builtin_cpu_supports("avx2") != 0;
    }();
    return has;
}
#endif

}  // namespace detail

namespace {
#if SIPLB_CHECKSUM_AVX2
const bool g_avx2 = detail::cpu_has_avx2();
#endif
}  // namespace

uint32_t checksum_accumulate(const void* data, size_t len, uint32_t sum) noexcept {
    const auto* p = static_cast<const uint8_t*>(data);
    // Plain sum of native-order words (16, 32 or 64 bits wide) in a 64-bit
    // accumulator: 2^16, 2^32 and 2^64 are all 1 modulo 2^16 - 1,
    // so folding it below gives the ones' complement sum.
    uint64_t acc = 0;
#if defined(__SSE2__)
    // Headers (an IPv4 header, a pseudo-header's addresses): a few 8-byte
    // words in registers beat a call into a vector kernel.
    if (len < 64) {
        for (; len >= 8; len -= 8, p += 8) {
            uint64_t w;
            std::memcpy(&w, p, 8);
            acc += (w & 0xFFFFFFFFu) + (w >> 32);
        }
    }
    while (len >= 16) {
        const size_t block = len < 32768 ? len & ~size_t(15) : 32768;
#if SIPLB_CHECKSUM_AVX2
        acc += g_avx2 && block >= 64 ? detail::sum_words_avx2(p, block) : detail::sum_words_sse2(p, block);
#else
        acc += detail::sum_words_sse2(p, block);
#endif
        p += block;
        len -= block;
    }
    // Tail of 0..15 bytes in native order too: the words stay at even
    // offsets, and a last odd byte is the high byte of a big-endian word,
    // i.e. the low byte of a native one.
    if (len >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        acc += (w & 0xFFFFFFFFu) + (w >> 32);
        p += 8;
        len -= 8;
    }
    if (len >= 4) {
        uint32_t w;
        std::memcpy(&w, p, 4);
        acc += w;
        p += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t w;
        std::memcpy(&w, p, 2);
        acc += w;
        p += 2;
        len -= 2;
    }
    if (len) {
        if constexpr (std::endian::native == std::endian::little)
            acc += p[0];
        else
            acc += static_cast<uint64_t>(p[0]) << 8;
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
    // (This path keeps big-endian words for the tail.)
    uint64_t tail = 0;
    while (len >= 2) {
        tail += load_be16(p);
        p += 2;
        len -= 2;
    }
    if (len) tail += static_cast<uint32_t>(p[0]) << 8;
#endif
    // Fixed folds, no loops: 64 -> 33 -> 32 -> 17 -> 16 bits.
    acc = (acc & 0xFFFFFFFFu) + (acc >> 32);
    acc = (acc & 0xFFFFFFFFu) + (acc >> 32);
    acc = (acc & 0xFFFF) + (acc >> 16);
    acc = (acc & 0xFFFF) + (acc >> 16);
    uint32_t folded = static_cast<uint32_t>(acc);
    if constexpr (std::endian::native == std::endian::little) {
        folded = static_cast<uint16_t>((folded >> 8) | (folded << 8));
    }
    uint64_t total = static_cast<uint64_t>(folded) + sum;
#if !defined(__SSE2__)
    total += tail;
#endif
    total = (total & 0xFFFFFFFFu) + (total >> 32);
    total = (total & 0xFFFFFFFFu) + (total >> 32);
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

uint16_t udp_checksum_ipv4(const uint8_t src[4], const uint8_t dst[4], const uint8_t* udp, size_t udp_len) noexcept {
    uint32_t sum = checksum_accumulate(src, 4);
    sum = checksum_accumulate(dst, 4, sum);
    sum += 17;  // zero byte + protocol
    sum += static_cast<uint32_t>(udp_len);
    return udp_checksum(sum, udp, udp_len);
}

uint16_t udp_checksum_ipv6(const uint8_t src[16], const uint8_t dst[16], const uint8_t* udp, size_t udp_len) noexcept {
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
