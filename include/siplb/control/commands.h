// Executes control socket requests (protocol.h) against the PoolManager and
// the daemon's hooks. Pure of I/O: the server hands it a line and the peer's
// credentials, it returns the response line. Every change is logged with who
// made it (the peer's uid and pid).
#pragma once

#include <optional>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "siplb/common/result.h"
#include "siplb/control/control_server.h"
#include "siplb/control/metrics.h"
#include "siplb/control/pool_manager.h"
#include "siplb/control/protocol.h"

namespace siplb::control {

// What the daemon provides beyond the PoolManager. A hook left empty makes
// its command answer a clear error (e.g. resolve without DNS discovery).
struct ControlHooks {
    // status: version, pid, uptime_s, config, workers, ports, snapshot_version, tables.
    std::function<nlohmann::json()> status;
    std::function<StatsSnapshot()> stats;
    std::function<MetricsInfo()> metrics_info;
    // {"backend","reason","state"} for a Call-ID in a pool, from the live snapshot.
    // key: the value of the pool's balancing key, if the operator gave one.
    std::function<Result<nlohmann::json>(const std::string& pool, const std::string& call_id,
                                         const std::optional<std::string>& key)>
        lookup;
    // Re-reads the config file and applies it; returns the change lines.
    std::function<Result<std::vector<std::string>>(const Actor& who)> reload;
    // Starts re-resolution of a pool's DNS names; returns {"names":[...]}.
    std::function<Result<nlohmann::json>(const std::string& pool)> resolve;
    // capture_start / capture_read / capture_stop (CaptureService::execute).
    std::function<Result<nlohmann::json>(const Request& r, const Actor& who)> capture;
};

class CommandHandler {
public:
    CommandHandler(PoolManager& pools, ControlHooks hooks) : pools_(pools), hooks_(std::move(hooks)) {}

    // One request line -> one response line ('\n' terminated).
    std::string handle(std::string_view line, const PeerCred& peer);
    // The result object of a parsed request, or an error message.
    Result<nlohmann::json> execute(const Request& r, const Actor& who);

    // Text of `metrics` (also served on HTTP /metrics).
    std::string metrics_text() const;

private:
    nlohmann::json backends_json(const std::string& pool_filter) const;
    PoolManager& pools_;
    ControlHooks hooks_;
};

}  // namespace siplb::control
