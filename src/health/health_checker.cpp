// Active health checker: SIP OPTIONS over one unconnected, non-blocking UDP
// socket per family (responses matched by Call-ID, ICMP errors read from the
// error queue), and over non-blocking TCP connections, one per probe, as
// well as bare TCP connects. Each (pool, backend) has one check per
// transport its pool asks for, each scheduled with jitter.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <unordered_map>
#include <utility>

#include "siplb/health/health.h"

namespace siplb::health {

namespace {

socklen_t to_sockaddr(const Endpoint& ep, sockaddr_storage& ss) {
    std::memset(&ss, 0, sizeof ss);
    if (ep.ip.is_v4()) {
        auto* s = reinterpret_cast<sockaddr_in*>(&ss);
        s->sin_family = AF_INET;
        s->sin_port = htons(ep.port);
        std::memcpy(&s->sin_addr, ep.ip.bytes.data(), 4);
        return sizeof(sockaddr_in);
    }
    auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(ep.port);
    std::memcpy(&s->sin6_addr, ep.ip.bytes.data(), 16);
    return sizeof(sockaddr_in6);
}

std::optional<Endpoint> from_sockaddr(const sockaddr_storage& ss) {
    Endpoint ep;
    if (ss.ss_family == AF_INET) {
        const auto* s = reinterpret_cast<const sockaddr_in*>(&ss);
        ep.ip = IpAddress::from_v4_be(s->sin_addr.s_addr);
        ep.port = ntohs(s->sin_port);
        return ep;
    }
    if (ss.ss_family == AF_INET6) {
        const auto* s = reinterpret_cast<const sockaddr_in6*>(&ss);
        ep.ip = IpAddress::from_v6(s->sin6_addr.s6_addr);
        ep.port = ntohs(s->sin6_port);
        return ep;
    }
    return std::nullopt;
}

// Source address the kernel would pick towards `target` (connect() on a UDP
// socket only consults the routing table; nothing is sent, nothing blocks).
std::optional<IpAddress> route_source(const Endpoint& target) {
    const int fam = target.ip.is_v4() ? AF_INET : AF_INET6;
    const int fd = ::socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::nullopt;
    sockaddr_storage ss;
    const socklen_t len = to_sockaddr(target, ss);
    std::optional<IpAddress> out;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
        sockaddr_storage local{};
        socklen_t llen = sizeof local;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen) == 0)
            if (auto ep = from_sockaddr(local)) out = ep->ip;
    }
    ::close(fd);
    return out;
}

std::string hex(uint64_t v, int digits) {
    static const char* d = "0123456789abcdef";
    std::string s(digits, '0');
    for (int i = digits - 1; i >= 0; --i, v >>= 4) s[i] = d[v & 15];
    return s;
}

int64_t ms_until(TimePoint t, TimePoint now) { return std::chrono::ceil<std::chrono::milliseconds>(t - now).count(); }

enum class CheckKind : uint8_t { udp_options, tcp_options, tcp_connect, tls_connect };

std::string_view check_name(CheckKind k) {
    switch (k) {
        case CheckKind::udp_options: return "udp";
        case CheckKind::tcp_options:
        case CheckKind::tcp_connect: return "tcp";
        case CheckKind::tls_connect: return "tls";
    }
    return "?";
}

bool is_options(CheckKind k) { return k == CheckKind::udp_options || k == CheckKind::tcp_options; }

// The checks a pool's health settings ask for, in reporting order.
std::vector<CheckKind> wanted_checks(const config::HealthConfig& c) {
    using config::TransportCheck;
    std::vector<CheckKind> out;
    if (!c.enabled) return out;
    if (c.udp.value_or(TransportCheck::options) != TransportCheck::off) out.push_back(CheckKind::udp_options);
    switch (c.tcp.value_or(TransportCheck::off)) {
        case TransportCheck::options: out.push_back(CheckKind::tcp_options); break;
        case TransportCheck::connect: out.push_back(CheckKind::tcp_connect); break;
        case TransportCheck::off: break;
    }
    if (c.tls.value_or(TransportCheck::off) != TransportCheck::off) out.push_back(CheckKind::tls_connect);
    return out;
}

// A TCP response larger than this fails the probe (OPTIONS answers are small).
constexpr size_t kMaxTcpResponse = 65535;

int worse(Verdict v) { return v == Verdict::down ? 2 : v == Verdict::overloaded ? 1 : 0; }

}  // namespace

struct HealthChecker::Impl {
    struct PoolParams {
        config::HealthConfig cfg;
    };
    // One check of a target: its own hysteresis, schedule and probe in flight.
    struct Check {
        CheckKind kind = CheckKind::udp_options;
        HealthState state;
        TimePoint next_probe{};
        bool outstanding = false;
        ProbeIds ids;
        TimePoint sent_at{};
        TimePoint deadline{};
        uint32_t cseq = 0;
        CheckStatus st;
        std::string reason;  // why it is not up: the failure (or passive evidence) that keeps it out
        // TCP probe in flight.
        int fd = -1;
        enum class Phase : uint8_t { connecting, sending, reading } phase = Phase::connecting;
        std::string out;
        size_t sent = 0;
        std::string in;
    };
    struct Target {
        std::string pool;
        Endpoint address;
        uint16_t tls_port = 5061;
        Endpoint local;  // Via sent-by of UDP probes
        std::vector<Check> checks;
        HealthState passive_only;  // the verdict while no active check runs (passive checks alone)
        PassiveWindow passive;
        uint64_t passive_trips = 0;
        std::string passive_detail;
        std::string passive_reason;  // passive_only's reason
        Verdict reported = Verdict::up;
        std::vector<std::string> reported_failing;  // checks named in the last verdict handed on
    };
    using Key = std::pair<std::string, Endpoint>;

    VerdictFn on_verdict;
    Options opts;
    int fd4 = -1, fd6 = -1;
    uint16_t port4 = 0, port6 = 0;
    std::mt19937_64 rng;
    std::map<std::string, PoolParams> pools;
    std::map<Key, Target> targets;
    std::unordered_map<std::string, Key> by_call_id;
    std::unordered_map<int, std::pair<Key, CheckKind>> by_fd;
    config::HealthConfig defaults;

    ~Impl() {
        for (auto& [key, t] : targets)
            for (auto& c : t.checks) close_tcp(c);
        if (fd4 >= 0) ::close(fd4);
        if (fd6 >= 0) ::close(fd6);
    }

    void logf(LogLevel level, const std::string& msg) {
        if (opts.log) opts.log(level, msg);
    }

    // A copy of the target keys: a verdict callback may add or remove
    // targets while the caller walks them.
    std::vector<Key> target_keys() const {
        std::vector<Key> keys;
        keys.reserve(targets.size());
        for (const auto& [key, t] : targets) keys.push_back(key);
        return keys;
    }
    const config::HealthConfig& cfg_of(const std::string& pool) const {
        auto it = pools.find(pool);
        return it == pools.end() ? defaults : it->second.cfg;
    }

    static HysteresisParams params_of(const config::HealthConfig& c) {
        return HysteresisParams{c.down_after, c.up_after, c.honor_retry_after};
    }

    std::chrono::milliseconds jittered(uint32_t interval_ms, double jitter) {
        jitter = std::clamp(jitter, 0.0, 0.5);
        std::uniform_real_distribution<double> u(-jitter, jitter);
        const double ms = std::max(1.0, interval_ms * (1.0 + u(rng)));
        return std::chrono::milliseconds(static_cast<int64_t>(ms));
    }

    TimePoint first_probe(const config::HealthConfig& c, TimePoint now) {
        // Soon, spread over a fraction of the interval.
        std::uniform_int_distribution<uint32_t> spread(0, std::max<uint32_t>(1, c.interval_ms / 10));
        return now + std::chrono::milliseconds(spread(rng));
    }

    Endpoint probe_target(const Target& t, CheckKind k) const {
        return k == CheckKind::tls_connect ? Endpoint{t.address.ip, t.tls_port} : t.address;
    }

    // Makes t's checks those its pool asks for: kept ones keep their state.
    void shape_checks(Target& t, const config::HealthConfig& c, TimePoint now) {
        const auto kinds = wanted_checks(c);
        std::vector<Check> next;
        for (CheckKind k : kinds) {
            auto it = std::find_if(t.checks.begin(), t.checks.end(), [&](const Check& x) { return x.kind == k; });
            if (it != t.checks.end()) {
                next.push_back(std::move(*it));
                it->fd = -1;  // moved: the old slot no longer owns the socket or the probe
                it->outstanding = false;
                continue;
            }
            Check ch;
            ch.kind = k;
            ch.state = HealthState(params_of(c));
            ch.st.check = std::string(check_name(k));
            ch.st.method = is_options(k) ? "options" : "connect";
            ch.next_probe = first_probe(c, now);
            next.push_back(std::move(ch));
        }
        for (auto& old : t.checks) {  // the checks no longer asked for
            close_tcp(old);
            if (old.outstanding && old.kind == CheckKind::udp_options) by_call_id.erase(old.ids.call_id);
        }
        t.checks = std::move(next);
        for (auto& ch : t.checks) {
            ch.state.set_params(params_of(c));
            ch.st.target = probe_target(t, ch.kind);
        }
        t.passive_only.set_params(params_of(c));
    }

    Check* find_check(Target& t, CheckKind k) {
        for (auto& c : t.checks)
            if (c.kind == k) return &c;
        return nullptr;
    }

    Result<int> open_socket(int fam, const std::optional<IpAddress>& src, uint16_t& port_out) {
        const int fd = ::socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return Result<int>::fail(std::string("socket: ") + std::strerror(errno));
        const int one = 1;
        if (fam == AF_INET) {
            ::setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one);
        } else {
            ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
            ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one);
        }
        sockaddr_storage ss{};
        socklen_t len;
        Endpoint bind_ep;
        if (src) {
            bind_ep.ip = *src;
        } else if (fam == AF_INET6) {
            bind_ep.ip.family = IpAddress::Family::v6;
        }
        len = to_sockaddr(bind_ep, ss);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
            const int e = errno;
            ::close(fd);
            return Result<int>::fail("bind " + bind_ep.to_string() + ": " + std::strerror(e));
        }
        socklen_t blen = sizeof ss;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &blen);
        if (auto ep = from_sockaddr(ss)) port_out = ep->port;
        return fd;
    }

    // --- verdicts ---

    // The worst of the checks' verdicts (passive_only without checks).
    static Verdict combined(const Target& t) {
        if (t.checks.empty()) return t.passive_only.verdict();
        Verdict v = Verdict::up;
        for (const auto& c : t.checks)
            if (worse(c.state.verdict()) > worse(v)) v = c.state.verdict();
        return v;
    }

    // The state passive evidence goes to: the first active check's (an OK
    // probe of it brings the backend back, as before TCP checks existed).
    static HealthState& passive_state(Target& t) { return t.checks.empty() ? t.passive_only : t.checks.front().state; }
    static std::string& passive_reason(Target& t) {
        return t.checks.empty() ? t.passive_reason : t.checks.front().reason;
    }

    void deliver(Target& t, Check& c, const ProbeResult& r, TimePoint now) {
        c.outstanding = false;
        if (c.kind == CheckKind::udp_options) by_call_id.erase(c.ids.call_id);
        close_tcp(c);
        c.st.last_detail = r.detail;
        switch (r.outcome) {
            case ProbeOutcome::ok: ++c.st.responses; break;
            case ProbeOutcome::overloaded:
                ++c.st.responses;
                ++c.st.overloads;
                break;
            case ProbeOutcome::timeout: ++c.st.timeouts; break;
            case ProbeOutcome::unreachable: ++c.st.unreachable; break;
            case ProbeOutcome::bad_response: ++c.st.bad_responses; break;
            case ProbeOutcome::send_error: break;
        }
        if (r.status_code) c.st.last_status = r.status_code;
        if (r.outcome != ProbeOutcome::ok) c.reason = std::string(check_name(c.kind)) + ": " + r.detail;
        c.state.record(r, now);
        evaluate(t, std::string(check_name(c.kind)) + ": " + r.detail);
    }

    void deliver_passive(Target& t, const PassiveEvidence& e, TimePoint now) {
        t.passive_detail = e.detail;
        if (e.overloaded) {
            ++t.passive_trips;
            passive_reason(t) = e.detail;  // "passive: ..." says which check on its own
        }
        passive_state(t).record_passive(e, now);
        evaluate(t, e.detail);
    }

    // Hands the target's verdict on when it changed, or when other checks
    // now keep it out (the detail then names them). `cause`: what the latest
    // result said, for a backend coming back up.
    void evaluate(Target& t, const std::string& cause) {
        const Verdict after = combined(t);
        std::vector<std::string> failing;
        std::string detail;
        if (after != Verdict::up) {
            if (t.checks.empty()) {
                failing.push_back("passive");
                detail = t.passive_reason;
            }
            for (const auto& c : t.checks) {
                if (c.state.verdict() == Verdict::up) continue;
                failing.push_back(std::string(check_name(c.kind)));
                detail += (detail.empty() ? "" : "; ") + c.reason;
            }
        } else {
            detail = cause;
        }
        const Verdict before = t.reported;
        if (after == before && (after == Verdict::up || failing == t.reported_failing)) return;
        t.reported = after;
        t.reported_failing = failing;
        if (after != before)
            logf(after == Verdict::up ? LogLevel::info : LogLevel::warn,
                 "health verdict pool=" + t.pool + " backend=" + t.address.to_string() +
                     " from=" + std::string(to_string(before)) + " to=" + std::string(to_string(after)) + " detail=\"" +
                     detail + "\"");
        if (on_verdict) {
            // Copies: the callback may change the target map.
            const std::string pool = t.pool;
            const Endpoint ep = t.address;
            on_verdict(pool, ep, after, detail);
        }
    }

    // --- probes ---

    void send_probe(Target& t, Check& c, TimePoint now) {
        const auto& cfg = cfg_of(t.pool);
        c.next_probe = now + jittered(cfg.interval_ms, cfg.jitter);
        ++c.st.probes_sent;
        c.sent_at = now;
        c.outstanding = true;
        c.deadline = now + std::chrono::milliseconds(std::max<uint32_t>(1, cfg.timeout_ms));
        if (is_options(c.kind)) {
            c.ids.call_id = hex(rng(), 16) + hex(rng(), 8) + "@siplb";
            c.ids.branch = "z9hG4bK" + hex(rng(), 16);
            if (c.ids.from_tag.empty()) c.ids.from_tag = hex(rng(), 8);
            c.ids.cseq = ++c.cseq;
        }
        if (c.kind == CheckKind::udp_options)
            send_udp_probe(t, c, cfg, now);
        else
            start_tcp_probe(t, c, now);
    }

    void send_udp_probe(Target& t, Check& c, const config::HealthConfig& cfg, TimePoint now) {
        const int fd = t.address.ip.is_v4() ? fd4 : fd6;
        t.local.port = t.address.ip.is_v4() ? port4 : port6;
        const std::string msg = build_options_request(t.address, t.local, cfg.from_uri, c.ids, opts.user_agent);
        sockaddr_storage ss;
        const socklen_t len = to_sockaddr(t.address, ss);
        ssize_t n = -1;
        int err = 0;
        if (fd >= 0) {
            for (int attempt = 0; attempt < 2; ++attempt) {
                n = ::sendto(fd, msg.data(), msg.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&ss), len);
                if (n >= 0) break;
                err = errno;
                // A pending ICMP error of another backend is reported on the
                // next call: consume the error queue and retry once.
                if (err != ECONNREFUSED && err != EHOSTUNREACH && err != ENETUNREACH) break;
                drain_errors(fd, now);
            }
        } else {
            err = EAFNOSUPPORT;
        }
        by_call_id[c.ids.call_id] = Key{t.pool, t.address};
        if (n < 0)
            deliver(t, c,
                    ProbeResult{ProbeOutcome::send_error, 0, std::nullopt, std::string("send: ") + std::strerror(err)},
                    now);
    }

    void close_tcp(Check& c) {
        if (c.fd < 0) return;
        by_fd.erase(c.fd);
        ::close(c.fd);
        c.fd = -1;
        c.out.clear();
        c.in.clear();
        c.sent = 0;
    }

    std::string connect_label(const Target& t, const Check& c) const {
        return c.kind == CheckKind::tls_connect ? "connect to port " + std::to_string(t.tls_port) : "connect";
    }

    void start_tcp_probe(Target& t, Check& c, TimePoint now) {
        const Endpoint dst = probe_target(t, c.kind);
        c.st.target = dst;
        const int fam = dst.ip.is_v4() ? AF_INET : AF_INET6;
        const int fd = ::socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            deliver(t, c,
                    ProbeResult{ProbeOutcome::send_error, 0, std::nullopt,
                                std::string("socket: ") + std::strerror(errno)},
                    now);
            return;
        }
        c.fd = fd;
        c.phase = Check::Phase::connecting;
        by_fd[fd] = {Key{t.pool, t.address}, c.kind};
        const std::optional<IpAddress>& src = fam == AF_INET ? opts.source_v4 : opts.source_v6;
        sockaddr_storage ss;
        if (src) {
            const socklen_t blen = to_sockaddr(Endpoint{*src, 0}, ss);
            if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), blen) != 0) {
                deliver(t, c,
                        ProbeResult{ProbeOutcome::send_error, 0, std::nullopt,
                                    "bind " + src->to_string() + ": " + std::strerror(errno)},
                        now);
                return;
            }
        }
        const socklen_t len = to_sockaddr(dst, ss);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
            on_connected(t, c, now);
        } else if (errno != EINPROGRESS) {
            deliver(t, c,
                    ProbeResult{ProbeOutcome::unreachable, 0, std::nullopt,
                                connect_label(t, c) + ": " + std::strerror(errno)},
                    now);
        }
    }

    void on_connected(Target& t, Check& c, TimePoint now) {
        c.st.last_rtt_ms = std::chrono::duration<double, std::milli>(now - c.sent_at).count();
        if (!is_options(c.kind)) {
            deliver(t, c, ProbeResult{ProbeOutcome::ok, 0, std::nullopt, connect_label(t, c) + ": connected"}, now);
            return;
        }
        sockaddr_storage ss{};
        socklen_t slen = sizeof ss;
        Endpoint local = t.local;
        if (::getsockname(c.fd, reinterpret_cast<sockaddr*>(&ss), &slen) == 0)
            if (auto ep = from_sockaddr(ss)) local = *ep;
        c.out = build_options_request(t.address, local, cfg_of(t.pool).from_uri, c.ids, opts.user_agent, "TCP");
        c.sent = 0;
        c.phase = Check::Phase::sending;
        send_more(t, c, now);
    }

    void send_more(Target& t, Check& c, TimePoint now) {
        while (c.sent < c.out.size()) {
            const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // POLLOUT again
                deliver(t, c,
                        ProbeResult{ProbeOutcome::unreachable, 0, std::nullopt,
                                    std::string("send: ") + std::strerror(errno)},
                        now);
                return;
            }
            c.sent += static_cast<size_t>(n);
        }
        c.phase = Check::Phase::reading;
    }

    void read_more(Target& t, Check& c, TimePoint now) {
        char buf[4096];
        for (;;) {
            const ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0) {
                deliver(t, c,
                        ProbeResult{ProbeOutcome::bad_response, 0, std::nullopt,
                                    "connection closed before a final response"},
                        now);
                return;
            }
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) return;
                deliver(t, c,
                        ProbeResult{ProbeOutcome::unreachable, 0, std::nullopt,
                                    std::string("recv: ") + std::strerror(errno)},
                        now);
                return;
            }
            c.in.append(buf, static_cast<size_t>(n));
            // Every complete message: provisional responses and anything not
            // ours are skipped; the first final response ends the probe.
            for (;;) {
                const StreamFrame f = frame_stream_message(c.in, kMaxTcpResponse);
                if (f.kind == StreamFrame::Kind::incomplete) {
                    c.in.erase(0, f.skip);
                    break;
                }
                if (f.kind == StreamFrame::Kind::malformed) {
                    deliver(t, c, ProbeResult{ProbeOutcome::bad_response, 0, std::nullopt, "malformed: " + f.error},
                            now);
                    return;
                }
                const auto info = parse_sip_response(std::string_view(c.in).substr(f.skip, f.length));
                c.in.erase(0, f.skip + f.length);
                if (!info || info->call_id != c.ids.call_id || info->status < 200) continue;
                c.st.last_rtt_ms = std::chrono::duration<double, std::milli>(now - c.sent_at).count();
                deliver(t, c, classify_response(*info, cfg_of(t.pool).overload_codes), now);
                return;
            }
        }
    }

    void handle_tcp_event(Target& t, Check& c, short revents, TimePoint now) {
        if (c.phase == Check::Phase::connecting) {
            if (!(revents & (POLLOUT | POLLERR | POLLHUP))) return;
            int err = 0;
            socklen_t elen = sizeof err;
            if (::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) err = errno;
            if (err != 0) {
                deliver(t, c,
                        ProbeResult{ProbeOutcome::unreachable, 0, std::nullopt,
                                    connect_label(t, c) + ": " + std::strerror(err)},
                        now);
                return;
            }
            on_connected(t, c, now);
            return;
        }
        if (c.phase == Check::Phase::sending) {
            if (revents & (POLLOUT | POLLERR | POLLHUP)) send_more(t, c, now);
            return;
        }
        if (revents & (POLLIN | POLLERR | POLLHUP)) read_more(t, c, now);
    }

    void handle_datagram(std::string_view data, TimePoint now) {
        auto info = parse_sip_response(data);
        if (!info) return;
        auto it = by_call_id.find(info->call_id);
        if (it == by_call_id.end()) return;  // late answer to an expired probe, or not ours
        auto tit = targets.find(it->second);
        if (tit == targets.end()) {
            by_call_id.erase(it);
            return;
        }
        Target& t = tit->second;
        Check* c = find_check(t, CheckKind::udp_options);
        if (!c || !c->outstanding || c->ids.call_id != info->call_id ||
            (!info->branch.empty() && info->branch != c->ids.branch))
            return;
        if (info->status < 200) return;  // provisional: wait for the final answer
        c->st.last_rtt_ms = std::chrono::duration<double, std::milli>(now - c->sent_at).count();
        deliver(t, *c, classify_response(*info, cfg_of(t.pool).overload_codes), now);
    }

    void drain_responses(int fd, TimePoint now) {
        char buf[65536];
        for (int i = 0; i < 1024; ++i) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n < 0) {
                // EAGAIN, or a queued ICMP error surfacing here: the error
                // queue is read separately.
                break;
            }
            handle_datagram(std::string_view(buf, static_cast<size_t>(n)), now);
        }
    }

    void drain_errors(int fd, TimePoint now) {
        for (int i = 0; i < 1024; ++i) {
            char data[512];
            char control[512];
            sockaddr_storage offender_dst{};
            iovec iov{data, sizeof data};
            msghdr mh{};
            mh.msg_name = &offender_dst;
            mh.msg_namelen = sizeof offender_dst;
            mh.msg_iov = &iov;
            mh.msg_iovlen = 1;
            mh.msg_control = control;
            mh.msg_controllen = sizeof control;
            if (::recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) break;
            int ee_errno = 0;
            for (cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                if ((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_RECVERR) ||
                    (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_RECVERR)) {
                    sock_extended_err ee;
                    std::memcpy(&ee, CMSG_DATA(cm), sizeof ee);
                    if (ee.ee_origin == SO_EE_ORIGIN_ICMP || ee.ee_origin == SO_EE_ORIGIN_ICMP6 ||
                        ee.ee_origin == SO_EE_ORIGIN_LOCAL)
                        ee_errno = static_cast<int>(ee.ee_errno);
                }
            }
            if (ee_errno == 0 || ee_errno == EMSGSIZE) continue;
            auto dst = from_sockaddr(offender_dst);
            if (!dst) continue;
            // Every outstanding UDP probe to that backend (it may be in several pools).
            std::vector<Key> hit;
            for (auto& [key, t] : targets) {
                if (key.second != *dst) continue;
                for (const auto& c : t.checks)
                    if (c.kind == CheckKind::udp_options && c.outstanding) hit.push_back(key);
            }
            for (const auto& key : hit) {
                auto it = targets.find(key);  // a verdict callback may have changed the map
                if (it == targets.end()) continue;
                Check* c = find_check(it->second, CheckKind::udp_options);
                if (!c || !c->outstanding) continue;
                deliver(it->second, *c,
                        ProbeResult{ProbeOutcome::unreachable, 0, std::nullopt,
                                    std::string("ICMP: ") + std::strerror(ee_errno)},
                        now);
            }
        }
    }

    ProbeStatus status_of(const Target& t, TimePoint now) const {
        ProbeStatus s;
        s.pool = t.pool;
        s.address = t.address;
        s.verdict = combined(t);
        s.passive_trips = t.passive_trips;
        s.passive_detail = t.passive_detail;
        s.next_probe_in_ms = -1;
        const HealthState* worst = t.checks.empty() ? &t.passive_only : nullptr;
        for (const auto& c : t.checks) {
            CheckStatus cs = c.st;
            cs.verdict = c.state.verdict();
            cs.consecutive_ok = c.state.consecutive_ok();
            cs.consecutive_failures = c.state.consecutive_failures();
            s.probes_sent += cs.probes_sent;
            s.responses += cs.responses;
            s.timeouts += cs.timeouts;
            s.unreachable += cs.unreachable + cs.bad_responses;
            s.overloads += cs.overloads;
            if (cs.last_status) s.last_status = cs.last_status;
            if (cs.last_rtt_ms > s.last_rtt_ms) s.last_rtt_ms = cs.last_rtt_ms;
            if (auto until = c.state.overloaded_until(); until && *until > now)
                s.overloaded_for_ms = std::max(s.overloaded_for_ms, ms_until(*until, now));
            const int64_t next = std::max<int64_t>(0, ms_until(c.next_probe, now));
            if (s.next_probe_in_ms < 0 || next < s.next_probe_in_ms) s.next_probe_in_ms = next;
            if (!worst || worse(c.state.verdict()) > worse(worst->verdict())) worst = &c.state;
            s.checks.push_back(std::move(cs));
        }
        if (t.checks.empty())
            if (auto until = t.passive_only.overloaded_until(); until && *until > now)
                s.overloaded_for_ms = ms_until(*until, now);
        s.consecutive_ok = worst->consecutive_ok();
        s.consecutive_failures = worst->consecutive_failures();
        if (s.verdict != Verdict::up) {
            for (const auto& c : t.checks)
                if (c.state.verdict() != Verdict::up) s.last_detail += (s.last_detail.empty() ? "" : "; ") + c.reason;
            if (t.checks.empty()) s.last_detail = t.passive_reason;
        } else {
            for (const auto& c : t.checks)
                s.last_detail += (s.last_detail.empty() ? "" : "; ") + std::string(check_name(c.kind)) + ": " +
                                 c.st.last_detail;
        }
        return s;
    }
};

Result<std::unique_ptr<HealthChecker>> HealthChecker::create(VerdictFn on_verdict, Options opts) {
    auto impl = std::make_unique<Impl>();
    impl->on_verdict = std::move(on_verdict);
    impl->opts = std::move(opts);
    impl->rng.seed(impl->opts.seed ? impl->opts.seed : std::random_device{}());
    auto v4 = impl->open_socket(AF_INET, impl->opts.source_v4, impl->port4);
    if (!v4.ok()) return Result<std::unique_ptr<HealthChecker>>::fail("health probe socket (IPv4): " + v4.message());
    impl->fd4 = v4.value();
    auto v6 = impl->open_socket(AF_INET6, impl->opts.source_v6, impl->port6);
    if (v6.ok()) {
        impl->fd6 = v6.value();
    } else {
        // Hosts without IPv6: IPv6 backends then fail with send_error.
        impl->logf(LogLevel::warn, "health probe socket (IPv6) unavailable: " + v6.message());
    }
    return std::unique_ptr<HealthChecker>(new HealthChecker(std::move(impl)));
}

HealthChecker::HealthChecker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HealthChecker::~HealthChecker() = default;

void HealthChecker::set_pool(const std::string& pool, const config::HealthConfig& cfg) {
    impl_->pools[pool].cfg = cfg;
    if (!cfg.enabled && !cfg.passive) {
        remove_pool(pool);
        return;
    }
    const TimePoint now = Clock::now();
    for (auto& [key, t] : impl_->targets) {
        if (key.first != pool) continue;
        impl_->shape_checks(t, cfg, now);
        if (!cfg.passive) t.passive.reset();
    }
}

void HealthChecker::set_targets(const std::string& pool, const std::vector<Endpoint>& targets, TimePoint now) {
    std::vector<CheckTarget> with_ports;
    with_ports.reserve(targets.size());
    for (const auto& ep : targets) with_ports.push_back({ep});
    set_targets(pool, with_ports, now);
}

void HealthChecker::set_targets(const std::string& pool, const std::vector<CheckTarget>& targets, TimePoint now) {
    const auto& c = impl_->cfg_of(pool);
    std::map<Endpoint, uint16_t> want;
    if (c.enabled || c.passive)
        for (const auto& t : targets) want.emplace(t.address, t.tls_port);
    for (auto it = impl_->targets.begin(); it != impl_->targets.end();) {
        if (it->first.first == pool && !want.count(it->first.second)) {
            for (auto& ch : it->second.checks) {
                impl_->close_tcp(ch);
                if (ch.kind == CheckKind::udp_options) impl_->by_call_id.erase(ch.ids.call_id);
            }
            it = impl_->targets.erase(it);
        } else {
            ++it;
        }
    }
    for (const auto& [ep, tls_port] : want) {
        Impl::Key key{pool, ep};
        if (auto found = impl_->targets.find(key); found != impl_->targets.end()) {
            Impl::Target& t = found->second;
            t.tls_port = tls_port;
            for (auto& ch : t.checks) ch.st.target = impl_->probe_target(t, ch.kind);
            continue;
        }
        Impl::Target t;
        t.pool = pool;
        t.address = ep;
        t.tls_port = tls_port;
        t.passive_only = HealthState(Impl::params_of(c));
        if (auto src = route_source(ep)) {
            t.local.ip = *src;
        } else if (ep.ip.is_v6()) {
            t.local.ip.family = IpAddress::Family::v6;
        }
        impl_->shape_checks(t, c, now);
        impl_->targets.emplace(std::move(key), std::move(t));
    }
}

void HealthChecker::remove_pool(const std::string& pool) {
    for (auto it = impl_->targets.begin(); it != impl_->targets.end();) {
        if (it->first.first == pool) {
            for (auto& ch : it->second.checks) {
                impl_->close_tcp(ch);
                if (ch.kind == CheckKind::udp_options) impl_->by_call_id.erase(ch.ids.call_id);
            }
            it = impl_->targets.erase(it);
        } else {
            ++it;
        }
    }
}

int HealthChecker::timeout_ms(TimePoint now) const {
    int64_t best = -1;
    for (const auto& [key, t] : impl_->targets)
        for (const auto& c : t.checks) {
            const int64_t ms = std::max<int64_t>(0, ms_until(c.outstanding ? c.deadline : c.next_probe, now));
            if (best < 0 || ms < best) best = ms;
        }
    return static_cast<int>(std::min<int64_t>(best, INT_MAX));
}

void HealthChecker::fds(std::vector<pollfd>& out) const {
    // POLLERR is always reported; ICMP errors arrive that way.
    if (impl_->fd4 >= 0) out.push_back(pollfd{impl_->fd4, POLLIN, 0});
    if (impl_->fd6 >= 0) out.push_back(pollfd{impl_->fd6, POLLIN, 0});
    for (const auto& [key, t] : impl_->targets)
        for (const auto& c : t.checks)
            if (c.fd >= 0)
                out.push_back(
                    pollfd{c.fd, static_cast<short>(c.phase == Impl::Check::Phase::reading ? POLLIN : POLLOUT), 0});
}

void HealthChecker::process(const std::vector<pollfd>& ready, TimePoint now) {
    for (const auto& p : ready) {
        if (p.revents == 0 || p.fd < 0) continue;
        if (p.fd == impl_->fd4 || p.fd == impl_->fd6) {
            // Errors first: they also clear the socket error that would make recv fail.
            if (p.revents & POLLERR) impl_->drain_errors(p.fd, now);
            if (p.revents & POLLIN) impl_->drain_responses(p.fd, now);
            impl_->drain_errors(p.fd, now);
            continue;
        }
        // A TCP probe's socket; the entry is gone when an earlier callback
        // ended or removed that probe (its fd number may even be reused).
        auto owner = impl_->by_fd.find(p.fd);
        if (owner == impl_->by_fd.end()) continue;
        auto it = impl_->targets.find(owner->second.first);
        if (it == impl_->targets.end()) continue;
        Impl::Check* c = impl_->find_check(it->second, owner->second.second);
        if (!c || c->fd != p.fd || !c->outstanding) continue;
        impl_->handle_tcp_event(it->second, *c, p.revents, now);
    }
    // Timeouts, then due probes. Callbacks may not add/remove targets
    // re-entrantly (they run in this thread, after each delivery); iterate
    // over a key snapshot to stay safe if they do.
    const auto keys = impl_->target_keys();
    for (const auto& key : keys) {
        for (size_t i = 0;; ++i) {
            auto it = impl_->targets.find(key);
            if (it == impl_->targets.end() || i >= it->second.checks.size()) break;
            Impl::Target& t = it->second;
            Impl::Check& c = t.checks[i];
            if (c.outstanding && now >= c.deadline) {
                const auto& cfg = impl_->cfg_of(t.pool);
                std::string what = "timeout after " + std::to_string(cfg.timeout_ms) + " ms";
                if (c.fd >= 0 && c.phase == Impl::Check::Phase::connecting)
                    what = impl_->connect_label(t, c) + ": " + what;
                else if (c.fd >= 0)
                    what = "no final response: " + what;
                impl_->deliver(t, c, ProbeResult{ProbeOutcome::timeout, 0, std::nullopt, what}, now);
            }
        }
    }
    for (const auto& key : keys) {
        for (size_t i = 0;; ++i) {
            auto it = impl_->targets.find(key);
            if (it == impl_->targets.end() || i >= it->second.checks.size()) break;
            Impl::Check& c = it->second.checks[i];
            if (!c.outstanding && now >= c.next_probe) impl_->send_probe(it->second, c, now);
        }
    }
}

std::optional<Verdict> HealthChecker::verdict(const std::string& pool, const Endpoint& address) const {
    auto it = impl_->targets.find(Impl::Key{pool, address});
    if (it == impl_->targets.end()) return std::nullopt;
    return Impl::combined(it->second);
}

bool HealthChecker::assume(const std::string& pool, const Endpoint& address, Verdict v) {
    auto it = impl_->targets.find(Impl::Key{pool, address});
    if (it == impl_->targets.end()) return false;
    Impl::Target& t = it->second;
    t.passive_only.assume(v);
    t.reported_failing.clear();
    for (auto& c : t.checks) {
        c.state.assume(v);
        c.reason = std::string(check_name(c.kind)) + ": " + std::string(to_string(v)) + " before the checker restarted";
        if (v != Verdict::up) t.reported_failing.push_back(std::string(check_name(c.kind)));
    }
    if (t.checks.empty() && v != Verdict::up) t.reported_failing.push_back("passive");
    t.reported = v;
    return true;
}

void HealthChecker::observe_passive(const std::vector<PassiveSample>& samples, TimePoint now) {
    std::map<Impl::Key, const PassiveSample*> latest;
    for (const auto& s : samples) latest[Impl::Key{s.pool, s.backend}] = &s;
    for (const auto& key : impl_->target_keys()) {
        auto it = impl_->targets.find(key);
        if (it == impl_->targets.end()) continue;
        Impl::Target& t = it->second;
        PassiveParams params = passive_params(impl_->cfg_of(t.pool));
        params.probed = !t.checks.empty();  // only active checks can bring it back otherwise
        uint64_t count = t.passive.last_count();
        uint32_t retry_after_s = t.passive.last_retry_after_s();
        if (auto s = latest.find(key); s != latest.end()) {
            count = s->second->overload_responses;
            retry_after_s = s->second->retry_after_s;
        } else if (!t.passive.primed()) {
            continue;
        }
        if (auto e = t.passive.observe(count, retry_after_s, now, params)) impl_->deliver_passive(t, *e, now);
    }
}

std::vector<ProbeStatus> HealthChecker::status(TimePoint now) const {
    std::vector<ProbeStatus> out;
    out.reserve(impl_->targets.size());
    for (const auto& [key, t] : impl_->targets) out.push_back(impl_->status_of(t, now));
    return out;
}

uint16_t HealthChecker::local_port_v4() const { return impl_->port4; }
uint16_t HealthChecker::local_port_v6() const { return impl_->port6; }

}  // namespace siplb::health
