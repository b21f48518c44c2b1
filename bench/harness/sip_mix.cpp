#include "sip_mix.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "siplb/balance/hash.h"
#include "siplb/balance/maglev.h"
#include "siplb/sip/parser.h"
#include "support/message_mix.h"

namespace siplb::bench {
namespace {

bool is_request(std::string_view m) { return m.substr(0, 8) != "SIP/2.0 "; }

}  // namespace

std::vector<std::string> build_message_mix(size_t count, uint64_t seed, bool requests_only) {
    std::vector<std::string> out;
    out.reserve(count);
    // Ask for more when filtering out responses.
    for (size_t want = count * (requests_only ? 2 : 1) + 16; out.size() < count; want *= 2) {
        out.clear();
        for (auto& m : test::generate_message_mix(want, seed)) {
            if (requests_only && !is_request(m)) continue;
            out.push_back(std::move(m));
            if (out.size() == count) break;
        }
    }
    return out;
}

std::string_view find_call_id(std::string_view msg) noexcept {
    // The project's zero-copy parser: the same Call-ID span siplb hashes.
    sip::SipMessage m;
    sip::SipParser::parse(reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), m);
    if (!m.ok()) return {};
    return m.call_id.view(msg);
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

}  // namespace siplb::bench

namespace siplb::bench {

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
