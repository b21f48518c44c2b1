// Notices backends that put their own address where a VIP belongs (Contact,
// Record-Route): the workers count such messages per backend
// (vip.backend_advertises_itself) but never log; the control thread hands
// this watch the counters and logs each warning it returns, at most one per
// backend per `every`.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "siplb/common/endpoint.h"
#include "siplb/dataplane/stats.h"

namespace siplb::control {

class AdvertiseWatch {
public:
    using Clock = std::chrono::steady_clock;
    struct Warning {
        std::string pool;
        Endpoint backend;
        uint64_t since_last = 0;  // messages counted since the previous warning (or start)
        uint64_t total = 0;
    };

    explicit AdvertiseWatch(Clock::duration every = std::chrono::minutes(1)) : every_(every) {}

    // The backends whose count moved since their last warning, if that was
    // at least `every` ago. Counters are monotonic for the process's life.
    std::vector<Warning> observe(const dataplane::DataplaneStats& stats, Clock::time_point now) {
        std::vector<Warning> out;
        for (const auto& b : stats.backends) {
            const uint64_t count = b.at("vip", "backend_advertises_itself");
            if (count == 0) continue;
            Seen& seen = seen_[{b.pool, b.address.to_string()}];
            if (count <= seen.warned_count || (seen.warned && now - seen.warned_at < every_)) continue;
            out.push_back({b.pool, b.address, count - seen.warned_count, count});
            seen.warned_count = count;
            seen.warned_at = now;
            seen.warned = true;
        }
        return out;
    }

private:
    struct Seen {
        uint64_t warned_count = 0;
        Clock::time_point warned_at{};
        bool warned = false;
    };
    Clock::duration every_;
    std::map<std::pair<std::string, std::string>, Seen> seen_;
};

}  // namespace siplb::control
