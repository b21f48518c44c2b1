// sip_mix_pcap: writes the requests of the realistic SIP mix as Ethernet
// frames to a pcap file, as many clients would send them to one VIP. The
// daemon benchmark (scripts/bench, "daemon" rows) replays it with net_pcap
// infinite_rx=1 into the shipped siplb.
//
//   sip_mix_pcap --out FILE --vip 198.51.100.10:5060 --dst-mac MAC
//                [--count 4096] [--clients 1000] [--seed 1]
// Clients are 198.18.(i / 250).(1 + i % 250):5060 (RFC 2544's benchmarking
// range): every message of a call comes from the same client (chosen by the
// Call-ID's hash), so per-source state (rate limits, affinity) sees a
// realistic population rather than one address. Prints JSON on stdout.
#include <pcap/pcap.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sip_mix.h"
#include "support/frame_builder.h"

using namespace siplb::bench;

namespace {

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr,
                 "sip_mix_pcap: %s\nusage: sip_mix_pcap --out FILE --vip IP:PORT --dst-mac MAC [--count N (<=1000000)] "
                 "[--clients N (1..60000)] [--seed N]\n",
                 msg);
    std::exit(2);
}

// A positive integer within [lo, hi], or usage().
size_t number(const char* text, size_t lo, size_t hi, const char* what) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) usage(what);
    return static_cast<size_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
    std::string out, vip_text, mac_text;
    size_t count = 4096, clients = 1000, seed = 1;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> const char* {
            if (i + 1 >= argc) usage(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "--out")
            out = val();
        else if (a == "--vip")
            vip_text = val();
        else if (a == "--dst-mac")
            mac_text = val();
        else if (a == "--count")
            count = number(val(), 1, 1000000, "--count: 1..1000000");
        else if (a == "--clients")
            clients = number(val(), 1, 60000, "--clients: 1..60000");
        else if (a == "--seed")
            seed = number(val(), 0, ~size_t{0}, "--seed: a number");
        else
            usage(("unknown argument " + a).c_str());
    }
    if (out.empty()) usage("--out is required");
    const auto vip = siplb::Endpoint::parse(vip_text);
    if (!vip || !vip->ip.is_v4()) usage("--vip needs an IPv4 IP:PORT");
    siplb::MacAddress dst_mac;
    if (!parse_mac(mac_text, dst_mac.bytes.data())) usage("--dst-mac needs aa:bb:cc:dd:ee:ff");
    const siplb::MacAddress src_mac{{0x02, 0, 0x5e, 0, 0x53, 0xfe}};

    pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
    pcap_dumper_t* dump = pcap_dump_open(dead, out.c_str());
    if (!dump) {
        std::fprintf(stderr, "sip_mix_pcap: %s: %s\n", out.c_str(), pcap_geterr(dead));
        pcap_close(dead);
        return 1;
    }
    size_t frames = 0, bytes = 0, no_call_id = 0;
    for (const auto& m : build_message_mix(count, seed, /*requests_only=*/true)) {
        std::string_view call_id = find_call_id(m);
        if (call_id.empty()) ++no_call_id;
        const size_t c = XXH3_64bits(call_id.data(), call_id.size()) % clients;
        const auto src =
            siplb::Endpoint::parse("198.18." + std::to_string(c / 250) + "." + std::to_string(1 + c % 250) + ":5060");
        auto f =
            siplb::test::build_frame({.src_mac = src_mac, .dst_mac = dst_mac, .src = *src, .dst = *vip, .payload = m});
        pcap_pkthdr hdr{};
        hdr.caplen = hdr.len = static_cast<uint32_t>(f.bytes.size());
        pcap_dump(reinterpret_cast<u_char*>(dump), &hdr, f.bytes.data());
        ++frames;
        bytes += f.bytes.size();
    }
    pcap_dump_close(dump);
    pcap_close(dead);
    std::printf("{\"frames\": %zu, \"avg_frame_bytes\": %zu, \"clients\": %zu, \"without_call_id\": %zu}\n", frames,
                frames ? bytes / frames : 0, clients, no_call_id);
    return 0;
}
