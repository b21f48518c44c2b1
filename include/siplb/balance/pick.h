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

}  // namespace siplb::balance
