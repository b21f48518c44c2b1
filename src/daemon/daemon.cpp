#include "daemon.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <rte_pdump.h>

#include <cstdio>
#include <cstring>

#include "siplb/control/log.h"
#include "siplb_build_config.h"

namespace siplb::daemon {
namespace {

using control::log;
using control::LogLevel;
using json = nlohmann::json;

uint32_t monotonic_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);  // the dataplane's affinity clock
    return static_cast<uint32_t>(ts.tv_sec);
}

}  // namespace

Status check_config(const config::Config& cfg) {
    if (auto s = config::check_host(cfg); !s) return s;
    control::PoolManager pm(cfg);
    control::SnapshotBuilder builder(cfg);
    if (auto s = builder.build(pm); !s) return Status::fail(s.message());
    return ok_status();
}

Status Daemon::publish(const char* why) {
    auto snap = builder_.build(pools_, publisher_.current());
    if (!snap) {
        ++publish_failures_;
        log(LogLevel::error, "snapshot build failed, workers keep the previous one",
            {{"error", snap.message()}, {"why", why}});
        return Status::fail(snap.message());
    }
    const uint64_t version = (*snap)->version();
    publisher_.publish(std::move(*snap));
    log(LogLevel::debug, "snapshot published", {{"version", std::to_string(version)}, {"why", why}});
    return ok_status();
}

Status Daemon::start_dataplane() {
    auto dp = dataplane::Dataplane::create(cfg_.dataplane, publisher_, *affinity_);
    if (!dp) return Status::fail(dp.message());
    dataplane_ = std::move(*dp);
    // dpdk-dumpcap / dpdk-pdump attach as secondary processes (same
    // --file-prefix) and ask this process, through the EAL's multi-process
    // channel, to copy frames at the ports' RX/TX. Best effort: siplb
    // forwards without it.
    pdump_ = rte_pdump_init() == 0;
    if (!pdump_) log(LogLevel::warn, "rte_pdump_init failed: dpdk-dumpcap cannot attach");
    if (auto s = dataplane_->start(); !s) return Status::fail(s.message());
    log(LogLevel::info, "dataplane started",
        {{"workers", std::to_string(dataplane_->worker_count())},
         {"ports", std::to_string(cfg_.dataplane.ports.size())}});
    return ok_status();
}

// DNS discovery and health checks (the discovery library's wiring to the
// PoolManager). The loop polls it through an indirection so a reload that
// changes DNS names or health settings can replace it.
Status Daemon::start_discovery() {
    auto w = control::DiscoveryWiring::create(cfg_, pools_);
    if (!w) return Status::fail(w.message());
    const bool first = !discovery_;
    discovery_ = std::move(*w);
    if (first) {
        loop_.add_source({[this] { return discovery_->fds(); },
                          [this] { return discovery_->timeout_ms(std::chrono::steady_clock::now()); },
                          [this](const std::vector<pollfd>& ready) {
                              discovery_->process(ready, std::chrono::steady_clock::now());
                          }});
    }
    return ok_status();
}

Result<std::vector<std::string>> Daemon::reload(const control::Actor& who) {
    using R = Result<std::vector<std::string>>;
    // systemd shows the unit "reloading" until READY=1, sent on every way out.
    notifier_.reloading();
    struct Reloaded {
        Notifier& n;
        ~Reloaded() { n.reloaded(); }
    } reloaded{notifier_};
    auto fail = [&](std::string msg) {
        ++reloads_failed_;
        log(LogLevel::error, "reload rejected, running config kept", {{"error", msg}, {"by", who.who}});
        return R::fail("reload rejected, running config kept: " + msg);
    };
    auto next = config::load_config(cfg_.source_path);
    if (!next) return fail(next.message());
    const auto restart = config::restart_required_changes(cfg_, *next);
    if (!restart.empty()) {
        std::string msg = "these changes need a restart: ";
        for (size_t i = 0; i < restart.size(); ++i) msg += (i ? "; " : "") + restart[i];
        return fail(msg);
    }
    // Trial build of the new tables, so an unbuildable config changes nothing.
    {
        control::PoolManager trial(*next);
        control::SnapshotBuilder trial_builder(*next);
        if (auto s = trial_builder.build(trial); !s) return fail(s.message());
    }
    const auto described = config::describe_changes(cfg_, *next);
    control::LogLevel level;
    if (control::parse_log_level(next->log.level, &level)) control::set_log_level(level);
    builder_.set_config(*next);
    auto applied = pools_.apply_config(*next, who);
    if (!applied) return fail(applied.message());
    bool discovery_changed = cfg_.dns != next->dns || cfg_.health != next->health ||
                             cfg_.pools.size() != next->pools.size();
    for (const auto& p : next->pools) {
        const auto* old = cfg_.find_pool(p.name);
        discovery_changed = discovery_changed || !old || old->dns != p.dns || old->health != p.health ||
                            old->default_port != p.default_port;
    }
    cfg_ = std::move(*next);
    if (discovery_changed) {
        if (auto s = start_discovery(); !s)
            log(LogLevel::error, "discovery restart after reload failed, keeping the previous one",
                {{"error", s.message()}});
    }
    // Table parameters (VIPs, seed, size) may have changed without a backend change.
    if (!described.empty()) (void)publish("reload");
    ++reloads_ok_;
    log(LogLevel::info, "config reloaded", {{"changes", std::to_string(described.size())}, {"by", who.who}});
    for (const auto& line : described) log(LogLevel::info, "config change", {{"change", line}});
    return described;
}

json Daemon::status() const {
    json j;
    j["version"] = SIPLB_VERSION;
    j["pid"] = ::getpid();
    j["uptime_s"] =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count();
    j["config"] = cfg_.source_path;
    const balance::DataplaneSnapshot* snap = publisher_.current();
    j["snapshot_version"] = snap ? snap->version() : 0;
    // Replaced snapshots still in their grace period and freed so far: a
    // reclamation leak shows as `retired` growing.
    j["snapshots"] = {{"retired", publisher_.retired_count()}, {"freed", publisher_.freed_count()}};
    j["mbufs_in_use"] = dataplane_ ? dataplane_->mbufs_in_use() : 0;
    json tables = json::object();
    if (snap) {
        char buf[24];
        for (const auto& p : snap->pools()) {
            std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(p->fingerprint()));
            tables[p->name()] = buf;
        }
    }
    j["tables"] = tables;
    json ports = json::array();
    for (const auto& p : cfg_.dataplane.ports) ports.push_back({{"name", p.name}, {"device", p.device}});
    j["workers"] = dataplane_ ? dataplane_->worker_count() : 0;
    j["dataplane"] = !dataplane_running() ? "stopped" : stopping_ ? "stopping" : "running";
    json beats = json::array();
    const auto& hb = heartbeats_.beats();
    for (size_t i = 0; i < hb.size(); ++i)
        beats.push_back({{"worker", i}, {"loops", hb[i].loops}, {"stalled", hb[i].stalled}});
    j["worker_status"] = beats;
    j["stalled_workers"] = heartbeats_.stalled();
    j["ports"] = ports;
    j["control_clients"] = server_ ? server_->clients() : 0;
    j["pdump"] = pdump_;
    j["capture_running"] = capture_ && capture_->running();
    if (hep_)
        j["mirror"] = {{"hep", cfg_.dataplane.mirror.hep->to_string()},
                       {"sent", hep_->sent()},
                       {"send_errors", hep_->send_errors()}};
    return j;
}

control::StatsSnapshot Daemon::stats() const {
    control::StatsSnapshot s;
    if (affinity_) {
        s.affinity_capacity = affinity_->capacity();
        s.affinity_entries = affinity_->count_live(monotonic_seconds());
    }
    if (dataplane_) s.dataplane = dataplane_->stats();
    return s;
}

control::MetricsInfo Daemon::metrics_info() const {
    control::MetricsInfo m;
    m.version = SIPLB_VERSION;
    m.uptime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    const balance::DataplaneSnapshot* snap = publisher_.current();
    m.snapshot_version = snap ? snap->version() : 0;
    m.reloads_ok = reloads_ok_;
    m.reloads_failed = reloads_failed_;
    m.control_requests = server_ ? server_->requests() : 0;
    if (snap) {
        m.table_share = control::table_shares(*snap);
        m.tcp_pools = control::tcp_pools(*snap);
    }
    return m;
}

bool Daemon::dataplane_running() const { return dataplane_ && dataplane_->running(); }

void Daemon::sample_workers() {
    if (!dataplane_running()) {
        // Stale beats must not keep the watchdog fed.
        heartbeats_.clear();
        return;
    }
    const std::vector<uint64_t> loops = dataplane_->worker_loops();
    for (size_t i : heartbeats_.sample(loops, std::chrono::steady_clock::now())) {
        const auto& b = heartbeats_.beats()[i];
        log(b.stalled ? LogLevel::error : LogLevel::info, b.stalled ? "worker stalled" : "worker running again",
            {{"worker", std::to_string(i)}, {"loops", std::to_string(b.loops)}});
    }
}

StatusFacts Daemon::status_facts() const {
    StatusFacts f;
    for (const auto& p : pools_.pools()) {
        ++f.pools;
        f.backends += p.backends.size();
        for (const auto& b : p.backends) f.backends_up += b.state == control::EffectiveState::active;
    }
    f.workers = heartbeats_.beats().size();
    f.stalled = heartbeats_.stalled();
    f.tx_packets = sampled_.total("traffic", "tx_packets");
    f.stopping = stopping_;
    return f;
}

void Daemon::sample_counters() {
    if (dataplane_) sampled_ = dataplane_->stats();
}

void Daemon::feed_passive_health() {
    if (!dataplane_ || !discovery_) return;
    bool passive = false;
    for (const auto& p : cfg_.pools) passive = passive || p.health.passive;
    if (!passive) return;
    const dataplane::DataplaneStats& d = sampled_;
    std::vector<health::PassiveSample> samples;
    samples.reserve(d.backends.size());
    for (const auto& b : d.backends)
        samples.push_back({b.pool, b.address, b.at("overload", "responses"),
                           static_cast<uint32_t>(b.at("overload", "retry_after_s"))});
    discovery_->observe_passive(samples, std::chrono::steady_clock::now());
}

void Daemon::warn_advertising_backends() {
    if (!dataplane_running()) return;
    for (const auto& w : advertise_watch_.observe(sampled_, std::chrono::steady_clock::now()))
        log(LogLevel::warn,
            "backend advertises its own address in Contact or Record-Route: phones send ACK, BYE and re-INVITEs "
            "straight to it, around siplb; configure it to advertise a VIP (deploy/README.md)",
            {{"pool", w.pool},
             {"backend", w.backend.to_string()},
             {"messages", std::to_string(w.since_last)},
             {"total", std::to_string(w.total)}});
}

void Daemon::on_signal() {
    signalfd_siginfo si{};
    while (::read(signal_fd_, &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
        if (si.ssi_signo == SIGHUP) {
            log(LogLevel::info, "SIGHUP: reloading config", {{"config", cfg_.source_path}});
            (void)reload(control::Actor{"signal SIGHUP"});
        } else if (!stopping_ && cfg_.control.stop_grace_ms > 0 && dataplane_running()) {
            // Graceful: keep forwarding while routers move the traffic away.
            stopping_ = true;
            notifier_.stopping();
            log(LogLevel::info, "stopping after the grace period, still forwarding",
                {{"signal", strsignal(static_cast<int>(si.ssi_signo))},
                 {"stop_grace_ms", std::to_string(cfg_.control.stop_grace_ms)}});
            loop_.after(std::chrono::milliseconds(cfg_.control.stop_grace_ms), [this] {
                log(LogLevel::info, "stopping", {{"reason", "grace period over"}});
                loop_.stop();
            });
        } else {
            log(LogLevel::info, "stopping", {{"signal", strsignal(static_cast<int>(si.ssi_signo))}});
            notifier_.stopping();
            loop_.stop();
        }
    }
}

int Daemon::run() {
    control::LogLevel level;
    if (control::parse_log_level(cfg_.log.level, &level)) control::set_log_level(level);
    log(LogLevel::info, "starting",
        {{"version", SIPLB_VERSION}, {"config", cfg_.source_path}, {"pools", std::to_string(cfg_.pools.size())}});

    // Signals go to the loop through a signalfd. Blocked before any thread
    // (DPDK lcores) starts, so they all inherit the mask.
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
    pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    signal(SIGPIPE, SIG_IGN);
    signal_fd_ = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd_ < 0) {
        log(LogLevel::error, "signalfd failed", {{"error", std::strerror(errno)}});
        return 1;
    }
    loop_.watch(signal_fd_, POLLIN, [this](short) { on_signal(); });

    auto aff = balance::AffinityTable::create(cfg_.dataplane.affinity_capacity);
    if (!aff) {
        log(LogLevel::error, "affinity table", {{"error", aff.message()}});
        return 1;
    }
    affinity_ = std::move(*aff);

    pools_.set_listener([this](const control::PoolManager&, const std::vector<std::string>& changed) {
        std::string what;
        for (const auto& p : changed) what += (what.empty() ? "" : ",") + p;
        (void)publish(what.empty() ? "pools removed" : what.c_str());
    });
    if (auto s = publish("startup"); !s) {
        log(LogLevel::error, "cannot build the first snapshot", {{"error", s.message()}});
        return 1;
    }

    control::ControlHooks hooks;
    hooks.status = [this] { return status(); };
    hooks.stats = [this] { return stats(); };
    hooks.metrics_info = [this] { return metrics_info(); };
    hooks.lookup = [this](const std::string& pool, const std::string& call_id,
                          const std::optional<std::string>& key) -> Result<json> {
        const balance::DataplaneSnapshot* snap = publisher_.current();
        if (!snap) return Result<json>::fail("no snapshot published yet");
        return control::lookup_call(*snap, affinity_.get(), pool, call_id, monotonic_seconds(), key,
                                    dataplane_ ? &dataplane_->connections() : nullptr);
    };
    hooks.reload = [this](const control::Actor& who) { return reload(who); };
    hooks.resolve = [this](const std::string& pool) -> Result<json> {
        const auto* pc = cfg_.find_pool(pool);
        if (!pc || !discovery_ || !discovery_->resolve_now(pool))
            return Result<json>::fail("pool '" + pool + "' has no DNS names to resolve");
        json j = discovery_->status_json(std::chrono::steady_clock::now(), pool);
        j["names"] = pc->dns;
        j["started"] = true;
        return j;
    };
    capture_ = std::make_unique<
        control::CaptureService>(control::CaptureSource{[this](const dataplane::CaptureFilter& f,
                                                               uint32_t ring) -> Status {
                                                            if (!dataplane_ || !dataplane_->running())
                                                                return Status::fail("the dataplane is not running");
                                                            return dataplane_->start_capture(f, ring);
                                                        },
                                                        [this](const std::function<void(const dataplane::CaptureSlot&)>&
                                                                   fn,
                                                               size_t max) -> size_t {
                                                            return dataplane_ ? dataplane_->drain_capture(fn, max) : 0;
                                                        },
                                                        [this]() -> uint64_t {
                                                            return dataplane_ ? dataplane_->stop_capture() : 0;
                                                        }},
                                 kCaptureRingSlots);
    hooks.capture = [this](const control::Request& r, const control::Actor& who) {
        return capture_->execute(r, who, std::chrono::steady_clock::now());
    };
    commands_ = std::make_unique<control::CommandHandler>(pools_, std::move(hooks));

    auto server = control::ControlServer::listen(cfg_.control, loop_,
                                                 [this](std::string_view line, const control::PeerCred& peer) {
                                                     return commands_->handle(line, peer);
                                                 });
    if (!server) {
        log(LogLevel::error, "control socket unavailable", {{"error", server.message()}});
        return 1;
    }
    server_ = std::move(*server);
    log(LogLevel::info, "control socket listening", {{"path", server_->path()}});

    if (cfg_.control.metrics_listen) {
        auto http = control::MetricsHttpServer::listen(*cfg_.control.metrics_listen, loop_,
                                                       [this] { return commands_->metrics_text(); });
        if (!http) {
            log(LogLevel::error, "metrics listener unavailable", {{"error", http.message()}});
            return 1;
        }
        metrics_http_ = std::move(*http);
        log(LogLevel::info, "metrics listening",
            {{"address", cfg_.control.metrics_listen->to_string()}, {"path", "/metrics"}});
    }

    if (auto s = start_dataplane(); !s) {
        log(LogLevel::error, "dataplane failed to start", {{"error", s.message()}});
        return 1;
    }
    if (auto s = start_discovery(); !s) {
        log(LogLevel::error, "discovery failed to start", {{"error", s.message()}});
        return 1;
    }
    loop_.every(std::chrono::seconds(1), [this] { capture_->expire(std::chrono::steady_clock::now()); });
    if (cfg_.dataplane.mirror.enabled()) {
        auto hep = control::HepSender::open(*cfg_.dataplane.mirror.hep, cfg_.dataplane.mirror.agent_id,
                                            [this](const std::function<void(const dataplane::MirrorSlot&)>& fn,
                                                   size_t max) { return dataplane_->drain_mirror(fn, max); });
        if (!hep) {
            log(LogLevel::error, "mirror failed to start", {{"error", hep.message()}});
            return 1;
        }
        hep_ = std::move(*hep);
        // Every 10 ms: a worker ring of [mirror] ring slots holds that long
        // at up to ring * 100 datagrams per second per worker.
        loop_.every(std::chrono::milliseconds(10), [this] { hep_->pump(); });
        log(LogLevel::info, "HEP mirror on", {{"collector", cfg_.dataplane.mirror.hep->to_string()}});
    }
    // Housekeeping: free retired snapshots, expire drained DNS backends.
    loop_.every(std::chrono::milliseconds(200), [this] { publisher_.reclaim(); });
    loop_.every(std::chrono::seconds(1), [this] {
        pools_.expire();
        warn_advertising_backends();
    });
    sample_workers();
    sample_counters();
    loop_.every(std::chrono::milliseconds(250), [this] {
        sample_workers();
        sample_counters();
        feed_passive_health();
    });

    // Ports up, first snapshot published, discovery started: ready.
    notifier_.ready(std::chrono::steady_clock::now(), status_facts());
    if (notifier_.enabled())
        loop_.every(kStatusEvery, [this] { notifier_.status(std::chrono::steady_clock::now(), status_facts()); });
    if (notifier_.watchdog_interval().count() > 0) {
        loop_.every(notifier_.watchdog_tick(),
                    [this] { notifier_.watchdog(std::chrono::steady_clock::now(), heartbeats_); });
        log(LogLevel::info, "systemd watchdog on",
            {{"interval_ms", std::to_string(notifier_.watchdog_interval().count() / 1000)}});
    }

    log(LogLevel::info, "running", {{"socket", server_->path()}});
    loop_.run();
    notifier_.stopping();

    capture_.reset();  // stops a running capture while the dataplane is there
    hep_.reset();
    if (dataplane_) dataplane_->stop();
    if (pdump_) rte_pdump_uninit();
    dataplane_.reset();
    metrics_http_.reset();
    server_.reset();
    ::close(signal_fd_);
    log(LogLevel::info, "stopped");
    return 0;
}

}  // namespace siplb::daemon
