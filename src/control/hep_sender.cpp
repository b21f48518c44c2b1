#include "siplb/control/hep_sender.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "siplb/control/hep.h"
#include "siplb/control/log.h"

namespace siplb::control {

Result<std::unique_ptr<HepSender>> HepSender::open(const Endpoint& collector, uint32_t agent_id, Drain drain) {
    using R = Result<std::unique_ptr<HepSender>>;
    sockaddr_storage ss{};
    socklen_t len;
    if (collector.ip.is_v4()) {
        auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
        sa->sin_family = AF_INET;
        sa->sin_port = htons(collector.port);
        std::memcpy(&sa->sin_addr, collector.ip.bytes.data(), 4);
        len = sizeof(sockaddr_in);
    } else {
        auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons(collector.port);
        std::memcpy(&sa->sin6_addr, collector.ip.bytes.data(), 16);
        len = sizeof(sockaddr_in6);
    }
    const int fd = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return R::fail(std::string("mirror: socket: ") + std::strerror(errno));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        const std::string e = std::strerror(errno);
        ::close(fd);
        return R::fail("mirror: cannot reach HEP collector " + collector.to_string() + ": " + e);
    }
    return R(std::unique_ptr<HepSender>(new HepSender(fd, agent_id, std::move(drain))));
}

HepSender::~HepSender() { ::close(fd_); }

size_t HepSender::pump(size_t max) {
    size_t sent = 0;
    drain_(
        [&](const dataplane::MirrorSlot& s) {
            HepMessage m;
            m.src = s.src;
            m.dst = s.dst;
            m.ts_ns = s.ts_ns;
            m.agent_id = agent_id_;
            m.payload = {reinterpret_cast<const char*>(s.data), s.payload_len};
            if (s.call_id_len && s.call_id_offset + s.call_id_len <= s.payload_len)
                m.call_id = m.payload.substr(s.call_id_offset, s.call_id_len);
            encode_hep3(m, buf_);
            if (::send(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT | MSG_NOSIGNAL) ==
                static_cast<ssize_t>(buf_.size())) {
                ++sent;
                return;
            }
            // Collector down (ICMP refused), socket buffer full: this one is lost.
            ++errors_;
            const int64_t now =
                std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
                    .count();
            if (now - last_error_log_s_ >= 10) {
                last_error_log_s_ = now;
                log(LogLevel::warn, "mirror: HEP send failed",
                    {{"error", std::strerror(errno)}, {"failed_total", std::to_string(errors_)}});
            }
        },
        max);
    sent_ += sent;
    return sent;
}

}  // namespace siplb::control
