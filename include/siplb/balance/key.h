// What a pool hashes to choose the backend of a new dialog or transaction
// (Kamailio dispatcher algorithms 0, 1, 2, 3, 5 and 7). Whatever the key,
// every later message of a call follows the affinity entry of its Call-ID.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "siplb/common/result.h"
#include "siplb/sip/parser.h"

namespace siplb::balance {

enum class KeyKind : uint8_t {
    call_id,    // the Call-ID (the default): one call, one backend
    from_user,  // user part of the From URI: all calls of a caller
    to_user,    // user part of the To URI: all calls to a callee or number
    ruri_user,  // user part of the Request-URI (requests only)
    source_ip,  // the client's IP address, without the port: a trunk or a PBX
    header,     // the trimmed value of a named header (a trunk or tenant id)
};

struct KeySpec {
    KeyKind kind = KeyKind::call_id;
    std::string header;  // KeyKind::header: the header's name as configured
    bool operator==(const KeySpec&) const = default;
};

// "call_id", "from_user", "to_user", "ruri_user", "source_ip" or
// "header:NAME" (NAME a header-name token; its compact form, if any, is
// found too).
Result<KeySpec> parse_key_spec(std::string_view text);
std::string to_string(const KeySpec& key);

// The bytes `key` takes from a parsed message (payload: the UDP payload the
// spans point into; src_addr: the source IP address bytes, 4 or 16). Empty
// when the message lacks the field. call_id always answers.
std::string_view key_value(const KeySpec& key, const uint8_t* payload, size_t len, const sip::SipMessage& msg,
                           std::string_view src_addr) noexcept;

}  // namespace siplb::balance
