#include "sip_mix.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <charconv>
#include <ctime>
#include <random>

#include <xxhash.h>

#include <algorithm>

#ifdef SIPLB_HARNESS_HAVE_SIP
#include "siplb/sip/parser.h"
#endif
#ifdef SIPLB_HARNESS_HAVE_BALANCE
#include "siplb/balance/hash.h"
#include "siplb/balance/maglev.h"
#endif

namespace siplb::bench {
namespace {

bool is_request(std::string_view m) { return m.substr(0, 8) != "SIP/2.0 "; }

class LocalMix {
public:
    explicit LocalMix(uint64_t seed) : rng_(seed) {}

    // One call's worth, one registration, or one keep-alive, chosen with
    // weights close to a residential/trunking edge: most datagrams belong
    // to calls, a steady share are REGISTERs (with 401 challenges) and
    // OPTIONS pings.
    void next(std::vector<std::string>& out) {
        uint32_t r = pick(100);
        if (r < 55)
            call(out);
        else if (r < 85)
            registration(out);
        else
            options(out);
    }

private:
    std::mt19937_64 rng_;
    uint64_t n_ = 0;

    uint32_t pick(uint32_t n) { return static_cast<uint32_t>(rng_() % n); }
    std::string hex(size_t len) {
        static const char* d = "0123456789abcdef";
        std::string s(len, '0');
        for (auto& c : s) c = d[pick(16)];
        return s;
    }
    std::string host() {
        return "198.51.100." + std::to_string(10 + pick(200)) ;
    }
    std::string user() { return "+4640" + std::to_string(1000000 + pick(8999999)); }

    struct Dialog {
        std::string call_id, from_tag, to_tag, branch, cli, cli_user, dst_user, ua;
        bool compact;
        uint32_t cseq;
    };

    Dialog dialog() {
        Dialog d;
        ++n_;
        d.compact = pick(10) == 0;  // ~10% of UAs use compact headers
        uint32_t style = pick(3);
        d.cli = host();
        if (style == 0)
            d.call_id = hex(32) + "@" + d.cli;
        else if (style == 1)
            d.call_id = hex(8) + "-" + hex(4) + "-" + hex(4) + "-" + hex(4) + "-" + hex(12);
        else
            d.call_id = std::to_string(rng_() % 1000000000000ull) + "-" + hex(10) + "@pbx" +
                        std::to_string(pick(500)) + ".example.net";
        d.from_tag = hex(10);
        d.to_tag = hex(8);
        d.branch = "z9hG4bK" + hex(16);
        d.cli_user = user();
        d.dst_user = user();
        static const char* uas[] = {"Linphone/5.2.0 (belle-sip/5.2.0)", "Yealink SIP-T46U 108.86.0.20",
                                    "Asterisk PBX 20.5.0", "FPBX-16.0.40(18.20.2)",
                                    "Grandstream GXP2170 1.0.11.23", "MicroSIP/3.21.3"};
        d.ua = uas[pick(6)];
        d.cseq = 1 + pick(50);
        return d;
    }

    std::string hdr(const Dialog& d, std::string_view full, std::string_view compact) {
        return std::string(d.compact && !compact.empty() ? compact : full) + ": ";
    }

    std::string request(const Dialog& d, std::string_view method, uint32_t cseq, bool with_to_tag,
                        std::string_view body, std::string_view extra = {}) {
        std::string m;
        m.reserve(1200);
        m += std::string(method) + " sip:" + d.dst_user + "@sip.example.net SIP/2.0\r\n";
        m += hdr(d, "Via", "v") + "SIP/2.0/UDP " + d.cli + ":5060;branch=" + d.branch + ";rport\r\n";
        m += "Max-Forwards: 70\r\n";
        m += hdr(d, "From", "f") + "<sip:" + d.cli_user + "@sip.example.net>;tag=" + d.from_tag + "\r\n";
        m += hdr(d, "To", "t") + "<sip:" + d.dst_user + "@sip.example.net>";
        if (with_to_tag) m += ";tag=" + d.to_tag;
        m += "\r\n";
        m += hdr(d, "Call-ID", "i") + d.call_id + "\r\n";
        m += "CSeq: " + std::to_string(cseq) + " " + std::string(method) + "\r\n";
        m += hdr(d, "Contact", "m") + "<sip:" + d.cli_user + "@" + d.cli + ":5060>\r\n";
        m += "User-Agent: " + d.ua + "\r\n";
        m += extra;
        if (!body.empty()) m += hdr(d, "Content-Type", "c") + "application/sdp\r\n";
        m += hdr(d, "Content-Length", "l") + std::to_string(body.size()) + "\r\n\r\n";
        m += body;
        return m;
    }

    std::string response(const Dialog& d, std::string_view status, std::string_view method, uint32_t cseq,
                         bool with_to_tag, std::string_view body, std::string_view extra = {}) {
        std::string m;
        m.reserve(1200);
        m += "SIP/2.0 " + std::string(status) + "\r\n";
        m += hdr(d, "Via", "v") + "SIP/2.0/UDP " + d.cli + ":5060;branch=" + d.branch +
             ";rport=5060;received=" + d.cli + "\r\n";
        m += hdr(d, "From", "f") + "<sip:" + d.cli_user + "@sip.example.net>;tag=" + d.from_tag + "\r\n";
        m += hdr(d, "To", "t") + "<sip:" + d.dst_user + "@sip.example.net>";
        if (with_to_tag) m += ";tag=" + d.to_tag;
        m += "\r\n";
        m += hdr(d, "Call-ID", "i") + d.call_id + "\r\n";
        m += "CSeq: " + std::to_string(cseq) + " " + std::string(method) + "\r\n";
        m += "Server: siplb-bench-uas\r\n";
        m += extra;
        if (!body.empty()) m += hdr(d, "Content-Type", "c") + "application/sdp\r\n";
        m += hdr(d, "Content-Length", "l") + std::to_string(body.size()) + "\r\n\r\n";
        m += body;
        return m;
    }

    std::string sdp(const Dialog& d) {
        std::string port = std::to_string(10000 + 2 * pick(10000));
        return "v=0\r\no=- " + std::to_string(rng_() % 100000000) + " 1 IN IP4 " + d.cli +
               "\r\ns=-\r\nc=IN IP4 " + d.cli + "\r\nt=0 0\r\nm=audio " + port +
               " RTP/AVP 0 8 9 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
               "a=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
               "a=ptime:20\r\na=sendrecv\r\n";
    }

    void call(std::vector<std::string>& out) {
        Dialog d = dialog();
        std::string offer = sdp(d), answer = sdp(d);
        const char* allow =
            "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER, INFO, UPDATE\r\nSupported: replaces, timer\r\n";
        out.push_back(request(d, "INVITE", d.cseq, false, offer, allow));
        out.push_back(response(d, "100 Trying", "INVITE", d.cseq, false, {}));
        out.push_back(response(d, "180 Ringing", "INVITE", d.cseq, true, {}));
        if (pick(5) == 0) {  // unanswered: CANCEL
            out.push_back(request(d, "CANCEL", d.cseq, false, {}));
            out.push_back(response(d, "200 OK", "CANCEL", d.cseq, true, {}));
            out.push_back(response(d, "487 Request Terminated", "INVITE", d.cseq, true, {}));
            out.push_back(request(d, "ACK", d.cseq, true, {}));
            return;
        }
        out.push_back(response(d, "200 OK", "INVITE", d.cseq, true, answer, allow));
        d.branch = "z9hG4bK" + hex(16);
        out.push_back(request(d, "ACK", d.cseq, true, {}));
        d.branch = "z9hG4bK" + hex(16);
        out.push_back(request(d, "BYE", d.cseq + 1, true, {}));
        out.push_back(response(d, "200 OK", "BYE", d.cseq + 1, true, {}));
    }

    void registration(std::vector<std::string>& out) {
        Dialog d = dialog();
        d.dst_user = d.cli_user;
        out.push_back(request(d, "REGISTER", d.cseq, false, {}, "Expires: 3600\r\n"));
        std::string nonce = hex(32);
        out.push_back(response(d, "401 Unauthorized", "REGISTER", d.cseq, true, {},
                               "WWW-Authenticate: Digest realm=\"sip.example.net\", nonce=\"" + nonce +
                                   "\", algorithm=MD5, qop=\"auth\"\r\n"));
        d.branch = "z9hG4bK" + hex(16);
        out.push_back(request(d, "REGISTER", d.cseq + 1, false, {},
                              "Expires: 3600\r\nAuthorization: Digest username=\"" + d.cli_user +
                                  "\", realm=\"sip.example.net\", nonce=\"" + nonce +
                                  "\", uri=\"sip:sip.example.net\", response=\"" + hex(32) +
                                  "\", algorithm=MD5, cnonce=\"" + hex(8) + "\", qop=auth, nc=00000001\r\n"));
        out.push_back(response(d, "200 OK", "REGISTER", d.cseq + 1, true, {}, "Expires: 3600\r\n"));
    }

    void options(std::vector<std::string>& out) {
        Dialog d = dialog();
        out.push_back(request(d, "OPTIONS", d.cseq, false, {}, "Accept: application/sdp\r\n"));
        out.push_back(response(d, "200 OK", "OPTIONS", d.cseq, true, {}));
    }
};

}  // namespace

std::vector<std::string> build_message_mix(size_t count, uint64_t seed, bool requests_only) {
    std::vector<std::string> out;
    out.reserve(count);
#ifdef SIPLB_HARNESS_HAVE_SIP
    // The project generator; ask for more when filtering out responses.
    for (size_t want = count * (requests_only ? 2 : 1) + 16; out.size() < count; want *= 2) {
        out.clear();
        for (auto& m : siplb::sip::generate_message_mix(want, seed)) {
            std::string s(m.begin(), m.end());
            if (requests_only && !is_request(s)) continue;
            out.push_back(std::move(s));
            if (out.size() == count) break;
        }
    }
#else
    LocalMix mix(seed);
    std::vector<std::string> batch;
    while (out.size() < count) {
        batch.clear();
        mix.next(batch);
        for (auto& m : batch) {
            if (requests_only && !is_request(m)) continue;
            if (out.size() < count) out.push_back(std::move(m));
        }
    }
#endif
    return out;
}

const char* message_mix_source() {
#ifdef SIPLB_HARNESS_HAVE_SIP
    return "siplb_sip";
#else
    return "harness";
#endif
}

std::string_view find_call_id(std::string_view msg) noexcept {
#ifdef SIPLB_HARNESS_HAVE_SIP
    // The project's zero-copy parser: the same Call-ID span siplb hashes.
    sip::SipMessage m;
    sip::SipParser::parse(reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), m);
    if (!m.ok()) return {};
    return m.call_id.view(msg);
#else
    // Header lines start after CRLF; the header block ends at an empty line.
    size_t pos = msg.find('\n');
    while (pos != std::string_view::npos && pos + 1 < msg.size()) {
        size_t start = pos + 1;
        size_t end = msg.find('\n', start);
        std::string_view line = msg.substr(start, end == std::string_view::npos ? msg.npos : end - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;  // end of headers
        size_t colon = line.find(':');
        if (colon != std::string_view::npos) {
            std::string_view name = line.substr(0, colon);
            while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
            auto ieq = [](std::string_view a, std::string_view b) {
                if (a.size() != b.size()) return false;
                for (size_t i = 0; i < a.size(); ++i)
                    if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
                return true;
            };
            if (ieq(name, "call-id") || ieq(name, "i")) {
                std::string_view v = line.substr(colon + 1);
                while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
                while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
                return v;
            }
        }
        pos = end;
    }
    return {};
#endif
}

std::optional<sockaddr_in> parse_v4_endpoint(std::string_view text) {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    std::string ip(text.substr(0, colon));
    unsigned port = 0;
    auto ps = text.substr(colon + 1);
    auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
    if (ec != std::errc() || p != ps.data() + ps.size() || port == 0 || port > 65535) return std::nullopt;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) return std::nullopt;
    return sa;
}

std::optional<std::vector<sockaddr_in>> parse_backends(std::string_view text) {
    std::vector<sockaddr_in> out;
    unsigned n = 1;
    size_t star = text.find('*');
    if (star != std::string_view::npos) {
        auto ns = text.substr(star + 1);
        auto [p, ec] = std::from_chars(ns.data(), ns.data() + ns.size(), n);
        if (ec != std::errc() || p != ns.data() + ns.size() || n == 0 || n > 60000) return std::nullopt;
        text = text.substr(0, star);
    }
    auto base = parse_v4_endpoint(text);
    if (!base) return std::nullopt;
    unsigned port0 = ntohs(base->sin_port);
    if (port0 + n - 1 > 65535) return std::nullopt;
    for (unsigned i = 0; i < n; ++i) {
        sockaddr_in sa = *base;
        sa.sin_port = htons(static_cast<uint16_t>(port0 + i));
        out.push_back(sa);
    }
    return out;
}

double now_s() noexcept {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace siplb::bench

namespace siplb::bench {

std::string endpoint_identity(const sockaddr_in& sa) {
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(sa.sin_port));
}

#ifdef SIPLB_HARNESS_HAVE_BALANCE
struct BackendChooser::Impl {
    balance::MaglevTable table;
    std::vector<uint32_t> sorted_to_caller;  // Maglev index (sorted identities) -> caller's index
    uint64_t seed;
};

BackendChooser::BackendChooser(const std::vector<std::string>& ids, uint64_t seed, uint32_t table_size)
    : impl_(new Impl) {
    impl_->seed = seed;
    std::vector<balance::MaglevBackend> bs;
    for (auto& id : ids) bs.push_back({id, 1});
    auto t = balance::MaglevTable::build(bs, table_size, seed);
    if (!t) {
        ok_ = false;
        return;
    }
    impl_->table = std::move(t.value());
    std::vector<uint32_t> order(ids.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return ids[a] < ids[b]; });
    impl_->sorted_to_caller = order;
}
BackendChooser::~BackendChooser() { delete impl_; }
uint64_t BackendChooser::hash(std::string_view call_id) const noexcept {
    return balance::hash_call_id(call_id, impl_->seed);
}
uint32_t BackendChooser::pick_hash(uint64_t h) const noexcept {
    return impl_->sorted_to_caller[impl_->table.lookup(h)];
}
const char* BackendChooser::algorithm() { return "xxh3+maglev (siplb_balance)"; }
#else
struct BackendChooser::Impl {
    uint32_t n;
    uint64_t seed;
};
BackendChooser::BackendChooser(const std::vector<std::string>& ids, uint64_t seed, uint32_t)
    : impl_(new Impl{static_cast<uint32_t>(ids.size()), seed}) {
    ok_ = !ids.empty();
}
BackendChooser::~BackendChooser() { delete impl_; }
uint64_t BackendChooser::hash(std::string_view call_id) const noexcept {
    return XXH3_64bits_withSeed(call_id.data(), call_id.size(), impl_->seed);
}
uint32_t BackendChooser::pick_hash(uint64_t h) const noexcept { return jump_hash(h, impl_->n); }
const char* BackendChooser::algorithm() { return "xxh3+jump (harness)"; }
#endif

}  // namespace siplb::bench

namespace siplb::bench {

std::string build_udp_frame(const uint8_t dst_mac[6], const uint8_t src_mac[6], const sockaddr_in& src,
                            const sockaddr_in& dst, std::string_view payload) {
    std::string f(14 + 20 + 8 + payload.size(), '\0');
    auto* p = reinterpret_cast<uint8_t*>(f.data());
    std::memcpy(p, dst_mac, 6);
    std::memcpy(p + 6, src_mac, 6);
    p[12] = 0x08;  // IPv4
    uint8_t* ip = p + 14;
    uint16_t tot = static_cast<uint16_t>(20 + 8 + payload.size());
    ip[0] = 0x45;
    ip[2] = static_cast<uint8_t>(tot >> 8);
    ip[3] = static_cast<uint8_t>(tot);
    ip[6] = 0x40;  // DF
    ip[8] = 64;
    ip[9] = 17;    // UDP
    std::memcpy(ip + 12, &src.sin_addr, 4);
    std::memcpy(ip + 16, &dst.sin_addr, 4);
    uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2) sum += static_cast<uint32_t>(ip[i] << 8 | ip[i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    uint16_t csum = static_cast<uint16_t>(~sum);
    ip[10] = static_cast<uint8_t>(csum >> 8);
    ip[11] = static_cast<uint8_t>(csum);
    uint8_t* udp = ip + 20;
    std::memcpy(udp, &src.sin_port, 2);
    std::memcpy(udp + 2, &dst.sin_port, 2);
    uint16_t ulen = static_cast<uint16_t>(8 + payload.size());
    udp[4] = static_cast<uint8_t>(ulen >> 8);
    udp[5] = static_cast<uint8_t>(ulen);
    std::memcpy(udp + 8, payload.data(), payload.size());
    return f;
}

bool parse_mac(std::string_view text, uint8_t out[6]) {
    unsigned v[6];
    std::string t(text);
    if (std::sscanf(t.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return false;
    for (int i = 0; i < 6; ++i) {
        if (v[i] > 255) return false;
        out[i] = static_cast<uint8_t>(v[i]);
    }
    return true;
}

bool interface_mac(const std::string& ifname, uint8_t out[6], int* ifindex) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return false;
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname.c_str());
    bool ok = ioctl(fd, SIOCGIFHWADDR, &ifr) == 0;
    if (ok) std::memcpy(out, ifr.ifr_hwaddr.sa_data, 6);
    if (ok && ifindex) {
        ok = ioctl(fd, SIOCGIFINDEX, &ifr) == 0;
        *ifindex = ifr.ifr_ifindex;
    }
    close(fd);
    return ok;
}

}  // namespace siplb::bench
