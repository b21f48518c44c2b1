#include "siplb/control/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "siplb/control/log.h"

namespace siplb::control {

namespace {
std::string reply(int code, std::string_view reason, std::string_view type, const std::string& body, bool head_only) {
    std::string r = "HTTP/1.0 " + std::to_string(code) + " " + std::string(reason) + "\r\n";
    r += "Content-Type: " + std::string(type) + "\r\n";
    r += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    if (!head_only) r += body;
    return r;
}
}  // namespace

std::string http_metrics_response(std::string_view head, const std::function<std::string()>& render) {
    const size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol == std::string_view::npos ? head.find('\n') : eol);
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || line.substr(sp2 + 1).rfind("HTTP/1.", 0) != 0)
        return reply(400, "Bad Request", "text/plain", "bad request\n", false);
    const std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (const size_t q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    const bool head_only = method == "HEAD";
    if (method != "GET" && !head_only) return reply(405, "Method Not Allowed", "text/plain", "only GET\n", false);
    if (target != "/metrics") return reply(404, "Not Found", "text/plain", "not found; try /metrics\n", head_only);
    return reply(200, "OK", "text/plain; version=0.0.4; charset=utf-8", render(), head_only);
}

Result<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::listen(const Endpoint& addr, EventLoop& loop,
                                                                     std::function<std::string()> render) {
    using R = Result<std::unique_ptr<MetricsHttpServer>>;
    sockaddr_storage ss{};
    socklen_t len = 0;
    const int family = addr.ip.is_v4() ? AF_INET : AF_INET6;
    if (addr.ip.is_v4()) {
        auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
        s4->sin_family = AF_INET;
        s4->sin_port = htons(addr.port);
        std::memcpy(&s4->sin_addr, addr.ip.bytes.data(), 4);
        len = sizeof(*s4);
    } else {
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(addr.port);
        std::memcpy(&s6->sin6_addr, addr.ip.bytes.data(), 16);
        len = sizeof(*s6);
    }
    int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return R::fail(std::string("metrics socket: ") + std::strerror(errno));
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 32) != 0) {
        std::string e = std::strerror(errno);
        ::close(fd);
        return R::fail("cannot listen for metrics on " + addr.to_string() + ": " + e);
    }
    sockaddr_storage bound{};
    socklen_t blen = sizeof(bound);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
    std::unique_ptr<MetricsHttpServer> s(new MetricsHttpServer(loop, std::move(render)));
    s->fd_ = fd;
    s->port_ = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                       : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    MetricsHttpServer* self = s.get();
    loop.watch(fd, POLLIN, [self](short) { self->on_accept(); });
    s->timer_ = loop.every(std::chrono::seconds(1), [self] {
        const auto now = EventLoop::Clock::now();
        std::vector<int> old;
        for (const auto& [cfd, c] : self->clients_)
            if (now - c.since > std::chrono::seconds(kTimeoutS)) old.push_back(cfd);
        for (int cfd : old) self->drop(cfd);
    });
    return R(std::move(s));
}

MetricsHttpServer::~MetricsHttpServer() {
    loop_.cancel(timer_);
    for (auto& [fd, c] : clients_) {
        loop_.unwatch(fd);
        ::close(fd);
    }
    if (fd_ >= 0) {
        loop_.unwatch(fd_);
        ::close(fd_);
    }
}

void MetricsHttpServer::on_accept() {
    for (int i = 0; i < 32; ++i) {
        int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (clients_.size() >= kMaxClients) {
            static constexpr char kBusy[] =
                "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            [[maybe_unused]] ssize_t n = ::send(fd, kBusy, sizeof(kBusy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            ::close(fd);
            continue;
        }
        clients_[fd] = Client{{}, {}, false, EventLoop::Clock::now()};
        loop_.watch(fd, POLLIN, [this, fd](short ev) { on_client(fd, ev); });
    }
}

void MetricsHttpServer::on_client(int fd, short revents) {
    auto it = clients_.find(fd);
    if (it == clients_.end()) return;
    Client& c = it->second;
    if (revents & (POLLERR | POLLNVAL)) return drop(fd);
    if (!c.responding && (revents & (POLLIN | POLLHUP))) {
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return drop(fd);
        if (n > 0) c.in.append(buf, static_cast<size_t>(n));
        const bool complete = c.in.find("\r\n\r\n") != std::string::npos || c.in.find("\n\n") != std::string::npos;
        if (!complete && c.in.size() <= kMaxHead) return;
        if (!complete) {
            c.out = "HTTP/1.0 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        } else {
            c.out = http_metrics_response(c.in, render_);
        }
        c.in.clear();
        c.responding = true;
        loop_.watch(fd, POLLOUT, [this, fd](short ev) { on_client(fd, ev); });
    }
    if (c.responding && (revents & (POLLOUT | POLLIN))) {
        while (!c.out.empty()) {
            const ssize_t n = ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                c.out.erase(0, static_cast<size_t>(n));
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
            return drop(fd);
        }
        drop(fd);
    }
}

void MetricsHttpServer::drop(int fd) {
    loop_.unwatch(fd);
    ::close(fd);
    clients_.erase(fd);
}

}  // namespace siplb::control
