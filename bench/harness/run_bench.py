#!/usr/bin/env python3
"""siplb benchmark orchestrator, run by scripts/bench.

Sections (see bench/README.md):
  1. micro       Google Benchmark programs under BUILD/bench/<sub>/
  2. dataplane   siplb worker Mpps vs the pure DPDK I/O loop (bench/dataplane)
  3. compare     Kamailio vs socket forwarder vs siplb over veths in namespaces,
                 max rate at < 0.1% loss, DUT pinned to one core
  4. scaling     same with 2/100/1000 backends and 1/100 pools
  5. disruption  calls moved on one backend removal/addition vs 1/N

Safety: traffic only inside two network namespaces created here (TEST-NET
198.51.100.0/24), every trial bounded in time; namespaces and processes are
removed on exit, failure, SIGINT and SIGTERM. Processes are stopped by the
PIDs saved when they were started, never by name.
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import tomllib
import time

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOSS_LIMIT = 0.001            # < 0.1% loss
DUT_CPU = "1"                 # device under test
GEN_CPU = "0"                 # load generator and sinks
NS_NET = "198.51.100"         # TEST-NET-2
LB_IP = NS_NET + ".1"         # the VIP side
GEN_IP = NS_NET + ".2"        # load generator (and the backends with --io udp)
SINK_IP = NS_NET + ".3"       # backends with --io af_packet: not configured, tapped
SINK_MAC = "02:00:5e:00:53:03"
# siplb's port MAC on the lb veth, not the veth's own: the kernel sees the
# frames to siplb as PACKET_OTHERHOST and drops its copy first thing in
# ip_rcv (after siplb's packet socket took it), as a NIC bound to DPDK would
# never hand them to the kernel at all.
SIPLB_MAC = "02:00:5e:00:53:01"
VIP_PORT = 5060
BACKEND_PORT = 6000
NOT_AVAILABLE = "not available yet"
# siplb's net_af_packet ring (frames of 2 KiB per direction): a NIC-sized ring
# (default 512) loses bursts whenever the worker is descheduled for a few ms.
AFP_FRAMES = 8192


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def log_tail(path, n=600):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:].strip()
    except OSError:
        return f"(no log at {path})"


def softnet_drops():
    """Per-CPU packets dropped because the receive backlog was full
    (/proc/net/softnet_stat, second column, one row per CPU)."""
    try:
        with open("/proc/net/softnet_stat") as f:
            return [int(line.split()[1], 16) for line in f]
    except (OSError, IndexError, ValueError):
        return []


def run(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


class Procs:
    """Processes started by this run, stopped by saved PID (and their children)."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, stdout=None, stderr=None):
        p = subprocess.Popen(cmd, stdout=stdout or subprocess.PIPE, stderr=stderr or subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    @staticmethod
    def children(pid):
        out = []
        try:
            for t in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{t}/children") as f:
                    out += [int(x) for x in f.read().split()]
        except OSError:
            pass
        return out

    def stop(self, p, timeout=3.0):
        if p.poll() is None:
            kids = self.children(p.pid)
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=timeout)
            for k in kids:  # children that outlived their parent (saved PIDs only)
                try:
                    os.kill(k, signal.SIGKILL)
                except OSError:
                    pass
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(self.procs):
            try:
                self.stop(p)
            except Exception:  # noqa: BLE001 - best effort during cleanup
                pass


class Rig:
    """Two namespaces joined by one veth pair.

    gen (GEN_IP): load generator and sinks (backends), pinned to GEN_CPU.
    lb  (LB_IP):  the device under test, pinned to DUT_CPU.
    RPS steers each side's receive processing to that side's core, so the
    kernel work of a socket-based DUT is charged to the DUT's core.
    """

    def __init__(self, prefix):
        self.prefix = prefix
        self.ns_gen = prefix + "g"
        self.ns_lb = prefix + "l"
        self.if_gen = prefix + "vg"
        self.if_lb = prefix + "vl"
        self.up = False

    def ns(self, which, cmd):
        return ["ip", "netns", "exec", which] + cmd

    def create(self):
        self.up = True
        run(["ip", "netns", "add", self.ns_gen])
        run(["ip", "netns", "add", self.ns_lb])
        run(["ip", "link", "add", self.if_gen, "netns", self.ns_gen, "type", "veth",
             "peer", "name", self.if_lb, "netns", self.ns_lb])
        for ns, ifc, ip, cpu in ((self.ns_gen, self.if_gen, GEN_IP, GEN_CPU), (self.ns_lb, self.if_lb, LB_IP, DUT_CPU)):
            run(self.ns(ns, ["ip", "link", "set", "lo", "up"]))
            run(self.ns(ns, ["ip", "addr", "add", ip + "/24", "dev", ifc]))
            run(self.ns(ns, ["ip", "link", "set", ifc, "up"]))
            mask = format(1 << int(cpu), "x")
            run(self.ns(ns, ["sh", "-c", f"echo {mask} > /sys/class/net/{ifc}/queues/rx-0/rps_cpus"]), check=False)
        self.mac_lb = run(self.ns(self.ns_lb, ["cat", f"/sys/class/net/{self.if_lb}/address"])).stdout.strip()
        self.mac_gen = run(self.ns(self.ns_gen, ["cat", f"/sys/class/net/{self.if_gen}/address"])).stdout.strip()
        # Static neighbours: no ARP in the measurement, and siplb (which owns
        # the lb side through AF_PACKET) is reachable without answering ARP.
        run(self.ns(self.ns_gen, ["ip", "neigh", "replace", LB_IP, "lladdr", self.mac_lb, "dev", self.if_gen]))
        self.lb_neighbours()

    def lb_neighbours(self):
        """The lb side's static neighbours (again after a MAC change, which
        flushes even permanent entries)."""
        run(self.ns(self.ns_lb, ["ip", "neigh", "replace", GEN_IP, "lladdr", self.mac_gen, "dev", self.if_lb]))
        # Backends of the af_packet sink: a MAC no interface has, so the gen
        # side's kernel drops the frames at once (no ICMP) after the tap.
        run(self.ns(self.ns_lb, ["ip", "neigh", "replace", SINK_IP, "lladdr", SINK_MAC, "dev", self.if_lb]))

    def destroy(self):
        if not self.up:
            return
        for ns in (self.ns_gen, self.ns_lb):
            run(["ip", "netns", "del", ns], check=False)
        self.up = False


def gbench_programs(build):
    progs = []
    for sub in ("sip", "balance", "protect", "dataplane"):
        d = os.path.join(build, "bench", sub)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if name in NOT_GBENCH:
                continue
            if os.path.isfile(path) and os.access(path, os.X_OK) and not name.endswith((".so", ".a", ".p")):
                progs.append((sub, path))
    return progs


def run_gbench(path, min_time, timeout):
    try:
        r = subprocess.run([path, "--benchmark_format=json", f"--benchmark_min_time={min_time}"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"error": f"exit {r.returncode}, no JSON: {r.stderr.strip()[-300:]}"}
    out = []
    for b in doc.get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        keep = {k: v for k, v in b.items() if k not in ("family_index", "per_family_instance_index",
                                                        "run_name", "run_type", "repetitions",
                                                        "repetition_index", "threads")}
        out.append(keep)
    return {"benchmarks": out, "context": {k: doc.get("context", {}).get(k) for k in ("num_cpus", "mhz_per_cpu")}}


def section_micro(build, quick):
    res = {}
    for sub, path in gbench_programs(build):
        log(f"micro: {os.path.relpath(path, build)}")
        res[os.path.relpath(path, build)] = run_gbench(path, 0.01 if quick else 0.2, 60 if quick else 240)
    return res


# Programs under BUILD/bench/<sub>/ that are not Google Benchmarks (own arguments, text output).
NOT_GBENCH = {"bench_dataplane_forward"}
DP_LINE = re.compile(r"^(?P<name>\S.*?)\s+(?P<mpps>[0-9.]+) Mpps\s+ratio (?P<ratio>[0-9.]+)(?P<rest>.*)$")


def section_dataplane(build, micro, quick):
    """bench_dataplane_forward: one siplb worker core (net_pcap infinite_rx over
    the realistic mix -> worker -> net_null) next to the pure DPDK I/O loop on
    the same ports, same run; plus the per-frame stage costs of
    bench_dataplane_forwarder (a Google Benchmark, run in the micro section)."""
    out = {"available": False, "rows": [], "worker_over_io_loop": None, "stages": []}
    prog = os.path.join(build, "bench", "dataplane", "bench_dataplane_forward")
    if os.access(prog, os.X_OK):
        seconds = 1.0 if quick else 3.0
        log(f"dataplane: {os.path.relpath(prog, build)} {seconds}")
        try:
            # 18 cases (io loop; 2 backends over UDP and over TCP; 1000;
            # 20 plain and edge, each but the first after an io loop run of
            # its own; 4 capture rounds of 2), each ~0.5 s of setup and
            # warm-up on top of its measured seconds.
            r = subprocess.run([prog, str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=30 + 18 * (seconds + 1))
            out["output"] = r.stdout
            if r.returncode != 0:
                out["note"] = f"exit {r.returncode}: {r.stderr.strip()[-300:]}"
            for line in r.stdout.splitlines():
                if line.startswith("mix:"):
                    out["mix"] = line[4:].strip()
                m = DP_LINE.match(line)
                if m:
                    row = {"name": m["name"], "mpps": float(m["mpps"]), "ratio": float(m["ratio"]),
                           "io_loop": "io forwarding" in m["name"], "tcp": ", TCP," in m["name"],
                           "detail": m["rest"].strip()}
                    out["rows"].append(row)
        except subprocess.TimeoutExpired:
            out["note"] = "timed out"
    io = [r for r in out["rows"] if r["io_loop"]]
    wk = [r for r in out["rows"] if not r["io_loop"] and not r["tcp"]]
    tcp = [r for r in out["rows"] if r["tcp"]]
    out["available"] = bool(io and wk)
    if out["available"]:
        out["io_loop_mpps"] = io[0]["mpps"]
        out["worker_mpps"] = wk[0]["mpps"]  # the first case: 2 backends
        # Against the io loop run right before the case (forward_bench.cpp).
        out["worker_over_io_loop"] = wk[0]["ratio"]
        many = [r for r in wk if r["name"] == "siplb worker, 1000 backends"]
        out["worker_1000_over_io_loop"] = many[0]["ratio"] if many else None
    if out["available"] and tcp:
        # SIP over TCP, 2 backends: Mpps of segments, next to UDP's datagrams.
        out["tcp_mpps"] = tcp[0]["mpps"]
        out["tcp_over_io_loop"] = tcp[0]["ratio"]
        out["tcp_over_udp"] = tcp[0]["mpps"] / wk[0]["mpps"] if wk[0]["mpps"] else None
        ns = re.search(r"([0-9.]+) ns per segment, UDP ([0-9.]+) ns per datagram", tcp[0]["detail"])
        if ns:
            out["tcp_ns_per_segment"] = float(ns[1])
            out["udp_ns_per_datagram"] = float(ns[2])
    # Per-frame stage costs (ns, and cycles at the benchmark's nominal clock).
    for prog_name, doc in micro.items():
        if not prog_name.endswith("bench_dataplane_forwarder") or "error" in doc:
            continue
        mhz = (doc.get("context") or {}).get("mhz_per_cpu") or 0
        for b in doc.get("benchmarks", []):
            ns = b["real_time"] * {"ns": 1, "us": 1e3, "ms": 1e6}.get(b.get("time_unit", "ns"), 1)
            out["stages"].append({"name": b["name"], "ns": ns, "cycles": ns * mhz / 1e3 if mhz else None})
    return out


# --- the shipped daemon from memory (issue 17, part 3) ---
DAEMON_VIP = "198.51.100.10"
DAEMON_PORT_MAC = "02:00:5e:00:53:01"
DAEMON_PEER_MAC = "02:00:5e:00:53:fe"
DAEMON_BACKENDS = 20
DAEMON_CLIENTS = 1000
# Requests in the daemon's capture. Enough calls that the endless replay
# does not flatter the rule memo: ~5800 distinct From values (each call's
# tag is new) cycling through a memo of 4096 per field, so that, as in live
# traffic, about 4 requests in 10 carry a From the worker has not seen (or
# has forgotten) and are scanned; a 4096-request capture was known by heart
# after its first pass (0.013 scans per request). Small enough (11 MB of
# frames) to stay in the last-level cache, as a NIC's frames would.
DAEMON_REQUESTS = 16384
# The edge configuration's rules, the same for every benchmark that measures
# protection: bench/protect/edge_rules.toml (none matches the mix, so the
# row measures what protection costs, not what it drops).
EDGE_RULES_TOML = os.path.join(SRC, "bench", "protect", "edge_rules.toml")


def edge_rules():
    """The [[pool.rule]] entries of edge_rules.toml, as dicts."""
    with open(EDGE_RULES_TOML, "rb") as f:
        return tomllib.load(f)["pool"][0]["rule"]


def daemon_config(rd, pcap, edge):
    """siplb's config for one daemon case: net_pcap (infinite_rx over the mix)
    -> worker on DUT_CPU -> DAEMON_BACKENDS backends on a net_null port.
    Control thread on GEN_CPU (it sleeps); health checks off (nothing answers
    on a null port). edge: the edge rules plus per-source and per-prefix rate
    limits far above what one of DAEMON_CLIENTS clients or one /24 of them
    sends at the machine's full rate (no client is limited; the row costs the
    lookups, not the drops)."""
    backends = [f"203.0.113.{11 + i}" for i in range(DAEMON_BACKENDS)]
    cfg = f"""# Generated by bench/harness/run_bench.py ({'edge' if edge else 'plain'} daemon case)
[control]
socket = "{rd}/siplb.sock"
[log]
level = "warn"
[dataplane]
eal = ["--no-huge", "-m", "512", "--no-pci", "--file-prefix", "{os.path.basename(rd)}",
       "--lcores", "0@{GEN_CPU},1@{DUT_CPU}", "--log-level", "lib.*:error"]
workers = 1
# infinite_rx keeps the whole capture in mbufs, and the ports need their own
mbufs = {DAEMON_REQUESTS + 16384}
[[dataplane.port]]
name = "in"
device = "net_pcap0"
vdev_args = "rx_pcap={pcap},infinite_rx=1"
addresses = ["198.51.100.1/24"]
mac = "{DAEMON_PORT_MAC}"
[[dataplane.port]]
name = "out"
device = "net_null0"
vdev_args = "no-rx=1"
addresses = ["203.0.113.1/24"]
mac = "{DAEMON_PORT_MAC}"
"""
    for ip in backends:
        cfg += f'[[dataplane.neighbor]]\nip = "{ip}"\nmac = "{DAEMON_PEER_MAC}"\nport = "out"\n'
    cfg += "[health]\nenabled = false\n"
    cfg += f'[[pool]]\nname = "bench"\nlisten = ["{DAEMON_VIP}:{VIP_PORT}"]\n'
    cfg += "backends = [" + ", ".join(f'"{ip}:5060"' for ip in backends) + "]\n"
    if edge:
        for rule in edge_rules():
            cfg += "[[pool.rule]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in rule.items())
        cfg += ("[pool.rate_limit]\nenabled = true\nrequests_per_s = 100000\nburst = 200000\n"
                "prefix_requests_per_s = 10000000\nprefix_burst = 20000000\ntable_size = 65536\n")
    path = os.path.join(rd, "siplb.toml")
    with open(path, "w") as f:
        f.write(cfg)
    return path


def daemon_counters(ctl, sock):
    r = run([ctl, "stats", "--socket", sock, "--json"], check=False, timeout=10)
    try:
        d = json.loads(r.stdout)
    except json.JSONDecodeError:
        return None
    pool = (d.get("pools") or [{}])[0]
    return {"tx_packets": sum(p.get("traffic", {}).get("tx_packets", 0) for p in d.get("ports", [])),
            "rx_packets": sum(p.get("traffic", {}).get("rx_packets", 0) for p in d.get("ports", [])),
            "drops": sum(v for v in d.get("totals", {}).get("drops", {}).values()),
            "rule_drops": pool.get("protect", {}).get("rule_drops", 0),
            "rate_limited": pool.get("protect", {}).get("rate_limited", 0),
            # The rules' work: Hyperscan scans, and field values the memo answered instead.
            "scans": pool.get("protect", {}).get("scans", 0),
            "memo_hits": pool.get("protect", {}).get("memo_hits", 0)}


def daemon_case(build, procs, tmp, pcap, edge, windows, window_s):
    """One daemon run: start, wait until it forwards, warm up, then
    `windows` windows of window_s seconds, Mpps = tx_packets / window."""
    daemon = os.path.join(build, "src", "daemon", "siplb")
    ctl = os.path.join(build, "src", "cli", "siplbctl")
    rd = tempfile.mkdtemp(prefix="sd", dir=tmp)
    cfg = daemon_config(rd, pcap, edge)
    chk = run([daemon, "--check", "--config", cfg], check=False)
    if chk.returncode != 0:
        raise RuntimeError(f"siplb --check: {(chk.stdout + chk.stderr).strip()[-400:]}")
    logf = open(os.path.join(rd, "siplb.log"), "w")
    p = procs.start([daemon, "--config", cfg], stdout=logf, stderr=logf)
    sock = os.path.join(rd, "siplb.sock")
    try:
        deadline = time.time() + 20
        while True:
            if p.poll() is not None:
                raise RuntimeError(f"siplb exited ({p.returncode}): {log_tail(os.path.join(rd, 'siplb.log'))}")
            c = daemon_counters(ctl, sock) if os.path.exists(sock) else None
            if c and c["tx_packets"] > 0:
                break
            if time.time() > deadline:
                raise RuntimeError(f"siplb does not forward: {log_tail(os.path.join(rd, 'siplb.log'))}")
            time.sleep(0.2)
        time.sleep(1.0)  # warm-up: affinity entries, rate-limit buckets, caches
        out = []
        for _ in range(windows):
            c0, t0 = daemon_counters(ctl, sock), time.monotonic()
            time.sleep(window_s)
            c1, t1 = daemon_counters(ctl, sock), time.monotonic()
            dt = t1 - t0
            out.append({"mpps": (c1["tx_packets"] - c0["tx_packets"]) / dt / 1e6, "seconds": round(dt, 3),
                        **{k: c1[k] - c0[k]
                           for k in ("rx_packets", "drops", "rule_drops", "rate_limited", "scans", "memo_hits")}})
        return out
    finally:
        procs.stop(p)
        shutil.rmtree(os.path.join("/var/run/dpdk", os.path.basename(rd)), ignore_errors=True)


def section_daemon(build, procs, tmp, dataplane, quick):
    """The shipped daemon (`siplb --config`) on one worker core, plain and
    with the edge configuration, Mpps from `siplbctl stats`; the cases
    alternate (plain, edge, plain, edge...) so both see the same machine."""
    out = {"available": False, "rows": [], "backends": DAEMON_BACKENDS, "clients": DAEMON_CLIENTS,
           "rules": [{"field": r["field"], "pattern": r["pattern"]} for r in edge_rules()]}
    daemon = os.path.join(build, "src", "daemon", "siplb")
    mkpcap = os.path.join(build, "bench", "harness", "sip_mix_pcap")
    if not (os.access(daemon, os.X_OK) and os.access(mkpcap, os.X_OK)):
        out["note"] = NOT_AVAILABLE + " (siplb or bench/harness/sip_mix_pcap not built)"
        return out
    pcap = os.path.join(tmp, "daemon-mix.pcap")
    r = run([mkpcap, "--out", pcap, "--vip", f"{DAEMON_VIP}:{VIP_PORT}", "--dst-mac", DAEMON_PORT_MAC,
             "--count", str(DAEMON_REQUESTS), "--clients", str(DAEMON_CLIENTS)])
    out["mix"] = json.loads(r.stdout)
    rounds, windows, window_s = (1, 2, 1.5) if quick else (2, 3, 5.0)
    out.update({"rounds": rounds, "windows_per_round": windows, "window_s": window_s})
    samples = {"plain": [], "edge": []}
    try:
        for rnd in range(rounds):
            for name in ("plain", "edge"):
                log(f"daemon: {name} config, round {rnd + 1}/{rounds}")
                samples[name] += daemon_case(build, procs, tmp, pcap, name == "edge", windows, window_s)
    except RuntimeError as e:
        out["note"] = f"failed: {e}"
        return out
    io = dataplane.get("io_loop_mpps")
    for name in ("plain", "edge"):
        s = samples[name]
        mpps = sum(x["mpps"] for x in s) / len(s)
        out["rows"].append({"name": f"siplb daemon, {name}", "config": name, "mpps": mpps,
                            "mpps_windows": [round(x["mpps"], 3) for x in s],
                            "mpps_best": max(x["mpps"] for x in s),
                            "ratio_to_io_loop": mpps / io if io else None,
                            "drops": sum(x["drops"] for x in s), "rule_drops": sum(x["rule_drops"] for x in s),
                            "rate_limited": sum(x["rate_limited"] for x in s)})
        if name == "edge":
            # Every frame of the mix is a request: what the rules cost per request.
            rx = sum(x["rx_packets"] for x in s)
            out["rows"][-1].update({"scans": sum(x["scans"] for x in s), "memo_hits": sum(x["memo_hits"] for x in s),
                                    "scans_per_request": sum(x["scans"] for x in s) / rx if rx else None,
                                    "memo_hits_per_request": sum(x["memo_hits"] for x in s) / rx if rx else None})
    plain, edge = out["rows"][0]["mpps"], out["rows"][1]["mpps"]
    out["edge_over_plain"] = edge / plain if plain else None
    # On a shared host a core's speed moves between runs (neighbours on its
    # sibling thread and the shared cache) by more than the difference being
    # measured; each config's best window is its least disturbed one.
    plain_best, edge_best = out["rows"][0]["mpps_best"], out["rows"][1]["mpps_best"]
    out["edge_over_plain_best"] = edge_best / plain_best if plain_best else None
    out["available"] = True
    return out


class Bench:
    def __init__(self, args, build):
        self.args = args
        self.build = build
        self.h = os.path.join(build, "bench", "harness")
        self.procs = Procs()
        self.rig = Rig(f"sbh{os.getpid() % 100000}")
        self.tmp = tempfile.mkdtemp(prefix="siplb-bench.")
        self.trial_s = 1.0 if args.quick else 2.0
        self.steps = 4 if args.quick else 7
        self.raw = args.io == "af_packet"
        self.backend_ip = SINK_IP if self.raw else GEN_IP
        self.lg_extra = os.environ.get("SIPLB_BENCH_LOADGEN_ARGS", "").split()
        self.dst_mac = None  # the DUT's MAC when it is not the lb veth's (siplb)
        self.duts = [d for d in ("kamailio", "socket_forwarder", "siplb") if d in args.dut.split(",")]
        self.lb_ip = LB_IP      # where the DUT listens (127.0.0.1 on loopback)
        self.gen_ns = None      # namespace of the load generator and sinks (None: the rig's gen)

    def cleanup(self):
        self.procs.stop_all()
        self.rig.destroy()
        shutil.rmtree(os.path.join("/var/run/dpdk", self.rig.prefix), ignore_errors=True)  # siplb's EAL files
        shutil.rmtree(self.tmp, ignore_errors=True)

    def gen(self, cmd):
        return self.rig.ns(self.gen_ns or self.rig.ns_gen, ["taskset", "-c", GEN_CPU] + cmd)

    def loopback(self, on):
        """Loopback: generator, sinks and DUT all in the lb namespace, over
        its lo with UDP sockets (generator and sinks on GEN_CPU, the DUT on
        DUT_CPU), the way a Kamailio operator benchmarks one box."""
        if on:
            self.saved = (self.raw, self.backend_ip, self.lb_ip, self.gen_ns)
            self.raw, self.backend_ip, self.lb_ip, self.gen_ns = False, "127.0.0.1", "127.0.0.1", self.rig.ns_lb
        else:
            self.raw, self.backend_ip, self.lb_ip, self.gen_ns = self.saved

    def dut(self, cmd):
        return self.rig.ns(self.rig.ns_lb, ["taskset", "-c", DUT_CPU] + cmd)

    # One trial: sinks up, loadgen for trial_s at `rate` (0 = max), sinks drained.
    def trial(self, nbackends, rate, verify=False):
        ready = os.path.join(self.tmp, "sink.ready")
        if os.path.exists(ready):
            os.unlink(ready)
        sink_cmd = [os.path.join(self.h, "sip_sink"), "--backends", f"{self.backend_ip}:{BACKEND_PORT}*{nbackends}",
                    "--duration", str(self.trial_s + 30), "--ready-file", ready]
        if self.raw:
            sink_cmd += ["--af-packet", self.rig.if_gen]
        if verify:
            sink_cmd.append("--verify")
        sink = self.procs.start(self.gen(sink_cmd))
        deadline = time.time() + 5
        while not os.path.exists(ready):
            if sink.poll() is not None or time.time() > deadline:
                err = sink.stderr.read() if sink.poll() is not None else "timeout"
                self.procs.stop(sink)
                raise RuntimeError(f"sink did not start: {err}")
            time.sleep(0.01)
        lg_cmd = [os.path.join(self.h, "sip_loadgen"), "--dst", f"{self.lb_ip}:{VIP_PORT}", "--rate", str(int(rate)),
                  "--duration", str(self.trial_s), "--requests-only",
                  "--src", GEN_IP if self.lb_ip == LB_IP else "127.0.0.1"]
        if self.raw:
            lg_cmd += ["--af-packet", self.rig.if_gen, "--dst-mac", self.dst_mac or self.rig.mac_lb] + self.lg_extra
        drops0 = softnet_drops()
        lg = run(self.gen(lg_cmd), timeout=self.trial_s + 20)
        time.sleep(0.3)  # let the DUT drain its queues
        drops1 = softnet_drops()
        self.procs.stop(sink)
        out = sink.stdout.read()
        sent = json.loads(lg.stdout)
        recv = json.loads(out)
        loss = 1 - recv["received"] / sent["sent"] if sent["sent"] else 1.0
        return {"rate": rate, "offered": sent["rate_achieved"], "sent": sent["sent"], "received": recv["received"],
                "loss": max(0.0, loss), "recv_rate": recv["received"] / sent["elapsed_s"],
                "backlog_drops": {f"cpu{i}": b - a for i, (a, b) in enumerate(zip(drops0, drops1)) if b != a},
                "sink": {k: v for k, v in recv.items() if k != "per_backend"},
                "mix_avg_bytes": sent["mix_avg_bytes"]}

    def search(self, nbackends):
        """Max rate with loss < 0.1%: one max-rate trial, then bisection."""
        trials = []
        t = self.trial(nbackends, 0)
        trials.append(t)
        ceiling = t["offered"]
        if t["loss"] < LOSS_LIMIT:
            return {"msgs_per_s": t["offered"], "limited_by": "load generator", "trials": trials}
        # Bisection on a log scale between the best passing and the lowest
        # failing rate: overloaded socket programs can deliver far less than
        # their capacity (receive livelock), so the max-rate trial is only a hint.
        lo, hi = 0.0, ceiling
        guess = t["recv_rate"] * 0.9
        for _ in range(self.steps):
            t = self.trial(nbackends, guess)
            trials.append(t)
            if t["loss"] < LOSS_LIMIT:
                lo = max(lo, t["offered"])
            else:
                hi = min(hi, guess)
            guess = (lo * hi) ** 0.5 if lo > 0 else hi / 4
        return {"msgs_per_s": lo, "limited_by": "device under test", "offered_ceiling": ceiling, "trials": trials}

    def verify(self, nbackends):
        t = self.trial(nbackends, 20000 if self.args.quick else 50000, verify=True)
        s = t["sink"]
        return {"received": t["received"], "sent": t["sent"], "call_ids": s.get("call_ids"),
                "call_id_conflicts": s.get("call_id_conflicts"), "cv_per_backend": s.get("cv_per_backend")}

    # --- devices under test ---
    def start_forwarder(self, nbackends):
        return self.procs.start(self.dut([os.path.join(self.h, "socket_forwarder"), "--listen", f"{self.lb_ip}:{VIP_PORT}",
                                          "--backends", f"{self.backend_ip}:{BACKEND_PORT}*{nbackends}", "--duration", "600"]))

    def start_kamailio(self, nbackends, allocator="fm"):
        """Kamailio as an operator runs stateless dispatching at its fastest:
        the f_malloc memory manager for shared and private memory (-x fm -X
        fm; Debian's build defaults to q_malloc with memory debugging, whose
        qm_malloc took 44% of the core), 256 MB shared and 32 MB private
        memory, one UDP worker, nothing logged per message, every process
        pinned to the DUT core. allocator="qm": the packaged default, for the
        extra row."""
        rd = tempfile.mkdtemp(prefix="kam.", dir=self.tmp)
        with open(os.path.join(rd, "dispatcher.list"), "w") as f:
            for i in range(nbackends):
                f.write(f"1 sip:{self.backend_ip}:{BACKEND_PORT + i}\n")
        logf = open(os.path.join(rd, "kamailio.log"), "w")
        mm = ["-x", "fm", "-X", "fm"] if allocator == "fm" else []
        p = self.procs.start(self.dut(["kamailio", "-DD", "-E", "-f", os.path.join(SRC, "bench/kamailio/kamailio.cfg"),
                                       "-Y", rd, "-P", os.path.join(rd, "kamailio.pid"),
                                       "-A", f"LISTEN=udp:{self.lb_ip}:{VIP_PORT}",
                                       "-A", f'DSLIST="{rd}/dispatcher.list"', "-m", "256", "-M", "32"] + mm),
                             stdout=logf, stderr=logf)
        p.logfile = os.path.join(rd, "kamailio.log")
        p.allocator = allocator
        return p

    def siplb_binary(self):
        path = os.path.join(self.build, "src", "daemon", "siplb")
        return path if os.access(path, os.X_OK) else None

    def start_siplb(self, nbackends, npools=1, driver="af_packet"):
        """siplb owning the lb veth through net_af_packet (the kernel address is
        removed meanwhile). Pool 0 listens on LB_IP and gets the traffic; the
        other npools-1 pools (VIPs .10, .11, ...) are configured but idle."""
        if not self.raw:
            raise NotImplementedError("siplb needs --io af_packet (sinks tap frames, no kernel path)")
        rd = tempfile.mkdtemp(prefix="siplb.", dir=self.tmp)
        backends = ", ".join(f'"{SINK_IP}:{BACKEND_PORT + i}"' for i in range(nbackends))
        pools = []
        for i in range(npools):
            vip = LB_IP if i == 0 else f"{NS_NET}.{9 + i}"
            pools.append(f'[[pool]]\nname = "bench{i}"\nlisten = ["{vip}:{VIP_PORT}"]\nbackends = [{backends}]\n')
        if driver == "af_xdp":
            # AF_XDP in copy mode: veths have no zero-copy support; the PMD's
            # (libxdp's) program redirects every frame of queue 0 to the
            # socket, so the kernel stack never sees siplb's frames.
            port_device = f'device = "net_af_xdp0"\nvdev_args = "iface={self.rig.if_lb},start_queue=0,queue_count=1"'
        else:
            port_device = (f'device = "net_af_packet0"\n'
                           f'vdev_args = "iface={self.rig.if_lb},qpairs=1,framecnt={AFP_FRAMES}"')
        cfg = f"""[control]
socket = "{rd}/siplb.sock"
[log]
level = "warn"
[dataplane]
eal = ["--no-huge", "-m", "512", "--no-pci", "--file-prefix", "{self.rig.prefix}",
       "--lcores", "0@{DUT_CPU},1@{DUT_CPU}", "--log-level", "lib.*:error"]
workers = 1
[[dataplane.port]]
name = "ext"
{port_device}
addresses = ["{LB_IP}/24"]
mac = "{SIPLB_MAC}"
[[dataplane.neighbor]]
ip = "{GEN_IP}"
mac = "{self.rig.mac_gen}"
port = "ext"
[[dataplane.neighbor]]
ip = "{SINK_IP}"
mac = "{SINK_MAC}"
port = "ext"
[health]
enabled = false
""" + "\n".join(pools)
        path = os.path.join(rd, "siplb.toml")
        with open(path, "w") as f:
            f.write(cfg)
        run(self.rig.ns(self.rig.ns_lb, ["ip", "addr", "flush", "dev", self.rig.if_lb]))
        logf = open(os.path.join(rd, "siplb.log"), "w")
        chk = run(self.rig.ns(self.rig.ns_lb, [self.siplb_binary(), "--check", "--config", path]), check=False)
        if chk.returncode != 0:
            raise RuntimeError(f"siplb --check: {(chk.stdout + chk.stderr).strip()[-400:]}")
        p = self.procs.start(self.dut([self.siplb_binary(), "--config", path]), stdout=logf, stderr=logf)
        p.driver = driver
        p.logfile = os.path.join(rd, "siplb.log")
        p.restore_addr = True
        p.socket = f"{rd}/siplb.sock"
        self.dst_mac = SIPLB_MAC
        return p

    def siplb_ready(self, p, nbackends):
        """siplb forwards; then the veth gets its own MAC back. siplb set the
        port MAC on the veth (the af_packet PMD does SIOCSIFHWADDR) and keeps
        sending from it; with the veth's MAC different again, the kernel's
        copy of each frame is PACKET_OTHERHOST and dropped at once in ip_rcv
        instead of going through the route lookup to ip_error."""
        self.wait_forwarding(p, nbackends)
        self.set_lb_mac(self.rig.mac_lb)
        self.wait_forwarding(p, nbackends)

    def xdp_mode(self):
        """How the XDP program sits on the lb veth while siplb runs on
        net_af_xdp: 'native' (the veth driver's XDP), 'generic' (SKB mode)."""
        out = run(self.rig.ns(self.rig.ns_lb, ["ip", "-d", "link", "show", "dev", self.rig.if_lb]), check=False).stdout
        m = re.search(r"\b(xdpgeneric|xdpdrv|xdpoffload|xdp)\b", out)
        return {"xdpgeneric": "generic", "xdpdrv": "native", "xdp": "native", "xdpoffload": "offload"}.get(
            m[1] if m else "", "none")

    def siplb_stats(self, p):
        """siplb's own counters over the whole search (siplbctl stats): where
        it dropped, and whether its RX ring overflowed (rx_missed)."""
        ctl = os.path.join(self.build, "src", "cli", "siplbctl")
        if not os.access(ctl, os.X_OK):
            return None
        r = run([ctl, "stats", "--socket", p.socket, "--json"], check=False, timeout=10)
        try:
            d = json.loads(r.stdout)
        except json.JSONDecodeError:
            return {"note": f"siplbctl stats: exit {r.returncode} {r.stderr.strip()[-200:]}"}
        port = (d.get("ports") or [{}])[0]
        traffic, driver = port.get("traffic", {}), port.get("driver", {})
        drops = {k: v for k, v in d.get("totals", {}).get("drops", {}).items() if v}
        return {"rx_packets": traffic.get("rx_packets"), "tx_packets": traffic.get("tx_packets"),
                "rx_missed": driver.get("imissed"), "rx_errors": driver.get("ierrors"),
                "tx_errors": driver.get("oerrors"), "tx_dropped": traffic.get("tx_dropped"), "drops": drops}

    def set_lb_mac(self, mac):
        run(self.rig.ns(self.rig.ns_lb, ["ip", "link", "set", "dev", self.rig.if_lb, "address", mac]))

    def stop_dut(self, p):
        self.procs.stop(p)
        if getattr(p, "restore_addr", False):
            self.set_lb_mac(self.rig.mac_lb)
            run(self.rig.ns(self.rig.ns_lb, ["ip", "addr", "replace", LB_IP + "/24", "dev", self.rig.if_lb]))
            self.rig.lb_neighbours()
        self.dst_mac = None

    def wait_forwarding(self, proc, nbackends, timeout=20):
        """For a DUT without a kernel socket: a low-rate probe gets through."""
        deadline = time.time() + timeout
        saved, self.trial_s = self.trial_s, 0.3
        try:
            while time.time() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"device under test exited ({proc.returncode}): {log_tail(proc.logfile)}")
                if self.trial(nbackends, 1000)["loss"] < 0.05:
                    return
                time.sleep(0.5)
        finally:
            self.trial_s = saved
        raise RuntimeError("device under test does not forward")

    def wait_listening(self, proc, timeout=10):
        """Waits until the DUT answers: a probe trial at a low rate gets through."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                raise RuntimeError(f"device under test exited ({proc.returncode}): {err[-500:]}")
            r = run(self.rig.ns(self.rig.ns_lb, ["ss", "-H", "-uln", f"sport = :{VIP_PORT}"]), check=False)
            if r.stdout.strip():
                time.sleep(0.2)
                return
            time.sleep(0.1)
        raise RuntimeError("device under test did not start listening")

    def measure(self, name, nbackends, verify=False):
        starters = {"kamailio": self.start_kamailio, "socket_forwarder": self.start_forwarder,
                    "siplb": self.start_siplb,
                    "kamailio_default_allocator": lambda n: self.start_kamailio(n, allocator="qm"),
                    "siplb_af_xdp": lambda n: self.start_siplb(n, driver="af_xdp")}
        if name.startswith("siplb") and not self.siplb_binary():
            return {"available": False, "note": NOT_AVAILABLE + " (no siplb daemon in the build)"}
        if name.startswith("kamailio") and not shutil.which("kamailio"):
            return {"available": False, "note": "kamailio not installed"}
        log(f"compare: {name} with {nbackends} backends" + (" on loopback" if self.lb_ip != LB_IP else ""))
        try:
            p = starters[name](nbackends)
        except NotImplementedError as e:
            return {"available": False, "note": str(e)}
        try:
            if name.startswith("siplb"):
                self.siplb_ready(p, nbackends)
                if getattr(p, "driver", "") == "af_xdp":
                    xdp_mode = self.xdp_mode()
            else:
                self.wait_listening(p)
            res = self.search(nbackends)
            if verify:
                res["consistency"] = self.verify(nbackends)
                if res.get("msgs_per_s") and (not self.args.quick or name.startswith("siplb")):
                    res["profile"] = self.profile(nbackends, res["msgs_per_s"])
            if name.startswith("siplb"):
                res["siplb_stats"] = self.siplb_stats(p)
                if getattr(p, "driver", "") == "af_xdp":
                    res["xdp_mode"] = xdp_mode
            res["available"] = True
            return res
        except RuntimeError as e:
            log(f"{name}: {e}")
            return {"available": False, "note": f"failed: {e}"}
        finally:
            self.stop_dut(p)

    def profile(self, nbackends, rate):
        """Where the DUT core's time goes at `rate`: `perf record -C DUT_CPU`
        (cpu-clock samples: this works in VMs without hardware counters)
        during one trial, summed by user/kernel/idle, by program and library,
        and the top symbols."""
        if not shutil.which("perf"):
            return {"note": "perf not installed"}
        data = os.path.join(self.tmp, "perf.data")
        rec = self.procs.start(["perf", "record", "-q", "-C", DUT_CPU, "-o", data, "--", "sleep",
                                str(self.trial_s)])
        try:
            t = self.trial(nbackends, rate)
        finally:
            try:
                rec.wait(timeout=self.trial_s + 15)
            except subprocess.TimeoutExpired:
                pass
            self.procs.stop(rec)
        if not os.path.exists(data):
            return {"note": "perf record failed: " + (rec.stderr.read() or "")[-200:]}
        def report(sort):
            r = run(["perf", "report", "-i", data, "--stdio", "-q", "--sort", sort, "--percent-limit", "0.5"],
                    check=False)
            return r.stdout.splitlines()
        out = {"rate": rate, "loss": t["loss"], "user": 0.0, "kernel": 0.0, "idle": 0.0, "by_dso": [],
               "top_symbols": []}
        for line in report("comm,dso"):
            m = re.match(r"^\s*([\d.]+)%\s+(.+?)\s{2,}(\S.*)$", line)
            if not m:
                continue
            pct, comm, dso = float(m[1]), m[2].strip(), m[3].strip()
            if comm.startswith("swapper"):
                out["idle"] += pct
            elif dso.startswith("[kernel"):
                out["kernel"] += pct
            else:
                out["user"] += pct
            out["by_dso"].append({"comm": comm, "dso": dso, "pct": pct})
        for line in report("sym")[:12]:
            m = re.match(r"^\s*([\d.]+)%\s+\[(.)\]\s+(.*)$", line)
            if m:
                out["top_symbols"].append({"pct": float(m[1]), "kernel": m[2] == "k", "symbol": m[3].strip()})
        os.unlink(data)
        return out

    def measure_siplb_pools(self, npools):
        log(f"scaling: siplb with {npools} pools")
        p = self.start_siplb(2, npools)
        try:
            self.siplb_ready(p, 2)
            res = self.search(2)
            res["available"] = True
            return res
        except RuntimeError as e:
            return {"available": False, "note": f"failed: {e}"}
        finally:
            self.stop_dut(p)

    def section_compare(self):
        out = {"backends": 2, "io": self.args.io, "loss_limit": LOSS_LIMIT, "trial_s": self.trial_s, "dut_cpu": DUT_CPU,
               "gen_cpu": GEN_CPU, "results": {}}
        for name in self.duts:
            out["results"][name] = self.measure(name, 2, verify=True)
            if name == "siplb":
                # The same daemon on net_af_xdp (copy mode on the veth).
                out["results"]["siplb_af_xdp"] = self.measure("siplb_af_xdp", 2, verify=True)
            if name == "kamailio":
                # The packaged default allocator (q_malloc), for comparison only.
                out["results"]["kamailio_default_allocator"] = self.measure("kamailio_default_allocator", 2)
        # The same search with generator, sinks and DUT on the lb namespace's
        # loopback (UDP sockets): what an operator measures on one box.
        out["loopback"] = {}
        lo_duts = [d for d in ("kamailio", "kamailio_default_allocator", "socket_forwarder")
                   if d.split("_default")[0] in self.duts and (not self.args.quick or d == "kamailio")]
        for name in lo_duts:
            self.loopback(True)
            try:
                out["loopback"][name] = self.measure(name, 2)
            finally:
                self.loopback(False)
        r = out["results"]

        def rate(n):
            return r[n]["msgs_per_s"] if n in r and r[n].get("available") and r[n].get("msgs_per_s") else None
        s, k, f = rate("siplb"), rate("kamailio"), rate("socket_forwarder")
        kq = rate("kamailio_default_allocator")
        lo = {n: v.get("msgs_per_s") if v.get("available") else None for n, v in out["loopback"].items()}
        x = rate("siplb_af_xdp")
        out["ratios"] = {"siplb_over_kamailio": s / k if s and k else None,
                         "siplb_af_xdp_over_af_packet": x / s if x and s else None,
                         "siplb_af_xdp_over_kamailio": x / k if x and k else None,
                         "siplb_af_xdp_over_socket_forwarder": x / f if x and f else None,
                         "kamailio_fm_over_default_allocator": k / kq if k and kq else None,
                         "kamailio_loopback_over_veth": lo["kamailio"] / k if lo.get("kamailio") and k else None,
                         "siplb_over_socket_forwarder": s / f if s and f else None,
                         "socket_forwarder_over_kamailio": f / k if f and k else None}
        return out

    def section_scaling(self):
        counts = [2, 100] if self.args.quick else [2, 100, 1000]
        out = {"backends": {}, "pools": {}}
        for name in self.duts:
            out["backends"][name] = {}
            for n in counts:
                r = self.measure(name, n)
                out["backends"][name][str(n)] = {k: v for k, v in r.items() if k != "trials"}
        out["pools"]["siplb"] = {}
        for npools in (1, 100):
            if not self.siplb_binary():
                out["pools"]["siplb"][str(npools)] = {"available": False, "note": NOT_AVAILABLE}
                continue
            r = self.measure_siplb_pools(npools)
            out["pools"]["siplb"][str(npools)] = {k: v for k, v in r.items() if k != "trials"}
        return out


def section_disruption(build):
    r = run([os.path.join(build, "bench", "harness", "disruption"), "--backends", "2,100,1000"])
    return json.loads(r.stdout)


def machine():
    model = ""
    for line in run(["lscpu"]).stdout.splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def fmt_rate(v):
    if v is None:
        return "-"
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k"


def table(res):
    lines = []
    m = res["machine"]
    lines.append(f"siplb bench ({'quick' if res['quick'] else 'full'}) on {m['cpu']}, {m['cores']} cores, "
                 f"kernel {m['kernel']}, {m['date']}")
    la = ", ".join(f"{k[len('load_average_'):]} {' '.join(str(x) for x in m[k])}"
                   for k in ("load_average_start", "load_average_end") if m.get(k))
    if la:
        lines.append(f"load average (1/5/15 min): {la}")
    lines.append("")
    lines.append("1. Micro (Google Benchmark)")
    any_micro = False
    for prog, doc in res["micro"].items():
        if "error" in doc:
            lines.append(f"  {prog}: {doc['error']}")
            continue
        for b in doc["benchmarks"]:
            any_micro = True
            extra = ""
            if b.get("items_per_second"):
                extra = f"  {b['items_per_second'] / 1e6:9.2f} M items/s"
            # Ratio counters (x_*: against a baseline the benchmark measured in the same run).
            extra += "".join(f"  {k} {v:.2f}" for k, v in b.items() if k.startswith("x_") and isinstance(v, (int, float)))
            if b.get("label"):
                extra += f"  ({b['label']})"
            lines.append(f"  {b['name'][:58]:58s} {b['real_time']:10.1f} {b['time_unit']}{extra}")
    if not any_micro:
        lines.append(f"  {NOT_AVAILABLE} (no Google Benchmark programs in the build)")
    lines.append("")
    dp = res["dataplane"]
    lines.append("2. Dataplane: one siplb worker core vs the pure DPDK I/O loop, same ports, same run "
                 "(net_pcap infinite_rx -> net_null; each worker case's ratio is against an I/O loop run right "
                 "before it, the capture rounds' against the first)")
    if dp.get("mix"):
        lines.append(f"  mix: {dp['mix']}")
    if not dp["rows"]:
        lines.append(f"  {NOT_AVAILABLE} (bench/dataplane/bench_dataplane_forward not built)"
                     + (f": {dp['note']}" if dp.get("note") else ""))
    for r in dp["rows"]:
        lines.append(f"  {r['name'][:34]:34s} {r['mpps']:7.2f} Mpps  ratio {r['ratio']:.2f}")
    if dp.get("worker_over_io_loop"):
        two, many = dp["worker_over_io_loop"], dp.get("worker_1000_over_io_loop")
        lines.append(f"  siplb worker / I/O loop = {two:.3f} with 2 backends"
                     + (f", {many:.3f} with 1000" if many else "")
                     + f" (target >= 0.3 with both: {'met' if many and min(two, many) >= 0.3 else 'missed'}); "
                     f"{dp['worker_mpps']:.2f} Mpps per worker core "
                     f"(target >= 5: {'met' if dp['worker_mpps'] >= 5 else 'missed'})")
    if dp.get("tcp_over_udp"):
        per = (f"; {dp['tcp_ns_per_segment']:.0f} ns per segment vs {dp['udp_ns_per_datagram']:.0f} ns per datagram "
               f"of worker CPU" if dp.get("tcp_ns_per_segment") else "")
        lines.append(f"  SIP over TCP / UDP (2 backends) = {dp['tcp_over_udp']:.3f}{per}")
    dm = res.get("daemon")
    if dm:
        io = dp.get("io_loop_mpps")
        if not dm.get("available"):
            lines.append(f"  siplb daemon: {dm.get('note', NOT_AVAILABLE)}")
        for r in dm["rows"]:
            ratio = f"ratio {r['ratio_to_io_loop']:.2f}" if r.get("ratio_to_io_loop") else "ratio -   "
            windows = " ".join(f"{x:.2f}" for x in r["mpps_windows"])
            lines.append(f"  {r['name'][:34]:34s} {r['mpps']:7.2f} Mpps  {ratio}  (windows {windows}; "
                         f"drops {r['drops']}, rule drops {r['rule_drops']}, rate-limited {r['rate_limited']})")
            if r.get("scans_per_request") is not None:
                lines.append(f"    per request: {r['scans_per_request']:.3f} Hyperscan scans, "
                             f"{r['memo_hits_per_request']:.3f} memo hits")
        if dm.get("available"):
            if dp.get("worker_mpps"):
                lines.append(f"  siplb daemon plain / worker (2 backends) = {dm['rows'][0]['mpps'] / dp['worker_mpps']:.3f}")
            best = dm.get("edge_over_plain_best")
            best = f", {best:.3f} by each config's best window" if best else ""
            lines.append(f"  siplb daemon edge / plain = {dm['edge_over_plain']:.3f} by mean{best} (target >= 0.9: "
                         f"{'met' if dm['edge_over_plain'] >= 0.9 else 'missed'})")
            mix = dm.get("mix", {})
            lines.append(f"  daemon: `siplb --config`, net_pcap infinite_rx ({mix.get('frames')} requests, "
                         f"{mix.get('clients')} clients, {mix.get('avg_frame_bytes')}-byte frames) -> "
                         f"{dm['backends']} backends on net_null; edge = {len(dm['rules'])} Hyperscan rules "
                         f"(none matches) + per-source and per-prefix rate limits (none reached); "
                         f"{dm['rounds']} x {dm['windows_per_round']} windows of {dm['window_s']} s per config "
                         f"from siplbctl stats tx_packets")
    if dp.get("stages"):
        lines.append("  per-frame cost of the worker's decision core (bench_dataplane_forwarder, no DPDK):")
        for st in dp["stages"]:
            cyc = f" ~{st['cycles']:.0f} cycles" if st.get("cycles") else ""
            lines.append(f"    {st['name']:28s} {st['ns']:8.1f} ns{cyc}")
    lines.append("")
    c = res.get("compare")
    if c:
        lines.append(f"3. One core each, veths in namespaces, 2 backends, requests of the SIP mix, loss < "
                     f"{c['loss_limit'] * 100:.1f}%")
        lines.append(f"  {'device under test':28s} {'msgs/s':>10s}  notes")
        for name, r in c["results"].items():
            if not r.get("available"):
                lines.append(f"  {name:28s} {'-':>10s}  {r.get('note', '')}")
                continue
            note = f"limited by {r['limited_by']}"
            if r.get("consistency"):
                cc = r["consistency"]
                note += f"; Call-ID conflicts {cc['call_id_conflicts']} over {cc['call_ids']} calls"
            lines.append(f"  {name:28s} {fmt_rate(r['msgs_per_s']):>10s}  {note}")
            if r.get("xdp_mode"):
                lines.append(f"  {'':28s} {'':10s}  net_af_xdp, copy mode, XDP program attached in {r['xdp_mode']} mode")
            st = r.get("siplb_stats")
            if st and "rx_packets" in st:
                lines.append(f"  {'':28s} {'':10s}  siplb over the search: rx {st['rx_packets']}, tx {st['tx_packets']}, "
                             f"rx_missed {st['rx_missed']}, drops {st['drops'] or 0}")
            bd = (r.get("trials") or [{}])[0].get("backlog_drops")
            if bd:
                lines.append(f"  {'':28s} {'':10s}  max-rate trial: kernel receive backlog drops "
                             + ", ".join(f"{k} {v}" for k, v in bd.items()))
            pr = r.get("profile")
            if pr and "user" in pr:
                by = {}
                for d in pr["by_dso"]:
                    if not d["dso"].startswith("[kernel"):
                        by[os.path.basename(d["dso"])] = by.get(os.path.basename(d["dso"]), 0) + d["pct"]
                libs = ", ".join(f"{k} {v:.0f}%" for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:5] if v >= 1)
                syms = ", ".join(f"{x['symbol'][:28]} {x['pct']:.0f}%" for x in pr["top_symbols"][:5])
                per = 1e7 / pr["rate"]  # ns of the core per message for each 1% of its time
                lines.append(f"  {'':28s} {'':10s}  CPU {DUT_CPU} at {fmt_rate(pr['rate'])}: user {pr['user']:.0f}%"
                             f" ({libs}), kernel {pr['kernel']:.0f}% (~{pr['kernel'] * per:.0f} ns/msg), "
                             f"idle {pr['idle']:.0f}%")
                lines.append(f"  {'':28s} {'':10s}  top: {syms}")
        for name, r in (c.get("loopback") or {}).items():
            label = name.replace("_default_allocator", "_default_alloc") + " (lo)"
            if not r.get("available"):
                lines.append(f"  {label:28s} {'-':>10s}  {r.get('note', '')}")
                continue
            lines.append(f"  {label:28s} {fmt_rate(r['msgs_per_s']):>10s}  limited by {r['limited_by']}; "
                         f"loopback of the lb namespace, UDP sockets, generator and sinks on CPU {GEN_CPU}")
        lines.append(f"  kamailio: -x fm -X fm -m 256 -M 32, children=1, no per-message logging; "
                     f"kamailio_default_allocator: the same with Debian's default q_malloc")
        targets = {"siplb_over_kamailio": 50, "siplb_over_socket_forwarder": 10}
        for k, v in c["ratios"].items():
            t = targets.get(k)
            note = f"  (target >= {t}: {'met' if v >= t else 'missed'})" if v and t else ""
            lines.append(f"  {k:36s} {'%.2f' % v if v else NOT_AVAILABLE}{note}")
        lines.append("")
    s = res.get("scaling")
    if s:
        counts = sorted({int(n) for d in s["backends"].values() for n in d})
        lines.append("4. Scaling with backends (msgs/s at < 0.1% loss)")
        lines.append("  " + f"{'':20s}" + "".join(f"{n:>12d}" for n in counts))
        for name, d in s["backends"].items():
            cells = []
            for n in counts:
                r = d.get(str(n), {})
                cells.append(fmt_rate(r.get("msgs_per_s")) if r.get("available") else "n/a")
            lines.append("  " + f"{name:20s}" + "".join(f"{x:>12s}" for x in cells))
        pools = s.get("pools", {}).get("siplb", {})
        cells = [fmt_rate(r.get("msgs_per_s")) if r.get("available") else NOT_AVAILABLE for r in pools.values()]
        lines.append("  siplb pools (1, 100; traffic to one): " + ", ".join(cells))
        lines.append("")
    d = res.get("disruption")
    if d:
        lines.append(f"5. Disruption ({d['algorithm']}, table 65537, {d['keys']} calls): fraction moved vs ideal")
        for r in d["results"]:
            lines.append(f"  {r['backends']:5d} backends: removal {r['removal_moved']:.4f} (ideal {r['removal_ideal']:.4f})"
                         f", addition {r['addition_moved']:.4f} (ideal {r['addition_ideal']:.4f})")
        if d.get("affinity_bytes_per_dialog"):
            lines.append(f"  affinity table: {d['affinity_bytes_per_dialog']} bytes per dialog entry (siplb_balance)")
    return "\n".join(lines)


def chart(res, outdir):
    """throughput.png: left, Mpps from memory (net_pcap -> net_null: the I/O
    loop, the worker, the shipped daemon plain and edge); right, msgs/s at
    < 0.1% loss over the veths (and loopback) for every DUT."""
    if not shutil.which("gnuplot"):
        return None
    mem = os.path.join(outdir, "throughput_memory.dat")
    veth = os.path.join(outdir, "throughput.dat")
    n_mem = n_veth = 0
    with open(mem, "w") as f:
        f.write("# name mpps\n")
        for r in (res.get("dataplane") or {}).get("rows", []):
            f.write(f"\"{r['name']}\" {r['mpps']:.3f}\n")
            n_mem += 1
        for r in (res.get("daemon") or {}).get("rows", []):
            f.write(f"\"{r['name']}\" {r['mpps']:.3f}\n")
            n_mem += 1
    with open(veth, "w") as f:
        f.write("# name msgs_per_s\n")
        c = res.get("compare") or {}
        for name, r in (c.get("results") or {}).items():
            v = r.get("msgs_per_s") if r.get("available") else 0
            label = name.replace("_default_allocator", "\\n(default allocator)")
            label = label if r.get("available") else label + "\\n(" + NOT_AVAILABLE + ")"
            f.write(f"\"{label}\" {v or 0:.0f}\n")
            n_veth += 1
        for name, r in (c.get("loopback") or {}).items():
            if r.get("available"):
                f.write(f"\"{name.replace('_default_allocator', ' (qm)')}\\nloopback\" {r.get('msgs_per_s') or 0:.0f}\n")
                n_veth += 1
        s = res.get("scaling")
        if s:
            for name, d in s["backends"].items():
                for n, r in d.items():
                    if n != "2" and r.get("available"):
                        f.write(f"\"{name}\\n{n} backends\" {r.get('msgs_per_s') or 0:.0f}\n")
                        n_veth += 1
    if not n_mem and not n_veth:
        return None
    png = os.path.join(outdir, "throughput.png")
    m = res["machine"]
    la = " ".join(str(x) for x in m.get("load_average_start", []))
    panels = []
    if n_mem:
        panels.append((mem, "Mpps, one worker core, from memory (net_pcap -> net_null)", "Mpps", "%.2f"))
    if n_veth:
        panels.append((veth, "SIP msgs/s at < 0.1% loss, one core each, veths (and loopback)", "messages/s", "%.0f"))
    plots = ""
    for dat, title, ylabel, fmt in panels:
        plots += f"""
set title '{title}'
set ylabel '{ylabel}'
plot '{dat}' using 2:xtic(1) lc rgb '#3070b0', '' using 0:2:(sprintf('{fmt}', $2)) with labels offset 0,0.7
"""
    script = f"""
set terminal pngcairo size {700 * len(panels) + 200},650 noenhanced
set output '{png}'
set multiplot layout 1,{len(panels)} title '{m['cpu']}, {m['cores']} cores, {'quick' if res['quick'] else 'full'} run, load average {la}'
set style data histogram
set style fill solid 0.8 border -1
set boxwidth 0.7
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set grid ytics
set xtics font ',8' rotate by -30
unset key
{plots}
unset multiplot
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        log(f"gnuplot failed: {r.stderr.strip()}")
        return None
    return png


def main():
    ap = argparse.ArgumentParser(description="siplb benchmarks (see bench/README.md)")
    ap.add_argument("--quick", action="store_true", help="short run (about 2 min)")
    ap.add_argument("--build", default=os.path.join(SRC, os.environ.get("SIPLB_BUILD_DIR", "build")))
    ap.add_argument("--io", choices=("af_packet", "udp"), default="af_packet",
                    help="load generator and sinks: pre-built frames on packet sockets (default, higher "
                         "ceiling) or plain UDP sockets")
    ap.add_argument("--dut", default="kamailio,socket_forwarder,siplb",
                    help="comma list of devices under test for compare/scaling (default: all three)")
    ap.add_argument("--skip", default="",
                    help="comma list of sections to skip: micro,dataplane,daemon,compare,scaling,disruption")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    skip = set(filter(None, args.skip.split(",")))
    if args.quick:
        skip.add("scaling")
    outdir = os.path.join(build, "bench")
    os.makedirs(outdir, exist_ok=True)
    if os.cpu_count() < 2:
        log("needs at least 2 cores (one for the device under test, one for load generator and sinks)")
        return 1
    t_start = time.time()
    res = {"quick": args.quick, "machine": machine(), "micro": {}, "dataplane": {"available": False, "rows": []}}
    b = Bench(args, build)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if "micro" not in skip:
            res["micro"] = section_micro(build, args.quick)
        if "dataplane" not in skip:
            res["dataplane"] = section_dataplane(build, res["micro"], args.quick)
        if "daemon" not in skip:
            res["daemon"] = section_daemon(build, b.procs, b.tmp, res["dataplane"], args.quick)
        if not {"compare", "scaling"} <= skip:
            if os.geteuid() != 0:
                log("compare/scaling need root (network namespaces); skipped")
            else:
                b.rig.create()
                if "compare" not in skip:
                    res["compare"] = b.section_compare()
                if "scaling" not in skip:
                    res["scaling"] = b.section_scaling()
        if "disruption" not in skip:
            res["disruption"] = section_disruption(build)
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        b.cleanup()
        return 130
    finally:
        b.cleanup()
    res["elapsed_s"] = round(time.time() - t_start, 1)
    res["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(res, f, indent=2)
    png = chart(res, outdir)
    text = table(res)
    with open(os.path.join(outdir, "results.txt"), "w") as f:
        f.write(text + "\n")
    print(text)
    print(f"\nresults: {os.path.join(outdir, 'results.json')}" + (f", chart: {png}" if png else "")
          + f" ({res['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
