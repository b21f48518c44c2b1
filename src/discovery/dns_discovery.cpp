// DNS discovery on c-ares. One channel for all pools; every (pool, name) is
// a small state machine: idle -> in flight -> (ok: wait TTL | failed: wait
// backoff) -> in flight ... Answers arrive through c-ares callbacks inside
// process(); a resolution is finished when its last outstanding query
// (SRV, then A and AAAA of every target) has answered.
#include "siplb/discovery/discovery.h"

#include <ares.h>
#include <arpa/nameser.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>

namespace siplb::discovery {

// ---------------------------------------------------------------- pure parts

bool is_srv_name(std::string_view name) { return !name.empty() && name.front() == '_'; }

uint32_t clamp_ttl(uint32_t ttl_s, uint32_t floor_s, uint32_t ceiling_s) {
    if (ceiling_s < floor_s) ceiling_s = floor_s;
    return std::clamp(ttl_s, floor_s, ceiling_s);
}

Backoff::Backoff(uint32_t initial_ms, uint32_t max_ms)
    : initial_ms_(std::max<uint32_t>(1, initial_ms)), max_ms_(std::max(initial_ms_, max_ms)) {}

std::chrono::milliseconds Backoff::next_failure() {
    uint64_t d = initial_ms_;
    for (uint32_t i = 0; i < failures_ && d < max_ms_; ++i) d *= 2;
    if (failures_ < UINT32_MAX) ++failures_;
    return std::chrono::milliseconds(std::min<uint64_t>(d, max_ms_));
}

static bool backend_less(const DiscoveredBackend& a, const DiscoveredBackend& b) {
    if (a.priority != b.priority) return a.priority < b.priority;
    return a.address < b.address;
}

bool same_backend_set(const std::vector<DiscoveredBackend>& a, const std::vector<DiscoveredBackend>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i].address != b[i].address || a[i].weight != b[i].weight || a[i].priority != b[i].priority ||
            a[i].tls_port != b[i].tls_port)
            return false;
    return true;
}

std::vector<DiscoveredBackend> build_srv_backends(
    const std::vector<SrvRecord>& records, const std::map<std::string, std::vector<ResolvedAddress>>& target_addresses,
    uint32_t ttl_s, std::optional<uint16_t> tls_default_port) {
    std::map<Endpoint, DiscoveredBackend> by_endpoint;
    for (const auto& r : records) {
        if (r.target.empty() || r.target == "." || r.port == 0) continue;
        auto it = target_addresses.find(r.target);
        if (it == target_addresses.end()) continue;
        const uint32_t weight = r.weight == 0 ? 1u : r.weight;
        for (const auto& a : it->second) {
            Endpoint ep{a.ip, tls_default_port ? *tls_default_port : r.port};
            std::optional<uint16_t> tls_port;
            if (tls_default_port) tls_port = r.port;
            auto [pos, inserted] = by_endpoint.try_emplace(ep);
            DiscoveredBackend& b = pos->second;
            if (inserted) {
                b = DiscoveredBackend{ep, weight, r.priority, ttl_s, r.target, tls_port};
            } else if (r.priority < b.priority) {
                b.priority = r.priority;
                b.weight = weight;
                b.target = r.target;
                b.tls_port = tls_port;
            } else if (r.priority == b.priority) {
                b.weight = std::max(b.weight, weight);
            }
        }
    }
    std::vector<DiscoveredBackend> out;
    out.reserve(by_endpoint.size());
    for (auto& [ep, b] : by_endpoint) out.push_back(std::move(b));
    std::sort(out.begin(), out.end(), backend_less);
    return out;
}

std::vector<DiscoveredBackend> build_address_backends(const std::string& name,
                                                      const std::vector<ResolvedAddress>& addresses,
                                                      uint16_t default_port, uint32_t ttl_s) {
    std::vector<DiscoveredBackend> out;
    for (const auto& a : addresses) {
        Endpoint ep{a.ip, default_port};
        if (std::none_of(out.begin(), out.end(), [&](const auto& b) { return b.address == ep; }))
            out.push_back(DiscoveredBackend{ep, 1, 0, ttl_s, name, std::nullopt});
    }
    std::sort(out.begin(), out.end(), backend_less);
    return out;
}

// ------------------------------------------------------- c-ares answer parsing

namespace {

constexpr uint32_t kNoTtl = UINT32_MAX;

// Smallest TTL of the answer section (SRV records and any CNAME in front
// of them). ares_parse_srv_reply() does not report TTLs in c-ares 1.18, so
// walk the answer records with ares_expand_name() for the owner names.
uint32_t answer_min_ttl(const unsigned char* abuf, int alen) {
    if (alen < NS_HFIXEDSZ) return kNoTtl;
    const unsigned qd = (abuf[4] << 8) | abuf[5];
    const unsigned an = (abuf[6] << 8) | abuf[7];
    const unsigned char* p = abuf + NS_HFIXEDSZ;
    const unsigned char* end = abuf + alen;
    auto skip_name = [&]() -> bool {
        char* s = nullptr;
        long len = 0;
        if (ares_expand_name(p, abuf, alen, &s, &len) != ARES_SUCCESS) return false;
        ares_free_string(s);
        p += len;
        return p <= end;
    };
    for (unsigned i = 0; i < qd; ++i) {
        if (!skip_name() || end - p < NS_QFIXEDSZ) return kNoTtl;
        p += NS_QFIXEDSZ;
    }
    uint32_t min_ttl = kNoTtl;
    for (unsigned i = 0; i < an; ++i) {
        if (!skip_name() || end - p < NS_RRFIXEDSZ) break;
        const uint32_t ttl = (uint32_t(p[4]) << 24) | (uint32_t(p[5]) << 16) | (uint32_t(p[6]) << 8) | p[7];
        const unsigned rdlen = (p[8] << 8) | p[9];
        p += NS_RRFIXEDSZ;
        if (end - p < static_cast<long>(rdlen)) break;
        p += rdlen;
        min_ttl = std::min(min_ttl, ttl);
    }
    return min_ttl;
}

std::string ares_error_text(int status) { return ares_strerror(status); }

std::once_flag g_ares_init_once;
int g_ares_init_status = ARES_SUCCESS;

}  // namespace

// ---------------------------------------------------------------- the engine

struct DnsDiscovery::Impl {
    enum class QueryKind : uint8_t { srv, a, aaaa };

    // One (pool, name) and its resolution in flight.
    struct Name {
        uint64_t id = 0;
        std::string pool;
        std::string name;
        bool srv = false;
        uint16_t default_port = 5060;
        Backoff backoff{1000, 60000};
        bool due = true;  // resolve on the next process()
        TimePoint next_refresh{};
        NameStatus st;
        // Last good addresses per SRV target, reused when one target fails
        // while the SRV answer itself is fine.
        std::map<std::string, std::vector<ResolvedAddress>> last_target_addresses;

        // In flight:
        uint64_t generation = 0;
        int pending = 0;
        bool failed = false;
        std::string error;
        uint32_t min_ttl = kNoTtl;
        std::vector<SrvRecord> records;
        std::map<std::string, std::vector<ResolvedAddress>> addresses;  // by target / name
        std::set<std::string> target_errors;
        std::vector<std::string> query_errors;
    };

    struct QueryCtx {
        Impl* impl;
        uint64_t name_id;
        uint64_t generation;
        QueryKind kind;
        std::string target;
    };

    config::DnsConfig cfg;
    ResultFn on_result;
    LogFn log;
    ares_channel channel = nullptr;
    std::map<uint64_t, Name> names;
    uint64_t next_id = 1;
    bool destroying = false;
    TimePoint now{};

    void logf(LogLevel level, const std::string& msg) {
        if (log) log(level, msg);
    }

    Name* find(uint64_t id) {
        auto it = names.find(id);
        return it == names.end() ? nullptr : &it->second;
    }

    void start(Name& n) {
        n.due = false;
        ++n.generation;
        n.pending = 0;
        n.failed = false;
        n.error.clear();
        n.min_ttl = kNoTtl;
        n.records.clear();
        n.addresses.clear();
        n.target_errors.clear();
        n.query_errors.clear();
        n.st.in_flight = true;
        const uint64_t id = n.id, gen = n.generation;
        // Keep one pending count across the issuing loop so a synchronous
        // callback cannot finish the resolution half-way.
        ++n.pending;
        if (n.srv) {
            issue(id, gen, QueryKind::srv, n.name);
        } else {
            issue(id, gen, QueryKind::a, n.name);
            issue(id, gen, QueryKind::aaaa, n.name);
        }
        release(id, gen);
    }

    void issue(uint64_t id, uint64_t gen, QueryKind kind, const std::string& qname) {
        Name* n = find(id);
        if (!n) return;
        ++n->pending;
        auto* ctx = new QueryCtx{this, id, gen, kind, qname};
        const int type = kind == QueryKind::srv ? ns_t_srv : kind == QueryKind::a ? ns_t_a : ns_t_aaaa;
        ares_query(channel, qname.c_str(), ns_c_in, type, &Impl::on_answer, ctx);
    }

    // Drops one pending count; the last one finishes the resolution.
    void release(uint64_t id, uint64_t gen) {
        Name* n = find(id);
        if (!n || n->generation != gen || n->pending <= 0) return;
        if (--n->pending == 0) finish(*n);
    }

    static void on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
        std::unique_ptr<QueryCtx> ctx(static_cast<QueryCtx*>(arg));
        Impl* self = ctx->impl;
        if (self->destroying || status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) return;
        Name* n = self->find(ctx->name_id);
        if (!n || n->generation != ctx->generation) return;
        self->handle_answer(*n, *ctx, status, abuf, alen);
        self->release(ctx->name_id, ctx->generation);
    }

    void handle_answer(Name& n, const QueryCtx& q, int status, const unsigned char* abuf, int alen) {
        const char* kind_text = q.kind == QueryKind::srv ? "SRV" : q.kind == QueryKind::a ? "A" : "AAAA";
        if (status != ARES_SUCCESS) {
            // NODATA for one address family is normal (v4-only hosts).
            if (status != ARES_ENODATA || q.kind == QueryKind::srv)
                n.query_errors.push_back(std::string(kind_text) + " " + q.target + ": " + ares_error_text(status));
            else
                n.addresses.try_emplace(q.target);
            if (q.kind == QueryKind::srv) {
                n.failed = true;
                n.error = n.query_errors.back();
            }
            return;
        }
        if (q.kind == QueryKind::srv) {
            struct ares_srv_reply* srv = nullptr;
            const int rc = ares_parse_srv_reply(abuf, alen, &srv);
            if (rc != ARES_SUCCESS) {
                n.failed = true;
                n.error = std::string("SRV ") + q.target + ": " + ares_error_text(rc);
                return;
            }
            n.min_ttl = std::min(n.min_ttl, answer_min_ttl(abuf, alen));
            std::set<std::string> targets;
            for (auto* r = srv; r; r = r->next) {
                SrvRecord rec{r->host ? r->host : "", r->port, r->priority, r->weight};
                if (rec.target.empty() || rec.target == ".") continue;
                targets.insert(rec.target);
                n.records.push_back(std::move(rec));
            }
            ares_free_data(srv);
            for (const auto& t : targets) {
                issue(n.id, n.generation, QueryKind::a, t);
                issue(n.id, n.generation, QueryKind::aaaa, t);
            }
            return;
        }
        constexpr int kMax = 64;
        auto& list = n.addresses[q.target];
        if (q.kind == QueryKind::a) {
            struct ares_addrttl ttls[kMax];
            int count = kMax;
            const int rc = ares_parse_a_reply(abuf, alen, nullptr, ttls, &count);
            if (rc != ARES_SUCCESS) {
                n.query_errors.push_back(std::string("A ") + q.target + ": " + ares_error_text(rc));
                return;
            }
            for (int i = 0; i < count; ++i) {
                uint32_t be;
                std::memcpy(&be, &ttls[i].ipaddr, 4);
                list.push_back({IpAddress::from_v4_be(be), static_cast<uint32_t>(std::max(0, ttls[i].ttl))});
                n.min_ttl = std::min(n.min_ttl, static_cast<uint32_t>(std::max(0, ttls[i].ttl)));
            }
        } else {
            struct ares_addr6ttl ttls[kMax];
            int count = kMax;
            const int rc = ares_parse_aaaa_reply(abuf, alen, nullptr, ttls, &count);
            if (rc != ARES_SUCCESS) {
                n.query_errors.push_back(std::string("AAAA ") + q.target + ": " + ares_error_text(rc));
                return;
            }
            for (int i = 0; i < count; ++i) {
                list.push_back({IpAddress::from_v6(reinterpret_cast<const uint8_t*>(&ttls[i].ip6addr)),
                                static_cast<uint32_t>(std::max(0, ttls[i].ttl))});
                n.min_ttl = std::min(n.min_ttl, static_cast<uint32_t>(std::max(0, ttls[i].ttl)));
            }
        }
    }

    void finish(Name& n) {
        n.st.in_flight = false;
        std::vector<DiscoveredBackend> result;
        uint32_t ttl = clamp_ttl(n.min_ttl == kNoTtl ? cfg.ttl_floor_s : n.min_ttl, cfg.ttl_floor_s, cfg.ttl_ceiling_s);
        if (!n.failed) {
            if (n.srv) {
                // A target whose lookups all failed keeps its last good addresses.
                auto addresses = n.addresses;
                for (const auto& r : n.records) {
                    auto& list = addresses[r.target];
                    if (!list.empty()) continue;
                    auto last = n.last_target_addresses.find(r.target);
                    if (last != n.last_target_addresses.end()) list = last->second;
                }
                result =
                    build_srv_backends(n.records, addresses, ttl,
                                       config::is_tls_srv_name(n.name) ? std::optional(n.default_port) : std::nullopt);
                for (auto& [t, list] : n.addresses)
                    if (!list.empty()) n.last_target_addresses[t] = list;
                // Forget targets no longer published.
                std::set<std::string> live;
                for (const auto& r : n.records) live.insert(r.target);
                std::erase_if(n.last_target_addresses, [&](const auto& kv) { return !live.count(kv.first); });
            } else {
                std::vector<ResolvedAddress> all;
                for (auto& [t, list] : n.addresses) all.insert(all.end(), list.begin(), list.end());
                result = build_address_backends(n.name, all, n.default_port, ttl);
            }
            if (result.empty()) {
                n.failed = true;
                n.error = n.query_errors.empty() ? std::string("empty answer")
                                                 : "empty answer (" + n.query_errors.front() + ")";
            }
        }
        if (n.failed) {
            ++n.st.resolutions_failed;
            ++n.st.consecutive_failures;
            n.st.last_error = n.error;
            const auto delay = n.backoff.next_failure();
            n.next_refresh = now + delay;
            n.st.next_refresh = n.next_refresh;
            logf(LogLevel::warn, "dns resolution failed pool=" + n.pool + " name=" + n.name + " error=\"" + n.error +
                                     "\" keeping=" + std::to_string(n.st.backends.size()) +
                                     " retry_ms=" + std::to_string(delay.count()));
            return;
        }
        ++n.st.resolutions_ok;
        n.st.consecutive_failures = 0;
        n.st.last_error.clear();
        n.st.last_ttl_s = ttl;
        n.backoff.reset();
        n.next_refresh = now + std::chrono::seconds(ttl);
        n.st.next_refresh = n.next_refresh;
        const bool changed = !n.st.has_result || !same_backend_set(result, n.st.backends);
        n.st.has_result = true;
        n.st.backends = std::move(result);
        if (changed) {
            ++n.st.changes;
            logf(LogLevel::info, "dns set changed pool=" + n.pool + " name=" + n.name + " backends=" +
                                     std::to_string(n.st.backends.size()) + " ttl=" + std::to_string(ttl));
            if (on_result) {
                // Copies: the callback may add or remove names.
                const std::string pool = n.pool, name = n.name;
                const auto set = n.st.backends;
                on_result(pool, name, set);
            }
        }
    }
};

Result<std::unique_ptr<DnsDiscovery>> DnsDiscovery::create(const config::DnsConfig& dns, ResultFn on_result,
                                                           LogFn log) {
    std::call_once(g_ares_init_once, [] { g_ares_init_status = ares_library_init(ARES_LIB_INIT_ALL); });
    if (g_ares_init_status != ARES_SUCCESS)
        return Result<std::unique_ptr<DnsDiscovery>>::fail(std::string("c-ares init: ") +
                                                           ares_strerror(g_ares_init_status));
    auto impl = std::make_unique<Impl>();
    impl->cfg = dns;
    impl->on_result = std::move(on_result);
    impl->log = std::move(log);

    ares_options opts{};
    int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
    opts.timeout = static_cast<int>(std::max<uint32_t>(100, dns.timeout_ms));
    opts.tries = 2;
    // No search list: configured names are absolute. Re-resolve fresh each
    // time (c-ares 1.18 has no cache, which is what we want: TTL-driven).
    opts.flags = ARES_FLAG_NOSEARCH;
    const int rc = ares_init_options(&impl->channel, &opts, mask);
    if (rc != ARES_SUCCESS)
        return Result<std::unique_ptr<DnsDiscovery>>::fail(std::string("c-ares channel: ") + ares_strerror(rc));
    if (!dns.resolvers.empty()) {
        std::string csv;
        for (const auto& r : dns.resolvers) {
            if (!csv.empty()) csv += ',';
            csv += r.to_string();
        }
        const int src = ares_set_servers_ports_csv(impl->channel, csv.c_str());
        if (src != ARES_SUCCESS) {
            ares_destroy(impl->channel);
            return Result<std::unique_ptr<DnsDiscovery>>::fail("c-ares resolvers '" + csv + "': " + ares_strerror(src));
        }
    }
    return std::unique_ptr<DnsDiscovery>(new DnsDiscovery(std::move(impl)));
}

DnsDiscovery::DnsDiscovery(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DnsDiscovery::~DnsDiscovery() {
    impl_->destroying = true;
    ares_destroy(impl_->channel);  // callbacks run with ARES_EDESTRUCTION and free their contexts
}

Status DnsDiscovery::add_name(const std::string& pool, const std::string& name, uint16_t default_port) {
    if (name.empty() || name.size() > 253) return Status::fail("dns name '" + name + "': invalid length");
    for (const auto& [id, n] : impl_->names)
        if (n.pool == pool && n.name == name) return ok_status();
    Impl::Name n;
    n.id = impl_->next_id++;
    n.pool = pool;
    n.name = name;
    n.srv = is_srv_name(name);
    n.default_port = default_port;
    n.backoff = Backoff(impl_->cfg.retry_initial_ms, impl_->cfg.retry_max_ms);
    n.st.pool = pool;
    n.st.name = name;
    n.st.srv = n.srv;
    impl_->names.emplace(n.id, std::move(n));
    return ok_status();
}

void DnsDiscovery::remove_pool(const std::string& pool) {
    std::erase_if(impl_->names, [&](const auto& kv) { return kv.second.pool == pool; });
}

bool DnsDiscovery::resolve_now(const std::string& pool) {
    bool any = false;
    for (auto& [id, n] : impl_->names)
        if (n.pool == pool) {
            any = true;
            if (!n.st.in_flight) n.due = true;
        }
    return any;
}

int DnsDiscovery::timeout_ms(TimePoint now) {
    long best = -1;
    auto consider = [&](long ms) {
        ms = std::max(0L, ms);
        if (best < 0 || ms < best) best = ms;
    };
    for (const auto& [id, n] : impl_->names) {
        if (n.st.in_flight) continue;
        if (n.due) {
            consider(0);
            continue;
        }
        auto d = std::chrono::ceil<std::chrono::milliseconds>(n.next_refresh - now).count();
        consider(static_cast<long>(std::min<int64_t>(d, INT_MAX)));
    }
    struct timeval tv {};
    if (ares_timeout(impl_->channel, nullptr, &tv)) consider(tv.tv_sec * 1000L + (tv.tv_usec + 999) / 1000);
    return static_cast<int>(std::min<long>(best, INT_MAX));
}

void DnsDiscovery::fds(std::vector<pollfd>& out) {
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    const int bits = ares_getsock(impl_->channel, socks, ARES_GETSOCK_MAXNUM);
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
        short ev = 0;
        if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
        if (ev) out.push_back(pollfd{socks[i], ev, 0});
    }
}

void DnsDiscovery::process(const std::vector<pollfd>& ready, TimePoint now) {
    impl_->now = now;
    std::vector<pollfd> mine;
    fds(mine);
    for (const auto& m : mine) {
        for (const auto& r : ready) {
            if (r.fd != m.fd || r.revents == 0) continue;
            const bool rd = r.revents & (POLLIN | POLLERR | POLLHUP);
            const bool wr = r.revents & (POLLOUT | POLLERR | POLLHUP);
            ares_process_fd(impl_->channel, rd ? r.fd : ARES_SOCKET_BAD, wr ? r.fd : ARES_SOCKET_BAD);
            break;
        }
    }
    // Timeouts (and retransmissions) of queries in flight.
    ares_process_fd(impl_->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    std::vector<uint64_t> due;
    for (auto& [id, n] : impl_->names)
        if (!n.st.in_flight && (n.due || now >= n.next_refresh)) due.push_back(id);
    for (uint64_t id : due)
        if (auto* n = impl_->find(id); n && !n->st.in_flight) impl_->start(*n);
}

std::vector<NameStatus> DnsDiscovery::status() const {
    std::vector<NameStatus> out;
    out.reserve(impl_->names.size());
    for (const auto& [id, n] : impl_->names) out.push_back(n.st);
    return out;
}

}  // namespace siplb::discovery
