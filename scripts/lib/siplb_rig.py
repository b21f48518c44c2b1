"""siplb end-to-end rig: network namespaces, veth pairs, real SIP endpoints
(sipp), a real DNS server (dnsmasq) and the siplb daemon, all created by one
object and all removed again on exit, failure or Ctrl-C.

Topology (every name carries a per-run prefix, e.g. "sle4711"):

    client ns                      lb ns                          backends ns
    c0 192.0.2.11-13/24  <-veth->  ext0 192.0.2.1/24     int0 198.51.100.1/24  <-veth->  b0 198.51.100.11.../24
    02:00:00:c0:00:01              02:00:00:1b:00:01     02:00:00:1b:00:02               02:00:00:be:00:01
    route 203.0.113.0/24           siplb: net_af_packet on ext0 and int0                 route 192.0.2.0/24
          via 192.0.2.1            ip_forward=0, VIPs NOT on the kernel                  via 198.51.100.1
                                                                                         dnsmasq 198.51.100.53
  with Rig(ipv6=True) also (IPv6 is disabled in every namespace otherwise):
    c0 2001:db8:c::11-13/64        ext0 2001:db8:c::1/64 int0 2001:db8:b::1/64           b0 2001:db8:b::11.../64
    route 2001:db8:f::/64          forwarding=0, no VIP on the kernel,                   route 2001:db8:c::/64
          via 2001:db8:c::1        blackhole 2001:db8:f::/64                             via 2001:db8:b::1

How traffic reaches the VIPs: clients route the VIP prefix (203.0.113.0/24,
and 2001:db8:f::/64 with IPv6) through the lb node address, so frames to a
VIP carry ext0's MAC; no ARP/ND for the VIP itself is needed. (A test may
add an on-link route to a VIP instead, so that the client resolves it by
ARP or ND and siplb answers: tests/e2e/edge.py.) The lb kernel sees the
same frames (af_packet gets copies) and drops them silently because
forwarding is off and the VIPs are not local addresses, so it never answers
SIP to a VIP with ICMP; for IPv6 this takes the blackhole route, as IPv6
without any route would send an ICMPv6 "no route" error per frame.
Backends route client-bound traffic through the lb int address in the same
way. The node addresses stay on the kernel for siplb's control plane (DNS
queries, OPTIONS probes through kernel sockets). Every neighbor is static
(nud permanent in the namespaces, [[dataplane.neighbor]] in the generated
config), so forwarding does not depend on ARP/ND. IPv6 addresses are
nodad, with accept_dad, accept_ra and forwarding 0. Checksum offloads are
off on every veth (ethtool, installed by scripts/setup) so frames carry
complete UDP checksums (af_packet would otherwise see partial ones).

Nothing here sends traffic outside the namespaces it creates.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = SOURCE_ROOT / "tests" / "e2e" / "scenarios"
PREFIX = "sle"  # namespaces/links of this rig: sle<run id>-...

CLIENT_IPS = ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
LB_EXT_IP = "192.0.2.1"
LB_INT_IP = "198.51.100.1"
DNS_IP = "198.51.100.53"
VIPS = {"lund": "203.0.113.10", "trunk": "203.0.113.20"}
SIP_PORT = 5060

# IPv6 (only with Rig(ipv6=True)): documentation prefix 2001:db8::/32 only.
CLIENT_IPS6 = ["2001:db8:c::11", "2001:db8:c::12", "2001:db8:c::13"]
LB_EXT_IP6 = "2001:db8:c::1"
LB_INT_IP6 = "2001:db8:b::1"
VIP6_PREFIX = "2001:db8:f::/64"
VIPS6 = {"trunk6": "2001:db8:f::20"}

MAC_CLIENT = "02:00:00:c0:00:01"
MAC_LB_EXT = "02:00:00:1b:00:01"
MAC_LB_INT = "02:00:00:1b:00:02"
MAC_BACKENDS = "02:00:00:be:00:01"


def backend_ip(i: int) -> str:
    return f"198.51.100.{11 + i}"


def backend_ip6(i: int) -> str:
    return f"2001:db8:b::{11 + i}"


def host_port(ip: str, port: int) -> str:
    """ip:port, with the IPv6 address in brackets (as ss and siplb print it)."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class RigError(Exception):
    pass


def have_netns_privileges() -> tuple[bool, str]:
    """Can this process create a network namespace and a veth pair?"""
    if shutil.which("ip") is None:
        return False, "iproute2 'ip' not found"
    if os.geteuid() != 0:
        return False, "not root: network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN"
    name = f"{PREFIX}{os.getpid()}-probe"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return False, f"cannot create a network namespace: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return True, ""


def sh(*argv: str, check: bool = True, ns: str | None = None, timeout: float = 20) -> str:
    cmd = list(argv)
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RigError(f"command failed ({r.returncode}): {' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Backend:
    ip: str
    port: int
    variant: str                   # a key of Rig.BACKEND_VARIANTS
    proc: Proc | None = None
    log_file: Path | None = None   # "<Call-ID> <METHOD>" per received request
    old_logs: list = field(default_factory=list)  # logs of earlier processes on this address

    @property
    def addr(self) -> str:
        return host_port(self.ip, self.port)

    def received(self) -> list[tuple[str, str]]:
        """(call_id, method) of every request this backend address received, over all processes."""
        out = []
        for f in self.old_logs + ([self.log_file] if self.log_file else []):
            if f and f.exists():
                for line in f.read_text(errors="replace").splitlines():
                    parts = line.strip().split()
                    if len(parts) >= 2:
                        out.append((parts[0], parts[1]))
        return out


@dataclass
class SippResult:
    name: str
    rc: int
    created: int
    successful: int
    failed: int
    stat_file: Path
    elapsed: float

    def summary(self) -> str:
        return f"{self.name}: {self.successful}/{self.created} ok, {self.failed} failed (rc {self.rc}, {self.elapsed:.1f}s)"


def read_sipp_stats(stat_file: Path) -> dict:
    """Last row of a sipp -trace_stat CSV as a dict ('' when not yet written)."""
    try:
        with open(stat_file, newline="") as f:
            rows = list(csv.reader(f, delimiter=";"))
    except FileNotFoundError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))


def _int(d: dict, key: str) -> int:
    try:
        return int(d.get(key, "0") or 0)
    except ValueError:
        return 0


class SippRun:
    """A sipp UAC running in the background; wait() gives its SippResult."""

    def __init__(self, rig: "Rig", name: str, proc: Proc, stat_file: Path, calls: int):
        self.rig, self.name, self.proc, self.stat_file, self.calls = rig, name, proc, stat_file, calls
        self.started = time.monotonic()

    def stats(self) -> tuple[int, int, int]:
        d = read_sipp_stats(self.stat_file)
        return (_int(d, "TotalCallCreated"), _int(d, "SuccessfulCall(C)"), _int(d, "FailedCall(C)"))

    def wait(self, timeout: float) -> SippResult:
        try:
            rc = self.proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.rig.stop(self.proc)
            rc = -999
        created, ok, failed = self.stats()
        return SippResult(self.name, rc, created, ok, failed, self.stat_file, time.monotonic() - self.started)


class Rig:
    def __init__(self, workdir: str | Path, n_backends: int = 4, spare_backends: int = 1,
                 run_id: str | None = None, log=None, ipv6: bool = False):
        self.run_id = run_id or str(os.getpid())
        self.pfx = f"{PREFIX}{self.run_id}"
        self.ns_client = f"{self.pfx}-c"
        self.ns_lb = f"{self.pfx}-lb"
        self.ns_back = f"{self.pfx}-b"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.n_backends = n_backends
        self.backend_ips = [backend_ip(i) for i in range(n_backends + spare_backends)]
        # IPv6 is opt-in: without it every namespace has IPv6 disabled, as before.
        self.ipv6 = ipv6
        self.backend_ips6 = [backend_ip6(i) for i in range(n_backends + spare_backends)] if ipv6 else []
        self.procs: list[Proc] = []
        self.backends: dict[str, Backend] = {}
        self.dns_proc: Proc | None = None
        self.siplb: Proc | None = None
        self.siplb_socket = self.workdir / "siplb.sock"
        self._cp = 8900       # sipp control ports (unique per sipp in a namespace)
        self._mp = 20000      # sipp media ports
        self._seq = 0
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._is_up = False

    # ----------------------------------------------------------------- topology
    def up(self) -> None:
        self.cleanup_leftovers(self.run_id)
        self._is_up = True
        off = "0" if self.ipv6 else "1"
        for ns in (self.ns_client, self.ns_lb, self.ns_back):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
            sh("sysctl", "-qw", f"net.ipv6.conf.all.disable_ipv6={off}", ns=ns)
            sh("sysctl", "-qw", f"net.ipv6.conf.default.disable_ipv6={off}", ns=ns)
            if self.ipv6:
                # Set before the veths arrive (they take the namespace defaults):
                # no DAD delay, no router discovery, no forwarding anywhere.
                for k in ("accept_dad=0", "accept_ra=0", "forwarding=0"):
                    for scope in ("all", "default"):
                        sh("sysctl", "-qw", f"net.ipv6.conf.{scope}.{k}", ns=ns)
        self._veth(f"{self.pfx}a", self.ns_client, "c0", MAC_CLIENT,
                   f"{self.pfx}b", self.ns_lb, "ext0", MAC_LB_EXT)
        self._veth(f"{self.pfx}d", self.ns_lb, "int0", MAC_LB_INT,
                   f"{self.pfx}e", self.ns_back, "b0", MAC_BACKENDS)
        # client side
        for ip in CLIENT_IPS:
            sh("ip", "addr", "add", f"{ip}/24", "dev", "c0", ns=self.ns_client)
        sh("ip", "neigh", "replace", LB_EXT_IP, "lladdr", MAC_LB_EXT, "dev", "c0", "nud", "permanent", ns=self.ns_client)
        sh("ip", "route", "add", "203.0.113.0/24", "via", LB_EXT_IP, "src", CLIENT_IPS[0], ns=self.ns_client)
        sh("ip", "route", "add", "198.51.100.0/24", "via", LB_EXT_IP, "src", CLIENT_IPS[0], ns=self.ns_client)
        # lb: node addresses only, no VIPs, no forwarding
        sh("ip", "addr", "add", f"{LB_EXT_IP}/24", "dev", "ext0", ns=self.ns_lb)
        sh("ip", "addr", "add", f"{LB_INT_IP}/24", "dev", "int0", ns=self.ns_lb)
        for k in ("net.ipv4.ip_forward=0", "net.ipv4.conf.all.send_redirects=0",
                  "net.ipv4.conf.default.send_redirects=0", "net.ipv4.conf.all.rp_filter=0",
                  "net.ipv4.conf.ext0.rp_filter=0", "net.ipv4.conf.int0.rp_filter=0"):
            sh("sysctl", "-qw", k, ns=self.ns_lb)
        for ip in CLIENT_IPS:
            sh("ip", "neigh", "replace", ip, "lladdr", MAC_CLIENT, "dev", "ext0", "nud", "permanent", ns=self.ns_lb)
        for ip in self.backend_ips + [DNS_IP]:
            sh("ip", "neigh", "replace", ip, "lladdr", MAC_BACKENDS, "dev", "int0", "nud", "permanent", ns=self.ns_lb)
        # backends
        for ip in self.backend_ips + [DNS_IP]:
            sh("ip", "addr", "add", f"{ip}/24", "dev", "b0", ns=self.ns_back)
        sh("ip", "neigh", "replace", LB_INT_IP, "lladdr", MAC_LB_INT, "dev", "b0", "nud", "permanent", ns=self.ns_back)
        sh("ip", "route", "add", "192.0.2.0/24", "via", LB_INT_IP, ns=self.ns_back)
        sh("ip", "route", "add", "203.0.113.0/24", "via", LB_INT_IP, ns=self.ns_back)
        if self.ipv6:
            self._up_ipv6()
        self.log(f"rig: namespaces {self.ns_client}, {self.ns_lb}, {self.ns_back} up"
                 + (" (IPv4 and IPv6)" if self.ipv6 else ""))

    def _up_ipv6(self) -> None:
        """The IPv6 twin of the IPv4 plan: the same roles, static neighbors and
        routes, 2001:db8::/32 addresses without DAD (nodad). The lb kernel
        keeps forwarding off and has no VIP; it discards frames to the VIP
        prefix through a blackhole route, because without any route IPv6
        would answer each one with an ICMPv6 'no route' error (IPv4 with
        ip_forward=0 drops them silently)."""
        def v6(ns, *argv):
            sh("ip", "-6", *argv, ns=ns)
        for ns, dev in ((self.ns_client, "c0"), (self.ns_lb, "ext0"), (self.ns_lb, "int0"), (self.ns_back, "b0")):
            for k in ("accept_dad=0", "accept_ra=0", "forwarding=0"):
                sh("sysctl", "-qw", f"net.ipv6.conf.{dev}.{k}", ns=ns)
        for ip in CLIENT_IPS6:
            v6(self.ns_client, "addr", "add", f"{ip}/64", "dev", "c0", "nodad")
        v6(self.ns_client, "neigh", "replace", LB_EXT_IP6, "lladdr", MAC_LB_EXT, "dev", "c0", "nud", "permanent")
        v6(self.ns_client, "route", "add", VIP6_PREFIX, "via", LB_EXT_IP6, "src", CLIENT_IPS6[0])
        v6(self.ns_lb, "addr", "add", f"{LB_EXT_IP6}/64", "dev", "ext0", "nodad")
        v6(self.ns_lb, "addr", "add", f"{LB_INT_IP6}/64", "dev", "int0", "nodad")
        v6(self.ns_lb, "route", "add", "blackhole", VIP6_PREFIX)
        for ip in CLIENT_IPS6:
            v6(self.ns_lb, "neigh", "replace", ip, "lladdr", MAC_CLIENT, "dev", "ext0", "nud", "permanent")
        for ip in self.backend_ips6:
            v6(self.ns_lb, "neigh", "replace", ip, "lladdr", MAC_BACKENDS, "dev", "int0", "nud", "permanent")
        for ip in self.backend_ips6:
            v6(self.ns_back, "addr", "add", f"{ip}/64", "dev", "b0", "nodad")
        v6(self.ns_back, "neigh", "replace", LB_INT_IP6, "lladdr", MAC_LB_INT, "dev", "b0", "nud", "permanent")
        v6(self.ns_back, "route", "add", "2001:db8:c::/64", "via", LB_INT_IP6)
        v6(self.ns_back, "route", "add", VIP6_PREFIX, "via", LB_INT_IP6)

    def _veth(self, tmp_a, ns_a, name_a, mac_a, tmp_b, ns_b, name_b, mac_b) -> None:
        sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        for tmp, ns, name, mac in ((tmp_a, ns_a, name_a, mac_a), (tmp_b, ns_b, name_b, mac_b)):
            sh("ip", "link", "set", tmp, "netns", ns)
            sh("ip", "link", "set", tmp, "name", name, ns=ns)
            sh("ip", "link", "set", name, "address", mac, "mtu", "1500", ns=ns)
            self._offloads_off(ns, name)
            sh("ip", "link", "set", name, "up", ns=ns)

    def _offloads_off(self, ns: str, dev: str) -> None:
        # veth leaves UDP checksums CHECKSUM_PARTIAL when tx checksumming is
        # on; af_packet would then hand siplb frames with a pseudo-header-only
        # checksum. The self-test verifies the result (checksum_check()).
        # Without ethtool every rig frame would carry a partial checksum and
        # siplb would drop it as bad_checksum: fail here, not later.
        if shutil.which("ethtool") is None:
            raise RigError("ethtool not found (scripts/setup installs it): cannot turn off veth checksum offloads")
        sh("ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off", ns=ns)

    def set_kernel_forwarding(self, on: bool) -> None:
        """Only for the direct-call self-test (no siplb): the lb kernel routes."""
        sh("sysctl", "-qw", f"net.ipv4.ip_forward={1 if on else 0}", ns=self.ns_lb)

    # ------------------------------------------------------------- processes
    def spawn(self, name: str, ns: str, argv: list[str], cwd: Path | None = None) -> Proc:
        self._seq += 1
        log = self.workdir / f"{self._seq:02d}-{name}.log"
        f = open(log, "wb")
        p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdin=subprocess.DEVNULL,
                             stdout=f, stderr=subprocess.STDOUT, cwd=cwd or self.workdir,
                             start_new_session=True)
        f.close()
        proc = Proc(name, p, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc | None, sig: int = signal.SIGTERM, timeout: float = 5) -> int | None:
        """Stops one process we started, by its saved PID."""
        if proc is None:
            return None
        if proc.popen.poll() is None:
            try:
                proc.popen.send_signal(sig)
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=5)
            except ProcessLookupError:
                pass
        return proc.popen.returncode

    SIPP_TRANSPORTS = ("u1", "t1", "tn")   # UDP; TCP with one connection for all calls; one per call

    def _sipp_common(self, transport: str = "u1") -> list[str]:
        if transport not in self.SIPP_TRANSPORTS:
            raise RigError(f"sipp transport {transport!r}: one of {self.SIPP_TRANSPORTS}")
        self._cp += 1
        self._mp += 4
        return ["sipp", "-t", transport, "-nostdin", "-cp", str(self._cp), "-mp", str(self._mp),
                "-max_recv_loops", "1000", "-nd"]

    # ---------------------------------------------------------------- backends
    BACKEND_VARIANTS = {"ok": "uas.xml", "503": "uas_503.xml", "503-invite": "uas_503_invite.xml"}

    def start_backend(self, ip: str, variant: str = "ok", port: int = SIP_PORT, retry_after: int = 20) -> Backend:
        """A sipp UAS on ip:port answering everything; variant '503' answers
        OPTIONS, REGISTER and new INVITEs with 503 but keeps in-dialog
        requests (BYE) answered, like an overloaded server keeps its dialogs;
        variant '503-invite' rejects only new INVITEs (503 with Retry-After:
        retry_after) and answers OPTIONS with 200, so probes see it healthy."""
        if variant not in self.BACKEND_VARIANTS:
            raise RigError(f"backend variant {variant!r}: one of {sorted(self.BACKEND_VARIANTS)}")
        b = self.backends.get(ip) or Backend(ip, port, variant)
        if b.proc and b.proc.alive():
            self.stop(b.proc)
        if b.log_file:
            b.old_logs.append(b.log_file)
        b.variant = variant
        scenario = self.BACKEND_VARIANTS[variant]
        self._seq += 1
        b.log_file = self.workdir / f"backend-{ip}-{self._seq}.calls"
        argv = self._sipp_common() + [
            "-sf", str(SCENARIOS / scenario), "-i", ip, "-p", str(port),
            "-trace_logs", "-log_file", str(b.log_file), "-trace_err",
            "-error_file", str(self.workdir / f"backend-{ip}-{self._seq}.errors")]
        if variant == "503-invite":
            argv += ["-key", "retry_after", str(retry_after)]
        b.proc = self.spawn(f"uas-{ip}-{variant}", self.ns_back, argv)
        self.backends[ip] = b
        return b

    def kill_backend(self, ip: str) -> None:
        b = self.backends[ip]
        self.stop(b.proc, signal.SIGKILL)

    def wait_backends_ready(self, timeout: float = 10) -> None:
        """Each backend UAS socket is bound (ss in the backends namespace)."""
        deadline = time.monotonic() + timeout
        want = {b.addr for b in self.backends.values() if b.proc and b.proc.alive()}
        while time.monotonic() < deadline:
            out = sh("ss", "-uln", ns=self.ns_back, check=False)
            have = {line.split()[3] for line in out.splitlines()[1:] if len(line.split()) > 3}
            if want <= have:
                return
            for b in self.backends.values():
                if b.proc and not b.proc.alive() and b.addr in want:
                    raise RigError(f"backend {b.addr} exited: {b.proc.log.read_text(errors='replace')[-500:]}")
            time.sleep(0.1)
        raise RigError(f"backends not listening after {timeout}s: {sorted(want - have)}")

    # ---------------------------------------------------------------- clients
    def start_uac(self, scenario: str, target: str, src_ip: str, calls: int, rate: float,
                  pause_ms: int = 1000, limit: int = 50, port: int | None = None,
                  name: str | None = None, timeout_s: int = 60, transport: str = "u1") -> SippRun:
        """A sipp UAC playing uac_<scenario>.xml to target. transport: u1
        (UDP), t1 (TCP, one connection for all calls) or tn (TCP, a
        connection per call)."""
        self._seq += 1
        name = name or f"uac-{scenario}-{src_ip}"
        stat = self.workdir / f"{self._seq:02d}-{name}.csv"
        argv = self._sipp_common(transport) + [
            "-sf", str(SCENARIOS / f"uac_{scenario}.xml"), target, "-i", src_ip,
            "-m", str(calls), "-r", str(rate), "-l", str(limit), "-d", str(pause_ms),
            "-timeout", f"{timeout_s}s", "-timeout_error", "-recv_timeout", "8000",
            "-trace_stat", "-stf", str(stat), "-fd", "1",
            "-trace_err", "-error_file", str(self.workdir / f"{self._seq:02d}-{name}.errors")]
        if port:
            argv += ["-p", str(port)]
        if transport != "u1":
            argv += ["-max_socket", str(max(200, 4 * limit))]
        proc = self.spawn(name, self.ns_client, argv)
        return SippRun(self, name, proc, stat, calls)

    # ------------------------------------------------------------------- DNS
    def write_dns(self, records: dict) -> Path:
        """records: {"srv": [(name, target, port, priority, weight)], "a": [(name, ip)], "ttl": s}"""
        conf = self.workdir / "dnsmasq.conf"
        lines = [f"# siplb e2e zone, rewritten live by the rig"]
        for name, target, port, prio, weight in records.get("srv", []):
            lines.append(f"srv-host={name},{target},{port},{prio},{weight}")
        for name, ip in records.get("a", []):
            lines.append(f"host-record={name},{ip}")
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start_dns(self, records: dict) -> None:
        """dnsmasq in the backends namespace on DNS_IP:53, authoritative-ish
        for the records given, short TTLs (--local-ttl), no upstream."""
        if self.dns_proc:
            self.stop(self.dns_proc)
        conf = self.write_dns(records)
        ttl = int(records.get("ttl", 5))
        argv = ["dnsmasq", "--keep-in-foreground", "--no-daemon", "--conf-file=" + str(conf),
                "--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces",
                "--listen-address=" + DNS_IP, "--except-interface=lo", "--port=53",
                f"--local-ttl={ttl}", f"--auth-ttl={ttl}", "--pid-file=", "--user=root",
                "--log-queries", "--log-facility=-", "--cache-size=0"]
        self.dns_proc = self.spawn("dnsmasq", self.ns_back, argv)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not self.dns_proc.alive():
                raise RigError("dnsmasq exited: " + self.dns_proc.log.read_text(errors="replace")[-400:])
            if f"{DNS_IP}:53" in sh("ss", "-uln", ns=self.ns_back, check=False):
                return
            time.sleep(0.1)
        raise RigError("dnsmasq not listening")

    def update_dns(self, records: dict) -> None:
        """Edits the zone live: rewrite the conf file and restart dnsmasq (saved PID)."""
        self.start_dns(records)

    def dns_query(self, name: str, qtype: str = "SRV", ns: str | None = None) -> list:
        """Minimal stdlib DNS query run from the lb namespace (the resolver's
        view): returns [(ttl, data)] with data (prio, weight, port, target)
        for SRV or the address for A."""
        code = {"A": 1, "SRV": 33}[qtype]
        script = (
            "import socket,struct,sys,json\n"
            f"name={name!r};code={code}\n"
            "q=struct.pack('>HHHHHH',0x5e2e,0x0100,1,0,0,0)+b''.join(bytes([len(p)])+p.encode() for p in name.split('.'))+b'\\0'+struct.pack('>HH',code,1)\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2)\n"
            f"s.sendto(q,({DNS_IP!r},53));r=s.recv(4096)\n"
            "def rn(b,o):\n"
            " out=[]\n"
            " while True:\n"
            "  l=b[o]\n"
            "  if l==0: return '.'.join(out),o+1\n"
            "  if l&0xC0==0xC0:\n"
            "   n,_=rn(b,((l&0x3F)<<8)|b[o+1]); out.append(n); return '.'.join(out),o+2\n"
            "  out.append(b[o+1:o+1+l].decode()); o+=1+l\n"
            "an=struct.unpack('>H',r[6:8])[0]; o=12; _,o=rn(r,o); o+=4; res=[]\n"
            "for _ in range(an):\n"
            " _,o=rn(r,o); t,c,ttl,ln=struct.unpack('>HHIH',r[o:o+10]); o+=10; d=r[o:o+ln]\n"
            " if t==1: res.append([ttl,socket.inet_ntoa(d)])\n"
            " elif t==33: p,w,pt=struct.unpack('>HHH',d[:6]); res.append([ttl,[p,w,pt,rn(r,o+6)[0]]])\n"
            " o+=ln\n"
            "print(json.dumps(res))\n")
        out = sh(sys.executable, "-c", script, ns=ns or self.ns_lb)
        return json.loads(out)

    # ------------------------------------------------------------ checksums
    def checksum_check(self) -> str:
        """Sends one UDP datagram from the client namespace to a VIP and
        captures it with an AF_PACKET socket on ext0 in the lb namespace (what
        net_af_packet sees); returns '' when its IPv4 and UDP checksums are
        complete and valid, else a description of the problem."""
        script = r"""
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("ext0", 0)); s.settimeout(3)
print("ready", flush=True)
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b)//2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return t
end = time.time() + 3
while time.time() < end:
    f = s.recv(2048)
    ip = f[14:]
    if ip[9] != 17 or ip[16:20] != socket.inet_aton(sys.argv[1]): continue
    ihl = (ip[0] & 15) * 4
    if csum(ip[:ihl]) != 0xffff: print("bad ipv4 header checksum"); sys.exit(0)
    udp = ip[ihl:struct.unpack("!H", ip[2:4])[0]]
    if struct.unpack("!H", udp[6:8])[0] == 0: print("udp checksum absent (0)"); sys.exit(0)
    ph = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    print("ok" if csum(ph + udp) == 0xffff else "bad/partial udp checksum"); sys.exit(0)
print("no frame captured")
"""
        vip = VIPS["lund"]
        cap = subprocess.Popen(["ip", "netns", "exec", self.ns_lb, sys.executable, "-c", script, vip],
                               stdout=subprocess.PIPE, text=True)
        try:
            cap.stdout.readline()
            sh(sys.executable, "-c",
               f"import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
               f"s.bind(({CLIENT_IPS[0]!r},0));s.sendto(b'OPTIONS sip:x SIP/2.0\\r\\n\\r\\n',({vip!r},9))",
               ns=self.ns_client)
            out, _ = cap.communicate(timeout=5)
        finally:
            if cap.poll() is None:
                cap.kill()
                cap.wait()
        out = out.strip()
        return "" if out == "ok" else out

    # ------------------------------------------------------------- teardown
    def down(self) -> None:
        for p in reversed(self.procs):
            try:
                self.stop(p, timeout=3)
            except Exception as e:  # keep tearing down
                self.log(f"rig: stopping {p.name}: {e}")
        self.procs.clear()
        if self._is_up:
            self.cleanup_leftovers(self.run_id)
            self._is_up = False
        shutil.rmtree(f"/var/run/dpdk/{self.pfx}", ignore_errors=True)  # siplb's EAL runtime dir

    @staticmethod
    def cleanup_leftovers(run_id: str) -> None:
        """Removes the namespaces and root-namespace links of one run id."""
        pfx = f"{PREFIX}{run_id}"
        r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            ns = line.split()[0] if line.split() else ""
            if ns.startswith(pfx + "-"):
                # processes still inside (ours, from a crashed run) are killed by PID
                pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
                for pid in pids:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        r = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            parts = line.split(":")
            if len(parts) > 1:
                dev = parts[1].strip().split("@")[0]
                if dev.startswith(pfx) and len(dev) == len(pfx) + 1:
                    subprocess.run(["ip", "link", "del", dev], capture_output=True)

    def leftovers(self) -> list[str]:
        out = []
        r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        out += [l.split()[0] for l in r.stdout.splitlines() if l.startswith(self.pfx + "-")]
        r = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True)
        out += [l.split(":")[1].strip() for l in r.stdout.splitlines()
                if l.split(":")[1].strip().startswith(self.pfx)]
        out += [p.name for p in self.procs if p.alive()]
        return out

    def __enter__(self):
        self._old = {}
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._on_signal)
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def _on_signal(self, signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc):
        self.down()
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


def calls_per_backend(backends: list[Backend]) -> tuple[dict, list[str]]:
    """Which backend got each Call-ID. Returns ({call_id: {backend: [methods]}},
    problems) where a problem is a Call-ID seen on more than one backend."""
    seen: dict[str, dict[str, list[str]]] = {}
    for b in backends:
        for cid, method in b.received():
            seen.setdefault(cid, {}).setdefault(b.addr, []).append(method)
    split = [cid for cid, where in seen.items() if len(where) > 1]
    return seen, split


_CAPTURE = r"""
import json, socket, struct, sys, time
dev, seconds, out = sys.argv[1], float(sys.argv[2]), open(sys.argv[3], "w")
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((dev, 0)); s.settimeout(0.2)
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b)//2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return t
print("ready", flush=True)
end = time.time() + seconds
while time.time() < end:
    try:
        f, meta = s.recvfrom(4096)
    except socket.timeout:
        continue
    if meta[2] == socket.PACKET_OUTGOING: continue
    ip = f[14:]
    if len(ip) < 28 or ip[9] != 17: continue
    ihl = (ip[0] & 15) * 4
    udp = ip[ihl:struct.unpack("!H", ip[2:4])[0]]
    sp, dp, ln, ck = struct.unpack("!HHHH", udp[:8])
    ph = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    out.write(json.dumps({"src": socket.inet_ntoa(ip[12:16]), "dst": socket.inet_ntoa(ip[16:20]),
        "sport": sp, "dport": dp, "ttl": ip[8], "ipok": csum(ip[:ihl]) == 0xffff,
        "udpok": ck == 0 or csum(ph + udp) == 0xffff, "head": udp[8:24].decode("latin-1")}) + "\n")
    out.flush()
"""


class Capture:
    """Bounded AF_PACKET capture of incoming IPv4/UDP frames on one device of
    one namespace (e.g. b0: what siplb delivered to the backends), with
    independent IPv4/UDP checksum verification of each frame."""

    def __init__(self, rig: Rig, ns: str, dev: str, seconds: float):
        rig._seq += 1
        self.file = rig.workdir / f"{rig._seq:02d}-capture-{dev}.jsonl"
        self.proc = rig.spawn(f"capture-{dev}", ns, [sys.executable, "-u", "-c", _CAPTURE, dev,
                                                     str(seconds), str(self.file)])
        self.rig = rig
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "ready" not in self.proc.log.read_text(errors="replace"):
            time.sleep(0.05)

    def frames(self) -> list[dict]:
        self.rig.stop(self.proc, signal.SIGTERM, timeout=3)
        if not self.file.exists():
            return []
        return [json.loads(l) for l in self.file.read_text().splitlines() if l.strip()]


_FRAME_CAPTURE = r"""
import json, socket, sys, time
dev, seconds, limit, out = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), open(sys.argv[4], "w")
types = (b"\x08\x00", b"\x86\xdd") + ((b"\x08\x06",) if sys.argv[5] == "arp" else ())
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
s.bind((dev, 0)); s.settimeout(0.2)
print("ready", flush=True)
end, n = time.time() + seconds, 0
while time.time() < end and n < limit:
    try:
        f, meta = s.recvfrom(65536)
    except socket.timeout:
        continue
    if meta[2] == socket.PACKET_OUTGOING or len(f) < 14 or f[12:14] not in types:
        continue
    out.write(json.dumps({"t": time.time(), "frame": f.hex()}) + "\n")
    out.flush()
    n += 1
"""


class FrameCapture:
    """Bounded AF_PACKET capture (time and frame count) of every incoming
    IPv4 and IPv6 frame (and ARP with arp=True) on one device of one
    namespace, stored raw (hex) so the caller can check headers, fragments
    and checksums itself."""

    def __init__(self, rig: Rig, ns: str, dev: str, seconds: float, limit: int = 20000, arp: bool = False):
        rig._seq += 1
        self.file = rig.workdir / f"{rig._seq:02d}-frames-{dev}.jsonl"
        self.proc = rig.spawn(f"frames-{dev}", ns, [sys.executable, "-u", "-c", _FRAME_CAPTURE, dev,
                                                    str(seconds), str(limit), str(self.file),
                                                    "arp" if arp else "-"])
        self.rig = rig
        deadline = time.monotonic() + 5
        while "ready" not in self.proc.log.read_text(errors="replace"):
            if not self.proc.alive() or time.monotonic() > deadline:
                raise RigError(f"frame capture on {dev} not ready: {self.proc.log.read_text(errors='replace')[-300:]}")
            time.sleep(0.05)

    def frames(self) -> list[bytes]:
        self.rig.stop(self.proc, signal.SIGTERM, timeout=3)
        if not self.file.exists():
            return []
        return [bytes.fromhex(json.loads(l)["frame"]) for l in self.file.read_text().splitlines() if l.strip()]


def send_crlf_keepalives(rig: Rig, src_ip: str, sport: int, target: str, count: int,
                         interval: float = 0.05) -> None:
    """RFC 5626 style CRLF keepalives (UDP "\\r\\n\\r\\n") from one client address:port."""
    host, port = target.rsplit(":", 1)
    sh(sys.executable, "-c",
       "import socket,time\n"
       f"s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(({src_ip!r},{sport}))\n"
       f"for _ in range({count}):\n s.sendto(b'\\r\\n\\r\\n',({host!r},{int(port)}));time.sleep({interval})\n",
       ns=rig.ns_client, timeout=count * interval + 10)
