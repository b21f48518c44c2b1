#include "siplb/balance/snapshot.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>

namespace siplb::balance {
namespace {

constexpr uint64_t kIdSeed = 0x6261636b656e6469ull;    // "backendi"
constexpr uint64_t kSaltSeed = 0x706f6f6c73616c74ull;  // "poolsalt"

struct Fingerprint {
    XXH3_state_t* st = XXH3_createState();
    Fingerprint() { XXH3_64bits_reset(st); }
    ~Fingerprint() { XXH3_freeState(st); }
    void add(const void* p, size_t n) { XXH3_64bits_update(st, p, n); }
    template <class T>
    void add_value(const T& v) {
        add(&v, sizeof v);
    }
    void add_string(std::string_view s) {
        add(s.data(), s.size());
        add_value(static_cast<uint64_t>(s.size()));
    }
    void add_endpoint(const Endpoint& e) {
        add_value(static_cast<uint8_t>(e.ip.family));
        add(e.ip.bytes.data(), e.ip.bytes.size());
        add_value(e.port);
    }
    uint64_t digest() const { return XXH3_64bits_digest(st); }
};

size_t pow2_at_least(size_t n) { return std::bit_ceil(std::max<size_t>(n, 2)); }

}  // namespace

const char* to_string(BackendState s) noexcept {
    switch (s) {
        case BackendState::active: return "active";
        case BackendState::draining: return "draining";
        case BackendState::overloaded: return "overloaded";
        case BackendState::down: return "down";
        case BackendState::disabled: return "disabled";
    }
    return "unknown";
}

const char* to_string(BackendSource s) noexcept {
    switch (s) {
        case BackendSource::static_config: return "static";
        case BackendSource::dns: return "dns";
    }
    return "unknown";
}

const uint64_t PoolSnapshot::kSipVersionWord = [] {
    uint64_t w;
    std::memcpy(&w, "SIP/2.0 ", 8);
    return w;
}();

Result<std::shared_ptr<const PoolSnapshot>> PoolSnapshot::build(const PoolSpec& spec, uint64_t version) {
    using R = Result<std::shared_ptr<const PoolSnapshot>>;
    const std::string where = "pool '" + spec.name + "': ";
    if (spec.name.empty()) return R::fail("pool without a name");
    if (spec.dialog_idle_s == 0 || spec.transaction_idle_s == 0)
        return R::fail(where + "dialog_idle_s and transaction_idle_s must be > 0");
    if (spec.backends.size() > MaglevTable::kMaxBackends)
        return R::fail(where + "too many backends (" + std::to_string(spec.backends.size()) + ")");
    if (spec.listen.size() > kMaxVips)
        return R::fail(where + "at most " + std::to_string(kMaxVips) + " VIPs (listen has " +
                       std::to_string(spec.listen.size()) + ")");
    if (spec.tcp_listen.size() > kMaxVips)
        return R::fail(where + "at most " + std::to_string(kMaxVips) + " TCP and TLS VIPs");
    if (spec.tcp_idle_s == 0 || spec.tcp_close_grace_s == 0 || spec.tcp_handshake_s == 0)
        return R::fail(where + "TCP timeouts must be > 0");

    std::shared_ptr<PoolSnapshot> snap(new PoolSnapshot());
    PoolSnapshot& s = *snap;
    s.name_ = spec.name;
    s.listen_ = spec.listen;
    s.tcp_listen_ = spec.tcp_listen;
    s.tcp_idle_s_ = spec.tcp_idle_s;
    s.tcp_close_grace_s_ = spec.tcp_close_grace_s;
    s.tcp_handshake_s_ = spec.tcp_handshake_s;
    s.version_ = version;
    s.mode_ = spec.mode;
    s.dialog_idle_s_ = spec.dialog_idle_s;
    s.transaction_idle_s_ = spec.transaction_idle_s;
    s.counter_slot_ = spec.counter_slot;
    for (const KeySpec* k : {&spec.key, &spec.key_fallback})
        if (k->kind == KeyKind::header && k->header.empty()) return R::fail(where + "header key without a name");
    s.key_ = spec.key;
    s.key_fallback_ = spec.key_fallback;
    if (spec.protection && spec.protection->active()) {
        s.protection_ = spec.protection;
        s.rule_counter_slots_ = spec.rule_counter_slots;
    }
    s.request_headers_ = sip::HeaderSet::only(sip::HeaderSet::dialog_ref) | headers_read(s.key_) |
                         headers_read(s.key_fallback_) |
                         (s.protection_ ? protect::headers_read(*s.protection_->rules()) : sip::HeaderSet::only(0));
    if (spec.overload_codes.size() > kMaxOverloadCodes)
        return R::fail(where + "at most " + std::to_string(kMaxOverloadCodes) + " overload codes");
    for (uint16_t code : spec.overload_codes) {
        if (code < 100 || code > 699)
            return R::fail(where + "overload code " + std::to_string(code) + " is not a SIP status");
        const char text[4] = {static_cast<char>('0' + code / 100), static_cast<char>('0' + code / 10 % 10),
                              static_cast<char>('0' + code % 10), ' '};
        std::memcpy(&s.overload_status_words_[s.overload_code_count_++], text, 4);
    }
    s.affinity_salt_ = XXH3_64bits_withSeed(spec.name.data(), spec.name.size(), kSaltSeed);

    s.backends_.reserve(spec.backends.size());
    for (const auto& b : spec.backends)
        s.backends_.push_back({b.address, b.address.to_string(), b.weight, b.state, b.source, 0, b.tls_port});
    std::sort(s.backends_.begin(), s.backends_.end(),
              [](const BackendEntry& a, const BackendEntry& b) { return a.identity < b.identity; });
    for (size_t i = 1; i < s.backends_.size(); ++i)
        if (s.backends_[i].identity == s.backends_[i - 1].identity)
            return R::fail(where + "backend " + s.backends_[i].identity + " listed twice");

    // Stable ids with open addressing id -> index; a collision (rare: 32
    // bits) re-hashes the later identity with the next seed.
    const size_t cap = pow2_at_least(2 * s.backends_.size());
    s.id_keys_.assign(cap, 0);
    s.id_slots_.assign(cap, kNoBackend);
    for (size_t i = 0; i < s.backends_.size(); ++i) {
        auto& b = s.backends_[i];
        for (uint64_t attempt = 0;; ++attempt) {
            b.id = static_cast<uint32_t>(XXH3_64bits_withSeed(b.identity.data(), b.identity.size(), kIdSeed + attempt));
            if (s.index_of_id(b.id) == kNoBackend) break;
        }
        size_t pos = id_home(b.id, cap - 1);
        while (s.id_slots_[pos] != kNoBackend) pos = (pos + 1) & (cap - 1);
        s.id_keys_[pos] = b.id;
        s.id_slots_[pos] = static_cast<uint16_t>(i);
    }

    for (const auto& b : s.backends_) s.backend_ips_.push_back(b.address.ip);
    std::sort(s.backend_ips_.begin(), s.backend_ips_.end());
    s.backend_ips_.erase(std::unique(s.backend_ips_.begin(), s.backend_ips_.end()), s.backend_ips_.end());

    std::vector<MaglevBackend> mb;
    mb.reserve(s.backends_.size());
    for (const auto& b : s.backends_) mb.push_back({b.identity, b.state == BackendState::active ? b.weight : 0});
    // Sized by every backend of the spec, whatever its state: health must
    // never resize (and so reshuffle) the table.
    auto table = MaglevTable::build(mb, effective_table_size(spec.table_size, spec.backends.size()), spec.seed);
    if (!table) return R::fail(where + table.message());
    s.table_ = std::move(table.value());

    for (const auto& vip : s.listen_) {
        const Endpoint*& first = vip.ip.is_v4() ? s.vip_v4_ : s.vip_v6_;
        if (first)
            (vip.ip.is_v4() ? s.several_v4_ : s.several_v6_) = true;
        else
            first = &vip;
    }

    Fingerprint fp;
    fp.add_string(s.name_);
    fp.add_value(s.table_.fingerprint());
    fp.add_value(static_cast<uint8_t>(s.mode_));
    fp.add_value(s.dialog_idle_s_);
    fp.add_value(s.transaction_idle_s_);
    // Two nodes with different keys place new calls differently.
    fp.add_string(to_string(s.key_));
    fp.add_string(to_string(s.key_fallback_));
    for (const auto& l : s.listen_) fp.add_endpoint(l);
    for (const auto& l : s.tcp_listen_) {
        fp.add_endpoint(l.address);
        fp.add_value(l.tls);
    }
    if (!s.tcp_listen_.empty())
        for (const auto& b : s.backends_) fp.add_value(b.tls_port);
    for (const auto& b : s.backends_) {
        fp.add_string(b.identity);
        fp.add_value(b.weight);
        fp.add_value(static_cast<uint8_t>(b.state));
    }
    s.fingerprint_ = fp.digest();
    return std::shared_ptr<const PoolSnapshot>(std::move(snap));
}

uint16_t PoolSnapshot::index_of(const Endpoint& address) const noexcept {
    const std::string identity = address.to_string();
    auto it = std::lower_bound(backends_.begin(), backends_.end(), identity,
                               [](const BackendEntry& b, const std::string& id) { return b.identity < id; });
    if (it == backends_.end() || it->identity != identity) return kNoBackend;
    return static_cast<uint16_t>(it - backends_.begin());
}

const Endpoint* PoolSnapshot::snat_vip_for(const Endpoint& backend) const noexcept {
    const Endpoint* same = backend.ip.is_v4() ? vip_v4_ : vip_v6_;
    if (same) return same;
    return listen_.empty() ? nullptr : &listen_.front();
}

DataplaneSnapshot::EndpointKey DataplaneSnapshot::EndpointKey::of(const Endpoint& e) noexcept {
    EndpointKey k;
    const AddressWords w = address_words(e.ip);
    k.lo = w.lo;
    k.hi = w.hi;
    k.tag = uint32_t{e.port} | uint32_t{static_cast<uint8_t>(e.ip.family)} << 16 | 1u << 24;
    return k;
}

Result<std::unique_ptr<const DataplaneSnapshot>> DataplaneSnapshot::build(
    std::vector<std::shared_ptr<const PoolSnapshot>> pools, uint64_t version, unsigned workers,
    const DataplaneSnapshot* previous) {
    using R = Result<std::unique_ptr<const DataplaneSnapshot>>;
    std::unique_ptr<DataplaneSnapshot> d(new DataplaneSnapshot());
    size_t nvips = 0, nbackends = 0, ntcp_vips = 0;
    for (size_t i = 0; i < pools.size(); ++i) {
        if (!pools[i]) return R::fail("null pool snapshot");
        for (size_t j = 0; j < i; ++j)
            if (pools[j]->name() == pools[i]->name()) return R::fail("pool '" + pools[i]->name() + "' listed twice");
        nvips += pools[i]->listen().size();
        nbackends += pools[i]->backends().size();
        ntcp_vips += pools[i]->tcp_listen().size();
    }
    d->pools_ = std::move(pools);
    for (const auto& pool : d->pools_) d->request_headers_ = d->request_headers_ | pool->request_headers();
    d->version_ = version;
    d->vips_.resize(pow2_at_least(2 * nvips));
    d->backends_.resize(pow2_at_least(2 * nbackends));
    d->tcp_vips_.resize(pow2_at_least(2 * ntcp_vips));
    d->tcp_backends_.resize(pow2_at_least(4 * nbackends));

    auto insert = [&](std::vector<Slot>& table, const Endpoint& endpoint, uint32_t pool, uint16_t backend,
                      const Endpoint* snat_vip, uint8_t vip) -> const Slot* {
        const Key key = Key::of(endpoint);
        const size_t mask = table.size() - 1;
        for (size_t pos = key_hash(key) & mask;; pos = (pos + 1) & mask) {
            Slot& s = table[pos];
            if (s.key == key) return &s;  // already present: caller decides
            if (s.key.tag == 0) {
                s = {key, pool, backend, vip, snat_vip};
                return nullptr;
            }
        }
    };
    // Content only (not the version), so two nodes can compare fingerprints.
    Fingerprint fp;
    for (uint32_t p = 0; p < d->pools_.size(); ++p) {
        const auto& pool = *d->pools_[p];
        fp.add_value(pool.fingerprint());
        for (const auto& vip : pool.listen())
            if (const Slot* dup = insert(d->vips_, vip, p, PoolSnapshot::kNoBackend, nullptr, pool.vip_slot(&vip)))
                return R::fail("VIP " + vip.to_string() + " used by pools '" + d->pools_[dup->pool_index]->name() +
                               "' and '" + pool.name() + "'");
        const auto backends = pool.backends();
        for (size_t b = 0; b < backends.size(); ++b)
            insert(d->backends_, backends[b].address, p, static_cast<uint16_t>(b),
                   pool.snat_vip_for(backends[b].address), AffinityTable::kNoVip);  // first pool wins
        const auto& tcp = pool.tcp_listen();
        for (size_t i = 0; i < tcp.size(); ++i)
            if (const Slot* dup = insert(d->tcp_vips_, tcp[i].address, p, PoolSnapshot::kNoBackend, nullptr,
                                         static_cast<uint8_t>(i + 1)))
                return R::fail("TCP VIP " + tcp[i].address.to_string() + " used by pools '" +
                               d->pools_[dup->pool_index]->name() + "' and '" + pool.name() + "'");
        for (bool tls : {false, true}) {
            const bool listens = std::any_of(tcp.begin(), tcp.end(), [&](const TcpVip& v) { return v.tls == tls; });
            if (!listens) continue;
            for (size_t b = 0; b < backends.size(); ++b)
                insert(d->tcp_backends_, backends[b].tcp_address(tls), p, static_cast<uint16_t>(b), nullptr,
                       tls ? 1 : 0);  // first pool (and TCP before TLS on a shared port) wins
        }
    }
    // Backends in several pools: every pool they are in (in pool order), for
    // the reply path to choose from. Count, give each such slot a range of
    // shared_, fill.
    auto slot_of = [&](const Endpoint& e) -> size_t {
        const Slot* s = d->find(d->backends_, Key::of(e));
        return static_cast<size_t>(s - d->backends_.data());
    };
    std::vector<uint32_t> memberships(d->backends_.size(), 0);
    for (const auto& pool : d->pools_)
        for (const auto& b : pool->backends()) ++memberships[slot_of(b.address)];
    for (size_t i = 0; i < d->backends_.size(); ++i) {
        if (memberships[i] < 2) continue;
        d->backends_[i].shared_first = static_cast<uint32_t>(d->shared_.size());
        d->shared_.resize(d->shared_.size() + memberships[i]);
    }
    for (uint32_t p = 0; p < d->pools_.size(); ++p) {
        const auto& pool = *d->pools_[p];
        const auto backends = pool.backends();
        for (size_t b = 0; b < backends.size(); ++b) {
            const size_t i = slot_of(backends[b].address);
            if (memberships[i] < 2) continue;
            Slot& slot = d->backends_[i];
            d->shared_[slot.shared_first + slot.shared_count++] = {p, static_cast<uint16_t>(b),
                                                                   pool.snat_vip_for(backends[b].address)};
        }
    }
    d->fingerprint_ = fp.digest();
    // Protection: the pools' compiled rules and limits in this snapshot's
    // order, and each worker's state for them, ready before publication.
    std::vector<std::string> names;
    std::vector<std::shared_ptr<const protect::PoolProtection>> protection;
    for (const auto& pool : d->pools_) {
        names.push_back(pool->name());
        protection.push_back(pool->protection());
    }
    auto protect = protect::ProtectSnapshot::assemble(names, protection);
    if (protect->active()) {
        for (unsigned w = 0; w < workers; ++w) {
            // Each worker its own salt, secret to senders; unchanged pools keep its buckets.
            auto guard = protect::WorkerGuard::create(protect,
                                                      protect::process_salt() ^ (0x9e3779b97f4a7c15ull * (w + 1)),
                                                      previous ? previous->guard(w) : nullptr);
            if (!guard) return R::fail("protect: worker " + std::to_string(w) + ": " + guard.message());
            d->guards_.push_back(std::move(guard).value());
        }
    }
    return std::unique_ptr<const DataplaneSnapshot>(std::move(d));
}

const PoolSnapshot* DataplaneSnapshot::find_pool(std::string_view name) const noexcept {
    for (const auto& p : pools_)
        if (p->name() == name) return p.get();
    return nullptr;
}

}  // namespace siplb::balance
