// sip_sink: the backends. Binds one UDP socket per backend endpoint, drains
// them with recvmmsg, counts datagrams and bytes per backend and (with
// --verify) checks that every Call-ID only ever reaches one backend.
// Runs until SIGINT/SIGTERM or --duration, then prints JSON on stdout.
//
//   sip_sink --backends 198.51.100.2:6000*100 [--duration 30] [--verify]
//            [--ready-file PATH] [--af-packet IFACE]
// With --af-packet the sink opens no UDP sockets: it taps the interface
// with one packet socket and counts the UDP frames addressed to each backend
// (the backend addresses are then not configured on the interface, so the
// kernel drops the frames early and sends nothing back).
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
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
#include <cstring>
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
                 "[--verify] [--ready-file PATH] [--af-packet IFACE]\n",
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
    std::string ready_file, af_iface;
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
        } else if (a == "--duration")
            duration = std::atof(val().c_str());
        else if (a == "--verify")
            verify = true;
        else if (a == "--ready-file")
            ready_file = val();
        else if (a == "--af-packet")
            af_iface = val();
        else
            usage(("unknown argument " + a).c_str());
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
    if (ep < 0) {
        std::perror("epoll_create1");
        return 1;
    }
    std::vector<int> fds;
    std::unordered_map<uint64_t, uint32_t> backend_of;  // (ip << 16 | port), network order -> index
    int raw = -1;
    if (!af_iface.empty()) {
        uint8_t mac[6];
        int ifindex = 0;
        if (!interface_mac(af_iface, mac, &ifindex)) usage("--af-packet: no such interface");
        raw = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK, htons(ETH_P_IP));  // DGRAM: from the IP header on
        if (raw < 0) {
            std::perror("socket(AF_PACKET)");
            return 1;
        }
        int rcvbuf = 32 << 20;
        if (setsockopt(raw, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
            setsockopt(raw, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        sockaddr_ll ll{};
        ll.sll_family = AF_PACKET;
        ll.sll_protocol = htons(ETH_P_IP);
        ll.sll_ifindex = ifindex;
        if (bind(raw, reinterpret_cast<sockaddr*>(&ll), sizeof ll) != 0) {
            std::perror("bind(AF_PACKET)");
            return 1;
        }
        for (size_t i = 0; i < backends.size(); ++i)
            backend_of[static_cast<uint64_t>(backends[i].sin_addr.s_addr) << 16 | backends[i].sin_port] =
                static_cast<uint32_t>(i);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = UINT32_MAX;
        epoll_ctl(ep, EPOLL_CTL_ADD, raw, &ev);
    }
    for (size_t i = 0; af_iface.empty() && i < backends.size(); ++i) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            std::perror("socket");
            return 1;
        }
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

    struct sigaction sa {};
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
    std::vector<sockaddr_ll> from(kBatch);
    for (unsigned k = 0; k < kBatch; ++k) {
        iov[k] = {&bufs[k * kBufSize], kBufSize};
        msgs[k] = {};
        if (raw >= 0) {
            msgs[k].msg_hdr.msg_name = &from[k];
            msgs[k].msg_hdr.msg_namelen = sizeof from[k];
        }
        msgs[k].msg_hdr.msg_iov = &iov[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
    }
    std::vector<uint64_t> count(backends.size()), bytes(backends.size());
    std::unordered_map<uint64_t, uint32_t> owner;  // Call-ID hash -> first backend seen
    uint64_t conflicts = 0, no_callid = 0, truncated = 0, other_frames = 0;
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
            int fd = b == UINT32_MAX ? raw : fds[b];
            for (;;) {
                if (raw >= 0)
                    for (unsigned k = 0; k < kBatch; ++k) msgs[k].msg_hdr.msg_namelen = sizeof from[k];
                int r = recvmmsg(fd, msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
                if (r <= 0) break;
                last_rx = now_s();
                if (first_rx == 0) first_rx = last_rx;
                for (int k = 0; k < r; ++k) {
                    const char* data = &bufs[static_cast<size_t>(k) * kBufSize];
                    size_t len = msgs[k].msg_len;
                    if (msgs[k].msg_hdr.msg_flags & MSG_TRUNC) ++truncated;
                    if (raw >= 0) {
                        // IPv4 + UDP to one of the backends, else not ours.
                        const auto* ip = reinterpret_cast<const uint8_t*>(data);
                        size_t ihl = len >= 20 ? (ip[0] & 0x0f) * 4u : 0;
                        if (from[k].sll_pkttype == PACKET_OUTGOING || ihl < 20 || len < ihl + 8 || ip[9] != 17) {
                            ++other_frames;
                            continue;
                        }
                        uint32_t daddr;
                        uint16_t dport;
                        std::memcpy(&daddr, ip + 16, 4);
                        std::memcpy(&dport, ip + ihl + 2, 2);
                        auto it = backend_of.find(static_cast<uint64_t>(daddr) << 16 | dport);
                        if (it == backend_of.end()) {
                            ++other_frames;
                            continue;
                        }
                        b = it->second;
                        data += ihl + 8;
                        len -= ihl + 8;
                    }
                    ++count[b];
                    bytes[b] += len;
                    if (!verify) continue;
                    std::string_view m(data, len);
                    auto cid = find_call_id(m);
                    if (cid.empty()) {
                        ++no_callid;
                        continue;
                    }
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
    std::printf(
        "{\"received\": %llu, \"bytes\": %llu, \"backends\": %zu, \"min_per_backend\": %llu, "
        "\"max_per_backend\": %llu, \"cv_per_backend\": %.4f, \"rx_span_s\": %.4f, \"truncated\": %llu, "
        "\"other_frames\": %llu, \"mode\": \"%s\"",
        static_cast<unsigned long long>(total), static_cast<unsigned long long>(total_bytes), count.size(),
        static_cast<unsigned long long>(mn), static_cast<unsigned long long>(mx), cv, last_rx - first_rx,
        static_cast<unsigned long long>(truncated), static_cast<unsigned long long>(other_frames),
        raw >= 0 ? "af_packet" : "udp");
    if (verify)
        std::printf(", \"verified\": true, \"call_ids\": %zu, \"call_id_conflicts\": %llu, \"no_call_id\": %llu",
                    owner.size(), static_cast<unsigned long long>(conflicts),
                    static_cast<unsigned long long>(no_callid));
    std::printf(", \"per_backend\": [");
    for (size_t i = 0; i < count.size(); ++i)
        std::printf("%s%llu", i ? ", " : "", static_cast<unsigned long long>(count[i]));
    std::printf("]}\n");
    for (int fd : fds) close(fd);
    if (raw >= 0) close(raw);
    close(ep);
    return 0;
}
