#include "notifier.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "siplb/control/log.h"

namespace siplb::daemon {

std::vector<size_t> WorkerHeartbeats::sample(std::span<const uint64_t> loops, Clock::time_point now) {
    std::vector<size_t> changed;
    if (beats_.size() != loops.size()) beats_.assign(loops.size(), Beat{0, now, false});
    for (size_t i = 0; i < loops.size(); ++i) {
        Beat& b = beats_[i];
        if (loops[i] != b.loops) {
            b.loops = loops[i];
            b.moved = now;
        }
        const bool stalled = now - b.moved > stall_after_;
        if (stalled != b.stalled) changed.push_back(i);
        b.stalled = stalled;
    }
    return changed;
}

size_t WorkerHeartbeats::stalled() const {
    return static_cast<size_t>(std::count_if(beats_.begin(), beats_.end(), [](const Beat& b) { return b.stalled; }));
}

Notifier Notifier::from_environment() {
    if (!std::getenv("NOTIFY_SOCKET")) return Notifier(nullptr, {});
    uint64_t usec = 0;
    // Not unset: nothing this process starts should ping in its name.
    if (sd_watchdog_enabled(0, &usec) <= 0) usec = 0;
    // Logged once: a service manager that stops listening is not news every second.
    auto failed = std::make_shared<bool>(false);
    Send send = [failed](const std::string& state) {
        const int r = sd_notify(0, state.c_str());
        if (r < 0 && !*failed) {
            *failed = true;
            control::log(control::LogLevel::warn, "sd_notify failed",
                         {{"error", std::strerror(-r)}, {"socket", std::getenv("NOTIFY_SOCKET")}});
        }
        return r > 0;
    };
    return Notifier(std::move(send), std::chrono::microseconds(usec));
}

std::chrono::milliseconds Notifier::watchdog_tick() const {
    using namespace std::chrono;
    const auto quarter = duration_cast<milliseconds>(watchdog_interval_ / 4);
    return std::clamp(quarter, milliseconds(1), milliseconds(250));
}

void Notifier::send(const std::string& state) {
    if (send_) (void)send_(state);
}

std::optional<double> Notifier::rate(Clock::time_point now, uint64_t tx_packets) {
    std::optional<double> mpps;
    if (last_status_ && now > *last_status_ && tx_packets >= last_tx_) {
        const double seconds = std::chrono::duration<double>(now - *last_status_).count();
        mpps = static_cast<double>(tx_packets - last_tx_) / seconds / 1e6;
    }
    last_status_ = now;
    last_tx_ = tx_packets;
    return mpps;
}

std::string Notifier::status_line(const StatusFacts& f, std::optional<double> mpps) {
    char buf[160];
    int n = std::snprintf(buf, sizeof(buf), "%s: %zu pool%s, %zu/%zu backends up", f.stopping ? "stopping" : "running",
                          f.pools, f.pools == 1 ? "" : "s", f.backends_up, f.backends);
    std::string line(buf, static_cast<size_t>(std::max(n, 0)));
    if (mpps) {
        std::snprintf(buf, sizeof(buf), ", %.3f Mpps tx", *mpps);
        line += buf;
    }
    if (f.stalled)
        std::snprintf(buf, sizeof(buf), ", %zu of %zu workers STALLED", f.stalled, f.workers);
    else
        std::snprintf(buf, sizeof(buf), ", %zu worker%s", f.workers, f.workers == 1 ? "" : "s");
    return line + buf;
}

void Notifier::ready(Clock::time_point now, const StatusFacts& facts) {
    if (!enabled()) return;
    ready_ = true;
    send("READY=1\nSTATUS=" + status_line(facts, rate(now, facts.tx_packets)));
}

void Notifier::reloading() { send("RELOADING=1"); }

// systemd 252 leaves the unit "reloading" after RELOADING=1 until READY=1,
// whether the reload was applied or refused.
void Notifier::reloaded() { send("READY=1"); }

void Notifier::stopping() {
    if (stopping_) return;
    stopping_ = true;
    send("STOPPING=1");
}

void Notifier::status(Clock::time_point now, const StatusFacts& facts) {
    if (!enabled()) return;
    send("STATUS=" + status_line(facts, rate(now, facts.tx_packets)));
}

void Notifier::watchdog(Clock::time_point now, const WorkerHeartbeats& heartbeats) {
    if (!enabled() || watchdog_interval_.count() <= 0 || !ready_) return;
    if (last_ping_ && now - *last_ping_ < watchdog_interval_ / 2) return;
    if (!heartbeats.all_advancing()) return;
    last_ping_ = now;
    send("WATCHDOG=1");
}

}  // namespace siplb::daemon
