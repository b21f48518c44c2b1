// Pure parts of health checking: hysteresis, OPTIONS request building,
// response parsing, passive windows. No sockets, no clock.
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
        case ProbeOutcome::bad_response: return "bad_response";
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
        case ProbeOutcome::bad_response:
            ok_ = 0;
            ++fail_;
            ++bad_;
            if (verdict_ != Verdict::down && fail_ >= down_after) verdict_ = Verdict::down;
            break;
    }
    return verdict_ != before;
}

bool HealthState::record_passive(const PassiveEvidence& e, TimePoint now) {
    if (!e.overloaded) return record(ProbeResult{ProbeOutcome::ok, 0, std::nullopt, e.detail}, now);
    const Verdict before = verdict_;
    ok_ = 0;
    fail_ = 0;  // it answers calls: alive
    if (p_.honor_retry_after && e.retry_after_s) {
        const TimePoint until = now + std::chrono::seconds(*e.retry_after_s);
        if (!overloaded_until_ || until > *overloaded_until_) overloaded_until_ = until;
    }
    verdict_ = Verdict::overloaded;
    return verdict_ != before;
}

void HealthState::assume(Verdict v) {
    verdict_ = v;
    ok_ = 0;
    fail_ = 0;
    bad_ = 0;
    overloaded_until_.reset();
}

std::string build_options_request(const Endpoint& target, const Endpoint& local, const std::string& from_uri,
                                  const ProbeIds& ids, std::string_view user_agent, std::string_view transport) {
    const std::string t = target.to_string();
    const std::string l = local.to_string();
    std::string m;
    m.reserve(512);
    m += "OPTIONS sip:" + t + " SIP/2.0\r\n";
    m += "Via: SIP/2.0/";
    m += transport;
    m += " " + l + ";branch=" + ids.branch + ";rport\r\n";
    m += "Max-Forwards: 70\r\n";
    m += "From: <" + from_uri + ">;tag=" + ids.from_tag + "\r\n";
    m += "To: <sip:" + t + ">\r\n";
    m += "Call-ID: " + ids.call_id + "\r\n";
    m += "CSeq: " + std::to_string(ids.cseq) + " OPTIONS\r\n";
    m += "Contact: <sip:siplb@" + l + (transport == "UDP" ? std::string() : ";transport=tcp") + ">\r\n";
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

ProbeResult classify_response(const SipResponseInfo& info, const std::vector<uint16_t>& overload_codes) {
    ProbeResult r;
    r.status_code = info.status;
    r.detail = std::to_string(info.status) + (info.reason.empty() ? "" : " " + info.reason);
    if (std::find(overload_codes.begin(), overload_codes.end(), info.status) != overload_codes.end()) {
        r.outcome = ProbeOutcome::overloaded;
        r.retry_after_s = info.retry_after_s;
        if (info.retry_after_s) r.detail += " (Retry-After " + std::to_string(*info.retry_after_s) + ")";
    } else {
        r.outcome = ProbeOutcome::ok;
    }
    return r;
}

StreamFrame frame_stream_message(std::string_view buf, size_t max_message) {
    StreamFrame f;
    auto malformed = [&](std::string why) {
        f.kind = StreamFrame::Kind::malformed;
        f.error = std::move(why);
        return f;
    };
    while (f.skip + 1 < buf.size() && buf[f.skip] == '\r' && buf[f.skip + 1] == '\n') f.skip += 2;
    const std::string_view msg = buf.substr(f.skip);
    const size_t end = msg.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        if (msg.size() > max_message)
            return malformed("no end of headers within " + std::to_string(max_message) + " bytes");
        return f;
    }
    const size_t headers = end + 4;
    std::optional<uint64_t> length;
    size_t pos = msg.find("\r\n");  // the start line is no header
    while (pos + 2 < headers) {
        const size_t line_start = pos + 2;
        const size_t line_end = msg.find("\r\n", line_start);
        const std::string_view line = msg.substr(line_start, line_end - line_start);
        pos = line_end;
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        const std::string_view name = trim(line.substr(0, colon));
        if (!iequals(name, "Content-Length") && !iequals(name, "l")) continue;
        const std::string_view value = trim(line.substr(colon + 1));
        uint64_t n = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (value.empty() || ec != std::errc() || p != value.data() + value.size())
            return malformed("bad Content-Length '" + std::string(value) + "'");
        if (length && *length != n) return malformed("conflicting Content-Length headers");
        length = n;
    }
    if (!length) return malformed("no Content-Length (mandatory on stream transports)");
    if (*length > max_message || headers + *length > max_message)
        return malformed("message longer than " + std::to_string(max_message) + " bytes");
    if (msg.size() < headers + *length) return f;
    f.kind = StreamFrame::Kind::message;
    f.length = headers + static_cast<size_t>(*length);
    return f;
}

PassiveParams passive_params(const config::HealthConfig& c) {
    PassiveParams p;
    p.enabled = c.passive;
    p.threshold = std::max<uint64_t>(1, c.passive_503_threshold);
    p.interval = std::chrono::milliseconds(std::max<uint32_t>(1, c.interval_ms));
    p.probed = c.enabled;
    return p;
}

void PassiveWindow::reset() {
    marks_.clear();
    primed_ = false;
    last_ = 0;
    last_retry_after_s_ = 0;
    last_quiet_ = {};
}

void PassiveWindow::restart(TimePoint now, uint64_t cumulative) {
    marks_.clear();
    marks_.push_back({now, cumulative});
    last_quiet_ = now;
}

std::optional<PassiveEvidence> PassiveWindow::observe(uint64_t cumulative, uint32_t retry_after_s, TimePoint now,
                                                      const PassiveParams& p) {
    using std::chrono::milliseconds;
    if (!p.enabled) {
        reset();
        return std::nullopt;
    }
    const milliseconds interval = std::max(p.interval, milliseconds(1));
    const bool went_back = primed_ && cumulative < last_;
    last_retry_after_s_ = retry_after_s;
    if (!primed_ || went_back || marks_.empty() || now < marks_.back().at) {
        primed_ = true;
        last_ = cumulative;
        restart(now, cumulative);
        return std::nullopt;
    }
    last_ = cumulative;
    if (now - marks_.back().at >= interval / 16) marks_.push_back({now, cumulative});
    // Keep one reading at or before the window start as its anchor.
    while (marks_.size() >= 2 && marks_[1].at <= now - interval) marks_.pop_front();

    const Mark& oldest = marks_.front();
    const auto span = std::chrono::duration_cast<milliseconds>(now - oldest.at);
    if (span <= milliseconds(0)) return std::nullopt;
    uint64_t count = cumulative - oldest.count;
    milliseconds count_span = span;
    double per_interval = static_cast<double>(count);
    if (span > interval) {
        // The anchor lies before the window: its count covers a longer span,
        // so only its average rate says something about one interval. A
        // reading inside the window gives an exact, if partial, count.
        per_interval = static_cast<double>(count) * static_cast<double>(interval.count()) /
                       static_cast<double>(span.count());
        if (marks_.size() >= 2) {
            const Mark& inside = marks_[1];
            const uint64_t inside_count = cumulative - inside.count;
            if (static_cast<double>(inside_count) > per_interval) {
                per_interval = static_cast<double>(inside_count);
                count = inside_count;
                count_span = std::chrono::duration_cast<milliseconds>(now - inside.at);
            }
        }
    }
    const std::string counted = std::to_string(count) + " overload responses in " + std::to_string(count_span.count()) +
                                " ms";
    if (per_interval >= static_cast<double>(p.threshold)) {
        PassiveEvidence e;
        e.overloaded = true;
        e.count = count;
        e.span = count_span;
        if (retry_after_s > 0) e.retry_after_s = retry_after_s;
        e.detail = "passive: " + counted;
        if (e.retry_after_s) e.detail += " (Retry-After " + std::to_string(retry_after_s) + " s)";
        restart(now, cumulative);
        return e;
    }
    if (!p.probed && now - last_quiet_ >= interval) {
        last_quiet_ = now;
        PassiveEvidence e;
        e.count = count;
        e.span = count_span;
        e.detail = "passive: " + counted + ", below " + std::to_string(p.threshold);
        return e;
    }
    return std::nullopt;
}

}  // namespace siplb::health
