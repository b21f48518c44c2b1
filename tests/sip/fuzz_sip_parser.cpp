// fuzz-sources: src/sip/parser.cpp src/sip/find_header.cpp src/sip/dialog_ref.cpp
// fuzz-corpus: tests/sip/data
//
// libFuzzer target for the SIP parser (built by the fuzz runner with clang,
// not by meson):
//   clang++ -std=c++20 -fsanitize=fuzzer,address,undefined -Iinclude \
//     tests/sip/fuzz_sip_parser.cpp src/sip/*.cpp -o fuzz_sip_parser
// Seeds: tests/sip/data/*.sip. Checks that every span lies inside the input
// and that a verdict is consistent with its reason; ASan catches any read
// outside the buffer.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "selective_parse_check.h"
#include "siplb/sip/parser.h"

using namespace siplb::sip;

namespace {

void check_span(Span s, size_t len) {
    if (s.end() > len) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    SipMessage m;
    SipParser::parse(data, size, m);
    for (Span s : {m.method_token, m.request_uri, m.reason_phrase, m.call_id, m.top_via, m.cseq, m.cseq_method_token,
                   m.from, m.from_tag, m.to, m.to_tag, m.user_agent, m.max_forwards})
        check_span(s, size);
    if (m.headers_end > size || m.headers_begin > size) std::abort();
    if ((m.verdict == Verdict::reject) != (m.reason != RejectReason::none)) std::abort();
    for (uint16_t bits : siplb::test::kSelectiveSets)
        if (siplb::test::selective_parse_breaks_promise(data, size, m, HeaderSet::only(bits))) std::abort();
    if (m.verdict == Verdict::ok) {
        if (m.call_id.empty() || m.call_id.end() > m.headers_end) std::abort();
        // Every line of a Call-ID span is the same value (no fold inside).
        if (std::memchr(data + m.call_id.offset, '\n', m.call_id.length)) std::abort();
        for (const char* name : {"call-id", "i", "Via", "contact", "X-Unknown"}) {
            const Span h = find_header(data, size, m, name);
            check_span(h, m.headers_end);
        }
        // The host of a Contact / Record-Route URI lies inside its header value.
        for (const char* name : {"Contact", "Record-Route"}) {
            const Span h = find_header(data, size, m, name);
            const Span host = uri_host(data, h);
            if (!host.empty() && (host.offset < h.offset || host.end() > h.end())) std::abort();
        }
        // The user of a From / To URI or the Request-URI lies inside it.
        for (const Span v : {m.from, m.to, m.request_uri}) {
            const Span user = uri_user(data, v);
            if (!user.empty() && (user.offset < v.offset || user.end() > v.end())) std::abort();
        }
        // A Replaces/Join value: its parts inside the header value, the
        // decoded Call-ID never longer than the raw one nor than the scratch.
        DialogRef ref;
        if (parse_dialog_ref(data, m, ref)) {
            const Span v = m.dialog_ref;
            for (const Span part : {ref.call_id, ref.to_tag, ref.from_tag})
                if (part.offset < v.offset || part.end() > v.end()) std::abort();
            uint8_t scratch[64];
            const std::string_view id = dialog_ref_call_id(data, ref, scratch, sizeof scratch);
            if (id.size() > ref.call_id.length || (ref.call_id.length <= 64 && !ref.escaped && id.empty()))
                std::abort();
        }
        // The same Call-ID header found both ways.
        const Span again = find_header(data, size, m, "Call-ID");
        if (again.empty()) std::abort();
    }
    return 0;
}
