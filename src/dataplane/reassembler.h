// IP reassembly of one worker (see reassembler.cpp): fragments of datagrams
// to a VIP are held until their datagram is complete, which is then handed
// back as contiguous bytes for the Forwarder and, once forwarded, copied
// into a fresh mbuf chain.
#pragma once

#include <rte_ip_frag.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "counters.h"
#include "siplb/balance/snapshot.h"
#include "siplb/common/result.h"
#include "siplb/net/packet.h"

struct rte_mbuf;
struct rte_mempool;

namespace siplb::dataplane {

class Reassembler {
public:
    // A table for `max_flows` datagrams in reassembly at once, each given
    // `timeout_ms` to complete; chains are built from `pool`.
    static Result<std::unique_ptr<Reassembler>> create(unsigned worker_index, uint32_t max_flows, uint32_t timeout_ms,
                                                       rte_mempool* pool, WorkerCounters& counters);
    Reassembler(const Reassembler&) = delete;
    Reassembler& operator=(const Reassembler&) = delete;
    ~Reassembler();

    enum class Verdict : uint8_t {
        not_fragment,  // the frame is the caller's to forward
        taken,         // consumed: held until its datagram completes, or dropped (counted)
        not_for_vip,   // a fragment of a datagram to another address (counted); still the caller's
        complete,      // it completed a datagram: `whole`
    };
    struct Taken {
        Verdict verdict = Verdict::not_fragment;
        rte_mbuf* whole = nullptr;
    };
    // Runs for every received frame: a cheap test first.
    Taken take(rte_mbuf* m, const balance::DataplaneSnapshot* snap, uint64_t now_ms) noexcept;
    // Frees the fragments of datagrams whose time ran out.
    void expire() noexcept;

    // A completed datagram in the scratch buffer, with room around it.
    struct Linear {
        uint8_t* data = nullptr;
        uint16_t len = 0, headroom = 0, tailroom = 0;
    };
    // Copies `whole` (then freed) into the scratch buffer; nullopt (counted)
    // when it is larger than any IP datagram.
    std::optional<Linear> linearize(rte_mbuf* whole) noexcept;
    // `len` bytes of the scratch buffer as a fresh chain of pool mbufs;
    // nullptr (counted frag_failed) when the pool runs dry.
    rte_mbuf* copy_to_chain(const uint8_t* data, uint32_t len) noexcept;

private:
    Reassembler(rte_mempool* pool, WorkerCounters& counters) noexcept : pool_(pool), c_(counters) {}
    // rte_ip_frag gives up a whole datagram when a fragment arrives twice
    // (networks do duplicate packets): exact duplicates seen within the
    // reassembly timeout are dropped here first.
    bool duplicate(const uint8_t* frame, const net::PacketView& v, uint64_t now_ms) noexcept;
    // Counts and frees what rte_ip_frag gave up.
    void free_death_row() noexcept;

    rte_mempool* pool_;
    WorkerCounters& c_;
    rte_ip_frag_tbl* table_ = nullptr;
    rte_ip_frag_death_row death_row_{};
    std::vector<uint8_t> scratch_;
    // 64-bit hashes of (addresses, identification, offset/flags, length);
    // open addressing, 4 probes.
    std::vector<uint64_t> seen_key_, seen_ms_;
    uint64_t seen_mask_ = 0;
    uint64_t timeout_ms_ = 0;
};

}  // namespace siplb::dataplane
