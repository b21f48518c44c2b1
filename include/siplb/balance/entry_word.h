// The tagged, versioned word and the payload that the affinity table and the
// connection table share: both are bucketed seqlock tables of 64-bit words,
// so their readers and writers agree on one encoding.
//
//   word     key hash bits (high 40) | table-specific byte (bits 16-23) |
//            version (bits 1-15) | busy (bit 0); 0 = empty slot
//
// A reader that loads the word, the payload and the word again trusts the
// payload when both loads match, so the version must not wrap while a reader
// sits between its loads. 15 bits means 16384 rewrites of one slot in that
// gap: a descheduled reader (a test under TSan, not a pinned worker) once saw
// 7 bits wrap. The bucket index takes the key's low bits, so the tag and the
// bucket together still tell keys apart by 40 + log2(buckets) bits.
//   payload  backend id (high 32) | expiry in seconds (low 32)
#pragma once

#include <cstdint>

namespace siplb::balance::entry_word {

inline constexpr uint64_t kBusy = 1;
inline constexpr uint64_t kVersionMask = 0xFFFE;
inline constexpr uint64_t kTagMask = ~uint64_t{0xFFFFFF};

// The key's hash bits as stored. Never 0 (0 = empty).
inline uint64_t tag_of(uint64_t key) noexcept {
    const uint64_t t = key & kTagMask;
    return t ? t : uint64_t{1} << 24;
}
inline bool same_tag(uint64_t word, uint64_t tag) noexcept { return (word & kTagMask) == tag; }
// The next version of a slot's word, now holding `tag` and `extra`.
inline uint64_t next_word(uint64_t old_word, uint64_t tag, uint8_t extra = 0) noexcept {
    return tag | uint64_t{extra} << 16 | ((old_word + 2) & kVersionMask);
}
inline uint8_t extra_of(uint64_t word) noexcept { return static_cast<uint8_t>(word >> 16); }
inline uint64_t pack_payload(uint32_t backend_id, uint32_t expiry_s) noexcept {
    return (static_cast<uint64_t>(backend_id) << 32) | expiry_s;
}
inline uint32_t id_of(uint64_t payload) noexcept { return static_cast<uint32_t>(payload >> 32); }
inline uint32_t expiry_of(uint64_t payload) noexcept { return static_cast<uint32_t>(payload); }
// Wrap-safe "a is after b" on uint32 seconds.
inline bool after(uint32_t a, uint32_t b) noexcept { return static_cast<int32_t>(a - b) > 0; }

}  // namespace siplb::balance::entry_word
