"""The end-to-end scenarios of issue 9, shared by scripts/demo (which prints
them as a report) and tests/e2e (which asserts them). Each scenario runs on
a Rig with siplb started in the lb namespace and returns a list of Check
(ok, text) plus the numbers behind them.

Pools of the generated config:
  lund  VIP 203.0.113.10:5060, backends from DNS: _sip._udp.lund.example.net
        SRV b0 weight 2, b1 weight 1, b2 weight 1 (b4 is added live)
  trunk VIP 203.0.113.20:5060, static backends b2 and b3, weight 1 each
        (two_vips: also VIP 203.0.113.21:5060, one pool on two addresses;
        transports: also tcp://203.0.113.20:5060 and tls://203.0.113.20:5061)
  trunk6 (only on a Rig(ipv6=True)) VIP [2001:db8:f::20]:5060, static
        backends [2001:db8:b::13]:5060 and [2001:db8:b::14]:5060 (b2, b3)
Health checks: OPTIONS every 500 ms, timeout 300 ms, down after 2, up after 2.
A scenario may need [pool.health] overrides (POOL_HEALTH): passive_overload
turns on passive checks for trunk.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import siplb_rig as R

DNS_TTL = 3
HEALTH = {"interval_ms": 500, "timeout_ms": 300, "down_after": 2, "up_after": 2}
HEALTH_WINDOW_S = (HEALTH["interval_ms"] * (1.1) * HEALTH["down_after"] + HEALTH["timeout_ms"]) / 1000
LUND_SRV = "_sip._udp.lund.example.net"
LUND_WEIGHTS = {0: 2, 1: 1, 2: 1}    # backend index -> SRV weight
TRUNK = [2, 3]                        # backend indexes, weight 1 each
SPARE = 4                             # added to DNS live
# passive_overload: trunk counts overload responses in live traffic.
PASSIVE = {"interval_ms": 1000, "passive": True, "passive_503_threshold": 5}
PASSIVE_RETRY_AFTER_S = 6
POOL_HEALTH = {"passive_overload": {"trunk": PASSIVE}}   # scenario -> {pool: [pool.health] keys}
# two_vips: trunk on a second VIP too, as when two trunk names land on one node.
TRUNK_VIP2 = "203.0.113.21"
# transports: trunk also on TCP 5060 and TLS 5061 of its VIP (TLS_PORT: the backends' default tls_port).
TLS_PORT = 5061
EXTRA_VIPS = {"two_vips": {"trunk": [f"{TRUNK_VIP2}:5060"]},   # scenario -> {pool: VIPs after the first}
              "transports": {"trunk": [f"tcp://{R.VIPS['trunk']}:{R.SIP_PORT}", f"tls://{R.VIPS['trunk']}:{TLS_PORT}"]}}


@dataclass
class Check:
    ok: bool
    text: str


@dataclass
class Outcome:
    name: str
    checks: list = field(default_factory=list)
    numbers: dict = field(default_factory=dict)

    def check(self, ok: bool, text: str) -> bool:
        self.checks.append(Check(bool(ok), text))
        return bool(ok)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def build_root() -> Path:
    return Path(os.environ.get("SIPLB_BUILD_ROOT") or (R.SOURCE_ROOT / os.environ.get("SIPLB_BUILD_DIR", "build")))


def daemon_path() -> Path:
    return build_root() / "src" / "daemon" / "siplb"


def siplbctl_path() -> Path:
    return build_root() / "src" / "cli" / "siplbctl"


def preflight(binaries: tuple | None = None) -> int | None:
    """The exit code of a test this machine cannot run: 77 (skip) without
    network namespace privileges, 1 when a binary it needs is not built (by
    default the daemon and siplbctl). None: go on."""
    ok, why = R.have_netns_privileges()
    if not ok:
        print(f"SKIP: {why}")
        return 77
    for binary in binaries if binaries is not None else (daemon_path(), siplbctl_path()):
        if not binary.exists():
            print(f"FAIL: {binary} is not built")
            return 1
    return None


def print_outcome(o: Outcome, show_number=lambda key: True) -> bool:
    """Prints an outcome's checks and numbers; returns whether it passed."""
    for c in o.checks:
        print(("ok   " if c.ok else "FAIL ") + f"[{o.name}] {c.text}", flush=True)
    shown = {k: v for k, v in o.numbers.items() if show_number(k)}
    if shown:
        print(f"     [{o.name}] numbers: " + ", ".join(f"{k}={v}" for k, v in shown.items()), flush=True)
    return o.ok


def report_outcomes(outcomes: list, work: Path) -> bool:
    """Prints every outcome; on a failure, names the failed parts and the
    logs. Returns whether all passed."""
    failed = [o.name for o in outcomes if not print_outcome(o)]
    if failed:
        print(f"{len(failed)} part(s) failed: {', '.join(failed)}; logs in {work}")
    return not failed


def run_with_pool_daemon(work: Path, make_daemon, body) -> list:
    """The rig with DNS and the pools' backends, and a daemon made by
    make_daemon(rig), started, with its pools ready; body(rig, daemon) then
    returns its outcomes. Startup, shutdown (SIGTERM, exit 0) and cleanup are
    outcomes too; a rig failure is a failed "rig" outcome."""
    outcomes = []
    try:
        rig = R.Rig(work, n_backends=4, spare_backends=1)
        with rig:
            rig.start_dns(zone())
            start_pool_backends(rig)
            d = make_daemon(rig)
            d.start()
            boot = Outcome("startup")
            wait_pool_ready(rig, d, boot)
            outcomes.append(boot)
            if boot.ok:
                outcomes += body(rig, d)
            stop = Outcome("shutdown")
            rc = d.stop()
            stop.check(rc == 0, f"siplb stopped cleanly on SIGTERM (exit {rc})")
            outcomes.append(stop)
        left = rig.leftovers()
        clean = Outcome("cleanup")
        clean.check(not left, f"no namespaces, links or processes left: {left}")
        outcomes.append(clean)
    except R.RigError as e:
        print(f"FAIL: {e}")
        outcomes.append(Outcome("rig", [Check(False, str(e))]))
    return outcomes


def zone(with_spare: bool = False) -> dict:
    weights = dict(LUND_WEIGHTS)
    if with_spare:
        weights[SPARE] = 1
    return {"ttl": DNS_TTL,
            "srv": [(LUND_SRV, f"b{i}.lund.example.net", R.SIP_PORT, 10, w) for i, w in weights.items()],
            "a": [(f"b{i}.lund.example.net", R.backend_ip(i)) for i in weights]}


# net_af_packet's default frame (2048 bytes) holds one 1500-byte frame. The
# PMD's fanout socket has the kernel reassemble IPv4 fragments
# (PACKET_FANOUT_FLAG_DEFRAG), so a fragmented 3000-byte INVITE reaches siplb
# as one frame: it needs framesz=4096. The PMD refuses an RX queue whose frame
# exceeds the mbuf data room (frame - 32 bytes of tpacket header > mbuf_size -
# 128 bytes of headroom), so the mbufs grow with it; 8192 of them stay well
# inside 512 MB of --no-huge memory.
FRAMESZ_DEFAULT = 2048
MBUF_SIZE_FOR_FRAMESZ = {2048: None, 4096: 4352}


def toml_value(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else json.dumps(v)


# Port drivers the rig can run siplb on. af_xdp: net_af_xdp on the same veths,
# in copy mode (veths have no zero-copy). Its XDP program hands every frame
# of the veth to siplb, the kernel sees none (unlike af_packet's copies), so
# the node's own traffic (DNS answers, health-check replies to the lb
# addresses) reaches the kernel only through siplb's kernel path: a tap per
# port (kernel_path = true), which holds the port's addresses too.
DRIVERS = ("af_packet", "af_xdp")


def port_device(driver: str, index: int, iface: str, vdev_extra: str) -> list:
    if driver == "af_xdp":
        return [f'device = "net_af_xdp{index}"', f'vdev_args = "iface={iface},start_queue=0,queue_count=1"',
                "kernel_path = true"]
    return [f'device = "net_af_packet{index}"', f'vdev_args = "iface={iface},qpairs=1{vdev_extra}"']


def config_text(rig: R.Rig, framesz: int = FRAMESZ_DEFAULT, pool_health: dict | None = None,
                extra_vips: dict | None = None, driver: str = "af_packet") -> str:
    """siplb's config for the rig. framesz: net_af_packet frame size (2048 =
    the PMD default, kept for the balanced tests; 4096 for whole
    kernel-defragmented IPv4 datagrams of up to ~4000 bytes). A Rig with
    ipv6=True adds the IPv6 port addresses and neighbors and pool trunk6.
    pool_health: {pool: {key: value}} written as that pool's [pool.health].
    extra_vips: {pool: ["ip:port", ...]} listened on after the pool's VIP."""
    pool_health = pool_health or {}
    extra_vips = extra_vips or {}

    def listen(pool: str, vip: str) -> str:
        return "listen = [" + ", ".join(f'"{v}"' for v in [vip, *extra_vips.get(pool, [])]) + "]"

    def overrides(pool: str) -> list:
        keys = pool_health.get(pool)
        return ["[pool.health]", *(f"{k} = {toml_value(v)}" for k, v in keys.items()), ""] if keys else []

    if driver not in DRIVERS:
        raise ValueError(f"driver {driver}: one of {DRIVERS}")
    if framesz not in MBUF_SIZE_FOR_FRAMESZ:
        raise ValueError(f"framesz {framesz}: one of {sorted(MBUF_SIZE_FOR_FRAMESZ)}")
    mbuf_size = MBUF_SIZE_FOR_FRAMESZ[framesz]
    vdev_extra = f",framesz={framesz}" if framesz != FRAMESZ_DEFAULT else ""
    ext_addrs = [f"{R.LB_EXT_IP}/24"] + ([f"{R.LB_EXT_IP6}/64"] if rig.ipv6 else [])
    int_addrs = [f"{R.LB_INT_IP}/24"] + ([f"{R.LB_INT_IP6}/64"] if rig.ipv6 else [])
    # --no-huge implies legacy memory, which excludes --in-memory: a per-run
    # file prefix keeps parallel DPDK processes apart (removed by Rig.down()).
    eal = ["--no-huge", "-m", "512", "--no-pci", f"--file-prefix={rig.pfx}", "-l", "0-1",
           "--log-level", "*:warning"]
    lines = [
        "# Generated by scripts/lib/siplb_e2e.py for the end-to-end rig.",
        "[control]",
        f'socket = "{rig.siplb_socket}"',
        'metrics = "127.0.0.1:9560"',
        "",
        "[log]",
        'level = "info"',
        "",
        "[dataplane]",
        "eal = [" + ", ".join(json.dumps(a) for a in eal) + "]",
        "workers = 1",
        "mbufs = 8192",
        *([f"mbuf_size = {mbuf_size}"] if mbuf_size else []),
        "mbuf_cache = 128",
        "rx_ring = 512",
        "tx_ring = 512",
        "",
        "[[dataplane.port]]",
        'name = "ext"',
        *port_device(driver, 0, "ext0", vdev_extra),
        "addresses = [" + ", ".join(f'"{a}"' for a in ext_addrs) + "]",
        f'mac = "{R.MAC_LB_EXT}"',
        "",
        "[[dataplane.port]]",
        'name = "int"',
        *port_device(driver, 1, "int0", vdev_extra),
        "addresses = [" + ", ".join(f'"{a}"' for a in int_addrs) + "]",
        f'mac = "{R.MAC_LB_INT}"',
        "",
    ]
    for ip in R.CLIENT_IPS:
        lines += ["[[dataplane.neighbor]]", f'ip = "{ip}"', f'mac = "{R.MAC_CLIENT}"', 'port = "ext"', ""]
    for ip in rig.backend_ips + [R.DNS_IP]:
        lines += ["[[dataplane.neighbor]]", f'ip = "{ip}"', f'mac = "{R.MAC_BACKENDS}"', 'port = "int"', ""]
    if rig.ipv6:
        for ip in R.CLIENT_IPS6:
            lines += ["[[dataplane.neighbor]]", f'ip = "{ip}"', f'mac = "{R.MAC_CLIENT}"', 'port = "ext"', ""]
        for ip in rig.backend_ips6:
            lines += ["[[dataplane.neighbor]]", f'ip = "{ip}"', f'mac = "{R.MAC_BACKENDS}"', 'port = "int"', ""]
    lines += ["[health]"] + [f"{k} = {v}" for k, v in HEALTH.items()] + [
        "jitter = 0.1", "",
        "[dns]", f'resolvers = ["{R.DNS_IP}:53"]', "ttl_floor_s = 1", "ttl_ceiling_s = 60",
        "retry_initial_ms = 500", "retry_max_ms = 5000", "drain_grace_s = 30", "timeout_ms = 1000", "",
        "[[pool]]", 'name = "lund"', listen("lund", f'{R.VIPS["lund"]}:5060'), f'dns = ["{LUND_SRV}"]', "",
        *overrides("lund"),
        "[[pool]]", 'name = "trunk"', listen("trunk", f'{R.VIPS["trunk"]}:5060'),
        "backends = [" + ", ".join(f'{{ address = "{R.backend_ip(i)}:5060", weight = 1 }}' for i in TRUNK) + "]",
        "", *overrides("trunk")]
    if rig.ipv6:
        lines += [
            "[[pool]]", 'name = "trunk6"', f'listen = ["{R.host_port(R.VIPS6["trunk6"], R.SIP_PORT)}"]',
            "backends = [" + ", ".join(f'{{ address = "{R.host_port(R.backend_ip6(i), R.SIP_PORT)}", weight = 1 }}'
                                       for i in TRUNK) + "]",
            ""]
    return "\n".join(lines)


class Daemon:
    """siplb in the lb namespace, started from a generated config."""

    def __init__(self, rig: R.Rig, framesz: int = FRAMESZ_DEFAULT, pool_health: dict | None = None,
                 extra_vips: dict | None = None, driver: str = "af_packet"):
        self.rig = rig
        self.driver = driver
        self.framesz = framesz
        self.pool_health = pool_health
        self.extra_vips = extra_vips
        self.proc = None
        self.config = rig.workdir / "siplb.toml"

    def start(self, timeout: float = 20) -> None:
        self.config.write_text(config_text(self.rig, self.framesz, self.pool_health, self.extra_vips, self.driver))
        self.proc = self.rig.spawn("siplb", self.rig.ns_lb, [str(daemon_path()), "--config", str(self.config)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise R.RigError(f"siplb exited ({self.proc.popen.returncode}): {self.log_tail()}")
            if self.rig.siplb_socket.exists() and self.ctl("status", check=False)[0] == 0:
                return
            time.sleep(0.2)
        raise R.RigError(f"siplb control socket not ready after {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 1500) -> str:
        return self.proc.log.read_text(errors="replace")[-n:] if self.proc else ""

    def ctl(self, *args: str, check: bool = True) -> tuple[int, str]:
        # --socket goes before a "--" (after it, everything is positional)
        args = list(args)
        at = args.index("--") if "--" in args else len(args)
        cmd = ["ip", "netns", "exec", self.rig.ns_lb, str(siplbctl_path()), *args[:at],
               "--socket", str(self.rig.siplb_socket), *args[at:]]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10,
                           env={**os.environ, "SIPLB_SOCKET": str(self.rig.siplb_socket)})
        if check and r.returncode != 0:
            raise R.RigError(f"siplbctl {' '.join(args)}: rc {r.returncode}: {r.stderr.strip()}")
        return r.returncode, r.stdout + (r.stderr if r.returncode else "")

    def backend_entry(self, pool: str, ip: str) -> dict:
        """The 'siplbctl backends POOL --json' entry of the backend at ip ({} if none)."""
        rc, out = self.ctl("backends", pool, "--json", check=False)
        try:
            items = json.loads(out).get("backends", []) if rc == 0 else []
        except (ValueError, AttributeError):
            return {}
        for b in items:
            m = re.match(r"\[?([0-9a-fA-F:.]+?)\]?(:\d+)?$", str(b.get("address", "")))
            if m and m.group(1) == ip:
                return b
        return {}

    def backend_states(self, pool: str) -> dict:
        """{ip: state} from 'siplbctl backends POOL --json' (tolerant of the exact shape)."""
        rc, out = self.ctl("backends", pool, "--json", check=False)
        if rc != 0:
            return {}
        try:
            data = json.loads(out)
        except ValueError:
            return {}
        items = data.get("backends", data) if isinstance(data, dict) else data
        if isinstance(items, dict):
            items = [dict(v, address=k) if isinstance(v, dict) else {"address": k} for k, v in items.items()]
        states = {}
        for b in items if isinstance(items, list) else []:
            if not isinstance(b, dict):
                continue
            addr = str(b.get("address", b.get("endpoint", "")))
            m = re.match(r"\[?([0-9a-fA-F:.]+?)\]?(:\d+)?$", addr)
            if m:
                states[m.group(1)] = str(b.get("state", b.get("status", "?")))
        return states

    def metrics(self) -> str:
        code = ("import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9560/metrics',"
                "timeout=3).read().decode(),end='')")
        return R.sh(sys.executable, "-c", code, ns=self.rig.ns_lb)

    def stop(self) -> int | None:
        return self.rig.stop(self.proc, signal.SIGTERM, timeout=10)


# ------------------------------------------------------------------ helpers
def progress(runs: list, label: str, out, stop_when=None, budget: float = 60, every: float = 0.5,
             on_tick=None) -> None:
    """Prints one updating progress line while sipp runs are alive."""
    t0 = time.monotonic()
    tty = bool(out) and out.isatty()
    last = [t0]
    while time.monotonic() - t0 < budget:
        alive = any(r.proc.alive() for r in runs)
        created = ok = failed = 0
        for r in runs:
            c, s, f = r.stats()
            created, ok, failed = created + c, ok + s, failed + f
        line = (f"  {label}: {time.monotonic() - t0:5.1f}s  calls {created:4d} started, "
                f"{ok:4d} ok, {failed:3d} failed   ")
        if out and tty:
            out.write("\r" + line)
            out.flush()
        elif out and time.monotonic() - last[0] >= 3:
            out.write(line.rstrip() + "\n")
            out.flush()
            last[0] = time.monotonic()
        if on_tick:
            on_tick(time.monotonic() - t0)
        if not alive or (stop_when and stop_when()):
            break
        time.sleep(every)
    if out and tty:
        out.write("\n")
        out.flush()


def count_invites(b: R.Backend) -> int:
    return sum(1 for _, m in b.received() if m == "INVITE")


def invite_callids(b: R.Backend) -> set:
    return {cid for cid, m in b.received() if m == "INVITE"}


def call_integrity(out: Outcome, backends: list, call_ids: set | None = None) -> None:
    """Every INVITE dialog's messages (INVITE, ACK, BYE) landed on one backend."""
    seen, split = R.calls_per_backend(backends)
    dialogs = {cid: w for cid, w in seen.items() if any("INVITE" in ms for ms in w.values())
               and (call_ids is None or cid in call_ids)}
    out.numbers["dialogs_seen"] = len(dialogs)
    out.check(not split, f"every message of every call reached one backend ({len(dialogs)} dialogs, "
                         f"{len(split)} split across backends)")


def check_frames(out: Outcome, back: list, client: list) -> None:
    """What siplb put on the wire, checked independently of siplb: DNAT
    keeps the client source, checksums valid, TTL decremented; SNAT makes
    replies come from the VIPs; CRLF keepalives of one client address:port
    stick to one backend."""
    from_clients = [f for f in back if f["src"] in R.CLIENT_IPS]
    bad = [f for f in from_clients if not (f["ipok"] and f["udpok"])]
    ttls = sorted({f["ttl"] for f in from_clients})
    out.numbers["frames_to_backends"] = len(from_clients)
    out.check(from_clients and not bad, f"{len(from_clients)} frames siplb delivered to backends keep the "
                                        f"client source address, {len(bad)} with a bad IPv4/UDP checksum")
    out.check(ttls == [63], f"TTL decremented once (64 -> {ttls})")
    vips = set(R.VIPS.values())
    replies = [f for f in client if f["dport"] != 9 and f["src"] not in (R.LB_EXT_IP,)]
    not_vip = [f for f in replies if f["src"] not in vips]
    bad = [f for f in replies if not (f["ipok"] and f["udpok"])]
    out.check(replies and not not_vip and not bad,
              f"{len(replies)} frames to clients all come from a VIP ({len(not_vip)} from elsewhere, "
              f"{len(bad)} bad checksums)")
    ka = {}
    for f in from_clients:
        if f["head"].startswith("\r\n\r\n") and f["sport"] == 5070:
            ka.setdefault(f["src"], []).append(f["dst"])
    n = sum(len(v) for v in ka.values())
    sticky = all(len(set(v)) == 1 for v in ka.values())
    out.check(n == 10 * len(R.CLIENT_IPS) and sticky,
              f"CRLF keepalives: {n}/{10 * len(R.CLIENT_IPS)} reached a backend, each client "
              f"address:port always the same one: {dict((k, sorted(set(v))) for k, v in ka.items())}")


# ------------------------------------------------------- SIP over TCP and TLS
# Backends serving TCP and TLS run, next to their UDP UAS (which answers the
# health probes), a sipp UAS over TCP on the same address and port and a TLS
# server (tls_peer.py) on TLS_PORT, the backends' default tls_port. Debian's
# sipp has no TLS, so TLS clients are tls_peer.py too. siplb never
# terminates TLS: the handshake and the messages pass it unchanged.
TLS_PEER = Path(__file__).resolve().parent / "tls_peer.py"
TLS_SERVER_NAME = "sip.example.net"


@dataclass
class TlsCert:
    cert: Path
    key: Path
    sha256: str   # of the DER certificate: what a client sees if siplb passed the handshake unchanged


def make_tls_cert(directory: Path) -> TlsCert:
    """A self-signed certificate for TLS_SERVER_NAME, valid one day, made at
    run time into directory (never a committed key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "1", "-subj", f"/CN={TLS_SERVER_NAME}", "-addext",
                        f"subjectAltName=DNS:{TLS_SERVER_NAME}"], check=True, capture_output=True, timeout=30)
        der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True,
                             capture_output=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", b"") or b""
        raise R.RigError(f"cannot make a TLS certificate with openssl (scripts/setup installs it): {e} "
                         f"{detail.decode(errors='replace').strip()}") from e
    return TlsCert(cert, key, hashlib.sha256(der).hexdigest())


def start_tcp_uas(rig: R.Rig, ip: str) -> Path:
    """A sipp UAS over TCP on ip:SIP_PORT (uas.xml); returns its log of
    "<Call-ID> <METHOD>" per received request."""
    rig._seq += 1
    log = rig.workdir / f"uas-tcp-{ip}-{rig._seq}.calls"
    argv = rig._sipp_common("t1") + ["-sf", str(R.SCENARIOS / "uas.xml"), "-i", ip, "-p", str(R.SIP_PORT),
                                     "-trace_logs", "-log_file", str(log)]
    rig.spawn(f"uas-tcp-{ip}", rig.ns_back, argv)
    return log


def start_tls_server(rig: R.Rig, ip: str, cert: TlsCert) -> R.Proc:
    """A TLS SIP server on ip:TLS_PORT answering every request with 200 and
    "X-Backend: ip"; its log has "<Call-ID> <METHOD>" per request."""
    return rig.spawn(f"tls-{ip}", rig.ns_back, [sys.executable, str(TLS_PEER), "server", "--ip", ip, "--port",
                                                str(TLS_PORT), "--cert", str(cert.cert), "--key", str(cert.key),
                                                "--name", ip])


def wait_tcp_listening(rig: R.Rig, addrs: list, timeout: float = 10) -> None:
    """Every "ip:port" in addrs has a listening TCP socket in the backends namespace."""
    deadline = time.monotonic() + timeout
    while True:
        listening = R.sh("ss", "-tln", ns=rig.ns_back, check=False)
        missing = [a for a in addrs if a not in listening]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise R.RigError(f"TCP servers not listening after {timeout}s: {missing}")
        time.sleep(0.1)


def logged_requests(log: Path) -> list:
    """(Call-ID, METHOD) of each request a TCP or TLS server logged."""
    if not log.exists():
        return []
    return [tuple(line.split()[:2]) for line in log.read_text(errors="replace").splitlines() if len(line.split()) >= 2]


class TlsRun:
    """A tls_peer.py client running in the client namespace. Its log has one
    JSON line per connection (and {"holding": port} while one is held)."""

    def __init__(self, proc: R.Proc, connections: int):
        self.proc, self.connections = proc, connections

    def lines(self) -> list:
        out = []
        for line in self.proc.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def results(self) -> list:
        return [r for r in self.lines() if "backends" in r]

    def stats(self) -> tuple:
        """(started, ok, failed) connections, as SippRun.stats() counts calls, for progress()."""
        res = self.results()
        failed = sum(1 for r in res if r["error"])
        return len(res), len(res) - failed, failed

    def wait_line(self, key: str, timeout: float) -> dict:
        """The first JSON line with key (e.g. "holding"), {} if none within timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for r in self.lines():
                if key in r:
                    return r
            if not self.proc.alive():
                return {}
            time.sleep(0.05)
        return {}

    def wait(self, rig: R.Rig, timeout: float) -> tuple:
        """(exit code, results); a client still running after timeout is stopped (-999)."""
        try:
            rc = self.proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rig.stop(self.proc)
            rc = -999
        return rc, self.results()


def start_tls_client(rig: R.Rig, cert: TlsCert, src: str, connections: int, vip: str = R.VIPS["trunk"],
                     hold_s: float = 0, every_s: float = 0, name: str | None = None) -> TlsRun:
    """TLS connections from src to vip:TLS_PORT, verified against cert (see tls_peer.py)."""
    argv = [sys.executable, str(TLS_PEER), "client", "--src", src, "--vip", vip, "--port", str(TLS_PORT),
            "--cafile", str(cert.cert), "--server-name", TLS_SERVER_NAME, "--connections", str(connections),
            "--hold", str(hold_s), "--every", str(every_s)]
    return TlsRun(rig.spawn(name or f"tls-client-{src}", rig.ns_client, argv), connections)


def tcp_counters(d: Daemon, pool: str) -> tuple:
    """From siplbctl stats --json: the pool's tcp counters and {backend ip: its tcp counters}."""
    rc, text = d.ctl("stats", "--json", check=False)
    try:
        stats = json.loads(text) if rc == 0 else {}
    except ValueError:
        stats = {}
    pool_tcp = next((p.get("tcp", {}) for p in stats.get("pools", []) if p.get("pool") == pool), {})
    per_backend = {}
    for b in stats.get("backends", []):
        m = re.match(r"\[?([0-9a-fA-F:.]+?)\]?(:\d+)?$", str(b.get("backend", "")))
        if b.get("pool") == pool and m:
            per_backend[m.group(1)] = b.get("tcp", {})
    return pool_tcp, per_backend


# ---------------------------------------------------------------- scenarios
def start_pool_backends(rig: R.Rig) -> None:
    for i in range(rig.n_backends):
        rig.start_backend(R.backend_ip(i))
    if rig.ipv6:
        for i in TRUNK:
            rig.start_backend(R.backend_ip6(i))
    rig.wait_backends_ready()


def wait_pool_ready(rig: R.Rig, d: Daemon, out: Outcome, timeout: float = 15) -> None:
    """Waits until siplb lists the DNS-discovered and static backends as usable."""
    want = {"lund": {R.backend_ip(i) for i in LUND_WEIGHTS}, "trunk": {R.backend_ip(i) for i in TRUNK}}
    if rig.ipv6:
        want["trunk6"] = {R.backend_ip6(i) for i in TRUNK}
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = {p: {ip for ip, st in d.backend_states(p).items() if st in ("active", "up")} for p in want}
        if all(want[p] <= got[p] for p in want):
            out.numbers["ready_s"] = round(time.monotonic() - t0, 1)
            return
        time.sleep(0.25)
    out.check(False, f"siplb lists {', '.join(want)} backends as active within {timeout}s: "
                     + " ".join(f"{p}={d.backend_states(p)}" for p in want))


def scenario_distribution(rig: R.Rig, d: Daemon, out_stream=None, calls_per_client: int = 100) -> Outcome:
    out = Outcome("distribution")
    lund_vip = f"{R.VIPS['lund']}:5060"
    trunk_vip = f"{R.VIPS['trunk']}:5060"
    before = {ip: count_invites(b) for ip, b in rig.backends.items()}
    runs = [rig.start_uac("call", lund_vip, src, calls=calls_per_client, rate=25, pause_ms=300,
                          name=f"lund-calls-{src}") for src in R.CLIENT_IPS]
    runs.append(rig.start_uac("call", trunk_vip, R.CLIENT_IPS[0], calls=200, rate=40, pause_ms=300,
                              name="trunk-calls"))
    runs.append(rig.start_uac("register", lund_vip, R.CLIENT_IPS[1], calls=50, rate=25, name="lund-register"))
    runs.append(rig.start_uac("options", lund_vip, R.CLIENT_IPS[2], calls=50, rate=25, name="lund-options"))
    cap_back = R.Capture(rig, rig.ns_back, "b0", 40)
    cap_client = R.Capture(rig, rig.ns_client, "c0", 40)
    for src in R.CLIENT_IPS:
        R.send_crlf_keepalives(rig, src, 5070, lund_vip, count=10, interval=0.02)
    progress(runs, "distribution", out_stream, budget=45)
    results = [r.wait(30) for r in runs]
    time.sleep(0.5)
    frames_back, frames_client = cap_back.frames(), cap_client.frames()
    check_frames(out, frames_back, frames_client)
    for res in results:
        out.check(res.rc == 0 and res.failed == 0 and res.successful == res.created > 0, res.summary())
    got = {ip: count_invites(b) - before.get(ip, 0) for ip, b in rig.backends.items()}
    wsum = sum(LUND_WEIGHTS.values())
    # b2 serves both pools: tell its trunk calls by the trunk UAC's pid in the Call-ID ("N-PID@ip")
    trunk_ids = set()
    lund_ids = set()
    trunk_pid = str(runs[3].proc.popen.pid)
    for i in set(LUND_WEIGHTS) | set(TRUNK):
        for cid in invite_callids(rig.backends[R.backend_ip(i)]):
            (trunk_ids if cid.split("@")[0].split("-")[-1] == trunk_pid else lund_ids).add((i, cid))
    lund_counts = {i: sum(1 for j, _ in lund_ids if j == i) for i in LUND_WEIGHTS}
    trunk_counts = {i: sum(1 for j, _ in trunk_ids if j == i) for i in TRUNK}
    n_lund = sum(lund_counts.values())
    out.numbers["lund_calls"] = lund_counts
    out.numbers["trunk_calls"] = trunk_counts
    for i, w in LUND_WEIGHTS.items():
        share, want = lund_counts[i] / max(1, n_lund), w / wsum
        out.check(abs(share - want) <= 0.10,
                  f"lund b{i} ({R.backend_ip(i)}, weight {w}): {lund_counts[i]}/{n_lund} calls = "
                  f"{share:.0%} (weight share {want:.0%} +-10)")
    n_trunk = sum(trunk_counts.values())
    for i in TRUNK:
        share = trunk_counts[i] / max(1, n_trunk)
        out.check(abs(share - 0.5) <= 0.15, f"trunk b{i} ({R.backend_ip(i)}): {trunk_counts[i]}/{n_trunk} calls "
                                            f"= {share:.0%} (weight share 50% +-15)")
    untouched = [R.backend_ip(i) for i in range(rig.n_backends) if i not in LUND_WEIGHTS and i not in TRUNK]
    for ip in untouched:
        out.check(got.get(ip, 0) == 0, f"{ip} is in no pool and got {got.get(ip, 0)} calls")
    call_integrity(out, list(rig.backends.values()))
    return out


def scenario_dns_add(rig: R.Rig, d: Daemon, out_stream=None) -> Outcome:
    out = Outcome("dns-add")
    spare = rig.start_backend(R.backend_ip(SPARE))
    rig.wait_backends_ready()
    lund_vip = f"{R.VIPS['lund']}:5060"
    run = rig.start_uac("call", lund_vip, R.CLIENT_IPS[1], calls=200, rate=20, pause_ms=2000,
                        limit=100, name="lund-during-dns-add")
    time.sleep(2)
    in_progress = set().union(*(invite_callids(b) for b in rig.backends.values()))
    t_change = time.monotonic()
    rig.update_dns(zone(with_spare=True))
    found = {}

    def tick(_):
        if "ctl" not in found and d.backend_states("lund").get(spare.ip) in ("active", "up"):
            found["ctl"] = time.monotonic() - t_change
        if "traffic" not in found and count_invites(spare) > 0:
            found["traffic"] = time.monotonic() - t_change

    progress([run], "dns add", out_stream, budget=40, on_tick=tick)
    res = run.wait(30)
    out.numbers.update({k + "_s": round(v, 1) for k, v in found.items()})
    out.check("traffic" in found and found["traffic"] <= DNS_TTL + 2.5,
              f"{spare.addr} added to DNS (TTL {DNS_TTL}s) takes new calls after "
              f"{found.get('traffic', float('nan')):.1f}s (budget TTL + 2.5s)")
    if "ctl" in found:
        out.check(True, f"siplbctl lists it active after {found['ctl']:.1f}s")
    out.check(res.failed == 0 and res.successful == res.created, res.summary())
    # calls that were in progress at the change finished where they started
    _, split = R.calls_per_backend(list(rig.backends.values()))
    on_spare = invite_callids(spare)
    moved = [cid for cid in in_progress if cid in on_spare]
    out.check(not split and not moved, f"{len(in_progress)} calls in progress at the change finished on "
                                       f"their original servers ({len(split)} split)")
    return out


def scenario_kill(rig: R.Rig, d: Daemon, out_stream=None) -> Outcome:
    out = Outcome("kill")
    victim = rig.backends[R.backend_ip(1)]
    lund_vip = f"{R.VIPS['lund']}:5060"
    rate, pause_ms = 20, 1000
    run = rig.start_uac("call", lund_vip, R.CLIENT_IPS[2], calls=240, rate=rate, pause_ms=pause_ms,
                        limit=100, name="lund-during-kill")
    state = {}

    def tick(t):
        if "killed" not in state and t >= 3:
            rig.kill_backend(victim.ip)
            state["killed"] = time.monotonic()
        if "killed" in state and "down" not in state:
            st = d.backend_states("lund").get(victim.ip)
            if st and st not in ("active", "up"):
                state["down"] = time.monotonic() - state["killed"]
                state["down_state"] = st

    progress([run], "kill backend", out_stream, budget=45, on_tick=tick, every=0.1)
    res = run.wait(30)
    share = LUND_WEIGHTS[1] / sum(LUND_WEIGHTS.values())
    # calls on the dead server: in progress (rate x call length) plus new ones until pulled out
    allowed = int(rate * share * (pause_ms / 1000 + HEALTH_WINDOW_S + 1.0)) + 3
    out.numbers.update({"failed": res.failed, "allowed_failed": allowed,
                        "pulled_out_s": round(state.get("down", -1), 2)})
    out.check("down" in state and state["down"] <= HEALTH_WINDOW_S + 1.0,
              f"killed {victim.addr} pulled out ({state.get('down_state', '?')}) after "
              f"{state.get('down', float('nan')):.1f}s (health window {HEALTH_WINDOW_S:.1f}s + 1s)")
    out.check(res.successful >= res.created - allowed and res.failed <= allowed,
              f"new calls keep succeeding: {res.successful}/{res.created} ok, {res.failed} failed "
              f"(at most {allowed} expected: those on the dead server)")
    return out


def scenario_overload(rig: R.Rig, d: Daemon, out_stream=None) -> Outcome:
    out = Outcome("overload-503")
    ip = R.backend_ip(TRUNK[1])
    trunk_vip = f"{R.VIPS['trunk']}:5060"
    rate, pause_ms = 20, 2000
    run = rig.start_uac("call", trunk_vip, R.CLIENT_IPS[1], calls=300, rate=rate, pause_ms=pause_ms,
                        limit=100, name="trunk-during-503")
    st = {}

    def tick(t):
        b = rig.backends[ip]
        if "503" not in st and t >= 2:
            st["pre_ids"] = invite_callids(b)
            rig.start_backend(ip, variant="503")
            st["503"] = time.monotonic()
        elif "503" in st and "out" not in st:
            s = d.backend_states("trunk").get(ip)
            if s and s not in ("active", "up"):
                st["out"] = time.monotonic() - st["503"]
                st["out_state"] = s
                st["log_at_out"] = b.log_file
                st["invites_at_out"] = count_invites(b)
        elif "out" in st and "ok" not in st and t >= 9:
            st["invites_before_restore"] = count_invites(b)
            rig.start_backend(ip, variant="ok")
            st["ok"] = time.monotonic()
        elif "ok" in st and "back" not in st:
            s = d.backend_states("trunk").get(ip)
            if s in ("active", "up") and "back_ctl" not in st:
                st["back_ctl"] = time.monotonic() - st["ok"]
            if count_invites(b) > st["invites_before_restore"]:
                st["back"] = time.monotonic() - st["ok"]

    progress([run], "503 overload", out_stream, budget=45, on_tick=tick, every=0.1)
    res = run.wait(30)
    out.numbers.update({k + "_s": round(v, 2) for k, v in st.items() if isinstance(v, float) and k not in ("503", "ok")})
    out.check("out" in st and st["out"] <= HEALTH_WINDOW_S + 1.0,
              f"{ip} answering 503 taken out of rotation ({st.get('out_state', '?')}) after "
              f"{st.get('out', float('nan')):.1f}s")
    if "invites_at_out" in st and "invites_before_restore" in st:
        new = st["invites_before_restore"] - st["invites_at_out"]
        out.check(new <= 1, f"no new calls reached it while overloaded ({new} INVITEs)")
    # its dialogs stayed: BYEs of calls set up before the 503 reached the same address
    byes = {cid for cid, m in rig.backends[ip].received() if m == "BYE"}
    kept = len(st.get("pre_ids", set()) & byes)
    out.check(kept > 0, f"dialogs it had kept reaching it: {kept} BYEs of calls set up before the overload")
    out.check("back" in st, f"returned to rotation after recovery: new calls after "
                            f"{st.get('back', float('nan')):.1f}s")
    allowed = int(rate * 0.5 * (HEALTH_WINDOW_S + 1.0)) + 3
    out.check(res.failed <= allowed, f"{res.summary()} (at most {allowed} failures: 503s before pull-out)")
    return out


def scenario_passive_overload(rig: R.Rig, d: Daemon, out_stream=None) -> Outcome:
    """The overload probes cannot see: a trunk backend answers OPTIONS with
    200 but every new INVITE with 503 + Retry-After. With passive checks on
    (PASSIVE) siplb takes it out within two intervals as overloaded with a
    'passive:' detail, new calls succeed on the other backend, and it comes
    back once Retry-After has passed."""
    out = Outcome("passive-overload")
    ip, other = R.backend_ip(TRUNK[1]), R.backend_ip(TRUNK[0])
    trunk_vip = f"{R.VIPS['trunk']}:5060"
    interval = PASSIVE["interval_ms"] / 1000
    ra = PASSIVE_RETRY_AFTER_S
    b = rig.start_backend(ip, variant="503-invite", retry_after=ra)
    rig.wait_backends_ready()
    # Probes alone keep it in: every OPTIONS gets 200.
    time.sleep(1.5 * interval)
    entry = d.backend_entry("trunk", ip)
    out.check(entry.get("state") == "active", f"{ip} answering OPTIONS 200 stays active on probes alone "
                                              f"(state {entry.get('state')}, detail {entry.get('health_detail')!r})")
    rate = 40
    run = rig.start_uac("call_or_503", trunk_vip, R.CLIENT_IPS[1], calls=5 * rate, rate=rate, pause_ms=200,
                        limit=100, name="trunk-passive")
    st = {}

    def tick(t):
        if "out" in st:
            return
        e = d.backend_entry("trunk", ip)
        if e.get("state") not in (None, "active"):
            st.update(out=t, at=time.monotonic(), entry=e, invites_at_out=count_invites(b))

    progress([run], "passive overload", out_stream, budget=30, on_tick=tick, every=0.1)
    res = run.wait(30)
    e = st.get("entry", {})
    out.numbers.update({"out_s": round(st.get("out", -1), 2), "failed": res.failed})
    out.check("out" in st and st["out"] <= 2 * interval,
              f"{ip} rejecting INVITEs taken out after {st.get('out', float('nan')):.2f}s "
              f"(two intervals: {2 * interval:.1f}s)")
    detail = str(e.get("health_detail", ""))
    out.check(e.get("state") == "overloaded" and e.get("health") == "overloaded" and detail.startswith("passive:"),
              f"siplbctl backends: state {e.get('state')}, health {e.get('health')}, detail {detail!r}")
    if "out" not in st:
        return out
    late = count_invites(b) - st["invites_at_out"]
    out.check(late <= 1, f"no new calls reached it once out ({late} INVITEs)")
    out.check(d.backend_states("trunk").get(other) == "active", f"{other} stayed active")
    # calls rejected: those hashed to it before it was out (about half the rate)
    allowed = int(rate * 0.5 * (st["out"] + 0.5)) + 3
    out.check(res.created > 0 and res.failed <= allowed and res.successful == res.created - res.failed,
              f"{res.summary()} (at most {allowed} rejected before it was out, all others answered by {other})")
    # No more traffic: back after Retry-After (counted from the trip) on OPTIONS 200.
    back = None
    deadline = st["at"] + ra + 2 * interval + 2
    while time.monotonic() < deadline:
        if d.backend_states("trunk").get(ip) == "active":
            back = time.monotonic() - st["at"]
            break
        time.sleep(0.1)
    out.numbers["back_s"] = round(back if back is not None else -1, 2)
    out.check(back is not None and ra - 0.5 <= back <= ra + 2 * interval + 2,
              f"back in rotation {back if back is not None else float('nan'):.1f}s after it was out "
              f"(Retry-After {ra}s, then OPTIONS 200)")
    rig.start_backend(ip, variant="ok")
    rig.wait_backends_ready()
    return out


def scenario_ctl(rig: R.Rig, d: Daemon, out_stream=None) -> Outcome:
    out = Outcome("siplbctl")
    for args in (("status",), ("pools",), ("backends",), ("stats",)):
        rc, text = d.ctl(*args, check=False)
        out.check(rc == 0 and text.strip(), f"siplbctl {' '.join(args)} (rc {rc}, {len(text.splitlines())} lines)")
        out.numbers["siplbctl " + " ".join(args)] = text.rstrip()
    try:
        m = d.metrics()
        lines = [l for l in m.splitlines() if l and not l.startswith("#")]
        out.numbers["metrics_lines"] = len(lines)
        out.check(len(lines) > 0 and "siplb_" in m, f"/metrics: {len(lines)} samples, "
                                                     f"{len(m.splitlines())} lines")
    except Exception as e:
        out.check(False, f"/metrics: {e}")
    return out


def scenario_two_vips(rig: R.Rig, d: Daemon, out_stream=None, calls_per_vip: int = 20) -> Outcome:
    """One pool (trunk) on two VIPs: sipp clients calling each VIP receive
    every answer from the address they called (a NAT or strict firewall in
    front of them drops anything else), the calls' VIPs show in siplbctl
    query, and the sipp backends, which put their own address in Contact,
    are counted and warned about."""
    out = Outcome("two-vips")
    vips = {R.CLIENT_IPS[0]: R.VIPS["trunk"], R.CLIENT_IPS[1]: TRUNK_VIP2}
    cap = R.Capture(rig, rig.ns_client, "c0", seconds=90)
    runs = [rig.start_uac("call", f"{vip}:5060", ip, calls=calls_per_vip, rate=10, pause_ms=500, limit=20,
                          name=f"two-vips-{vip}") for ip, vip in vips.items()]
    progress(runs, "two VIPs", out_stream, budget=60)
    results = [r.wait(30) for r in runs]
    frames = cap.frames()
    for (ip, vip), res in zip(vips.items(), results):
        out.check(res.successful == calls_per_vip and res.failed == 0,
                  f"calls from {ip} to {vip}: {res.summary()}")
        replies = [f for f in frames if f["dst"] == ip and f["dport"] != 9]
        wrong = sorted({f"{f['src']}:{f['sport']}" for f in replies if (f["src"], f["sport"]) != (vip, R.SIP_PORT)})
        bad = [f for f in replies if not (f["ipok"] and f["udpok"])]
        out.numbers[f"replies_to_{ip}"] = len(replies)
        out.check(len(replies) >= 4 * calls_per_vip and not wrong and not bad,
                  f"{len(replies)} answers to {ip} (100/180/200 and the BYE's 200 of {calls_per_vip} calls), "
                  f"all from {vip}:5060 (others from {wrong or 'nowhere'}), {len(bad)} bad checksums")
    # siplbctl query: sipp's Call-IDs end in @<client address>, so each call's VIP is known here.
    call_ids = {cid for i in TRUNK for cid, m in rig.backends[R.backend_ip(i)].received() if m == "INVITE"}
    sample = sorted(call_ids)[:40]
    _, text = d.ctl("query", "trunk", "--", *sample) if sample else (0, "")
    shown = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 4:
            shown[parts[0]] = parts[2]
    right = [c for c in sample if shown.get(c) == f"{vips.get(c.rsplit('@', 1)[-1], '?')}:5060"]
    out.check(sample and len(right) == len(sample),
              f"siplbctl query trunk: {len(right)}/{len(sample)} calls show the VIP their client called")
    # No answer had to fall back to the first VIP; the sipp UAS (Contact: its own address) is noticed.
    entries = [d.backend_entry("trunk", R.backend_ip(i)) for i in TRUNK]
    advertised = sum(int(e.get("advertises_itself", 0)) for e in entries)
    out.numbers["advertises_itself"] = advertised
    out.check(advertised > 0, f"siplbctl backends trunk: SELF_ADV {advertised} (sipp's Contact is its own address)")
    deadline = time.monotonic() + 3
    while "backend advertises its own address" not in d.log_tail(200000) and time.monotonic() < deadline:
        time.sleep(0.2)
    out.check("backend advertises its own address" in d.log_tail(200000),
              "the daemon logged a warning about the backend advertising itself")
    rc, stats = d.ctl("stats", "--json", check=False)
    try:
        fallbacks = sum(b.get("vip", {}).get("first_vip_fallback", 0)
                        for b in json.loads(stats).get("backends", []) if b.get("pool") == "trunk")
    except ValueError:
        fallbacks = -1
    out.check(rc == 0 and fallbacks == 0, f"no answer fell back to the first VIP ({fallbacks})")
    return out


def scenario_transports(rig: R.Rig, d: Daemon, out_stream=None) -> Outcome:
    """One pool, three transports at once: trunk listens on UDP and TCP 5060
    and TLS 5061 of its VIP (EXTRA_VIPS) and its backends serve all three.
    sipp calls over UDP, over TCP with a connection per call (-t tn) and with
    one connection for all calls (-t t1), and TLS clients (tls_peer.py, with
    a certificate made here) run at the same time. UDP is balanced per
    Call-ID, TCP and TLS per connection: every call and connection completes
    on one backend, both backends get a share of each transport but t1's
    single connection, the TLS handshake reaches the clients unchanged, and
    siplbctl stats counts each backend's connections."""
    out = Outcome("udp+tcp+tls")
    vip = R.VIPS["trunk"]
    trunk = [R.backend_ip(i) for i in TRUNK]
    cert, tcp_logs = rig.stream_backends if hasattr(rig, "stream_backends") else start_stream_backends(rig)
    if out_stream:
        out_stream.write(f"  trunk on udp {vip}:{R.SIP_PORT}, tcp {vip}:{R.SIP_PORT}, tls {vip}:{TLS_PORT}; "
                         f"backends {', '.join(trunk)} serve all three (TLS passes siplb unterminated)\n")
        out_stream.flush()
    target = f"{vip}:{R.SIP_PORT}"
    runs = {"udp": rig.start_uac("call", target, R.CLIENT_IPS[0], calls=60, rate=10, pause_ms=500, limit=20,
                                 name="trunk-udp"),
            "tn": rig.start_uac("call", target, R.CLIENT_IPS[1], calls=40, rate=8, pause_ms=500, limit=20,
                                name="trunk-tcp-tn", transport="tn"),
            "t1": rig.start_uac("call", target, R.CLIENT_IPS[2], calls=20, rate=4, pause_ms=500, limit=20,
                                name="trunk-tcp-t1", transport="t1")}
    n_tls = 24
    tls = start_tls_client(rig, cert, R.CLIENT_IPS[2], n_tls, vip=vip, every_s=0.25, name="trunk-tls")
    together = {}

    def tick(t):
        started = {k: r.stats()[0] for k, r in runs.items()}
        started["tls"] = tls.stats()[0]
        if "t" not in together and all(started.values()) and tls.proc.alive() \
                and all(r.proc.alive() for r in runs.values()):
            together.update(t=t, started=started)

    progress([*runs.values(), tls], "UDP+TCP+TLS", out_stream, budget=45, on_tick=tick, every=0.25)
    res = {k: r.wait(30) for k, r in runs.items()}
    tls_rc, tls_res = tls.wait(rig, 30)
    st = together.get("started", {})
    out.check("t" in together, f"all three transports carried traffic at the same time: "
                               f"{together.get('t', float('nan')):.1f}s in, UDP {st.get('udp', 0)} and TCP "
                               f"{st.get('tn', 0) + st.get('t1', 0)} calls and TLS {st.get('tls', 0)} "
                               f"connections started, none finished")

    def by_backend(counts: dict) -> str:
        return ", ".join(f"{ip} {counts.get(ip, 0)}" for ip in trunk)

    def own(run: R.SippRun, call_id: str) -> bool:   # sipp Call-IDs are "N-PID@ip"
        return call_id.split("@")[0].rsplit("-", 1)[-1] == str(run.proc.popen.pid)

    # UDP: per Call-ID, from the UDP UAS logs.
    udp_where = {}
    for ip in trunk:
        for cid, _ in rig.backends[ip].received():
            if own(runs["udp"], cid):
                udp_where.setdefault(cid, set()).add(ip)
    udp = {ip: sum(1 for w in udp_where.values() if ip in w) for ip in trunk}
    r = res["udp"]
    out.check(r.failed == 0 and r.successful == r.created == 60 and all(udp.values())
              and all(len(w) == 1 for w in udp_where.values()),
              f"UDP  sipp -t u1, balanced per Call-ID: {r.successful}/{r.created} calls ok, {r.failed} failed; "
              f"calls per backend: {by_backend(udp)}")
    # TCP: per connection, from the TCP UAS logs.
    for mode, what in (("tn", "a connection per call"), ("t1", "one connection for all calls")):
        where = {}
        for ip, log in tcp_logs.items():
            for cid, _ in logged_requests(log):
                if own(runs[mode], cid):
                    where.setdefault(cid, set()).add(ip)
        per = {ip: sum(1 for w in where.values() if ip in w) for ip in trunk}
        r = res[mode]
        one_each = all(len(w) == 1 for w in where.values())
        spread = all(per.values()) if mode == "tn" else sum(1 for n in per.values() if n) == 1
        out.check(r.failed == 0 and r.successful == r.created == runs[mode].calls and len(where) == r.created
                  and one_each and spread,
                  f"TCP  sipp -t {mode} ({what}): {r.successful}/{r.created} calls ok, {r.failed} failed; "
                  f"calls per backend: {by_backend(per)}, every call's requests on one backend")
        out.numbers[f"tcp_{mode}_calls"] = per
    # TLS: per connection, the backend named in each answer.
    tls_per = {ip: sum(1 for x in tls_res if x["backends"] == [ip]) for ip in trunk}
    errors = [x["error"] for x in tls_res if x["error"]]
    same_cert = all(x.get("cert_sha256") == cert.sha256 for x in tls_res)
    out.check(tls_rc == 0 and len(tls_res) == n_tls and not errors and all(tls_per.values()),
              f"TLS  {len(tls_res) - len(errors)}/{n_tls} connections answered (OPTIONS 200), "
              f"{len(errors)} failed{': ' + errors[0] if errors else ''}; connections per backend: "
              f"{by_backend(tls_per)}")
    out.check(tls_res and same_cert, f"TLS  every handshake verified the certificate made for this run "
                                     f"(sha256 {cert.sha256[:16]}...): siplb passed it through unterminated")
    # siplbctl query: which backend holds a client's connection.
    if tls_res and tls_res[-1].get("port"):
        last = tls_res[-1]
        client = f"{R.CLIENT_IPS[2]}:{last['port']}"
        rc, text = d.ctl("query", "trunk", client, "--json", check=False)
        try:
            conns = json.loads(text).get("connections", []) if rc == 0 else []
        except ValueError:
            conns = []
        tls_entry = next((c for c in conns if c.get("transport") == "tls"), {})
        out.check(tls_entry.get("backend") == f"{last['backends'][0]}:{TLS_PORT}",
                  f"siplbctl query trunk {client} (a TLS client's address): tls -> {tls_entry.get('backend')} "
                  f"(reason {tls_entry.get('reason')}, connection {tls_entry.get('connection_state', '-')}, entry "
                  f"expires in {tls_entry.get('expires_in_s', '-')}s), the backend that answered it")
        # The same answer as text: one tab-separated line per transport.
        rc, text = d.ctl("query", "trunk", client, check=False)
        tls_line = next((ln.split("\t") for ln in text.splitlines() if ln.startswith(f"tls://{client}\t")), [])
        out.check(rc == 0 and len(tls_line) == 6 and tls_line[1] == tls_entry.get("backend")
                  and tls_line[3] in ("connection", "table"),
                  f"siplbctl query trunk {client} (text): {' '.join(tls_line) or text.strip()!r}")
    # siplbctl stats: each backend's connections (TCP and TLS) once they closed.
    want = {ip: out.numbers["tcp_tn_calls"].get(ip, 0) + (1 if out.numbers["tcp_t1_calls"].get(ip) else 0)
            + tls_per[ip] for ip in trunk}
    deadline = time.monotonic() + 3
    while True:
        pool_tcp, per_backend = tcp_counters(d, "trunk")
        opened = {ip: per_backend.get(ip, {}).get("opened", 0) for ip in trunk}
        closed = {ip: per_backend.get(ip, {}).get("closed", 0) for ip in trunk}
        if (opened == want and closed == want) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    out.numbers["tcp_pool"] = pool_tcp
    out.check(opened == want and closed == want,
              f"siplbctl stats: connections opened/closed per backend "
              f"{', '.join(f'{ip} {opened[ip]}/{closed[ip]}' for ip in trunk)} = the TCP and TLS connections "
              f"each served ({by_backend(want)}); pool trunk: tcp opened {pool_tcp.get('opened', 0)}, "
              f"closed {pool_tcp.get('closed', 0)}, active {pool_tcp.get('active', 0)} (a closed connection's "
              f"entry stays for a grace period)")
    # siplbctl backends: the same counts in its connection columns.
    rc, text = d.ctl("backends", "trunk", check=False)
    rows = [ln.split() for ln in text.splitlines()] if rc == 0 else []
    col = rows[0].index("TCP_OPENED") if rows and "TCP_OPENED" in rows[0] else None
    shown = {r[1].rsplit(":", 1)[0]: r[col] for r in rows[1:] if col is not None and len(r) > col}
    out.check(col is not None and all(shown.get(ip) == str(opened[ip]) for ip in trunk),
              f"siplbctl backends trunk: column TCP_OPENED {shown} = the opened counts of stats")
    return out


SCENARIOS = {"distribution": scenario_distribution, "dns_add": scenario_dns_add, "kill": scenario_kill,
             "overload": scenario_overload, "passive_overload": scenario_passive_overload, "ctl": scenario_ctl,
             "two_vips": scenario_two_vips, "transports": scenario_transports}


def start_stream_backends(rig: R.Rig) -> tuple:
    """A sipp UAS over TCP and a TLS server on each trunk backend, for a trunk
    that also listens on tcp:// and tls://. Started before siplb, whose TCP
    and TLS health checks would otherwise find nothing there and take the
    backends out. Returns (certificate, {backend: TCP UAS log}), also kept
    as rig.stream_backends."""
    trunk = [R.backend_ip(i) for i in TRUNK]
    cert = make_tls_cert(rig.workdir / "tls")
    tcp_logs = {ip: start_tcp_uas(rig, ip) for ip in trunk}
    for ip in trunk:
        start_tls_server(rig, ip, cert)
    wait_tcp_listening(rig, [f"{ip}:{port}" for ip in trunk for port in (R.SIP_PORT, TLS_PORT)])
    rig.stream_backends = (cert, tcp_logs)
    return rig.stream_backends


def run_balanced_main(names: list, work: Path, driver: str = "af_packet", show_number=lambda key: True) -> int:
    """run_balanced() as a test's main: prints each outcome as it ends, names
    the failed parts and the logs; returns the exit code."""
    failed = []

    def report(o):
        if not print_outcome(o, show_number=show_number):
            failed.append(o.name)

    try:
        run_balanced(names, work, out_stream=sys.stdout, report=report, driver=driver)
    except R.RigError as e:
        print(f"FAIL: {e}")
        failed.append("rig")
    if failed:
        print(f"{len(failed)} part(s) failed: {', '.join(failed)}; logs in {work}")
        return 1
    print("all checks passed")
    return 0


def run_balanced(names: list, workdir: Path, out_stream=None, report=None, driver: str = "af_packet") -> list:
    """Builds the rig, starts DNS, backends and siplb (its ports on `driver`),
    runs the named scenarios."""
    outcomes = []
    rig = R.Rig(workdir, n_backends=4, spare_backends=1)
    with rig:
        rig.start_dns(zone())
        start_pool_backends(rig)
        pool_health, extra_vips = {}, {}
        for n in names:
            for pool, keys in POOL_HEALTH.get(n, {}).items():
                pool_health.setdefault(pool, {}).update(keys)
            for pool, vips in EXTRA_VIPS.get(n, {}).items():
                extra_vips.setdefault(pool, []).extend(vips)
        if any(v.startswith(("tcp://", "tls://")) for v in extra_vips.get("trunk", [])):
            start_stream_backends(rig)
        d = Daemon(rig, pool_health=pool_health, extra_vips=extra_vips, driver=driver)
        d.start()
        boot = Outcome("startup")
        wait_pool_ready(rig, d, boot)
        boot.check(boot.ok, f"siplb up, lund discovered by DNS SRV and trunk static backends active "
                            f"after {boot.numbers.get('ready_s', '?')}s")
        outcomes.append(boot)
        if report:
            report(boot)
        if boot.ok:
            for n in names:
                o = SCENARIOS[n](rig, d, out_stream)
                outcomes.append(o)
                if report:
                    report(o)
        rc = d.stop()
        stop = Outcome("shutdown")
        stop.check(rc == 0, f"siplb stopped cleanly on SIGTERM (exit {rc})")
        outcomes.append(stop)
        if report:
            report(stop)
    left = rig.leftovers()
    clean = Outcome("cleanup")
    clean.check(not left, f"no namespaces, links or processes left: {left}")
    outcomes.append(clean)
    if report:
        report(clean)
    return outcomes
