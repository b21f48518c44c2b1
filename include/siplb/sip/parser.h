// Zero-copy SIP parser: classifies one UDP payload and finds the spans of the
// headers the balancer needs (Call-ID above all) without copying, allocating
// or throwing. Knows nothing of DPDK: feed it a byte buffer.
//
// Syntax accepted (RFC 3261 as real traffic uses it):
//  - header names are case-insensitive; compact forms are understood
//    (i=Call-ID, v=Via, f=From, t=To, l=Content-Length, ...);
//  - whitespace (SP/HT) is allowed before and after the colon;
//  - folded continuation lines are part of the previous header's value: a
//    span of a folded header covers the fold bytes (CR, LF, SP, HT), so
//    consumers must treat those as linear whitespace;
//  - LF-only line endings are tolerated (CRLF and LF may be mixed);
//  - only the header section is inspected: a body never yields headers, and
//    a second message glued after the first (RFC 4475 dblreq) is body.
//
// Call-ID rules (the value feeds the consistent hash, so it must be the same
// bytes in every message of a call):
//  - the span is the value with surrounding whitespace trimmed;
//  - a value that starts on a continuation line ("Call-ID:\r\n  abc") is fine;
//  - a value folded in its middle ("Call-ID: abc\r\n def") cannot be one
//    contiguous span and is not valid Call-ID syntax: rejected, bad_call_id;
//  - an empty value is rejected, bad_call_id;
//  - the same Call-ID repeated with the same value is accepted; with a
//    different value it is rejected, conflicting_call_id.
//
// Headers the balancer does not need are not validated beyond: the line
// starts with a token character and contains a colon (else bad_header).
// A caller that names the headers it reads (HeaderSet) skips even that for
// lines that are none of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>

namespace siplb::sip {

// Datagrams are at most 65535 bytes, so 16-bit offsets cover them.
inline constexpr size_t kMaxDatagram = 65535;

struct Span {
    uint16_t offset = 0;
    uint16_t length = 0;

    constexpr bool empty() const noexcept { return length == 0; }
    constexpr uint32_t end() const noexcept { return uint32_t(offset) + length; }
    std::string_view view(const uint8_t* base) const noexcept {
        return {reinterpret_cast<const char*>(base) + offset, length};
    }
    std::string_view view(std::string_view base) const noexcept { return base.substr(offset, length); }
    friend constexpr bool operator==(Span, Span) = default;
};

enum class Verdict : uint8_t { ok, keepalive, reject };

// unknown: rejected before the start line could be classified.
enum class Kind : uint8_t { request, response, keepalive, unknown };

enum class KeepaliveKind : uint8_t { none, crlf, stun };

// Methods are case-sensitive (RFC 3261 7.1); anything else is `other` with
// its token in SipMessage::method_token.
enum class Method : uint8_t {
    other,
    invite,
    ack,
    bye,
    cancel,
    register_,
    options,
    info,
    update,
    prack,
    subscribe,
    notify,
    refer,
    message,
    publish
};

enum class RejectReason : uint8_t {
    none,
    empty,                // zero-length datagram
    oversize,             // longer than kMaxDatagram
    binary,               // control characters / non-text where the start line should be
    bad_start_line,       // text, but neither a request line nor a status line
    truncated_headers,    // the header section does not end (empty line) inside the datagram
    no_call_id,           // no Call-ID header
    conflicting_call_id,  // two Call-ID headers with different values
    bad_call_id,          // empty Call-ID value, or a value folded across lines
    bad_header,           // a header line that is not "name: value"
    fragment,             // IP fragment (set by capture readers; the parser never sees one)
    count_
};

// A header naming another dialog of the same Call-ID space: Replaces
// (RFC 3891) or Join (RFC 3911). The parser only notes where it is; its
// Call-ID is read by parse_dialog_ref(), for dialog-creating INVITEs only.
enum class DialogRefKind : uint8_t { none, replaces, join };

struct SipMessage {
    Verdict verdict = Verdict::reject;
    RejectReason reason = RejectReason::empty;
    Kind kind = Kind::unknown;
    KeepaliveKind keepalive = KeepaliveKind::none;

    // Requests: method and Request-URI. Responses: status code and reason.
    Method method = Method::other;
    Span method_token;
    Span request_uri;
    uint16_t status = 0;  // 100..699 for responses, 0 for requests
    Span reason_phrase;

    Span call_id;              // trimmed value, never folded
    Span top_via;              // first via-parm of the first Via header (up to a top-level comma)
    Span cseq;                 // whole CSeq value
    uint32_t cseq_number = 0;  // 0 when the value is not a number below 2^32
    Method cseq_method = Method::other;
    Span cseq_method_token;
    Span from, from_tag;  // whole From value; value of its tag parameter
    Span to, to_tag;
    Span user_agent;
    Span max_forwards;
    Span dialog_ref;  // trimmed value of the first Replaces or Join header
    DialogRefKind dialog_ref_kind = DialogRefKind::none;
    uint8_t dialog_ref_count = 0;  // Replaces and Join headers seen (saturates at 255)
    uint32_t content_length = 0;
    bool has_content_length = false;  // a Content-Length header with a decimal value was present

    uint16_t headers_begin = 0;  // first byte after the start line
    uint16_t headers_end = 0;    // offset of the body (first byte after the empty line)

    bool ok() const noexcept { return verdict == Verdict::ok; }
};

// The headers a caller reads, for parse(). Every line is still visited, so
// the end of the header section (truncated_headers) and the Call-ID checks
// are the same whatever the set, and a needed header's span is the one a
// full parse gives. But only needed headers are checked for "name: value"
// (a malformed other line is no bad_header), a line whose first letter no
// needed header has (compact forms included) is skipped without a look at
// its name, and the spans of headers not needed may stay empty. Most lines
// then cost a line-feed scan and a letter test.
class HeaderSet {
public:
    enum Header : uint16_t {
        call_id = 1u << 0,  // always needed
        cseq = 1u << 1,
        via = 1u << 2,
        from = 1u << 3,
        to = 1u << 4,
        user_agent = 1u << 5,
        max_forwards = 1u << 6,
        content_length = 1u << 7,
        dialog_ref = 1u << 8,  // Replaces and Join
    };
    static constexpr uint16_t kAll = (1u << 9) - 1;

    constexpr HeaderSet() = default;  // every header, every line checked
    constexpr static HeaderSet only(uint16_t headers) noexcept { return HeaderSet(headers | call_id); }
    constexpr bool all() const noexcept { return bits_ == kAll; }
    constexpr bool has(Header h) const noexcept { return (bits_ & h) != 0; }
    constexpr uint16_t bits() const noexcept { return bits_; }
    constexpr HeaderSet operator|(HeaderSet o) const noexcept { return HeaderSet(uint16_t(bits_ | o.bits_)); }
    // Bit (c - 'a') for each lowercase first letter of a needed header's
    // names; worked out when the set is made, not per message.
    constexpr uint32_t first_letters() const noexcept { return letters_; }
    friend constexpr bool operator==(HeaderSet, HeaderSet) = default;

private:
    constexpr explicit HeaderSet(uint16_t bits) : bits_(bits), letters_(letters_of(bits)) {}
    static constexpr uint32_t letters_of(uint16_t bits) noexcept {
        auto l = [](char c) { return 1u << (c - 'a'); };
        // Per Header bit, in order: every name's first letter (compact forms included).
        const uint32_t of[] = {l('c') | l('i'), l('c'), l('v'),          l('f'),         l('t'),
                               l('u'),          l('m'), l('c') | l('l'), l('r') | l('j')};
        uint32_t letters = 0;
        for (unsigned i = 0; i < std::size(of); ++i)
            if (bits & (1u << i)) letters |= of[i];
        return letters;
    }
    uint16_t bits_ = kAll;
    uint32_t letters_ = letters_of(kAll);
};

// How much of SipMessage parse() fills. The verdict, the reject reason and
// every span but from_tag, to_tag and top_via are the same at both depths.
enum class ParseDepth : uint8_t {
    full,      // everything
    balancer,  // from_tag, to_tag and top_via left empty: the dataplane and
               // the protect rules read none of them, and finding the tags
               // is a good part of the parse
};

class SipParser {
public:
    // Classifies data[0, len) and fills `out` (fully overwritten). Never reads
    // outside the buffer, never allocates, never throws.
    // `needs`: the headers the caller reads (see HeaderSet).
    static void parse(const uint8_t* data, size_t len, SipMessage& out, ParseDepth depth = ParseDepth::full,
                      HeaderSet needs = HeaderSet()) noexcept;

    static SipMessage parse(std::string_view datagram) noexcept {
        SipMessage m;
        parse(reinterpret_cast<const uint8_t*>(datagram.data()), datagram.size(), m);
        return m;
    }
};

// The parts of a Replaces or Join value (RFC 3891 section 6.1, RFC 3911
// section 7.1): `callid *(SEMI (to-tag / from-tag / early-flag /
// generic-param))`, with exactly one to-tag and one from-tag. Spans are raw
// bytes of the datagram: phones copy the value out of a Refer-To URI's
// `?Replaces=` parameter, sometimes still %-escaped (`%40`, `%3B`, `%3D`),
// and such a value is read through its escapes.
struct DialogRef {
    Span call_id;  // raw; holds %-escapes when `escaped`
    Span to_tag, from_tag;
    bool early_only = false;
    bool escaped = false;
};

// Reads the value msg.dialog_ref. False (a malformed header, which the
// balancer ignores) when it is not exactly one Replaces or Join header, the
// Call-ID is empty or not a `word ["@" word]`, a tag is missing, empty or
// repeated, or a parameter is not `token [= token / quoted-string]`.
bool parse_dialog_ref(const uint8_t* data, const SipMessage& msg, DialogRef& out) noexcept;

// The Call-ID `ref` names, as the replaced dialog's own messages carry it:
// the raw bytes when nothing is escaped (zero-copy), else its %-escapes
// decoded into `scratch`. Empty when the decoded Call-ID does not fit
// scratch_len bytes.
std::string_view dialog_ref_call_id(const uint8_t* data, const DialogRef& ref, uint8_t* scratch,
                                    size_t scratch_len) noexcept;

// The user part of the first URI in a name-addr / addr-spec value (From, To)
// or of a Request-URI: `sip:alice@host` -> alice, `tel:+4930123;...` ->
// +4930123. Empty when the URI has no user part. Raw bytes (escapes and case
// as sent), which are what every message of one user carries.
Span uri_user(const uint8_t* data, Span value) noexcept;

std::string_view to_string(RejectReason) noexcept;
std::string_view to_string(Method) noexcept;
std::string_view to_string(Verdict) noexcept;
std::string_view to_string(Kind) noexcept;
std::string_view to_string(KeepaliveKind) noexcept;

// Method from a method token (exact, case-sensitive match); `other` if unknown.
Method method_from_token(std::string_view token) noexcept;

// First occurrence of the header `name` (case-insensitive; the long and the
// compact form of a header find each other: "Call-ID" finds "i:" and vice
// versa) in the header section of a parsed message. Returns the trimmed
// value, which spans folded continuation lines. Empty span if absent or if
// `msg` has no header section (keepalives, rejects before the start line).
Span find_header(const uint8_t* data, size_t len, const SipMessage& msg, std::string_view name) noexcept;

// The host of the first URI in a header value that holds name-addrs or
// addr-specs (Contact, Record-Route, Route, From, To): `"Bob" <sip:b@host:5060;lr>`,
// `<sips:[2001:db8::1]>`, `sip:b@host;expires=60`. An IPv6 reference is
// returned without its brackets. Empty when the value has no such URI
// (`Contact: *`, a tel: URI, an unclosed '<'). `value` is a span of `data`
// as find_header() returns it.
Span uri_host(const uint8_t* data, Span value) noexcept;

}  // namespace siplb::sip
