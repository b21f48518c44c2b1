#!/usr/bin/env python3
"""Health over TCP (issue 20): a killed backend's connections move after the
health check.

Pool trunk listens on tcp://203.0.113.20:5060 (its UDP VIP is left
unchecked: [pool.health] udp = "off"); its two backends run sipp UASes over
TCP, which siplb checks with SIP OPTIONS over TCP (the pool's default).
  - a client holds 16 TCP connections, each from its own source port, spread
    over both backends (the answer's To-tag names the sipp PID);
  - one backend's sipp is killed by its PID. So that the kernel of the
    backends' namespace (shared by every backend) does not close the
    clients' connections itself, the dead host's packets are blackholed
    first (a policy route for its address): like a crashed host, it answers
    nothing, and only siplb's health check can tell;
  - siplbctl backends shows it down, the detail naming the TCP check;
  - after that, every held connection of the dead backend is sent to the
    survivor, whose kernel resets it (if siplb still sent it to the dead
    host, the request would time out); reconnecting from the same source
    port lands on the survivor; new connections all go there; the survivor's
    own connections keep being answered.
Exit 77 (skip) only when network namespaces cannot be created."""
import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))
import siplb_e2e as E  # noqa: E402
import siplb_rig as R  # noqa: E402

VIP = R.VIPS["trunk"]
BLACKHOLE_TABLE = "177"


# ---------------------------------------------------------------- the client
def _options(src: str, port: int, n: int) -> bytes:
    return (f"OPTIONS sip:ping@{VIP} SIP/2.0\r\nVia: SIP/2.0/TCP {src}:{port};branch=z9hG4bK{port}x{n}\r\n"
            f"From: <sip:c@example.net>;tag={port}\r\nTo: <sip:ping@{VIP}>\r\nCall-ID: tcph-{port}-{n}\r\n"
            f"CSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


def _answer(conn: socket.socket) -> str:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            raise EOFError("closed")
        buf += chunk
    m = re.search(rb"\r\nTo:[^\r]*;tag=(\d+)e2e", buf)
    if not buf.startswith(b"SIP/2.0 200 ") or not m:
        raise OSError(f"answer {buf[:60]!r}")
    return m.group(1).decode()


def client(src: str, vip: str, port: int) -> int:
    """Commands on stdin, one JSON line each: {"cmd": "open"|"ask"|"reopen",
    "ports": [...]}; answers one JSON line: {"port": {"pid": ..., "error": ...}}."""
    conns: dict = {}
    n = 0
    for line in sys.stdin:
        req = json.loads(line)
        out = {}
        for p in req["ports"]:
            n += 1
            res = {"pid": None, "error": ""}
            try:
                if req["cmd"] in ("open", "reopen"):
                    if p in conns:
                        conns.pop(p).close()
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.settimeout(4)
                    s.bind((src, p))
                    s.connect((vip, port))
                    conns[p] = s
                s = conns[p]
                s.sendall(_options(src, p, n))
                res["pid"] = _answer(s)
            except ConnectionResetError:
                res["error"] = "reset"
            except socket.timeout:
                res["error"] = "timeout"
            except (OSError, EOFError, KeyError) as e:
                res["error"] = f"{type(e).__name__}: {e}"
            out[str(p)] = res
        print(json.dumps(out), flush=True)
    return 0


class Client:
    def __init__(self, rig: R.Rig, src: str):
        argv = ["ip", "netns", "exec", rig.ns_client, sys.executable, str(Path(__file__).resolve()), "client", src,
                VIP, str(R.SIP_PORT)]
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def do(self, cmd: str, ports: list) -> dict:
        self.p.stdin.write(json.dumps({"cmd": cmd, "ports": ports}) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        return {int(k): v for k, v in json.loads(line).items()} if line else {}

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)


# ------------------------------------------------------------------ the test
def uas_tcp(rig: R.Rig, ip: str) -> R.Proc:
    argv = rig._sipp_common()
    argv[argv.index("u1")] = "t1"
    argv += ["-sf", str(R.SCENARIOS / "uas.xml"), "-i", ip, "-p", str(R.SIP_PORT)]
    return rig.spawn(f"uas-tcp-{ip}", rig.ns_back, argv)


def main() -> int:
    if (rc := E.preflight()) is not None:
        return rc
    work = Path(tempfile.mkdtemp(prefix="siplb-e2e-tcp-health-"))
    failures = []

    def check(cond: bool, text: str) -> None:
        print(("ok   " if cond else "FAIL ") + text, flush=True)
        if not cond:
            failures.append(text)

    rig = R.Rig(work, n_backends=4, spare_backends=1)
    client_proc = None
    try:
        with rig:
            rig.start_dns(E.zone())
            E.start_pool_backends(rig)  # UDP: lund's backends (trunk's UDP VIP is not checked)
            trunk = [R.backend_ip(i) for i in E.TRUNK]
            tcp = {ip: uas_tcp(rig, ip) for ip in trunk}
            d = E.Daemon(rig, extra_vips={"trunk": [f"tcp://{VIP}:5060"]}, pool_health={"trunk": {"udp": "off"}})
            d.start()
            boot = E.Outcome("startup")
            E.wait_pool_ready(rig, d, boot)
            check(boot.ok, "siplb up, trunk's backends active through OPTIONS over TCP")
            entry = d.backend_entry("trunk", trunk[0])
            check(entry.get("health") == "up", f"trunk backend health up: {entry.get('health_detail')!r}")

            client_proc = Client(rig, R.CLIENT_IPS[0])
            held = list(range(41001, 41017))
            first = client_proc.do("open", held)
            pid_of = {str(p.popen.pid): ip for ip, p in tcp.items()}
            on = {p: pid_of.get(r["pid"]) for p, r in first.items()}
            check(all(r["pid"] for r in first.values()), f"16 TCP connections answered: {first}")
            check(set(on.values()) == set(trunk), f"connections on both backends: {sorted(on.values(), key=str)}")

            victim, survivor = trunk[1], trunk[0]
            victim_ports = [p for p, ip in on.items() if ip == victim]
            survivor_ports = [p for p, ip in on.items() if ip == survivor]
            # A crashed host answers nothing: blackhole what the victim's address sends.
            R.sh("ip", "route", "add", "blackhole", "default", "table", BLACKHOLE_TABLE, ns=rig.ns_back)
            R.sh("ip", "rule", "add", "from", victim, "table", BLACKHOLE_TABLE, "priority", "100", ns=rig.ns_back)
            rig.stop(tcp[victim], signal.SIGKILL)
            killed = time.monotonic()
            down_after = None
            while time.monotonic() - killed < E.HEALTH_WINDOW_S + 5:
                e = d.backend_entry("trunk", victim)
                if e.get("state") == "down":
                    down_after = time.monotonic() - killed
                    break
                time.sleep(0.1)
            e = d.backend_entry("trunk", victim)
            check(down_after is not None and down_after <= E.HEALTH_WINDOW_S + 1.5,
                  f"killed backend {victim} down after {down_after}s (health window {E.HEALTH_WINDOW_S:.1f}s)")
            detail = str(e.get("health_detail", ""))
            check(detail.startswith("tcp: "), f"siplbctl backends names the failing check: {detail!r}")
            rc, text = d.ctl("backends", "trunk")
            check(rc == 0 and "tcp: " in text, "siplbctl backends (table) shows the TCP check's detail")

            # The dead backend's connections now reach the survivor, which resets them.
            asked = client_proc.do("ask", victim_ports + survivor_ports)
            resets = [p for p in victim_ports if asked[p]["error"] == "reset"]
            check(victim_ports and len(resets) == len(victim_ports),
                  f"every held connection of the dead backend reset by the survivor "
                  f"(a timeout means siplb still sent it to the dead host): "
                  f"{ {p: asked[p]['error'] or asked[p]['pid'] for p in victim_ports} }")
            kept = [p for p in survivor_ports if pid_of.get(asked[p]["pid"]) == survivor]
            check(len(kept) == len(survivor_ports), f"the survivor's connections still answered: {len(kept)}/"
                                                    f"{len(survivor_ports)}")
            again = client_proc.do("reopen", victim_ports)
            moved = [p for p in victim_ports if pid_of.get(again[p]["pid"]) == survivor]
            check(len(moved) == len(victim_ports),
                  f"the dead backend's clients reconnect from the same ports onto the survivor: "
                  f"{len(moved)}/{len(victim_ports)}")
            fresh = client_proc.do("open", list(range(42001, 42017)))
            on_survivor = [p for p, r in fresh.items() if pid_of.get(r["pid"]) == survivor]
            check(len(on_survivor) == 16, f"new connections all on the survivor: {len(on_survivor)}/16")
            client_proc.close()
            rc = d.stop()
            check(rc == 0, f"siplb stopped cleanly (exit {rc})")
    except R.RigError as e:
        check(False, f"rig: {e}")
    finally:
        if client_proc:
            client_proc.close()
    left = rig.leftovers()
    check(not left, f"no namespaces, links or processes left: {left}")
    if failures:
        print(f"{len(failures)} check(s) failed; logs in {work}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "client":
        sys.exit(client(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
