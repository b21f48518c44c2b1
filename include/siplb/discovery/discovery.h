// Backend discovery through DNS (c-ares): SRV names (RFC 2782 / RFC 3263:
// "_sip._udp.example.net" and "_sip._tcp..." give the SIP port, which
// siplb's backends serve UDP and TCP on; "_sips._tcp..." gives the TLS port)
// and plain A/AAAA names, re-resolved when the TTL expires, on demand and
// with exponential backoff on failure.
//
// Everything runs in the daemon's single control thread and never blocks:
// the owner polls fds() with timeout_ms() and hands the ready set to
// process(). Results are delivered as the full current set per (pool, name)
// through a callback, and only when the set changed. A failed or empty
// resolution never empties a pool: the last good set is kept.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"
#include "siplb/config/config.h"

namespace siplb::discovery {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// One backend learned from DNS. For SRV names: port, weight and priority
// come from the SRV record (weight 0 becomes 1: RFC 2782 weight 0 means
// "rarely selected", but a Maglev weight of 0 takes no calls at all, which
// would silently disable a server the operator published). For A/AAAA
// names: the pool's default port, weight 1, priority 0.
struct DiscoveredBackend {
    Endpoint address;
    uint32_t weight = 1;
    uint16_t priority = 0;  // lower is preferred (SRV); backups have higher values
    uint32_t ttl_s = 0;     // clamped TTL of the answer chain that produced it
    std::string target;     // SRV target host or the A/AAAA name
    // _sips._tcp names: the record's port, the host's TLS port; `address`
    // then holds the pool's default_port (the pool manager merges it with
    // the host's SIP-port sources, control/pool_manager.h).
    std::optional<uint16_t> tls_port;

    bool operator==(const DiscoveredBackend&) const = default;
};

// Same backends, weights and priorities (TTLs and target names ignored:
// a caching resolver counts TTLs down, which is no change of the set).
bool same_backend_set(const std::vector<DiscoveredBackend>& a, const std::vector<DiscoveredBackend>& b);

// --- small pure pieces (unit tested) ---

// Names starting with '_' ("_sip._udp.example.net") are SRV names.
bool is_srv_name(std::string_view name);

// TTL clamped to [floor, ceiling] (ceiling below floor: floor wins).
uint32_t clamp_ttl(uint32_t ttl_s, uint32_t floor_s, uint32_t ceiling_s);

// Exponential backoff after failed resolutions: initial, 2x, 4x ... capped.
class Backoff {
public:
    Backoff(uint32_t initial_ms, uint32_t max_ms);
    // Delay before the next attempt after one more failure.
    std::chrono::milliseconds next_failure();
    void reset() { failures_ = 0; }
    uint32_t failures() const { return failures_; }

private:
    uint32_t initial_ms_;
    uint32_t max_ms_;
    uint32_t failures_ = 0;
};

struct SrvRecord {
    std::string target;  // "." means "service decidedly not available here"
    uint16_t port = 0;
    uint16_t priority = 0;
    uint16_t weight = 0;
};

struct ResolvedAddress {
    IpAddress ip;
    uint32_t ttl_s = 0;
};

// Expands SRV records with the addresses of their targets into backends,
// sorted by (priority, address). An endpoint reachable through several
// records keeps the best priority and the largest weight. Targets without
// addresses contribute nothing. tls_default_port set (a _sips._tcp name):
// each backend is {address, *tls_default_port} with the record's port as
// its tls_port (one per address: the best priority's port).
std::vector<DiscoveredBackend> build_srv_backends(
    const std::vector<SrvRecord>& records, const std::map<std::string, std::vector<ResolvedAddress>>& target_addresses,
    uint32_t ttl_s, std::optional<uint16_t> tls_default_port = std::nullopt);

// Every address of an A/AAAA name as a backend on default_port (weight 1).
std::vector<DiscoveredBackend> build_address_backends(const std::string& name,
                                                      const std::vector<ResolvedAddress>& addresses,
                                                      uint16_t default_port, uint32_t ttl_s);

// --- the resolver ---

enum class LogLevel : uint8_t { debug, info, warn, error };
using LogFn = std::function<void(LogLevel, const std::string& message)>;

struct NameStatus {
    std::string pool;
    std::string name;
    bool srv = false;
    uint64_t resolutions_ok = 0;
    uint64_t resolutions_failed = 0;
    uint64_t consecutive_failures = 0;
    uint64_t changes = 0;     // times a changed set was delivered
    std::string last_error;   // empty after a success
    uint32_t last_ttl_s = 0;  // clamped TTL of the last good answer
    bool in_flight = false;
    bool has_result = false;  // a good answer was ever received
    TimePoint next_refresh{};
    std::vector<DiscoveredBackend> backends;  // last good set
};

class DnsDiscovery {
public:
    // (pool, name, full current set of that name): called only when the set changed.
    using ResultFn = std::function<void(const std::string& pool, const std::string& name,
                                        const std::vector<DiscoveredBackend>& backends)>;

    // Resolvers from dns.resolvers (ip:port), else /etc/resolv.conf.
    static Result<std::unique_ptr<DnsDiscovery>> create(const config::DnsConfig& dns, ResultFn on_result,
                                                        LogFn log = {});
    ~DnsDiscovery();
    DnsDiscovery(const DnsDiscovery&) = delete;
    DnsDiscovery& operator=(const DnsDiscovery&) = delete;

    // Registers a name of a pool; it is resolved on the next process().
    // Adding the same (pool, name) twice is a no-op.
    Status add_name(const std::string& pool, const std::string& name, uint16_t default_port);
    // Forgets every name of the pool (answers still in flight are dropped).
    void remove_pool(const std::string& pool);
    // Re-resolves every name of the pool on the next process() (the control
    // socket's "resolve POOL"). Returns false for a pool without names.
    bool resolve_now(const std::string& pool);

    // Milliseconds until process() has work without fd activity; -1: none.
    int timeout_ms(TimePoint now);
    // Sockets c-ares wants polled (appended to out).
    void fds(std::vector<pollfd>& out);
    std::vector<pollfd> fds() {
        std::vector<pollfd> v;
        fds(v);
        return v;
    }
    // Handles the ready sockets that are ours (others are ignored), c-ares
    // timeouts, and starts the resolutions that are due.
    void process(const std::vector<pollfd>& ready, TimePoint now);

    std::vector<NameStatus> status() const;

private:
    struct Impl;
    explicit DnsDiscovery(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace siplb::discovery
