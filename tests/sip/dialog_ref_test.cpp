// Replaces (RFC 3891) and Join (RFC 3911): where the parser notes them and
// how their Call-ID is read, including the %-escaped form phones copy from a
// Refer-To URI and the torture cases of real traffic.
#include <gtest/gtest.h>

#include <string>

#include "siplb/sip/parser.h"

namespace siplb::sip {
namespace {

std::string invite_with(const std::string& extra) {
    return "INVITE sip:bob@example.com SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
           "From: <sip:alice@example.com>;tag=a1\r\n"
           "To: <sip:bob@example.com>\r\n"
           "Call-ID: new-call@192.0.2.1\r\n"
           "CSeq: 1 INVITE\r\n" +
           extra + "Content-Length: 0\r\n\r\n";
}

struct Read {
    SipMessage msg;
    bool ok = false;
    DialogRef ref;
    std::string call_id;  // decoded
    std::string to_tag, from_tag;
};

Read read(const std::string& datagram) {
    Read r;
    const auto* d = reinterpret_cast<const uint8_t*>(datagram.data());
    SipParser::parse(d, datagram.size(), r.msg, ParseDepth::balancer);
    EXPECT_TRUE(r.msg.ok()) << datagram;
    r.ok = parse_dialog_ref(d, r.msg, r.ref);
    if (r.ok) {
        uint8_t scratch[64];
        r.call_id = std::string(dialog_ref_call_id(d, r.ref, scratch, sizeof scratch));
        r.to_tag = std::string(r.ref.to_tag.view(d));
        r.from_tag = std::string(r.ref.from_tag.view(d));
    }
    return r;
}

TEST(DialogRef, PlainReplaces) {
    const Read r = read(invite_with("Replaces: 12345@192.0.2.7;to-tag=12345;from-tag=5FFE-3994\r\n"));
    EXPECT_EQ(r.msg.dialog_ref_kind, DialogRefKind::replaces);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.call_id, "12345@192.0.2.7");
    EXPECT_FALSE(r.ref.escaped);
    EXPECT_EQ(r.to_tag, "12345");
    EXPECT_EQ(r.from_tag, "5FFE-3994");
    EXPECT_FALSE(r.ref.early_only);
}

TEST(DialogRef, JoinAndEarlyOnly) {
    const Read j = read(invite_with("Join: abc;from-tag=f;to-tag=t\r\n"));
    EXPECT_EQ(j.msg.dialog_ref_kind, DialogRefKind::join);
    ASSERT_TRUE(j.ok);
    EXPECT_EQ(j.call_id, "abc");
    const Read e = read(invite_with("Replaces: abc;to-tag=t;from-tag=f;early-only\r\n"));
    ASSERT_TRUE(e.ok);
    EXPECT_TRUE(e.ref.early_only);
}

TEST(DialogRef, HeaderNameIsCaseInsensitiveAndHasNoCompactForm) {
    EXPECT_TRUE(read(invite_with("rEPLACES : abc;to-tag=t;from-tag=f\r\n")).ok);
    EXPECT_TRUE(read(invite_with("JOIN:abc;to-tag=t;from-tag=f\r\n")).ok);
    // 'j' is Reject-Contact's compact form, not Join.
    const Read j = read(invite_with("j: abc;to-tag=t;from-tag=f\r\n"));
    EXPECT_EQ(j.msg.dialog_ref_kind, DialogRefKind::none);
    EXPECT_FALSE(j.ok);
    // Headers that merely start like it.
    EXPECT_EQ(read(invite_with("Replaces-X: abc;to-tag=t;from-tag=f\r\nJoined: x\r\n")).msg.dialog_ref_kind,
              DialogRefKind::none);
    EXPECT_EQ(read(invite_with("Record-Route: <sip:p.example.com;lr>\r\n")).msg.dialog_ref_kind, DialogRefKind::none);
}

TEST(DialogRef, EscapedFormCopiedFromReferTo) {
    // The whole value as it stands in Refer-To: <sip:x?Replaces=...>.
    const Read r = read(invite_with("Replaces: 12345%40192.0.2.7%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994\r\n"));
    ASSERT_TRUE(r.ok);
    EXPECT_TRUE(r.ref.escaped);
    EXPECT_EQ(r.call_id, "12345@192.0.2.7");
    EXPECT_EQ(r.to_tag, "12345");  // raw spans; tags here need no decoding
    EXPECT_EQ(r.from_tag, "5FFE-3994");
    // Only the Call-ID escaped; lowercase hex.
    const Read l = read(invite_with("Replaces: a%2db%40host;to-tag=t;from-tag=f\r\n"));
    ASSERT_TRUE(l.ok);
    EXPECT_EQ(l.call_id, "a-b@host");
    // A '%' without two hex digits is a literal word character.
    const Read p = read(invite_with("Replaces: 100%zz;to-tag=t;from-tag=f\r\n"));
    ASSERT_TRUE(p.ok);
    EXPECT_FALSE(p.ref.escaped);
    EXPECT_EQ(p.call_id, "100%zz");
}

TEST(DialogRef, EscapedCallIdLongerThanScratchIsNotRead) {
    std::string id;
    for (int i = 0; i < 40; ++i) id += "a%2D";
    const std::string m = invite_with("Replaces: " + id + ";to-tag=t;from-tag=f\r\n");
    const auto* d = reinterpret_cast<const uint8_t*>(m.data());
    SipMessage msg;
    SipParser::parse(d, m.size(), msg, ParseDepth::balancer);
    DialogRef ref;
    ASSERT_TRUE(parse_dialog_ref(d, msg, ref));
    uint8_t small[16];
    EXPECT_TRUE(dialog_ref_call_id(d, ref, small, sizeof small).empty());
    uint8_t big[80];
    EXPECT_EQ(dialog_ref_call_id(d, ref, big, sizeof big).size(), 80u);
}

TEST(DialogRef, WhitespaceFoldsAndQuotedParameters) {
    const Read w = read(invite_with("Replaces:   abc@h  ;  to-tag = t1 ;\tfrom-tag= f1  \r\n"));
    ASSERT_TRUE(w.ok);
    EXPECT_EQ(w.call_id, "abc@h");
    EXPECT_EQ(w.to_tag, "t1");
    EXPECT_EQ(w.from_tag, "f1");
    const Read f = read(invite_with("Replaces:\r\n abc@h;to-tag=t1\r\n ;from-tag=f1\r\n"));
    ASSERT_TRUE(f.ok);
    EXPECT_EQ(f.call_id, "abc@h");
    EXPECT_EQ(f.from_tag, "f1");
    // A generic parameter with a quoted value that holds ';' and an escaped quote.
    const Read q = read(invite_with("Replaces: abc;x=\"a;b\\\"c\";to-tag=t;from-tag=f\r\n"));
    ASSERT_TRUE(q.ok);
    EXPECT_EQ(q.to_tag, "t");
    // Call-ID word characters beyond token ones.
    const Read c = read(invite_with("Replaces: <a>:b/[c]{d}?@h;to-tag=t;from-tag=f\r\n"));
    ASSERT_TRUE(c.ok);
    EXPECT_EQ(c.call_id, "<a>:b/[c]{d}?@h");
}

TEST(DialogRef, MalformedValues) {
    for (const char* bad : {
             "Replaces: ;to-tag=t;from-tag=f\r\n",              // empty Call-ID
             "Replaces: \r\n",                                  // empty value
             "Replaces: abc;from-tag=f\r\n",                    // no to-tag
             "Replaces: abc;to-tag=t\r\n",                      // no from-tag
             "Replaces: abc\r\n",                               // no tags at all
             "Replaces: abc;to-tag=;from-tag=f\r\n",            // empty tag
             "Replaces: abc;to-tag;from-tag=f\r\n",             // tag without value
             "Replaces: abc;to-tag=t;to-tag=u;from-tag=f\r\n",  // repeated tag
             "Replaces: abc@;to-tag=t;from-tag=f\r\n",          // empty word after '@'
             "Replaces: a@b@c;to-tag=t;from-tag=f\r\n",         // two '@'
             "Replaces: abc def;to-tag=t;from-tag=f\r\n",       // Call-ID with a space
             "Replaces: abc\r\n def;to-tag=t;from-tag=f\r\n",   // Call-ID folded in its middle
             "Replaces: abc,def;to-tag=t;from-tag=f\r\n",       // comma
             "Replaces: abc;x=\"open;to-tag=t;from-tag=f\r\n",  // unclosed quote
             "Replaces: abc;;to-tag=t;from-tag=f\r\n",          // empty parameter
             "Replaces: abc;to-tag=t;from-tag=f\r\nReplaces: def;to-tag=t;from-tag=f\r\n",  // two headers
             "Replaces: abc;to-tag=t;from-tag=f\r\nJoin: def;to-tag=t;from-tag=f\r\n",      // both
         }) {
        const Read r = read(invite_with(bad));
        EXPECT_FALSE(r.ok) << bad;
        EXPECT_NE(r.msg.dialog_ref_kind, DialogRefKind::none) << bad;
    }
    // No header at all.
    const Read none = read(invite_with(""));
    EXPECT_EQ(none.msg.dialog_ref_count, 0);
    EXPECT_FALSE(none.ok);
}

TEST(DialogRef, FullAndBalancerDepthAgree) {
    const std::string m = invite_with("Replaces: abc;to-tag=t;from-tag=f\r\n");
    SipMessage full, bal;
    SipParser::parse(reinterpret_cast<const uint8_t*>(m.data()), m.size(), full, ParseDepth::full);
    SipParser::parse(reinterpret_cast<const uint8_t*>(m.data()), m.size(), bal, ParseDepth::balancer);
    EXPECT_EQ(full.dialog_ref, bal.dialog_ref);
    EXPECT_EQ(full.dialog_ref_count, 1);
}

TEST(UriUser, FromToAndRequestUri) {
    const std::string s =
        "\"Al; <x>\" <sip:alice:pw@example.com;transport=udp>;tag=1|sip:+4930@gw;user=phone|"
        "<tel:+4930123;phone-context=x>|<sip:example.com>|<sip:bob@h";
    const auto* d = reinterpret_cast<const uint8_t*>(s.data());
    auto user = [&](size_t b, size_t e) {
        return std::string(uri_user(d, Span{uint16_t(b), uint16_t(e - b)}).view(d));
    };
    size_t p1 = s.find('|'), p2 = s.find('|', p1 + 1), p3 = s.find('|', p2 + 1), p4 = s.find('|', p3 + 1);
    EXPECT_EQ(user(0, p1), "alice");
    EXPECT_EQ(user(p1 + 1, p2), "+4930");
    EXPECT_EQ(user(p2 + 1, p3), "+4930123");
    EXPECT_EQ(user(p3 + 1, p4), "");        // no user part
    EXPECT_EQ(user(p4 + 1, s.size()), "");  // unclosed '<'
}

}  // namespace
}  // namespace siplb::sip
