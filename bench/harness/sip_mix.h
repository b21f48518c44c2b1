// Pre-built SIP datagrams for the end-to-end harness, and the small helpers
// the harness programs share (Call-ID scan, backend choice, endpoint
// parsing). The message mix is the test-support generator
// (siplb_test_support_dep, generate_message_mix): calls (INVITE/ACK/BYE with
// SDP), registrations and keep-alive OPTIONS, with a share of compact headers.
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

// The Call-ID siplb's parser finds (full "Call-ID:" or compact "i:" form);
// empty when the message does not parse or has none.
std::string_view find_call_id(std::string_view msg) noexcept;

// "192.0.2.1:5060" -> sockaddr_in.
std::optional<sockaddr_in> parse_v4_endpoint(std::string_view text);

// Backends: "IP:PORT" or "IP:PORT*N" (N consecutive ports).
std::optional<std::vector<sockaddr_in>> parse_backends(std::string_view text);

// Consistent choice of backend for a Call-ID, as siplb makes it: XXH3 of the
// Call-ID with the pool seed into a Maglev table (siplb_balance).
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

bool parse_mac(std::string_view text, uint8_t out[6]);
// MAC address of interface `ifname`; false when it does not exist.
bool interface_mac(const std::string& ifname, uint8_t out[6], int* ifindex);

// Monotonic seconds.
double now_s() noexcept;

}  // namespace siplb::bench
