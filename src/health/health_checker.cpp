// Active SIP OPTIONS health checker: one unconnected, non-blocking UDP
// socket per family; probes scheduled per (pool, backend) with jitter;
// responses matched by Call-ID; ICMP errors read from the error queue.
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

}  // namespace

struct HealthChecker::Impl {
    struct PoolParams {
        config::HealthConfig cfg;
    };
    struct Target {
        std::string pool;
        Endpoint address;
        HealthState state;
        Endpoint local;  // Via sent-by
        TimePoint next_probe{};
        bool outstanding = false;
        ProbeIds ids;
        TimePoint sent_at{};
        TimePoint deadline{};
        uint32_t cseq = 0;
        ProbeStatus st;
        bool probed = true;  // false: health disabled, tracked for passive checks only
        PassiveWindow passive;
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
    config::HealthConfig defaults;

    ~Impl() {
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

    void deliver(Target& t, const ProbeResult& r, TimePoint now) {
        t.outstanding = false;
        by_call_id.erase(t.ids.call_id);
        t.st.last_detail = r.detail;
        switch (r.outcome) {
            case ProbeOutcome::ok: ++t.st.responses; break;
            case ProbeOutcome::overloaded:
                ++t.st.responses;
                ++t.st.overloads;
                break;
            case ProbeOutcome::timeout: ++t.st.timeouts; break;
            case ProbeOutcome::unreachable: ++t.st.unreachable; break;
            case ProbeOutcome::send_error: break;
        }
        if (r.status_code) t.st.last_status = r.status_code;
        const Verdict before = t.state.verdict();
        if (t.state.record(r, now)) announce(t, before, r.detail);
    }

    void deliver_passive(Target& t, const PassiveEvidence& e, TimePoint now) {
        t.st.passive_detail = e.detail;
        if (e.overloaded) ++t.st.passive_trips;
        const Verdict before = t.state.verdict();
        if (t.state.record_passive(e, now)) announce(t, before, e.detail);
    }

    void announce(const Target& t, Verdict before, const std::string& detail) {
        const Verdict after = t.state.verdict();
        logf(after == Verdict::up ? LogLevel::info : LogLevel::warn,
             "health verdict pool=" + t.pool + " backend=" + t.address.to_string() +
                 " from=" + std::string(to_string(before)) + " to=" + std::string(to_string(after)) + " detail=\"" +
                 detail + "\"");
        if (on_verdict) {
            // Copies: the callback may change the target map.
            const std::string pool = t.pool;
            const Endpoint ep = t.address;
            const std::string d = detail;
            on_verdict(pool, ep, after, d);
        }
    }

    void send_probe(Target& t, TimePoint now) {
        const auto& c = cfg_of(t.pool);
        const int fd = t.address.ip.is_v4() ? fd4 : fd6;
        t.next_probe = now + jittered(c.interval_ms, c.jitter);
        t.ids.call_id = hex(rng(), 16) + hex(rng(), 8) + "@siplb";
        t.ids.branch = "z9hG4bK" + hex(rng(), 16);
        if (t.ids.from_tag.empty()) t.ids.from_tag = hex(rng(), 8);
        t.ids.cseq = ++t.cseq;
        t.local.port = t.address.ip.is_v4() ? port4 : port6;
        const std::string msg = build_options_request(t.address, t.local, c.from_uri, t.ids, opts.user_agent);
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
        ++t.st.probes_sent;
        t.sent_at = now;
        t.outstanding = true;
        by_call_id[t.ids.call_id] = Key{t.pool, t.address};
        if (n < 0) {
            deliver(t,
                    ProbeResult{ProbeOutcome::send_error, 0, std::nullopt, std::string("send: ") + std::strerror(err)},
                    now);
            return;
        }
        t.deadline = now + std::chrono::milliseconds(std::max<uint32_t>(1, c.timeout_ms));
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
        if (!t.outstanding || (!info->branch.empty() && info->branch != t.ids.branch)) return;
        if (info->status < 200) return;  // provisional: wait for the final answer
        t.st.last_rtt_ms = std::chrono::duration<double, std::milli>(now - t.sent_at).count();
        const auto& c = cfg_of(t.pool);
        ProbeResult r;
        r.status_code = info->status;
        r.detail = std::to_string(info->status) + (info->reason.empty() ? "" : " " + info->reason);
        if (std::find(c.overload_codes.begin(), c.overload_codes.end(), info->status) != c.overload_codes.end()) {
            r.outcome = ProbeOutcome::overloaded;
            r.retry_after_s = info->retry_after_s;
            if (info->retry_after_s) r.detail += " (Retry-After " + std::to_string(*info->retry_after_s) + ")";
        } else {
            r.outcome = ProbeOutcome::ok;
        }
        deliver(t, r, now);
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
            // Every outstanding probe to that backend (it may be in several pools).
            std::vector<Key> hit;
            for (auto& [key, t] : targets)
                if (key.second == *dst && t.outstanding) hit.push_back(key);
            for (const auto& key : hit) {
                auto it = targets.find(key);  // a verdict callback may have changed the map
                if (it == targets.end() || !it->second.outstanding) continue;
                deliver(it->second,
                        ProbeResult{ProbeOutcome::unreachable, 0, std::nullopt,
                                    std::string("ICMP: ") + std::strerror(ee_errno)},
                        now);
            }
        }
    }

    ProbeStatus status_of(const Target& t, TimePoint now) const {
        ProbeStatus s = t.st;
        s.pool = t.pool;
        s.address = t.address;
        s.verdict = t.state.verdict();
        s.consecutive_ok = t.state.consecutive_ok();
        s.consecutive_failures = t.state.consecutive_failures();
        if (auto until = t.state.overloaded_until(); until && *until > now) s.overloaded_for_ms = ms_until(*until, now);
        s.next_probe_in_ms = t.probed ? std::max<int64_t>(0, ms_until(t.next_probe, now)) : -1;
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
    for (auto& [key, t] : impl_->targets) {
        if (key.first != pool) continue;
        t.state.set_params(Impl::params_of(cfg));
        if (t.probed && !cfg.enabled && t.outstanding) {
            impl_->by_call_id.erase(t.ids.call_id);
            t.outstanding = false;
        }
        if (!t.probed && cfg.enabled) t.next_probe = TimePoint{};  // due at the next process()
        t.probed = cfg.enabled;
        if (!cfg.passive) t.passive.reset();
    }
}

void HealthChecker::set_targets(const std::string& pool, const std::vector<Endpoint>& targets, TimePoint now) {
    const auto& c = impl_->cfg_of(pool);
    std::vector<Endpoint> want = c.enabled || c.passive ? targets : std::vector<Endpoint>{};
    std::sort(want.begin(), want.end());
    want.erase(std::unique(want.begin(), want.end()), want.end());
    for (auto it = impl_->targets.begin(); it != impl_->targets.end();) {
        if (it->first.first == pool && !std::binary_search(want.begin(), want.end(), it->first.second)) {
            impl_->by_call_id.erase(it->second.ids.call_id);
            it = impl_->targets.erase(it);
        } else {
            ++it;
        }
    }
    for (const auto& ep : want) {
        Impl::Key key{pool, ep};
        if (impl_->targets.count(key)) continue;
        Impl::Target t;
        t.pool = pool;
        t.address = ep;
        t.state = HealthState(Impl::params_of(c));
        t.probed = c.enabled;
        if (auto src = route_source(ep)) {
            t.local.ip = *src;
        } else if (ep.ip.is_v6()) {
            t.local.ip.family = IpAddress::Family::v6;
        }
        // First probe soon, spread over a fraction of the interval.
        std::uniform_int_distribution<uint32_t> spread(0, std::max<uint32_t>(1, c.interval_ms / 10));
        t.next_probe = now + std::chrono::milliseconds(spread(impl_->rng));
        impl_->targets.emplace(std::move(key), std::move(t));
    }
}

void HealthChecker::remove_pool(const std::string& pool) {
    for (auto it = impl_->targets.begin(); it != impl_->targets.end();) {
        if (it->first.first == pool) {
            impl_->by_call_id.erase(it->second.ids.call_id);
            it = impl_->targets.erase(it);
        } else {
            ++it;
        }
    }
}

int HealthChecker::timeout_ms(TimePoint now) const {
    int64_t best = -1;
    for (const auto& [key, t] : impl_->targets) {
        if (!t.probed) continue;
        const int64_t ms = std::max<int64_t>(0, ms_until(t.outstanding ? t.deadline : t.next_probe, now));
        if (best < 0 || ms < best) best = ms;
    }
    return static_cast<int>(std::min<int64_t>(best, INT_MAX));
}

void HealthChecker::fds(std::vector<pollfd>& out) const {
    // POLLERR is always reported; ICMP errors arrive that way.
    if (impl_->fd4 >= 0) out.push_back(pollfd{impl_->fd4, POLLIN, 0});
    if (impl_->fd6 >= 0) out.push_back(pollfd{impl_->fd6, POLLIN, 0});
}

void HealthChecker::process(const std::vector<pollfd>& ready, TimePoint now) {
    for (const auto& p : ready) {
        if (p.revents == 0 || (p.fd != impl_->fd4 && p.fd != impl_->fd6) || p.fd < 0) continue;
        // Errors first: they also clear the socket error that would make recv fail.
        if (p.revents & POLLERR) impl_->drain_errors(p.fd, now);
        if (p.revents & POLLIN) impl_->drain_responses(p.fd, now);
        impl_->drain_errors(p.fd, now);
    }
    // Timeouts, then due probes. Callbacks may not add/remove targets
    // re-entrantly (they run in this thread, after each delivery); iterate
    // over a key snapshot to stay safe if they do.
    const auto keys = impl_->target_keys();
    for (const auto& key : keys) {
        auto it = impl_->targets.find(key);
        if (it == impl_->targets.end()) continue;
        Impl::Target& t = it->second;
        if (t.outstanding && now >= t.deadline) {
            const auto& c = impl_->cfg_of(t.pool);
            impl_->deliver(t,
                           ProbeResult{ProbeOutcome::timeout, 0, std::nullopt,
                                       "timeout after " + std::to_string(c.timeout_ms) + " ms"},
                           now);
        }
    }
    for (const auto& key : keys) {
        auto it = impl_->targets.find(key);
        if (it == impl_->targets.end()) continue;
        Impl::Target& t = it->second;
        if (t.probed && !t.outstanding && now >= t.next_probe) impl_->send_probe(t, now);
    }
}

std::optional<Verdict> HealthChecker::verdict(const std::string& pool, const Endpoint& address) const {
    auto it = impl_->targets.find(Impl::Key{pool, address});
    if (it == impl_->targets.end()) return std::nullopt;
    return it->second.state.verdict();
}

bool HealthChecker::assume(const std::string& pool, const Endpoint& address, Verdict v) {
    auto it = impl_->targets.find(Impl::Key{pool, address});
    if (it == impl_->targets.end()) return false;
    it->second.state.assume(v);
    return true;
}

void HealthChecker::observe_passive(const std::vector<PassiveSample>& samples, TimePoint now) {
    std::map<Impl::Key, const PassiveSample*> latest;
    for (const auto& s : samples) latest[Impl::Key{s.pool, s.backend}] = &s;
    for (const auto& key : impl_->target_keys()) {
        auto it = impl_->targets.find(key);
        if (it == impl_->targets.end()) continue;
        Impl::Target& t = it->second;
        const PassiveParams params = passive_params(impl_->cfg_of(t.pool));
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
