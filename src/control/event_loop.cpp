#include "siplb/control/event_loop.h"

#include <cerrno>

namespace siplb::control {

void EventLoop::watch(int fd, short events, FdHandler handler) { watches_[fd] = Watch{events, std::move(handler)}; }

void EventLoop::unwatch(int fd) { watches_.erase(fd); }

EventLoop::TimerId EventLoop::every(std::chrono::milliseconds period, std::function<void()> fn) {
    if (period.count() <= 0) period = std::chrono::milliseconds(1);
    const TimerId id = next_timer_++;
    timers_[id] = Timer{Clock::now() + period, period, std::move(fn)};
    return id;
}

EventLoop::TimerId EventLoop::after(std::chrono::milliseconds delay, std::function<void()> fn) {
    const TimerId id = next_timer_++;
    timers_[id] = Timer{Clock::now() + delay, std::chrono::milliseconds(0), std::move(fn)};
    return id;
}

void EventLoop::cancel(TimerId id) { timers_.erase(id); }

bool EventLoop::run_once(std::chrono::milliseconds max_wait) {
    auto now = Clock::now();
    auto wait = max_wait;
    for (const auto& [id, t] : timers_) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t.due - now);
        if (left < wait) wait = left;
    }
    std::vector<pollfd> pfds;
    std::vector<int> fds;
    for (const auto& [fd, w] : watches_) {
        pfds.push_back(pollfd{fd, w.events, 0});
        fds.push_back(fd);
    }
    const size_t own = pfds.size();
    std::vector<size_t> source_start;
    std::vector<size_t> source_count;
    for (auto& s : sources_) {
        source_start.push_back(pfds.size());
        auto extra = s.fds ? s.fds() : std::vector<pollfd>{};
        source_count.push_back(extra.size());
        pfds.insert(pfds.end(), extra.begin(), extra.end());
        if (s.timeout_ms) {
            const int t = s.timeout_ms();
            if (t >= 0 && std::chrono::milliseconds(t) < wait) wait = std::chrono::milliseconds(t);
        }
    }
    if (wait.count() < 0) wait = std::chrono::milliseconds(0);
    const int n = ::poll(pfds.data(), pfds.size(), static_cast<int>(wait.count()));
    if (n < 0 && errno != EINTR) return false;

    for (size_t i = 0; i < own && n > 0; ++i) {
        if (!pfds[i].revents) continue;
        auto it = watches_.find(fds[i]);
        if (it == watches_.end()) continue;  // unwatched by an earlier handler
        FdHandler h = it->second.handler;    // copy: the handler may unwatch itself
        h(pfds[i].revents);
    }
    for (size_t s = 0; s < sources_.size(); ++s) {
        if (!sources_[s].process) continue;
        std::vector<pollfd> mine(pfds.begin() + static_cast<long>(source_start[s]),
                                 pfds.begin() + static_cast<long>(source_start[s] + source_count[s]));
        sources_[s].process(mine);
    }
    now = Clock::now();
    std::vector<TimerId> due;
    for (const auto& [id, t] : timers_)
        if (t.due <= now) due.push_back(id);
    for (TimerId id : due) {
        auto it = timers_.find(id);
        if (it == timers_.end()) continue;
        auto fn = it->second.fn;
        if (it->second.period.count() > 0)
            it->second.due = now + it->second.period;
        else
            timers_.erase(it);
        fn();
    }
    return true;
}

void EventLoop::run() {
    while (!stopped_) {
        if (!run_once(std::chrono::milliseconds(1000))) break;
    }
}

}  // namespace siplb::control
