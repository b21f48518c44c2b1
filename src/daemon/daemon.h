// The siplb daemon: config -> PoolManager -> first snapshot (RCU) ->
// dataplane workers -> control loop (control socket, /metrics, DNS discovery,
// health checks, signals) -> clean stop on SIGTERM/SIGINT, reload on SIGHUP.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "siplb/balance/affinity.h"
#include "siplb/balance/snapshot.h"
#include "siplb/common/result.h"
#include "siplb/config/config.h"
#include "siplb/control/advertise_watch.h"
#include "siplb/control/capture_service.h"
#include "siplb/control/hep_sender.h"
#include "siplb/control/commands.h"
#include "siplb/control/control_server.h"
#include "siplb/control/discovery_wiring.h"
#include "siplb/control/event_loop.h"
#include "siplb/control/metrics.h"
#include "siplb/control/metrics_http.h"
#include "siplb/control/pool_manager.h"
#include "siplb/control/snapshot_builder.h"
#include "siplb/dataplane/dataplane.h"

#include "notifier.h"

namespace siplb::daemon {

// `siplb --check`: checks what only the host can tell (config::check_host:
// port interfaces exist) and builds every pool's table, so a
// config that loads but cannot be balanced is refused too.
Status check_config(const config::Config& cfg);

class Daemon {
public:
    explicit Daemon(config::Config cfg)
        : cfg_(std::move(cfg)), started_(std::chrono::steady_clock::now()), pools_(cfg_), builder_(cfg_) {}

    int run();

private:
    Status publish(const char* why);
    Status start_dataplane();
    Status start_discovery();
    Result<std::vector<std::string>> reload(const control::Actor& who);
    nlohmann::json status() const;
    control::StatsSnapshot stats() const;
    control::MetricsInfo metrics_info() const;
    void on_signal();
    bool dataplane_running() const;
    void sample_workers();
    // Folds the workers' counters once per housekeeping tick into sampled_,
    // which passive health, the advertise warning and STATUS= all read:
    // one aggregation over every lcore block instead of one per consumer.
    void sample_counters();
    StatusFacts status_facts() const;
    // Hands the workers' per-backend overload-response counters to passive
    // overload detection (health), for pools that enable it.
    void feed_passive_health();
    // Logs (rate-limited) backends the workers saw advertising their own
    // address in Contact or Record-Route.
    void warn_advertising_backends();

    config::Config cfg_;
    std::chrono::steady_clock::time_point started_;
    control::PoolManager pools_;
    control::SnapshotBuilder builder_;
    balance::SnapshotPublisher publisher_;
    std::unique_ptr<balance::AffinityTable> affinity_;
    control::EventLoop loop_;
    std::unique_ptr<control::CommandHandler> commands_;
    std::unique_ptr<control::ControlServer> server_;
    std::unique_ptr<control::MetricsHttpServer> metrics_http_;
    int signal_fd_ = -1;
    uint64_t reloads_ok_ = 0;
    uint64_t reloads_failed_ = 0;
    uint64_t publish_failures_ = 0;
    // SIGTERM/SIGINT with control.stop_grace_ms > 0: still forwarding, but
    // status says "stopping" so a BGP watcher withdraws the VIPs first.
    bool stopping_ = false;
    // Worker heartbeats, sampled by a control-loop timer (not on request):
    // a worker whose loop counter has not moved for kStallAfter is stalled.
    static constexpr std::chrono::milliseconds kStallAfter{1000};
    // STATUS= for `systemctl status`: often enough to be current, rarely enough to be free.
    static constexpr std::chrono::seconds kStatusEvery{3};
    // siplbctl capture: 2 KiB slots per worker while a capture runs (2 MiB
    // each); at siplbctl's 50 ms polls, over 20000 frames/s per worker.
    static constexpr uint32_t kCaptureRingSlots = 1024;
    WorkerHeartbeats heartbeats_{kStallAfter};
    // sd_notify: readiness, status, reload, stop, and the watchdog gated on the heartbeats.
    Notifier notifier_ = Notifier::from_environment();
    control::AdvertiseWatch advertise_watch_;
    std::unique_ptr<dataplane::Dataplane> dataplane_;
    dataplane::DataplaneStats sampled_;  // as of the last housekeeping tick
    std::unique_ptr<control::DiscoveryWiring> discovery_;
    // siplbctl capture and the HEP mirror ([mirror]): both drain the workers' tap rings.
    std::unique_ptr<control::CaptureService> capture_;
    std::unique_ptr<control::HepSender> hep_;
    bool pdump_ = false;  // rte_pdump_init() succeeded: dpdk-dumpcap can attach
};

}  // namespace siplb::daemon
