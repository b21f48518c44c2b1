// Turns PoolManager state into balance snapshots. Pools whose version did not
// change keep their PoolSnapshot object (same table, same pointer), so a
// change to one pool never rebuilds or disturbs another pool's table.
#pragma once

#include <optional>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "siplb/balance/affinity.h"
#include "siplb/balance/connection_table.h"
#include "siplb/balance/snapshot.h"
#include "siplb/common/result.h"
#include "siplb/config/config.h"
#include "siplb/control/pool_manager.h"

namespace siplb::control {

balance::BackendState to_balance_state(EffectiveState s);

class SnapshotBuilder {
public:
    // Takes the per-pool table parameters (VIPs, table size, seed, mode, idle times).
    explicit SnapshotBuilder(const config::Config& cfg);
    // Replaces table parameters after a reload (the caller refused VIP changes).
    void set_config(const config::Config& cfg);

    // A full DataplaneSnapshot for the manager's current state: tables,
    // each pool's compiled rules and limits, and every worker's protect
    // state. Only pools whose PoolView::version (or table parameters,
    // rules, limits) changed are rebuilt, and rules are compiled again only
    // when they changed. `previous`: the published snapshot this one will
    // replace (rate-limit buckets of unchanged pools carry over).
    Result<std::unique_ptr<const balance::DataplaneSnapshot>> build(
        const PoolManager& pm, const balance::DataplaneSnapshot* previous = nullptr);
    uint64_t pools_rebuilt() const { return rebuilt_; }
    // The workers' counter slot of a pool name: the same for the life of the
    // process, so counters follow a pool across reloads that remove, add or
    // reorder pools (and a pool removed and added again continues its counts).
    // Slots are never reused; past `max` names a pool is not counted.
    uint32_t counter_slot(const std::string& pool);
    void set_max_counter_slots(uint32_t max) { max_counter_slots_ = max; }
    // The same for a rule: one slot per pool name and rule name, so a rule's
    // hits follow its name across reloads that add, remove, reorder or
    // change rules (a changed pattern keeps counting under the same name).
    uint32_t rule_counter_slot(const std::string& pool, const std::string& rule);
    void set_max_rule_counter_slots(uint32_t max) { max_rule_counter_slots_ = max; }

private:
    struct Cached {
        uint64_t version = 0;
        std::shared_ptr<const balance::PoolSnapshot> snap;
    };
    std::map<std::string, config::PoolConfig, std::less<>> params_;
    std::map<std::string, Cached, std::less<>> cache_;
    uint64_t rebuilt_ = 0;
    std::map<std::string, uint32_t, std::less<>> counter_slots_;
    uint32_t next_counter_slot_ = 0;
    unsigned workers_ = 0;
    Result<std::shared_ptr<const protect::PoolProtection>> protection(const config::PoolConfig& pool);
    std::map<std::string, std::pair<protect::PoolProtectionSpec, std::shared_ptr<const protect::PoolProtection>>,
             std::less<>>
        protection_;
    uint32_t max_counter_slots_ = balance::kPoolCounterSlots;
    std::map<std::pair<std::string, std::string>, uint32_t, std::less<>> rule_counter_slots_;
    uint32_t next_rule_counter_slot_ = 0;
    uint32_t max_rule_counter_slots_ = balance::kRuleCounterSlots;
};

// pool -> backend address -> fraction of the pool's table it owns.
std::map<std::string, std::map<std::string, double>> table_shares(const balance::DataplaneSnapshot& snap);

// Names of the pools with tcp:// or tls:// VIPs (MetricsInfo::tcp_pools).
std::set<std::string> tcp_pools(const balance::DataplaneSnapshot& snap);

// The backend the running dataplane would choose now for a Call-ID, without
// touching the affinity table: {"backend","reason":"affinity"|"table","state",
// "vip"} (vip: the VIP recorded with the call, null when none is). `key`:
// the value of the pool's balancing key, which places a call without an
// entry in a pool not keyed by the Call-ID (without it, the table answer is
// what a message lacking the key's field gets from a call_id fallback).
// For a pool with TCP or TLS VIPs, a client "ip:port" instead of a Call-ID
// asks for that client's connection: {"transport":"tcp"|"tls", "backend",
// "reason":"connection"|"table", "state", "vip", and from an entry
// "connection_state" and "expires_in_s"} per transport the pool listens on
// (in "connections"); `connections` may be nullptr (table pick only).
Result<nlohmann::json> lookup_call(const balance::DataplaneSnapshot& snap, const balance::AffinityTable* affinity,
                                   const std::string& pool, const std::string& call_id, uint32_t now_s,
                                   const std::optional<std::string>& key = std::nullopt,
                                   const balance::ConnectionTable* connections = nullptr);

}  // namespace siplb::control
