// The value a pool's balancing key (key_spec.h) takes from a message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "siplb/balance/key_spec.h"
#include "siplb/sip/parser.h"

namespace siplb::balance {

// The bytes `key` takes from a parsed message (payload: the UDP payload the
// spans point into; src_addr: the source IP address bytes, 4 or 16). Empty
// when the message lacks the field. call_id always answers.
std::string_view key_value(const KeySpec& key, const uint8_t* payload, size_t len, const sip::SipMessage& msg,
                           std::string_view src_addr) noexcept;

// The parsed headers key_value() reads for `key`.
sip::HeaderSet headers_read(const KeySpec& key) noexcept;

}  // namespace siplb::balance
