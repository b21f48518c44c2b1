#include "control_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "siplb/config/config.h"

namespace siplb::cli {

using json = nlohmann::json;

std::string default_socket() {
    if (::access(kDefaultConfig, R_OK) == 0) {
        auto cfg = config::load_config(kDefaultConfig);
        if (cfg) return cfg->control.socket;
    }
    return kDefaultSocket;
}

Result<json> call(const std::string& path, const std::string& line, int timeout_ms) {
    using R = Result<json>;
    sockaddr_un addr{};
    if (path.size() >= sizeof(addr.sun_path)) return R::fail("socket path too long: " + path);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return R::fail(std::string("socket: ") + std::strerror(errno));
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        const int e = errno;
        ::close(fd);
        std::string hint = (e == ENOENT || e == ECONNREFUSED) ? " (is siplb running? use --socket PATH)"
                           : e == EACCES ? " (permission denied: run as root or a member of the socket's group)"
                                         : "";
        return R::fail("cannot connect to siplb at " + path + ": " + std::strerror(e) + hint);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto left = [&] {
        return static_cast<int>(std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                         deadline - std::chrono::steady_clock::now())
                                                         .count()));
    };
    size_t sent = 0;
    while (sent < line.size()) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, left()) <= 0) {
            ::close(fd);
            return R::fail("timed out sending to siplb at " + path);
        }
        const ssize_t n = ::send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR && errno != EAGAIN) {
            ::close(fd);
            return R::fail(std::string("send: ") + std::strerror(errno));
        }
        if (n > 0) sent += static_cast<size_t>(n);
    }
    std::string in;
    char buf[65536];
    while (in.find('\n') == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        const int r = ::poll(&p, 1, left());
        if (r <= 0) {
            ::close(fd);
            return R::fail("timed out waiting for siplb at " + path);
        }
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            ::close(fd);
            return R::fail(std::string("recv: ") + std::strerror(errno));
        }
        in.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    const size_t nl = in.find('\n');
    if (nl == std::string::npos) return R::fail("siplb closed the connection without answering");
    json j = json::parse(in.begin(), in.begin() + static_cast<long>(nl), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return R::fail("siplb sent a malformed response");
    return j;
}

}  // namespace siplb::cli
