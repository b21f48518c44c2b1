// Pre-built SIP datagrams for the end-to-end harness, and the small helpers
// the harness programs share (Call-ID scan, jump hash, endpoint parsing).
// The message mix comes from the project's generator (siplb_sip_dep,
// generate_message_mix) when it is built, else from a local generator with
// the same shape: calls (INVITE/ACK/BYE with SDP), registrations and
// keep-alive OPTIONS, with a share of compact headers.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace siplb::bench {

// A realistic mix of `count` SIP datagrams. requests_only keeps only
// requests (what a client sends towards the balancer's VIP).
std::vector<std::string> build_message_mix(size_t count, uint64_t seed, bool requests_only);

// Where the mix came from ("siplb_sip" or "harness").
const char* message_mix_source();

// The Call-ID header value (full "Call-ID:" or compact "i:" form, any case,
// surrounding whitespace trimmed); empty when the message has none.
std::string_view find_call_id(std::string_view msg) noexcept;

// Lamping & Veach jump consistent hash.
inline uint32_t jump_hash(uint64_t key, uint32_t buckets) noexcept {
    int64_t b = -1, j = 0;
    while (j < static_cast<int64_t>(buckets)) {
        b = j;
        key = key * 2862933555777941757ULL + 1;
        j = static_cast<int64_t>(static_cast<double>(b + 1) *
                                 (static_cast<double>(1LL << 31) / static_cast<double>((key >> 33) + 1)));
    }
    return static_cast<uint32_t>(b);
}

// "192.0.2.1:5060" -> sockaddr_in.
std::optional<sockaddr_in> parse_v4_endpoint(std::string_view text);

// Backends: "IP:PORT" or "IP:PORT*N" (N consecutive ports).
std::optional<std::vector<sockaddr_in>> parse_backends(std::string_view text);

// Consistent choice of backend for a Call-ID, as siplb makes it: XXH3 of the
// Call-ID with the pool seed into a Maglev table (the project's balance
// library when built), else XXH3 into a jump consistent hash.
class BackendChooser {
public:
    // identities: "IP:PORT" (Endpoint::to_string()), index = caller's order.
    BackendChooser(const std::vector<std::string>& identities, uint64_t seed, uint32_t table_size = 65537);
    ~BackendChooser();
    BackendChooser(const BackendChooser&) = delete;
    BackendChooser& operator=(const BackendChooser&) = delete;
    uint64_t hash(std::string_view call_id) const noexcept;
    // Caller's index of the chosen backend.
    uint32_t pick_hash(uint64_t h) const noexcept;
    uint32_t pick(std::string_view call_id) const noexcept { return pick_hash(hash(call_id)); }
    static const char* algorithm();
    bool ok() const noexcept { return ok_; }

private:
    struct Impl;
    Impl* impl_;
    bool ok_ = true;
};

std::string endpoint_identity(const sockaddr_in& sa);

// Ethernet + IPv4 + UDP frame around `payload` (UDP checksum 0, allowed
// for IPv4), for the AF_PACKET modes of the load generator.
std::string build_udp_frame(const uint8_t dst_mac[6], const uint8_t src_mac[6], const sockaddr_in& src,
                            const sockaddr_in& dst, std::string_view payload);
bool parse_mac(std::string_view text, uint8_t out[6]);
// MAC address of interface `ifname`; false when it does not exist.
bool interface_mac(const std::string& ifname, uint8_t out[6], int* ifindex);

// Monotonic seconds.
double now_s() noexcept;

}  // namespace siplb::bench
