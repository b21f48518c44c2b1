// Active health checks (SIP OPTIONS over UDP or TCP, TCP connects), and the
// pure pieces they are built from (hysteresis, probe building, response
// parsing and stream framing, passive evaluation of dataplane counters).
//
// UDP probes leave from one unconnected UDP socket per address family, bound
// to an ephemeral port. Responses are matched by Call-ID (and top Via
// branch). ICMP errors (port/host unreachable) arrive on the socket's error
// queue (IP_RECVERR / IPV6_RECVERR) and fail the outstanding probe at once.
// TCP probes (OPTIONS on the SIP port, or a bare connect to the SIP or TLS
// port) open one non-blocking connection each, closed when the probe ends;
// each check of a backend has at most one probe outstanding, bounded by
// timeout_ms from the connect to the final response.
// Everything runs in the control thread: fds() + timeout_ms() + process().
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"
#include "siplb/config/config.h"

namespace siplb::health {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

enum class Verdict : uint8_t { up, down, overloaded };
std::string_view to_string(Verdict v);

enum class ProbeOutcome : uint8_t {
    ok,            // a final response that is not an overload code
    overloaded,    // a final response with one of overload_codes (503)
    timeout,       // no final response within timeout_ms
    unreachable,   // ICMP port/host/net unreachable
    send_error,    // the kernel refused to send
    bad_response,  // TCP: malformed framing, or closed before a final response
};
std::string_view to_string(ProbeOutcome o);

struct ProbeResult {
    ProbeOutcome outcome = ProbeOutcome::ok;
    uint16_t status_code = 0;               // for responses
    std::optional<uint32_t> retry_after_s;  // Retry-After of an overload response
    std::string detail;                     // "200 OK", "timeout after 1000 ms", ...
};

struct PassiveEvidence;

struct HysteresisParams {
    uint32_t down_after = 3;        // consecutive failures (timeouts, unreachable) -> down
    uint32_t up_after = 2;          // consecutive successes -> up
    bool honor_retry_after = true;  // 503 + Retry-After: overloaded at once, at least that long
};

// The per-backend verdict with hysteresis; pure, time injected.
//   - Starts `up` (a new backend is innocent until probes say otherwise).
//   - down_after consecutive failures -> down (from up or overloaded).
//   - down_after consecutive non-OK answers, the last an overload code ->
//     overloaded. With honor_retry_after and a Retry-After header, a single
//     overload answer suffices (the server asked explicitly) and the verdict
//     stays overloaded at least until now + Retry-After.
//   - A down backend that answers with an overload code is alive: overloaded.
//   - up_after consecutive OK answers -> up (not before Retry-After ends).
//   - Passive evidence (record_passive): a reached threshold is overloaded at
//     once (the threshold already filtered the noise), held for its
//     Retry-After like a probe's; a quiet interval counts as one OK answer.
class HealthState {
public:
    explicit HealthState(HysteresisParams p = {}) : p_(p) {}
    // Returns true when the verdict changed.
    bool record(const ProbeResult& r, TimePoint now);
    bool record_passive(const PassiveEvidence& e, TimePoint now);
    // Takes over a verdict decided before this state existed (a checker
    // rebuilt on reload), with no counts towards any change.
    void assume(Verdict v);
    Verdict verdict() const { return verdict_; }
    uint32_t consecutive_ok() const { return ok_; }
    uint32_t consecutive_failures() const { return fail_; }
    uint32_t consecutive_bad() const { return bad_; }
    std::optional<TimePoint> overloaded_until() const { return overloaded_until_; }
    void set_params(HysteresisParams p) { p_ = p; }

private:
    HysteresisParams p_;
    Verdict verdict_ = Verdict::up;
    uint32_t ok_ = 0;    // consecutive OK
    uint32_t fail_ = 0;  // consecutive timeouts/unreachable/send errors
    uint32_t bad_ = 0;   // consecutive non-OK of any kind
    std::optional<TimePoint> overloaded_until_;
};

// --- OPTIONS probes ---

struct ProbeIds {
    std::string call_id;  // "<hex>@siplb"
    std::string branch;   // "z9hG4bK<hex>"
    std::string from_tag;
    uint32_t cseq = 1;
};

// A complete OPTIONS request to `target`, sent from `local` (Via sent-by
// and Contact). from_uri is config's health.from_uri.
// transport: the Via transport ("UDP" or "TCP"); over TCP the Contact says
// ;transport=tcp.
std::string build_options_request(const Endpoint& target, const Endpoint& local, const std::string& from_uri,
                                  const ProbeIds& ids, std::string_view user_agent = "siplb",
                                  std::string_view transport = "UDP");

struct SipResponseInfo {
    uint16_t status = 0;
    std::string reason;
    std::string call_id;
    std::string branch;       // branch of the top Via
    std::string cseq_method;  // "OPTIONS"
    std::optional<uint32_t> retry_after_s;
};
// Parses a SIP response (status line and the headers we need; compact
// forms i/v accepted). nullopt for requests or malformed datagrams.
std::optional<SipResponseInfo> parse_sip_response(std::string_view datagram);

// A final response's outcome: overloaded when its status is one of
// overload_codes (with its Retry-After), else ok. detail: "503 Busy
// (Retry-After 20)".
ProbeResult classify_response(const SipResponseInfo& info, const std::vector<uint16_t>& overload_codes);

// RFC 3261 §18.3 framing on a stream: the first message in `buffer` spans
// headers up to the blank line plus Content-Length body bytes (the header is
// mandatory on streams; compact form "l" accepted). CRLFs before a message
// (keep-alives, RFC 5626 §3.5.1) are skipped.
struct StreamFrame {
    enum class Kind : uint8_t { incomplete, message, malformed };
    Kind kind = Kind::incomplete;
    size_t skip = 0;    // leading CRLF bytes before the message
    size_t length = 0;  // message bytes after `skip` (kind message)
    std::string error;  // kind malformed
};
StreamFrame frame_stream_message(std::string_view buffer, size_t max_message = 65535);

// --- passive checks (overload responses counted by the dataplane) ---
//
// The real case: an overloaded server keeps answering OPTIONS with 200 while
// it rejects INVITEs with 503, so probes never see it. The workers count,
// per backend, backend->client responses whose status is in the pool's
// overload_codes; the daemon hands the cumulative counters over on a timer
// of its own, so the rate is derived here from timestamps, never from the
// call rate.

// One backend's counters, cumulative since the daemon started.
struct PassiveSample {
    std::string pool;
    Endpoint backend;
    uint64_t overload_responses = 0;
    uint32_t retry_after_s = 0;  // of the latest overload response that carried one; 0: none seen
};

struct PassiveParams {
    bool enabled = false;                      // config health.passive
    uint64_t threshold = 50;                   // overload responses within one interval -> overloaded
    std::chrono::milliseconds interval{2000};  // config health.interval_ms
    // Active probes check the backend (health.enabled). Without them nothing
    // else could bring a backend back, so quiet intervals count as successes.
    bool probed = true;
};
PassiveParams passive_params(const config::HealthConfig& c);

// What one passive observation of a backend concluded.
struct PassiveEvidence {
    bool overloaded = false;            // threshold reached; false: a quiet interval (only for unprobed backends)
    uint64_t count = 0;                 // overload responses counted ...
    std::chrono::milliseconds span{0};  // ... over this span
    std::optional<uint32_t> retry_after_s;
    std::string detail;  // "passive: 57 overload responses in 2000 ms", always starting "passive:"
};

// Turns one backend's cumulative overload counter into per-interval counts.
// Pure, time injected. The count is taken over the last `interval` (from
// readings kept at least interval/16 apart, so memory stays bounded whatever
// the call rate); when readings are further apart than the interval, the
// count over the longer span is scaled down to one interval. A counter that
// goes backwards (backend removed and re-added, counter reset) becomes the
// new baseline without a verdict. After a trip the window starts afresh, so
// the same responses never count twice.
class PassiveWindow {
public:
    std::optional<PassiveEvidence> observe(uint64_t cumulative, uint32_t retry_after_s, TimePoint now,
                                           const PassiveParams& p);
    // Forgets everything: the next reading is a baseline.
    void reset();
    bool primed() const { return primed_; }
    uint64_t last_count() const { return last_; }
    uint32_t last_retry_after_s() const { return last_retry_after_s_; }

private:
    struct Mark {
        TimePoint at;
        uint64_t count;
    };
    void restart(TimePoint now, uint64_t cumulative);
    std::deque<Mark> marks_;
    bool primed_ = false;
    uint64_t last_ = 0;
    uint32_t last_retry_after_s_ = 0;
    TimePoint last_quiet_{};
};

// --- the active checker ---

enum class LogLevel : uint8_t { debug, info, warn, error };
using LogFn = std::function<void(LogLevel, const std::string& message)>;

// One check of a backend ("udp", "tcp" or "tls"), with its own hysteresis.
struct CheckStatus {
    std::string check;   // "udp": OPTIONS over UDP; "tcp": OPTIONS or connect; "tls": connect to tls_port
    std::string method;  // "options" or "connect"
    Endpoint target;     // where it probes
    Verdict verdict = Verdict::up;
    uint32_t consecutive_ok = 0;
    uint32_t consecutive_failures = 0;
    uint64_t probes_sent = 0;
    uint64_t responses = 0;  // final responses (options) or completed connects
    uint64_t timeouts = 0;
    uint64_t unreachable = 0;  // ICMP errors, refused or reset connections
    uint64_t bad_responses = 0;
    uint64_t overloads = 0;
    uint16_t last_status = 0;
    std::string last_detail;
    double last_rtt_ms = -1;
};

// A backend's checks together: the verdict is the worst of its checks' (down
// over overloaded over up); counters are their sums (unreachable includes
// bad responses); consecutive_* are the worst check's; last_detail names the
// failing checks ("tcp: connect: Connection refused") while it is not up.
struct ProbeStatus {
    std::string pool;
    Endpoint address;
    Verdict verdict = Verdict::up;
    uint32_t consecutive_ok = 0;
    uint32_t consecutive_failures = 0;
    uint64_t probes_sent = 0;
    uint64_t responses = 0;
    uint64_t timeouts = 0;
    uint64_t unreachable = 0;
    uint64_t overloads = 0;
    uint16_t last_status = 0;
    std::string last_detail;
    double last_rtt_ms = -1;
    int64_t overloaded_for_ms = 0;    // remaining Retry-After hold, 0 if none
    int64_t next_probe_in_ms = 0;     // -1: not probed (health disabled, passive checks only)
    uint64_t passive_trips = 0;       // times the passive threshold was reached
    std::string passive_detail;       // latest passive evidence, empty if none
    std::vector<CheckStatus> checks;  // the active checks its pool asks for
};

// A backend to check: its SIP address (UDP and TCP) and its TLS port.
struct CheckTarget {
    Endpoint address;
    uint16_t tls_port = 5061;
    bool operator==(const CheckTarget&) const = default;
};

class HealthChecker {
public:
    using VerdictFn = std::function<void(const std::string& pool, const Endpoint& address, Verdict verdict,
                                         const std::string& detail)>;
    struct Options {
        std::optional<IpAddress> source_v4;  // bind address (default any)
        std::optional<IpAddress> source_v6;
        uint64_t seed = 0;  // 0: random seed (jitter, ids)
        std::string user_agent = "siplb";
        LogFn log;
    };

    static Result<std::unique_ptr<HealthChecker>> create(VerdictFn on_verdict, Options opts);
    static Result<std::unique_ptr<HealthChecker>> create(VerdictFn on_verdict) {
        return create(std::move(on_verdict), Options{});
    }
    ~HealthChecker();
    HealthChecker(const HealthChecker&) = delete;
    HealthChecker& operator=(const HealthChecker&) = delete;

    // Health parameters of a pool (before or after its targets are set).
    void set_pool(const std::string& pool, const config::HealthConfig& cfg);
    // The full list of backends of the pool to probe. New ones get their
    // first probe within one jittered interval fraction; removed ones are
    // forgotten; kept ones keep their state (a changed tls_port applies from
    // the next probe). Nothing is probed for a pool whose health is disabled;
    // with passive checks on, its backends are still tracked for them. The
    // pool's udp / tcp / tls keys say which checks run (config.h).
    void set_targets(const std::string& pool, const std::vector<CheckTarget>& targets, TimePoint now);
    void set_targets(const std::string& pool, const std::vector<Endpoint>& targets, TimePoint now);
    void remove_pool(const std::string& pool);
    // Whether (pool, backend) is tracked, and its current verdict.
    std::optional<Verdict> verdict(const std::string& pool, const Endpoint& address) const;
    // See HealthState::assume; false if (pool, backend) is not tracked.
    bool assume(const std::string& pool, const Endpoint& address, Verdict v);

    // Passive checks: the dataplane's cumulative overload counters, at any
    // call rate. Pools with passive off are left alone; a tracked backend
    // missing from `samples` counts as unchanged; samples of untracked
    // backends are ignored. Verdict changes go to the VerdictFn like probe
    // verdicts, with a detail starting "passive:".
    void observe_passive(const std::vector<PassiveSample>& samples, TimePoint now);

    int timeout_ms(TimePoint now) const;  // -1: nothing scheduled
    void fds(std::vector<pollfd>& out) const;
    std::vector<pollfd> fds() const {
        std::vector<pollfd> v;
        fds(v);
        return v;
    }
    // Reads responses and ICMP errors on our ready fds (others ignored),
    // expires timed-out probes, sends the probes that are due.
    void process(const std::vector<pollfd>& ready, TimePoint now);

    std::vector<ProbeStatus> status(TimePoint now) const;
    // Local port of the IPv4 / IPv6 probe socket (0 if none).
    uint16_t local_port_v4() const;
    uint16_t local_port_v6() const;

private:
    struct Impl;
    explicit HealthChecker(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace siplb::health
