// Immutable pool and dataplane snapshots. The control side (PoolManager)
// builds a new DataplaneSnapshot whenever anything changes and publishes it
// through SnapshotPublisher (QSBR, rcu.h); workers read it without locks.
// Nothing here allocates or locks after construction.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "siplb/balance/affinity.h"
#include "siplb/balance/hash.h"
#include "siplb/balance/key.h"
#include "siplb/balance/maglev.h"
#include "siplb/balance/rcu.h"
#include "siplb/balance/table_size.h"
#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"
#include "siplb/protect/guard.h"
#include "siplb/balance/forward_mode.h"

namespace siplb::balance {

// Only `active` backends (with weight > 0) own Maglev slots, i.e. take new
// calls. `draining` and `overloaded` keep their existing dialogs through
// affinity; `down` and `disabled` lose them (Maglev re-decides).
enum class BackendState : uint8_t { active, draining, overloaded, down, disabled };
enum class BackendSource : uint8_t { static_config, dns };

const char* to_string(BackendState s) noexcept;
const char* to_string(BackendSource s) noexcept;
inline bool keeps_affinity(BackendState s) noexcept {
    return s == BackendState::active || s == BackendState::draining || s == BackendState::overloaded;
}

inline constexpr uint32_t kNoCounterSlot = UINT32_MAX;
// Pool counter slots of the workers' per-lcore blocks: distinct pool names
// counted per process.
inline constexpr uint32_t kPoolCounterSlots = 256;
// Rule counter slots of the per-lcore blocks: distinct (pool name, rule
// name) pairs counted per process.
inline constexpr uint32_t kRuleCounterSlots = 4096;
inline constexpr size_t kMaxOverloadCodes = 8;

struct BackendSpec {
    Endpoint address;
    uint32_t weight = 1;
    BackendState state = BackendState::active;
    BackendSource source = BackendSource::static_config;
    uint16_t tls_port = 5061;  // for the pool's TLS VIPs (TCP and UDP VIPs use address.port)
};

// A VIP for SIP over TCP, or over TLS (which siplb carries as TCP without
// terminating it: the only difference is the backends' port).
struct TcpVip {
    Endpoint address;
    bool tls = false;
    bool operator==(const TcpVip&) const = default;
};

struct PoolSpec {
    std::string name;
    std::vector<Endpoint> listen;    // VIPs (UDP)
    std::vector<TcpVip> tcp_listen;  // TCP and TLS VIPs
    // Connection affinity (ConnectionTable): how long an entry lives after
    // the last segment, after a FIN or RST, and while the handshake is not
    // complete.
    uint32_t tcp_idle_s = 3600;
    uint32_t tcp_close_grace_s = 15;
    uint32_t tcp_handshake_s = 30;
    std::vector<BackendSpec> backends;  // any order; identities must be unique
    // Prime, or kAutoTableSize: derived from backends.size() (table_size.h).
    uint32_t table_size = kAutoTableSize;
    uint64_t seed = kDefaultSeed;
    ForwardMode mode = ForwardMode::nat;
    uint32_t dialog_idle_s = 7200;
    uint32_t transaction_idle_s = 64;
    // What chooses the backend of a new dialog or transaction, and what when
    // a message lacks that field (KeyKind::call_id always answers).
    KeySpec key;
    KeySpec key_fallback;
    // Where the workers count this pool (per-lcore pool block, and half of
    // each backend's counter key). The control plane gives each pool name
    // its own slot for the life of the process, so counters follow the name
    // across snapshots; kNoCounterSlot: not counted.
    uint32_t counter_slot = kNoCounterSlot;
    // Where the workers count each of the protection's rules, by rule index
    // (its order in protection->rules()); given per pool and rule name for
    // the life of the process like counter_slot. Missing entries and
    // kNoCounterSlot: not counted.
    std::vector<uint32_t> rule_counter_slots;
    // Response codes that mean "overloaded" (503): counted per backend on
    // the way to clients, for passive overload detection. At most
    // kMaxOverloadCodes.
    std::vector<uint16_t> overload_codes = {503};
    // The pool's compiled rules and rate limits (protect stage); null or
    // inactive: none.
    std::shared_ptr<const protect::PoolProtection> protection;
};

struct BackendEntry {
    Endpoint address;
    std::string identity;  // address.to_string(): what Maglev hashes
    uint32_t weight = 1;
    BackendState state = BackendState::active;
    BackendSource source = BackendSource::static_config;
    // Stable across snapshots: low 32 bits of XXH3(identity) (re-hashed in
    // the rare case two backends of one pool collide). Affinity stores it.
    uint32_t id = 0;
    uint16_t tls_port = 5061;
    // Where a connection to a VIP of this kind goes.
    Endpoint tcp_address(bool tls) const noexcept { return tls ? Endpoint{address.ip, tls_port} : address; }
};

class PoolSnapshot {
public:
    static constexpr uint16_t kNoBackend = MaglevTable::kNone;
    // A pool's VIPs have slots 1..kMaxVips (what affinity entries record).
    static constexpr size_t kMaxVips = AffinityTable::kMaxVip;

    // Validates the spec (table size prime or auto, unique backends, idle times > 0,
    // at most MaglevTable::kMaxBackends backends, at most kMaxVips VIPs) and
    // builds the table.
    static Result<std::shared_ptr<const PoolSnapshot>> build(const PoolSpec& spec, uint64_t version);

    const std::string& name() const noexcept { return name_; }
    const std::vector<Endpoint>& listen() const noexcept { return listen_; }
    // TCP and TLS VIPs; their slots (in connection entries) are position + 1.
    const std::vector<TcpVip>& tcp_listen() const noexcept { return tcp_listen_; }
    const TcpVip* tcp_vip_at(uint8_t slot) const noexcept {
        return slot != 0 && slot <= tcp_listen_.size() ? &tcp_listen_[slot - 1u] : nullptr;
    }
    // The slot of the first TCP VIP of this kind and family (0: none): where
    // replies of a connection without an entry come from.
    uint8_t first_tcp_vip(bool tls, bool v6) const noexcept {
        for (size_t i = 0; i < tcp_listen_.size(); ++i)
            if (tcp_listen_[i].tls == tls && tcp_listen_[i].address.ip.is_v6() == v6)
                return static_cast<uint8_t>(i + 1);
        return 0;
    }
    uint32_t tcp_idle_s() const noexcept { return tcp_idle_s_; }
    uint32_t tcp_close_grace_s() const noexcept { return tcp_close_grace_s_; }
    uint32_t tcp_handshake_s() const noexcept { return tcp_handshake_s_; }
    // Sorted by identity; Decision::backend indexes this.
    std::span<const BackendEntry> backends() const noexcept { return backends_; }
    const MaglevTable& table() const noexcept { return table_; }
    uint64_t version() const noexcept { return version_; }
    uint64_t seed() const noexcept { return table_.seed(); }
    ForwardMode mode() const noexcept { return mode_; }
    uint32_t dialog_idle_s() const noexcept { return dialog_idle_s_; }
    uint32_t transaction_idle_s() const noexcept { return transaction_idle_s_; }
    uint32_t counter_slot() const noexcept { return counter_slot_; }
    // The counter slot of rule `rule` of protection() (GuardDecision::rule).
    uint32_t rule_counter_slot(uint32_t rule) const noexcept {
        return rule < rule_counter_slots_.size() ? rule_counter_slots_[rule] : kNoCounterSlot;
    }
    const KeySpec& key() const noexcept { return key_; }
    const KeySpec& key_fallback() const noexcept { return key_fallback_; }
    // The default key: the datagram's Call-ID hash is all pick() needs.
    bool keyed_by_call_id() const noexcept { return key_.kind == KeyKind::call_id; }
    // Compiled rules and rate limits; nullptr when the pool has none.
    const std::shared_ptr<const protect::PoolProtection>& protection() const noexcept { return protection_; }
    // The headers of a request to this pool its balancing reads: the
    // Call-ID, Replaces/Join, the key's and the rules' fields.
    sip::HeaderSet request_headers() const noexcept { return request_headers_; }
    // True when `payload` is a SIP response with one of the pool's overload
    // codes ("SIP/2.0 503 ..."): two word compares per reply on the hot path.
    bool is_overload_response(const uint8_t* payload, size_t len) const noexcept {
        if (len < 12) return false;
        uint64_t version;
        uint32_t status;
        std::memcpy(&version, payload, 8);
        std::memcpy(&status, payload + 8, 4);
        if (version != kSipVersionWord) return false;
        for (uint8_t i = 0; i < overload_code_count_; ++i)
            if (overload_status_words_[i] == status) return true;
        return false;
    }
    // Mixed into affinity keys so one Call-ID in two pools keeps two entries.
    uint64_t affinity_salt() const noexcept { return affinity_salt_; }
    // Backends that take new calls (active, weight > 0).
    size_t usable_backends() const noexcept { return table_.participating(); }

    // Index of the backend with this stable id, or kNoBackend. O(1);
    // inline, since every affinity hit asks it.
    uint16_t index_of_id(uint32_t id) const noexcept {
        const size_t mask = id_slots_.size() - 1;
        for (size_t pos = id_home(id, mask);; pos = (pos + 1) & mask) {
            const uint16_t idx = id_slots_[pos];
            if (idx == kNoBackend) return kNoBackend;
            if (id_keys_[pos] == id) return idx;
        }
    }
    // Index of the backend with this address, or kNoBackend. O(log n), control side.
    uint16_t index_of(const Endpoint& address) const noexcept;
    // Some backend of the pool has this IP address (any port). O(log n), no
    // allocation: the dataplane asks it of the Contact a backend sends out.
    bool is_backend_ip(const IpAddress& ip) const noexcept {
        return std::binary_search(backend_ips_.begin(), backend_ips_.end(), ip);
    }
    // Source address for packets from a backend back to clients: the first
    // VIP of the backend's address family (else the first VIP). nullptr if
    // the pool has no VIP.
    const Endpoint* snat_vip_for(const Endpoint& backend) const noexcept;
    // A VIP as affinity entries and the client VIP table record it: its
    // position in listen() plus one, so slot 0 (AffinityTable::kNoVip) means
    // none. Slots follow the listen order: a reload that removes or reorders
    // a pool's VIPs makes recorded slots name other VIPs (new VIPs belong at
    // the end). vip_at(): nullptr for 0 and slots past the list.
    const Endpoint* vip_at(uint8_t slot) const noexcept {
        return slot != AffinityTable::kNoVip && slot <= listen_.size() ? &listen_[slot - 1u] : nullptr;
    }
    // The slot of `vip`, which must point into listen() (as snat_vip_for()'s
    // answers do); kNoVip otherwise.
    uint8_t vip_slot(const Endpoint* vip) const noexcept {
        return vip >= listen_.data() && vip < listen_.data() + listen_.size()
                   ? static_cast<uint8_t>(vip - listen_.data() + 1)
                   : AffinityTable::kNoVip;
    }
    // More than one VIP of this address family: only then does the VIP a
    // call or client used need remembering (otherwise snat_vip_for() is it).
    bool several_vips(bool v6) const noexcept { return v6 ? several_v6_ : several_v4_; }
    // Table fingerprint mixed with name, seed and every backend's state.
    uint64_t fingerprint() const noexcept { return fingerprint_; }

private:
    PoolSnapshot() = default;
    std::string name_;
    std::vector<Endpoint> listen_;
    std::vector<TcpVip> tcp_listen_;
    uint32_t tcp_idle_s_ = 3600, tcp_close_grace_s_ = 15, tcp_handshake_s_ = 30;
    std::vector<BackendEntry> backends_;
    MaglevTable table_;
    uint64_t version_ = 0;
    ForwardMode mode_ = ForwardMode::nat;
    uint32_t dialog_idle_s_ = 7200;
    uint32_t transaction_idle_s_ = 64;
    uint32_t counter_slot_ = kNoCounterSlot;
    std::vector<uint32_t> rule_counter_slots_;
    KeySpec key_, key_fallback_;
    std::shared_ptr<const protect::PoolProtection> protection_;
    sip::HeaderSet request_headers_;
    // "SIP/2.0 " and each overload code's "NNN " as the words a payload's
    // first 8 and next 4 bytes load to.
    static const uint64_t kSipVersionWord;
    uint32_t overload_status_words_[kMaxOverloadCodes] = {};
    uint8_t overload_code_count_ = 0;
    uint64_t affinity_salt_ = 0;
    uint64_t fingerprint_ = 0;
    const Endpoint* vip_v4_ = nullptr;
    const Endpoint* vip_v6_ = nullptr;
    bool several_v4_ = false, several_v6_ = false;
    std::vector<IpAddress> backend_ips_;  // sorted, unique
    // First slot an id probes in id_keys_ / id_slots_ (linear probing).
    static size_t id_home(uint32_t id, size_t mask) noexcept { return (id * 0x9E3779B97F4A7C15ull) >> 32 & mask; }
    // Open addressing id -> index (power-of-two size, kNoBackend = empty).
    std::vector<uint32_t> id_keys_;
    std::vector<uint16_t> id_slots_;
};

// All pools of the daemon, with O(1) lookups the dataplane needs per packet.
class DataplaneSnapshot {
public:
    struct PoolRef {
        const PoolSnapshot* pool = nullptr;
        uint32_t pool_index = 0;
        uint8_t vip = AffinityTable::kNoVip;  // the VIP's slot in pool (PoolSnapshot::vip_at)
    };
    // One pool a backend address belongs to.
    struct BackendInPool {
        uint32_t pool_index = 0;
        uint16_t backend = PoolSnapshot::kNoBackend;
        const Endpoint* snat_vip = nullptr;
    };
    struct BackendRef {
        const PoolSnapshot* pool = nullptr;
        uint32_t pool_index = 0;
        uint16_t backend = PoolSnapshot::kNoBackend;
        const Endpoint* snat_vip = nullptr;  // source to rewrite replies to
        // A backend address in several pools (one server farm behind two
        // names): all of them, the first one as above. Which VIP a reply
        // must come from then depends on the call (the dataplane decides by
        // its Call-ID). Empty for a backend of one pool.
        std::span<const BackendInPool> pools;
    };

    // Pools keep their order (config order = pool_index). Fails on a VIP
    // claimed by two pools or a duplicate pool name. A backend address in two
    // pools resolves to the first pool in find_backend(), with every pool it
    // is in listed in BackendRef::pools.
    // `workers`: how many workers get a protect guard (when any pool has
    // rules or rate limits); `previous`: the snapshot this one replaces,
    // whose guards hand over their rate-limit buckets for unchanged pools
    // (it must stay alive during the call).
    static Result<std::unique_ptr<const DataplaneSnapshot>> build(
        std::vector<std::shared_ptr<const PoolSnapshot>> pools, uint64_t version, unsigned workers = 0,
        const DataplaneSnapshot* previous = nullptr);

    std::span<const std::shared_ptr<const PoolSnapshot>> pools() const noexcept { return pools_; }
    // Worker `w`'s protect stage for this snapshot (pool index = pool_index);
    // nullptr when no pool has rules or rate limits. Mutable state that only
    // worker `w` touches, prepared before publication.
    protect::WorkerGuard* guard(unsigned w) const noexcept { return w < guards_.size() ? guards_[w].get() : nullptr; }
    // What parsing a request to any pool must find: a rule may route it to
    // another pool, which balances it by its own key.
    sip::HeaderSet request_headers() const noexcept { return request_headers_; }
    uint64_t version() const noexcept { return version_; }
    // Over the pools' fingerprints, not the version: equal on two nodes
    // with the same pools, backends, states and tables.
    uint64_t fingerprint() const noexcept { return fingerprint_; }

    // An endpoint as the lookup tables compare it: three words (address
    // halves; port, family and a used bit). from_wire() reads it straight
    // from a packet's address and port bytes, without building an Endpoint
    // first (whose narrow stores, read back as words, stalled per frame).
    struct EndpointKey {
        uint64_t lo = 0, hi = 0;
        uint32_t tag = 0;  // port | family << 16 | 1 << 24; 0 in a free slot
        bool operator==(const EndpointKey&) const = default;
        static EndpointKey of(const Endpoint& e) noexcept;
        static EndpointKey from_wire(const uint8_t* addr, bool v6, const uint8_t* port_be) noexcept {
            EndpointKey k;
            const AddressWords w = address_words(addr, v6);
            k.lo = w.lo;
            k.hi = w.hi;
            const uint32_t port = static_cast<uint32_t>(port_be[0]) << 8 | port_be[1];
            k.tag = port | uint32_t{v6 ? 6u : 4u} << 16 | 1u << 24;
            return k;
        }
    };

    // Exact VIP (address and port) -> pool. pool == nullptr when unknown.
    PoolRef find_pool_by_vip(const Endpoint& vip) const noexcept { return find_pool_by_vip(EndpointKey::of(vip)); }
    // Inline, as are the other per-frame lookups below and the probe they
    // share: returned from a call, GCC built a result's second word from
    // narrower stores and reloaded it as a whole, which store forwarding
    // cannot serve, on every frame to a VIP or from a backend.
    PoolRef find_pool_by_vip(const EndpointKey& vip) const noexcept;
    // Backend address -> pool, backend index and SNAT VIP. pool == nullptr when unknown.
    BackendRef find_backend(const Endpoint& backend) const noexcept { return find_backend(EndpointKey::of(backend)); }
    BackendRef find_backend(const EndpointKey& backend) const noexcept;
    // By name, control side (linear).
    const PoolSnapshot* find_pool(std::string_view name) const noexcept;

    // TCP: exact TCP/TLS VIP -> pool (PoolRef::vip: the slot in tcp_listen()).
    PoolRef find_tcp_vip(const EndpointKey& vip) const noexcept;
    PoolRef find_tcp_vip(const Endpoint& vip) const noexcept { return find_tcp_vip(EndpointKey::of(vip)); }
    // TCP: a backend's TCP or TLS listener (address and port) -> pool and
    // backend. A backend in several pools with TCP VIPs answers for the
    // first of them (its connections' entries say which VIP; see TcpStage).
    struct TcpBackendRef {
        const PoolSnapshot* pool = nullptr;
        uint32_t pool_index = 0;
        uint16_t backend = PoolSnapshot::kNoBackend;
        bool tls = false;  // the TLS port
    };
    TcpBackendRef find_tcp_backend(const EndpointKey& backend) const noexcept;
    TcpBackendRef find_tcp_backend(const Endpoint& backend) const noexcept {
        return find_tcp_backend(EndpointKey::of(backend));
    }

private:
    DataplaneSnapshot() = default;
    // One multiply-mix hash and word compares per probe. The hash is
    // private to this process's tables, unlike the Call-ID hash.
    using Key = EndpointKey;
    struct Slot {
        Key key;
        uint32_t pool_index = 0;
        uint16_t backend = PoolSnapshot::kNoBackend;
        uint8_t vip = AffinityTable::kNoVip;          // VIPs: their slot in the pool
        const Endpoint* snat_vip = nullptr;           // backends: the pool's VIP of their family
        uint32_t shared_first = 0, shared_count = 0;  // backends in several pools: range of shared_
    };
    static uint64_t key_hash(const Key& k) noexcept;
    const Slot* find(const std::vector<Slot>& table, const Key& key) const noexcept;

    std::vector<std::shared_ptr<const PoolSnapshot>> pools_;
    std::vector<Slot> vips_;                                     // power-of-two open addressing
    std::vector<Slot> backends_;                                 // power-of-two open addressing
    std::vector<Slot> tcp_vips_;                                 // TCP and TLS VIPs; same layout
    std::vector<Slot> tcp_backends_;                             // backends' TCP and TLS listeners; vip = 1 for TLS
    std::vector<BackendInPool> shared_;                          // pools of backends that are in more than one
    std::vector<std::unique_ptr<protect::WorkerGuard>> guards_;  // per worker
    sip::HeaderSet request_headers_ = sip::HeaderSet::only(0);
    uint64_t version_ = 0;
    uint64_t fingerprint_ = 0;
};

using SnapshotPublisher = RcuPublisher<DataplaneSnapshot>;

inline uint64_t DataplaneSnapshot::key_hash(const Key& k) noexcept {
    uint64_t h = k.lo * 0x9E3779B97F4A7C15ull ^ k.hi * 0xC2B2AE3D27D4EB4Full ^ k.tag * 0x165667B19E3779F9ull;
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ull;
    return h ^ (h >> 32);
}

inline const DataplaneSnapshot::Slot* DataplaneSnapshot::find(const std::vector<Slot>& table,
                                                              const Key& key) const noexcept {
    const size_t mask = table.size() - 1;
    for (size_t pos = key_hash(key) & mask;; pos = (pos + 1) & mask) {
        const Slot& s = table[pos];
        if (s.key == key) return &s;
        if (s.key.tag == 0) return nullptr;  // free: end of the chain
    }
}

inline DataplaneSnapshot::PoolRef DataplaneSnapshot::find_pool_by_vip(const EndpointKey& vip) const noexcept {
    const Slot* s = find(vips_, vip);
    if (!s) return {};
    return {pools_[s->pool_index].get(), s->pool_index, s->vip};
}

inline DataplaneSnapshot::PoolRef DataplaneSnapshot::find_tcp_vip(const EndpointKey& vip) const noexcept {
    const Slot* s = find(tcp_vips_, vip);
    if (!s) return {};
    return {pools_[s->pool_index].get(), s->pool_index, s->vip};
}

inline DataplaneSnapshot::BackendRef DataplaneSnapshot::find_backend(const EndpointKey& backend) const noexcept {
    const Slot* s = find(backends_, backend);
    if (!s) return {};
    return {pools_[s->pool_index].get(), s->pool_index, s->backend, s->snat_vip,
            std::span<const BackendInPool>(shared_.data() + s->shared_first, s->shared_count)};
}

inline DataplaneSnapshot::TcpBackendRef DataplaneSnapshot::find_tcp_backend(const EndpointKey& backend) const noexcept {
    const Slot* s = find(tcp_backends_, backend);
    if (!s) return {};
    return {pools_[s->pool_index].get(), s->pool_index, s->backend, s->vip != 0};
}

}  // namespace siplb::balance
