// The promise of a parse with a HeaderSet (parser.h), checked against the
// full parse of the same bytes; shared by the mutation test and the fuzz
// target. Returns what broke it, or nullptr.
#pragma once

#include <cstring>

#include "siplb/sip/parser.h"

namespace siplb::test {

inline const char* selective_parse_breaks_promise(const uint8_t* d, size_t n, const sip::SipMessage& full,
                                                  sip::HeaderSet needs) {
    using sip::HeaderSet;
    using sip::RejectReason;
    using sip::Verdict;
    sip::SipMessage m;
    sip::SipParser::parse(d, n, m, sip::ParseDepth::full, needs);
    // Only a skipped line's bad_header can make the verdicts differ.
    if (full.verdict == Verdict::reject && full.reason == RejectReason::bad_header) {
        if (m.verdict == Verdict::ok && m.call_id.empty()) return "ok without a Call-ID";
        return nullptr;
    }
    if (m.verdict != full.verdict || m.reason != full.reason) return "verdict or reason";
    if (m.kind != full.kind || m.method != full.method || m.status != full.status) return "start line";
    if (m.request_uri != full.request_uri || m.method_token != full.method_token) return "start line spans";
    if (full.verdict != Verdict::ok) return nullptr;
    if (m.headers_begin != full.headers_begin || m.headers_end != full.headers_end) return "header section";
    if (m.call_id != full.call_id) return "Call-ID";
    if (needs.has(HeaderSet::cseq) &&
        (m.cseq != full.cseq || m.cseq_number != full.cseq_number || m.cseq_method != full.cseq_method))
        return "CSeq";
    if (needs.has(HeaderSet::via) && m.top_via != full.top_via) return "Via";
    if (needs.has(HeaderSet::from) && (m.from != full.from || m.from_tag != full.from_tag)) return "From";
    if (needs.has(HeaderSet::to) && (m.to != full.to || m.to_tag != full.to_tag)) return "To";
    if (needs.has(HeaderSet::user_agent) && m.user_agent != full.user_agent) return "User-Agent";
    if (needs.has(HeaderSet::max_forwards) && m.max_forwards != full.max_forwards) return "Max-Forwards";
    if (needs.has(HeaderSet::content_length) &&
        (m.has_content_length != full.has_content_length || m.content_length != full.content_length))
        return "Content-Length";
    if (needs.has(HeaderSet::dialog_ref) &&
        (m.dialog_ref != full.dialog_ref || m.dialog_ref_count != full.dialog_ref_count ||
         m.dialog_ref_kind != full.dialog_ref_kind))
        return "Replaces/Join";
    return nullptr;
}

// The sets the dataplane asks for, and a few more.
inline constexpr uint16_t kSelectiveSets[] = {
    0,
    sip::HeaderSet::dialog_ref,
    sip::HeaderSet::dialog_ref | sip::HeaderSet::user_agent | sip::HeaderSet::from,
    sip::HeaderSet::cseq | sip::HeaderSet::to,
    sip::HeaderSet::via | sip::HeaderSet::max_forwards | sip::HeaderSet::content_length,
};

}  // namespace siplb::test
