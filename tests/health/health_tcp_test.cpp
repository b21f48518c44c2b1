// HealthChecker's TCP checks against listeners of this test on loopback:
// OPTIONS over TCP answered (also in fragments, after a provisional), 503
// with Retry-After, a refused port, a listener that accepts and never
// answers, and a TLS-port connect check next to a TCP one.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "checker_loop.h"
#include "siplb/health/health.h"

using namespace siplb;
using namespace siplb::health;
using namespace std::chrono_literals;

namespace {

enum class Answer { ok, ok_in_pieces, busy, silent, accept_only };

// A TCP listener on 127.0.0.1 answering each OPTIONS as told; counts
// connections accepted and closed by the peer.
class FakeSipServer {
public:
    explicit FakeSipServer(Answer a) : answer_(a) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        const int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        EXPECT_EQ(::listen(fd_, 16), 0);
        socklen_t len = sizeof sa;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
        port_ = ntohs(sa.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~FakeSipServer() { stop(); }
    void stop() {
        if (!thread_.joinable()) return;
        stop_ = true;
        thread_.join();
        ::close(fd_);
        for (auto& c : conns_) ::close(c.fd);
    }
    uint16_t port() const { return port_; }
    Endpoint endpoint() const { return *Endpoint::parse("127.0.0.1:" + std::to_string(port_)); }
    int accepted() const { return accepted_; }
    int closed_by_peer() const { return closed_; }
    std::string first_request() {
        std::lock_guard<std::mutex> g(mu_);
        return first_request_;
    }

private:
    struct Conn {
        int fd;
        std::string in;
    };
    static std::string header(const std::string& msg, const std::string& name) {
        auto at = msg.find("\r\n" + name + ": ");
        if (at == std::string::npos) return {};
        at += name.size() + 4;
        return msg.substr(at, msg.find("\r\n", at) - at);
    }
    void reply(Conn& c, const std::string& req) {
        const std::string common = "Via: " + header(req, "Via") + "\r\nCall-ID: " + header(req, "Call-ID") +
                                   "\r\nCSeq: " + header(req, "CSeq") + "\r\n";
        auto send_all = [&](const std::string& s) { (void)::send(c.fd, s.data(), s.size(), MSG_NOSIGNAL); };
        switch (answer_) {
            case Answer::ok: send_all("SIP/2.0 200 OK\r\n" + common + "Content-Length: 0\r\n\r\n"); break;
            case Answer::ok_in_pieces: {
                // A provisional, then the final answer with a body, in pieces.
                const std::string all = "SIP/2.0 100 Trying\r\n" + common + "Content-Length: 0\r\n\r\n" +
                                        "SIP/2.0 200 OK\r\n" + common +
                                        "Content-Type: text/plain\r\nContent-Length: 4\r\n\r\nbody";
                for (size_t at = 0; at < all.size(); at += 7) {
                    send_all(all.substr(at, 7));
                    std::this_thread::sleep_for(1ms);
                }
                break;
            }
            case Answer::busy:
                send_all("SIP/2.0 503 Service Unavailable\r\n" + common +
                         "Retry-After: 30\r\nContent-Length: 0\r\n\r\n");
                break;
            case Answer::silent:
            case Answer::accept_only: break;
        }
    }
    void run() {
        while (!stop_) {
            std::vector<pollfd> p{{fd_, POLLIN, 0}};
            for (auto& c : conns_) p.push_back({c.fd, POLLIN, 0});
            if (::poll(p.data(), p.size(), 20) <= 0) continue;
            if (p[0].revents & POLLIN) {
                const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (c >= 0) {
                    ++accepted_;
                    conns_.push_back({c, {}});
                }
            }
            for (size_t i = 1; i < p.size(); ++i) {
                if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                Conn& c = conns_[i - 1];
                char buf[4096];
                const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
                if (n <= 0) {
                    ++closed_;
                    ::close(c.fd);
                    c.fd = -1;
                    continue;
                }
                c.in.append(buf, static_cast<size_t>(n));
                const auto end = c.in.find("\r\n\r\n");
                if (end == std::string::npos) continue;
                const std::string req = c.in.substr(0, end + 4);
                c.in.erase(0, end + 4);
                {
                    std::lock_guard<std::mutex> g(mu_);
                    if (first_request_.empty()) first_request_ = req;
                }
                if (answer_ != Answer::accept_only) reply(c, req);
            }
            std::erase_if(conns_, [](const Conn& c) { return c.fd < 0; });
        }
    }

    Answer answer_;
    int fd_ = -1;
    uint16_t port_ = 0;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0}, closed_{0};
    std::vector<Conn> conns_;
    std::mutex mu_;
    std::string first_request_;
};

// A loopback port with nothing listening: connects are refused.
uint16_t closed_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    ::close(fd);
    return ntohs(sa.sin_port);
}

struct Change {
    Endpoint ep;
    Verdict verdict;
    std::string detail;
};

class HealthTcpTest : public ::testing::Test {
protected:
    std::vector<Change> changes;
    std::unique_ptr<HealthChecker> hc;
    config::HealthConfig cfg;

    void SetUp() override {
        cfg.interval_ms = 100;
        cfg.jitter = 0.1;
        cfg.timeout_ms = 80;
        cfg.down_after = 2;
        cfg.up_after = 2;
        cfg.udp = config::TransportCheck::off;
        cfg.tcp = config::TransportCheck::options;
        HealthChecker::Options o;
        o.seed = 99;
        auto r = HealthChecker::create(
            [this](const std::string&, const Endpoint& ep, Verdict v, const std::string& d) {
                changes.push_back({ep, v, d});
            },
            o);
        ASSERT_TRUE(r.ok()) << r.message();
        hc = std::move(r.value());
    }

    template <class Pred>
    bool run_until(Pred pred, std::chrono::milliseconds limit) {
        return test::run_checker_until(*hc, pred, limit, 20);
    }
    ProbeStatus status_of(const Endpoint& ep) { return test::probe_status(*hc, ep); }
    // Sockets the checker holds besides its two UDP ones.
    size_t tcp_fds() { return hc->fds().size() - 2; }
};

}  // namespace

TEST_F(HealthTcpTest, OptionsOverTcpAnsweredKeepsItUpAndClosesEachConnection) {
    FakeSipServer server(Answer::ok);
    hc->set_pool("p", cfg);
    hc->set_targets("p", {server.endpoint()}, Clock::now());
    ASSERT_TRUE(run_until([&] { return status_of(server.endpoint()).responses >= 3; }, 5s));
    const ProbeStatus st = status_of(server.endpoint());
    EXPECT_EQ(st.verdict, Verdict::up);
    ASSERT_EQ(st.checks.size(), 1u);  // udp off: only the TCP check
    EXPECT_EQ(st.checks[0].check, "tcp");
    EXPECT_EQ(st.checks[0].method, "options");
    EXPECT_EQ(st.checks[0].last_status, 200);
    EXPECT_EQ(st.last_detail, "tcp: 200 OK");
    EXPECT_TRUE(changes.empty());
    const std::string req = server.first_request();
    EXPECT_EQ(req.rfind("OPTIONS sip:127.0.0.1:" + std::to_string(server.port()) + " SIP/2.0\r\n", 0), 0u) << req;
    EXPECT_NE(req.find("\r\nVia: SIP/2.0/TCP 127.0.0.1:"), std::string::npos) << req;
    // One connection per probe, each closed by the checker once answered.
    ASSERT_TRUE(run_until([&] { return server.closed_by_peer() >= 3; }, 2s));
    EXPECT_LE(server.accepted() - server.closed_by_peer(), 1);  // at most the probe in flight
    EXPECT_LE(tcp_fds(), 1u);
}

TEST_F(HealthTcpTest, ProvisionalThenFinalInPiecesIsOneAnswer) {
    FakeSipServer server(Answer::ok_in_pieces);
    cfg.timeout_ms = 90;
    hc->set_pool("p", cfg);
    hc->set_targets("p", {server.endpoint()}, Clock::now());
    ASSERT_TRUE(run_until([&] { return status_of(server.endpoint()).responses >= 2; }, 5s));
    const ProbeStatus st = status_of(server.endpoint());
    EXPECT_EQ(st.verdict, Verdict::up);
    EXPECT_EQ(st.checks[0].last_status, 200);
    EXPECT_EQ(st.checks[0].bad_responses, 0u);
}

TEST_F(HealthTcpTest, RefusedConnectionsTakeItDown) {
    const Endpoint ep = *Endpoint::parse("127.0.0.1:" + std::to_string(closed_port()));
    hc->set_pool("p", cfg);
    hc->set_targets("p", {ep}, Clock::now());
    ASSERT_TRUE(run_until([&] { return !changes.empty(); }, 3s));
    EXPECT_EQ(changes.back().verdict, Verdict::down);
    EXPECT_EQ(changes.back().detail, "tcp: connect: Connection refused");
    const ProbeStatus st = status_of(ep);
    EXPECT_GE(st.checks[0].unreachable, 2u);
    EXPECT_EQ(tcp_fds(), 0u);
}

TEST_F(HealthTcpTest, AcceptedButSilentTimesOut) {
    FakeSipServer server(Answer::accept_only);
    hc->set_pool("p", cfg);
    hc->set_targets("p", {server.endpoint()}, Clock::now());
    ASSERT_TRUE(run_until([&] { return !changes.empty(); }, 3s));
    EXPECT_EQ(changes.back().verdict, Verdict::down);
    EXPECT_EQ(changes.back().detail, "tcp: no final response: timeout after 80 ms");
    EXPECT_GE(status_of(server.endpoint()).checks[0].timeouts, 2u);
    // Timed-out probes close their connections too.
    ASSERT_TRUE(run_until([&] { return server.closed_by_peer() >= 2; }, 2s));
    EXPECT_LE(tcp_fds(), 1u);
}

TEST_F(HealthTcpTest, BusyWithRetryAfterIsOverloaded) {
    FakeSipServer server(Answer::busy);
    hc->set_pool("p", cfg);
    hc->set_targets("p", {server.endpoint()}, Clock::now());
    ASSERT_TRUE(run_until([&] { return !changes.empty(); }, 3s));
    EXPECT_EQ(changes.back().verdict, Verdict::overloaded);  // the server asked: at once
    EXPECT_EQ(changes.back().detail, "tcp: 503 Service Unavailable (Retry-After 30)");
    const ProbeStatus st = status_of(server.endpoint());
    EXPECT_GT(st.overloaded_for_ms, 20000);
    EXPECT_EQ(st.checks[0].overloads, 1u);
}

TEST_F(HealthTcpTest, EveryCheckMustPassAndTheFailingOneIsNamed) {
    FakeSipServer sip(Answer::ok);
    auto tls = std::make_unique<FakeSipServer>(Answer::silent);  // a TLS port: only connected to
    cfg.tls = config::TransportCheck::connect;
    hc->set_pool("p", cfg);
    hc->set_targets("p", std::vector<CheckTarget>{{sip.endpoint(), tls->port()}}, Clock::now());
    ASSERT_TRUE(run_until(
        [&] {
            const auto st = status_of(sip.endpoint());
            return st.checks.size() == 2 && st.checks[0].responses >= 2 && st.checks[1].responses >= 2;
        },
        5s));
    ProbeStatus st = status_of(sip.endpoint());
    EXPECT_EQ(st.verdict, Verdict::up);
    EXPECT_EQ(st.checks[1].check, "tls");
    EXPECT_EQ(st.checks[1].method, "connect");
    EXPECT_EQ(st.checks[1].target.port, tls->port());
    EXPECT_TRUE(changes.empty());

    // The TLS port closes: down, and the detail names the TLS check only.
    const uint16_t tls_port = tls->port();
    tls.reset();
    ASSERT_TRUE(run_until([&] { return !changes.empty(); }, 3s));
    EXPECT_EQ(changes.back().verdict, Verdict::down);
    EXPECT_EQ(changes.back().detail, "tls: connect to port " + std::to_string(tls_port) + ": Connection refused");
    st = status_of(sip.endpoint());
    EXPECT_EQ(st.checks[0].verdict, Verdict::up);
    EXPECT_EQ(st.checks[1].verdict, Verdict::down);

    // A TLS port that moves (DNS, reload) is probed at its new port: back up.
    FakeSipServer moved(Answer::silent);
    hc->set_targets("p", std::vector<CheckTarget>{{sip.endpoint(), moved.port()}}, Clock::now());
    ASSERT_TRUE(run_until([&] { return changes.size() >= 2; }, 3s));
    EXPECT_EQ(changes.back().verdict, Verdict::up);
    EXPECT_EQ(changes.back().detail, "tls: connect to port " + std::to_string(moved.port()) + ": connected");
}

TEST_F(HealthTcpTest, ChecksFollowThePoolSettingsAndRemovedTargetsCloseTheirSockets) {
    FakeSipServer server(Answer::accept_only);
    cfg.timeout_ms = 100;
    cfg.interval_ms = 100;
    hc->set_pool("p", cfg);
    hc->set_targets("p", {server.endpoint()}, Clock::now());
    ASSERT_TRUE(run_until([&] { return tcp_fds() == 1; }, 2s));  // a probe waiting for its answer
    hc->set_targets("p", std::vector<Endpoint>{}, Clock::now());
    EXPECT_EQ(tcp_fds(), 0u);
    ASSERT_TRUE(run_until([&] { return server.closed_by_peer() >= 1; }, 2s));

    // tcp = connect: no request is sent, a connect suffices.
    cfg.tcp = config::TransportCheck::connect;
    hc->set_pool("p", cfg);
    hc->set_targets("p", {server.endpoint()}, Clock::now());
    ASSERT_TRUE(run_until([&] { return status_of(server.endpoint()).responses >= 2; }, 3s));
    EXPECT_EQ(status_of(server.endpoint()).checks[0].method, "connect");
    EXPECT_EQ(status_of(server.endpoint()).verdict, Verdict::up);

    // Health off: nothing probed, nothing held open.
    cfg.enabled = false;
    hc->set_pool("p", cfg);
    EXPECT_EQ(tcp_fds(), 0u);
    EXPECT_EQ(hc->timeout_ms(Clock::now()), -1);
}
