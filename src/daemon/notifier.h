// What the daemon tells its service manager through sd_notify(3) (systemd
// 252, Type=notify): READY=1 once the ports are up and the first snapshot is
// published, a short STATUS= line every few seconds, RELOADING=1 ... READY=1
// around a reload, STOPPING=1 when it begins to stop, and WATCHDOG=1 only
// while every worker's heartbeat advances, so a wedged worker gets the
// service restarted (WatchdogSec= in deploy/siplb.service).
//
// The decisions are pure (time and heartbeats in, state strings out through
// a Send function) so tests can drive them; from_environment() binds them to
// libsystemd.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace siplb::daemon {

using Clock = std::chrono::steady_clock;

// Each worker's loop counter as sampled by the control thread. A worker
// whose counter did not move for longer than stall_after is stalled.
class WorkerHeartbeats {
public:
    struct Beat {
        uint64_t loops = 0;
        Clock::time_point moved{};
        bool stalled = false;
    };

    explicit WorkerHeartbeats(std::chrono::milliseconds stall_after) : stall_after_(stall_after) {}

    // Takes one sample of every worker's loop counter; returns the workers
    // whose stalled flag changed with it (the caller logs them). A different
    // number of workers starts afresh.
    std::vector<size_t> sample(std::span<const uint64_t> loops, Clock::time_point now);
    // No workers (the dataplane is not running): nothing advances.
    void clear() { beats_.clear(); }

    const std::vector<Beat>& beats() const { return beats_; }
    size_t stalled() const;
    // There are workers and none is stalled.
    bool all_advancing() const { return !beats_.empty() && stalled() == 0; }

private:
    std::chrono::milliseconds stall_after_;
    std::vector<Beat> beats_;
};

// What a STATUS= line says.
struct StatusFacts {
    size_t pools = 0;
    size_t backends = 0;
    size_t backends_up = 0;  // state active: taking new calls
    size_t workers = 0;
    size_t stalled = 0;
    uint64_t tx_packets = 0;  // frames the workers transmitted, since start
    bool stopping = false;
};

class Notifier {
public:
    // Sends one notification ("READY=1\nSTATUS=..."); false when it failed.
    using Send = std::function<bool(const std::string& state)>;

    // watchdog_interval: WATCHDOG_USEC, zero when there is no watchdog.
    Notifier(Send send, std::chrono::microseconds watchdog_interval)
        : send_(std::move(send)), watchdog_interval_(watchdog_interval) {}

    // NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID of this process's
    // environment: without NOTIFY_SOCKET nothing is sent; the watchdog is on
    // only when sd_watchdog_enabled(3) says so (WATCHDOG_PID names this pid).
    static Notifier from_environment();

    bool enabled() const { return static_cast<bool>(send_); }
    std::chrono::microseconds watchdog_interval() const { return watchdog_interval_; }
    // WATCHDOG=1 goes out every half interval; watchdog() must be called at
    // least twice as often so a ping is never later than 3/4 of the interval.
    std::chrono::milliseconds watchdog_tick() const;

    void ready(Clock::time_point now, const StatusFacts& facts);
    void reloading();
    void reloaded();
    // Once; later calls send nothing.
    void stopping();
    // STATUS=, with the transmit rate since the previous status()/ready().
    void status(Clock::time_point now, const StatusFacts& facts);
    // WATCHDOG=1 when half the interval has passed since the last one and
    // every worker's heartbeat advances; a stalled worker withholds it until
    // the worker moves again (or systemd's watchdog restarts the service).
    void watchdog(Clock::time_point now, const WorkerHeartbeats& heartbeats);

    // "running: 2 pools, 4/5 backends up, 1.234 Mpps tx, 2 workers"; the
    // rate part is left out while unknown, stalled workers are named.
    static std::string status_line(const StatusFacts& facts, std::optional<double> mpps);

private:
    void send(const std::string& state);
    std::optional<double> rate(Clock::time_point now, uint64_t tx_packets);

    Send send_;
    std::chrono::microseconds watchdog_interval_;
    bool ready_ = false;
    bool stopping_ = false;
    std::optional<Clock::time_point> last_ping_;
    std::optional<Clock::time_point> last_status_;
    uint64_t last_tx_ = 0;
};

}  // namespace siplb::daemon
