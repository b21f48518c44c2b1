// Minimal HTTP/1.x responder for Prometheus: GET /metrics (200, text
// exposition 0.0.4), anything else 404 (405 for non-GET/HEAD). One response
// per connection (Connection: close). Non-blocking in the control thread's
// EventLoop; requests capped at 8 KiB of headers, 32 clients, 10 s.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"
#include "siplb/control/event_loop.h"

namespace siplb::control {

// Parses the request head and returns the full HTTP response for it.
std::string http_metrics_response(std::string_view request_head, const std::function<std::string()>& render);

class MetricsHttpServer {
public:
    static constexpr size_t kMaxHead = 8192;
    static constexpr size_t kMaxClients = 32;
    static constexpr int kTimeoutS = 10;

    static Result<std::unique_ptr<MetricsHttpServer>> listen(const Endpoint& addr, EventLoop& loop,
                                                             std::function<std::string()> render);
    ~MetricsHttpServer();
    MetricsHttpServer(const MetricsHttpServer&) = delete;
    MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;
    uint16_t port() const { return port_; }

private:
    struct Client {
        std::string in;
        std::string out;
        bool responding = false;
        EventLoop::Clock::time_point since;
    };
    MetricsHttpServer(EventLoop& loop, std::function<std::string()> render) : loop_(loop), render_(std::move(render)) {}
    void on_accept();
    void on_client(int fd, short revents);
    void drop(int fd);

    EventLoop& loop_;
    std::function<std::string()> render_;
    int fd_ = -1;
    uint16_t port_ = 0;
    EventLoop::TimerId timer_ = 0;
    std::map<int, Client> clients_;
};

}  // namespace siplb::control
