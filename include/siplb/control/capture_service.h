// The control side of `siplbctl capture`: starts a capture in the dataplane
// with the operator's filter, hands the copied frames to the client that
// polls for them (capture_read), and stops it on capture_stop or when its
// client has not read for kCaptureIdleS seconds (a siplbctl that was killed).
// One capture at a time: the workers' hot path checks one pointer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "siplb/common/result.h"
#include "siplb/control/pool_manager.h"
#include "siplb/control/protocol.h"
#include "siplb/dataplane/capture.h"

namespace siplb::control {

// What the dataplane offers (Dataplane::start_capture, drain_capture,
// stop_capture); tests put a fake here.
struct CaptureSource {
    std::function<Status(const dataplane::CaptureFilter&, uint32_t ring_slots)> start;
    std::function<size_t(const std::function<void(const dataplane::CaptureSlot&)>&, size_t max)> drain;
    std::function<uint64_t()> stop;  // frames lost to full rings
};

class CaptureService {
public:
    using Clock = std::chrono::steady_clock;
    // `ring_slots`: CaptureSlots (2 KiB each) per worker while a capture runs.
    CaptureService(CaptureSource source, uint32_t ring_slots) : source_(std::move(source)), ring_(ring_slots) {}
    ~CaptureService();

    // capture_start / capture_read / capture_stop (protocol.h).
    Result<nlohmann::json> execute(const Request& r, const Actor& who, Clock::time_point now);
    // Stops a capture its client stopped reading; call about once a second.
    void expire(Clock::time_point now);
    bool running() const noexcept { return id_ != 0; }

private:
    uint64_t finish();

    CaptureSource source_;
    uint32_t ring_;
    uint64_t id_ = 0;  // running capture, 0: none
    uint64_t next_id_ = 1;
    std::string owner_;
    Clock::time_point last_read_;
};

}  // namespace siplb::control
