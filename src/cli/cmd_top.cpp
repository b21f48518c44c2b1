// siplbctl top: a live view of the running daemon, redrawn every --interval
// seconds: message rates per pool and backend, calls/s, drops/s by reason,
// backend state and health, worker busy share. The frame itself is built by
// top_frame() (pure); this file polls the daemon and owns the terminal.
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "control_client.h"
#include "siplb/control/protocol.h"
#include "top_frame.h"

namespace siplb::cli {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct TopOptions {
    std::string socket;
    double interval_s = 1.0;
    bool once = false;
    int timeout_ms = 5000;
};

void help(FILE* out) {
    std::fprintf(out,
                 "usage: siplbctl top [--socket PATH] [--interval SECONDS] [--once] [--timeout SECONDS]\n"
                 "  live view: msgs/s per pool and backend, calls/s, drops/s by reason, backend\n"
                 "  state and health, worker busy share (RX bursts that returned frames)\n\n"
                 "--socket    control socket (default: [control] socket of %s, else %s)\n"
                 "--interval  seconds between refreshes, 0.1..3600 (default 1); rates are over this interval\n"
                 "--once      print one frame (two polls --interval apart) without terminal control, and exit\n"
                 "--timeout   seconds to wait for each answer (default 5)\n"
                 "Keys: q quits (also Ctrl-C). Width and height follow the terminal; lines are cut, never wrapped.\n"
                 "Exit status: 0 ok, 2 usage, 3 daemon not reachable.\n",
                 kDefaultConfig, kDefaultSocket);
}

struct Poll {
    json status, stats, backends;
    Clock::time_point at;  // when the stats answer arrived
};

Result<Poll> poll_daemon(const std::string& socket, int timeout_ms) {
    Poll p;
    const std::pair<control::CommandKind, json*> asks[] = {{control::CommandKind::status, &p.status},
                                                           {control::CommandKind::stats, &p.stats},
                                                           {control::CommandKind::backends, &p.backends}};
    for (const auto& [kind, out] : asks) {
        control::Request r;
        r.cmd = kind;
        auto resp = call(socket, control::encode_request(r), timeout_ms);
        if (!resp) return Result<Poll>::fail(resp.message());
        if (!resp->value("ok", false))
            return Result<Poll>::fail(std::string(control::to_string(kind)) + ": " +
                                      resp->value("error", std::string("request failed")));
        *out = (*resp)["result"];
        if (kind == control::CommandKind::stats) p.at = Clock::now();
    }
    return p;
}

bool write_all(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
        const ssize_t n = ::write(STDOUT_FILENO, s.data() + off, s.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        off += static_cast<size_t>(n);
    }
    return true;
}

// Columns and rows of the terminal on stdout; COLUMNS or 80x24 otherwise.
std::pair<size_t, size_t> screen_size() {
    winsize ws{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) return {ws.ws_col, ws.ws_row};
    size_t cols = 80;
    if (const char* c = std::getenv("COLUMNS")) {
        char* end = nullptr;
        const long v = std::strtol(c, &end, 10);
        if (end && !*end && v >= 20 && v <= 1000) cols = static_cast<size_t>(v);
    }
    return {cols, 24};
}

// The terminal while the live view runs: keys arrive one by one without
// echo, the cursor is hidden. The destructor puts both back, so every way
// out of run_live (q, a signal, an error) restores the terminal.
class LiveTerminal {
public:
    LiveTerminal() {
        if (::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &saved_) == 0) {
            termios raw = saved_;
            raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
            raw.c_cc[VMIN] = 0;
            raw.c_cc[VTIME] = 0;
            restore_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
        }
        (void)write_all("\x1b[?25l");
    }
    ~LiveTerminal() {
        if (restore_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
        (void)write_all("\x1b[?25h\n");
    }
    LiveTerminal(const LiveTerminal&) = delete;
    LiveTerminal& operator=(const LiveTerminal&) = delete;
    bool keys() const { return restore_; }

private:
    termios saved_{};
    bool restore_ = false;
};

bool draw(const TopInput& in) {
    const auto [cols, rows] = screen_size();
    const std::vector<std::string> lines = top_frame(in, cols, rows);
    // Clear and home, then the frame; no newline after the last line, so a
    // frame as tall as the screen does not scroll it.
    std::string out = "\x1b[H\x1b[2J";
    for (size_t i = 0; i < lines.size(); ++i) out += (i ? "\n" : "") + lines[i];
    return write_all(out);
}

int run_once(const TopOptions& o) {
    auto first = poll_daemon(o.socket, o.timeout_ms);
    if (!first) {
        std::fprintf(stderr, "siplbctl top: %s\n", first.message().c_str());
        return 3;
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(o.interval_s));
    auto second = poll_daemon(o.socket, o.timeout_ms);
    if (!second) {
        std::fprintf(stderr, "siplbctl top: %s\n", second.message().c_str());
        return 3;
    }
    TopInput in{second->status,
                first->stats,
                second->stats,
                second->backends,
                std::chrono::duration<double>(second->at - first->at).count(),
                ""};
    for (const auto& l : top_frame(in, screen_size().first)) std::printf("%s\n", l.c_str());
    return 0;
}

int run_live(const TopOptions& o) {
    if (!::isatty(STDOUT_FILENO)) {
        std::fprintf(stderr, "siplbctl top: stdout is not a terminal; use --once for one frame\n");
        return 2;
    }
    auto first = poll_daemon(o.socket, o.timeout_ms);
    if (!first) {
        std::fprintf(stderr, "siplbctl top: %s\n", first.message().c_str());
        return 3;
    }
    // Signals arrive through the poll loop, so the terminal is restored by
    // the normal way out instead of from a handler.
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH}) sigaddset(&mask, sig);
    if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
        std::fprintf(stderr, "siplbctl top: sigprocmask: %s\n", std::strerror(errno));
        return 1;
    }
    const int sig_fd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sig_fd < 0) {
        std::fprintf(stderr, "siplbctl top: signalfd: %s\n", std::strerror(errno));
        return 1;
    }
    struct CloseFd {
        int fd;
        ~CloseFd() { ::close(fd); }
    } close_sig{sig_fd};

    LiveTerminal term;
    Poll prev = std::move(*first);
    bool have_prev = true;
    TopInput in{prev.status, json(), prev.stats, prev.backends, 0, ""};
    if (!draw(in)) return 1;
    const auto period = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.interval_s));
    auto next = Clock::now() + period;
    bool watch_keys = term.keys();
    while (true) {
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count();
        pollfd fds[2] = {{sig_fd, POLLIN, 0}, {watch_keys ? STDIN_FILENO : -1, POLLIN, 0}};
        const int r = ::poll(fds, 2, static_cast<int>(std::max<int64_t>(0, wait)));
        if (r < 0 && errno != EINTR) return 1;
        if (r > 0 && (fds[0].revents & POLLIN)) {
            signalfd_siginfo si{};
            while (::read(sig_fd, &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
                if (si.ssi_signo != SIGWINCH) return 128 + static_cast<int>(si.ssi_signo);
                if (!draw(in)) return 1;
            }
        }
        if (r > 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            char keys[64];
            const ssize_t n = ::read(STDIN_FILENO, keys, sizeof(keys));
            if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) watch_keys = false;  // no more keys
            for (ssize_t i = 0; i < n; ++i)
                if (keys[i] == 'q' || keys[i] == 'Q') return 0;
        }
        if (Clock::now() < next) continue;
        auto p = poll_daemon(o.socket, o.timeout_ms);
        if (p) {
            in = TopInput{p->status,
                          have_prev ? prev.stats : json(),
                          p->stats,
                          p->backends,
                          std::chrono::duration<double>(p->at - prev.at).count(),
                          ""};
            prev = std::move(*p);
            have_prev = true;
        } else {
            // Keep the last picture, say why it is old; rates restart once it answers.
            in.error = p.message();
            have_prev = false;
        }
        if (!draw(in)) return 1;
        next += period;
        if (next < Clock::now()) next = Clock::now() + period;
    }
}

int run_top(int argc, char** argv) {
    TopOptions o;
    auto seconds = [](const std::string& v, double lo, double hi, double* out) {
        char* end = nullptr;
        const double t = std::strtod(v.c_str(), &end);
        if (v.empty() || !end || *end || !(t >= lo && t <= hi)) return false;
        *out = t;
        return true;
    };
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            help(stdout);
            return 0;
        } else if (a == "--once") {
            o.once = true;
        } else if (a == "--socket" || a == "-s" || a == "--interval" || a == "--timeout") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "siplbctl top: %s needs a value\n", a.c_str());
                return 2;
            }
            const std::string v = argv[++i];
            double t = 0;
            if (a == "--interval") {
                if (!seconds(v, 0.1, 3600, &o.interval_s)) {
                    std::fprintf(stderr, "siplbctl top: bad --interval '%s' (seconds, 0.1..3600)\n", v.c_str());
                    return 2;
                }
            } else if (a == "--timeout") {
                if (!seconds(v, 0.001, 3600, &t)) {
                    std::fprintf(stderr, "siplbctl top: bad --timeout '%s' (seconds, up to 3600)\n", v.c_str());
                    return 2;
                }
                o.timeout_ms = std::max(1, static_cast<int>(t * 1000));
            } else {
                o.socket = v;
            }
        } else if (a.rfind("--socket=", 0) == 0) {
            o.socket = a.substr(9);
        } else {
            std::fprintf(stderr, "siplbctl top: unexpected argument '%s'\n", a.c_str());
            help(stderr);
            return 2;
        }
    }
    if (o.socket.empty()) o.socket = default_socket();
    return o.once ? run_once(o) : run_live(o);
}

const CommandRegistrar kTop{Command{"top", "top [--interval S] [--once]",
                                    "live view: msgs/s per pool and backend, drops/s, health, worker busy share",
                                    run_top}};

}  // namespace
}  // namespace siplb::cli
