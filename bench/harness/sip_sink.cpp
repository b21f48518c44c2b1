// sip_sink: the backends. Binds one UDP socket per backend endpoint, drains
// them with recvmmsg, counts datagrams and bytes per backend and (with
// --verify) checks that every Call-ID only ever reaches one backend.
// Runs until SIGINT/SIGTERM or --duration, then prints JSON on stdout.
//
//   sip_sink --backends 198.51.100.2:6000*100 [--duration 30] [--verify]
//            [--ready-file PATH]
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

#include "sip_mix.h"

using namespace siplb::bench;

namespace {
volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr,
                 "sip_sink: %s\nusage: sip_sink --backends IP:PORT[*N] [--backends ...] [--duration S (<=900)] "
                 "[--verify] [--ready-file PATH]\n",
                 msg);
    std::exit(2);
}

constexpr unsigned kBatch = 64;
constexpr size_t kBufSize = 2048;
}  // namespace

int main(int argc, char** argv) {
    std::vector<sockaddr_in> backends;
    double duration = 60;
    bool verify = false;
    std::string ready_file;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--backends") {
            auto b = parse_backends(val());
            if (!b) usage("--backends must be IPv4:PORT or IPv4:PORT*N");
            backends.insert(backends.end(), b->begin(), b->end());
        } else if (a == "--duration") duration = std::atof(val().c_str());
        else if (a == "--verify") verify = true;
        else if (a == "--ready-file") ready_file = val();
        else usage(("unknown argument " + a).c_str());
    }
    if (backends.empty()) usage("need --backends");
    if (!(duration > 0 && duration <= 900)) usage("--duration must be in (0, 900]");

    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < backends.size() + 64) {
        rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, backends.size() + 64);
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int ep = epoll_create1(0);
    if (ep < 0) { std::perror("epoll_create1"); return 1; }
    std::vector<int> fds;
    for (size_t i = 0; i < backends.size(); ++i) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fd < 0) { std::perror("socket"); return 1; }
        int rcvbuf = backends.size() > 64 ? (1 << 20) : (8 << 20);
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        if (bind(fd, reinterpret_cast<sockaddr*>(&backends[i]), sizeof backends[i]) != 0) {
            std::perror("bind");
            return 1;
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = static_cast<uint32_t>(i);
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        fds.push_back(fd);
    }

    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    if (!ready_file.empty()) {
        int rf = open(ready_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (rf >= 0) close(rf);
    }

    std::vector<char> bufs(kBatch * kBufSize);
    std::vector<iovec> iov(kBatch);
    std::vector<mmsghdr> msgs(kBatch);
    for (unsigned k = 0; k < kBatch; ++k) {
        iov[k] = {&bufs[k * kBufSize], kBufSize};
        msgs[k] = {};
        msgs[k].msg_hdr.msg_iov = &iov[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
    }
    std::vector<uint64_t> count(backends.size()), bytes(backends.size());
    std::unordered_map<uint64_t, uint32_t> owner;  // Call-ID hash -> first backend seen
    uint64_t conflicts = 0, no_callid = 0, truncated = 0;
    std::vector<epoll_event> events(256);

    const double t0 = now_s(), t_end = t0 + duration;
    double first_rx = 0, last_rx = 0;
    while (!g_stop && now_s() < t_end) {
        int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            std::perror("epoll_wait");
            break;
        }
        for (int e = 0; e < n; ++e) {
            uint32_t b = events[e].data.u32;
            for (;;) {
                int r = recvmmsg(fds[b], msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
                if (r <= 0) break;
                last_rx = now_s();
                if (first_rx == 0) first_rx = last_rx;
                count[b] += static_cast<uint64_t>(r);
                for (int k = 0; k < r; ++k) {
                    bytes[b] += msgs[k].msg_len;
                    if (msgs[k].msg_hdr.msg_flags & MSG_TRUNC) ++truncated;
                    if (!verify) continue;
                    std::string_view m(&bufs[static_cast<size_t>(k) * kBufSize], msgs[k].msg_len);
                    auto cid = find_call_id(m);
                    if (cid.empty()) { ++no_callid; continue; }
                    uint64_t h = XXH3_64bits(cid.data(), cid.size());
                    auto [it, fresh] = owner.try_emplace(h, b);
                    if (!fresh && it->second != b) ++conflicts;
                }
                if (static_cast<unsigned>(r) < kBatch) break;
            }
        }
    }

    uint64_t total = 0, total_bytes = 0, mn = UINT64_MAX, mx = 0;
    for (size_t i = 0; i < count.size(); ++i) {
        total += count[i];
        total_bytes += bytes[i];
        mn = std::min(mn, count[i]);
        mx = std::max(mx, count[i]);
    }
    double mean = static_cast<double>(total) / static_cast<double>(count.size()), var = 0;
    for (auto c : count) var += (static_cast<double>(c) - mean) * (static_cast<double>(c) - mean);
    double cv = mean > 0 ? std::sqrt(var / static_cast<double>(count.size())) / mean : 0;
    std::printf("{\"received\": %llu, \"bytes\": %llu, \"backends\": %zu, \"min_per_backend\": %llu, "
                "\"max_per_backend\": %llu, \"cv_per_backend\": %.4f, \"rx_span_s\": %.4f, \"truncated\": %llu",
                static_cast<unsigned long long>(total), static_cast<unsigned long long>(total_bytes),
                count.size(), static_cast<unsigned long long>(mn), static_cast<unsigned long long>(mx), cv,
                last_rx - first_rx, static_cast<unsigned long long>(truncated));
    if (verify)
        std::printf(", \"verified\": true, \"call_ids\": %zu, \"call_id_conflicts\": %llu, \"no_call_id\": %llu",
                    owner.size(), static_cast<unsigned long long>(conflicts),
                    static_cast<unsigned long long>(no_callid));
    std::printf(", \"per_backend\": [");
    for (size_t i = 0; i < count.size(); ++i)
        std::printf("%s%llu", i ? ", " : "", static_cast<unsigned long long>(count[i]));
    std::printf("]}\n");
    for (int fd : fds) close(fd);
    close(ep);
    return 0;
}
