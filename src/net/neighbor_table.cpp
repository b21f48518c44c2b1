#include "siplb/net/neighbor_table.h"

#include <bit>
#include <cstring>

namespace siplb::net {

namespace {
struct Key {
    uint64_t lo, hi;
    uint32_t family_flag;
};
Key key_of(const IpAddress& ip) noexcept {
    Key k;
    std::memcpy(&k.lo, ip.bytes.data(), 8);
    std::memcpy(&k.hi, ip.bytes.data() + 8, 8);
    k.family_flag = ip.is_v6() ? 2u : 0u;
    return k;
}
uint64_t pack(const MacAddress& mac, uint16_t port) noexcept {
    uint64_t v = 0;
    std::memcpy(&v, mac.bytes.data(), 6);
    return v | (static_cast<uint64_t>(port) << 48);
}
void unpack(uint64_t v, NeighborTable::Entry& e) noexcept {
    std::memcpy(e.mac.bytes.data(), &v, 6);
    e.port = static_cast<uint16_t>(v >> 48);
}
}  // namespace

NeighborTable::NeighborTable(uint32_t capacity, uint64_t reachable_ms) : reachable_ms_(reachable_ms) {
    uint32_t cap = std::bit_ceil(capacity < 16 ? 16u : capacity);
    slots_ = std::make_unique<Slot[]>(cap);
    mask_ = cap - 1;
    uint32_t req = std::bit_ceil(cap / 4 < 16 ? 16u : cap / 4);
    requests_ = std::make_unique<RequestSlot[]>(req);
    request_mask_ = req - 1;
}

uint64_t NeighborTable::hash(const IpAddress& ip) noexcept {
    Key k = key_of(ip);
    uint64_t h = (k.lo ^ (k.hi * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 31);
}

std::optional<NeighborTable::Entry> NeighborTable::lookup(const IpAddress& ip, uint64_t now_ms) const noexcept {
    Key k = key_of(ip);
    uint64_t h = hash(ip);
    for (uint32_t i = 0; i < kMaxProbe; ++i) {
        const Slot& s = slots_[(h + i) & mask_];
        for (int attempt = 0; attempt < 4; ++attempt) {
            uint32_t seq1 = s.seq.load(std::memory_order_acquire);
            if (seq1 & 1) continue;
            // Acquire on each field: one written by a newer writer makes that
            // writer's odd sequence visible to the check below.
            uint32_t flags = s.flags.load(std::memory_order_acquire);
            uint64_t lo = s.addr_lo.load(std::memory_order_acquire);
            uint64_t hi = s.addr_hi.load(std::memory_order_acquire);
            uint64_t mp = s.mac_port.load(std::memory_order_acquire);
            uint64_t confirmed = s.confirmed_ms.load(std::memory_order_acquire);
            if (s.seq.load(std::memory_order_relaxed) != seq1) continue;
            if (!(flags & kFlagUsed)) return std::nullopt;  // never used: end of chain
            if (flags & kFlagTomb) break;                   // freed: the chain goes on
            if (lo == k.lo && hi == k.hi && (flags & kFlagV6) == k.family_flag) {
                Entry e;
                unpack(mp, e);
                e.is_static = flags & kFlagStatic;
                if (e.is_static) {
                    e.state = State::permanent;
                } else if (reachable_ms_) {
                    if (now_ms > confirmed) {
                        if (expired(confirmed, now_ms)) return std::nullopt;
                        if (now_ms - confirmed >= reachable_ms_) e.state = State::stale;
                    }
                    e.fresh_until_ms = e.state == State::stale ? now_ms : confirmed + reachable_ms_;
                }
                return e;
            }
            break;  // another key: next slot
        }
    }
    return std::nullopt;
}

NeighborTable::Learn NeighborTable::learn(const IpAddress& ip, const MacAddress& mac, uint16_t port, bool is_static,
                                          uint64_t now_ms) noexcept {
    Key k = key_of(ip);
    uint64_t h = hash(ip);
    uint64_t mp = pack(mac, port);
    // The key's slot if it has one, else the first freed slot of its chain,
    // else the first never-used one.
    Slot* tomb = nullptr;
    uint32_t tomb_seq = 0;
    for (uint32_t i = 0; i <= kMaxProbe; ++i) {
        Slot* sp = i < kMaxProbe ? &slots_[(h + i) & mask_] : tomb;
        if (!sp) return Learn::full;
        Slot& s = *sp;
        uint32_t seq = s.seq.load(std::memory_order_acquire);
        if (seq & 1) return Learn::busy;
        uint32_t flags = s.flags.load(std::memory_order_relaxed);
        bool used = flags & kFlagUsed;
        if (i < kMaxProbe && used && (flags & kFlagTomb)) {
            if (!tomb) {
                tomb = sp;
                tomb_seq = seq;
            }
            continue;
        }
        if (i == kMaxProbe && seq != tomb_seq) return Learn::busy;
        bool same = used && !(flags & kFlagTomb) && s.addr_lo.load(std::memory_order_relaxed) == k.lo &&
                    s.addr_hi.load(std::memory_order_relaxed) == k.hi && (flags & kFlagV6) == k.family_flag;
        if (used && !same && !(flags & kFlagTomb)) continue;
        if (!used && tomb) {  // end of chain: reuse the freed slot instead
            i = kMaxProbe - 1;
            continue;
        }
        if (same) {
            if ((flags & kFlagStatic) && !is_static) return Learn::static_kept;
            if (s.mac_port.load(std::memory_order_relaxed) == mp && bool(flags & kFlagStatic) == is_static) {
                uint64_t confirmed = s.confirmed_ms.load(std::memory_order_relaxed);
                if (!is_static && now_ms >= confirmed + kConfirmGranularityMs) {
                    if (expired(confirmed, now_ms)) {
                        s.confirmed_ms.store(now_ms, std::memory_order_relaxed);
                        return Learn::updated;  // back from expiry: as good as new
                    }
                    s.confirmed_ms.store(now_ms, std::memory_order_relaxed);
                }
                return Learn::unchanged;
            }
        }
        if (!s.seq.compare_exchange_strong(seq, seq + 1, std::memory_order_acquire)) return Learn::busy;
        // Re-check under ownership: the slot may have changed before the CAS.
        uint32_t now_flags = s.flags.load(std::memory_order_relaxed);
        if (now_flags != flags || (same && (s.addr_lo.load(std::memory_order_relaxed) != k.lo))) {
            s.seq.store(seq, std::memory_order_release);  // nothing written: restore
            return Learn::busy;
        }
        // Release: whoever reads one of these also sees the odd sequence (the
        // CAS above), so a reader never pairs old and new fields.
        s.addr_lo.store(k.lo, std::memory_order_release);
        s.addr_hi.store(k.hi, std::memory_order_release);
        s.mac_port.store(mp, std::memory_order_release);
        s.confirmed_ms.store(now_ms, std::memory_order_release);
        s.flags.store(kFlagUsed | k.family_flag | (is_static ? kFlagStatic : 0), std::memory_order_release);
        s.seq.store(seq + 2, std::memory_order_release);
        generation_.fetch_add(1, std::memory_order_release);
        return same ? Learn::updated : Learn::inserted;
    }
    return Learn::full;
}

bool NeighborTable::should_request(const IpAddress& ip, uint64_t now_ms, uint64_t interval_ms) noexcept {
    Key k = key_of(ip);
    RequestSlot& r = requests_[hash(ip) & request_mask_];
    uint64_t last = r.last_ms.load(std::memory_order_relaxed);
    bool same = r.addr_lo.load(std::memory_order_relaxed) == k.lo && r.addr_hi.load(std::memory_order_relaxed) == k.hi;
    if (same && last != 0 && now_ms - last < interval_ms) return false;
    // One winner per interval among cores; a collision of two targets in one
    // slot only shares their rate limit.
    if (!r.last_ms.compare_exchange_strong(last, now_ms == 0 ? 1 : now_ms, std::memory_order_relaxed)) return false;
    r.addr_lo.store(k.lo, std::memory_order_relaxed);
    r.addr_hi.store(k.hi, std::memory_order_relaxed);
    return true;
}

size_t NeighborTable::expire(uint64_t now_ms) noexcept {
    if (!reachable_ms_) return 0;
    size_t n = 0;
    for (uint32_t i = 0; i <= mask_; ++i) {
        Slot& s = slots_[i];
        uint32_t flags = s.flags.load(std::memory_order_relaxed);
        if ((flags & (kFlagUsed | kFlagTomb | kFlagStatic)) != kFlagUsed ||
            !expired(s.confirmed_ms.load(std::memory_order_relaxed), now_ms))
            continue;
        uint32_t seq = s.seq.load(std::memory_order_acquire);
        if ((seq & 1) || !s.seq.compare_exchange_strong(seq, seq + 1, std::memory_order_acquire)) continue;
        // Re-check under ownership: a learner may have confirmed it meanwhile.
        if (s.flags.load(std::memory_order_relaxed) == flags &&
            expired(s.confirmed_ms.load(std::memory_order_relaxed), now_ms)) {
            s.addr_lo.store(0, std::memory_order_release);
            s.addr_hi.store(0, std::memory_order_release);
            s.mac_port.store(0, std::memory_order_release);
            s.flags.store(kFlagUsed | kFlagTomb, std::memory_order_release);
            ++n;
        }
        s.seq.store(seq + 2, std::memory_order_release);
    }
    if (n) generation_.fetch_add(1, std::memory_order_release);
    return n;
}

size_t NeighborTable::size() const noexcept {
    size_t n = 0;
    for (uint32_t i = 0; i <= mask_; ++i)
        if ((slots_[i].flags.load(std::memory_order_relaxed) & (kFlagUsed | kFlagTomb)) == kFlagUsed) ++n;
    return n;
}

}  // namespace siplb::net
