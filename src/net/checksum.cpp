#include "siplb/net/checksum.h"

#include <bit>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace siplb::net {

uint32_t checksum_accumulate(const void* data, size_t len, uint32_t sum) noexcept {
    const auto* p = static_cast<const uint8_t*>(data);
    // Ones' complement sum of native 64-bit words: add with carry, the
    // carry out of each add fed into the next one (end-around). 2^64 - 1 is
    // a multiple of 2^16 - 1, so the 64-bit sum folds to the 16-bit one.
    uint64_t acc = 0;
#if defined(__x86_64__)
    unsigned char carry = 0;
    while (len >= 32) {
        uint64_t w0, w1, w2, w3;  // scalars: an array would be staged on the stack
        std::memcpy(&w0, p, 8);
        std::memcpy(&w1, p + 8, 8);
        std::memcpy(&w2, p + 16, 8);
        std::memcpy(&w3, p + 24, 8);
        unsigned long long a = acc;
        carry = _addcarry_u64(carry, a, w0, &a);
        carry = _addcarry_u64(carry, a, w1, &a);
        carry = _addcarry_u64(carry, a, w2, &a);
        carry = _addcarry_u64(carry, a, w3, &a);
        acc = a;
        p += 32;
        len -= 32;
    }
    while (len >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        unsigned long long a = acc;
        carry = _addcarry_u64(carry, a, w, &a);
        acc = a;
        p += 8;
        len -= 8;
    }
    acc += carry;
    acc += acc < carry;  // the end-around add can carry once more (acc was all ones)
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
