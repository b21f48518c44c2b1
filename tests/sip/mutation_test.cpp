// Bounded random mutation of real messages: whatever the input, the parser
// must classify it and every span must lie inside the datagram. Deterministic
// (fixed seeds) so a failure reproduces.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "selective_parse_check.h"
#include "siplb/sip/parser.h"
#include "support/message_mix.h"

using namespace siplb::sip;
using siplb::test::generate_message_mix;

namespace {

uint64_t splitmix(uint64_t& s) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Parses a copy in an exactly sized heap buffer, so ASan flags any read
// past its end, and checks all spans.
void check(const std::string& input) {
    std::unique_ptr<uint8_t[]> buf(new uint8_t[input.size() ? input.size() : 1]);
    std::memcpy(buf.get(), input.data(), input.size());
    SipMessage m;
    SipParser::parse(buf.get(), input.size(), m);
    const size_t n = input.size();
    for (Span s : {m.method_token, m.request_uri, m.reason_phrase, m.call_id, m.top_via, m.cseq, m.cseq_method_token,
                   m.from, m.from_tag, m.to, m.to_tag, m.user_agent, m.max_forwards}) {
        ASSERT_LE(s.end(), n);
    }
    ASSERT_LE(m.headers_end, n);
    ASSERT_LE(m.headers_begin, n);
    if (m.verdict == Verdict::reject) {
        ASSERT_NE(m.reason, RejectReason::none);
    } else {
        ASSERT_EQ(m.reason, RejectReason::none);
    }
    if (m.verdict == Verdict::ok) {
        ASSERT_FALSE(m.call_id.empty());
        ASSERT_GT(m.headers_end, m.headers_begin);
        ASSERT_LE(m.call_id.end(), m.headers_end);
        const Span via = find_header(buf.get(), n, m, "via");
        ASSERT_LE(via.end(), m.headers_end);
    }
    // The dataplane's depth: the same message but for the tags and the top via-parm.
    SipMessage b;
    SipParser::parse(buf.get(), n, b, ParseDepth::balancer);
    ASSERT_TRUE(b.from_tag.empty() && b.to_tag.empty() && b.top_via.empty());
    b.from_tag = m.from_tag;
    b.to_tag = m.to_tag;
    b.top_via = m.top_via;
    ASSERT_EQ(std::memcmp(&b, &m, sizeof m), 0);
    // Parses that name the headers they read.
    for (uint16_t bits : siplb::test::kSelectiveSets) {
        const char* broken = siplb::test::selective_parse_breaks_promise(buf.get(), n, m, HeaderSet::only(bits));
        ASSERT_EQ(broken, nullptr) << "headers 0x" << std::hex << bits << ": " << broken;
    }
}

}  // namespace

TEST(SipParserMutation, TruncationAtEveryOffset) {
    const auto mix = generate_message_mix(40, 7);
    for (const auto& msg : mix)
        for (size_t cut = 0; cut <= msg.size(); ++cut) check(msg.substr(0, cut));
}

TEST(SipParserMutation, RandomByteEdits) {
    const auto mix = generate_message_mix(200, 11);
    static const char kInteresting[] = {'\r', '\n', ' ', '\t', ':', ',', ';', '"', '<', '>', '\\', '\0', 'i', 'I'};
    uint64_t seed = 12345;
    size_t ok = 0;
    for (int iter = 0; iter < 200000; ++iter) {
        std::string msg = mix[splitmix(seed) % mix.size()];
        const int edits = 1 + int(splitmix(seed) % 4);
        for (int e = 0; e < edits && !msg.empty(); ++e) {
            const uint64_t r = splitmix(seed);
            const size_t pos = (r >> 8) % msg.size();
            switch (r % 5) {
                case 0: msg[pos] = char(splitmix(seed)); break;
                case 1: msg[pos] = kInteresting[(r >> 40) % sizeof(kInteresting)]; break;
                case 2: msg.erase(pos, 1 + (r >> 32) % 8); break;
                case 3: msg.insert(pos, 1, kInteresting[(r >> 40) % sizeof(kInteresting)]); break;
                default: msg.resize(pos); break;
            }
        }
        check(msg);
        if (HasFatalFailure()) FAIL() << "iteration " << iter;
        ok += SipParser::parse(msg).ok();
    }
    // Most single edits leave a parsable message: the mutator is not just
    // producing garbage that the first check rejects.
    EXPECT_GT(ok, 50000u);
}

TEST(SipParserMutation, RandomBytes) {
    uint64_t seed = 99;
    for (int iter = 0; iter < 20000; ++iter) {
        std::string msg(splitmix(seed) % 300, '\0');
        for (auto& c : msg) c = char(splitmix(seed));
        if (iter % 2) msg.insert(0, "INVITE sip:x SIP/2.0\r\n");
        check(msg);
        if (HasFatalFailure()) FAIL() << "iteration " << iter;
    }
}
