// The control socket server: a Unix stream socket speaking protocol.h,
// driven by the control thread's EventLoop. Non-blocking throughout: per
// client input and output buffers with caps, a client count cap, an idle
// timeout; one slow or hostile client never stalls the others.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "siplb/common/result.h"
#include "siplb/config/config.h"
#include "siplb/control/event_loop.h"

namespace siplb::control {

// Credentials of the connected process (SO_PEERCRED).
struct PeerCred {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string to_string() const;  // "uid=1000 pid=4242"
};

// Handles one request line (no '\n'); returns the response line ('\n' included).
using RequestHandler = std::function<std::string(std::string_view line, const PeerCred& peer)>;

class ControlServer {
public:
    // Creates the parent directory if missing, removes a stale socket (one
    // nobody answers on; a live one is an error: another daemon runs),
    // binds, chmods to socket_mode, chowns to socket_owner/socket_group.
    static Result<std::unique_ptr<ControlServer>> listen(const config::ControlConfig& cfg, EventLoop& loop,
                                                         RequestHandler handler);
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    const std::string& path() const { return path_; }
    size_t clients() const { return clients_.size(); }
    uint64_t requests() const { return requests_; }
    uint64_t rejected_clients() const { return rejected_; }

private:
    struct Client {
        int fd = -1;
        PeerCred peer;
        std::string in;
        std::string out;
        bool closing = false;  // close once `out` is flushed
        EventLoop::Clock::time_point last_activity;
    };
    ControlServer(EventLoop& loop, RequestHandler handler) : loop_(loop), handler_(std::move(handler)) {}
    void on_accept();
    void on_client(int fd, short revents);
    void handle_lines(Client& c);
    void flush(Client& c);
    void update_interest(Client& c);
    void drop(int fd);
    void reap_idle();

    EventLoop& loop_;
    RequestHandler handler_;
    std::string path_;
    int listen_fd_ = -1;
    EventLoop::TimerId idle_timer_ = 0;
    std::map<int, Client> clients_;
    uint64_t requests_ = 0;
    uint64_t rejected_ = 0;
};

}  // namespace siplb::control
