// IP addresses, endpoints (address:port) and prefixes shared by config,
// balancing and the dataplane. Addresses are kept in network byte order so
// the dataplane can compare them with packet bytes directly.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace siplb {

struct IpAddress {
    enum class Family : uint8_t { v4 = 4, v6 = 6 };

    Family family = Family::v4;
    // v4: first 4 bytes, network order, rest zero. v6: all 16 bytes.
    std::array<uint8_t, 16> bytes{};

    static IpAddress from_v4_be(uint32_t be) noexcept {
        IpAddress a;
        std::memcpy(a.bytes.data(), &be, 4);
        return a;
    }
    static IpAddress from_v6(const uint8_t b[16]) noexcept {
        IpAddress a;
        a.family = Family::v6;
        std::memcpy(a.bytes.data(), b, 16);
        return a;
    }
    bool is_v4() const noexcept { return family == Family::v4; }
    bool is_v6() const noexcept { return family == Family::v6; }
    uint32_t v4_be() const noexcept {
        uint32_t v;
        std::memcpy(&v, bytes.data(), 4);
        return v;
    }
    // "192.0.2.1" or "2001:db8::1" (no brackets).
    static std::optional<IpAddress> parse(std::string_view text);
    std::string to_string() const;

    auto operator<=>(const IpAddress&) const = default;
    bool operator==(const IpAddress&) const = default;
};

// An address as two native 64-bit words, as IpAddress lays it out (v4 in
// the first 4 bytes, the rest zero), read straight from the 4 or 16 address
// bytes of a packet: per-packet lookups compare these instead of building an
// IpAddress, whose narrow stores read back as words stall store forwarding.
struct AddressWords {
    uint64_t lo = 0, hi = 0;
    bool operator==(const AddressWords&) const = default;
};
inline AddressWords address_words(const uint8_t* addr, bool v6) noexcept {
    AddressWords w;
    if (v6) {
        std::memcpy(&w.lo, addr, 8);
        std::memcpy(&w.hi, addr + 8, 8);
    } else {
        uint32_t a;
        std::memcpy(&a, addr, 4);
        w.lo = a;
    }
    return w;
}
inline AddressWords address_words(const IpAddress& ip) noexcept { return address_words(ip.bytes.data(), true); }

struct Endpoint {
    IpAddress ip;
    uint16_t port = 0;

    // "192.0.2.1:5060", "[2001:db8::1]:5060"; when allow_no_port is set a bare
    // address ("192.0.2.1", "2001:db8::1", "[2001:db8::1]") takes default_port.
    static std::optional<Endpoint> parse(std::string_view text, uint16_t default_port = 0, bool allow_no_port = false);
    // Canonical text: "192.0.2.1:5060" / "[2001:db8::1]:5060". This is the
    // backend identity the Maglev table hashes, so it must stay stable.
    std::string to_string() const;

    auto operator<=>(const Endpoint&) const = default;
    bool operator==(const Endpoint&) const = default;
};

struct Prefix {
    IpAddress ip;
    uint8_t length = 0;

    // "198.51.100.0/24", "2001:db8::/32"; host bits must be zero unless
    // allow_host_bits (interface addresses like "198.51.100.1/24").
    static std::optional<Prefix> parse(std::string_view text, bool allow_host_bits = false);
    bool contains(const IpAddress& a) const noexcept;
    std::string to_string() const;

    auto operator<=>(const Prefix&) const = default;
    bool operator==(const Prefix&) const = default;
};

struct MacAddress {
    std::array<uint8_t, 6> bytes{};
    static std::optional<MacAddress> parse(std::string_view text);  // "02:00:00:00:00:01"
    std::string to_string() const;
    auto operator<=>(const MacAddress&) const = default;
    bool operator==(const MacAddress&) const = default;
};

}  // namespace siplb

template <>
struct std::hash<siplb::IpAddress> {
    size_t operator()(const siplb::IpAddress& a) const noexcept {
        uint64_t lo, hi;
        std::memcpy(&lo, a.bytes.data(), 8);
        std::memcpy(&hi, a.bytes.data() + 8, 8);
        return std::hash<uint64_t>{}(lo * 0x9E3779B97F4A7C15ull ^ hi ^ static_cast<uint64_t>(a.family));
    }
};

template <>
struct std::hash<siplb::Endpoint> {
    size_t operator()(const siplb::Endpoint& e) const noexcept {
        return std::hash<siplb::IpAddress>{}(e.ip) * 31u + e.port;
    }
};
