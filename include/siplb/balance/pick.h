// Per-datagram backend choice, the one function both the dataplane and
// `siplbctl lookup` call: affinity first, then the Maglev table.
#pragma once

#include <cstdint>

#include "siplb/balance/affinity.h"
#include "siplb/balance/snapshot.h"

namespace siplb::balance {

struct Decision {
    enum class Reason : uint8_t {
        affinity,    // an affinity entry for a backend that is still alive
        table,       // Maglev table (first message, expired entry, or entry's backend gone)
        dialog_ref,  // the backend of the dialog a Replaces/Join names (its entry, else its table slot)
        keepalive,   // not returned by pick(): the dataplane's tag for CRLF keepalives it answers itself
        no_backend,  // no usable backend in the pool: drop and count
    };
    Reason reason = Reason::no_backend;
    uint16_t backend = PoolSnapshot::kNoBackend;  // index into pool.backends()
    const BackendEntry* entry = nullptr;          // nullptr with no_backend
    bool affinity_evicted = false;                // storing this call displaced a live entry
};

const char* to_string(Decision::Reason r) noexcept;

// The affinity table key of a call in a pool (the Call-ID hash mixed with
// the pool's salt). Use it, or pin(), rather than re-deriving it.
inline uint64_t affinity_key(const PoolSnapshot& pool, uint64_t call_hash) noexcept {
    return call_hash ^ pool.affinity_salt();
}

// Pulls what pick() will read for this key toward the cache: the Maglev
// slot and, with `affinity`, the key's bucket. A worker issues it for a
// whole burst before picking, so the misses overlap instead of queueing.
// Always inlined, as is every function that only prefetches: GCC counts
// __builtin_prefetch as free of side effects, so a call to such a function
// that it chose not to inline is deleted as dead code, prefetches and all.
[[gnu::always_inline]] inline void prefetch_pick(const PoolSnapshot& pool, uint64_t call_hash,
                                                 const AffinityTable* affinity) noexcept {
    const MaglevTable& table = pool.table();
    __builtin_prefetch(table.slots().data() + MaglevTable::slot_of(call_hash, table.size()), 0, 3);
    if (affinity) affinity->prefetch(affinity_key(pool, call_hash));
}

// The connection table key of a client's connection to a pool's TCP
// (tls = false) or TLS VIPs. client_hash: hash_call_id over the client's
// address bytes and big-endian port with the pool's seed (also the Maglev
// key of its SYN).
inline uint64_t connection_key(const PoolSnapshot& pool, uint64_t client_hash, bool tls) noexcept {
    return client_hash ^ pool.affinity_salt() ^ (tls ? 0x544c535f434f4e4eull : 0);  // "TLS_CONN"
}

// Pins a call to a backend chosen elsewhere (e.g. a dialog a backend starts
// toward a customer), with pick()'s expiry rules. backend: index in pool.
AffinityTable::Store pin(const PoolSnapshot& pool, uint64_t call_hash, uint16_t backend, bool creates_dialog,
                         uint32_t now_s, AffinityTable& affinity) noexcept;

// call_hash: hash_call_id(call_id, pool.seed()). creates_dialog: the message
// starts a dialog (INVITE, SUBSCRIBE, ...): the affinity entry then lives
// dialog_idle_s after the last message, otherwise transaction_idle_s; an
// existing entry's expiry never moves backwards. affinity may be nullptr
// (pure table decision, as `siplbctl lookup` does). now_s: monotonic seconds.
// vip: the slot of the VIP the message came in on, recorded with the call
// (a client that moves to another VIP of the pool moves the entry along);
// kNoVip keeps whatever the entry has.
Decision pick(const PoolSnapshot& pool, uint64_t call_hash, bool creates_dialog, uint32_t now_s,
              AffinityTable* affinity, uint8_t vip = AffinityTable::kNoVip) noexcept;

// pick() for a pool whose key is not the Call-ID: the affinity entry stays
// keyed by call_hash (so every later message of the call, from either
// side, follows it), but a message without one is placed by table_hash,
// the hash of the pool's key value.
Decision pick_keyed(const PoolSnapshot& pool, uint64_t call_hash, uint64_t table_hash, bool creates_dialog,
                    uint32_t now_s, AffinityTable* affinity, uint8_t vip = AffinityTable::kNoVip) noexcept;

// A dialog-creating request with Replaces or Join, naming the dialog whose
// Call-ID hashes to ref_call_hash: it goes where that dialog is, its
// affinity entry when it has a live one, else the table slot of
// ref_table_hash (its Call-ID hash in a Call-ID pool), and the new call's
// entry (call_hash) records that backend. A retransmission that already
// has its own entry follows it. Reason::dialog_ref when the named dialog
// decided.
Decision pick_joining(const PoolSnapshot& pool, uint64_t call_hash, uint64_t ref_call_hash, uint64_t ref_table_hash,
                      uint32_t now_s, AffinityTable* affinity, uint8_t vip = AffinityTable::kNoVip) noexcept;

}  // namespace siplb::balance
