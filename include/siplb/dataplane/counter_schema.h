// Every counter the dataplane keeps, declared once. The per-lcore blocks
// (src/dataplane/counters.h), their aggregation (Dataplane::stats()), the
// control socket's `stats` and the Prometheus exposition are all generated
// from these lists; adding a counter is one line here plus the line that
// bumps it.
//
// Scopes: worker (one block per lcore), port (per DPDK port, fixed for the
// process), pool (keyed by pool name: PoolSpec::counter_slot), backend
// (keyed by pool and backend address: balance::BackendEntry::id) and rule
// (keyed by pool and [[pool.rule]] name: PoolSpec::rule_counter_slots).
// Pool, backend and rule counters therefore survive reloads, DNS changes
// and snapshot rebuilds that add, remove or reorder pools, backends and
// rules.
//
// Each entry is X(member, group, name, kind, help): `member` is the C++
// field of the per-lcore block, `group` and `name` what operators see
// (`stats` JSON group.name, Prometheus family and label), `kind` counter
// (summed over workers, monotonic), gauge (the largest value of any worker)
// or level (a gauge each worker moves up and down, by wrapping adds, for
// state all workers share such as open connections: summed over workers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace siplb::dataplane {

enum class CounterScope : uint8_t { worker, port, pool, backend, rule };
enum class CounterKind : uint8_t { counter, gauge, level };

// Why a frame was not forwarded: X(reason, name, help). Worker scope, group "drops".
#define SIPLB_DROP_REASONS(X)                                                                                  \
    X(short_frame, "short", "Frame shorter than its headers")                                                  \
    X(bad_length, "bad_length", "IP or UDP length inconsistent with the frame, or a multi-segment frame")      \
    X(bad_ip_header, "bad_ip_header", "Malformed IP header")                                                   \
    X(bad_checksum, "bad_checksum", "IP or UDP checksum wrong (software or NIC verdict)")                      \
    X(ip_fragment, "ip_fragment", "IP fragment that reassembly did not take")                                  \
    X(ipv6_ext_header, "ipv6_ext_header", "IPv6 extension header siplb does not walk")                         \
    X(not_for_us, "not_for_us", "Not to a VIP and not from a backend (to the kernel path where there is one)") \
    X(vlan_mismatch, "vlan_mismatch", "Tagged for a VLAN the port is not configured for")                      \
    X(ttl_expired, "ttl_expired", "TTL or hop limit would reach zero")                                         \
    X(sip_empty, "sip_empty", "Empty UDP payload")                                                             \
    X(sip_oversize, "sip_oversize", "SIP datagram above the parser's limit")                                   \
    X(sip_binary, "sip_binary", "Binary payload that is not a STUN keepalive")                                 \
    X(sip_bad_start_line, "sip_bad_start_line", "Not a SIP request or status line")                            \
    X(sip_truncated_headers, "sip_truncated_headers", "SIP headers without their end")                         \
    X(sip_no_call_id, "sip_no_call_id", "SIP message without a Call-ID")                                       \
    X(sip_conflicting_call_id, "sip_conflicting_call_id", "Two different Call-ID headers")                     \
    X(sip_bad_call_id, "sip_bad_call_id", "Call-ID that is empty or not a word")                               \
    X(sip_bad_header, "sip_bad_header", "Malformed SIP header line")                                           \
    X(no_backend, "no_backend", "The pool has no backend that takes the message")                              \
    X(family_mismatch, "family_mismatch", "VIP and backend of different address families")                     \
    X(protect_rule, "protect_rule", "A drop rule of the pool matched")                                         \
    X(rate_limited, "rate_limited", "The source (or its /24, /64) is over the pool's request rate")            \
    X(no_route, "no_route", "No route to the destination")                                                     \
    X(no_neighbor, "no_neighbor", "Next-hop MAC unknown (an ARP request or solicitation was sent)")            \
    X(no_headroom, "no_headroom", "No room to grow the L2 header (VLAN tag, tunnel header)")                   \
    X(mtu_exceeded, "mtu_exceeded", "IPv4 datagram with DF above the egress MTU (answered, not cut)")          \
    X(no_tunnel_source, "no_tunnel_source", "ipip: the egress port has no address of the backend's family")    \
    X(tx_full, "tx_full", "The TX queue refused the frame")                                                    \
    X(no_mbuf, "no_mbuf", "No mbuf left for a frame siplb rebuilds (a reassembled datagram)")

// Worker scope: counted by one lcore, reported per worker and in total.
#define SIPLB_WORKER_COUNTERS(X)                                                                                      \
    X(rx_packets, traffic, rx_packets, counter, "Frames received")                                                    \
    X(rx_bytes, traffic, rx_bytes, counter, "Bytes received")                                                         \
    X(tx_packets, traffic, tx_packets, counter, "Frames transmitted")                                                 \
    X(tx_bytes, traffic, tx_bytes, counter, "Bytes transmitted")                                                      \
    X(to_backend, traffic, to_backend, counter, "Client datagrams forwarded to a backend")                            \
    X(to_client, traffic, to_client, counter, "Backend datagrams forwarded to a client")                              \
    X(polls, poll, polls, counter, "RX bursts attempted")                                                             \
    X(busy_polls, poll, busy_polls, counter, "RX bursts that returned frames")                                        \
    X(loops, poll, loops, counter, "Main-loop iterations (the worker's heartbeat)")                                   \
    X(neighbors_learned, neighbor, learned, counter, "Neighbor entries learned or updated from ARP, ND, IP")          \
    X(arp_replies, neighbor, arp_replies, counter, "ARP requests for siplb's addresses answered")                     \
    X(arp_requests, neighbor, arp_requests, counter, "ARP requests sent for unresolved next hops")                    \
    X(nd_advertisements, neighbor, nd_advertisements, counter, "IPv6 solicitations for siplb's addresses answered")   \
    X(nd_solicitations, neighbor, nd_solicitations, counter, "IPv6 solicitations sent for unresolved next hops")      \
    X(gratuitous_arps, neighbor, gratuitous_arps, counter, "Gratuitous ARPs sent for port addresses and VIPs")        \
    X(unsolicited_nas, neighbor, unsolicited_nas, counter, "Unsolicited neighbor advertisements sent")                \
    X(affinity_evictions, affinity, evictions, counter, "Live affinity entries displaced (table too small)")          \
    X(backend_dialogs, affinity, backend_dialogs, counter, "Dialogs started by backends, pinned to them")             \
    X(client_vip_evictions, affinity, client_vip_evictions, counter,                                                  \
      "Live client-VIP entries displaced (dataplane.client_vip_capacity too small)")                                  \
    X(shared_backend_first_pool, affinity, shared_backend_first_pool, counter,                                        \
      "Replies of a backend in several pools that no pool's call matched (sent from the first pool's VIP)")           \
    X(icmp_echo_replies, icmp, echo_replies, counter, "Echo requests to siplb's addresses answered")                  \
    X(icmp_errors_sent, icmp, errors_sent, counter, "ICMP errors generated")                                          \
    X(icmp_errors_rate_limited, icmp, errors_rate_limited, counter, "ICMP errors suppressed by the rate limit")       \
    X(icmp_errors_to_backend, icmp, errors_to_backend, counter, "Clients' ICMP errors about VIP datagrams passed on") \
    X(icmp_errors_unmatched, icmp, errors_unmatched, counter, "Clients' ICMP errors with no backend found")           \
    X(frag_received, fragments, received, counter, "Fragments of datagrams to a VIP taken into reassembly")           \
    X(frag_reassembled, fragments, reassembled, counter, "Datagrams reassembled")                                     \
    X(frag_dropped, fragments, dropped, counter, "Fragments freed unused (timeout, table full, overlap)")             \
    X(frag_duplicates, fragments, duplicates, counter, "Duplicate fragments dropped")                                 \
    X(frag_not_for_vip, fragments, not_for_vip, counter, "Fragments of datagrams to other addresses")                 \
    X(frag_too_big, fragments, too_big, counter, "Reassembled datagrams larger than the scratch buffer")              \
    X(frag_oversize, fragments, oversize, counter, "Datagrams above the egress MTU (fragmented)")                     \
    X(frag_sent, fragments, sent, counter, "Fragments transmitted")                                                   \
    X(frag_failed, fragments, failed, counter, "Datagrams that could not be fragmented")                              \
    X(kernel_to_tap, kernel_path, to_kernel, counter, "Frames written to the kernel's TAP")                           \
    X(kernel_from_tap, kernel_path, from_kernel, counter, "Frames the kernel sent, transmitted on the wire")          \
    X(kernel_tap_dropped, kernel_path, dropped, counter, "Frames the TAP queue refused")                              \
    X(backend_counter_overflow, counters, backend_slots_full, counter,                                                \
      "Datagrams not counted per backend: the worker's backend counter table is full")                                \
    X(pool_slots_full, counters, pool_slots_full, counter,                                                            \
      "Datagrams not counted per pool: more distinct pool names than counter slots since start")                      \
    X(rule_slots_full, counters, rule_slots_full, counter,                                                            \
      "Rule matches not counted per rule: more distinct pool and rule names than counter slots since start")          \
    X(capture_ring_full, capture, ring_full, counter,                                                                 \
      "Frames siplbctl capture lost: the worker's capture ring was full")                                             \
    X(mirror_queued, mirror, queued, counter, "SIP datagrams queued for the HEP mirror")                              \
    X(mirror_ring_full, mirror, ring_full, counter, "Datagrams not mirrored: the worker's HEP ring was full")         \
    X(mirror_rate_limited, mirror, rate_limited, counter, "Datagrams not mirrored: over [mirror] rate")               \
    X(mirror_too_big, mirror, too_big, counter, "Datagrams not mirrored: payload larger than a mirror slot")

// Port scope. `lcore`: counted by the workers; `driver`: read from the
// port's driver (rte_eth_stats) when the counters are read.
#define SIPLB_PORT_COUNTERS(X)                                                    \
    X(rx_packets, traffic, rx_packets, counter, "Frames received on the port")    \
    X(rx_bytes, traffic, rx_bytes, counter, "Bytes received on the port")         \
    X(tx_packets, traffic, tx_packets, counter, "Frames transmitted on the port") \
    X(tx_bytes, traffic, tx_bytes, counter, "Bytes transmitted on the port")      \
    X(tx_dropped, traffic, tx_dropped, counter, "Frames the port's TX queue refused")
#define SIPLB_PORT_DRIVER_COUNTERS(X)                                                \
    X(ipackets, driver, ipackets, counter, "Frames received (driver)")               \
    X(opackets, driver, opackets, counter, "Frames transmitted (driver)")            \
    X(ibytes, driver, ibytes, counter, "Bytes received (driver)")                    \
    X(obytes, driver, obytes, counter, "Bytes transmitted (driver)")                 \
    X(imissed, driver, imissed, counter, "Frames lost because the RX ring was full") \
    X(ierrors, driver, ierrors, counter, "Erroneous frames received")                \
    X(oerrors, driver, oerrors, counter, "Failed transmissions")                     \
    X(rx_nombuf, driver, rx_nombuf, counter, "RX mbuf allocation failures")

// Pool scope, keyed by pool name.
#define SIPLB_POOL_COUNTERS(X)                                                                                  \
    X(packets, traffic, packets_in, counter, "Client datagrams to the pool's VIPs forwarded")                   \
    X(bytes, traffic, bytes_in, counter, "Bytes of client datagrams forwarded")                                 \
    X(reply_packets, traffic, packets_out, counter, "Backend datagrams to clients forwarded (SNAT)")            \
    X(reply_bytes, traffic, bytes_out, counter, "Bytes of backend datagrams forwarded")                         \
    X(calls, traffic, calls, counter, "Dialog-creating requests (INVITE, SUBSCRIBE, REFER) balanced")           \
    X(keepalives, traffic, keepalives, counter, "CRLF and STUN keepalives forwarded")                           \
    X(rejected, traffic, rejected, counter, "Datagrams to the VIPs the SIP parser rejected")                    \
    X(no_backend, traffic, no_backend, counter, "Datagrams dropped: no usable backend")                         \
    X(rule_drops, protect, rule_drops, counter, "Messages dropped by a drop rule")                              \
    X(rate_limited, protect, rate_limited, counter, "Requests dropped by the rate limits")                      \
    X(routed_away, protect, routed_away, counter, "Messages a route rule sent to another pool")                 \
    X(rule_scans, protect, scans, counter,                                                                      \
      "Hyperscan scans the pool's rules ran (one per field value the worker's memo did not know)")              \
    X(rule_memo_hits, protect, memo_hits, counter, "Field values the rule memos answered without a scan")       \
    X(rule_scan_errors, protect, scan_errors, counter,                                                          \
      "Scans Hyperscan refused (the field counted as unmatched): anything but 0 is a bug")                      \
    X(rate_evictions, protect, rate_evictions, counter,                                                         \
      "Live rate-limit buckets given up for other sources (rate_limit.table_size too small for the sources)")   \
    X(dialog_refs_followed, dialogs, replaces_followed, counter,                                                \
      "INVITEs with Replaces or Join sent where the dialog they name is")                                       \
    X(dialog_refs_malformed, dialogs, replaces_malformed, counter,                                              \
      "INVITEs with a malformed Replaces or Join, balanced as new calls")                                       \
    X(key_fallbacks, dialogs, key_fallbacks, counter, "New dialogs or transactions placed by key_fallback")     \
    X(tcp_opened, tcp, opened, counter, "TCP/TLS connections recorded on their SYN")                            \
    X(tcp_closed, tcp, closed, counter, "TCP/TLS connections that saw a FIN or RST")                            \
    X(tcp_expired, tcp, expired, counter, "TCP/TLS connection entries removed after the idle timeout")          \
    X(tcp_evicted, tcp, evicted, counter, "Half-open TCP connections displaced from a full table bucket")       \
    X(tcp_untracked, tcp, untracked, counter,                                                                   \
      "SYNs not recorded (bucket full of established connections, or busy): balanced by the table alone")       \
    X(tcp_no_entry, tcp, no_entry, counter, "Segments of connections without an entry (balanced by the table)") \
    X(syn_rate_limited, tcp, syn_rate_limited, counter, "SYNs dropped: the source is over the SYN rate")        \
    X(tcp_source_cap, tcp, source_cap, counter, "SYNs dropped: the source holds its cap of connection entries") \
    X(tcp_active, tcp, active, level, "TCP/TLS connection entries in the table")

// Backend scope, keyed by pool and backend address.
#define SIPLB_BACKEND_COUNTERS(X)                                                                               \
    X(packets, traffic, packets_to, counter, "Client datagrams forwarded to the backend")                       \
    X(bytes, traffic, bytes_to, counter, "Bytes forwarded to the backend")                                      \
    X(reply_packets, traffic, packets_from, counter, "Backend datagrams forwarded to clients")                  \
    X(reply_bytes, traffic, bytes_from, counter, "Bytes from the backend forwarded to clients")                 \
    X(calls, traffic, calls, counter, "Dialog-creating requests sent to the backend")                           \
    X(tcp_opened, tcp, opened, counter, "TCP/TLS connections recorded for the backend on their SYN")            \
    X(tcp_closed, tcp, closed, counter, "TCP/TLS connections to the backend that saw a FIN or RST")             \
    X(tcp_expired, tcp, expired, counter, "TCP/TLS connection entries of the backend removed when idle")        \
    X(tcp_evicted, tcp, evicted, counter, "Half-open connections to the backend displaced from the table")      \
    X(tcp_active, tcp, active, level, "TCP/TLS connection entries for the backend in the table")                \
    X(overload_responses, overload, responses, counter,                                                         \
      "Responses to clients with one of the pool's overload codes (503): passive overload detection")           \
    X(overload_retry_after_s, overload, retry_after_s, gauge,                                                   \
      "Retry-After (s) of the latest overload response that carried one")                                       \
    X(vip_fallback, vip, first_vip_fallback, counter,                                                           \
      "Datagrams to clients sent from the pool's first VIP of their family: no VIP recorded for their call or " \
      "client (pools with several VIPs of a family)")                                                           \
    X(advertises_itself, vip, backend_advertises_itself, counter,                                               \
      "Checked messages to clients (requests, 1xx/2xx to INVITE/SUBSCRIBE; each worker checks at most 10 a "    \
      "second per backend) whose Contact or top Record-Route host is a backend's address instead of a VIP")

// Rule scope, keyed by pool and rule name.
#define SIPLB_RULE_COUNTERS(X) \
    X(hits, protect, hits, counter, "Messages to the pool's VIPs this rule was the first to match (any action)")

struct CounterInfo {
    CounterScope scope;
    const char* group;
    const char* name;
    CounterKind kind;
    const char* help;
};

namespace schema_detail {
#define SIPLB_COUNTER_INFO_WORKER(member, group, name, kind, help) \
    CounterInfo{CounterScope::worker, #group, #name, CounterKind::kind, help},
#define SIPLB_COUNTER_INFO_DROP(reason, name, help) \
    CounterInfo{CounterScope::worker, "drops", name, CounterKind::counter, help},
#define SIPLB_COUNTER_INFO_PORT(member, group, name, kind, help) \
    CounterInfo{CounterScope::port, #group, #name, CounterKind::kind, help},
#define SIPLB_COUNTER_INFO_POOL(member, group, name, kind, help) \
    CounterInfo{CounterScope::pool, #group, #name, CounterKind::kind, help},
#define SIPLB_COUNTER_INFO_BACKEND(member, group, name, kind, help) \
    CounterInfo{CounterScope::backend, #group, #name, CounterKind::kind, help},
#define SIPLB_COUNTER_INFO_RULE(member, group, name, kind, help) \
    CounterInfo{CounterScope::rule, #group, #name, CounterKind::kind, help},
inline constexpr CounterInfo kWorker[] = {SIPLB_WORKER_COUNTERS(SIPLB_COUNTER_INFO_WORKER)
                                              SIPLB_DROP_REASONS(SIPLB_COUNTER_INFO_DROP)};
inline constexpr CounterInfo kPort[] = {SIPLB_PORT_COUNTERS(SIPLB_COUNTER_INFO_PORT)
                                            SIPLB_PORT_DRIVER_COUNTERS(SIPLB_COUNTER_INFO_PORT)};
inline constexpr CounterInfo kPool[] = {SIPLB_POOL_COUNTERS(SIPLB_COUNTER_INFO_POOL)};
inline constexpr CounterInfo kBackend[] = {SIPLB_BACKEND_COUNTERS(SIPLB_COUNTER_INFO_BACKEND)};
inline constexpr CounterInfo kRule[] = {SIPLB_RULE_COUNTERS(SIPLB_COUNTER_INFO_RULE)};
#undef SIPLB_COUNTER_INFO_WORKER
#undef SIPLB_COUNTER_INFO_DROP
#undef SIPLB_COUNTER_INFO_PORT
#undef SIPLB_COUNTER_INFO_POOL
#undef SIPLB_COUNTER_INFO_BACKEND
#undef SIPLB_COUNTER_INFO_RULE
}  // namespace schema_detail

// The counters of a scope, in the order of the values Dataplane::stats() reports.
constexpr std::span<const CounterInfo> counter_schema(CounterScope scope) noexcept {
    switch (scope) {
        case CounterScope::worker: return schema_detail::kWorker;
        case CounterScope::port: return schema_detail::kPort;
        case CounterScope::pool: return schema_detail::kPool;
        case CounterScope::backend: return schema_detail::kBackend;
        case CounterScope::rule: return schema_detail::kRule;
    }
    return {};
}

// Prometheus label that distinguishes a group's counters: "reason" for
// drops, "kind" for every other group.
constexpr const char* counter_label(const CounterInfo& c) noexcept {
    return std::string_view(c.group) == "drops" ? "reason" : "kind";
}

}  // namespace siplb::dataplane
