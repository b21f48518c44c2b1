// siplbctl capture: the frames of balanced SIP datagrams a filter matches,
// as the workers received and sent them, written as pcap to a file or to
// stdout (for tshark -r - or sngrep -I -). The daemon copies them into
// bounded per-worker rings; this command polls them out (capture_read) and
// ends the capture with a summary of frames lost to full rings.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "command.h"
#include "control_client.h"
#include "pcap_file.h"
#include "siplb/control/protocol.h"

namespace siplb::cli {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

void help(FILE* out) {
    std::fprintf(out,
                 "usage: siplbctl capture [--socket PATH] [--pool P] [--backend IP:PORT] [--call-id C]\n"
                 "                        [--client IP] [--count N] [--duration S] -w FILE|-\n"
                 "  writes the frames of the balanced SIP datagrams that match every filter given,\n"
                 "  both directions, each as received and as sent (before and after siplb rewrote\n"
                 "  its addresses), as pcap. '-w -' writes to stdout: siplbctl capture ... -w - | tshark -r -\n\n"
                 "--pool      the pool the datagram is balanced in\n"
                 "--backend   the backend (address:port) it goes to or comes from\n"
                 "--call-id   the Call-ID (every message of the call, requests and responses)\n"
                 "--client    the client's address (either direction)\n"
                 "--count     stop after N frames written (each datagram gives two)\n"
                 "--duration  stop after S seconds (default: until Ctrl-C)\n"
                 "--timeout   seconds to wait for each answer (default 5)\n"
                 "One capture at a time per daemon. The summary on stderr gives the frames lost\n"
                 "to full capture rings (the daemon also counts them: capture.ring_full).\n"
                 "Exit status: 0 ok, 1 capture or output error, 2 usage, 3 daemon not reachable.\n");
}

bool write_all(FILE* f, const std::string& s) { return std::fwrite(s.data(), 1, s.size(), f) == s.size(); }

int run_capture(int argc, char** argv) {
    std::string socket, out_path;
    control::Request start;
    start.cmd = control::CommandKind::capture_start;
    uint64_t count = 0;
    double duration_s = 0;
    int timeout_ms = 5000;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "siplbctl capture: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        auto number = [&](double min, double max) {
            const char* v = value();
            char* end = nullptr;
            const double d = std::strtod(v, &end);
            if (!*v || *end || !(d >= min && d <= max)) {
                std::fprintf(stderr, "siplbctl capture: %s '%s' is not a number in %g..%g\n", a.c_str(), v, min, max);
                std::exit(2);
            }
            return d;
        };
        if (a == "--help" || a == "-h") {
            help(stdout);
            return 0;
        } else if (a == "--socket" || a == "-s") {
            socket = value();
        } else if (a.rfind("--socket=", 0) == 0) {
            socket = a.substr(9);
        } else if (a == "--pool") {
            start.pool = value();
        } else if (a == "--backend") {
            const std::string v = value();
            start.backend = Endpoint::parse(v, control::kDefaultSipPort, /*allow_no_port=*/true);
            if (!start.backend) {
                std::fprintf(stderr, "siplbctl capture: --backend '%s' is not an address:port\n", v.c_str());
                return 2;
            }
        } else if (a == "--call-id") {
            start.call_id = value();
        } else if (a == "--client") {
            const std::string v = value();
            start.client = IpAddress::parse(v);
            if (!start.client) {
                std::fprintf(stderr, "siplbctl capture: --client '%s' is not an IP address\n", v.c_str());
                return 2;
            }
        } else if (a == "--count" || a == "-c") {
            count = static_cast<uint64_t>(number(1, 1e12));
        } else if (a == "--duration") {
            duration_s = number(0.001, 1e7);
        } else if (a == "--timeout") {
            timeout_ms = static_cast<int>(number(0.1, 3600) * 1000);
        } else if (a == "-w") {
            out_path = value();
        } else if (a == "--json") {
            // global option of the online commands; capture writes pcap
        } else {
            std::fprintf(stderr, "siplbctl capture: unknown argument '%s'\n", a.c_str());
            help(stderr);
            return 2;
        }
    }
    if (out_path.empty()) {
        std::fprintf(stderr, "siplbctl capture: -w FILE (or -w - for stdout) is required\n");
        return 2;
    }
    if (out_path == "-" && ::isatty(STDOUT_FILENO)) {
        std::fprintf(stderr, "siplbctl capture: not writing pcap to a terminal; pipe it (| tshark -r -)\n");
        return 2;
    }
    if (socket.empty()) socket = default_socket();

    auto started = call(socket, control::encode_request(start), timeout_ms);
    if (!started) {
        std::fprintf(stderr, "siplbctl capture: %s\n", started.message().c_str());
        return 3;
    }
    if (!started->value("ok", false)) {
        std::fprintf(stderr, "siplbctl capture: %s\n", started->value("error", std::string("failed")).c_str());
        return 1;
    }
    const json& res = (*started)["result"];
    control::Request read, stop;
    read.cmd = control::CommandKind::capture_read;
    stop.cmd = control::CommandKind::capture_stop;
    read.capture_id = stop.capture_id = res.value("id", uint64_t{0});

    FILE* out = out_path == "-" ? stdout : std::fopen(out_path.c_str(), "wb");
    int rc = 0;
    uint64_t written = 0;
    if (!out) {
        std::fprintf(stderr, "siplbctl capture: cannot open %s: %s\n", out_path.c_str(), std::strerror(errno));
        rc = 1;
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, nullptr);  // a closed pipe ends the capture through fwrite's error
    if (out && !write_all(out, pcap_global_header(res.value("snaplen", 65535u)))) rc = 1;
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(duration_s > 0 ? duration_s : 1e9));
    while (rc == 0 && !g_stop && (count == 0 || written < count) && Clock::now() < deadline) {
        auto got = call(socket, control::encode_request(read), timeout_ms);
        if (!got || !got->value("ok", false)) {
            std::fprintf(stderr, "siplbctl capture: %s\n",
                         got ? got->value("error", std::string("read failed")).c_str() : got.message().c_str());
            rc = 1;
            break;
        }
        const json& frames = (*got)["result"]["frames"];
        for (const auto& fr : frames) {
            if (count && written >= count) break;
            auto data = control::base64_decode(fr.value("data", std::string()));
            if (!data) {
                std::fprintf(stderr, "siplbctl capture: malformed frame from the daemon\n");
                rc = 1;
                break;
            }
            if (!write_all(out, pcap_record(fr.value("ts_ns", uint64_t{0}), fr.value("len", 0u), *data))) {
                rc = 1;
                break;
            }
            ++written;
        }
        if (std::fflush(out) != 0) rc = 1;
        // A full read means more is waiting: read again at once.
        if (frames.size() < control::kCaptureReadMax) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (rc == 1 && out && std::ferror(out))
        std::fprintf(stderr, "siplbctl capture: writing %s failed\n", out_path.c_str());
    auto stopped = call(socket, control::encode_request(stop), timeout_ms);
    if (out && out != stdout) std::fclose(out);
    if (!stopped || !stopped->value("ok", false)) {
        std::fprintf(stderr, "siplbctl capture: stop: %s\n",
                     stopped ? stopped->value("error", std::string("failed")).c_str() : stopped.message().c_str());
        return rc ? rc : 1;
    }
    const uint64_t lost = (*stopped)["result"].value("lost", uint64_t{0});
    std::fprintf(stderr, "siplbctl capture: %llu frames written, %llu lost (capture ring full)\n",
                 static_cast<unsigned long long>(written), static_cast<unsigned long long>(lost));
    return rc;
}

CommandRegistrar reg{{"capture", "capture [filters] [--count N] [--duration S] -w FILE|-",
                      "pcap of balanced SIP datagrams (by pool, backend, Call-ID, client)", run_capture}};

}  // namespace
}  // namespace siplb::cli
