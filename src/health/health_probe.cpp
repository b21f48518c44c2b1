// Pure parts of health checking: hysteresis, OPTIONS request building,
// response parsing, passive evaluation. No sockets, no clock.
#include <algorithm>
#include <charconv>
#include <cctype>

#include "siplb/health/health.h"

namespace siplb::health {

std::string_view to_string(Verdict v) {
    switch (v) {
        case Verdict::up: return "up";
        case Verdict::down: return "down";
        case Verdict::overloaded: return "overloaded";
    }
    return "?";
}

std::string_view to_string(ProbeOutcome o) {
    switch (o) {
        case ProbeOutcome::ok: return "ok";
        case ProbeOutcome::overloaded: return "overloaded";
        case ProbeOutcome::timeout: return "timeout";
        case ProbeOutcome::unreachable: return "unreachable";
        case ProbeOutcome::send_error: return "send_error";
    }
    return "?";
}

bool HealthState::record(const ProbeResult& r, TimePoint now) {
    const Verdict before = verdict_;
    const uint32_t down_after = std::max<uint32_t>(1, p_.down_after);
    const uint32_t up_after = std::max<uint32_t>(1, p_.up_after);
    switch (r.outcome) {
        case ProbeOutcome::ok: {
            ++ok_;
            fail_ = 0;
            bad_ = 0;
            const bool held = overloaded_until_ && now < *overloaded_until_;
            if (!held) overloaded_until_.reset();
            if (verdict_ != Verdict::up && ok_ >= up_after && !held) verdict_ = Verdict::up;
            break;
        }
        case ProbeOutcome::overloaded: {
            ok_ = 0;
            fail_ = 0;  // it answered: alive
            ++bad_;
            const bool explicit_hold = p_.honor_retry_after && r.retry_after_s.has_value();
            if (explicit_hold) {
                const TimePoint until = now + std::chrono::seconds(*r.retry_after_s);
                if (!overloaded_until_ || until > *overloaded_until_) overloaded_until_ = until;
            }
            if (verdict_ == Verdict::down || explicit_hold || bad_ >= down_after) verdict_ = Verdict::overloaded;
            break;
        }
        case ProbeOutcome::timeout:
        case ProbeOutcome::unreachable:
        case ProbeOutcome::send_error:
            ok_ = 0;
            ++fail_;
            ++bad_;
            if (verdict_ != Verdict::down && fail_ >= down_after) verdict_ = Verdict::down;
            break;
    }
    return verdict_ != before;
}

std::string build_options_request(const Endpoint& target, const Endpoint& local, const std::string& from_uri,
                                  const ProbeIds& ids, std::string_view user_agent) {
    const std::string t = target.to_string();
    const std::string l = local.to_string();
    std::string m;
    m.reserve(512);
    m += "OPTIONS sip:" + t + " SIP/2.0\r\n";
    m += "Via: SIP/2.0/UDP " + l + ";branch=" + ids.branch + ";rport\r\n";
    m += "Max-Forwards: 70\r\n";
    m += "From: <" + from_uri + ">;tag=" + ids.from_tag + "\r\n";
    m += "To: <sip:" + t + ">\r\n";
    m += "Call-ID: " + ids.call_id + "\r\n";
    m += "CSeq: " + std::to_string(ids.cseq) + " OPTIONS\r\n";
    m += "Contact: <sip:siplb@" + l + ">\r\n";
    m += "Accept: application/sdp\r\n";
    m += "User-Agent: ";
    m += user_agent;
    m += "\r\n";
    m += "Content-Length: 0\r\n\r\n";
    return m;
}

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

// Value of parameter `name` in ";a=b;branch=z9..." (case-insensitive name).
std::string_view param(std::string_view header_value, std::string_view name) {
    size_t pos = 0;
    while ((pos = header_value.find(';', pos)) != std::string_view::npos) {
        ++pos;
        auto end = header_value.find_first_of(";,", pos);
        auto p = trim(header_value.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
        auto eq = p.find('=');
        if (eq != std::string_view::npos && iequals(trim(p.substr(0, eq)), name)) return trim(p.substr(eq + 1));
        if (end == std::string_view::npos || header_value[end] == ',') break;
    }
    return {};
}

}  // namespace

std::optional<SipResponseInfo> parse_sip_response(std::string_view d) {
    auto eol = d.find("\r\n");
    if (eol == std::string_view::npos) return std::nullopt;
    auto line = d.substr(0, eol);
    if (line.size() < 12 || line.substr(0, 8) != "SIP/2.0 ") return std::nullopt;
    SipResponseInfo info;
    unsigned code = 0;
    auto [p, ec] = std::from_chars(line.data() + 8, line.data() + line.size(), code);
    if (ec != std::errc() || p != line.data() + 11 || code < 100 || code > 699) return std::nullopt;
    info.status = static_cast<uint16_t>(code);
    info.reason = std::string(trim(line.substr(11)));
    bool via_seen = false;
    size_t pos = eol + 2;
    while (pos < d.size()) {
        auto next = d.find("\r\n", pos);
        if (next == std::string_view::npos) next = d.size();
        auto h = d.substr(pos, next - pos);
        pos = next + 2;
        if (h.empty()) break;  // end of headers
        auto colon = h.find(':');
        if (colon == std::string_view::npos) continue;
        auto name = trim(h.substr(0, colon));
        auto value = trim(h.substr(colon + 1));
        if (iequals(name, "Call-ID") || iequals(name, "i")) {
            info.call_id = std::string(value);
        } else if ((iequals(name, "Via") || iequals(name, "v")) && !via_seen) {
            via_seen = true;
            info.branch = std::string(param(value, "branch"));
        } else if (iequals(name, "CSeq")) {
            auto sp = value.find_first_of(" \t");
            if (sp != std::string_view::npos) info.cseq_method = std::string(trim(value.substr(sp)));
        } else if (iequals(name, "Retry-After")) {
            uint32_t secs = 0;
            auto [q, e2] = std::from_chars(value.data(), value.data() + value.size(), secs);
            if (e2 == std::errc() && q != value.data()) info.retry_after_s = secs;
        }
    }
    if (info.call_id.empty()) return std::nullopt;
    return info;
}

ProbeResult evaluate_passive(const PassiveCounts& c, const PassiveParams& p) {
    ProbeResult r;
    if (p.threshold_503 > 0 && c.responses_503 >= p.threshold_503) {
        r.outcome = ProbeOutcome::overloaded;
        r.status_code = 503;
        r.detail = "passive: " + std::to_string(c.responses_503) + " 503 responses in interval";
        return r;
    }
    if (c.requests >= std::max<uint64_t>(1, p.min_requests) &&
        static_cast<double>(c.missing_responses) >= p.missing_fraction * static_cast<double>(c.requests)) {
        r.outcome = ProbeOutcome::timeout;
        r.detail = "passive: " + std::to_string(c.missing_responses) + " of " + std::to_string(c.requests) +
                   " requests unanswered";
        return r;
    }
    r.outcome = ProbeOutcome::ok;
    r.detail = "passive: ok";
    return r;
}

}  // namespace siplb::health
