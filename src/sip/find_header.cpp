// Lookup of any named header in an already parsed message, for consumers
// (protection rules, health-check replies) that need headers the parser does
// not extract itself. Not on the balancing hot path, so a plain line walk.
#include <cstring>

#include "siplb/sip/parser.h"

#include "lex.h"

namespace siplb::sip {
namespace {

struct CompactForm {
    char letter;
    std::string_view name;  // lowercase
};

// RFC 3261 section 20 and the IANA SIP header registry.
constexpr CompactForm kCompactForms[] = {
    {'a', "accept-contact"},
    {'b', "referred-by"},
    {'c', "content-type"},
    {'d', "request-disposition"},
    {'e', "content-encoding"},
    {'f', "from"},
    {'i', "call-id"},
    {'j', "reject-contact"},
    {'k', "supported"},
    {'l', "content-length"},
    {'m', "contact"},
    {'n', "identity-info"},
    {'o', "event"},
    {'r', "refer-to"},
    {'s', "subject"},
    {'t', "to"},
    {'u', "allow-events"},
    {'v', "via"},
    {'x', "session-expires"},
    {'y', "identity"},
};

inline uint8_t lower(uint8_t c) noexcept { return (c >= 'A' && c <= 'Z') ? uint8_t(c | 0x20) : c; }

bool ci_equal(const uint8_t* p, size_t n, std::string_view s) noexcept {
    if (n != s.size()) return false;
    for (size_t i = 0; i < n; ++i)
        if (lower(p[i]) != lower(uint8_t(s[i]))) return false;
    return true;
}

inline bool is_wsp(uint8_t c) noexcept { return c == ' ' || c == '\t'; }

}  // namespace

Span find_header(const uint8_t* d, size_t n, const SipMessage& msg, std::string_view name) noexcept {
    if (msg.headers_begin == 0 || name.empty() || n == 0) return Span{};
    const size_t limit = (msg.headers_end != 0 && msg.headers_end <= n) ? msg.headers_end : n;

    // The other spelling of the same header, if it has a compact form.
    std::string_view alias;
    for (const auto& cf : kCompactForms) {
        if (name.size() == 1 && lower(uint8_t(name[0])) == uint8_t(cf.letter))
            alias = cf.name;
        else if (ci_equal(reinterpret_cast<const uint8_t*>(name.data()), name.size(), cf.name))
            alias = std::string_view(&cf.letter, 1);
        if (!alias.empty()) break;
    }

    size_t ls = msg.headers_begin;
    while (ls < limit) {
        const uint8_t* lfp = static_cast<const uint8_t*>(std::memchr(d + ls, '\n', limit - ls));
        const size_t le = lfp ? size_t(lfp - d) : limit;
        size_t ce = le;
        if (ce > ls && d[ce - 1] == '\r') --ce;
        if (ce == ls) break;  // end of headers
        if (is_wsp(d[ls])) {
            ls = le + 1;
            continue;
        }
        size_t p = ls;
        while (p < ce && d[p] != ':' && !is_wsp(d[p])) ++p;
        const size_t name_end = p;
        while (p < ce && is_wsp(d[p])) ++p;
        if (p >= ce || d[p] != ':' ||
            !(ci_equal(d + ls, name_end - ls, name) || (!alias.empty() && ci_equal(d + ls, name_end - ls, alias)))) {
            ls = le + 1;
            continue;
        }
        ++p;
        while (p < ce && is_wsp(d[p])) ++p;
        size_t vb = p, ve = ce;
        while (ve > vb && is_wsp(d[ve - 1])) --ve;
        // Continuation lines belong to this value.
        size_t next = le + 1;
        while (next < limit && is_wsp(d[next])) {
            const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(d + next, '\n', limit - next));
            const size_t nle = nl ? size_t(nl - d) : limit;
            size_t nce = nle;
            if (nce > next && d[nce - 1] == '\r') --nce;
            size_t q = next;
            while (q < nce && is_wsp(d[q])) ++q;
            size_t r = nce;
            while (r > q && is_wsp(d[r - 1])) --r;
            if (r > q) {
                if (ve == vb) vb = q;
                ve = r;
            }
            next = nle + 1;
        }
        return Span{uint16_t(vb), uint16_t(ve - vb)};
    }
    return Span{};
}

namespace {

// The first URI of a name-addr / addr-spec value: [b, e) from its first
// byte (the scheme) to its end ('>' or the header parameters). False for an
// unclosed '<'.
bool first_uri(const uint8_t* d, Span value, size_t& b_out, size_t& e_out) noexcept {
    size_t b = value.offset;
    const size_t end = value.end();
    // name-addr: the URI is inside <...>, after a display name that may be
    // quoted (and then may hold '<'); otherwise an addr-spec, which ends at
    // its header parameters.
    size_t e = end;
    for (size_t i = b; i < end; ++i) {
        const uint8_t c = d[i];
        if (c == '"') {
            i = lex::closing_quote(d, i, end);
        } else if (c == '<') {
            const void* gt = std::memchr(d + i + 1, '>', end - i - 1);
            if (!gt) return false;
            b = i + 1;
            e = size_t(static_cast<const uint8_t*>(gt) - d);
            break;
        } else if (c == ',' || c == ';') {
            e = i;  // addr-spec: header parameters or the next value follow
            break;
        }
    }
    while (b < e && is_wsp(d[b])) ++b;
    b_out = b;
    e_out = e;
    return true;
}

// Offset of the scheme's ':' in [b, e), or e when there is no scheme.
size_t scheme_end(const uint8_t* d, size_t b, size_t e) noexcept {
    size_t i = b;
    while (i < e && d[i] != ':' && d[i] != '@') ++i;
    return i < e && d[i] == ':' && i > b ? i : e;
}

}  // namespace

Span uri_user(const uint8_t* d, Span value) noexcept {
    size_t b = 0, e = 0;
    if (!first_uri(d, value, b, e)) return Span{};
    const size_t colon = scheme_end(d, b, e);
    if (colon == e) return Span{};
    const bool tel = colon - b == 3 && lower(d[b]) == 't' && lower(d[b + 1]) == 'e' && lower(d[b + 2]) == 'l';
    size_t u = colon + 1;
    if (tel) {  // the subscriber number, up to its parameters
        size_t t = u;
        while (t < e && d[t] != ';' && !is_wsp(d[t])) ++t;
        return Span{uint16_t(u), uint16_t(t - u)};
    }
    const void* at = std::memchr(d + u, '@', e - u);
    if (!at) return Span{};
    const size_t a = size_t(static_cast<const uint8_t*>(at) - d);
    size_t t = u;
    while (t < a && d[t] != ':') ++t;  // user ":" password
    return Span{uint16_t(u), uint16_t(t - u)};
}

Span uri_host(const uint8_t* d, Span value) noexcept {
    size_t b = 0, e = 0;
    if (!first_uri(d, value, b, e)) return Span{};
    // scheme ":" (sip, sips; a tel: URI has no host)
    const size_t i = scheme_end(d, b, e);
    if (i == e || lower(d[b]) != 's') return Span{};
    b = i + 1;
    // userinfo "@": the user part may hold ';' and ':' but never a bare '@'.
    if (const void* at = std::memchr(d + b, '@', e - b)) b = size_t(static_cast<const uint8_t*>(at) - d) + 1;
    if (b < e && d[b] == '[') {
        const void* close = std::memchr(d + b, ']', e - b);
        if (!close) return Span{};
        const size_t c = size_t(static_cast<const uint8_t*>(close) - d);
        return Span{uint16_t(b + 1), uint16_t(c - b - 1)};
    }
    size_t h = b;
    while (h < e && d[h] != ':' && d[h] != ';' && d[h] != '?' && !is_wsp(d[h])) ++h;
    return Span{uint16_t(b), uint16_t(h - b)};
}

}  // namespace siplb::sip
