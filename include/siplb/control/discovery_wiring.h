// Connects DNS discovery and health checking to the PoolManager: one
// DnsDiscovery and one HealthChecker for the whole daemon, every pool's DNS
// names registered, answers fed to set_discovered(), verdict changes to
// set_health(), and the probe list kept equal to the PoolManager's backends
// (static, DNS, operator-added). The daemon polls fds()/timeout_ms() and
// calls process(), or registers as_source() with its EventLoop.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "siplb/control/config.h"
#include "siplb/control/discovery.h"
#include "siplb/control/event_loop.h"
#include "siplb/control/health.h"
#include "siplb/control/pool_manager.h"

namespace siplb::discovery {

class DiscoveryWiring {
public:
    // pm must outlive the wiring. Fails if the resolver or the probe
    // sockets cannot be set up, or a DNS name is invalid.
    static Result<std::unique_ptr<DiscoveryWiring>> create(const config::Config& cfg, control::PoolManager& pm);

    int timeout_ms(TimePoint now);
    std::vector<pollfd> fds();
    void process(const std::vector<pollfd>& ready, TimePoint now);
    // EventLoop adapter (uses Clock::now()).
    control::EventLoop::Source as_source();

    // `siplbctl resolve POOL`: false if the pool has no DNS names.
    bool resolve_now(const std::string& pool);
    // Re-reads the probe list from the PoolManager now (also done
    // automatically whenever its version changes).
    void sync_targets(TimePoint now);

    // {"dns":[{pool,name,type,ok,failed,...,backends:[...]}], "probes":[{pool,backend,verdict,...}]}
    // pool empty: every pool.
    nlohmann::json status_json(TimePoint now, const std::string& pool = {}) const;

    DnsDiscovery& dns() { return *dns_; }
    health::HealthChecker& health() { return *health_; }

private:
    explicit DiscoveryWiring(control::PoolManager& pm) : pm_(pm) {}
    control::PoolManager& pm_;
    std::unique_ptr<DnsDiscovery> dns_;
    std::unique_ptr<health::HealthChecker> health_;
    std::vector<std::string> pools_;
    uint64_t synced_version_ = 0;
};

}  // namespace siplb::discovery
