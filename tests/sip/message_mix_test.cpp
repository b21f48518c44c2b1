#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "siplb/sip/parser.h"
#include "support/message_mix.h"

using namespace siplb::sip;
using siplb::test::generate_message_mix;

TEST(MessageMix, DeterministicForASeed) {
    EXPECT_EQ(generate_message_mix(300, 42), generate_message_mix(300, 42));
    EXPECT_NE(generate_message_mix(300, 42), generate_message_mix(300, 43));
    EXPECT_EQ(generate_message_mix(123, 1).size(), 123u);
}

TEST(MessageMix, EveryMessageParsesAndCallsShareACallId) {
    const auto mix = generate_message_mix(5000, 2026);
    std::map<std::string, int> per_call;
    std::set<Method> methods;
    std::set<uint16_t> statuses;
    size_t compact = 0, deep_via = 0, min_size = SIZE_MAX, max_size = 0;
    for (const auto& msg : mix) {
        const SipMessage m = SipParser::parse(msg);
        ASSERT_TRUE(m.ok()) << to_string(m.reason) << "\n" << msg;
        ++per_call[std::string(m.call_id.view(msg))];
        if (m.kind == Kind::request)
            methods.insert(m.method);
        else
            statuses.insert(m.status);
        EXPECT_EQ(m.has_content_length, true);
        EXPECT_EQ(m.headers_end + m.content_length, msg.size());
        compact += msg.find("\ni: ") != std::string::npos;
        deep_via += msg.find("192.0.2.18;") != std::string::npos;
        min_size = std::min(min_size, msg.size());
        max_size = std::max(max_size, msg.size());
    }
    for (Method x : {Method::invite, Method::ack, Method::bye, Method::register_, Method::options})
        EXPECT_TRUE(methods.count(x)) << to_string(x);
    for (uint16_t s : {100, 180, 200, 401}) EXPECT_TRUE(statuses.count(s)) << s;
    EXPECT_GT(compact, 200u);
    EXPECT_GT(deep_via, 200u);
    EXPECT_GE(min_size, 300u);
    EXPECT_LE(max_size, 1400u);
    // A call is 7 messages; every Call-ID repeats (apart from a call cut at the end).
    size_t singles = 0;
    for (const auto& [id, n] : per_call) singles += n == 1;
    EXPECT_LE(singles, 1u);
}
