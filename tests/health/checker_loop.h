// Driving a HealthChecker from a test: its fds polled and processed until
// a condition holds, and one backend's probe status.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>

#include "siplb/health/health.h"

namespace siplb::test {

// Polls at most `max_wait_ms` at a time, so that `pred` is re-checked often.
template <class Pred>
bool run_checker_until(health::HealthChecker& hc, Pred pred, std::chrono::milliseconds limit, int max_wait_ms) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
        if (pred()) return true;
        auto fds = hc.fds();
        int t = hc.timeout_ms(Clock::now());
        if (t < 0 || t > max_wait_ms) t = max_wait_ms;
        ::poll(fds.data(), fds.size(), t);
        hc.process(fds, Clock::now());
    }
    return pred();
}

inline health::ProbeStatus probe_status(health::HealthChecker& hc, const Endpoint& ep) {
    for (auto& s : hc.status(std::chrono::steady_clock::now()))
        if (s.address == ep) return s;
    ADD_FAILURE() << "no probe status for " << ep.to_string();
    return {};
}

}  // namespace siplb::test
