#include "siplb/balance/pick.h"

namespace siplb::balance {

const char* to_string(Decision::Reason r) noexcept {
    switch (r) {
        case Decision::Reason::affinity: return "affinity";
        case Decision::Reason::table: return "table";
        case Decision::Reason::dialog_ref: return "dialog_ref";
        case Decision::Reason::keepalive: return "keepalive";
        case Decision::Reason::no_backend: return "no_backend";
    }
    return "unknown";
}

namespace {
inline uint32_t expiry_for(const PoolSnapshot& pool, bool creates_dialog, uint32_t now_s) noexcept {
    return now_s + (creates_dialog ? pool.dialog_idle_s() : pool.transaction_idle_s());
}

// The live backend of the affinity entry `key`, refreshed (expiry, VIP) as
// pick() documents; false when there is none.
inline bool follow_entry(const PoolSnapshot& pool, uint64_t key, uint32_t expiry, uint32_t now_s,
                         AffinityTable& affinity, uint8_t vip, Decision& d) noexcept {
    const auto hit = affinity.lookup(key, now_s);
    if (!hit) return false;
    const uint16_t idx = pool.index_of_id(hit->backend_id);
    if (idx == PoolSnapshot::kNoBackend || !keeps_affinity(pool.backends()[idx].state)) return false;
    // Refresh writes only when it pushes the expiry forward (at most once a
    // second per call) or the client changed VIPs, so most packets only read.
    const bool moved = vip != AffinityTable::kNoVip && vip != hit->vip;
    if (static_cast<int32_t>(expiry - hit->expiry_s) > 0 || moved)
        affinity.upsert(key, hit->backend_id, expiry, now_s, vip);
    d.reason = Decision::Reason::affinity;
    d.backend = idx;
    d.entry = &pool.backends()[idx];
    return true;
}

inline void record(const PoolSnapshot& pool, uint64_t key, uint16_t idx, uint32_t expiry, uint32_t now_s,
                   AffinityTable* affinity, uint8_t vip, Decision& d) noexcept {
    d.backend = idx;
    d.entry = &pool.backends()[idx];
    if (affinity)
        d.affinity_evicted = affinity->upsert(key, pool.backends()[idx].id, expiry, now_s, vip) ==
                             AffinityTable::Store::evicted;
}
}  // namespace

AffinityTable::Store pin(const PoolSnapshot& pool, uint64_t call_hash, uint16_t backend, bool creates_dialog,
                         uint32_t now_s, AffinityTable& affinity) noexcept {
    if (backend >= pool.backends().size()) return AffinityTable::Store::unchanged;
    return affinity.upsert(affinity_key(pool, call_hash), pool.backends()[backend].id,
                           expiry_for(pool, creates_dialog, now_s), now_s);
}

Decision pick_keyed(const PoolSnapshot& pool, uint64_t call_hash, uint64_t table_hash, bool creates_dialog,
                    uint32_t now_s, AffinityTable* affinity, uint8_t vip) noexcept {
    Decision d;
    const uint64_t key = affinity_key(pool, call_hash);
    const uint32_t expiry = expiry_for(pool, creates_dialog, now_s);
    if (affinity && follow_entry(pool, key, expiry, now_s, *affinity, vip, d)) return d;
    const uint16_t idx = pool.table().lookup(table_hash);
    if (idx == MaglevTable::kNone) return d;  // no_backend; the old entry stays for when it comes back
    d.reason = Decision::Reason::table;
    record(pool, key, idx, expiry, now_s, affinity, vip, d);
    return d;
}

Decision pick(const PoolSnapshot& pool, uint64_t call_hash, bool creates_dialog, uint32_t now_s,
              AffinityTable* affinity, uint8_t vip) noexcept {
    return pick_keyed(pool, call_hash, call_hash, creates_dialog, now_s, affinity, vip);
}

Decision pick_joining(const PoolSnapshot& pool, uint64_t call_hash, uint64_t ref_call_hash, uint64_t ref_table_hash,
                      uint32_t now_s, AffinityTable* affinity, uint8_t vip) noexcept {
    Decision d;
    const uint64_t key = affinity_key(pool, call_hash);
    const uint32_t expiry = expiry_for(pool, true, now_s);
    if (affinity) {
        if (follow_entry(pool, key, expiry, now_s, *affinity, vip, d)) return d;
        // The named dialog's entry is only read: the new dialog does not
        // keep the one it replaces alive.
        if (const auto hit = affinity->lookup(affinity_key(pool, ref_call_hash), now_s)) {
            const uint16_t idx = pool.index_of_id(hit->backend_id);
            if (idx != PoolSnapshot::kNoBackend && keeps_affinity(pool.backends()[idx].state)) {
                d.reason = Decision::Reason::dialog_ref;
                record(pool, key, idx, expiry, now_s, affinity, vip, d);
                return d;
            }
        }
    }
    const uint16_t idx = pool.table().lookup(ref_table_hash);
    if (idx == MaglevTable::kNone) return d;
    d.reason = Decision::Reason::dialog_ref;
    record(pool, key, idx, expiry, now_s, affinity, vip, d);
    return d;
}

}  // namespace siplb::balance
