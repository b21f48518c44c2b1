#include "siplb/protect/rate_limiter.h"

#include <bit>
#include <cmath>
#include <cstring>

namespace siplb::protect {

namespace {

uint64_t mix(uint64_t hi, uint64_t lo, uint64_t seed) noexcept {
    uint64_t x = hi * 0x9e3779b97f4a7c15ull ^ (lo + seed);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

bool valid_rate(double r) { return std::isfinite(r) && r > 0 && r <= 1e9; }
bool valid_burst(double b) { return std::isfinite(b) && b >= 1 && b <= 1e9; }

}  // namespace

Result<RateLimiter> RateLimiter::create(const RateLimitSpec& cfg, uint64_t hash_seed) {
    if (!valid_rate(cfg.requests_per_s) || !valid_rate(cfg.prefix_requests_per_s))
        return Result<RateLimiter>::fail("rate_limit: rates must be in (0, 1e9] requests/s");
    if (!valid_burst(cfg.burst) || !valid_burst(cfg.prefix_burst))
        return Result<RateLimiter>::fail("rate_limit: bursts must be in [1, 1e9]");
    if (cfg.table_size < 16 || cfg.table_size > (1u << 26) || !std::has_single_bit(cfg.table_size))
        return Result<RateLimiter>::fail("rate_limit: table_size " + std::to_string(cfg.table_size) +
                                         " must be a power of two in [16, 2^26]");
    RateLimiter r;
    auto bucket = [](double rate, double burst) {
        double t = std::max(1.0, std::round(1e9 / rate));
        return Bucket{static_cast<uint64_t>(t), static_cast<uint64_t>(std::round(t * burst))};
    };
    r.source_ = bucket(cfg.requests_per_s, cfg.burst);
    r.prefix_ = bucket(cfg.prefix_requests_per_s, cfg.prefix_burst);
    r.mask_ = cfg.table_size - 1;
    r.seed_ = hash_seed;
    r.slots_ = TableArray<Slot>(size_t{2} * cfg.table_size);
    r.c_ = std::make_unique<Counters>();
    return r;
}

RateLimiter::Slot* RateLimiter::lookup(Slot* table, uint64_t key, uint64_t now_ns, uint8_t& evictions) noexcept {
    Slot* window = &table[this->window(key)];
    Slot* victim = window;
    for (uint32_t i = 0; i < kProbe; ++i) {
        Slot* s = &window[i];
        if (s->key == key && s->tat != 0) return s;
        if (s->tat < victim->tat) victim = s;
    }
    if (victim->tat > now_ns) {  // a live bucket gives way: stalest first
        bump(c_->evictions);
        ++evictions;
    }
    victim->key = key;
    victim->tat = 0;  // full bucket
    return victim;
}

RateLimiter::Probe RateLimiter::locate(const IpAddress& src) const noexcept {
    // Keys as two words: IPv4 as ::ffff:a.b.c.d (address bytes as they are
    // in memory) and its /24; IPv6 and its /64 (tagged hi = 1). mix() is a
    // bijection of `lo` for a given `hi`, so IPv4 keys and /64s each keep a
    // hash of their own.
    uint64_t hi, lo, phi, plo;
    if (src.is_v4()) {
        uint32_t a;
        std::memcpy(&a, src.bytes.data(), 4);
        hi = 0;
        lo = (0xffffull << 32) | a;
        // /24: clear the last address byte. With a mask: a byte store into
        // a copy of `a` made GCC reload the word from the stack, a reload
        // that store forwarding cannot serve.
        constexpr uint32_t kLastByte = std::endian::native == std::endian::little ? 0xFF000000u : 0xFFu;
        phi = 0;
        plo = (0xffffull << 32) | (a & ~kLastByte);
    } else {
        std::memcpy(&hi, src.bytes.data(), 8);
        std::memcpy(&lo, src.bytes.data() + 8, 8);
        phi = 1;  // the /64 as the low word: exact, like IPv4's
        plo = hi;
    }
    return Probe{mix(hi, lo, seed_), mix(phi, plo, seed_)};
}

Admission RateLimiter::admit(const Probe& k, uint64_t now_ns) noexcept {
    // Built at the end from locals: GCC kept a local Admission on the stack
    // and reloaded it as a whole from its byte-wide fields.
    uint8_t evictions = 0;
    Slot* s = lookup(sources(), k.source, now_ns, evictions);
    uint64_t s_tat = std::max(s->tat, now_ns) + source_.interval_ns;
    if (s_tat - now_ns > source_.tolerance_ns) {
        bump(c_->source_limited);
        return Admission{RateVerdict::source_limited, evictions};
    }
    Slot* p = lookup(prefixes(), k.prefix, now_ns, evictions);
    uint64_t p_tat = std::max(p->tat, now_ns) + prefix_.interval_ns;
    if (p_tat - now_ns > prefix_.tolerance_ns) {
        bump(c_->prefix_limited);
        return Admission{RateVerdict::prefix_limited, evictions};
    }
    s->tat = s_tat;
    p->tat = p_tat;
    bump(c_->passed);
    return Admission{RateVerdict::pass, evictions};
}

}  // namespace siplb::protect
