#include "siplb/common/endpoint.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>

namespace siplb {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    char buf[INET6_ADDRSTRLEN];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    IpAddress a;
    if (text.find(':') == std::string_view::npos) {
        if (inet_pton(AF_INET, buf, a.bytes.data()) != 1) return std::nullopt;
        a.family = Family::v4;
        return a;
    }
    if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
    a.family = Family::v6;
    return a;
}

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN];
    const char* r = inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
    return r ? std::string(r) : std::string("?");
}

static std::optional<uint16_t> parse_port(std::string_view s) {
    unsigned v = 0;
    if (s.empty() || s.size() > 5) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
    return static_cast<uint16_t>(v);
}

std::optional<Endpoint> Endpoint::parse(std::string_view text, uint16_t default_port, bool allow_no_port) {
    Endpoint e;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        auto ip = IpAddress::parse(text.substr(1, close - 1));
        if (!ip || !ip->is_v6()) return std::nullopt;
        e.ip = *ip;
        auto rest = text.substr(close + 1);
        if (rest.empty()) {
            if (!allow_no_port || default_port == 0) return std::nullopt;
            e.port = default_port;
            return e;
        }
        if (rest.front() != ':') return std::nullopt;
        auto port = parse_port(rest.substr(1));
        if (!port) return std::nullopt;
        e.port = *port;
        return e;
    }
    auto colon = text.find(':');
    if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos) {
        // Bare IPv6 without brackets: only valid as an address with no port.
        auto ip = IpAddress::parse(text);
        if (!ip || !allow_no_port || default_port == 0) return std::nullopt;
        e.ip = *ip;
        e.port = default_port;
        return e;
    }
    if (colon == std::string_view::npos) {
        auto ip = IpAddress::parse(text);
        if (!ip || !allow_no_port || default_port == 0) return std::nullopt;
        e.ip = *ip;
        e.port = default_port;
        return e;
    }
    auto ip = IpAddress::parse(text.substr(0, colon));
    auto port = parse_port(text.substr(colon + 1));
    if (!ip || !port) return std::nullopt;
    e.ip = *ip;
    e.port = *port;
    return e;
}

std::string Endpoint::to_string() const {
    // Built with snprintf: GCC 12 reports a false -Wrestrict on chained
    // std::string operator+ at -O3.
    char buf[INET6_ADDRSTRLEN + 10];
    const std::string addr = ip.to_string();
    std::snprintf(buf, sizeof buf, ip.is_v4() ? "%s:%u" : "[%s]:%u", addr.c_str(), unsigned{port});
    return buf;
}

std::optional<Prefix> Prefix::parse(std::string_view text, bool allow_host_bits) {
    auto slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    auto ip = IpAddress::parse(text.substr(0, slash));
    if (!ip) return std::nullopt;
    auto len_text = text.substr(slash + 1);
    unsigned len = 0;
    auto [p, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
    if (len_text.empty() || ec != std::errc() || p != len_text.data() + len_text.size()) return std::nullopt;
    if (len > (ip->is_v4() ? 32u : 128u)) return std::nullopt;
    Prefix pf{*ip, static_cast<uint8_t>(len)};
    if (!allow_host_bits && !pf.contains(*ip)) return std::nullopt;
    if (!allow_host_bits) {
        // contains() masks both sides; check that the host part is zero.
        const unsigned total = ip->is_v4() ? 4 : 16;
        for (unsigned i = 0; i < total; ++i) {
            unsigned bit0 = i * 8;
            uint8_t mask = bit0 >= len ? 0
                                       : (bit0 + 8 <= len ? 0xff : static_cast<uint8_t>(0xff << (8 - (len - bit0))));
            if (ip->bytes[i] & static_cast<uint8_t>(~mask)) return std::nullopt;
        }
    }
    return pf;
}

bool Prefix::contains(const IpAddress& a) const noexcept {
    if (a.family != ip.family) return false;
    unsigned full = length / 8, rem = length % 8;
    if (std::memcmp(a.bytes.data(), ip.bytes.data(), full) != 0) return false;
    if (rem == 0) return true;
    uint8_t mask = static_cast<uint8_t>(0xff << (8 - rem));
    return (a.bytes[full] & mask) == (ip.bytes[full] & mask);
}

std::string Prefix::to_string() const {
    char buf[INET6_ADDRSTRLEN + 5];
    const std::string addr = ip.to_string();
    std::snprintf(buf, sizeof buf, "%s/%u", addr.c_str(), unsigned{length});
    return buf;
}

std::optional<MacAddress> MacAddress::parse(std::string_view text) {
    if (text.size() != 17) return std::nullopt;
    MacAddress m;
    for (int i = 0; i < 6; ++i) {
        if (i > 0 && text[i * 3 - 1] != ':') return std::nullopt;
        unsigned v = 0;
        auto s = text.substr(i * 3, 2);
        auto [p, ec] = std::from_chars(s.data(), s.data() + 2, v, 16);
        if (ec != std::errc() || p != s.data() + 2) return std::nullopt;
        m.bytes[i] = static_cast<uint8_t>(v);
    }
    return m;
}

std::string MacAddress::to_string() const {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2], bytes[3], bytes[4],
                  bytes[5]);
    return buf;
}

}  // namespace siplb
