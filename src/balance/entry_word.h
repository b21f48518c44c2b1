// The tagged, versioned word and the payload that the affinity table and the
// connection table share: both are bucketed seqlock tables of 64-bit words,
// so their readers and writers agree on one encoding.
//
//   word     key hash bits (high 48) | table-specific byte (bits 8-15) |
//            version (bits 1-7) | busy (bit 0); 0 = empty slot
//   payload  backend id (high 32) | expiry in seconds (low 32)
#pragma once

#include <cstdint>

namespace siplb::balance::entry_word {

inline constexpr uint64_t kBusy = 1;
inline constexpr uint64_t kVersionMask = 0xFE;
inline constexpr uint64_t kTagMask = ~uint64_t{0xFFFF};

// The key's hash bits as stored. Never 0 (0 = empty).
inline uint64_t tag_of(uint64_t key) noexcept {
    const uint64_t t = key & kTagMask;
    return t ? t : 0x10000;
}
// The next version of a slot's word, now holding `tag` and `extra` (bits 8-15).
inline uint64_t next_word(uint64_t old_word, uint64_t tag, uint8_t extra = 0) noexcept {
    return tag | uint64_t{extra} << 8 | ((old_word + 2) & kVersionMask);
}
inline uint64_t pack_payload(uint32_t backend_id, uint32_t expiry_s) noexcept {
    return (static_cast<uint64_t>(backend_id) << 32) | expiry_s;
}
inline uint32_t id_of(uint64_t payload) noexcept { return static_cast<uint32_t>(payload >> 32); }
inline uint32_t expiry_of(uint64_t payload) noexcept { return static_cast<uint32_t>(payload); }
// Wrap-safe "a is after b" on uint32 seconds.
inline bool after(uint32_t a, uint32_t b) noexcept { return static_cast<int32_t>(a - b) > 0; }

}  // namespace siplb::balance::entry_word
