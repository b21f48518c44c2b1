#include "siplb/control/capture_service.h"

#include "siplb/control/log.h"

namespace siplb::control {

using json = nlohmann::json;
using JResult = Result<json>;

namespace {

std::string describe(const dataplane::CaptureFilter& f) {
    std::string s;
    auto add = [&](const char* k, const std::string& v) {
        if (!s.empty()) s += ' ';
        s += k;
        s += '=';
        s += v;
    };
    if (!f.pool.empty()) add("pool", f.pool);
    if (f.backend) add("backend", f.backend->to_string());
    if (f.client) add("client", f.client->to_string());
    if (!f.call_id.empty()) add("call_id", f.call_id);
    return s.empty() ? "all balanced datagrams" : s;
}

}  // namespace

CaptureService::~CaptureService() {
    if (id_) finish();
}

uint64_t CaptureService::finish() {
    id_ = 0;
    return source_.stop ? source_.stop() : 0;
}

JResult CaptureService::execute(const Request& r, const Actor& who, Clock::time_point now) {
    if (!source_.start) return JResult::fail("capture: no dataplane in this daemon");
    if (r.cmd == CommandKind::capture_start) {
        if (id_) return JResult::fail("capture: another capture is running (started by " + owner_ + ")");
        dataplane::CaptureFilter f;
        f.pool = r.pool;
        f.backend = r.backend;
        f.client = r.client;
        f.call_id = r.call_id;
        if (Status st = source_.start(f, ring_); !st) return JResult::fail("capture: " + st.message());
        id_ = next_id_++;
        owner_ = who.who;
        last_read_ = now;
        log(LogLevel::info, "capture started", {{"by", who.who}, {"filter", describe(f)}});
        return json{{"id", id_}, {"snaplen", dataplane::CaptureSlot::kSnapLen}, {"ring", ring_}};
    }
    if (!id_ || r.capture_id != id_)
        return JResult::fail("capture " + std::to_string(r.capture_id) + " is not running (it ended, or was idle " +
                             std::to_string(kCaptureIdleS) + " s)");
    if (r.cmd == CommandKind::capture_read) {
        last_read_ = now;
        json frames = json::array();
        source_.drain(
            [&](const dataplane::CaptureSlot& s) {
                frames.push_back(json{{"ts_ns", s.ts_ns},
                                      {"len", s.orig_len},
                                      {"sent", s.sent != 0},
                                      {"worker", s.worker},
                                      {"data", base64_encode(s.data, s.cap_len)}});
            },
            kCaptureReadMax);
        return json{{"frames", std::move(frames)}};
    }
    const uint64_t lost = finish();
    log(LogLevel::info, "capture stopped", {{"by", who.who}, {"lost", std::to_string(lost)}});
    return json{{"lost", lost}};
}

void CaptureService::expire(Clock::time_point now) {
    if (id_ && now - last_read_ > std::chrono::seconds(kCaptureIdleS)) {
        const uint64_t lost = finish();
        log(LogLevel::warn, "capture stopped: its client stopped reading",
            {{"by", owner_}, {"lost", std::to_string(lost)}});
    }
}

}  // namespace siplb::control
