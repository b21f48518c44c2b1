#include "siplb/control/control_server.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "siplb/control/log.h"
#include "siplb/control/protocol.h"

namespace siplb::control {

namespace {

std::string errstr() { return std::strerror(errno); }

// True when something accepts connections on `path`.
bool socket_is_live(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    const bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return live;
}

Result<uid_t> lookup_user(const std::string& name) {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* out = nullptr;
    if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &out) != 0 || !out)
        return Result<uid_t>::fail("control socket owner '" + name + "' is not a known user");
    return out->pw_uid;
}

Result<gid_t> lookup_group(const std::string& name) {
    std::vector<char> buf(16384);
    group gr{};
    group* out = nullptr;
    if (getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &out) != 0 || !out)
        return Result<gid_t>::fail("control socket group '" + name + "' is not a known group");
    return out->gr_gid;
}

}  // namespace

std::string PeerCred::to_string() const { return "uid=" + std::to_string(uid) + " pid=" + std::to_string(pid); }

Result<std::unique_ptr<ControlServer>> ControlServer::listen(const config::ControlConfig& cfg, EventLoop& loop,
                                                             RequestHandler handler) {
    using R = Result<std::unique_ptr<ControlServer>>;
    const std::string& path = cfg.socket;
    sockaddr_un addr{};
    if (path.empty() || path.size() >= sizeof(addr.sun_path))
        return R::fail("control socket path '" + path + "' is empty or longer than " +
                       std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    if (!cfg.socket_owner.empty()) {
        auto u = lookup_user(cfg.socket_owner);
        if (!u) return R::fail(u.message());
        uid = *u;
    }
    if (!cfg.socket_group.empty()) {
        auto g = lookup_group(cfg.socket_group);
        if (!g) return R::fail(g.message());
        gid = *g;
    }
    std::error_code ec;
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) {
        std::filesystem::create_directories(parent, ec);
        if (ec) return R::fail("cannot create control socket directory " + parent.string() + ": " + ec.message());
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) return R::fail("control socket path " + path + " exists and is not a socket");
        if (socket_is_live(path)) return R::fail("control socket " + path + " is in use: is another siplb running?");
        if (::unlink(path.c_str()) != 0) return R::fail("cannot remove stale control socket " + path + ": " + errstr());
        log(LogLevel::info, "removed stale control socket", {{"path", path}});
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return R::fail("socket(AF_UNIX): " + errstr());
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    // Bind with a restrictive umask so no other user can connect in the
    // window before chmod.
    const mode_t old_mask = ::umask(0177);
    const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::umask(old_mask);
    if (rc != 0) {
        std::string e = errstr();
        ::close(fd);
        return R::fail("cannot bind control socket " + path + ": " + e);
    }
    auto fail_unlink = [&](std::string msg) {
        ::close(fd);
        ::unlink(path.c_str());
        return R::fail(std::move(msg));
    };
    if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) && ::chown(path.c_str(), uid, gid) != 0)
        return fail_unlink("cannot chown control socket " + path + ": " + errstr());
    if (::chmod(path.c_str(), cfg.socket_mode & 07777) != 0)
        return fail_unlink("cannot chmod control socket " + path + ": " + errstr());
    if (::listen(fd, 64) != 0) return fail_unlink("listen on control socket " + path + ": " + errstr());

    std::unique_ptr<ControlServer> s(new ControlServer(loop, std::move(handler)));
    s->path_ = path;
    s->listen_fd_ = fd;
    ControlServer* self = s.get();
    loop.watch(fd, POLLIN, [self](short) { self->on_accept(); });
    s->idle_timer_ = loop.every(std::chrono::seconds(1), [self] { self->reap_idle(); });
    return R(std::move(s));
}

ControlServer::~ControlServer() {
    loop_.cancel(idle_timer_);
    for (auto& [fd, c] : clients_) {
        loop_.unwatch(fd);
        ::close(fd);
    }
    if (listen_fd_ >= 0) {
        loop_.unwatch(listen_fd_);
        ::close(listen_fd_);
        ::unlink(path_.c_str());
    }
}

void ControlServer::on_accept() {
    for (int i = 0; i < 64; ++i) {  // bounded: other fds get their turn
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                log(LogLevel::warn, "control socket accept failed", {{"error", errstr()}});
            return;
        }
        if (clients_.size() >= kMaxClients) {
            ++rejected_;
            const std::string msg =
                error_response("too many control clients (limit " + std::to_string(kMaxClients) + ")");
            [[maybe_unused]] ssize_t n = ::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            ::close(fd);
            continue;
        }
        Client c;
        c.fd = fd;
        ucred cred{};
        socklen_t len = sizeof(cred);
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            c.peer.pid = cred.pid;
            c.peer.uid = cred.uid;
            c.peer.gid = cred.gid;
        }
        c.last_activity = EventLoop::Clock::now();
        clients_.emplace(fd, std::move(c));
        loop_.watch(fd, POLLIN, [this, fd](short revents) { on_client(fd, revents); });
    }
}

void ControlServer::on_client(int fd, short revents) {
    auto it = clients_.find(fd);
    if (it == clients_.end()) return;
    Client& c = it->second;
    if (revents & (POLLERR | POLLNVAL)) {
        drop(fd);
        return;
    }
    if (revents & POLLOUT) {
        flush(c);
        if (!clients_.count(fd)) return;
    }
    if ((revents & (POLLIN | POLLHUP)) && !c.closing) {
        char buf[16384];
        bool eof = false;
        // Read what is there, but at most a bit more than one max line per round.
        for (int i = 0; i < 8; ++i) {
            const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
            if (n > 0) {
                c.in.append(buf, static_cast<size_t>(n));
                c.last_activity = EventLoop::Clock::now();
                if (c.in.size() > kMaxRequestLine + 1) break;
                continue;
            }
            if (n == 0)
                eof = true;
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                eof = true;
            break;
        }
        handle_lines(c);
        if (eof) {
            // Peer closed its side: answer what it sent, then close.
            c.closing = true;
            if (c.out.empty()) {
                drop(fd);
                return;
            }
        }
        flush(c);
        return;
    }
    if ((revents & POLLHUP) && c.closing) drop(fd);
}

void ControlServer::handle_lines(Client& c) {
    size_t start = 0;
    while (!c.closing) {
        const size_t nl = c.in.find('\n', start);
        if (nl == std::string::npos) break;
        std::string_view line(c.in.data() + start, nl - start);
        start = nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank line
        if (line.size() > kMaxRequestLine) {
            c.out += error_response("request line exceeds " + std::to_string(kMaxRequestLine) + " bytes");
            c.closing = true;
            break;
        }
        ++requests_;
        c.out += handler_(line, c.peer);
        if (c.out.size() > kMaxPendingOutput) {
            log(LogLevel::warn, "control client not reading its responses, dropped", {{"peer", c.peer.to_string()}});
            c.out.clear();
            c.closing = true;
            break;
        }
    }
    c.in.erase(0, start);
    if (!c.closing && c.in.size() > kMaxRequestLine) {
        c.out += error_response("request line exceeds " + std::to_string(kMaxRequestLine) + " bytes");
        c.closing = true;
    }
    if (c.closing) c.in.clear();
}

void ControlServer::flush(Client& c) {
    const int fd = c.fd;
    while (!c.out.empty()) {
        const ssize_t n = ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c.out.erase(0, static_cast<size_t>(n));
            c.last_activity = EventLoop::Clock::now();
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
        drop(fd);  // peer gone
        return;
    }
    if (c.out.empty() && c.closing) {
        drop(fd);
        return;
    }
    update_interest(c);
}

void ControlServer::update_interest(Client& c) {
    short ev = 0;
    if (!c.closing) ev |= POLLIN;
    if (!c.out.empty()) ev |= POLLOUT;
    const int fd = c.fd;
    loop_.watch(fd, ev, [this, fd](short revents) { on_client(fd, revents); });
}

void ControlServer::drop(int fd) {
    loop_.unwatch(fd);
    ::close(fd);
    clients_.erase(fd);
}

void ControlServer::reap_idle() {
    const auto now = EventLoop::Clock::now();
    std::vector<int> idle;
    for (const auto& [fd, c] : clients_)
        if (now - c.last_activity > std::chrono::seconds(kClientIdleTimeoutS)) idle.push_back(fd);
    for (int fd : idle) {
        auto& c = clients_.at(fd);
        if (!c.in.empty()) {
            const std::string msg = error_response("incomplete request line: timed out after " +
                                                   std::to_string(kClientIdleTimeoutS) + " s without newline");
            [[maybe_unused]] ssize_t n = ::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        drop(fd);
    }
}

}  // namespace siplb::control
