#!/usr/bin/env python3
"""Soak and chaos (issue 19): minutes of continuous traffic through siplb
while DNS, backends and the operator keep changing things, with every frame
accounted for. Run by scripts/soak (scripts/test: 2 minutes, and a shorter
run against the ASan/UBSan daemon with --no-report).

  soak.py [--minutes N] [--seed S] [--run-id ID] [--no-report] [--json FILE]

Traffic: three sipp UACs (calls of 0.5-25 s, uniform, to both pools),
plus hostile datagrams mixed in. Changes at random intervals (seeded, logged):
DNS add/remove/weight/TTL/server restart, backend kill+restart, 503 with
Retry-After, silence (SIGSTOP), weight changes, add/drain/remove, valid and
invalid reloads, a flood of distinct Call-IDs from one source; control
clients poll status/stats/metrics all the time; one phase does 1000 reloads
in a row under traffic.

Checks (each printed as a row of the closing table, any violation fails):
conservation per worker and per backend (siplb's counters against a capture
on the backends' wire), no call split, no leak (RSS, fds, mbufs, snapshots),
bounded affinity state, reaction timings, clean exit. Exit 77 (skip) only
when network namespaces cannot be created."""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))
import siplb_e2e as E  # noqa: E402
import siplb_rig as R  # noqa: E402

# Affinity sized for the dialogs (about 7 calls/s for DIALOG_IDLE_S: ~300
# entries, 2048 slots), small against the flood, which offers 10x the
# capacity in distinct Call-IDs (OPTIONS: transaction entries, which expire
# sooner than dialogs and so are evicted first).
AFFINITY_CAPACITY = 2048
DIALOG_IDLE_S = 40               # > the longest call (25 s): entries of ended calls free their slots
TRANSACTION_IDLE_S = 8           # < DIALOG_IDLE_S: the flood's entries are the ones evicted
FLOOD_CALL_IDS = 10 * AFFINITY_CAPACITY
RELOADS_IN_A_ROW = 1000
SPARE_DNS = 4                    # b4: added to / removed from the lund SRV set
SPARE_STATIC = 5                 # b5: siplbctl add / drain / remove on trunk
KILLED = 1                       # b1 (lund): killed and restarted
OVERLOADED = 3                   # b3 (trunk): answers 503 + Retry-After for a while
SILENT = 0                       # b0 (lund): SIGSTOP'd for a while
MAX_CALL_S = 25                  # uac_call_random.xml: longest call
HEALTH_DOWN_BUDGET_S = E.HEALTH_WINDOW_S + 1.0
HEALTH_UP_BUDGET_S = (E.HEALTH["interval_ms"] * 1.1 * E.HEALTH["up_after"] + E.HEALTH["timeout_ms"]) / 1000 + 1.0
DNS_BUDGET_S = E.DNS_TTL + 2.5   # the DNS TTL in force when the change is made, + 2.5 s (balanced_dns_add)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------- control
class Ctl:
    """The daemon's control socket, spoken directly (one JSON line each way):
    a unix socket path works from any network namespace, and pollers stay
    cheap enough to run all the time."""

    def __init__(self, path: Path):
        self.path = str(path)

    def call(self, cmd: str, timeout: float = 10, **fields) -> dict:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.path)
            s.sendall((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
        finally:
            s.close()
        return json.loads(buf.split(b"\n", 1)[0])

    def ok(self, cmd: str, **fields) -> dict:
        r = self.call(cmd, **fields)
        if not r.get("ok"):
            raise R.RigError(f"control {cmd} {fields}: {r}")
        return r.get("result", {})


def backend_states(ctl: Ctl, pool: str) -> dict:
    """{ip: entry} from the backends command."""
    try:
        r = ctl.call("backends", pool=pool)
    except (OSError, ValueError):
        return {}
    items = r.get("result", {}).get("backends", []) if r.get("ok") else []
    out = {}
    for b in items:
        addr = str(b.get("address", ""))
        out[addr.rsplit(":", 1)[0].strip("[]")] = b
    return out


def is_active(entry: dict) -> bool:
    return bool(entry) and str(entry.get("state")) in ("active", "up")


# ---------------------------------------------------------- wire capture
_COUNT_CAPTURE = r"""
import json, signal, socket, struct, sys
dev, out, clients = sys.argv[1], sys.argv[2], set(sys.argv[3].split(","))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
s.bind((dev, 0)); s.settimeout(0.2)
counts, stop = {}, [False]
signal.signal(signal.SIGTERM, lambda *a: stop.__setitem__(0, True))
print("ready", flush=True)
PACKET_STATISTICS = 6
drops = 0
while not stop[0]:
    try:
        f, meta = s.recvfrom(256)
    except socket.timeout:
        continue
    except InterruptedError:
        continue
    if meta[2] == socket.PACKET_OUTGOING or len(f) < 34 or f[23] != 17:
        continue
    if struct.unpack("!H", f[20:22])[0] & 0x1FFF:   # later fragments: one datagram, one count
        continue
    if socket.inet_ntoa(f[26:30]) not in clients:
        continue
    dst = socket.inet_ntoa(f[30:34])
    counts[dst] = counts.get(dst, 0) + 1
st = s.getsockopt(263, PACKET_STATISTICS, 8)   # SOL_PACKET: tp_packets, tp_drops (cumulative)
drops = struct.unpack("II", st)[1]
json.dump({"counts": counts, "capture_drops": drops}, open(out, "w"))
"""


class CountCapture:
    """Counts, on one device, the IPv4/UDP datagrams from the client
    addresses per destination (what siplb delivered to each backend), with
    the capture socket's own drop count so a lossy capture cannot pass."""

    def __init__(self, rig: R.Rig, ns: str, dev: str):
        self.rig = rig
        self.file = rig.workdir / f"count-capture-{dev}.json"
        self.proc = rig.spawn(f"count-{dev}", ns, [sys.executable, "-u", "-c", _COUNT_CAPTURE, dev, str(self.file),
                                                    ",".join(R.CLIENT_IPS)])
        deadline = time.monotonic() + 5
        while "ready" not in self.proc.log.read_text(errors="replace"):
            if not self.proc.alive() or time.monotonic() > deadline:
                raise R.RigError(f"capture on {dev} not ready: {self.proc.log.read_text(errors='replace')[-300:]}")
            time.sleep(0.05)

    def result(self) -> dict:
        self.rig.stop(self.proc, signal.SIGTERM, timeout=5)
        return json.loads(self.file.read_text()) if self.file.exists() else {"counts": {}, "capture_drops": -1}


# ------------------------------------------------------------ hostile input
_HOSTILE = r"""
import random, socket, struct, sys, time
kind, vip, src, n, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(seed)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 5099 if kind == "flood" else 0))
sent = 0
if kind == "garbage":
    for i in range(n):
        if i % 3 == 0:
            p = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 300)))
        elif i % 3 == 1:   # a request cut before the end of its headers
            p = (f"INVITE sip:x@{vip} SIP/2.0\r\nVia: SIP/2.0/UDP {src}:5099;branch=z9hG4bK{i}\r\n"
                 f"Call-ID: cut-{seed}-{i}\r\nCSeq: 1 INV").encode()
        else:              # start line only / wrong protocol
            p = rnd.choice([b"\r\n", b"HTTP/1.1 200 OK\r\n\r\n", b"SIP/2.0\r\n\r\n", b"\x00\x01\x00\x00"])
        s.sendto(p, (vip, 5060)); sent += 1
        time.sleep(0.002)
elif kind == "oversize":   # above the 1500-byte MTU: the client kernel fragments it
    for i in range(n):
        pad = "X" * 2600
        p = (f"OPTIONS sip:{vip} SIP/2.0\r\nVia: SIP/2.0/UDP {src}:5099;branch=z9hG4bKbig{seed}{i}\r\n"
             f"From: <sip:soak@{src}>;tag=b{i}\r\nTo: <sip:{vip}>\r\nCall-ID: big-{seed}-{i}\r\nCSeq: 1 OPTIONS\r\n"
             f"X-Pad: {pad}\r\nContent-Length: 0\r\n\r\n").encode()
        s.sendto(p, (vip, 5060)); sent += 1
        time.sleep(0.05)
elif kind == "fragments":  # first fragments whose rest never comes
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for i in range(n):
        udp = struct.pack("!HHHH", 5099, 5060, 2008, 0) + b"F" * 1472
        ident = rnd.getrandbits(16)
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0x2000, 64, 17, 0,
                          socket.inet_aton(src), socket.inet_aton(vip))
        r.sendto(hdr + udp, (vip, 0)); sent += 1
        time.sleep(0.01)
elif kind == "flood":      # distinct Call-IDs from one address:port, as fast as it goes (bounded)
    for i in range(n):
        p = (f"OPTIONS sip:{vip} SIP/2.0\r\nVia: SIP/2.0/UDP {src}:5099;branch=z9hG4bKfl{seed}x{i}\r\n"
             f"Max-Forwards: 70\r\nFrom: <sip:flood@{src}>;tag=f{i}\r\nTo: <sip:{vip}>\r\n"
             f"Call-ID: flood-{seed}-{i}@{src}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
        s.sendto(p, (vip, 5060)); sent += 1
        if i % 50 == 49:
            time.sleep(0.02)
print(sent)
"""


def hostile(rig: R.Rig, kind: str, n: int, seed: int, vip: str = R.VIPS["lund"]) -> int:
    out = R.sh(sys.executable, "-c", _HOSTILE, kind, vip, R.CLIENT_IPS[2], str(n), str(seed), ns=rig.ns_client,
               timeout=120)
    return int(out.strip() or 0)


# ------------------------------------------------------------------ probes
def proc_sample(pid: int) -> dict:
    rss = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        # The pollers' control and /metrics connections come and go several
        # times a second (under ASan often one is open at any given read):
        # the fewest of a few reads 25 ms apart is the daemon's own count.
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        for _ in range(7):
            time.sleep(0.025)
            fds = min(fds, len(os.listdir(f"/proc/{pid}/fd")))
    except FileNotFoundError:
        return {"rss_kb": 0, "fds": 0}
    return {"rss_kb": rss, "fds": fds}


class Soak:
    def __init__(self, args, work: Path):
        self.args = args
        self.work = work
        self.rnd = random.Random(args.seed)
        self.minutes = args.minutes
        self.duration = args.minutes * 60
        self.rig = R.Rig(work, n_backends=4, spare_backends=2, run_id=args.run_id)
        self.ttl = self.ttl_before = E.DNS_TTL
        self.weights = dict(E.LUND_WEIGHTS)      # lund SRV weights in force
        self.failures: list[str] = []
        self.events: list[dict] = []             # every change applied
        self.samples: list[dict] = []            # leak probes
        self.killed_logs: set[Path] = set()      # logs of backend processes that were killed
        self.down_call_ids: set[str] = set()     # calls of a backend while health had it down (silent)
        self.backend_sent: dict = {}             # (pool, backend) -> packets_to, last seen (removed ones vanish)
        self.poll_stats = {"requests": 0, "errors": 0, "last_error": ""}
        self.stop_flag = threading.Event()
        self.pending: list[tuple[float, str, callable]] = []
        self.chosen: set[str] = set()
        self.sent_lock = threading.Lock()
        self.daemon_pid = 0
        self.t0 = 0.0

    # ------------------------------------------------------------ helpers
    def now(self) -> float:
        return time.monotonic() - self.t0

    def fail(self, text: str) -> None:
        log("VIOLATION: " + text)
        self.failures.append(text)

    def event(self, kind: str, detail: str = "", reaction_s: float | None = None, budget_s: float | None = None,
              ok: bool = True) -> None:
        e = {"t": round(self.now(), 1), "kind": kind, "detail": detail, "ok": ok}
        if reaction_s is not None:
            e["reaction_s"] = round(reaction_s, 2)
            e["budget_s"] = round(budget_s, 2)
            e["ok"] = ok and reaction_s <= budget_s
        self.events.append(e)
        log(f"change {kind} {detail}" + (f" reaction {reaction_s:.2f}s (budget {budget_s:.2f}s)"
                                         if reaction_s is not None else "") + ("" if e["ok"] else "  <-- FAILED"))

    def wait_state(self, pool: str, ip: str, want, budget: float) -> float | None:
        """Seconds until want(entry) holds for the backend (None if not within budget + 3 s)."""
        t = time.monotonic()
        while time.monotonic() - t < budget + 3:
            if want(backend_states(self.ctl, pool).get(ip, {})):
                return time.monotonic() - t
            time.sleep(0.1)
        return None

    def timed(self, kind: str, detail: str, pool: str, ip: str, want, budget: float) -> None:
        took = self.wait_state(pool, ip, want, budget)
        self.event(kind, detail, took if took is not None else budget + 3, budget, ok=took is not None)

    def later(self, delay: float, name: str, fn) -> None:
        self.pending.append((time.monotonic() + delay, name, fn))

    def zone(self) -> dict:
        return {"ttl": self.ttl,
                "srv": [(E.LUND_SRV, f"b{i}.lund.example.net", R.SIP_PORT, 10, w) for i, w in self.weights.items()],
                "a": [(f"b{i}.lund.example.net", R.backend_ip(i)) for i in self.weights]}

    def config(self, trunk_weight: int = 1, broken: bool = False) -> str:
        text = E.config_text(self.rig, framesz=4096)
        text = text.replace("workers = 1\n", f"workers = 1\naffinity_capacity = {AFFINITY_CAPACITY}\n", 1)
        for pool in ("lund", "trunk"):
            text = text.replace(f'name = "{pool}"\n', f'name = "{pool}"\ndialog_idle_s = {DIALOG_IDLE_S}\n'
                                f'transaction_idle_s = {TRANSACTION_IDLE_S}\n', 1)
        if trunk_weight != 1:
            text = text.replace(f'address = "{R.backend_ip(E.TRUNK[1])}:5060", weight = 1',
                                f'address = "{R.backend_ip(E.TRUNK[1])}:5060", weight = {trunk_weight}')
        if broken:
            text += "\n[[pool]]\nname = \"lund\"\nlisten = [\"not-an-address\"]\n"
        return text

    # ------------------------------------------------------------ changes
    def ch_dns_add(self):
        if SPARE_DNS in self.weights:
            return self.ch_dns_remove()
        self.weights[SPARE_DNS] = 1
        budget = self.dns_budget()
        self.rig.update_dns(self.zone())
        self.timed("dns_add", f"b{SPARE_DNS} into the SRV set", "lund", R.backend_ip(SPARE_DNS), is_active, budget)

    def ch_dns_remove(self):
        if SPARE_DNS not in self.weights:
            return self.ch_dns_add()
        del self.weights[SPARE_DNS]
        budget = self.dns_budget()
        self.rig.update_dns(self.zone())
        self.timed("dns_remove", f"b{SPARE_DNS} out of the SRV set (drains)", "lund", R.backend_ip(SPARE_DNS),
                   lambda e: not is_active(e), budget)

    def dns_budget(self) -> float:
        # siplb asks again when the answer it holds expires: under the TTL
        # served before the latest TTL change, if that was longer.
        return max(self.ttl, self.ttl_before) + 2.5

    def ch_dns_weight(self):
        self.weights[0] = 1 if self.weights[0] == 2 else 2
        self.rig.update_dns(self.zone())
        self.event("dns_weight", f"b0 SRV weight {self.weights[0]}")

    def ch_dns_ttl(self):
        self.ttl_before, self.ttl = self.ttl, 2 if self.ttl != 2 else 4
        self.rig.update_dns(self.zone())
        self.event("dns_ttl", f"TTL {self.ttl}s")

    def ch_dns_restart(self):
        self.rig.stop(self.rig.dns_proc)
        self.rig.dns_proc = None
        down_s = self.rnd.uniform(2, 6)
        self.event("dns_stop", f"dnsmasq stopped for {down_s:.1f}s")

        def restart():
            before = {ip for ip, e in backend_states(self.ctl, "lund").items() if is_active(e)}
            self.rig.start_dns(self.zone())
            self.event("dns_start", f"dnsmasq back; lund kept {len(before)} active backends while it was away",
                       ok=len(before) >= 2)
        self.later(down_s, "dns_start", restart)

    def ch_kill(self):
        b = self.rig.backends[R.backend_ip(KILLED)]
        if not (b.proc and b.proc.alive()):
            return
        self.rig.kill_backend(b.ip)
        self.killed_logs.add(b.log_file)
        self.timed("kill", f"b{KILLED} SIGKILL", "lund", b.ip, lambda e: not is_active(e), HEALTH_DOWN_BUDGET_S)

        def restart():
            self.rig.start_backend(b.ip)
            self.rig.wait_backends_ready()
            self.timed("restart", f"b{KILLED} back", "lund", b.ip, is_active, HEALTH_UP_BUDGET_S)
        self.later(self.rnd.uniform(2, 6), "restart", restart)

    def ch_overload(self):
        ip = R.backend_ip(OVERLOADED)
        if self.rig.backends[ip].variant != "ok":
            return
        self.rig.start_backend(ip, "503", retry_after=5)
        self.rig.wait_backends_ready()
        self.timed("503", f"b{OVERLOADED} answers 503 Retry-After: 5", "trunk", ip, lambda e: not is_active(e),
                   HEALTH_DOWN_BUDGET_S)

        def recover():
            self.rig.start_backend(ip, "ok")
            self.rig.wait_backends_ready()
            # Retry-After holds it out up to 5 s after the last 503.
            self.timed("503_recover", f"b{OVERLOADED} answers 200 again", "trunk", ip, is_active,
                       HEALTH_UP_BUDGET_S + 5)
        self.later(self.rnd.uniform(3, 6), "503_recover", recover)

    def ch_silent(self):
        b = self.rig.backends[R.backend_ip(SILENT)]
        if not (b.proc and b.proc.alive()):
            return
        os.kill(b.proc.popen.pid, signal.SIGSTOP)
        log_at_stop = b.log_file
        self.timed("silent", f"b{SILENT} SIGSTOP", "lund", b.ip, lambda e: not is_active(e), HEALTH_DOWN_BUDGET_S)

        def wake():
            os.kill(b.proc.popen.pid, signal.SIGCONT)
            self.timed("silent_end", f"b{SILENT} SIGCONT", "lund", b.ip, is_active, HEALTH_UP_BUDGET_S)
            # Health took it out (as a killed one): the calls it had, and
            # those queued in its socket meanwhile, may move. Those are the
            # Call-IDs its log has once it has worked through the queue.
            time.sleep(0.3)
            self.down_call_ids |= call_ids_in(log_at_stop)
        self.later(self.rnd.uniform(1, 4), "silent_end", wake)

    def ch_weight(self):
        w = self.rnd.choice([0, 2, 3, 1])
        r = self.ctl.call("weight", pool="trunk", backend=f"{R.backend_ip(E.TRUNK[0])}:5060", weight=w)
        self.event("ctl_weight", f"trunk b{E.TRUNK[0]} weight {w}", ok=bool(r.get("ok")) or self._note(r))
        if w == 0:
            self.later(3, "ctl_weight_back", lambda: self.ctl.call(
                "weight", pool="trunk", backend=f"{R.backend_ip(E.TRUNK[0])}:5060", weight=1))

    def _note(self, r) -> bool:
        log(f"  answer: {r}")
        return False

    def ch_add_drain_remove(self):
        ip = R.backend_ip(SPARE_STATIC)
        addr = f"{ip}:5060"
        if ip in backend_states(self.ctl, "trunk"):
            return
        r = self.ctl.call("add", pool="trunk", backend=addr, weight=1)
        if not r.get("ok"):
            self.event("ctl_add", addr, ok=self._note(r))
            return
        self.timed("ctl_add", f"trunk + b{SPARE_STATIC}", "trunk", ip, is_active, HEALTH_UP_BUDGET_S)

        def drain():
            r = self.ctl.call("drain", pool="trunk", backend=addr)
            self.event("ctl_drain", f"trunk b{SPARE_STATIC}", ok=bool(r.get("ok")) or self._note(r))
            # Its dialogs end within the longest call; only then is it removed.
            self.later(MAX_CALL_S + 3, "ctl_remove", remove)

        def remove():
            self.note_backend_counters(self.ctl.ok("stats"))
            r = self.ctl.call("remove", pool="trunk", backend=addr)
            self.event("ctl_remove", f"trunk b{SPARE_STATIC} after its drain", ok=bool(r.get("ok")) or self._note(r))
        self.later(self.rnd.uniform(5, 10), "ctl_drain", drain)

    def ch_reload(self):
        self.trunk_weight = 2 if getattr(self, "trunk_weight", 1) == 1 else 1
        self.daemon.config.write_text(self.config(self.trunk_weight))
        r = self.ctl.call("reload", timeout=20)
        self.event("reload", f"trunk b{E.TRUNK[1]} weight {self.trunk_weight}", ok=bool(r.get("ok")) or self._note(r))

    def ch_bad_reload(self):
        self.daemon.config.write_text(self.config(getattr(self, "trunk_weight", 1), broken=True))
        r = self.ctl.call("reload", timeout=20)
        self.daemon.config.write_text(self.config(getattr(self, "trunk_weight", 1)))
        self.event("reload_invalid", "refused, old config kept", ok=not r.get("ok"))

    def ch_garbage(self):
        n = hostile(self.rig, "garbage", 150, self.rnd.getrandbits(16))
        self.event("hostile_garbage", f"{n} truncated/garbage datagrams")

    def ch_oversize(self):
        n = hostile(self.rig, "oversize", 5, self.rnd.getrandbits(16))
        self.event("hostile_oversize", f"{n} datagrams of ~2.8 kB (over the MTU)")

    def ch_fragments(self):
        n = hostile(self.rig, "fragments", 20, self.rnd.getrandbits(16))
        self.event("hostile_fragments", f"{n} first fragments never completed")

    def ch_flood(self):
        n = hostile(self.rig, "flood", FLOOD_CALL_IDS, self.rnd.getrandbits(16))
        self.flood_sent = getattr(self, "flood_sent", 0) + n
        self.event("flood", f"{n} OPTIONS with distinct Call-IDs from {R.CLIENT_IPS[2]}:5099")

    # change -> the follow-up it schedules (while pending, it is not chosen again)
    FOLLOW_UP = {"ch_dns_restart": "dns_start", "ch_kill": "restart", "ch_overload": "503_recover",
                 "ch_silent": "silent_end", "ch_add_drain_remove": "ctl_remove", "ch_weight": "ctl_weight_back"}
    CHANGES = ["ch_dns_add", "ch_dns_weight", "ch_dns_ttl", "ch_dns_restart", "ch_dns_remove", "ch_kill", "ch_overload",
               "ch_silent", "ch_weight", "ch_add_drain_remove", "ch_reload", "ch_bad_reload", "ch_garbage",
               "ch_oversize", "ch_fragments", "ch_flood"]

    # ------------------------------------------------------------ background
    def note_backend_counters(self, stats: dict) -> None:
        """Backend counters persist, but `stats` lists only the backends of
        the current snapshot: a removed backend's count is its last one seen."""
        with self.sent_lock:
            for b in stats.get("backends", []):
                k = (b["pool"], b["backend"])
                self.backend_sent[k] = max(self.backend_sent.get(k, 0), b["traffic"]["packets_to"])

    def poller(self, cmds: list[str]) -> None:
        while not self.stop_flag.is_set():
            for c in cmds:
                try:
                    r = self.ctl.call(c, timeout=10)
                    self.poll_stats["requests"] += 1
                    if not r.get("ok"):
                        raise ValueError(str(r)[:200])
                    if c == "stats":
                        self.note_backend_counters(r["result"])
                except (OSError, ValueError) as e:
                    self.poll_stats["errors"] += 1
                    self.poll_stats["last_error"] = f"{c}: {e}"
            time.sleep(0.05)

    def sample(self) -> dict:
        st = self.ctl.ok("status")
        s = {"t": round(self.now(), 1), **proc_sample(self.daemon_pid), "mbufs_in_use": st.get("mbufs_in_use", -1),
             "retired": st.get("snapshots", {}).get("retired", -1), "freed": st.get("snapshots", {}).get("freed", -1),
             "pid": st.get("pid"), "uptime_s": st.get("uptime_s", 0)}
        if s["pid"] != self.daemon_pid or not self.daemon.proc.alive():
            self.fail(f"daemon restarted or gone (pid {s['pid']}, started as {self.daemon_pid})")
        if self.samples and s["uptime_s"] < self.samples[-1]["uptime_s"]:
            self.fail("daemon uptime went backwards: it restarted")
        self.samples.append(s)
        return s

    # --------------------------------------------------------------- phases
    def reload_storm(self) -> None:
        before = self.sample()
        t = time.monotonic()
        ok = 0
        for i in range(self.args.reloads):
            self.daemon.config.write_text(self.config(2 if i % 2 == 0 else 1))
            r = self.ctl.call("reload", timeout=20)
            ok += 1 if r.get("ok") else 0
        self.trunk_weight = 1
        took = time.monotonic() - t
        time.sleep(1)
        after = self.sample()
        self.storm = {"reloads": self.args.reloads, "ok": ok, "seconds": round(took, 1),
                      "freed": after["freed"] - before["freed"], "retired_after": after["retired"],
                      "rss_kb": (before["rss_kb"], after["rss_kb"]), "fds": (before["fds"], after["fds"])}
        self.event("reload_storm", f"{ok}/{self.args.reloads} reloads ok in {took:.1f}s, "
                                   f"{self.storm['freed']} snapshots freed", ok=ok == self.args.reloads)

    def run(self) -> int:
        rig = self.rig
        with rig:
            rig.start_dns(self.zone())
            for i in range(rig.n_backends):
                rig.start_backend(R.backend_ip(i))
            rig.start_backend(R.backend_ip(SPARE_DNS))
            rig.start_backend(R.backend_ip(SPARE_STATIC))
            rig.wait_backends_ready()
            self.daemon = d = E.Daemon(rig, framesz=4096)
            d.config.write_text(self.config())
            d.proc = rig.spawn("siplb", rig.ns_lb, [str(E.daemon_path()), "--config", str(d.config)])
            self.ctl = Ctl(rig.siplb_socket)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if not d.proc.alive():
                    raise R.RigError(f"siplb exited ({d.proc.popen.returncode}): {d.log_tail()}")
                if rig.siplb_socket.exists():
                    try:
                        self.daemon_pid = int(self.ctl.ok("status")["pid"])
                        break
                    except (OSError, ValueError, R.RigError):
                        pass
                time.sleep(0.2)
            else:
                raise R.RigError("siplb control socket not ready")
            want = {"lund": {R.backend_ip(i) for i in E.LUND_WEIGHTS}, "trunk": {R.backend_ip(i) for i in E.TRUNK}}
            deadline = time.monotonic() + 20
            while not all(want[p] <= {ip for ip, e in backend_states(self.ctl, p).items() if is_active(e)}
                          for p in want):
                if time.monotonic() > deadline:
                    raise R.RigError(f"backends not active after 20 s: {backend_states(self.ctl, 'lund')}")
                time.sleep(0.25)
            log(f"siplb pid {self.daemon_pid} up; soak of {self.minutes} min, seed {self.args.seed}, workdir {self.work}")
            cap = CountCapture(rig, rig.ns_back, "b0")
            self.t0 = time.monotonic()
            # Calls start until the longest one still ends inside the run.
            traffic_s = max(10.0, self.duration - MAX_CALL_S)
            uacs = []
            # (pool, client, calls/s): ~7 calls/s, ~2.5 messages/call each way.
            for pool, src, rate in (("lund", R.CLIENT_IPS[0], 4), ("trunk", R.CLIENT_IPS[1], 3)):
                calls = int(rate * traffic_s)
                run = rig.start_uac("call_random", f"{R.VIPS[pool]}:5060", src, calls, rate, limit=400,
                                    name=f"uac-{pool}", timeout_s=int(traffic_s + MAX_CALL_S + 30))
                uacs.append(run)
            pollers = [threading.Thread(target=self.poller, args=(cmds,), daemon=True)
                       for cmds in (["status", "stats"], ["metrics", "status"], ["stats", "backends", "pools"])]
            for p in pollers:
                p.start()
            http = rig.spawn("metrics-http", rig.ns_lb, [sys.executable, "-c", (
                "import time,urllib.request\n"
                "n=e=0\n"
                "while True:\n"
                " try: urllib.request.urlopen('http://127.0.0.1:9560/metrics',timeout=5).read(); n+=1\n"
                " except Exception as x: e+=1; print('error',x,flush=True)\n"
                " time.sleep(0.2)\n")])
            warmup_s = min(30.0, self.duration * 0.2)
            storm_at = self.duration * 0.55
            storm_done = False
            # One flood at a fixed point, so that even a short run fills the
            # affinity table 10 times over (more come at random).
            flood_at = self.duration * 0.35
            flood_done = False
            # Short runs (the sanitizer one) change things more often.
            pace = min(1.0, self.duration / 120)
            changes_from = warmup_s
            next_change = changes_from
            next_sample = 0.0
            deadline = self.duration
            while self.now() < deadline:
                if self.now() >= next_sample:
                    self.sample()
                    next_sample = self.now() + 2
                due = [p for p in self.pending if p[0] <= time.monotonic()]
                for p in due:
                    self.pending.remove(p)
                    p[2]()
                if not storm_done and self.now() >= storm_at:
                    self.reload_storm()
                    storm_done = True
                elif not flood_done and self.now() >= flood_at:
                    self.ch_flood()
                    flood_done = True
                elif self.now() >= next_change and self.now() < deadline - MAX_CALL_S / 2:
                    name = self.choose_change()
                    getattr(self, name)()
                    next_change = self.now() + self.rnd.uniform(0.5, 4.0) * pace
                time.sleep(0.1)
            # Due follow-ups (restarts, recoveries) run even when late.
            for p in sorted(self.pending, key=lambda p: p[0]):
                while time.monotonic() < p[0]:
                    time.sleep(0.1)
                p[2]()
            self.pending.clear()
            log("traffic window over: waiting for the calls in progress")
            results = [u.wait(timeout=MAX_CALL_S + 40) for u in uacs]
            self.stop_flag.set()
            for p in pollers:
                p.join(timeout=15)
            rig.stop(http)
            http_errors = http.log.read_text(errors="replace").count("error")
            time.sleep(2)  # in-flight frames settle
            stats = self.ctl.ok("stats")
            end_sample = self.sample()
            wire = cap.result()
            rc = d.stop()
            self.report(results, stats, wire, rc, http_errors, end_sample)
        left = rig.leftovers()
        if left:
            self.fail(f"left behind: {left}")
        return 0 if not self.failures else 1

    def choose_change(self) -> str:
        # Each kind once early on, then at random; never one whose previous
        # instance is still in progress (a restart or recovery pending).
        busy = {name for _, name, _ in self.pending}
        # A lund backend killed and another silent at once would leave lund
        # under its health panic threshold (backends kept in rotation): one
        # outage at a time, so each reaction can be timed.
        if busy & {"restart", "silent_end"}:
            busy |= {"restart", "silent_end"}
        free = [c for c in self.CHANGES if self.FOLLOW_UP.get(c) not in busy]
        for name in free:
            if name not in self.chosen:
                self.chosen.add(name)
                return name
        return self.rnd.choice(free)

    # ---------------------------------------------------------------- report
    def report(self, results, stats, wire, rc, http_errors, end_sample) -> None:
        rows = []

        def row(check: str, ok: bool, figures: str) -> None:
            rows.append((check, ok, figures))
            if not ok:
                self.fail(f"{check}: {figures}")

        # Nothing lost, per worker.
        for w in stats["workers"]:
            bal = conservation(w)
            row(f"conservation worker {w['worker']}", bal["lhs"] == bal["rhs"],
                f"rx {bal['rx']} + generated {bal['generated']} = tx {bal['tx']} + drops {bal['drops']} + "
                f"to kernel {bal['to_kernel']} + absorbed {bal['absorbed']}  ({bal['lhs']} vs {bal['rhs']})")
        tot = stats["totals"]
        # Nothing lost, per backend.
        self.note_backend_counters(stats)
        sent = {}
        for (pool, addr), n in self.backend_sent.items():
            ip = addr.rsplit(":", 1)[0].strip("[]")
            sent[ip] = sent.get(ip, 0) + n
        got = wire["counts"]
        mism = {ip: (sent.get(ip, 0), got.get(ip, 0)) for ip in set(sent) | set(got) if sent.get(ip, 0) != got.get(ip, 0)}
        row("per backend: counted sent == captured", not mism and wire["capture_drops"] == 0,
            ", ".join(f"{ip.rsplit('.', 1)[1]}:{sent.get(ip, 0)}" for ip in sorted(sent))
            + f"; capture drops {wire['capture_drops']}" + (f"; MISMATCH {mism}" if mism else ""))
        # No call split.
        killed_cids = set(self.down_call_ids)
        for f in self.killed_logs:
            killed_cids |= call_ids_in(f)
        seen, split = R.calls_per_backend(list(self.rig.backends.values()))
        dialogs = [c for c, w in seen.items() if any("INVITE" in ms for ms in w.values())]
        bad = [c for c in split if c not in killed_cids]
        row("no call split", not bad and len(dialogs) > 0,
            f"{len(dialogs)} dialogs, {len(split) - len(bad)} split after their backend was killed or silent "
            f"(allowed), "
            f"{len(bad)} split otherwise" + (f": {bad[:3]}" if bad else ""))
        # No leak.
        warm = [s for s in self.samples if s["t"] >= min(30.0, self.duration * 0.2)]
        first = warm[0] if warm else self.samples[0]
        rss_growth = end_sample["rss_kb"] - max(s["rss_kb"] for s in warm[: max(1, len(warm) // 4)])
        if self.args.sanitizer:
            # ASan's quarantine keeps freed memory resident by design: RSS
            # says nothing there; LeakSanitizer judges leaks at exit (the
            # daemon's exit status, below).
            row("no leak: RSS (not judged: sanitizer build)", True,
                f"{first['rss_kb']} kB after warm-up -> {end_sample['rss_kb']} kB at end")
        else:
            row("no leak: RSS", rss_growth <= 4096,
                f"{first['rss_kb']} kB after warm-up -> {end_sample['rss_kb']} kB at end "
                f"(growth over the first quarter's peak {rss_growth} kB, limit 4096)")
        # Control clients, DNS queries and probes open sockets for a moment:
        # a leak raises the floor, so compare the lowest counts.
        quarter = max(1, len(warm) // 4)
        fd_floor_early = min(s["fds"] for s in warm[:quarter])
        fd_floor_late = min(s["fds"] for s in warm[-quarter:])
        row("no leak: file descriptors", fd_floor_late <= fd_floor_early and end_sample["fds"] <= fd_floor_early + 2,
            f"{first['fds']} after warm-up -> {end_sample['fds']} at end (lowest: {fd_floor_early} in the "
            f"first quarter, {fd_floor_late} in the last)")
        peak_mbufs = max(s["mbufs_in_use"] for s in self.samples)
        row("no leak: mbufs in use", end_sample["mbufs_in_use"] <= first["mbufs_in_use"] + 64,
            f"{first['mbufs_in_use']} after warm-up, peak {peak_mbufs}, {end_sample['mbufs_in_use']} at end (idle)")
        storm = getattr(self, "storm", None)
        row("no leak: snapshots", storm is not None and storm["ok"] == self.args.reloads
            and end_sample["retired"] <= 2 and storm["freed"] >= self.args.reloads // 2,
            f"{end_sample['freed']} freed, {end_sample['retired']} awaiting reclamation; reload storm: "
            + (f"{storm['ok']}/{storm['reloads']} ok in {storm['seconds']}s, {storm['freed']} freed, "
               f"RSS {storm['rss_kb'][0]}->{storm['rss_kb'][1]} kB, fds {storm['fds'][0]}->{storm['fds'][1]}"
               if storm else "not run"))
        # Bounded state.
        evictions = tot["affinity"]["evictions"]
        node = stats.get("node", {})
        flood = getattr(self, "flood_sent", 0)
        row("bounded state", flood >= FLOOD_CALL_IDS and evictions > 0
            and node.get("affinity_entries", 0) <= node.get("affinity_capacity", 0) == AFFINITY_CAPACITY,
            f"{flood} distinct flood Call-IDs vs capacity {node.get('affinity_capacity')}: {evictions} evictions, "
            f"{node.get('affinity_entries')} live entries")
        # Timings.
        timed = [e for e in self.events if "reaction_s" in e]
        slow = [e for e in timed if not e["ok"]]
        by_kind = {}
        for e in timed:
            by_kind.setdefault(e["kind"], []).append(e["reaction_s"])
        row("timings held", not slow and bool(timed),
            "; ".join(f"{k} n={len(v)} max {max(v):.2f}s (budget {next(e['budget_s'] for e in timed if e['kind'] == k):.1f}s)"
                      for k, v in sorted(by_kind.items())) + (f"; SLOW {slow}" if slow else ""))
        failed_changes = [e for e in self.events if not e["ok"] and "reaction_s" not in e]
        row("changes applied as expected", not failed_changes,
            f"{len(self.events)} changes" + (f"; failed {failed_changes}" if failed_changes else ""))
        row("control clients", self.poll_stats["errors"] == 0 and http_errors == 0,
            f"{self.poll_stats['requests']} socket requests, {self.poll_stats['errors']} errors "
            f"{self.poll_stats['last_error']}; /metrics errors {http_errors}")
        # Clean exit.
        restarts = sum(1 for s in self.samples if s["pid"] != self.daemon_pid)
        row("clean exit", rc == 0 and restarts == 0, f"never restarted, exit {rc} on SIGTERM")
        # Traffic figures.
        created = sum(r.created for r in results)
        okc = sum(r.successful for r in results)
        failedc = sum(r.failed for r in results)
        kinds = {}
        for e in self.events:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        summary = {
            "minutes": self.minutes, "seed": self.args.seed,
            "calls": {"created": created, "successful": okc, "failed": failedc},
            "messages": {"rx": tot["traffic"]["rx_packets"], "tx": tot["traffic"]["tx_packets"],
                         "to_backend": tot["traffic"]["to_backend"], "to_client": tot["traffic"]["to_client"]},
            "changes": kinds,
            "conservation": {w["worker"]: conservation(w) for w in stats["workers"]},
            "drops": {k: v for k, v in tot["drops"].items() if v},
            "rss_kb": {"start": self.samples[0]["rss_kb"], "after_warmup": first["rss_kb"],
                       "end": end_sample["rss_kb"]},
            "fds": {"start": self.samples[0]["fds"], "after_warmup": first["fds"], "end": end_sample["fds"]},
            "rows": [{"check": c, "ok": o, "figures": f} for c, o, f in rows],
        }
        (self.work / "soak-summary.json").write_text(json.dumps(summary, indent=1))
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(summary, indent=1))
        if self.args.no_report:
            for c, o, f in rows:
                if not o:
                    print(f"FAIL {c}: {f}")
            return
        print()
        print(f"soak: {self.minutes} min, seed {self.args.seed}, load average {os.getloadavg()[0]:.2f}")
        print(f"calls {created} started, {okc} ok, {failedc} failed (calls on a killed, silent or 503 backend "
              f"may fail); frames rx {tot['traffic']['rx_packets']}, tx {tot['traffic']['tx_packets']}, "
              f"to backends {tot['traffic']['to_backend']}, to clients {tot['traffic']['to_client']}")
        print("changes: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
        print("drops: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["drops"].items())))
        w = max(len(c) for c, _, _ in rows)
        print(f"{'check':{w}}  result  figures")
        for c, o, f in rows:
            print(f"{c:{w}}  {'ok    ' if o else 'FAIL  '}  {f}")


def call_ids_in(log_file: Path | None) -> set:
    if not log_file or not log_file.exists():
        return set()
    return {l.split()[0] for l in log_file.read_text(errors="replace").splitlines() if l.split()}


def conservation(w: dict) -> dict:
    """rx + generated = tx + drops + to kernel + absorbed, for one worker.
    generated: frames the worker built rather than received (ARP/ND
    requests, announcements, fragments it cut, datagrams it reassembled,
    frames from the kernel's TAP, ICMP errors); absorbed: received frames
    whose bytes left inside generated ones (fragments taken into reassembly
    or dropped as duplicates, datagrams handed to the fragmenter)."""
    t, n, f, k, i = w["traffic"], w["neighbor"], w["fragments"], w["kernel_path"], w["icmp"]
    rx = t["rx_packets"]
    # An ICMP error replaces, in place, a datagram already counted as a drop.
    generated = (n["arp_requests"] + n["nd_solicitations"] + n["gratuitous_arps"] + n["unsolicited_nas"]
                 + f["sent"] + f["reassembled"] + k["from_kernel"] + i["errors_sent"])
    tx = t["tx_packets"]
    drops = sum(w["drops"].values())
    # With a kernel TAP, not_for_us drops include the frames handed to it;
    # the rig has none (siplb's own traffic uses kernel sockets).
    to_kernel = k["to_kernel"] + k["dropped"]
    absorbed = f["received"] + f["duplicates"] + f["oversize"]
    return {"rx": rx, "generated": generated, "tx": tx, "drops": drops, "to_kernel": to_kernel,
            "absorbed": absorbed, "lhs": rx + generated, "rhs": tx + drops + to_kernel + absorbed}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=2)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--run-id", default=None, help="namespace prefix suffix (default: pid)")
    ap.add_argument("--no-report", action="store_true", help="print violations only (the ASan run)")
    ap.add_argument("--json", help="also write the summary here")
    ap.add_argument("--reloads", type=int, default=RELOADS_IN_A_ROW, help="reloads in a row under traffic")
    ap.add_argument("--sanitizer", action="store_true", help="ASan/UBSan daemon: RSS is not judged")
    args = ap.parse_args()
    # The control socket is spoken directly: only the daemon is needed (the
    # ASan run builds nothing else).
    if (rc := E.preflight((E.daemon_path(),))) is not None:
        return rc
    work = Path(tempfile.mkdtemp(prefix="siplb-soak-"))
    soak = Soak(args, work)
    try:
        rc = soak.run()
    except R.RigError as e:
        print(f"FAIL: {e}; logs in {work}")
        return 1
    print(("soak passed" if rc == 0 else f"soak FAILED ({len(soak.failures)} violations)") + f"; logs in {work}")
    return rc


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
