// Generated SIP traffic that looks like what a carrier edge sees: calls
// (INVITE with SDP, 100/180/200, ACK, BYE, 200), registrations challenged
// with 401 and OPTIONS pings, from a handful of real-world user agents with
// their header orders and habits (compact forms, long Via stacks behind
// proxies). Deterministic: the generator is splitmix64, not <random>, whose
// distributions differ between standard libraries.
#include "message_mix.h"

#include <cstdio>
#include <iterator>
#include <string>
#include <vector>

namespace siplb::test {
namespace {

class SplitMix64 {
public:
    explicit SplitMix64(uint64_t seed) : s_(seed) {}
    uint64_t next() {
        uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    uint64_t below(uint64_t n) { return next() % n; }
    std::string hex(size_t digits) {
        static const char kHex[] = "0123456789abcdef";
        std::string s;
        uint64_t v = next();
        for (size_t i = 0; i < digits; ++i) {
            if (i % 16 == 15) v = next();
            s += kHex[v & 15];
            v >>= 4;
        }
        return s;
    }

private:
    uint64_t s_;
};

struct Agent {
    const char* user_agent;
    const char* server;  // Server header of the same product in responses
    const char* allow;
    bool compact;       // uses compact header names
    bool lf_only;       // LF-only line endings
    int call_id_style;  // 0: hex@host, 1: uuid, 2: hex only
};

constexpr Agent kAgents[] = {
    {"Asterisk PBX 18.12.1", "Asterisk PBX 18.12.1",
     "OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, PRACK, INFO, MESSAGE, REFER",
     false, false, 0},
    {"FreeSWITCH-mod_sofia/1.10.9-release~64bit", "FreeSWITCH-mod_sofia/1.10.9-release~64bit",
     "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REGISTER, REFER, NOTIFY", false, false, 1},
    {"kamailio (5.6.4 (x86_64/linux))", "kamailio (5.6.4 (x86_64/linux))", "INVITE, ACK, CANCEL, OPTIONS, BYE", true,
     false, 0},
    {"Yealink SIP-T54W 96.86.0.70", "Yealink SIP-T54W 96.86.0.70",
     "INVITE, INFO, PRACK, ACK, BYE, CANCEL, OPTIONS, NOTIFY, REGISTER, SUBSCRIBE, REFER, PUBLISH, UPDATE, MESSAGE",
     false, false, 2},
    {"PolycomVVX-VVX_450-UA/6.4.3.5018", "PolycomVVX-VVX_450-UA/6.4.3.5018",
     "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, MESSAGE, SUBSCRIBE, NOTIFY, PRACK, UPDATE, REFER", false, false, 0},
    {"Cisco-CP8845/14.2.1", "Cisco-SIPGateway/IOS-16.12",
     "ACK,BYE,CANCEL,INVITE,NOTIFY,OPTIONS,REFER,REGISTER,UPDATE,SUBSCRIBE", false, false, 1},
    {"Linphone-Desktop/5.1.2 (belle-sip/5.2.0)", "Linphone-Desktop/5.1.2 (belle-sip/5.2.0)",
     "INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO, PRACK, UPDATE", true, true, 2},
};

struct Dialog {
    const Agent* agent;
    bool compact;
    std::string eol;
    std::string call_id;
    std::string caller, callee, caller_host, callee_host;
    std::string from_tag, to_tag;
    std::vector<std::string> proxy_vias;  // extra Via lines between the UA and us
    std::string ua_branch;
    uint32_t cseq;
};

std::string uuid(SplitMix64& r) {
    std::string h = r.hex(32);
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" +
           h.substr(20, 12);
}

std::string ipv4(SplitMix64& r, const char* prefix) { return prefix + std::to_string(1 + r.below(250)); }

class Writer {
public:
    Writer(const Dialog& d) : d_(d) {}
    Writer& line(const std::string& s) {
        out_ += s;
        out_ += d_.eol;
        return *this;
    }
    Writer& header(const char* long_name, char compact, const std::string& value) {
        if (d_.compact && compact) {
            out_ += compact;
            out_ += ": ";
        } else {
            out_ += long_name;
            out_ += ": ";
        }
        out_ += value;
        out_ += d_.eol;
        return *this;
    }
    std::string finish(const std::string& body = {}) {
        header("Content-Length", 'l', std::to_string(body.size()));
        out_ += d_.eol;
        out_ += body;
        return std::move(out_);
    }

private:
    const Dialog& d_;
    std::string out_;
};

std::string sdp(const Dialog& d, SplitMix64& r, bool offer, bool short_form) {
    const std::string& host = offer ? d.caller_host : d.callee_host;
    const std::string sess = std::to_string(100000 + r.below(900000));
    std::string s;
    auto add = [&](const std::string& l) { s += l + "\r\n"; };
    add("v=0");
    add("o=" + (offer ? d.caller : d.callee) + " " + sess + " " + sess + " IN IP4 " + host);
    add("s=" + std::string(d.agent->user_agent).substr(0, 12));
    add("c=IN IP4 " + host);
    add("t=0 0");
    const std::string port = std::to_string(10000 + 2 * r.below(10000));
    if (short_form) {
        add("m=audio " + port + " RTP/AVP 0 101");
        add("a=rtpmap:0 PCMU/8000");
        add("a=rtpmap:101 telephone-event/8000");
    } else {
        add("m=audio " + port + " RTP/AVP 9 0 8 18 101");
        add("a=rtpmap:9 G722/8000");
        add("a=rtpmap:0 PCMU/8000");
        add("a=rtpmap:8 PCMA/8000");
        add("a=rtpmap:18 G729/8000");
        add("a=fmtp:18 annexb=no");
        add("a=rtpmap:101 telephone-event/8000");
        add("a=fmtp:101 0-16");
        add("a=ptime:20");
    }
    add("a=sendrecv");
    return s;
}

std::string via_of_ua(const Dialog& d) {
    return "SIP/2.0/UDP " + d.caller_host + ":5060;rport;branch=z9hG4bK" + d.ua_branch;
}

void add_vias(Writer& w, const Dialog& d, bool with_proxies) {
    if (with_proxies)
        for (const auto& v : d.proxy_vias) w.header("Via", 'v', v);
    w.header("Via", 'v', via_of_ua(d));
}

std::string from_value(const Dialog& d) {
    return "\"" + d.caller + "\" <sip:" + d.caller + "@" + d.caller_host + ">;tag=" + d.from_tag;
}
std::string to_value(const Dialog& d, bool with_tag) {
    std::string v = "<sip:" + d.callee + "@sip.example.net>";
    if (with_tag) v += ";tag=" + d.to_tag;
    return v;
}

std::string request(const Dialog& d, SplitMix64& r, const char* method, uint32_t cseq, bool to_tag,
                    const std::string& body, const std::string& extra = {}) {
    Writer w(d);
    w.line(std::string(method) + " sip:" + d.callee + "@sip.example.net SIP/2.0");
    add_vias(w, d, true);
    w.header("Max-Forwards", 0, "70");
    w.header("From", 'f', from_value(d));
    w.header("To", 't', to_value(d, to_tag));
    w.header("Call-ID", 'i', d.call_id);
    w.header("CSeq", 0, std::to_string(cseq) + " " + method);
    w.header("Contact", 'm', "<sip:" + d.caller + "@" + d.caller_host + ":5060;transport=udp>");
    w.header("User-Agent", 0, d.agent->user_agent);
    if (!extra.empty()) w.line(extra);
    if (!body.empty()) {
        w.header("Allow", 0, d.agent->allow);
        w.header("Supported", 'k', "replaces, timer");
        w.header("Content-Type", 'c', "application/sdp");
    }
    (void)r;
    return w.finish(body);
}

std::string response(const Dialog& d, SplitMix64& r, int code, const char* reason, const char* method, uint32_t cseq,
                     bool to_tag, const std::string& body, const std::string& extra = {}) {
    Writer w(d);
    w.line("SIP/2.0 " + std::to_string(code) + " " + reason);
    add_vias(w, d, true);
    w.header("From", 'f', from_value(d));
    w.header("To", 't', to_value(d, to_tag));
    w.header("Call-ID", 'i', d.call_id);
    w.header("CSeq", 0, std::to_string(cseq) + " " + method);
    if (code >= 180 && code < 300) w.header("Contact", 'm', "<sip:" + d.callee + "@" + d.callee_host + ":5060>");
    w.header("Server", 0, d.agent->server);
    w.header("Supported", 'k', "replaces, timer, path");
    if (!extra.empty()) w.line(extra);
    if (!body.empty()) w.header("Content-Type", 'c', "application/sdp");
    (void)r;
    return w.finish(body);
}

Dialog new_dialog(SplitMix64& r) {
    Dialog d;
    d.agent = &kAgents[r.below(std::size(kAgents))];
    d.compact = d.agent->compact || r.below(8) == 0;
    d.eol = d.agent->lf_only ? "\n" : "\r\n";
    d.caller = std::to_string(46000000000ull + r.below(999999999));
    d.callee = std::to_string(46000000000ull + r.below(999999999));
    d.caller_host = ipv4(r, "198.51.100.");
    d.callee_host = ipv4(r, "203.0.113.");
    switch (d.agent->call_id_style) {
        case 0: d.call_id = r.hex(24) + "@" + d.caller_host; break;
        case 1: d.call_id = uuid(r); break;
        default: d.call_id = r.hex(32); break;
    }
    d.from_tag = r.hex(10);
    d.to_tag = r.hex(10);
    d.ua_branch = r.hex(16);
    d.cseq = uint32_t(1 + r.below(30000));
    // One call in five crossed a chain of proxies: a 10-Via stack.
    if (r.below(5) == 0) {
        for (int i = 0; i < 9; ++i)
            d.proxy_vias.push_back("SIP/2.0/UDP 192.0.2." + std::to_string(10 + i) + ";branch=z9hG4bK" + r.hex(12));
    }
    return d;
}

void emit_call(std::vector<std::string>& out, size_t count, SplitMix64& r) {
    Dialog d = new_dialog(r);
    const bool deep = !d.proxy_vias.empty();
    const std::string offer = sdp(d, r, true, deep);
    const std::string answer = sdp(d, r, false, deep);
    const uint32_t c = d.cseq;
    const std::string msgs[] = {
        request(d, r, "INVITE", c, false, offer),
        response(d, r, 100, "Trying", "INVITE", c, false, {}),
        response(d, r, 180, "Ringing", "INVITE", c, true, {}),
        response(d, r, 200, "OK", "INVITE", c, true, answer),
        request(d, r, "ACK", c, true, {}),
        request(d, r, "BYE", c + 1, true, {}),
        response(d, r, 200, "OK", "BYE", c + 1, true, {}),
    };
    for (const auto& m : msgs)
        if (out.size() < count) out.push_back(m);
}

void emit_registration(std::vector<std::string>& out, size_t count, SplitMix64& r) {
    Dialog d = new_dialog(r);
    d.proxy_vias.clear();
    d.callee = d.caller;
    const uint32_t c = d.cseq;
    const std::string nonce = r.hex(32);
    const std::string expires = "Expires: 3600";
    const std::string challenge = "WWW-Authenticate: Digest realm=\"sip.example.net\", nonce=\"" + nonce +
                                  "\", opaque=\"" + r.hex(16) + "\", algorithm=MD5, qop=\"auth\"";
    const std::string auth = "Authorization: Digest username=\"" + d.caller +
                             "\", realm=\"sip.example.net\", nonce=\"" + nonce +
                             "\", uri=\"sip:sip.example.net\", response=\"" + r.hex(32) +
                             "\", algorithm=MD5, cnonce=\"" + r.hex(8) + "\", qop=auth, nc=00000001";
    const std::string msgs[] = {
        request(d, r, "REGISTER", c, false, {}, expires),
        response(d, r, 401, "Unauthorized", "REGISTER", c, true, {}, challenge),
        request(d, r, "REGISTER", c + 1, false, {}, auth + d.eol + expires),
        response(d, r, 200, "OK", "REGISTER", c + 1, true, {},
                 "Contact: <sip:" + d.caller + "@" + d.caller_host + ":5060>;expires=3600"),
    };
    for (const auto& m : msgs)
        if (out.size() < count) out.push_back(m);
}

void emit_options(std::vector<std::string>& out, size_t count, SplitMix64& r) {
    Dialog d = new_dialog(r);
    const uint32_t c = d.cseq;
    const std::string msgs[] = {
        request(d, r, "OPTIONS", c, false, {}, "Accept: application/sdp"),
        response(d, r, 200, "OK", "OPTIONS", c, true, {},
                 std::string("Allow: ") + d.agent->allow + d.eol + "Accept: application/sdp"),
    };
    for (const auto& m : msgs)
        if (out.size() < count) out.push_back(m);
}

}  // namespace

std::vector<std::string> generate_message_mix(size_t count, uint64_t seed) {
    std::vector<std::string> out;
    out.reserve(count);
    SplitMix64 r(seed);
    while (out.size() < count) {
        const uint64_t pick = r.below(10);
        if (pick < 6)
            emit_call(out, count, r);
        else if (pick < 8)
            emit_registration(out, count, r);
        else
            emit_options(out, count, r);
    }
    return out;
}

}  // namespace siplb::test
