// Announcements of one worker: gratuitous ARP / unsolicited neighbor
// advertisements for the port addresses at start and for the VIPs each new
// snapshot brings, each address once (see announcer.cpp).
#pragma once

#include <cstdint>

#include "counters.h"
#include "forward_context.h"
#include "tx_buffers.h"

struct rte_mempool;

namespace siplb::dataplane {

class Announcer {
public:
    Announcer(const ForwardContext& ctx, rte_mempool* pool, TxBuffers& tx, WorkerCounters& counters,
              bool enabled) noexcept
        : ctx_(ctx), pool_(pool), tx_(tx), c_(counters), enabled_(enabled) {}
    Announcer(const Announcer&) = delete;
    Announcer& operator=(const Announcer&) = delete;

    void set_enabled(bool on) noexcept { enabled_ = on; }
    // Once per loop: announces what is not announced yet (the port addresses
    // on the first call, the VIPs of a snapshot version not seen before).
    void poll(const balance::DataplaneSnapshot* snap) noexcept {
        if (enabled_ && (!announced_start_ || (snap && snap->version() != announced_version_)))
            announce_addresses(snap);
    }

private:
    void announce(uint16_t port_index, const IpAddress& ip) noexcept;
    void announce_addresses(const balance::DataplaneSnapshot* snap) noexcept;

    const ForwardContext& ctx_;
    rte_mempool* pool_;
    TxBuffers& tx_;
    WorkerCounters& c_;
    bool enabled_;
    bool announced_start_ = false;               // port addresses announced
    uint64_t announced_version_ = ~uint64_t{0};  // snapshot version last announced
    static constexpr uint32_t kMaxAnnounced = 256;
    IpAddress announced_[kMaxAnnounced];
    uint32_t announced_count_ = 0;
};

}  // namespace siplb::dataplane
