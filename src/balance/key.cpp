#include "siplb/balance/key.h"

namespace siplb::balance {

namespace {
bool is_token_name(std::string_view s) {
    if (s.empty()) return false;
    for (const char c : s) {
        const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && std::string_view("-.!%*_+`'~").find(c) == std::string_view::npos) return false;
    }
    return true;
}
// Appended piecewise: GCC 12 warns (-Wrestrict, falsely) on operator+ chains here.
std::string quoted(std::string_view text) {
    std::string s;
    s.reserve(text.size() + 2);
    s.push_back('"');
    s.append(text);
    s.push_back('"');
    return s;
}
}  // namespace

Result<KeySpec> parse_key_spec(std::string_view text) {
    using R = Result<KeySpec>;
    KeySpec k;
    if (text == "call_id") return k;
    if (text == "from_user") return k.kind = KeyKind::from_user, k;
    if (text == "to_user") return k.kind = KeyKind::to_user, k;
    if (text == "ruri_user") return k.kind = KeyKind::ruri_user, k;
    if (text == "source_ip") return k.kind = KeyKind::source_ip, k;
    if (text.starts_with("header:")) {
        const std::string_view name = text.substr(7);
        if (!is_token_name(name)) return R::fail(quoted(text).append(": the header name must be a SIP token"));
        k.kind = KeyKind::header;
        k.header = std::string(name);
        return k;
    }
    return R::fail(
        quoted(text).append(" is not a balancing key (call_id, from_user, to_user, ruri_user, source_ip, header:NAME)"));
}

std::string to_string(const KeySpec& key) {
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

std::string_view key_value(const KeySpec& key, const uint8_t* d, size_t len, const sip::SipMessage& m,
                           std::string_view src_addr) noexcept {
    switch (key.kind) {
        case KeyKind::call_id: return m.call_id.view(d);
        case KeyKind::from_user: return m.from.empty() ? std::string_view{} : sip::uri_user(d, m.from).view(d);
        case KeyKind::to_user: return m.to.empty() ? std::string_view{} : sip::uri_user(d, m.to).view(d);
        case KeyKind::ruri_user:
            return m.kind == sip::Kind::request ? sip::uri_user(d, m.request_uri).view(d) : std::string_view{};
        case KeyKind::source_ip: return src_addr;
        case KeyKind::header: return sip::find_header(d, len, m, key.header).view(d);
    }
    return {};
}

}  // namespace siplb::balance
