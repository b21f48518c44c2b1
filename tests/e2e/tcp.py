#!/usr/bin/env python3
"""SIP over TCP and TLS through siplb (issue 20), in the e2e rig.

Pool trunk listens on 203.0.113.20 for UDP, tcp://...:5060 and
tls://...:5061. Its backends run a sipp UAS over UDP (health probes), one
over TCP, and a TLS server (scripts/lib/tls_peer.py) with a certificate this
test makes. scripts/demo shows the same pool with all three transports at once
(the transports scenario of siplb_e2e.py).
  - sipp UACs over TCP, one connection per call (-t tn) and one connection
    for all calls (-t t1): every call completes; the tn calls reach both
    backends, each call on one backend.
  - TLS clients verify the server certificate (the handshake passes siplb
    unchanged: the fingerprint is the one the test made) and get their
    OPTIONS answered; connections spread over both backends.
  - a TLS connection whose backend is drained mid-connection keeps it; new
    connections go to the other backend.
  - siplbctl stats counts the connections (tcp opened, closed).
Exit 77 (skip) only when network namespaces cannot be created."""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))
import siplb_e2e as E  # noqa: E402
import siplb_rig as R  # noqa: E402

VIP = R.VIPS["trunk"]


def uac_tcp(rig: R.Rig, mode: str, src: str, calls: int) -> R.SippRun:
    """uac_call.xml over TCP: mode tn (a connection per call) or t1 (one for all)."""
    return rig.start_uac("call", f"{VIP}:{R.SIP_PORT}", src, calls=calls, rate=10, pause_ms=200, limit=20,
                         name=f"uac-{mode}-{src}", transport=mode)


def main() -> int:
    if (rc := E.preflight()) is not None:
        return rc
    work = Path(tempfile.mkdtemp(prefix="siplb-e2e-tcp-"))
    failures = []

    def check(cond: bool, text: str) -> None:
        print(("ok   " if cond else "FAIL ") + text, flush=True)
        if not cond:
            failures.append(text)

    cert = E.make_tls_cert(work / "tls")

    rig = R.Rig(work, n_backends=4, spare_backends=1)
    try:
        with rig:
            rig.start_dns(E.zone())
            E.start_pool_backends(rig)
            trunk = [R.backend_ip(i) for i in E.TRUNK]
            tcp_logs = {ip: E.start_tcp_uas(rig, ip) for ip in trunk}
            tls = {ip: E.start_tls_server(rig, ip, cert) for ip in trunk}
            d = E.Daemon(rig, extra_vips=E.EXTRA_VIPS["transports"])
            d.start()
            boot = E.Outcome("startup")
            E.wait_pool_ready(rig, d, boot)
            check(boot.ok, "siplb up with trunk's UDP, TCP and TLS VIPs, backends active")
            E.wait_tcp_listening(rig, [f"{ip}:{port}" for ip in trunk for port in (R.SIP_PORT, E.TLS_PORT)])

            # sipp over TCP.
            tn = uac_tcp(rig, "tn", R.CLIENT_IPS[0], 30)
            t1 = uac_tcp(rig, "t1", R.CLIENT_IPS[1], 10)
            rn, r1 = tn.wait(60), t1.wait(60)
            check(rn.successful == 30 and rn.failed == 0, f"sipp -t tn through the TCP VIP: {rn.summary()}")
            check(r1.successful == 10 and r1.failed == 0, f"sipp -t t1 through the TCP VIP: {r1.summary()}")
            where = {}
            for ip, log in tcp_logs.items():
                for call_id, _method in E.logged_requests(log):
                    where.setdefault(call_id, set()).add(ip)
            check(all(len(s) == 1 for s in where.values()), f"every TCP call's requests on one backend ({len(where)} calls)")
            per = {ip: sum(1 for s in where.values() if ip in s) for ip in trunk}
            check(all(per[ip] > 0 for ip in trunk), f"TCP calls on both backends: {per}")

            # TLS: handshake and messages through siplb unchanged.
            rc, results = E.start_tls_client(rig, cert, R.CLIENT_IPS[2], 16).wait(rig, 60)
            errors = [r["error"] for r in results if r["error"]]
            check(rc == 0 and len(results) == 16 and not errors,
                  f"16 TLS connections verified and answered (rc {rc}, {len(results)} results, errors {errors[:3]})")
            check(results and all(r.get("cert_sha256") == cert.sha256 for r in results),
                  "every TLS handshake presented the test's certificate")
            tls_per = {ip: sum(1 for r in results if r["backends"] == [ip]) for ip in trunk}
            check(all(tls_per[ip] > 0 for ip in trunk), f"TLS connections on both backends: {tls_per}")

            # Drain: a held connection stays, new ones go to the other backend.
            held = E.start_tls_client(rig, cert, R.CLIENT_IPS[2], 1, hold_s=3, name="tls-client-held")
            first = held.wait_line("holding", 30)  # {"holding": port} once the first answer came
            check("holding" in first, f"held TLS connection answered once: {first}")
            # Which backend holds it: the server logs Call-IDs with the port.
            held_port = first.get("holding")
            held_on = [ip for ip in trunk
                       if any(f"-{held_port}-1" in c for c, _ in E.logged_requests(tls[ip].log))]
            check(len(held_on) == 1, f"held connection on one backend: {held_on}")
            if held_on:
                d.ctl("drain", "trunk", f"{held_on[0]}:5060")
                _, held_results = held.wait(rig, 30)
                res = held_results[-1] if held_results else {"backends": [], "error": "no result"}
                check(res["backends"] == [held_on[0], held_on[0]] and not res["error"],
                      f"drained backend keeps its TLS connection: {res}")
                _, fresh = E.start_tls_client(rig, cert, R.CLIENT_IPS[2], 8, name="tls-client-fresh").wait(rig, 60)
                others = [ip for ip in trunk if ip != held_on[0]]
                check(len(fresh) == 8 and all(r["backends"] == others[:1] for r in fresh),
                      f"new TLS connections avoid the drained backend: {[r['backends'] for r in fresh]}")
                d.ctl("enable", "trunk", f"{held_on[0]}:5060")

            tcp, _ = E.tcp_counters(d, "trunk")
            check(tcp.get("opened", 0) >= 30 + 1 + 16 + 1 + 8, f"siplbctl stats: trunk tcp {tcp}")
            check(tcp.get("closed", 0) >= 30, "closed connections counted")
            metrics = d.metrics()
            check('siplb_pool_tcp_total{pool="trunk",kind="opened"}' in metrics and "siplb_pool_tcp_active" in metrics,
                  "/metrics has the pool's TCP counters")
            rc = d.stop()
            check(rc == 0, f"siplb stopped cleanly (exit {rc})")
    except R.RigError as e:
        check(False, f"rig: {e}")
    left = rig.leftovers()
    check(not left, f"no namespaces, links or processes left: {left}")
    if failures:
        print(f"{len(failures)} check(s) failed; logs in {work}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
