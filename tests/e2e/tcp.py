#!/usr/bin/env python3
"""SIP over TCP and TLS through siplb (issue 20), in the e2e rig.

Pool trunk listens on 203.0.113.20 for UDP, tcp://...:5060 and
tls://...:5061. Its backends run a sipp UAS over UDP (health probes), one
over TCP, and a TLS server (tls_peer.py) with a certificate this test makes.
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
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))
import siplb_e2e as E  # noqa: E402
import siplb_rig as R  # noqa: E402

HERE = Path(__file__).resolve().parent
VIP = R.VIPS["trunk"]
SERVER_NAME = "sip.example.net"


def uas_tcp(rig: R.Rig, ip: str) -> Path:
    log = rig.workdir / f"uas-tcp-{ip}.calls"
    argv = rig._sipp_common()
    argv[argv.index("u1")] = "t1"
    argv += ["-sf", str(R.SCENARIOS / "uas.xml"), "-i", ip, "-p", str(R.SIP_PORT),
             "-trace_logs", "-log_file", str(log)]
    rig.spawn(f"uas-tcp-{ip}", rig.ns_back, argv)
    return log


def uac_tcp(rig: R.Rig, mode: str, src: str, calls: int) -> R.SippRun:
    """uac_call.xml over TCP: mode tn (a connection per call) or t1 (one for all)."""
    name = f"uac-{mode}-{src}"
    stat = rig.workdir / f"{name}.csv"
    argv = rig._sipp_common()
    argv[argv.index("u1")] = mode
    argv += ["-sf", str(R.SCENARIOS / "uac_call.xml"), f"{VIP}:5060", "-i", src, "-m", str(calls), "-r", "10",
             "-l", "20", "-d", "200", "-timeout", "60s", "-timeout_error", "-recv_timeout", "8000",
             "-trace_stat", "-stf", str(stat), "-fd", "1", "-max_socket", "200"]
    return R.SippRun(rig, name, rig.spawn(name, rig.ns_client, argv), stat, calls)


def tls_client(rig: R.Rig, cert: Path, src: str, count: int, hold_s: float = 0) -> subprocess.Popen:
    argv = ["ip", "netns", "exec", rig.ns_client, sys.executable, str(HERE / "tls_peer.py"), "client", src, VIP,
            "5061", str(cert), SERVER_NAME, str(count)] + ([str(hold_s)] if hold_s else [])
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def received(log: Path) -> list:
    if not log.exists():
        return []
    return [line.split()[:2] for line in log.read_text(errors="replace").splitlines() if len(line.split()) >= 2]


def main() -> int:
    if (rc := E.preflight()) is not None:
        return rc
    work = Path(tempfile.mkdtemp(prefix="siplb-e2e-tcp-"))
    failures = []

    def check(cond: bool, text: str) -> None:
        print(("ok   " if cond else "FAIL ") + text, flush=True)
        if not cond:
            failures.append(text)

    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", f"/CN={SERVER_NAME}", "-addext",
                    f"subjectAltName=DNS:{SERVER_NAME}"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True,
                         capture_output=True).stdout
    fingerprint = hashlib.sha256(der).hexdigest()

    rig = R.Rig(work, n_backends=4, spare_backends=1)
    try:
        with rig:
            rig.start_dns(E.zone())
            E.start_pool_backends(rig)
            trunk = [R.backend_ip(i) for i in E.TRUNK]
            tcp_logs = {ip: uas_tcp(rig, ip) for ip in trunk}
            tls = {ip: rig.spawn(f"tls-{ip}", rig.ns_back, [sys.executable, str(HERE / "tls_peer.py"), "server", ip,
                                                            "5061", str(cert), str(key), ip]) for ip in trunk}
            d = E.Daemon(rig, extra_vips={"trunk": [f"tcp://{VIP}:5060", f"tls://{VIP}:5061"]})
            d.start()
            boot = E.Outcome("startup")
            E.wait_pool_ready(rig, d, boot)
            check(boot.ok, "siplb up with trunk's UDP, TCP and TLS VIPs, backends active")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                listening = R.sh("ss", "-tln", ns=rig.ns_back, check=False)
                if all(f"{ip}:5060" in listening and f"{ip}:5061" in listening for ip in trunk):
                    break
                time.sleep(0.2)

            # sipp over TCP.
            tn = uac_tcp(rig, "tn", R.CLIENT_IPS[0], 30)
            t1 = uac_tcp(rig, "t1", R.CLIENT_IPS[1], 10)
            rn, r1 = tn.wait(60), t1.wait(60)
            check(rn.successful == 30 and rn.failed == 0, f"sipp -t tn through the TCP VIP: {rn.summary()}")
            check(r1.successful == 10 and r1.failed == 0, f"sipp -t t1 through the TCP VIP: {r1.summary()}")
            where = {}
            for ip, log in tcp_logs.items():
                for call_id, _method in received(log):
                    where.setdefault(call_id, set()).add(ip)
            check(all(len(s) == 1 for s in where.values()), f"every TCP call's requests on one backend ({len(where)} calls)")
            per = {ip: sum(1 for s in where.values() if ip in s) for ip in trunk}
            check(all(per[ip] > 0 for ip in trunk), f"TCP calls on both backends: {per}")

            # TLS: handshake and messages through siplb unchanged.
            p = tls_client(rig, cert, R.CLIENT_IPS[2], 16)
            out, _ = p.communicate(timeout=60)
            results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            check(p.returncode == 0 and len(results) == 16 and not any(r["error"] for r in results),
                  f"16 TLS connections verified and answered: {out[-300:] if p.returncode else 'ok'}")
            check(all(r.get("cert_sha256") == fingerprint for r in results),
                  "every TLS handshake presented the test's certificate")
            tls_per = {ip: sum(1 for r in results if r["backends"] == [ip]) for ip in trunk}
            check(all(tls_per[ip] > 0 for ip in trunk), f"TLS connections on both backends: {tls_per}")

            # Drain: a held connection stays, new ones go to the other backend.
            p = tls_client(rig, cert, R.CLIENT_IPS[2], 1, hold_s=3)
            first = json.loads(p.stdout.readline())  # {"holding": port} once the first answer came
            check("holding" in first, f"held TLS connection answered once: {first}")
            # Which backend holds it: the server logs Call-IDs with the port.
            held_port = first.get("holding")
            held_on = [ip for ip in trunk
                       if any(f"-{held_port}-1" in c for c, _ in received(tls[ip].log))]
            check(len(held_on) == 1, f"held connection on one backend: {held_on}")
            if held_on:
                d.ctl("drain", "trunk", f"{held_on[0]}:5060")
                out, _ = p.communicate(timeout=30)
                res = json.loads(out.splitlines()[-1])
                check(res["backends"] == [held_on[0], held_on[0]] and not res["error"],
                      f"drained backend keeps its TLS connection: {res}")
                p = tls_client(rig, cert, R.CLIENT_IPS[2], 8)
                out, _ = p.communicate(timeout=60)
                fresh = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
                others = [ip for ip in trunk if ip != held_on[0]]
                check(len(fresh) == 8 and all(r["backends"] == others[:1] for r in fresh),
                      f"new TLS connections avoid the drained backend: {[r['backends'] for r in fresh]}")
                d.ctl("enable", "trunk", f"{held_on[0]}:5060")

            rc, text = d.ctl("stats", "--json")
            stats = json.loads(text)
            pool = next((p for p in stats.get("pools", []) if p.get("pool") == "trunk"), {})
            tcp = pool.get("tcp", {})
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
