#include "siplb/balance/key.h"

namespace siplb::balance {

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

sip::HeaderSet headers_read(const KeySpec& key) noexcept {
    switch (key.kind) {
        case KeyKind::from_user: return sip::HeaderSet::only(sip::HeaderSet::from);
        case KeyKind::to_user: return sip::HeaderSet::only(sip::HeaderSet::to);
        case KeyKind::call_id:
        case KeyKind::ruri_user:
        case KeyKind::source_ip:
        case KeyKind::header: break;
    }
    return sip::HeaderSet::only(0);
}

}  // namespace siplb::balance
