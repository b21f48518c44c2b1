#include "siplb/balance/pick.h"

namespace siplb::balance {

const char* to_string(Decision::Reason r) noexcept {
    switch (r) {
        case Decision::Reason::affinity: return "affinity";
        case Decision::Reason::table: return "table";
        case Decision::Reason::keepalive: return "keepalive";
        case Decision::Reason::no_backend: return "no_backend";
    }
    return "unknown";
}

namespace {
inline uint32_t expiry_for(const PoolSnapshot& pool, bool creates_dialog, uint32_t now_s) noexcept {
    return now_s + (creates_dialog ? pool.dialog_idle_s() : pool.transaction_idle_s());
}
}  // namespace

AffinityTable::Store pin(const PoolSnapshot& pool, uint64_t call_hash, uint16_t backend, bool creates_dialog,
                         uint32_t now_s, AffinityTable& affinity) noexcept {
    if (backend >= pool.backends().size()) return AffinityTable::Store::unchanged;
    return affinity.upsert(affinity_key(pool, call_hash), pool.backends()[backend].id,
                           expiry_for(pool, creates_dialog, now_s), now_s);
}

Decision pick(const PoolSnapshot& pool, uint64_t call_hash, bool creates_dialog, uint32_t now_s,
              AffinityTable* affinity, uint8_t vip) noexcept {
    const auto backends = pool.backends();
    Decision d;
    const uint64_t key = affinity_key(pool, call_hash);
    const uint32_t expiry = expiry_for(pool, creates_dialog, now_s);

    if (affinity) {
        if (auto hit = affinity->lookup(key, now_s)) {
            const uint16_t idx = pool.index_of_id(hit->backend_id);
            if (idx != PoolSnapshot::kNoBackend && keeps_affinity(backends[idx].state)) {
                // Refresh writes only when it pushes the expiry forward (at
                // most once a second per call) or the client changed VIPs,
                // so most packets only read.
                const bool moved = vip != AffinityTable::kNoVip && vip != hit->vip;
                if (static_cast<int32_t>(expiry - hit->expiry_s) > 0 || moved)
                    affinity->upsert(key, hit->backend_id, expiry, now_s, vip);
                d.reason = Decision::Reason::affinity;
                d.backend = idx;
                d.entry = &backends[idx];
                return d;
            }
        }
    }

    const uint16_t idx = pool.table().lookup(call_hash);
    if (idx == MaglevTable::kNone) return d;  // no_backend; the old entry stays for when it comes back
    d.reason = Decision::Reason::table;
    d.backend = idx;
    d.entry = &backends[idx];
    if (affinity)
        d.affinity_evicted = affinity->upsert(key, backends[idx].id, expiry, now_s, vip) ==
                             AffinityTable::Store::evicted;
    return d;
}

}  // namespace siplb::balance
