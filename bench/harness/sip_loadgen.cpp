// sip_loadgen: sends a pre-built realistic SIP mix to one UDP target with
// sendmmsg batches, at a fixed rate or as fast as it can, for a bounded
// time, and reports what it sent as JSON on stdout.
//
//   sip_loadgen --dst 198.51.100.1:5060 [--rate 100000] [--duration 3]
//               [--mix 8192] [--seed 1] [--requests-only] [--batch 32]
//               [--src 198.51.100.2] [--af-packet IFACE --dst-mac MAC]
// With --af-packet the datagrams go out as pre-built Ethernet frames on a
// packet socket (qdisc bypassed): no UDP/IP stack on the sending side, so
// one core offers several times the rate a UDP socket can. The frames are
// copied into a PACKET_TX_RING and sent with one send() per batch (no
// per-message msghdr/copy_from_user path); --no-tx-ring uses sendmmsg.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "sip_mix.h"
#include "support/frame_builder.h"

using namespace siplb::bench;

namespace {
volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr,
                 "sip_loadgen: %s\nusage: sip_loadgen --dst IP:PORT [--rate MSGS_PER_S (0=max)] "
                 "[--duration S (<=600)] [--mix N] [--seed N] [--requests-only] [--batch N] [--src IP]\n"
                 "       [--af-packet IFACE --dst-mac MAC (needs --src)] [--no-tx-ring]\n",
                 msg);
    std::exit(2);
}
// A TPACKET_V2 transmit ring: frames are copied into free slots, marked
// TP_STATUS_SEND_REQUEST and sent by one send() per batch; the kernel hands a
// slot back (TP_STATUS_AVAILABLE) once the frame has left (veth: at once).
struct TxRing {
    static constexpr unsigned kFrameSize = 2048, kBlockSize = 1u << 16, kBlocks = 64;
    static constexpr unsigned kFrames = kBlockSize / kFrameSize * kBlocks;  // 2048
    uint8_t* map = nullptr;
    size_t map_len = 0;
    unsigned head = 0;
    uint64_t wrong_format = 0;

    bool setup(int fd) {
        int v = TPACKET_V2;
        if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) != 0) return false;
        tpacket_req req{};
        req.tp_block_size = kBlockSize;
        req.tp_block_nr = kBlocks;
        req.tp_frame_size = kFrameSize;
        req.tp_frame_nr = kFrames;
        if (setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) != 0) return false;
        map_len = static_cast<size_t>(kBlockSize) * kBlocks;
        void* m = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (m == MAP_FAILED) return false;
        map = static_cast<uint8_t*>(m);
        return true;
    }
    tpacket2_hdr* slot(unsigned i) const {
        return reinterpret_cast<tpacket2_hdr*>(map + static_cast<size_t>(i) * kFrameSize);
    }
    // Fills up to `want` free slots from the frames at `frames[cursor..]`;
    // returns how many were queued.
    size_t fill(const std::vector<std::string>& frames, size_t cursor, size_t want) {
        constexpr size_t data_off = TPACKET2_HDRLEN - sizeof(sockaddr_ll);
        size_t n = 0;
        for (; n < want; ++n) {
            tpacket2_hdr* h = slot(head);
            uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
            if (st & TP_STATUS_WRONG_FORMAT)
                ++wrong_format;
            else if (st != TP_STATUS_AVAILABLE)
                break;  // still in flight: ring full
            const std::string& f = frames[(cursor + n) % frames.size()];
            std::memcpy(reinterpret_cast<uint8_t*>(h) + data_off, f.data(), f.size());
            h->tp_len = static_cast<uint32_t>(f.size());
            __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
            head = (head + 1) % kFrames;
        }
        return n;
    }
    ~TxRing() {
        if (map) munmap(map, map_len);
    }
};
}  // namespace

int main(int argc, char** argv) {
    std::string dst_text, src_text, af_iface, dst_mac_text;
    double rate = 0, duration = 3;
    size_t mix_count = 8192, batch = 32;
    uint64_t seed = 1;
    bool requests_only = false, tx_ring = true;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--dst")
            dst_text = val();
        else if (a == "--src")
            src_text = val();
        else if (a == "--rate")
            rate = std::atof(val().c_str());
        else if (a == "--duration")
            duration = std::atof(val().c_str());
        else if (a == "--mix")
            mix_count = std::strtoul(val().c_str(), nullptr, 10);
        else if (a == "--seed")
            seed = std::strtoull(val().c_str(), nullptr, 10);
        else if (a == "--batch")
            batch = std::strtoul(val().c_str(), nullptr, 10);
        else if (a == "--requests-only")
            requests_only = true;
        else if (a == "--af-packet")
            af_iface = val();
        else if (a == "--dst-mac")
            dst_mac_text = val();
        else if (a == "--no-tx-ring")
            tx_ring = false;
        else
            usage(("unknown argument " + a).c_str());
    }
    auto dst = parse_v4_endpoint(dst_text);
    if (!dst) usage("--dst must be IPv4:PORT");
    if (!(duration > 0 && duration <= 600)) usage("--duration must be in (0, 600]");
    if (rate < 0) usage("--rate must be >= 0");
    if (mix_count == 0 || mix_count > 1000000) usage("--mix must be in 1..1000000");
    if (batch == 0 || batch > 1024) usage("--batch must be in 1..1024");

    std::vector<std::string> mix = build_message_mix(mix_count, seed, requests_only);
    size_t total_bytes = 0;
    for (auto& m : mix) total_bytes += m.size();

    int fd = -1;
    sockaddr_ll ll{};
    TxRing ring;
    if (!af_iface.empty()) {
        siplb::MacAddress dmac, smac;
        int ifindex = 0;
        if (!parse_mac(dst_mac_text, dmac.bytes.data())) usage("--af-packet needs --dst-mac aa:bb:cc:dd:ee:ff");
        if (!interface_mac(af_iface, smac.bytes.data(), &ifindex)) usage("--af-packet: no such interface");
        const auto src_ip = siplb::IpAddress::parse(src_text);
        if (!src_ip || !src_ip->is_v4()) usage("--af-packet needs --src IPv4");
        const siplb::Endpoint src{*src_ip, 5060};
        const siplb::Endpoint to{siplb::IpAddress::from_v4_be(dst->sin_addr.s_addr), ntohs(dst->sin_port)};
        for (auto& m : mix) {
            // UDP checksum 0 (allowed for IPv4): the sender spends nothing on it.
            auto f = siplb::test::build_frame(
                {.src_mac = smac, .dst_mac = dmac, .src = src, .dst = to, .udp_checksum = false, .payload = m});
            m.assign(f.bytes.begin(), f.bytes.end());
        }
        fd = socket(AF_PACKET, SOCK_RAW, 0);  // protocol 0: send only, receive nothing
        if (fd < 0) {
            std::perror("socket(AF_PACKET)");
            return 1;
        }
        int one = 1;
        setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
        int sndbuf = 4 << 20;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        ll.sll_family = AF_PACKET;
        ll.sll_ifindex = ifindex;
        ll.sll_protocol = htons(ETH_P_IP);
        ll.sll_halen = 6;
        std::memcpy(ll.sll_addr, dmac.bytes.data(), 6);
        if (bind(fd, reinterpret_cast<sockaddr*>(&ll), sizeof ll) != 0) {
            std::perror("bind(AF_PACKET)");
            return 1;
        }
        if (tx_ring && !ring.setup(fd)) tx_ring = false;  // falls back to sendmmsg
    } else {
        tx_ring = false;
        fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0) {
            std::perror("socket");
            return 1;
        }
        int sndbuf = 4 << 20;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        if (!src_text.empty()) {
            sockaddr_in src{};
            src.sin_family = AF_INET;
            if (inet_pton(AF_INET, src_text.c_str(), &src.sin_addr) != 1) usage("--src must be an IPv4 address");
            if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
                std::perror("bind");
                return 1;
            }
        }
        if (connect(fd, reinterpret_cast<sockaddr*>(&*dst), sizeof *dst) != 0) {
            std::perror("connect");
            return 1;
        }
    }
    const size_t frame_overhead = af_iface.empty() ? 0 : 42;

    // One iovec + mmsghdr per mix entry, twice over so any batch starting
    // inside the mix is one contiguous slice.
    size_t n = mix.size();
    std::vector<iovec> iov(2 * n);
    std::vector<mmsghdr> msgs(2 * n);
    for (size_t i = 0; i < 2 * n; ++i) {
        auto& m = mix[i % n];
        iov[i] = {m.data(), m.size()};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    batch = std::min(batch, n);

    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    uint64_t sent = 0, errors = 0, sent_bytes = 0;
    size_t cursor = 0;
    const double t0 = now_s(), t_end = t0 + duration;
    double now = t0;
    while (!g_stop && (now = now_s()) < t_end) {
        size_t want = batch;
        if (rate > 0) {
            double allowed = rate * (now - t0) - static_cast<double>(sent);
            if (allowed < 1) {
                // Sleep until about one batch is due, capped so we stay responsive.
                double wait = std::min((static_cast<double>(batch) - allowed) / rate, 0.002);
                timespec ts{0, static_cast<long>(wait * 1e9)};
                nanosleep(&ts, nullptr);
                continue;
            }
            want = std::min(batch, static_cast<size_t>(allowed));
        }
        int r;
        if (tx_ring) {
            r = static_cast<int>(ring.fill(mix, cursor, want));
            if (r > 0 && send(fd, nullptr, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != ENOBUFS) ++errors;
            if (r == 0) {  // ring full: kick and wait for slots to come back
                send(fd, nullptr, 0, MSG_DONTWAIT);
                pollfd pfd{fd, POLLOUT, 0};
                poll(&pfd, 1, 1);
                continue;
            }
        } else {
            r = sendmmsg(fd, &msgs[cursor], static_cast<unsigned>(want), 0);
        }
        if (r < 0) {
            if (errno == EINTR) continue;
            ++errors;  // ECONNREFUSED (ICMP from target), ENOBUFS: counted, keep going
            continue;
        }
        for (int k = 0; k < r; ++k) sent_bytes += iov[cursor + k].iov_len - frame_overhead;
        sent += static_cast<uint64_t>(r);
        cursor = (cursor + static_cast<size_t>(r)) % n;
    }
    if (tx_ring) send(fd, nullptr, 0, 0);  // blocking: every queued frame leaves before we report
    double elapsed = now_s() - t0;
    errors += ring.wrong_format;
    close(fd);
    std::printf(
        "{\"sent\": %llu, \"sent_bytes\": %llu, \"send_errors\": %llu, \"elapsed_s\": %.4f, "
        "\"rate_target\": %.0f, \"rate_achieved\": %.0f, \"mix_messages\": %zu, "
        "\"mix_avg_bytes\": %.1f, \"requests_only\": %s, \"mode\": \"%s\"}\n",
        static_cast<unsigned long long>(sent), static_cast<unsigned long long>(sent_bytes),
        static_cast<unsigned long long>(errors), elapsed, rate, static_cast<double>(sent) / elapsed, n,
        static_cast<double>(total_bytes) / static_cast<double>(n), requests_only ? "true" : "false",
        af_iface.empty() ? "udp"
        : tx_ring        ? "af_packet_tx_ring"
                         : "af_packet");
    return 0;
}
