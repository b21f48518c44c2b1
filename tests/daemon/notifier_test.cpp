// The daemon's sd_notify decisions, driven with made-up heartbeats and time:
// which notifications would go out, in what order.
#include "notifier.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace siplb::daemon {
namespace {

using namespace std::chrono_literals;

struct Recorder {
    std::vector<std::string> sent;
    Notifier notifier(std::chrono::microseconds watchdog) {
        return Notifier(
            [this](const std::string& s) {
                sent.push_back(s);
                return true;
            },
            watchdog);
    }
    size_t count(const std::string& state) const {
        size_t n = 0;
        for (const auto& s : sent) n += s == state;
        return n;
    }
};

const Clock::time_point t0 = Clock::time_point() + 1000s;

TEST(WorkerHeartbeats, StalledAfterTheThresholdWithoutProgress) {
    WorkerHeartbeats hb(1000ms);
    EXPECT_FALSE(hb.all_advancing());  // no workers yet
    EXPECT_TRUE(hb.sample(std::vector<uint64_t>{10, 20}, t0).empty());
    EXPECT_TRUE(hb.all_advancing());
    // Worker 1 stops moving; within the threshold it is not stalled yet.
    EXPECT_TRUE(hb.sample(std::vector<uint64_t>{11, 20}, t0 + 1000ms).empty());
    EXPECT_TRUE(hb.all_advancing());
    EXPECT_EQ(hb.sample(std::vector<uint64_t>{12, 20}, t0 + 1001ms), std::vector<size_t>{1});
    EXPECT_TRUE(hb.beats()[1].stalled);
    EXPECT_EQ(hb.stalled(), 1u);
    EXPECT_FALSE(hb.all_advancing());
    EXPECT_EQ(hb.sample(std::vector<uint64_t>{13, 21}, t0 + 1500ms), std::vector<size_t>{1});
    EXPECT_TRUE(hb.all_advancing());
    hb.clear();
    EXPECT_FALSE(hb.all_advancing());
}

TEST(Notifier, WatchdogOnlyWhileEveryWorkerAdvances) {
    Recorder r;
    Notifier n = r.notifier(2000ms);  // WATCHDOG_USEC=2000000: ping every second
    WorkerHeartbeats hb(1000ms);
    uint64_t w0 = 0, w1 = 0;
    n.ready(t0, {});
    ASSERT_EQ(r.sent.size(), 1u);
    EXPECT_EQ(r.sent[0].rfind("READY=1\nSTATUS=", 0), 0u) << r.sent[0];

    // Both workers move: one ping per half interval, ticked every 250 ms.
    auto t = t0;
    for (; t <= t0 + 3000ms; t += 250ms) {
        hb.sample(std::vector<uint64_t>{++w0, ++w1}, t);
        n.watchdog(t, hb);
    }
    EXPECT_EQ(r.count("WATCHDOG=1"), 4u);  // at 0, 1, 2 and 3 s

    // Worker 1 wedges: stalled once it has not moved for over 1 s, and no
    // ping from then on, however long.
    const auto wedged = t;
    size_t stalled_ticks = 0, pings_while_stalled = 0;
    for (; t <= wedged + 10s; t += 250ms) {
        hb.sample(std::vector<uint64_t>{++w0, w1}, t);
        const size_t before = r.sent.size();
        n.watchdog(t, hb);
        if (hb.stalled()) {
            ++stalled_ticks;
            pings_while_stalled += r.sent.size() - before;
        }
    }
    EXPECT_GE(stalled_ticks, 35u);
    EXPECT_EQ(pings_while_stalled, 0u);

    // It moves again: the ping resumes at once.
    r.sent.clear();
    hb.sample(std::vector<uint64_t>{++w0, ++w1}, t);
    n.watchdog(t, hb);
    EXPECT_EQ(r.count("WATCHDOG=1"), 1u);
}

TEST(Notifier, NoWatchdogWithoutIntervalOrBeforeReadyOrWithoutWorkers) {
    WorkerHeartbeats hb(1000ms);
    hb.sample(std::vector<uint64_t>{1}, t0);
    {
        Recorder r;
        Notifier n = r.notifier(0us);  // no WATCHDOG_USEC
        n.ready(t0, {});
        for (auto t = t0; t < t0 + 5s; t += 250ms) n.watchdog(t, hb);
        EXPECT_EQ(r.count("WATCHDOG=1"), 0u);
    }
    {
        Recorder r;
        Notifier n = r.notifier(2s);
        n.watchdog(t0, hb);  // not ready yet
        EXPECT_TRUE(r.sent.empty());
        n.ready(t0, {});
        WorkerHeartbeats none(1000ms);  // dataplane not running
        n.watchdog(t0, none);
        EXPECT_EQ(r.count("WATCHDOG=1"), 0u);
        n.watchdog(t0, hb);
        EXPECT_EQ(r.count("WATCHDOG=1"), 1u);
    }
}

TEST(Notifier, WatchdogTickKeepsPingsInsideTheInterval) {
    Recorder r;
    EXPECT_EQ(r.notifier(10s).watchdog_tick(), 250ms);
    EXPECT_EQ(r.notifier(400ms).watchdog_tick(), 100ms);
    EXPECT_EQ(r.notifier(2ms).watchdog_tick(), 1ms);
}

TEST(Notifier, ReloadStopAndStatusLines) {
    Recorder r;
    Notifier n = r.notifier(0us);
    StatusFacts f;
    f.pools = 2;
    f.backends = 5;
    f.backends_up = 4;
    f.workers = 2;
    f.tx_packets = 1'000'000;
    n.ready(t0, f);
    EXPECT_EQ(r.sent.back(), "READY=1\nSTATUS=running: 2 pools, 4/5 backends up, 2 workers");
    f.tx_packets += 3'000'000;
    n.status(t0 + 2s, f);  // 3 M frames in 2 s
    EXPECT_EQ(r.sent.back(), "STATUS=running: 2 pools, 4/5 backends up, 1.500 Mpps tx, 2 workers");
    n.reloading();
    n.reloaded();
    EXPECT_EQ(r.sent[r.sent.size() - 2], "RELOADING=1");
    EXPECT_EQ(r.sent.back(), "READY=1");
    f.stalled = 1;
    f.stopping = true;
    f.pools = 1;
    n.status(t0 + 4s, f);  // no traffic in the last 2 s
    EXPECT_EQ(r.sent.back(), "STATUS=stopping: 1 pool, 4/5 backends up, 0.000 Mpps tx, 1 of 2 workers STALLED");
    n.stopping();
    n.stopping();
    EXPECT_EQ(r.count("STOPPING=1"), 1u);
    // A counter that went backwards (cannot happen within one process) gives no rate rather than a huge one.
    f.tx_packets = 0;
    n.status(t0 + 6s, f);
    EXPECT_EQ(r.sent.back().find("Mpps"), std::string::npos) << r.sent.back();
}

TEST(Notifier, WithoutNotifySocketNothingIsSent) {
    Notifier n(nullptr, 0us);
    EXPECT_FALSE(n.enabled());
    WorkerHeartbeats hb(1000ms);
    n.ready(t0, {});
    n.status(t0, {});
    n.reloading();
    n.stopping();
    n.watchdog(t0, hb);  // nothing to send to, nothing to crash on
}

// The libsystemd glue: NOTIFY_SOCKET decides whether anything is sent,
// WATCHDOG_USEC counts only when WATCHDOG_PID names this process.
TEST(Notifier, FromEnvironment) {
    char tmpl[] = "/tmp/siplb-notify-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::filesystem::path dir = tmpl;
    const std::string path = (dir / "notify.sock").string();
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    struct Restore {
        int fd;
        std::filesystem::path dir;
        ~Restore() {
            ::unsetenv("NOTIFY_SOCKET");
            ::unsetenv("WATCHDOG_USEC");
            ::unsetenv("WATCHDOG_PID");
            ::close(fd);
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        }
    } restore{fd, dir};

    ::unsetenv("NOTIFY_SOCKET");
    ::setenv("WATCHDOG_USEC", "2000000", 1);
    EXPECT_FALSE(Notifier::from_environment().enabled());

    ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
    EXPECT_EQ(Notifier::from_environment().watchdog_interval(), 0us);  // another process's watchdog
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    Notifier n = Notifier::from_environment();
    EXPECT_TRUE(n.enabled());
    EXPECT_EQ(n.watchdog_interval(), 2s);
    n.stopping();
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 2000), 1);
    char buf[256];
    const ssize_t got = ::recv(fd, buf, sizeof(buf), 0);
    EXPECT_EQ(std::string(buf, static_cast<size_t>(std::max<ssize_t>(got, 0))), "STOPPING=1");
}

}  // namespace
}  // namespace siplb::daemon
