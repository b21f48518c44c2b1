#include "siplb/balance/pick.h"

#include <gtest/gtest.h>

#include <random>

#include "test_keys.h"

namespace siplb::balance {
namespace {

using testing::backend_endpoint;
using Reason = Decision::Reason;

PoolSpec make_spec(uint32_t n) {
    PoolSpec spec;
    spec.name = "lund";
    spec.listen = {*Endpoint::parse("198.51.100.10:5060"), *Endpoint::parse("[2001:db8::10]:5060")};
    spec.table_size = 65537;
    for (uint32_t i = 0; i < n; ++i) spec.backends.push_back({backend_endpoint(i), 1});
    return spec;
}

std::shared_ptr<const PoolSnapshot> build(const PoolSpec& spec, uint64_t version = 1) {
    auto r = PoolSnapshot::build(spec, version);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.message());
    return r.value();
}

void set_state(PoolSpec& spec, const Endpoint& e, BackendState s) {
    for (auto& b : spec.backends)
        if (b.address == e) b.state = s;
}

TEST(PoolSnapshot, ValidatesSpec) {
    auto spec = make_spec(3);
    spec.table_size = 65536;
    auto r = PoolSnapshot::build(spec, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("pool 'lund'"), std::string::npos);
    EXPECT_NE(r.message().find("not prime"), std::string::npos);
    spec = make_spec(3);
    spec.backends.push_back(spec.backends[0]);
    EXPECT_NE(PoolSnapshot::build(spec, 1).message().find("listed twice"), std::string::npos);
    spec = make_spec(3);
    spec.transaction_idle_s = 0;
    EXPECT_FALSE(PoolSnapshot::build(spec, 1).ok());
    // Affinity entries record a VIP in 8 bits: at most 255 per pool.
    spec = make_spec(3);
    spec.listen.clear();
    for (int i = 0; i < 256; ++i) spec.listen.push_back(*Endpoint::parse("198.51.100.10:" + std::to_string(5000 + i)));
    EXPECT_NE(PoolSnapshot::build(spec, 1).message().find("at most 255 VIPs"), std::string::npos);
    spec.listen.pop_back();
    EXPECT_TRUE(PoolSnapshot::build(spec, 1).ok());
}

TEST(PoolSnapshot, VipSlotsFollowTheListenOrder) {
    auto spec = make_spec(3);
    spec.listen = {*Endpoint::parse("198.51.100.10:5060"), *Endpoint::parse("[2001:db8::10]:5060"),
                   *Endpoint::parse("198.51.100.11:5060")};
    auto pool = build(spec);
    EXPECT_EQ(pool->vip_at(AffinityTable::kNoVip), nullptr);
    EXPECT_EQ(pool->vip_at(1)->to_string(), "198.51.100.10:5060");
    EXPECT_EQ(pool->vip_at(3)->to_string(), "198.51.100.11:5060");
    EXPECT_EQ(pool->vip_at(4), nullptr);  // a slot recorded before a reload removed that VIP
    for (uint8_t slot = 1; slot <= 3; ++slot) EXPECT_EQ(pool->vip_slot(pool->vip_at(slot)), slot);
    const Endpoint elsewhere = spec.listen[0];
    EXPECT_EQ(pool->vip_slot(&elsewhere), AffinityTable::kNoVip);
    EXPECT_TRUE(pool->several_vips(false));
    EXPECT_FALSE(pool->several_vips(true));
    EXPECT_EQ(pool->snat_vip_for(backend_endpoint(0))->to_string(), "198.51.100.10:5060");  // first of the family
    EXPECT_FALSE(build(make_spec(3))->several_vips(false));

    auto snap = DataplaneSnapshot::build({pool}, 1);
    ASSERT_TRUE(snap.ok()) << snap.message();
    EXPECT_EQ((*snap)->find_pool_by_vip(*Endpoint::parse("198.51.100.11:5060")).vip, 3);
    EXPECT_EQ((*snap)->find_pool_by_vip(*Endpoint::parse("[2001:db8::10]:5060")).vip, 2);
    EXPECT_EQ((*snap)->find_pool_by_vip(*Endpoint::parse("198.51.100.10:5060")).vip, 1);
}

TEST(PoolSnapshot, SortedBackendsStableIdsAndLookups) {
    auto spec = make_spec(20);
    std::reverse(spec.backends.begin(), spec.backends.end());
    auto a = build(spec);
    ASSERT_EQ(a->backends().size(), 20u);
    for (size_t i = 1; i < 20; ++i) EXPECT_LT(a->backends()[i - 1].identity, a->backends()[i].identity);
    spec.backends.pop_back();
    auto b = build(spec, 2);
    for (const auto& e : b->backends()) {
        const uint16_t ia = a->index_of(e.address);
        ASSERT_NE(ia, PoolSnapshot::kNoBackend);
        EXPECT_EQ(a->backends()[ia].id, e.id);  // id survives a change of the set
        EXPECT_EQ(b->index_of_id(e.id), b->index_of(e.address));
    }
    EXPECT_EQ(b->index_of_id(0xFFFFFFFFu), PoolSnapshot::kNoBackend);
    EXPECT_EQ(b->index_of(*Endpoint::parse("192.0.2.99:5060")), PoolSnapshot::kNoBackend);
    EXPECT_TRUE(b->is_backend_ip(backend_endpoint(1).ip));
    EXPECT_FALSE(b->is_backend_ip(*IpAddress::parse("192.0.2.99")));
    EXPECT_FALSE(b->is_backend_ip(*IpAddress::parse("198.51.100.10")));  // a VIP
    EXPECT_EQ(b->snat_vip_for(backend_endpoint(1))->to_string(), "198.51.100.10:5060");
    EXPECT_EQ(b->snat_vip_for(*Endpoint::parse("[2001:db8::5]:5060"))->to_string(), "[2001:db8::10]:5060");
    EXPECT_EQ(a->version(), 1u);
    EXPECT_NE(a->fingerprint(), b->fingerprint());
    EXPECT_EQ(build(spec, 7)->fingerprint(), b->fingerprint());
}

TEST(Pick, NoAffinityIsTheTable) {
    auto pool = build(make_spec(10));
    std::mt19937_64 rng(3);
    for (int i = 0; i < 1000; ++i) {
        const uint64_t h = rng();
        Decision d = pick(*pool, h, true, 0, nullptr);
        ASSERT_EQ(d.reason, Reason::table);
        EXPECT_EQ(d.backend, pool->table().lookup(h));
        EXPECT_EQ(d.entry, &pool->backends()[d.backend]);
    }
}

TEST(Pick, NoUsableBackend) {
    auto spec = make_spec(3);
    set_state(spec, backend_endpoint(0), BackendState::down);
    set_state(spec, backend_endpoint(1), BackendState::draining);
    spec.backends[2].weight = 0;
    auto pool = build(spec);
    EXPECT_EQ(pool->usable_backends(), 0u);
    Decision d = pick(*pool, 12345, true, 0, nullptr);
    EXPECT_EQ(d.reason, Reason::no_backend);
    EXPECT_EQ(d.entry, nullptr);
    EXPECT_EQ(d.backend, PoolSnapshot::kNoBackend);
    PoolSpec empty = make_spec(0);
    EXPECT_EQ(pick(*build(empty), 1, false, 0, nullptr).reason, Reason::no_backend);
    EXPECT_STREQ(to_string(Reason::no_backend), "no_backend");
}

// Finds a Call-ID hash whose table choice differs between two pools.
uint64_t hash_moved_between(const PoolSnapshot& a, const PoolSnapshot& b) {
    for (uint64_t h = 1;; h = h * 0x9E3779B97F4A7C15ull + 7)
        if (a.backends()[a.table().lookup(h)].identity != b.backends()[b.table().lookup(h)].identity) return h;
}

TEST(Pick, AffinityKeepsCallsWhenABackendIsAdded) {
    auto table = std::move(AffinityTable::create(1024).value());
    auto spec = make_spec(10);
    auto before = build(spec);
    spec.backends.push_back({backend_endpoint(10), 1});
    auto after = build(spec, 2);
    const uint64_t h = hash_moved_between(*before, *after);
    Decision first = pick(*before, h, true, 100, table.get());
    EXPECT_EQ(first.reason, Reason::table);
    Decision later = pick(*after, h, false, 200, table.get());  // e.g. the BYE
    EXPECT_EQ(later.reason, Reason::affinity);
    EXPECT_EQ(later.entry->address, first.entry->address);
    // Without affinity the new table would have moved it.
    EXPECT_NE(pick(*after, h, false, 200, nullptr).entry->address, first.entry->address);
}

TEST(Pick, AliveBackendsKeepCallsDeadOnesLoseThem) {
    for (BackendState s :
         {BackendState::draining, BackendState::overloaded, BackendState::down, BackendState::disabled}) {
        auto table = std::move(AffinityTable::create(1024).value());
        auto spec = make_spec(10);
        auto pool = build(spec);
        const uint64_t h = 0xfeedface12345678ull;
        Decision first = pick(*pool, h, true, 100, table.get());
        set_state(spec, first.entry->address, s);
        auto changed = build(spec, 2);
        Decision d = pick(*changed, h, false, 150, table.get());
        if (keeps_affinity(s)) {
            EXPECT_EQ(d.reason, Reason::affinity) << to_string(s);
            EXPECT_EQ(d.entry->address, first.entry->address);
            // ...but a new call that would hash there goes elsewhere.
            EXPECT_NE(pick(*changed, h, true, 150, nullptr).entry->address, first.entry->address);
        } else {
            EXPECT_EQ(d.reason, Reason::table) << to_string(s);
            EXPECT_NE(d.entry->address, first.entry->address);
            // The entry was replaced: once the backend is back, the call stays put.
            Decision back = pick(*pool, h, false, 160, table.get());
            EXPECT_EQ(back.reason, Reason::affinity);
            EXPECT_EQ(back.entry->address, d.entry->address);
        }
    }
}

TEST(Pick, RemovedBackendLosesItsCalls) {
    auto table = std::move(AffinityTable::create(1024).value());
    auto spec = make_spec(10);
    auto pool = build(spec);
    const uint64_t h = 77;
    Decision first = pick(*pool, h, true, 0, table.get());
    std::erase_if(spec.backends, [&](const BackendSpec& b) { return b.address == first.entry->address; });
    auto changed = build(spec, 2);
    Decision d = pick(*changed, h, true, 1, table.get());
    EXPECT_EQ(d.reason, Reason::table);
    EXPECT_NE(d.entry->address, first.entry->address);
}

TEST(Pick, DialogAndTransactionIdleTimesAndRefresh) {
    auto table = std::move(AffinityTable::create(1024).value());
    auto spec = make_spec(10);
    spec.dialog_idle_s = 7200;
    spec.transaction_idle_s = 64;
    auto pool = build(spec);
    // REGISTER: 64 s after the last message.
    EXPECT_EQ(pick(*pool, 1, false, 1000, table.get()).reason, Reason::table);
    EXPECT_EQ(pick(*pool, 1, false, 1060, table.get()).reason, Reason::affinity);  // refreshes to 1124
    EXPECT_EQ(pick(*pool, 1, false, 1120, table.get()).reason, Reason::affinity);
    EXPECT_EQ(pick(*pool, 1, false, 1185, table.get()).reason, Reason::table);  // idle > 64 s
    // INVITE: 2 h; an in-dialog transaction does not shorten it.
    EXPECT_EQ(pick(*pool, 2, true, 1000, table.get()).reason, Reason::table);
    EXPECT_EQ(pick(*pool, 2, false, 1010, table.get()).reason, Reason::affinity);
    EXPECT_EQ(table->lookup(2 ^ pool->affinity_salt(), 1010)->expiry_s, 8200u);
    EXPECT_EQ(pick(*pool, 2, false, 1000 + 7199, table.get()).reason, Reason::affinity);
    EXPECT_EQ(table->lookup(2 ^ pool->affinity_salt(), 8199)->expiry_s, 8199u + 64);
}

TEST(Pick, SameCallIdInTwoPoolsKeepsTwoEntries) {
    auto table = std::move(AffinityTable::create(1024).value());
    auto a = make_spec(5), b = make_spec(5);
    b.name = "malmo";
    for (auto& x : b.backends) x.address.port = 5080;
    auto pa = build(a), pb = build(b);
    EXPECT_EQ(pick(*pa, 9, true, 0, table.get()).reason, Reason::table);
    EXPECT_EQ(pick(*pb, 9, true, 0, table.get()).reason, Reason::table);
    EXPECT_EQ(pick(*pa, 9, true, 1, table.get()).reason, Reason::affinity);
    EXPECT_EQ(pick(*pb, 9, true, 1, table.get()).reason, Reason::affinity);
}

TEST(DataplaneSnapshot, VipAndBackendLookups) {
    auto a = make_spec(4);
    auto b = make_spec(0);
    b.name = "trunk";
    b.listen = {*Endpoint::parse("198.51.100.20:5060")};
    b.backends = {{*Endpoint::parse("203.0.113.5:5060"), 1}, {backend_endpoint(2), 1}};
    auto snap = DataplaneSnapshot::build({build(a), build(b)}, 9);
    ASSERT_TRUE(snap.ok()) << snap.message();
    const auto& d = **snap;
    EXPECT_EQ(d.version(), 9u);
    auto p = d.find_pool_by_vip(*Endpoint::parse("198.51.100.20:5060"));
    ASSERT_NE(p.pool, nullptr);
    EXPECT_EQ(p.pool->name(), "trunk");
    EXPECT_EQ(p.pool_index, 1u);
    EXPECT_EQ(d.find_pool_by_vip(*Endpoint::parse("198.51.100.20:5061")).pool, nullptr);
    EXPECT_EQ(d.find_pool_by_vip(*Endpoint::parse("[2001:db8::10]:5060")).pool_index, 0u);
    auto be = d.find_backend(*Endpoint::parse("203.0.113.5:5060"));
    ASSERT_NE(be.pool, nullptr);
    EXPECT_EQ(be.pool_index, 1u);
    EXPECT_EQ(be.pool->backends()[be.backend].identity, "203.0.113.5:5060");
    EXPECT_EQ(be.snat_vip->to_string(), "198.51.100.20:5060");
    EXPECT_EQ(d.find_backend(backend_endpoint(2)).pool_index, 0u);  // in both: first pool wins
    {  // ... and both pools are listed, each with its own index and VIP
        auto shared = d.find_backend(backend_endpoint(2));
        ASSERT_EQ(shared.pools.size(), 2u);
        EXPECT_EQ(shared.pools[0].pool_index, 0u);
        EXPECT_EQ(shared.pools[1].pool_index, 1u);
        EXPECT_EQ(d.pools()[1]->backends()[shared.pools[1].backend].address, backend_endpoint(2));
        EXPECT_EQ(shared.pools[1].snat_vip->to_string(), "198.51.100.20:5060");
        EXPECT_EQ(shared.pools[0].snat_vip, shared.snat_vip);
        EXPECT_TRUE(be.pools.empty());  // 203.0.113.5 is in trunk only
    }
    EXPECT_EQ(d.find_backend(*Endpoint::parse("203.0.113.6:5060")).pool, nullptr);
    EXPECT_EQ(d.find_pool("trunk"), p.pool);
    EXPECT_EQ(d.find_pool("nope"), nullptr);

    // Near misses: only address, port and family together match.
    EXPECT_EQ(d.find_backend(*Endpoint::parse("203.0.113.5:5061")).pool, nullptr);
    EXPECT_EQ(d.find_backend(*Endpoint::parse("[cb00:7105::]:5060")).pool, nullptr);  // 203.0.113.5's bytes, v6
    EXPECT_EQ(d.find_pool_by_vip(*Endpoint::parse("[c633:6414::]:5060")).pool, nullptr);

    b.listen = a.listen;  // VIP collision
    auto bad = DataplaneSnapshot::build({build(a), build(b)}, 10);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find("used by pools"), std::string::npos);
    EXPECT_FALSE(DataplaneSnapshot::build({build(a), build(a)}, 10).ok());
}

TEST(DataplaneSnapshot, EveryOneOfAThousandBackendsIsFound) {
    PoolSpec big;
    big.name = "big";
    big.listen = {*Endpoint::parse("198.51.100.30:5060"), *Endpoint::parse("[2001:db8::30]:5060")};
    for (int i = 0; i < 1000; ++i) {
        big.backends.push_back({*Endpoint::parse("10." + std::to_string(i / 250) + "." + std::to_string(i % 250) +
                                                 ".1:" + std::to_string(5060 + i % 3)),
                                1});
        big.backends.push_back({*Endpoint::parse("[2001:db8:1::" + std::to_string(i) + "]:5060"), 1});
    }
    auto snap = DataplaneSnapshot::build({build(big)}, 1);
    ASSERT_TRUE(snap.ok()) << snap.message();
    const auto& d = **snap;
    const auto& pool = *d.pools()[0];
    for (const auto& b : big.backends) {
        auto r = d.find_backend(b.address);
        ASSERT_NE(r.pool, nullptr) << b.address.to_string();
        EXPECT_EQ(pool.backends()[r.backend].address, b.address);
        ASSERT_NE(r.snat_vip, nullptr);
        EXPECT_EQ(r.snat_vip->ip.family, b.address.ip.family);  // replies leave from the VIP of their family
        Endpoint other = b.address;
        other.port = static_cast<uint16_t>(other.port + 100);
        EXPECT_EQ(d.find_backend(other).pool, nullptr);
    }
}

}  // namespace
}  // namespace siplb::balance

namespace siplb::balance {
namespace {

TEST(DataplaneSnapshot, FingerprintIsContentNotVersion) {
    PoolSpec spec = make_spec(5);
    auto a = DataplaneSnapshot::build({build(spec, 1)}, 1);
    auto b = DataplaneSnapshot::build({build(spec, 2)}, 2);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ((*a)->fingerprint(), (*b)->fingerprint());
    set_state(spec, backend_endpoint(3), BackendState::draining);
    auto c = DataplaneSnapshot::build({build(spec, 3)}, 3);
    EXPECT_NE((*a)->fingerprint(), (*c)->fingerprint());
}

}  // namespace
}  // namespace siplb::balance

namespace siplb::balance {
namespace {

TEST(Pick, PinnedCallFollowsThePin) {
    auto table = std::move(AffinityTable::create(1024).value());
    auto pool = build(make_spec(10));
    const uint64_t h = 0x5555aaaa5555aaaaull;
    const uint16_t table_choice = pool->table().lookup(h);
    const uint16_t other = static_cast<uint16_t>((table_choice + 1) % 10);
    EXPECT_EQ(pin(*pool, h, other, true, 50, *table), AffinityTable::Store::inserted);
    Decision d = pick(*pool, h, false, 60, table.get());
    EXPECT_EQ(d.reason, Reason::affinity);
    EXPECT_EQ(d.backend, other);
    EXPECT_EQ(table->lookup(affinity_key(*pool, h), 60)->expiry_s, 50u + pool->dialog_idle_s());
    EXPECT_EQ(pin(*pool, h, 999, true, 50, *table), AffinityTable::Store::unchanged);  // bad index ignored
}

// pick() records the VIP a message came in on with its call, and moves it
// when the client sends to another VIP of the pool; kNoVip leaves it.
TEST(Pick, RecordsAndMovesTheCallsVip) {
    auto table = std::move(AffinityTable::create(1024).value());
    auto pool = build(make_spec(10));
    const uint64_t h = 0x0123456789abcdefull;
    const uint64_t key = affinity_key(*pool, h);
    EXPECT_EQ(pick(*pool, h, true, 10, table.get(), 2).reason, Reason::table);
    EXPECT_EQ(table->lookup(key, 10)->vip, 2);
    EXPECT_EQ(pick(*pool, h, false, 10, table.get(), 2).reason, Reason::affinity);
    EXPECT_EQ(pick(*pool, h, false, 10, table.get(), AffinityTable::kNoVip).reason, Reason::affinity);
    EXPECT_EQ(table->lookup(key, 10)->vip, 2);
    // Same second (no expiry to push): the move alone is written.
    EXPECT_EQ(pick(*pool, h, false, 10, table.get(), 1).reason, Reason::affinity);
    EXPECT_EQ(table->lookup(key, 10)->vip, 1);
    EXPECT_EQ(table->lookup(key, 10)->backend_id, pool->backends()[pool->table().lookup(h)].id);
}

}  // namespace
}  // namespace siplb::balance

namespace siplb::balance {
namespace {

// Two Call-ID hashes the table sends to different backends.
std::pair<uint64_t, uint64_t> apart(const PoolSnapshot& pool, uint64_t from) {
    const uint64_t a = hash_call_id("call-" + std::to_string(from), pool.seed());
    for (int i = 0;; ++i) {
        const uint64_t b = hash_call_id("other-" + std::to_string(i), pool.seed());
        if (pool.table().lookup(b) != pool.table().lookup(a)) return {a, b};
    }
}

TEST(PickKeyed, TableByTheKeyEntryByTheCallId) {
    auto table = std::move(AffinityTable::create(1024).value());
    auto pool = build(make_spec(10));
    const auto [call, key] = apart(*pool, 1);
    const Decision first = pick_keyed(*pool, call, key, true, 100, table.get());
    EXPECT_EQ(first.reason, Decision::Reason::table);
    EXPECT_EQ(first.backend, pool->table().lookup(key));
    // Later messages follow the Call-ID's entry whatever their key value.
    const Decision later = pick_keyed(*pool, call, call, false, 101, table.get());
    EXPECT_EQ(later.reason, Decision::Reason::affinity);
    EXPECT_EQ(later.backend, first.backend);
}

TEST(PickJoining, NamedDialogsEntryElseItsTableSlotAndTheNewCallRecordsIt) {
    auto table = std::move(AffinityTable::create(1024).value());
    auto pool = build(make_spec(10));
    const auto [old_call, other] = apart(*pool, 5);
    // The old call is pinned away from its table slot (as after a table change).
    ASSERT_NE(pin(*pool, old_call, pool->table().lookup(other), true, 100, *table), AffinityTable::Store::evicted);
    const uint64_t new_call = hash_call_id("new-call", pool->seed());
    const Decision d = pick_joining(*pool, new_call, old_call, old_call, 100, table.get());
    EXPECT_EQ(d.reason, Decision::Reason::dialog_ref);
    EXPECT_EQ(d.backend, pool->table().lookup(other));
    EXPECT_EQ(pick(*pool, new_call, false, 101, table.get()).backend, d.backend);
    // Without an entry: the table slot of ref_table_hash.
    const uint64_t cold_call = hash_call_id("cold-call", pool->seed());
    const Decision cold = pick_joining(*pool, cold_call, hash_call_id("unseen", pool->seed()), other, 100, table.get());
    EXPECT_EQ(cold.reason, Decision::Reason::dialog_ref);
    EXPECT_EQ(cold.backend, pool->table().lookup(other));
    // A retransmission follows its own entry.
    EXPECT_EQ(pick_joining(*pool, cold_call, old_call, old_call, 101, table.get()).reason, Decision::Reason::affinity);
    // No affinity table (siplbctl lookup): the table slot.
    EXPECT_EQ(pick_joining(*pool, hash_call_id("x", pool->seed()), old_call, old_call, 100, nullptr).backend,
              pool->table().lookup(old_call));
}

TEST(PoolSnapshot, RequestHeadersAreWhatItsKeysAndRulesRead) {
    using sip::HeaderSet;
    PoolSpec spec = make_spec(2);
    EXPECT_EQ(build(spec)->request_headers(), HeaderSet::only(HeaderSet::dialog_ref));
    spec.key.kind = KeyKind::to_user;
    spec.key_fallback.kind = KeyKind::from_user;
    EXPECT_EQ(build(spec)->request_headers(), HeaderSet::only(HeaderSet::dialog_ref | HeaderSet::to | HeaderSet::from));
    spec.key = spec.key_fallback = KeySpec{};
    protect::PoolProtectionSpec rules;
    rules.name = spec.name;
    for (const char* field : {"user_agent", "method", "to"}) {
        protect::RuleSpec r;
        r.name = std::string("r-") + field;
        r.field = field;
        r.pattern = "x";
        rules.rules.push_back(r);
    }
    auto protection = protect::PoolProtection::build(rules);
    ASSERT_TRUE(protection) << protection.message();
    spec.protection = protection.value();
    auto pool = build(spec);
    EXPECT_EQ(pool->request_headers(), HeaderSet::only(HeaderSet::dialog_ref | HeaderSet::user_agent | HeaderSet::to));
    // A dataplane snapshot asks for what any of its pools reads (a rule may route elsewhere).
    PoolSpec other = make_spec(1);
    other.name = "other";
    other.listen = {*Endpoint::parse("198.51.100.11:5060")};
    auto plain = build(other);
    auto dp = DataplaneSnapshot::build({plain, pool}, 1);
    ASSERT_TRUE(dp) << dp.message();
    EXPECT_EQ(dp.value()->request_headers(), pool->request_headers());
}

}  // namespace
}  // namespace siplb::balance
