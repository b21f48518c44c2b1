// The control socket protocol (siplbctl <-> daemon).
//
// Transport: a Unix stream socket (config [control] socket, mode 0660 by
// default; connecting needs write permission on it). The client sends one
// JSON object per line ('\n' terminated); the daemon answers each line with
// exactly one JSON object on one line, in order. A client may send several
// requests on one connection. Limits: a request line is at most 64 KiB
// (longer: error, then the connection is closed); at most 64 clients at once
// (the 65th gets an error line and is closed); a client silent for 60 s with
// a half line is closed.
//
// Requests ("cmd" is required; other fields per command):
//   {"cmd":"status"}
//   {"cmd":"pools"}
//   {"cmd":"backends"}                  {"cmd":"backends","pool":"lund"}
//   {"cmd":"stats"}
//   {"cmd":"lookup","pool":"lund","call_id":"a84b4c76e66710"}
//   {"cmd":"lookup","pool":"trunk","call_id":"a84b4c76e66710","key":"alice"}
//   {"cmd":"drain","pool":"lund","backend":"192.0.2.10:5060"}
//   {"cmd":"disable",...}   {"cmd":"enable",...}          (same fields as drain)
//   {"cmd":"weight","pool":"lund","backend":"192.0.2.10:5060","weight":5}
//   {"cmd":"add","pool":"lund","backend":"192.0.2.10:5060","weight":1}   (weight optional, default 1)
//   {"cmd":"remove","pool":"lund","backend":"192.0.2.10:5060"}
//   {"cmd":"reload"}
//   {"cmd":"resolve","pool":"lund"}
//   {"cmd":"metrics"}
//   {"cmd":"capture_start","pool":"lund","backend":"192.0.2.10:5060",
//    "call_id":"a84b4c76e66710","client":"203.0.113.5"}   (every filter optional)
//   {"cmd":"capture_read","id":7}      {"cmd":"capture_stop","id":7}
// Backends are "ip:port" or "[v6]:port"; a bare address takes port 5060.
//
// Responses:
//   {"ok":true,"result":{...}}                 command specific object
//   {"ok":false,"error":"unknown command 'x'"} and the connection stays usable
//                                              (except after an over-long line)
// Result objects:
//   status:   {"version","pid","uptime_s","config","workers","ports":[...],
//              "snapshot_version","pools":N,"tables":{"pool":"fingerprint"},
//              "dataplane":"running"|"stopping"|"stopped"|"absent",
//              "worker_status":[{"worker","loops","stalled"}],"stalled_workers":N}
//              "stopping": a stop signal arrived and the workers still
//              forward for [control] stop_grace_ms. A worker is "stalled"
//              when its loop counter did not move for over 1 s (sampled by
//              the control thread every 250 ms).
//   pools:    {"pools":[{"name","version","backends","active","draining","down",
//              "overloaded","disabled","standby","panic_events"}]}
//   backends: {"backends":[{"pool","address","source","weight","state","admin",
//              "health","health_detail","health_since_s","panic","priority",
//              "table_share","packets","bytes","calls","overload_responses",
//              "advertises_itself": messages to clients whose Contact or top
//              Record-Route named a backend address instead of a VIP,
//              "tcp": {"opened","closed","expired","evicted","active"}: the
//              backend's TCP/TLS connection counters (every counter of the
//              schema's backend group kConnectionCounterGroup), only in pools
//              with tcp:// or tls:// VIPs}]}
//   stats:    {"snapshot_version","workers":[...],"ports":[...],"drops":{reason:n},
//              "pools":[...],"backends":[...]}
//   lookup:   {"pool","call_id","backend","reason":"affinity"|"table","state",
//              "key": the pool's balancing key, "table_key": what the table
//              answer hashed ("call_id", or the key with the request's "key"),
//              "vip": the VIP recorded with the call ("ip:port"), null when none
//              is (its replies then leave from the VIP the client last sent
//              to, else from the pool's first VIP of the client's family)}
//             For a pool with tcp:// or tls:// VIPs and a call_id that is a
//             client "ip:port": {"pool","call_id","client","connections":[
//              {"transport":"tcp"|"tls","backend","reason":"connection"|"table"|
//              "no_backend","state","vip": the connection's VIP (null without an
//              entry),"connection_state":"half_open"|"established"|"closing"
//              and "expires_in_s" (both only with an entry)}]}, one per
//              transport the pool listens on
//   drain/disable/enable/weight/add/remove: {"pool","backend","state","weight"}
//   reload:   {"config","changes":["pool lund: backend ... added", ...]}
//   resolve:  {"pool","names":[...]} (resolution is started; results arrive
//              asynchronously and show up in "backends")
//   metrics:  {"text":"# HELP ..."}            Prometheus text exposition
//   capture_start: {"id","snaplen","ring"}  one capture at a time; a capture
//              nobody reads for kCaptureIdleS seconds is stopped
//   capture_read: {"frames":[{"ts_ns","len","sent":bool,"worker","data":base64}]}
//              the frames the workers copied since the last read (at most
//              kCaptureReadMax), as received ("sent":false) and as sent
//   capture_stop: {"lost": frames lost to full capture rings during it}
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "siplb/common/endpoint.h"
#include "siplb/common/result.h"

namespace siplb::control {

inline constexpr size_t kMaxRequestLine = 64 * 1024;
inline constexpr size_t kMaxClients = 64;
inline constexpr size_t kMaxPendingOutput = 16 * 1024 * 1024;  // client not reading: dropped
inline constexpr int kClientIdleTimeoutS = 60;
inline constexpr uint16_t kDefaultSipPort = 5060;
inline constexpr int kCaptureIdleS = 10;
inline constexpr size_t kCaptureReadMax = 2048;
// backends: the counter group of the backend scope (counter_schema.h) shown
// per backend of a pool with TCP or TLS VIPs, under this key.
inline constexpr std::string_view kConnectionCounterGroup = "tcp";

enum class CommandKind : uint8_t {
    status,
    pools,
    backends,
    stats,
    lookup,
    drain,
    disable,
    enable,
    weight,
    add,
    remove,
    reload,
    resolve,
    metrics,
    capture_start,
    capture_read,
    capture_stop
};

std::string_view to_string(CommandKind c);
std::optional<CommandKind> parse_command_kind(std::string_view name);

struct Request {
    CommandKind cmd = CommandKind::status;
    std::string pool;  // "" when not given (backends: all pools)
    std::optional<Endpoint> backend;
    std::string call_id;
    // lookup: the value of the pool's balancing key (pools not keyed by the
    // Call-ID), which places a call that has no affinity entry.
    std::optional<std::string> key;
    uint32_t weight = 1;
    std::optional<IpAddress> client;  // capture_start
    uint64_t capture_id = 0;          // capture_read, capture_stop
};

// Validates one request line (without the '\n'): JSON object, known "cmd",
// required fields present with the right types. Errors are ready to send.
Result<Request> parse_request(std::string_view line);

// Builds the request line (with '\n') for a Request; used by siplbctl.
std::string encode_request(const Request& r);

// Frame bytes in JSON (capture_read): RFC 4648 base64 with padding.
std::string base64_encode(const uint8_t* data, size_t len);
std::optional<std::string> base64_decode(std::string_view text);

// Response lines (with the trailing '\n').
std::string error_response(std::string_view message);

}  // namespace siplb::control
