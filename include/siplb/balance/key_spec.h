// What a pool hashes to choose the backend of a new dialog or transaction
// (Kamailio dispatcher algorithms 0, 1, 2, 3, 5 and 7). Whatever the key,
// every later message of a call follows the affinity entry of its Call-ID.
// Header-only, like forward_mode.h: the configuration reads and writes it
// without linking the balancing core.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "siplb/common/result.h"

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

namespace detail {
inline bool is_token_name(std::string_view s) {
    if (s.empty()) return false;
    for (const char c : s) {
        const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && std::string_view("-.!%*_+`'~").find(c) == std::string_view::npos) return false;
    }
    return true;
}
// Appended piecewise: GCC 12 warns (-Wrestrict, falsely) on operator+ chains here.
inline std::string quoted(std::string_view text) {
    std::string s;
    s.reserve(text.size() + 2);
    s.push_back('"');
    s.append(text);
    s.push_back('"');
    return s;
}
}  // namespace detail

// "call_id", "from_user", "to_user", "ruri_user", "source_ip" or
// "header:NAME" (NAME a header-name token; its compact form, if any, is
// found too).
inline Result<KeySpec> parse_key_spec(std::string_view text) {
    using R = Result<KeySpec>;
    KeySpec k;
    if (text == "call_id") return k;
    if (text == "from_user") return k.kind = KeyKind::from_user, k;
    if (text == "to_user") return k.kind = KeyKind::to_user, k;
    if (text == "ruri_user") return k.kind = KeyKind::ruri_user, k;
    if (text == "source_ip") return k.kind = KeyKind::source_ip, k;
    if (text.starts_with("header:")) {
        const std::string_view name = text.substr(7);
        if (!detail::is_token_name(name))
            return R::fail(detail::quoted(text).append(": the header name must be a SIP token"));
        k.kind = KeyKind::header;
        k.header = std::string(name);
        return k;
    }
    return R::fail(detail::quoted(text).append(
        " is not a balancing key (call_id, from_user, to_user, ruri_user, source_ip, header:NAME)"));
}

inline std::string to_string(const KeySpec& key) {
    switch (key.kind) {
        case KeyKind::call_id: return "call_id";
        case KeyKind::from_user: return "from_user";
        case KeyKind::to_user: return "to_user";
        case KeyKind::ruri_user: return "ruri_user";
        case KeyKind::source_ip: return "source_ip";
        case KeyKind::header: return "header:" + key.header;
    }
    return "call_id";
}

}  // namespace siplb::balance
