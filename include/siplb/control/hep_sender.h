// The HEP mirror's sending side: on the control thread, takes the SIP
// datagrams the workers queued ([mirror], Dataplane::drain_mirror), encodes
// them as HEPv3 (hep.h) and sends them over an ordinary non-blocking UDP
// socket (the kernel's path: the mirror is not the dataplane's traffic).
// The workers never wait for it: what it does not take in time is dropped
// and counted in their rings (mirror.ring_full).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"
#include "siplb/dataplane/capture.h"

namespace siplb::control {

class HepSender {
public:
    using Drain = std::function<size_t(const std::function<void(const dataplane::MirrorSlot&)>&, size_t max)>;
    static Result<std::unique_ptr<HepSender>> open(const Endpoint& collector, uint32_t agent_id, Drain drain);
    ~HepSender();
    HepSender(const HepSender&) = delete;
    HepSender& operator=(const HepSender&) = delete;

    // Sends what is queued (at most `max`); returns how many were sent.
    size_t pump(size_t max = 8192);
    uint64_t sent() const noexcept { return sent_; }
    uint64_t send_errors() const noexcept { return errors_; }

private:
    HepSender(int fd, uint32_t agent_id, Drain drain) : fd_(fd), agent_id_(agent_id), drain_(std::move(drain)) {}
    int fd_;
    uint32_t agent_id_;
    Drain drain_;
    std::vector<uint8_t> buf_;
    uint64_t sent_ = 0, errors_ = 0;
    int64_t last_error_log_s_ = 0;
};

}  // namespace siplb::control
