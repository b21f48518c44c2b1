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
    r.sources_.reset(new Slot[cfg.table_size]());
    r.prefixes_.reset(new Slot[cfg.table_size]());
    r.c_ = std::make_unique<Counters>();
    return r;
}

RateLimiter::Slot* RateLimiter::lookup(Slot* table, uint64_t h, uint64_t hi, uint64_t lo, uint64_t now_ns) noexcept {
    Slot* victim = nullptr;
    for (uint32_t i = 0; i < kProbe; ++i) {
        Slot* s = &table[(h + i) & mask_];
        if (s->hi == hi && s->lo == lo && s->tat != 0) return s;
        if (!victim || s->tat < victim->tat) victim = s;
    }
    if (victim->tat > now_ns) bump(c_->evictions);  // a live bucket gives way: stalest first
    victim->hi = hi;
    victim->lo = lo;
    victim->tat = 0;  // full bucket
    return victim;
}

RateLimiter::Probe RateLimiter::locate(const IpAddress& src) const noexcept {
    Probe k;
    if (src.is_v4()) {
        uint32_t a;
        std::memcpy(&a, src.bytes.data(), 4);
        k.hi = 0;
        k.lo = (0xffffull << 32) | a;  // ::ffff:a.b.c.d, address bytes as they are in memory
        uint32_t p = a;
        std::memset(reinterpret_cast<uint8_t*>(&p) + 3, 0, 1);  // /24: clear the last address byte
        k.phi = 0;
        k.plo = (0xffffull << 32) | p;
    } else {
        std::memcpy(&k.hi, src.bytes.data(), 8);
        std::memcpy(&k.lo, src.bytes.data() + 8, 8);
        k.phi = k.hi;  // /64
        k.plo = 0;
    }
    k.source_hash = mix(k.hi, k.lo, seed_);
    k.prefix_hash = mix(k.phi, k.plo, seed_);
    return k;
}

void RateLimiter::prefetch_window(const Slot* table, uint32_t mask, uint64_t h) noexcept {
    // The window is kProbe consecutive slots (wrapping at the end of the
    // table): every line from its first slot to its last.
    const uint32_t first = static_cast<uint32_t>(h & mask);
    const uint32_t last = (first + kProbe - 1) & mask;
    const auto* begin = reinterpret_cast<const char*>(&table[first]);
    const auto* end = reinterpret_cast<const char*>(&table[last]) + sizeof(Slot) - 1;
    if (last < first) {  // wrapped: the table's tail and its head
        const auto* tail_end = reinterpret_cast<const char*>(&table[mask]) + sizeof(Slot) - 1;
        for (const char* p = begin; p <= tail_end; p += 64) __builtin_prefetch(p, 1, 3);
        __builtin_prefetch(tail_end, 1, 3);
        begin = reinterpret_cast<const char*>(table);
    }
    for (const char* p = begin; p <= end; p += 64) __builtin_prefetch(p, 1, 3);
    __builtin_prefetch(end, 1, 3);
}

void RateLimiter::prefetch(const Probe& k) const noexcept {
    prefetch_window(sources_.get(), mask_, k.source_hash);
    prefetch_window(prefixes_.get(), mask_, k.prefix_hash);
}

RateVerdict RateLimiter::admit(const Probe& k, uint64_t now_ns) noexcept {
    Slot* s = lookup(sources_.get(), k.source_hash, k.hi, k.lo, now_ns);
    uint64_t s_tat = std::max(s->tat, now_ns) + source_.interval_ns;
    if (s_tat - now_ns > source_.tolerance_ns) {
        bump(c_->source_limited);
        return RateVerdict::source_limited;
    }
    Slot* p = lookup(prefixes_.get(), k.prefix_hash, k.phi, k.plo, now_ns);
    uint64_t p_tat = std::max(p->tat, now_ns) + prefix_.interval_ns;
    if (p_tat - now_ns > prefix_.tolerance_ns) {
        bump(c_->prefix_limited);
        return RateVerdict::prefix_limited;
    }
    s->tat = s_tat;
    p->tat = p_tat;
    bump(c_->passed);
    return RateVerdict::pass;
}

}  // namespace siplb::protect
