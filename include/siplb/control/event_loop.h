// The control thread's single poll() loop: file descriptors (control socket,
// metrics HTTP, signalfd), timers, and external sources that bring their own
// fds and timeout (c-ares discovery, health probes). Handlers must not block.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

namespace siplb::control {

class EventLoop {
public:
    using Clock = std::chrono::steady_clock;
    using FdHandler = std::function<void(short revents)>;
    using TimerId = uint64_t;

    // An external source polled alongside: fds() and timeout_ms() are asked
    // before each poll(), process() gets the source's entries with revents.
    struct Source {
        std::function<std::vector<pollfd>()> fds;
        std::function<int()> timeout_ms;  // < 0: no deadline of its own
        std::function<void(const std::vector<pollfd>&)> process;
    };

    // Registering an fd again replaces its events and handler. Safe to call
    // from inside handlers.
    void watch(int fd, short events, FdHandler handler);
    void unwatch(int fd);
    TimerId every(std::chrono::milliseconds period, std::function<void()> fn);
    TimerId after(std::chrono::milliseconds delay, std::function<void()> fn);
    void cancel(TimerId id);
    void add_source(Source s) { sources_.push_back(std::move(s)); }

    // One poll() round, waiting at most max_wait (and less when a timer or
    // source is due). Returns false on an unexpected poll() error.
    bool run_once(std::chrono::milliseconds max_wait);
    // Runs until stop() (from a handler).
    void run();
    void stop() { stopped_ = true; }
    bool stopped() const { return stopped_; }

private:
    struct Watch {
        short events;
        FdHandler handler;
    };
    struct Timer {
        Clock::time_point due;
        std::chrono::milliseconds period;  // 0: one-shot
        std::function<void()> fn;
    };
    std::map<int, Watch> watches_;
    std::map<TimerId, Timer> timers_;
    std::vector<Source> sources_;
    TimerId next_timer_ = 1;
    bool stopped_ = false;
};

}  // namespace siplb::control
