// Generated SIP traffic for tests and benchmarks (not part of the product).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace siplb::test {

// Realistic generated traffic, in call order; all messages of one call share
// a Call-ID. Deterministic for a given seed on every platform. Mix: INVITE
// with SDP, 100/180/200, ACK, BYE and its 200, REGISTER challenged with 401
// then accepted, OPTIONS pings; some calls use compact header forms, some
// carry 10-Via stacks; 300-1400 bytes each.
std::vector<std::string> generate_message_mix(size_t count, uint64_t seed);

}  // namespace siplb::test
