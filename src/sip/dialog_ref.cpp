// Replaces (RFC 3891) and Join (RFC 3911) values, read where the parser
// noted them. Only dialog-creating INVITEs that carry one pay for this.
#include <cstring>

#include "lex.h"
#include "siplb/sip/parser.h"

namespace siplb::sip {
namespace {

inline int hex_value(uint8_t c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// One byte of the value as the transferor meant it: "%XX" decodes (the
// form copied from a Refer-To URI), anything else stands for itself. A
// '%' without two hex digits is a literal '%', which a word may hold.
struct Decoded {
    uint8_t c;
    uint8_t width;  // raw bytes consumed: 1 or 3
};

inline Decoded decode_at(const uint8_t* d, size_t p, size_t e) noexcept {
    if (d[p] == '%' && e - p >= 3) {
        const int hi = hex_value(d[p + 1]), lo = hex_value(d[p + 2]);
        if (hi >= 0 && lo >= 0) return {uint8_t(hi << 4 | lo), 3};
    }
    return {d[p], 1};
}

inline bool is_lws(uint8_t c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

inline bool is_alnum(uint8_t c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 3261 token characters.
inline bool is_token(uint8_t c) noexcept { return is_alnum(c) || (c && std::strchr("-.!%*_+`'~", c)); }

// RFC 3261 `word` characters (Call-ID syntax).
inline bool is_word(uint8_t c) noexcept { return is_token(c) || (c && std::strchr("()<>:\\\"/[]?{}", c)); }

// Characters of a gen-value that is a token or a host (IPv6 references).
inline bool is_gen_value(uint8_t c) noexcept { return is_token(c) || c == ':' || c == '[' || c == ']'; }

class Reader {
public:
    Reader(const uint8_t* d, size_t b, size_t e) noexcept : d_(d), p_(b), e_(e) {}
    bool done() const noexcept { return p_ >= e_; }
    size_t pos() const noexcept { return p_; }
    Decoded peek() const noexcept { return decode_at(d_, p_, e_); }
    void next(Decoded c) noexcept {
        p_ += c.width;
        escaped_ |= c.width != 1;
    }
    void skip_lws() noexcept {
        while (!done() && is_lws(peek().c)) next(peek());
    }
    // A run of characters accepted by `ok`; its raw span.
    template <typename Pred>
    Span run(Pred ok) noexcept {
        const size_t b = p_;
        while (!done()) {
            const Decoded c = peek();
            if (!ok(c.c)) break;
            next(c);
        }
        return Span{uint16_t(b), uint16_t(p_ - b)};
    }
    bool take(uint8_t want) noexcept {
        if (done() || peek().c != want) return false;
        next(peek());
        return true;
    }
    // A raw (unescaped) quoted-string at the cursor; false if unclosed.
    bool quoted_string() noexcept {
        if (done() || d_[p_] != '"') return false;
        const size_t close = lex::closing_quote(d_, p_, e_);
        if (close == e_) return false;
        p_ = close + 1;
        return true;
    }
    bool escaped() const noexcept { return escaped_; }
    void reset_escaped() noexcept { escaped_ = false; }

    // Case-insensitive comparison of a raw span's decoded bytes with a lowercase name.
    bool span_is(Span s, std::string_view lower) const noexcept {
        size_t p = s.offset, i = 0;
        while (p < s.end()) {
            const Decoded c = decode_at(d_, p, s.end());
            if (i == lower.size()) return false;
            const uint8_t got = (c.c >= 'A' && c.c <= 'Z') ? uint8_t(c.c | 0x20) : c.c;
            if (got != uint8_t(lower[i])) return false;
            p += c.width;
            ++i;
        }
        return i == lower.size();
    }

private:
    const uint8_t* d_;
    size_t p_, e_;
    bool escaped_ = false;
};

}  // namespace

bool parse_dialog_ref(const uint8_t* d, const SipMessage& msg, DialogRef& out) noexcept {
    out = DialogRef{};
    if (msg.dialog_ref_count != 1 || msg.dialog_ref.empty()) return false;
    Reader r(d, msg.dialog_ref.offset, msg.dialog_ref.end());

    // callid = word ["@" word]
    const Span first = r.run(is_word);
    if (first.empty()) return false;
    if (r.take('@') && r.run(is_word).empty()) return false;
    out.call_id = Span{first.offset, uint16_t(r.pos() - first.offset)};
    out.escaped = r.escaped();

    unsigned to_tags = 0, from_tags = 0;
    for (;;) {
        r.skip_lws();
        if (r.done()) break;
        if (!r.take(';')) return false;
        r.skip_lws();
        const Span name = r.run(is_token);
        if (name.empty()) return false;
        r.skip_lws();
        Span value;
        bool has_value = false;
        if (r.take('=')) {
            has_value = true;
            r.skip_lws();
            const size_t vb = r.pos();
            if (!r.done() && d[vb] == '"') {
                if (!r.quoted_string()) return false;
            } else if (r.run(is_gen_value).empty()) {
                return false;
            }
            value = Span{uint16_t(vb), uint16_t(r.pos() - vb)};
        }
        if (r.span_is(name, "to-tag")) {
            if (!has_value || ++to_tags > 1) return false;
            out.to_tag = value;
        } else if (r.span_is(name, "from-tag")) {
            if (!has_value || ++from_tags > 1) return false;
            out.from_tag = value;
        } else if (r.span_is(name, "early-only")) {
            out.early_only = true;
        }
    }
    return to_tags == 1 && from_tags == 1;
}

std::string_view dialog_ref_call_id(const uint8_t* d, const DialogRef& ref, uint8_t* scratch,
                                    size_t scratch_len) noexcept {
    if (!ref.escaped) return ref.call_id.view(d);
    size_t n = 0;
    for (size_t p = ref.call_id.offset; p < ref.call_id.end();) {
        const Decoded c = decode_at(d, p, ref.call_id.end());
        if (n == scratch_len) return {};
        scratch[n++] = c.c;
        p += c.width;
    }
    return {reinterpret_cast<const char*>(scratch), n};
}

}  // namespace siplb::sip
