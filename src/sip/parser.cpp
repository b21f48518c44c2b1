// One pass over the header section: LF and colon positions are found 64
// bytes at a time (SSE2 where available), each header line is dispatched on
// its first character, and only the headers the balancer needs are looked at
// further. The body is never touched.
#include "siplb/sip/parser.h"

#include "lex.h"

#include <bit>
#include <cstring>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace siplb::sip {
namespace {

constexpr uint8_t kTokenChar = 1;
constexpr uint8_t kDigitChar = 2;

struct CharTable {
    uint8_t cls[256] = {};
};

constexpr CharTable make_char_table() {
    CharTable t;
    for (int c = 'a'; c <= 'z'; ++c) t.cls[c] |= kTokenChar;
    for (int c = 'A'; c <= 'Z'; ++c) t.cls[c] |= kTokenChar;
    for (int c = '0'; c <= '9'; ++c) t.cls[c] |= kTokenChar | kDigitChar;
    for (char c : std::string_view("-.!%*_+`'~")) t.cls[uint8_t(c)] |= kTokenChar;
    return t;
}
constexpr CharTable kChars = make_char_table();

// A header line's first byte, for the selective walk's skip test: a letter's
// index (bit of HeaderSet::first_letters), kLineEnd for CR and LF (the empty
// line), kOther for anything else.
constexpr uint8_t kLineEnd = 26;
constexpr uint8_t kOther = 27;
constexpr CharTable make_line_start_table() {
    CharTable t;
    for (int c = 0; c < 256; ++c) t.cls[c] = kOther;
    for (int c = 'a'; c <= 'z'; ++c) t.cls[c] = uint8_t(c - 'a'), t.cls[c - 'a' + 'A'] = uint8_t(c - 'a');
    t.cls[uint8_t('\r')] = t.cls[uint8_t('\n')] = kLineEnd;
    return t;
}
constexpr CharTable kLineStarts = make_line_start_table();

inline bool is_token(uint8_t c) noexcept { return kChars.cls[c] & kTokenChar; }
inline bool is_digit(uint8_t c) noexcept { return kChars.cls[c] & kDigitChar; }
inline bool is_wsp(uint8_t c) noexcept { return c == ' ' || c == '\t'; }
inline bool is_ctl(uint8_t c) noexcept { return (c < 0x20 && c != '\t') || c == 0x7F; }
// Request-URI characters: anything visible; UTF-8 bytes are let through.
inline bool is_uri_char(uint8_t c) noexcept { return c > 0x20 && c != 0x7F; }
inline bool is_lws(uint8_t c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Offset of the first byte c in [b, e), or e. May read ahead up to n (the
// datagram's end) but never past it; cheaper than a memchr call for the
// short ranges of a header value.
inline size_t find_byte(const uint8_t* d, size_t b, size_t e, size_t n, uint8_t c) noexcept {
#if defined(__SSE2__)
    const __m128i needle = _mm_set1_epi8(char(c));
    while (b < e && b + 16 <= n) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + b));
        const unsigned mask = unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(v, needle)));
        if (mask) {
            const size_t pos = b + size_t(__builtin_ctz(mask));
            return pos < e ? pos : e;
        }
        b += 16;
    }
#else
    (void)n;
#endif
    for (; b < e; ++b)
        if (d[b] == c) return b;
    return e;
}

// First byte in [b, e) that cannot be in a Request-URI (SP, HT, controls,
// DEL), or e. May read ahead up to n.
inline size_t uri_end(const uint8_t* d, size_t b, size_t e, size_t n) noexcept {
#if defined(__SSE2__)
    const __m128i min_visible = _mm_set1_epi8(0x21);
    const __m128i del = _mm_set1_epi8(0x7F);
    while (b < e && b + 16 <= n) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + b));
        const __m128i visible = _mm_cmpeq_epi8(_mm_max_epu8(v, min_visible), v);  // v >= 0x21 unsigned
        const unsigned ok = unsigned(_mm_movemask_epi8(_mm_andnot_si128(_mm_cmpeq_epi8(v, del), visible)));
        if (ok != 0xFFFF) {
            const size_t pos = b + size_t(__builtin_ctz(~ok));
            return pos < e ? pos : e;
        }
        b += 16;
    }
#else
    (void)n;
#endif
    while (b < e && is_uri_char(d[b])) ++b;
    return b;
}

// Whether the line [b, e) holds a colon; header names are short, so the
// first 16 bytes nearly always answer.
inline bool line_has_colon(const uint8_t* d, size_t b, size_t e, size_t n) noexcept {
#if defined(__SSE2__)
    if (b + 16 <= n) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + b));
        unsigned mask = unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(':'))));
        if (e - b < 16) mask &= (1u << (e - b)) - 1;
        if (mask) return true;
        if (e - b <= 16) return false;
        b += 16;
    }
#else
    (void)n;
#endif
    return std::memchr(d + b, ':', e - b) != nullptr;
}

inline Span make_span(size_t b, size_t e) noexcept { return Span{uint16_t(b), uint16_t(e - b)}; }

// LF positions in order, one 64-byte word of bitmap at a time (SSE2 where
// available), computed as the walk advances and never over the body. The
// header walk only ever asks for the LF after the last one, so the current
// word keeps the LFs not returned yet: a line inside it costs a ctz and a
// clear of the lowest bit.
class LineScanner {
public:
    // Returns LFs at or after `from`.
    LineScanner(const uint8_t* d, size_t n, size_t from) noexcept : d_(d), n_(n), words_((n + 63) / 64), w_(from >> 6) {
        if (w_ < words_) bits_ = compute(w_) & (~uint64_t(0) << (from & 63));
    }

    // Offset of the next LF, or n if there is none.
    size_t next() noexcept {
        while (bits_ == 0) {  // line runs into the next word
            if (++w_ >= words_) return n_;
            bits_ = compute(w_);
        }
        const size_t lf = (w_ << 6) + size_t(__builtin_ctzll(bits_));
        bits_ &= bits_ - 1;
        return lf;
    }

private:
    uint64_t compute(size_t w) const noexcept {
        const size_t off = w << 6;
        if (off + 64 <= n_) return lf_mask(d_ + off);
        if (n_ >= 64) return lf_mask(d_ + n_ - 64) >> (off - (n_ - 64));  // last partial word
        uint64_t l = 0;
        for (size_t i = 0; i < n_ - off; ++i) l |= uint64_t(d_[off + i] == '\n') << i;
        return l;
    }

    static uint64_t lf_mask(const uint8_t* p) noexcept {
#if defined(__SSE2__)
        const __m128i lf = _mm_set1_epi8('\n');
        uint64_t l = 0;
        for (int i = 0; i < 4; ++i) {
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i));
            l |= uint64_t(uint32_t(_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf)))) << (16 * i);
        }
        return l;
#else
        uint64_t l = 0;
        for (int i = 0; i < 64; ++i) l |= uint64_t(p[i] == '\n') << i;
        return l;
#endif
    }

    const uint8_t* d_;
    size_t n_;
    size_t words_;
    size_t w_;           // word in bits_
    uint64_t bits_ = 0;  // its LFs not returned yet
};

// Case-insensitive match of a lowercase header name at the start of a line,
// followed by ':' or whitespace. `avail` is the line length without CRLF;
// `room` the bytes readable from p (to the datagram's end). With 16 bytes of
// room the name is compared as two 64-bit words (letters folded by OR 0x20
// only where the name has letters, so '-' never matches CR).
struct NamePattern {
    uint64_t fold[2] = {}, want[2] = {}, care[2] = {};
};

// A string literal usable as a template argument.
template <size_t N>
struct Literal {
    char s[N] = {};
    constexpr Literal(const char (&lit)[N]) {  // NOLINT(google-explicit-constructor)
        for (size_t i = 0; i < N; ++i) s[i] = lit[i];
    }
};

template <size_t N>
constexpr NamePattern make_pattern(const char (&lit)[N]) {
    static_assert(N - 1 <= 16);
    NamePattern np;
    for (size_t i = 0; i + 1 < N; ++i) {
        const uint64_t c = uint8_t(lit[i]);
        const unsigned shift = unsigned(8 * (i % 8));
        if (c >= 'a' && c <= 'z') np.fold[i / 8] |= uint64_t(0x20) << shift;
        np.want[i / 8] |= c << shift;
        np.care[i / 8] |= uint64_t(0xFF) << shift;
    }
    return np;
}

template <Literal L>
inline bool name_is(const uint8_t* p, size_t avail, size_t room) noexcept {
    constexpr auto& lit = L.s;
    constexpr size_t k = sizeof(L.s) - 1;
    if (avail <= k) return false;
    if (room >= 16) {
        static constexpr NamePattern np = make_pattern(lit);
        uint64_t w0;
        std::memcpy(&w0, p, 8);
        if (((w0 | np.fold[0]) & np.care[0]) != np.want[0]) return false;
        if constexpr (k > 8) {
            uint64_t w1;
            std::memcpy(&w1, p + 8, 8);
            if (((w1 | np.fold[1]) & np.care[1]) != np.want[1]) return false;
        }
    } else {
        for (size_t i = 0; i < k; ++i) {
            const uint8_t want = uint8_t(lit[i]);
            const uint8_t got = (want >= 'a' && want <= 'z') ? uint8_t(p[i] | 0x20) : p[i];
            if (got != want) return false;
        }
    }
    const uint8_t t = p[k];
    return t == ':' || t == ' ' || t == '\t';
}

inline bool ci_equal(const uint8_t* p, std::string_view lower) noexcept {
    for (size_t i = 0; i < lower.size(); ++i) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z') c |= 0x20;
        if (c != uint8_t(lower[i])) return false;
    }
    return true;
}

// "SIP/2.0" in any case at p, compared as one word: the caller guarantees 8
// readable bytes (a line's 7 and at least its LF).
inline bool is_sip_2_0(const uint8_t* p) noexcept {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if constexpr (std::endian::native == std::endian::little) {
        constexpr uint64_t kWant = 0x00302e322f706973ull;  // "sip/2.0", byte 7 ignored
        constexpr uint64_t kFold = 0x0000000000202020ull;  // the letters s, i, p
        return ((w | kFold) & 0x00FFFFFFFFFFFFFFull) == kWant;
    } else {
        return ci_equal(p, "sip/2.0");
    }
}

enum class Hdr : uint8_t {
    none,
    call_id,
    via,
    cseq,
    from,
    to,
    user_agent,
    max_forwards,
    content_length,
    replaces,
    join
};

// The HeaderSet member a header belongs to (none: a bit no set has).
constexpr HeaderSet::Header needed_as(Hdr h) noexcept {
    switch (h) {
        case Hdr::call_id: return HeaderSet::call_id;
        case Hdr::via: return HeaderSet::via;
        case Hdr::cseq: return HeaderSet::cseq;
        case Hdr::from: return HeaderSet::from;
        case Hdr::to: return HeaderSet::to;
        case Hdr::user_agent: return HeaderSet::user_agent;
        case Hdr::max_forwards: return HeaderSet::max_forwards;
        case Hdr::content_length: return HeaderSet::content_length;
        case Hdr::replaces:
        case Hdr::join: return HeaderSet::dialog_ref;
        case Hdr::none: break;
    }
    return HeaderSet::Header(0);
}

// Span of the first via-parm: up to the first comma outside a quoted string.
// Quotes in Via are rare (only in quoted parameter values), so the common
// case is one memchr.
Span first_via_parm(const uint8_t* d, size_t b, size_t e, size_t n) noexcept {
    size_t i = find_byte(d, b, e, n, ',');
    if (i < e) {
        if (find_byte(d, b, i, n, '"') < i) {
            bool quoted = false;
            for (i = b; i < e; ++i) {
                const uint8_t c = d[i];
                if (c == '"')
                    quoted = !quoted;
                else if (c == '\\' && quoted)
                    ++i;
                else if (c == ',' && !quoted)
                    break;
            }
            if (i > e) i = e;
        }
    }
    while (i > b && is_lws(d[i - 1])) --i;
    return make_span(b, i);
}

// If a parameter starting at q (just after its ';') is "tag = token",
// the token's span; else empty.
inline Span tag_value_at(const uint8_t* d, size_t q, size_t e) noexcept {
    while (q < e && is_lws(d[q])) ++q;
    if (q + 3 > e || (d[q] | 0x20) != 't' || (d[q + 1] | 0x20) != 'a' || (d[q + 2] | 0x20) != 'g') return Span{};
    q += 3;
    while (q < e && is_lws(d[q])) ++q;
    if (q >= e || d[q] != '=') return Span{};
    ++q;
    while (q < e && is_lws(d[q])) ++q;
    const size_t v = q;
    while (q < e && is_token(d[q])) ++q;
    return make_span(v, q);
}

// Value of the tag parameter of a From/To value (name-addr or addr-spec).
// Header parameters follow the '>' closing the URI (which cannot contain
// '>'), or, in addr-spec form, start at the first ';'. Only a quoted display
// name can hide a '<', so it alone is skipped byte by byte.
Span find_tag(const uint8_t* d, size_t b, size_t e, size_t n) noexcept {
    size_t p = b;
    if (p < e && d[p] == '"') {
        ++p;
        for (;;) {  // to the closing quote; a backslash escapes the next byte
            const size_t q = find_byte(d, p, e, n, '"');
            if (q == e) return Span{};
            const size_t bs = find_byte(d, p, q, n, '\\');
            if (bs < q) {
                p = bs + 2;
                continue;
            }
            p = q + 1;
            break;
        }
    }
    const size_t l = find_byte(d, p, e, n, '<');
    if (l < e) {
        const size_t g = find_byte(d, l, e, n, '>');
        if (g == e) return Span{};
        p = g + 1;
    }
    // Parameters: ;name[=value]. Without quoted values (the common case)
    // every ';' separates parameters and memchr-style jumps suffice.
    if (find_byte(d, p, e, n, '"') == e) {
        for (size_t i = find_byte(d, p, e, n, ';'); i < e; i = find_byte(d, i + 1, e, n, ';')) {
            const Span t = tag_value_at(d, i + 1, e);
            if (!t.empty()) return t;
        }
        return Span{};
    }
    for (size_t i = p; i < e; ++i) {
        if (d[i] == '"') {
            i = lex::closing_quote(d, i, e);
            continue;
        }
        if (d[i] != ';') continue;
        const Span t = tag_value_at(d, i + 1, e);
        if (!t.empty()) return t;
    }
    return Span{};
}

// Decimal value; false if not all digits or not below 2^32.
bool parse_u32(const uint8_t* d, size_t b, size_t e, uint32_t& out) noexcept {
    if (b >= e) return false;
    uint64_t v = 0;
    for (size_t i = b; i < e; ++i) {
        if (!is_digit(d[i])) return false;
        v = v * 10 + (d[i] - '0');
        if (v > 0xFFFFFFFFull) return false;
    }
    out = uint32_t(v);
    return true;
}

void parse_cseq(const uint8_t* d, size_t b, size_t e, SipMessage& m) noexcept {
    m.cseq = make_span(b, e);
    size_t p = b;
    while (p < e && is_digit(d[p])) ++p;
    uint32_t n = 0;
    m.cseq_number = parse_u32(d, b, p, n) ? n : 0;
    while (p < e && is_lws(d[p])) ++p;
    size_t t = p;
    while (p < e && is_token(d[p])) ++p;
    m.cseq_method_token = make_span(t, p);
    m.cseq_method = method_from_token({reinterpret_cast<const char*>(d) + t, p - t});
}

bool parse_start_line(const uint8_t* d, size_t s, size_t e, size_t n, SipMessage& m) noexcept {
    const size_t len = e - s;
    if (len >= 8 && is_sip_2_0(d + s) && is_wsp(d[s + 7])) {
        size_t p = s + 7;
        while (p < e && is_wsp(d[p])) ++p;
        if (p + 3 > e || !is_digit(d[p]) || !is_digit(d[p + 1]) || !is_digit(d[p + 2])) return false;
        const unsigned code = unsigned(d[p] - '0') * 100 + unsigned(d[p + 1] - '0') * 10 + unsigned(d[p + 2] - '0');
        if (code < 100 || code > 699) return false;
        p += 3;
        if (p < e && !is_wsp(d[p])) return false;
        while (p < e && is_wsp(d[p])) ++p;
        size_t r = e;
        while (r > p && is_wsp(d[r - 1])) --r;
        for (size_t i = p; i < r; ++i)
            if (is_ctl(d[i])) return false;
        m.kind = Kind::response;
        m.status = uint16_t(code);
        m.reason_phrase = make_span(p, r);
        return true;
    }
    size_t p = s;
    while (p < e && is_token(d[p])) ++p;
    if (p == s || p >= e || !is_wsp(d[p])) return false;
    const size_t method_end = p;
    while (p < e && is_wsp(d[p])) ++p;
    const size_t uri = p;
    p = uri_end(d, p, e, n);
    if (p == uri || p >= e || !is_wsp(d[p])) return false;
    const size_t uri_end = p;
    while (p < e && is_wsp(d[p])) ++p;
    size_t v_end = e;
    while (v_end > p && is_wsp(d[v_end - 1])) --v_end;
    if (v_end - p != 7 || !is_sip_2_0(d + p)) return false;  // p + 8 <= the line's LF + 1
    m.kind = Kind::request;
    m.method_token = make_span(s, method_end);
    m.method = method_from_token({reinterpret_cast<const char*>(d) + s, method_end - s});
    m.request_uri = make_span(uri, uri_end);
    return true;
}

bool is_stun_binding(const uint8_t* d, size_t n) noexcept {
    if (n < 20 || (d[0] & 0xC0) != 0) return false;
    if (d[4] != 0x21 || d[5] != 0x12 || d[6] != 0xA4 || d[7] != 0x42) return false;
    const size_t body = (size_t(d[2]) << 8) | d[3];
    if (body % 4 != 0 || body + 20 != n) return false;
    const unsigned type = (unsigned(d[0]) << 8) | d[1];
    return (type & 0x3EEF) == 0x0001;  // method Binding, any class
}

inline void reject(SipMessage& m, RejectReason r) noexcept {
    m.verdict = Verdict::reject;
    m.reason = r;
}

// Takes the complete (possibly folded) value [vb, ve) of a header the
// balancer needs; false if the message is rejected. A plain function rather
// than a lambda over the loop's variables, which would keep them in memory.
template <bool kFull>
bool finish_header(const uint8_t* d, size_t n, Hdr cur, size_t vb, size_t ve, bool& via_seen, SipMessage& m) noexcept {
    switch (cur) {
        case Hdr::none: break;
        case Hdr::call_id: {
            if (ve == vb) {
                reject(m, RejectReason::bad_call_id);
                return false;
            }
            if (m.call_id.empty()) {
                m.call_id = make_span(vb, ve);
            } else if (m.call_id.length != ve - vb || std::memcmp(d + m.call_id.offset, d + vb, ve - vb) != 0) {
                {
                    reject(m, RejectReason::conflicting_call_id);
                    return false;
                }
            }
            break;
        }
        case Hdr::via:
            if (!via_seen) {
                via_seen = true;
                if constexpr (kFull) m.top_via = first_via_parm(d, vb, ve, n);
            }
            break;
        case Hdr::cseq:
            if (m.cseq.empty()) parse_cseq(d, vb, ve, m);
            break;
        case Hdr::from:
            if (m.from.empty()) {
                m.from = make_span(vb, ve);
                if constexpr (kFull) m.from_tag = find_tag(d, vb, ve, n);
            }
            break;
        case Hdr::to:
            if (m.to.empty()) {
                m.to = make_span(vb, ve);
                if constexpr (kFull) m.to_tag = find_tag(d, vb, ve, n);
            }
            break;
        case Hdr::user_agent:
            if (m.user_agent.empty()) m.user_agent = make_span(vb, ve);
            break;
        case Hdr::max_forwards:
            if (m.max_forwards.empty()) m.max_forwards = make_span(vb, ve);
            break;
        case Hdr::replaces:
        case Hdr::join:
            if (m.dialog_ref_count++ == 0) {
                m.dialog_ref = make_span(vb, ve);
                m.dialog_ref_kind = cur == Hdr::replaces ? DialogRefKind::replaces : DialogRefKind::join;
            } else if (m.dialog_ref_count == 0) {
                m.dialog_ref_count = 255;
            }
            break;
        case Hdr::content_length:
            if (!m.has_content_length) {
                uint32_t v = 0;
                if (parse_u32(d, vb, ve, v)) {
                    m.has_content_length = true;
                    m.content_length = v;
                }
            }
            break;
    }
    return true;
}

}  // namespace

Method method_from_token(std::string_view t) noexcept {
    switch (t.size()) {
        case 3:
            if (t == "ACK") return Method::ack;
            if (t == "BYE") return Method::bye;
            break;
        case 4:
            if (t == "INFO") return Method::info;
            break;
        case 5:
            if (t == "PRACK") return Method::prack;
            if (t == "REFER") return Method::refer;
            break;
        case 6:
            if (t == "INVITE") return Method::invite;
            if (t == "CANCEL") return Method::cancel;
            if (t == "UPDATE") return Method::update;
            if (t == "NOTIFY") return Method::notify;
            break;
        case 7:
            if (t == "OPTIONS") return Method::options;
            if (t == "MESSAGE") return Method::message;
            if (t == "PUBLISH") return Method::publish;
            break;
        case 8:
            if (t == "REGISTER") return Method::register_;
            break;
        case 9:
            if (t == "SUBSCRIBE") return Method::subscribe;
            break;
        default: break;
    }
    return Method::other;
}

namespace {

template <bool kFull>
void parse_message(const uint8_t* d, size_t n, SipMessage& m, HeaderSet needs) noexcept {
    // Field by field rather than `m = SipMessage{}`, which compiles to a
    // stack temporary and a copy that stalls store forwarding.
    static_assert(std::is_trivially_copyable_v<SipMessage>);
    std::memset(static_cast<void*>(&m), 0, sizeof m);
    m.verdict = Verdict::reject;
    m.reason = RejectReason::empty;
    m.kind = Kind::unknown;
    if (n == 0) return reject(m, RejectReason::empty);
    if (n > kMaxDatagram) return reject(m, RejectReason::oversize);

    // Keepalives: only CR/LF bytes (RFC 5626 CRLF / double CRLF), or STUN.
    size_t s = 0;
    while (s < n && (d[s] == '\r' || d[s] == '\n')) ++s;
    if (s == n) {
        m.verdict = Verdict::keepalive;
        m.reason = RejectReason::none;
        m.kind = Kind::keepalive;
        m.keepalive = KeepaliveKind::crlf;
        return;
    }
    if (s == 0 && is_stun_binding(d, n)) {
        m.verdict = Verdict::keepalive;
        m.reason = RejectReason::none;
        m.kind = Kind::keepalive;
        m.keepalive = KeepaliveKind::stun;
        return;
    }

    // Start line (leading CRLFs before it are ignored, RFC 3261 7.5).
    LineScanner scan(d, n, s);
    const size_t lf = scan.next();
    size_t e = lf;
    if (e > s && d[e - 1] == '\r') --e;
    // The request line is validated character by character while it is
    // parsed; only a line that fails is examined again to tell binary
    // garbage from a malformed text line.
    if (lf == n || !parse_start_line(d, s, e, n, m)) {
        m.kind = Kind::unknown;
        bool binary = d[s] >= 0x80;
        for (size_t i = s; i < e && !binary; ++i) binary = is_ctl(d[i]);
        if (binary) return reject(m, RejectReason::binary);
        return reject(m, lf == n ? RejectReason::truncated_headers : RejectReason::bad_start_line);
    }
    m.headers_begin = uint16_t(lf + 1);

    // Header section.
    Hdr cur = Hdr::none;
    size_t vb = 0, ve = 0;  // value of the current header, trimmed
    bool via_seen = false;
    // Lines starting with any other letter are skipped unlooked-at.
    const bool selective = !needs.all();
    const uint32_t letters = needs.first_letters();
    // Outside a needed header, a selective walk looks at a line only when
    // its first byte starts a needed name or could be the empty line.
    const uint32_t looked_at = selective ? letters | 1u << kLineEnd : ~0u;

    size_t ls = lf + 1;
    for (;;) {
        if (ls >= n) return reject(m, RejectReason::truncated_headers);
        const size_t le = scan.next();
        if (le == n) return reject(m, RejectReason::truncated_headers);
        const uint8_t c0 = d[ls];
        if (cur == Hdr::none && !((looked_at >> kLineStarts.cls[c0]) & 1)) {
            ls = le + 1;
            continue;
        }
        size_t ce = le;
        if (ce > ls && d[ce - 1] == '\r') --ce;
        if (is_wsp(c0) && ce > ls) {  // continuation of the previous header
            if (cur != Hdr::none) {
                size_t p = ls;
                while (p < ce && is_wsp(d[p])) ++p;
                size_t q = ce;
                while (q > p && is_wsp(d[q - 1])) --q;
                if (q > p) {
                    if (ve == vb) {
                        vb = p;
                    } else if (cur == Hdr::call_id) {
                        return reject(m, RejectReason::bad_call_id);
                    }
                    ve = q;
                }
            }
            ls = le + 1;
            continue;
        }
        if (cur != Hdr::none) {
            if (!finish_header<kFull>(d, n, cur, vb, ve, via_seen, m)) return;
            cur = Hdr::none;
        }
        if (ce == ls) {  // the empty line
            m.headers_end = uint16_t(le + 1);
            break;
        }

        const uint8_t lower = c0 | 0x20;
        if (selective && !(lower >= 'a' && lower <= 'z' && ((letters >> (lower - 'a')) & 1))) {
            ls = le + 1;
            continue;
        }
        const uint8_t* p = d + ls;
        const size_t avail = ce - ls;
        const size_t room = n - ls;
        size_t name_len = 0;
        const auto wanted = [needs](Hdr h) { return needs.has(needed_as(h)); };
        switch (lower) {
            case 'c':
                if (wanted(Hdr::call_id) && name_is<"call-id">(p, avail, room))
                    cur = Hdr::call_id, name_len = 7;
                else if (wanted(Hdr::cseq) && name_is<"cseq">(p, avail, room))
                    cur = Hdr::cseq, name_len = 4;
                else if (wanted(Hdr::content_length) && name_is<"content-length">(p, avail, room))
                    cur = Hdr::content_length, name_len = 14;
                break;
            case 'i':
                if (wanted(Hdr::call_id) && name_is<"i">(p, avail, room)) cur = Hdr::call_id, name_len = 1;
                break;
            case 'v':
                if (!via_seen) {
                    if (wanted(Hdr::via) && name_is<"v">(p, avail, room))
                        cur = Hdr::via, name_len = 1;
                    else if (wanted(Hdr::via) && name_is<"via">(p, avail, room))
                        cur = Hdr::via, name_len = 3;
                }
                break;
            case 'f':
                if (wanted(Hdr::from) && name_is<"f">(p, avail, room))
                    cur = Hdr::from, name_len = 1;
                else if (wanted(Hdr::from) && name_is<"from">(p, avail, room))
                    cur = Hdr::from, name_len = 4;
                break;
            case 't':
                if (wanted(Hdr::to) && name_is<"t">(p, avail, room))
                    cur = Hdr::to, name_len = 1;
                else if (wanted(Hdr::to) && name_is<"to">(p, avail, room))
                    cur = Hdr::to, name_len = 2;
                break;
            case 'l':
                if (wanted(Hdr::content_length) && name_is<"l">(p, avail, room))
                    cur = Hdr::content_length, name_len = 1;
                break;
            case 'm':
                if (wanted(Hdr::max_forwards) && name_is<"max-forwards">(p, avail, room))
                    cur = Hdr::max_forwards, name_len = 12;
                break;
            case 'u':
                if (wanted(Hdr::user_agent) && name_is<"user-agent">(p, avail, room))
                    cur = Hdr::user_agent, name_len = 10;
                break;
            // Replaces and Join have no compact form ('j' is Reject-Contact).
            case 'r':
                if (wanted(Hdr::replaces) && name_is<"replaces">(p, avail, room)) cur = Hdr::replaces, name_len = 8;
                break;
            case 'j':
                if (wanted(Hdr::join) && name_is<"join">(p, avail, room)) cur = Hdr::join, name_len = 4;
                break;
            default: break;
        }
        // A header the caller does not read is not taken apart either (the
        // name tests above only look for needed ones).
        if (cur == Hdr::none) {
            if (!selective && (!is_token(c0) || !line_has_colon(d, ls, ce, n)))
                return reject(m, RejectReason::bad_header);
        } else {
            size_t q = ls + name_len;
            while (q < ce && is_wsp(d[q])) ++q;
            if (q >= ce || d[q] != ':') return reject(m, RejectReason::bad_header);
            ++q;
            while (q < ce && is_wsp(d[q])) ++q;
            size_t r = ce;
            while (r > q && is_wsp(d[r - 1])) --r;
            vb = q;
            ve = r;
        }
        ls = le + 1;
    }

    if (m.call_id.empty()) return reject(m, RejectReason::no_call_id);
    m.verdict = Verdict::ok;
    m.reason = RejectReason::none;
}

}  // namespace

void SipParser::parse(const uint8_t* d, size_t n, SipMessage& m, ParseDepth depth, HeaderSet needs) noexcept {
    if (depth == ParseDepth::full) {
        parse_message<true>(d, n, m, needs);
    } else {
        parse_message<false>(d, n, m, needs);
    }
}

std::string_view to_string(RejectReason r) noexcept {
    switch (r) {
        case RejectReason::none: return "none";
        case RejectReason::empty: return "empty";
        case RejectReason::oversize: return "oversize";
        case RejectReason::binary: return "binary";
        case RejectReason::bad_start_line: return "bad_start_line";
        case RejectReason::truncated_headers: return "truncated_headers";
        case RejectReason::no_call_id: return "no_call_id";
        case RejectReason::conflicting_call_id: return "conflicting_call_id";
        case RejectReason::bad_call_id: return "bad_call_id";
        case RejectReason::bad_header: return "bad_header";
        case RejectReason::fragment: return "fragment";
        case RejectReason::count_: break;
    }
    return "unknown";
}

std::string_view to_string(Method mt) noexcept {
    switch (mt) {
        case Method::other: return "other";
        case Method::invite: return "INVITE";
        case Method::ack: return "ACK";
        case Method::bye: return "BYE";
        case Method::cancel: return "CANCEL";
        case Method::register_: return "REGISTER";
        case Method::options: return "OPTIONS";
        case Method::info: return "INFO";
        case Method::update: return "UPDATE";
        case Method::prack: return "PRACK";
        case Method::subscribe: return "SUBSCRIBE";
        case Method::notify: return "NOTIFY";
        case Method::refer: return "REFER";
        case Method::message: return "MESSAGE";
        case Method::publish: return "PUBLISH";
    }
    return "other";
}

std::string_view to_string(Verdict v) noexcept {
    switch (v) {
        case Verdict::ok: return "ok";
        case Verdict::keepalive: return "keepalive";
        case Verdict::reject: return "reject";
    }
    return "reject";
}

std::string_view to_string(Kind k) noexcept {
    switch (k) {
        case Kind::request: return "request";
        case Kind::response: return "response";
        case Kind::keepalive: return "keepalive";
        case Kind::unknown: return "unknown";
    }
    return "unknown";
}

std::string_view to_string(KeepaliveKind k) noexcept {
    switch (k) {
        case KeepaliveKind::none: return "none";
        case KeepaliveKind::crlf: return "crlf";
        case KeepaliveKind::stun: return "stun";
    }
    return "none";
}

}  // namespace siplb::sip
