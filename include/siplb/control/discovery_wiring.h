// Connects DNS discovery and health checking to the PoolManager: one
// DnsDiscovery and one HealthChecker for the whole daemon, every pool's DNS
// names registered, answers fed to set_discovered(), verdict changes to
// set_health(), and the probe list kept equal to the PoolManager's backends
// (static, DNS, operator-added). The daemon polls fds()/timeout_ms() and
// calls process(), or registers as_source() with its EventLoop, and hands
// the dataplane's overload counters to observe_passive().
//
// A wiring built while the PoolManager already holds health verdicts (the
// daemon rebuilds it on a reload that changes DNS or health settings) takes
// them over: a backend that is down or overloaded stays so until its checks
// bring it back, and one in a pool that is no longer checked at all (health
// and passive both off) is put back up, since nothing else ever would.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "siplb/config/config.h"
#include "siplb/discovery/discovery.h"
#include "siplb/control/event_loop.h"
#include "siplb/health/health.h"
#include "siplb/control/pool_manager.h"

namespace siplb::control {

class DiscoveryWiring {
public:
    // pm must outlive the wiring. Fails if the resolver or the probe
    // sockets cannot be set up, or a DNS name is invalid.
    static Result<std::unique_ptr<DiscoveryWiring>> create(const config::Config& cfg, PoolManager& pm);

    int timeout_ms(discovery::TimePoint now);
    std::vector<pollfd> fds();
    void process(const std::vector<pollfd>& ready, discovery::TimePoint now);
    // EventLoop adapter (uses Clock::now()).
    EventLoop::Source as_source();

    // `siplbctl resolve POOL`: false if the pool has no DNS names.
    bool resolve_now(const std::string& pool);
    // Re-reads the probe list from the PoolManager now (also done
    // automatically whenever its version changes).
    void sync_targets(discovery::TimePoint now);
    // The dataplane's per-backend overload counters (cumulative), handed
    // over by the daemon on a timer of its own. Pools with [health] passive
    // on take a backend out as overloaded when its overload responses within
    // one health interval reach passive_503_threshold; the verdict reaches
    // PoolManager::set_health with a detail starting "passive:", and active
    // probes bring the backend back (see health::HealthState).
    void observe_passive(const std::vector<health::PassiveSample>& samples, discovery::TimePoint now);

    // {"dns":[{pool,name,type,ok,failed,...,backends:[{address,weight,priority,tls_port,target}]}],
    //  "probes":[{pool,backend,verdict,...,checks:[{check,method,target,verdict,...}]}]}
    // pool empty: every pool.
    nlohmann::json status_json(discovery::TimePoint now, const std::string& pool = {}) const;

    discovery::DnsDiscovery& dns() { return *dns_; }
    health::HealthChecker& health() { return *health_; }

private:
    explicit DiscoveryWiring(PoolManager& pm) : pm_(pm) {}
    void adopt_verdicts();
    PoolManager& pm_;
    std::unique_ptr<discovery::DnsDiscovery> dns_;
    std::unique_ptr<health::HealthChecker> health_;
    std::vector<std::string> pools_;
    uint64_t synced_version_ = 0;
};

}  // namespace siplb::control
