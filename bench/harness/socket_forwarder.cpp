// socket_forwarder: the baseline "what a careful sockets program does".
// One thread, one UDP socket bound to the VIP; recvmmsg a batch, find each
// datagram's Call-ID, hash it with XXH3 (same seed as siplb's pools) into
// a consistent-hash choice of backend (Maglev from siplb's balance library
// when built), sendmmsg the batch on to the
// backends. No per-packet allocation, no syscall per datagram.
//
//   socket_forwarder --listen 198.51.100.1:5060 --backends 198.51.100.2:6000*2
//                    [--duration 60] [--batch 64] [--seed N]
// Prints counters as JSON on exit (SIGINT/SIGTERM or --duration).
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sip_mix.h"

using namespace siplb::bench;

namespace {
volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr,
                 "socket_forwarder: %s\nusage: socket_forwarder --listen IP:PORT --backends IP:PORT[*N] "
                 "[--backends ...] [--duration S (<=900)] [--batch N] [--seed N]\n",
                 msg);
    std::exit(2);
}
constexpr size_t kBufSize = 2048;
}  // namespace

int main(int argc, char** argv) {
    std::string listen_text;
    std::vector<sockaddr_in> backends;
    double duration = 60;
    unsigned batch = 64;
    uint64_t seed = 0x5349504c42ull;  // siplb's default pool seed ("SIPLB")
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--listen")
            listen_text = val();
        else if (a == "--backends") {
            auto b = parse_backends(val());
            if (!b) usage("--backends must be IPv4:PORT or IPv4:PORT*N");
            backends.insert(backends.end(), b->begin(), b->end());
        } else if (a == "--duration")
            duration = std::atof(val().c_str());
        else if (a == "--batch")
            batch = static_cast<unsigned>(std::strtoul(val().c_str(), nullptr, 10));
        else if (a == "--seed")
            seed = std::strtoull(val().c_str(), nullptr, 0);
        else
            usage(("unknown argument " + a).c_str());
    }
    auto listen = parse_v4_endpoint(listen_text);
    if (!listen) usage("--listen must be IPv4:PORT");
    if (backends.empty()) usage("need --backends");
    if (!(duration > 0 && duration <= 900)) usage("--duration must be in (0, 900]");
    if (batch == 0 || batch > 1024) usage("--batch must be in 1..1024");

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        std::perror("socket");
        return 1;
    }
    int buf = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    if (bind(fd, reinterpret_cast<sockaddr*>(&*listen), sizeof *listen) != 0) {
        std::perror("bind");
        return 1;
    }
    // Wake up now and then to honour --duration even without traffic.
    timeval tv{0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    struct sigaction sa {};
    sa.sa_handler = on_signal;  // no SA_RESTART: recvmmsg returns EINTR
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    std::vector<char> bufs(static_cast<size_t>(batch) * kBufSize);
    std::vector<iovec> iov(batch), out_iov(batch);
    std::vector<mmsghdr> in(batch), out(batch);
    for (unsigned k = 0; k < batch; ++k) {
        iov[k] = {&bufs[k * kBufSize], kBufSize};
        in[k] = {};
        in[k].msg_hdr.msg_iov = &iov[k];
        in[k].msg_hdr.msg_iovlen = 1;
        out[k] = {};
        out[k].msg_hdr.msg_iov = &out_iov[k];
        out[k].msg_hdr.msg_iovlen = 1;
        out[k].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    }
    std::vector<std::string> ids;
    for (auto& b : backends) ids.push_back(endpoint_identity(b));
    BackendChooser chooser(ids, seed);
    if (!chooser.ok()) {
        std::fprintf(stderr, "socket_forwarder: cannot build the backend table\n");
        return 1;
    }
    uint64_t received = 0, forwarded = 0, no_callid = 0, send_errors = 0, batches = 0;
    const double t0 = now_s(), t_end = t0 + duration;
    while (!g_stop) {
        int r = recvmmsg(fd, in.data(), batch, MSG_WAITFORONE, nullptr);
        if (r <= 0) {
            if (now_s() >= t_end) break;
            continue;  // EINTR, EAGAIN (timeout)
        }
        ++batches;
        received += static_cast<uint64_t>(r);
        unsigned n_out = 0;
        for (int k = 0; k < r; ++k) {
            std::string_view m(&bufs[static_cast<size_t>(k) * kBufSize], in[k].msg_len);
            auto cid = find_call_id(m);
            if (cid.empty()) {
                ++no_callid;
                continue;
            }
            uint32_t b = chooser.pick(cid);
            out_iov[n_out] = {const_cast<char*>(m.data()), m.size()};
            out[n_out].msg_hdr.msg_name = &backends[b];
            ++n_out;
        }
        unsigned done = 0;
        while (done < n_out) {
            int s = sendmmsg(fd, &out[done], n_out - done, 0);
            if (s < 0) {
                if (errno == EINTR) continue;
                ++send_errors;  // drop the rest of this batch, counted
                break;
            }
            done += static_cast<unsigned>(s);
        }
        forwarded += done;
        if ((batches & 1023) == 0 && now_s() >= t_end) break;
    }
    close(fd);
    std::printf(
        "{\"received\": %llu, \"forwarded\": %llu, \"no_call_id\": %llu, \"send_errors\": %llu, "
        "\"batches\": %llu, \"avg_batch\": %.2f, \"elapsed_s\": %.3f, \"algorithm\": \"%s\"}\n",
        static_cast<unsigned long long>(received), static_cast<unsigned long long>(forwarded),
        static_cast<unsigned long long>(no_callid), static_cast<unsigned long long>(send_errors),
        static_cast<unsigned long long>(batches),
        batches ? static_cast<double>(received) / static_cast<double>(batches) : 0.0, now_s() - t0,
        BackendChooser::algorithm());
    return 0;
}
