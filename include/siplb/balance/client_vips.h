// Which VIP of a pool each client address:port last sent to. A phone behind
// NAT lets in only datagrams from the address:port it last sent to, so a
// backend's datagram toward a client that no call entry places (an INVITE to
// a registered phone, the answer to a keepalive, a reply after the call's
// entry expired) leaves from this VIP.
//
// The affinity table's design, and an AffinityTable underneath: fixed
// capacity allocated by the control thread at start, lock-free, shared by
// all workers (the REGISTER and the backend's INVITE to that phone may reach
// different lcores), counted evictions of the entry that expires soonest.
// The key is the client's address:port hash mixed with the pool's salt; an
// entry holds the VIP slot and lives kIdleS after the client's last request
// or keepalive. The backend id of the entries is unused (0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "siplb/balance/affinity.h"
#include "siplb/balance/snapshot.h"
#include "siplb/common/result.h"

namespace siplb::balance {

class ClientVipTable {
public:
    // Longer than a NAT binding lives without traffic and than the usual
    // REGISTER interval (3600 s), so a registered phone keeps its entry.
    static constexpr uint32_t kIdleS = 3600;

    // capacity: entries, power of two (AffinityTable's limits).
    static Result<std::unique_ptr<ClientVipTable>> create(uint32_t capacity);

    // client_hash: the client's address and port hashed with pool.seed()
    // (the dataplane's endpoint_hash(), as keepalives are balanced).
    // The VIP slot the client last sent to, or AffinityTable::kNoVip.
    uint8_t lookup(const PoolSnapshot& pool, uint64_t client_hash, uint32_t now_s) const noexcept {
        auto hit = table_->lookup(client_hash ^ pool.affinity_salt(), now_s);
        return hit ? hit->vip : AffinityTable::kNoVip;
    }
    // Records that the client sent to `vip` (a slot of pool). Writes only
    // when the VIP changes or the expiry moves (at most once a second per
    // client); returns what the table did (evicted: count it).
    AffinityTable::Store record(const PoolSnapshot& pool, uint64_t client_hash, uint8_t vip, uint32_t now_s) noexcept {
        if (vip == AffinityTable::kNoVip) return AffinityTable::Store::unchanged;
        const uint64_t key = client_hash ^ pool.affinity_salt();
        const uint32_t expiry = now_s + kIdleS;
        if (auto hit = table_->lookup(key, now_s);
            hit && hit->vip == vip && static_cast<int32_t>(expiry - hit->expiry_s) <= 0)
            return AffinityTable::Store::unchanged;
        return table_->upsert(key, 0, expiry, now_s, vip);
    }

    uint32_t capacity() const noexcept { return table_->capacity(); }
    // O(capacity), control thread.
    size_t count_live(uint32_t now_s) const noexcept { return table_->count_live(now_s); }

private:
    explicit ClientVipTable(std::unique_ptr<AffinityTable> table) : table_(std::move(table)) {}
    std::unique_ptr<AffinityTable> table_;
};

inline Result<std::unique_ptr<ClientVipTable>> ClientVipTable::create(uint32_t capacity) {
    auto table = AffinityTable::create(capacity);
    if (!table) return Result<std::unique_ptr<ClientVipTable>>::fail("client VIP table: " + table.message());
    return std::unique_ptr<ClientVipTable>(new ClientVipTable(std::move(table).value()));
}

}  // namespace siplb::balance
