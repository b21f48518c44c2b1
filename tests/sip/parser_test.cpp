// Parser unit tests: shipped sample datagrams (RFC 4475 torture messages and
// real user agents' styles), each syntax rule, each reject reason.
#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "siplb/sip/parser.h"

using namespace siplb::sip;

namespace {

std::string g_data_dir = SIPLB_SIP_TEST_DATA;

std::string read_file(const std::string& name) {
    std::ifstream in(g_data_dir + "/" + name, std::ios::binary);
    EXPECT_TRUE(in.good()) << "cannot open " << name;
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// Test messages are written with "\n"; real ones use CRLF.
std::string crlf(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '\n') out += '\r';
        out += c;
    }
    return out;
}

std::string_view sv(const std::string& msg, Span s) { return s.view(msg); }

}  // namespace

struct SampleCase {
    const char* file;
    Verdict verdict;
    Kind kind;
    Method method;
    uint16_t status;
    const char* call_id;
    RejectReason reason = RejectReason::none;
};

class SampleFiles : public ::testing::TestWithParam<SampleCase> {};

TEST_P(SampleFiles, ParsesAsExpected) {
    const SampleCase& c = GetParam();
    const std::string msg = read_file(c.file);
    const SipMessage m = SipParser::parse(msg);
    EXPECT_EQ(m.verdict, c.verdict) << c.file << " reason " << to_string(m.reason);
    EXPECT_EQ(m.reason, c.reason) << c.file;
    EXPECT_EQ(m.kind, c.kind) << c.file;
    if (c.verdict == Verdict::ok) {
        EXPECT_EQ(m.method, c.method) << c.file;
        EXPECT_EQ(m.status, c.status) << c.file;
        EXPECT_EQ(sv(msg, m.call_id), c.call_id) << c.file;
        EXPECT_GT(m.headers_end, m.headers_begin);
        EXPECT_LE(m.headers_end, msg.size());
        EXPECT_FALSE(m.top_via.empty()) << c.file;
        EXPECT_FALSE(m.cseq.empty()) << c.file;
        EXPECT_FALSE(m.from_tag.empty()) << c.file;
    }
}

INSTANTIATE_TEST_SUITE_P(Data, SampleFiles,
                         ::testing::Values(SampleCase{"invite_asterisk.sip", Verdict::ok, Kind::request, Method::invite,
                                                      0, "3c2a9e7f-51d4-4a8e-b0c1-6f2d9a8e7b41"},
                                           SampleCase{"trying_freeswitch.sip", Verdict::ok, Kind::response,
                                                      Method::other, 100, "5f0c8a3e-9b2d-123c-4e7f-00163e1a2b3c"},
                                           SampleCase{"register_yealink.sip", Verdict::ok, Kind::request,
                                                      Method::register_, 0, "1098752123@198.51.100.33"},
                                           SampleCase{"options_kamailio_compact.sip", Verdict::ok, Kind::request,
                                                      Method::options, 0, "7e4d2b1a-0c93@203.0.113.10"},
                                           SampleCase{"bye_polycom_lf.sip", Verdict::ok, Kind::request, Method::bye, 0,
                                                      "c8d1e2f3-a4b5c6d7-e8f90011@198.51.100.42"},
                                           SampleCase{"invite_cisco.sip", Verdict::ok, Kind::request, Method::invite, 0,
                                                      "00215a1b-2c3d0005-0a1b2c3d-4e5f6a7b@198.51.100.60"},
                                           SampleCase{"message_linphone_compact.sip", Verdict::ok, Kind::request,
                                                      Method::message, 0, "hK8vX2Lq0Z"},
                                           SampleCase{"rfc4475_wsinv.sip", Verdict::ok, Kind::request, Method::invite,
                                                      0, "wsinv.ndaksdj@192.0.2.1"},
                                           SampleCase{"rfc4475_intmeth.sip", Verdict::ok, Kind::request, Method::other,
                                                      0, "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"},
                                           SampleCase{"rfc4475_esc01.sip", Verdict::ok, Kind::request, Method::invite,
                                                      0, "esc01.239409asdfakjkn23onasd0-3234"},
                                           SampleCase{"rfc4475_escnull.sip", Verdict::ok, Kind::request,
                                                      Method::register_, 0, "escnull.39203ndfvkjdasfkjn@example.com"},
                                           SampleCase{"rfc4475_lwsdisp.sip", Verdict::ok, Kind::request,
                                                      Method::options, 0, "lwsdisp.1234abcd@funky.example.com"},
                                           SampleCase{"rfc4475_dblreq.sip", Verdict::ok, Kind::request,
                                                      Method::register_, 0, "dblreq.0ha0isndaksdj99sdfafnl3lk233412"},
                                           SampleCase{"rfc4475_mpart01.sip", Verdict::ok, Kind::request,
                                                      Method::message, 0, "mpart01.3e8df6b2c0c7ac3c@example.com"},
                                           SampleCase{"rfc4475_unreason.sip", Verdict::ok, Kind::response,
                                                      Method::other, 200, "unreason.1234ksdfak3j2erwedfsASdf"},
                                           SampleCase{"rfc4475_noreason.sip", Verdict::ok, Kind::response,
                                                      Method::other, 100, "noreason.asndj203insdf99223ndf"},
                                           SampleCase{"keepalive_crlf.sip", Verdict::keepalive, Kind::keepalive,
                                                      Method::other, 0, ""},
                                           SampleCase{"reject_no_call_id.sip", Verdict::reject, Kind::request,
                                                      Method::options, 0, "", RejectReason::no_call_id},
                                           SampleCase{"reject_conflicting_call_id.sip", Verdict::reject, Kind::request,
                                                      Method::invite, 0, "", RejectReason::conflicting_call_id}),
                         [](const auto& info) {
                             std::string n = info.param.file;
                             n = n.substr(0, n.find('.'));
                             for (char& ch : n)
                                 if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                             return n;
                         });

TEST(SipParser, AllShippedDataFilesAreCovered) {
    size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(g_data_dir))
        if (e.path().extension() == ".sip") ++files;
    EXPECT_EQ(files, 19u) << "a new sample file needs a row in SampleFiles";
}

TEST(SipParser, Rfc4475WsinvDetails) {
    const std::string msg = read_file("rfc4475_wsinv.sip");
    const SipMessage m = SipParser::parse(msg);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(sv(msg, m.to_tag), "1918181833n");
    EXPECT_EQ(sv(msg, m.from_tag), "98asjd8");  // tag parameter on a continuation line
    EXPECT_EQ(m.cseq_number, 9u);
    EXPECT_EQ(m.cseq_method, Method::invite);  // method folded onto the next line
    EXPECT_EQ(sv(msg, m.max_forwards), "0068");
    EXPECT_EQ(sv(msg, m.top_via), "SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw");
    EXPECT_TRUE(m.has_content_length);
    EXPECT_EQ(m.content_length, 150u);
}

TEST(SipParser, Rfc4475IntmethKeepsTheMethodToken) {
    const std::string msg = read_file("rfc4475_intmeth.sip");
    const SipMessage m = SipParser::parse(msg);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(sv(msg, m.method_token), "!interesting-Method0123456789_*+`.%indeed'~");
    EXPECT_EQ(sv(msg, m.cseq_method_token), "!interesting-Method0123456789_*+`.%indeed'~");
    EXPECT_EQ(m.cseq_number, 139122385u);
    EXPECT_EQ(sv(msg, m.from_tag), "_token~1'+`*%!-.");
}

TEST(SipParser, Rfc4475UnreasonKeepsUtf8ReasonPhrase) {
    const std::string msg = read_file("rfc4475_unreason.sip");
    const SipMessage m = SipParser::parse(msg);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(sv(msg, m.reason_phrase).substr(0, 14), "= 2**3 * 5**2 ");
}

TEST(SipParser, BodyAndLookalikeHeadersAreNeverTheCallId) {
    // Call-Info and X-Call-ID before the real one; "Call-ID:" in the body.
    const std::string msg = crlf(
        "INVITE sip:b@example.net SIP/2.0\n"
        "Call-Info: <http://example.net/photo.jpg>;purpose=icon\n"
        "X-Call-ID: fake@example.net\n"
        "Call-IDX: fake2\n"
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\n"
        "CALL-id :\t real@example.net \t\n"
        "Content-Length: 18\n"
        "\n"
        "Call-ID: in-body\n");
    const SipMessage m = SipParser::parse(msg);
    ASSERT_TRUE(m.ok()) << to_string(m.reason);
    EXPECT_EQ(sv(msg, m.call_id), "real@example.net");
    EXPECT_EQ(msg.substr(m.headers_end), "Call-ID: in-body\r\n");
}

TEST(SipParser, BodyOnlyCallIdIsNoCallId) {
    const std::string msg = crlf("MESSAGE sip:b@example.net SIP/2.0\nl: 15\n\nCall-ID: body\n\n");
    EXPECT_EQ(SipParser::parse(msg).reason, RejectReason::no_call_id);
}

TEST(SipParser, CompactFormsAndCaseInsensitiveNames) {
    const std::string msg = crlf(
        "BYE sip:b@example.net SIP/2.0\n"
        "V: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKb\n"
        "F: <sip:a@example.net>;TAG=abc\n"
        "T: sip:b@example.net ; tag = def\n"
        "I: compact@example.net\n"
        "cSeQ: 7 BYE\n"
        "L: 0\n"
        "mAX-forwards: 69\n"
        "user-AGENT: UA/1.0\n"
        "\n");
    const SipMessage m = SipParser::parse(msg);
    ASSERT_TRUE(m.ok()) << to_string(m.reason);
    EXPECT_EQ(sv(msg, m.call_id), "compact@example.net");
    EXPECT_EQ(sv(msg, m.top_via), "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa");
    EXPECT_EQ(sv(msg, m.from_tag), "abc");
    EXPECT_EQ(sv(msg, m.to_tag), "def");
    EXPECT_EQ(m.cseq_number, 7u);
    EXPECT_EQ(m.cseq_method, Method::bye);
    EXPECT_TRUE(m.has_content_length);
    EXPECT_EQ(m.content_length, 0u);
    EXPECT_EQ(sv(msg, m.max_forwards), "69");
    EXPECT_EQ(sv(msg, m.user_agent), "UA/1.0");
}

TEST(SipParser, LfOnlyAndMixedLineEndings) {
    const std::string msg =
        "ACK sip:b@example.net SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nCall-ID: lf-only \n"
        "CSeq: 1 ACK\n\n";
    const SipMessage m = SipParser::parse(msg);
    ASSERT_TRUE(m.ok()) << to_string(m.reason);
    EXPECT_EQ(sv(msg, m.call_id), "lf-only");
    EXPECT_EQ(m.headers_end, msg.size());
}

TEST(SipParser, CallIdValueOnContinuationLineIsAccepted) {
    const std::string msg = crlf("OPTIONS sip:b@example.net SIP/2.0\nCall-ID:\n   folded-start@example.net  \n\n");
    const SipMessage m = SipParser::parse(msg);
    ASSERT_TRUE(m.ok()) << to_string(m.reason);
    EXPECT_EQ(sv(msg, m.call_id), "folded-start@example.net");
}

TEST(SipParser, CallIdFoldedInTheMiddleIsRejected) {
    const std::string msg = crlf("OPTIONS sip:b@example.net SIP/2.0\nCall-ID: abc\n @example.net\n\n");
    EXPECT_EQ(SipParser::parse(msg).reason, RejectReason::bad_call_id);
}

TEST(SipParser, EmptyCallIdIsRejected) {
    const std::string msg = crlf("OPTIONS sip:b@example.net SIP/2.0\nCall-ID:   \nCSeq: 1 OPTIONS\n\n");
    EXPECT_EQ(SipParser::parse(msg).reason, RejectReason::bad_call_id);
}

TEST(SipParser, RepeatedIdenticalCallIdIsAccepted) {
    const std::string msg = crlf("OPTIONS sip:b@example.net SIP/2.0\nCall-ID: same@x\ni:same@x \n\n");
    const SipMessage m = SipParser::parse(msg);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(sv(msg, m.call_id), "same@x");
}

TEST(SipParser, FoldedHeaderSpansCoverTheFold) {
    const std::string msg = crlf(
        "INVITE sip:b@example.net SIP/2.0\nFrom: <sip:a@example.net>\n ;tag=x1\nCall-ID: c\n"
        "User-Agent: Some\n\tPhone\n\n");
    const SipMessage m = SipParser::parse(msg);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(sv(msg, m.from_tag), "x1");
    EXPECT_EQ(sv(msg, m.user_agent), "Some\r\n\tPhone");
}

TEST(SipParser, TagInsideUriOrQuotesIsNotTheHeaderTag) {
    const std::string msg = crlf(
        "INVITE sip:b@example.net SIP/2.0\nFrom: \"x;tag=no\" <sip:a@example.net;tag=no2>;tag=yes\n"
        "To: <sip:b@example.net;tag=no3>\nCall-ID: c\n\n");
    const SipMessage m = SipParser::parse(msg);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(sv(msg, m.from_tag), "yes");
    EXPECT_TRUE(m.to_tag.empty());
}

TEST(SipParser, LongRequestWithHugeHeaders) {  // RFC 4475 longreq style
    std::string msg = "INVITE sip:user@example.com SIP/2.0\r\n";
    msg += "To: \"I have a user name of " + std::string(2000, 'e') + "\" <sip:user@example.com>\r\n";
    msg += "From: sip:caller@example.net;tag=" + std::string(1000, '9') + "\r\n";
    for (int i = 0; i < 40; ++i)
        msg += "Via: SIP/2.0/TCP sip" + std::to_string(i) + ".example.com;branch=z9hG4bK" + std::string(200, 'b') +
               "\r\n";
    msg += "Call-ID: longreq.one" + std::string(3000, 'r') + "\r\nCSeq: 1 INVITE\r\n";
    msg += "Content-Length: 0\r\n\r\n";
    const SipMessage m = SipParser::parse(msg);
    ASSERT_TRUE(m.ok()) << to_string(m.reason);
    EXPECT_EQ(m.call_id.length, 3011u);
    EXPECT_EQ(m.from_tag.length, 1000u);
    EXPECT_EQ(sv(msg, m.top_via).substr(0, 20), "SIP/2.0/TCP sip0.exa");
}

TEST(SipParser, LeadingCrlfBeforeStartLineIsIgnored) {
    const std::string msg = crlf("\nOPTIONS sip:b@example.net SIP/2.0\nCall-ID: lead\n\n");
    const SipMessage m = SipParser::parse(msg);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(sv(msg, m.method_token), "OPTIONS");
}

TEST(SipParser, Keepalives) {
    for (std::string ka : {"\r\n", "\r\n\r\n", "\n", "\n\n"}) {
        const SipMessage m = SipParser::parse(ka);
        EXPECT_EQ(m.verdict, Verdict::keepalive);
        EXPECT_EQ(m.keepalive, KeepaliveKind::crlf);
        EXPECT_EQ(m.kind, Kind::keepalive);
    }
    // STUN Binding request: type 0x0001, length 8, magic cookie, transaction id, one attribute.
    std::string stun(
        "\x00\x01\x00\x08\x21\x12\xA4\x42"
        "abcdefghijkl"
        "\x80\x22\x00\x04"
        "test",
        28);
    SipMessage m = SipParser::parse(stun);
    EXPECT_EQ(m.verdict, Verdict::keepalive);
    EXPECT_EQ(m.keepalive, KeepaliveKind::stun);
    stun[3] = 12;  // length disagrees with the datagram
    m = SipParser::parse(stun);
    EXPECT_EQ(m.verdict, Verdict::reject);
    EXPECT_EQ(m.reason, RejectReason::binary);
    stun[3] = 8;
    stun[1] = 0x03;  // STUN Allocate: not a keepalive
    EXPECT_EQ(SipParser::parse(stun).reason, RejectReason::binary);
}

struct RejectCase {
    const char* name;
    std::string datagram;
    RejectReason reason;
};

TEST(SipParser, EveryRejectReason) {
    const RejectCase cases[] = {
        {"empty", "", RejectReason::empty},
        {"oversize", std::string(kMaxDatagram + 1, 'a'), RejectReason::oversize},
        {"binary", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), RejectReason::binary},
        {"binary-high", std::string("\xff\xfe\x00\x01 SIP", 9), RejectReason::binary},
        {"nul-in-start-line", std::string("INVITE sip:a\0b SIP/2.0\r\nCall-ID: x\r\n\r\n", 38), RejectReason::binary},
        {"bad-version", crlf("INVITE sip:a@b SIP/7.0\nCall-ID: x\n\n"), RejectReason::bad_start_line},
        {"no-uri", crlf("INVITE SIP/2.0\nCall-ID: x\n\n"), RejectReason::bad_start_line},
        {"bad-status", crlf("SIP/2.0 2000 OK\nCall-ID: x\n\n"), RejectReason::bad_start_line},
        {"status-range", crlf("SIP/2.0 099 Low\nCall-ID: x\n\n"), RejectReason::bad_start_line},
        {"http", crlf("GET / HTTP/1.1\nHost: x\n\n"), RejectReason::bad_start_line},
        {"punct", crlf("<xml>\n\n"), RejectReason::bad_start_line},
        {"no-empty-line", crlf("OPTIONS sip:a@b SIP/2.0\nCall-ID: x\n"), RejectReason::truncated_headers},
        {"cut-mid-header", "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 OPT", RejectReason::truncated_headers},
        {"start-line-only", "OPTIONS sip:a@b SIP/2.0", RejectReason::truncated_headers},
        {"no-call-id", crlf("OPTIONS sip:a@b SIP/2.0\nCSeq: 1 OPTIONS\n\n"), RejectReason::no_call_id},
        {"conflict", crlf("OPTIONS sip:a@b SIP/2.0\ni: one\nCall-ID: two\n\n"), RejectReason::conflicting_call_id},
        {"empty-call-id", crlf("OPTIONS sip:a@b SIP/2.0\nCall-ID:\n\n"), RejectReason::bad_call_id},
        {"no-colon", crlf("OPTIONS sip:a@b SIP/2.0\nCall-ID: x\nthis is not a header\n\n"), RejectReason::bad_header},
        {"known-no-colon", crlf("OPTIONS sip:a@b SIP/2.0\nCall-ID x\n\n"), RejectReason::bad_header},
        {"bad-name-char", crlf("OPTIONS sip:a@b SIP/2.0\nCall-ID: x\n<bad>: y\n\n"), RejectReason::bad_header},
    };
    for (const auto& c : cases) {
        const SipMessage m = SipParser::parse(c.datagram);
        EXPECT_EQ(m.verdict, Verdict::reject) << c.name;
        EXPECT_EQ(m.reason, c.reason) << c.name << ": got " << to_string(m.reason);
    }
}

// The version is compared as one word: any case of SIP/2.0 passes, and a
// change in any of its seven bytes fails, at the end of a request line and at
// the start of a status line.
TEST(SipParser, VersionIsSip20InAnyCaseAndNothingElse) {
    for (const char* v : {"SIP/2.0", "sip/2.0", "Sip/2.0", "sIP/2.0"}) {
        EXPECT_TRUE(SipParser::parse(crlf(std::string("OPTIONS sip:a@b ") + v + "\nCall-ID: x\n\n")).ok()) << v;
        EXPECT_TRUE(SipParser::parse(crlf(std::string(v) + " 200 OK\nCall-ID: x\n\n")).ok()) << v;
    }
    const std::string good = "SIP/2.0";
    for (size_t i = 0; i < good.size(); ++i)
        for (char c : {'\x00', 'x', '1', '.', '/', char(good[i] ^ 0x20), char(good[i] + 1)}) {
            std::string v = good;
            v[i] = c;
            if (c == good[i] ||
                (std::isalpha(static_cast<unsigned char>(c)) && std::tolower(c) == std::tolower(good[i])))
                continue;  // the same version
            const SipMessage request = SipParser::parse(crlf("OPTIONS sip:a@b " + v + "\nCall-ID: x\n\n"));
            EXPECT_EQ(request.verdict, Verdict::reject) << v;
            const SipMessage status = SipParser::parse(crlf(v + " 200 OK\nCall-ID: x\n\n"));
            EXPECT_NE(status.kind, Kind::response) << v;
        }
    EXPECT_EQ(SipParser::parse(crlf("OPTIONS sip:a@b SIP/2.00\nCall-ID: x\n\n")).verdict, Verdict::reject);
}

TEST(SipParser, HeaderLineLongerThanScanBlocksStillNeedsColon) {
    // The colon check has a fast path per 64-byte block; lines crossing
    // several blocks take the slow path.
    std::string hdr(200, 'x');
    EXPECT_EQ(SipParser::parse(crlf("OPTIONS sip:a@b SIP/2.0\nCall-ID: x\n" + hdr + "\n\n")).reason,
              RejectReason::bad_header);
    EXPECT_TRUE(SipParser::parse(crlf("OPTIONS sip:a@b SIP/2.0\nCall-ID: x\n" + hdr + ": v\n\n")).ok());
    EXPECT_TRUE(SipParser::parse(crlf("OPTIONS sip:a@b SIP/2.0\nCall-ID: x\nX:" + hdr + "\n\n")).ok());
    for (size_t pad = 0; pad < 130; ++pad) {  // colon lands on both sides of a block edge
        std::string msg = crlf("OPTIONS sip:a@b SIP/2.0\nCall-ID: x\nX-Pad: " + std::string(pad, 'p') +
                               "\nAbcdefghijklmnop: q\nnocolonhere" + std::string(pad % 70, 'z') + "\n\n");
        EXPECT_EQ(SipParser::parse(msg).reason, RejectReason::bad_header) << pad;
    }
}

TEST(SipParser, ToStringCoversEveryValue) {
    for (int r = 0; r < int(RejectReason::count_); ++r) EXPECT_NE(to_string(RejectReason(r)), "unknown") << r;
    EXPECT_EQ(to_string(Method::register_), "REGISTER");
    EXPECT_EQ(to_string(Verdict::keepalive), "keepalive");
    EXPECT_EQ(to_string(Kind::response), "response");
    EXPECT_EQ(method_from_token("SUBSCRIBE"), Method::subscribe);
    EXPECT_EQ(method_from_token("invite"), Method::other);  // methods are case-sensitive
}

TEST(FindHeader, LongAndCompactFormsFindEachOther) {
    const std::string msg = crlf(
        "INVITE sip:b@example.net SIP/2.0\nCall-ID: c1\nm: <sip:a@192.0.2.1>\nContent-Type : application/sdp\n"
        "Subject: a\n  folded subject\nX-Custom:   v  \nl: 0\n\nContact: body\n");
    const auto* d = reinterpret_cast<const uint8_t*>(msg.data());
    const SipMessage m = SipParser::parse(msg);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(sv(msg, find_header(d, msg.size(), m, "Contact")), "<sip:a@192.0.2.1>");
    EXPECT_EQ(sv(msg, find_header(d, msg.size(), m, "c")), "application/sdp");
    EXPECT_EQ(sv(msg, find_header(d, msg.size(), m, "i")), "c1");
    EXPECT_EQ(sv(msg, find_header(d, msg.size(), m, "subject")), "a\r\n  folded subject");
    EXPECT_EQ(sv(msg, find_header(d, msg.size(), m, "x-custom")), "v");
    EXPECT_TRUE(find_header(d, msg.size(), m, "X-Cust").empty());
    EXPECT_TRUE(find_header(d, msg.size(), m, "User-Agent").empty());
    const SipMessage ka = SipParser::parse(std::string_view("\r\n\r\n"));
    EXPECT_TRUE(find_header(d, msg.size(), ka, "Contact").empty());
}

TEST(UriHost, HostOfTheFirstUriOfAHeaderValue) {
    auto host = [](std::string_view value) {
        const auto* d = reinterpret_cast<const uint8_t*>(value.data());
        return std::string(uri_host(d, Span{0, uint16_t(value.size())}).view(d));
    };
    EXPECT_EQ(host("<sip:bob@192.0.2.1:5060;transport=udp>"), "192.0.2.1");
    EXPECT_EQ(host("\"Bob <the> \\\"boss\\\"\" <sip:bob@192.0.2.1>;expires=60"), "192.0.2.1");
    EXPECT_EQ(host("<sip:198.51.100.10;lr>, <sip:192.0.2.7;lr>"), "198.51.100.10");
    EXPECT_EQ(host("<sips:[2001:db8::1]:5061;lr>"), "2001:db8::1");
    EXPECT_EQ(host("sip:bob@[2001:db8::2]"), "2001:db8::2");
    EXPECT_EQ(host("sip:bob@192.0.2.3;expires=60, <sip:x@192.0.2.4>"), "192.0.2.3");
    EXPECT_EQ(host("<sip:+4640123;npdi@pbx.example.net:5060>"), "pbx.example.net");
    EXPECT_EQ(host("SIP:user:pw@192.0.2.5"), "192.0.2.5");
    EXPECT_EQ(host("<sip:192.0.2.6>"), "192.0.2.6");
    EXPECT_EQ(host("*"), "");
    EXPECT_EQ(host("<tel:+4640123>"), "");
    EXPECT_EQ(host("<sip:bob@192.0.2.1"), "");  // unclosed
    EXPECT_EQ(host("<sip:bob@[2001:db8::1>"), "");
    EXPECT_EQ(host(""), "");
    EXPECT_EQ(host("<>"), "");
}

// A parse that names the headers it reads (HeaderSet).
TEST(SipParserHeaderSet, SkipsWhatNoNeededHeaderCanBe) {
    const std::string msg =
        "BYE sip:bob@example.net SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK1\r\n"
        "From: <sip:alice@example.net>;tag=1\r\n"
        "To: <sip:bob@example.net>;tag=2\r\n"
        "Call-ID: hs-1@192.0.2.10\r\n"
        "CSeq: 2 BYE\r\n"
        "garbage line without a colon\r\n"
        "User-Agent: phone/1.0\r\n"
        "Replaces: other@192.0.2.10;to-tag=a;from-tag=b\r\n"
        "Content-Length: 0\r\n\r\n";
    const auto* d = reinterpret_cast<const uint8_t*>(msg.data());
    SipMessage full, only_call_id, with_ua, with_ref;
    SipParser::parse(d, msg.size(), full, ParseDepth::balancer);
    EXPECT_EQ(full.reason, RejectReason::bad_header);
    // "garbage..." starts with a 'g': no needed header does, so it is not looked at.
    SipParser::parse(d, msg.size(), only_call_id, ParseDepth::balancer, HeaderSet::only(0));
    ASSERT_EQ(only_call_id.verdict, Verdict::ok);
    EXPECT_EQ(only_call_id.call_id.view(d), "hs-1@192.0.2.10");
    EXPECT_TRUE(only_call_id.from.empty() && only_call_id.user_agent.empty() && only_call_id.cseq.empty());
    EXPECT_EQ(only_call_id.dialog_ref_count, 0);
    EXPECT_EQ(only_call_id.headers_end, msg.size());
    SipParser::parse(d, msg.size(), with_ua, ParseDepth::balancer,
                     HeaderSet::only(HeaderSet::user_agent | HeaderSet::from));
    ASSERT_EQ(with_ua.verdict, Verdict::ok);
    EXPECT_EQ(with_ua.user_agent.view(d), "phone/1.0");
    EXPECT_EQ(with_ua.from.view(d), "<sip:alice@example.net>;tag=1");
    SipParser::parse(d, msg.size(), with_ref, ParseDepth::balancer, HeaderSet::only(HeaderSet::dialog_ref));
    ASSERT_EQ(with_ref.verdict, Verdict::ok);
    EXPECT_EQ(with_ref.dialog_ref_count, 1);
    // A needed header that is not "name: value" is still refused.
    std::string bad = msg;
    bad.replace(bad.find("User-Agent:"), 11, "User-Agent ");
    SipMessage refused;
    SipParser::parse(reinterpret_cast<const uint8_t*>(bad.data()), bad.size(), refused, ParseDepth::balancer,
                     HeaderSet::only(HeaderSet::user_agent));
    EXPECT_EQ(refused.reason, RejectReason::bad_header);
}

TEST(SipParserHeaderSet, TruncationAndCallIdChecksStay) {
    const std::string head =
        "OPTIONS sip:x@example.net SIP/2.0\r\nCall-ID: a@b\r\nAllow: INVITE\r\nCall-ID: c@d\r\n\r\n";
    SipMessage m;
    SipParser::parse(reinterpret_cast<const uint8_t*>(head.data()), head.size(), m, ParseDepth::balancer,
                     HeaderSet::only(0));
    EXPECT_EQ(m.reason, RejectReason::conflicting_call_id);
    const std::string truncated = "OPTIONS sip:x@example.net SIP/2.0\r\nCall-ID: a@b\r\nAllow: INVITE\r\n";
    SipParser::parse(reinterpret_cast<const uint8_t*>(truncated.data()), truncated.size(), m, ParseDepth::balancer,
                     HeaderSet::only(0));
    EXPECT_EQ(m.reason, RejectReason::truncated_headers);
}
