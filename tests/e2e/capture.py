#!/usr/bin/env python3
"""Seeing traffic through the daemon (issue 18), one part per test:
  capture.py capture   siplbctl capture of one Call-ID during sipp traffic:
                       tshark finds INVITE, 100/180/200, ACK, BYE and the BYE's
                       200 in the file, each as received and as sent, with the
                       addresses of the wire before and after the rewrite
                       (client->VIP and client->backend; backend->client and
                       VIP->client)
  capture.py capture_pipe  the same with '-w -': siplbctl's pcap on stdout piped
                       into tshark -r - (issue 18's "siplbctl capture ... -w - |
                       tshark -r -"), the same messages and addresses
  capture.py hep       [mirror] hep to sngrep listening for HEP (-L) in the lb
                       namespace: the call's messages arrive with the client's
                       and the backend's addresses
  capture.py pdump     dpdk-dumpcap attaching to the running daemon (rte_pdump)
                       as a secondary process with its --file-prefix
Exit 77 (skip) only when network namespaces cannot be created."""
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))
import siplb_e2e as E  # noqa: E402
import siplb_rig as R  # noqa: E402

HEP_PORT = 9060
CLIENT = R.CLIENT_IPS[0]
VIP = R.VIPS["trunk"]
TRUNK_IPS = {R.backend_ip(i) for i in E.TRUNK}
CALLS = 5
TRACED_CALL = 4  # sipp's 4th call: it starts ~3 s after the first, when the capture is running


def hugepages() -> int:
    """Hugepages the kernel has (0 where there is no hugetlbfs, as in this project's VMs)."""
    m = re.search(r"^HugePages_Total:\s+(\d+)", Path("/proc/meminfo").read_text(), re.M)
    return int(m.group(1)) if m else 0


class MirrorDaemon(E.Daemon):
    """The rig's daemon with [mirror] sending the trunk pool's calls to 127.0.0.1:9060 (lb namespace).
    huge: EAL on hugepages (a --no-huge primary shares no memory a secondary process could map)."""

    huge = False

    def start(self, timeout: float = 20) -> None:
        text = E.config_text(self.rig)
        if self.huge:
            text = text.replace('"--no-huge", ', "")
        text += "\n".join([
            "", "[mirror]", f'hep = "127.0.0.1:{HEP_PORT}"', 'pools = ["trunk"]', "sample = 1.0",
            "rate = 2000", "agent_id = 18", ""])
        self.config.write_text(text)
        self.proc = self.rig.spawn("siplb", self.rig.ns_lb, [str(E.daemon_path()), "--config", str(self.config)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise R.RigError(f"siplb exited ({self.proc.popen.returncode}): {self.log_tail()}")
            if self.rig.siplb_socket.exists() and self.ctl("status", check=False)[0] == 0:
                return
            time.sleep(0.2)
        raise R.RigError(f"siplb control socket not ready after {timeout}s: {self.log_tail()}")


SIP_FIELDS = ["ip.src", "udp.srcport", "ip.dst", "udp.dstport", "sip.Method", "sip.Status-Code",
              "sip.CSeq.method", "sip.Call-ID"]


def tshark_argv(source: str, extra: list | None = None) -> list[str]:
    """tshark printing SIP_FIELDS of every SIP message it reads from `source` (a file, or - for stdin)."""
    return ["tshark", "-r", source, *(extra or []), "-Y", "sip", "-T", "fields", "-E", "separator=|",
            *sum((["-e", f] for f in SIP_FIELDS), [])]


def sip_rows(pcap: Path, extra: list | None = None) -> list[dict]:
    """One dict per SIP message tshark finds in the file."""
    r = subprocess.run(tshark_argv(str(pcap), extra), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise R.RigError(f"tshark -r {pcap}: {r.stderr.strip()}")
    return parse_rows(r.stdout)


def parse_rows(text: str) -> list[dict]:
    fields = SIP_FIELDS
    rows = []
    for line in text.splitlines():
        v = line.split("|")
        if len(v) != len(fields):
            continue
        kind = v[4] or f"{v[5]} {v[6]}"  # "INVITE" or "200 INVITE"
        rows.append({"src": v[0], "sport": v[1], "dst": v[2], "dport": v[3], "kind": kind, "call_id": v[7]})
    return rows


WANT_REQUESTS = ["INVITE", "ACK", "BYE"]
WANT_RESPONSES = ["100 INVITE", "180 INVITE", "200 INVITE", "200 BYE"]


def check_capture(out: E.Outcome, rows: list[dict], call_id: str, summary: str) -> None:
    out.numbers["frames"] = len(rows)
    out.check(rows and all(r["call_id"] == call_id for r in rows),
              f"{len(rows)} SIP frames in the capture, all of Call-ID {call_id}: "
              f"{sorted({r['call_id'] for r in rows})}")
    backend = next((r["dst"] for r in rows if r["kind"] == "INVITE" and r["dst"] in TRUNK_IPS), None)
    out.check(backend is not None, f"the INVITE was sent to a trunk backend ({sorted(TRUNK_IPS)}): {backend}")

    def seen(kind, src, dst):
        return any(r["kind"] == kind and r["src"] == src and r["dst"] == dst for r in rows)

    for kind in WANT_REQUESTS:
        out.check(seen(kind, CLIENT, VIP) and seen(kind, CLIENT, backend),
                  f"{kind}: as received {CLIENT}->{VIP} and as sent {CLIENT}->{backend}")
    for kind in WANT_RESPONSES:
        out.check(seen(kind, backend, CLIENT) and seen(kind, VIP, CLIENT),
                  f"{kind}: as received {backend}->{CLIENT} and as sent {VIP}->{CLIENT}")
    m = re.search(r"(\d+) frames written, (\d+) lost", summary)
    out.check(m is not None and int(m.group(1)) == len(rows) and int(m.group(2)) == 0,
              f"siplbctl's summary counts the frames and reports none lost: {summary.strip()!r}")


def check_hep(out: E.Outcome, pcap: Path, call_id: str, status: dict) -> None:
    rows = [r for r in sip_rows(pcap) if r["call_id"] == call_id]
    out.numbers["hep_messages"] = len(rows)
    backend = next((r["dst"] for r in rows if r["kind"] == "INVITE"), None)
    out.check(backend in TRUNK_IPS, f"sngrep got the INVITE of {call_id} addressed to a trunk backend: {backend}")
    for kind in WANT_REQUESTS:
        out.check(any(r["kind"] == kind and r["src"] == CLIENT and r["dst"] == backend and r["dport"] == "5060"
                      for r in rows), f"HEP {kind}: {CLIENT}->{backend}:5060")
    for kind in WANT_RESPONSES:
        out.check(any(r["kind"] == kind and r["src"] == backend and r["dst"] == CLIENT for r in rows),
                  f"HEP {kind}: {backend}->{CLIENT}")
    vip_rows = [r for r in rows if VIP in (r["src"], r["dst"])]
    out.check(not vip_rows, f"no HEP message carries the VIP instead of the client or backend: {len(vip_rows)}")
    mirror = status.get("mirror", {})
    out.check(mirror.get("sent", 0) >= len(rows) and mirror.get("send_errors", 1) == 0,
              f"status mirror: {mirror}")


def run_traffic(rig: R.Rig, d: E.Daemon, parts: list, out_stream) -> list:
    outcomes = []
    hep_pcap = rig.workdir / "hep.pcap"
    sngrep = None
    if "hep" in parts:
        # -N: no interface, only capture; -q: quiet; -O: what arrives, as pcap.
        sngrep = rig.spawn("sngrep", rig.ns_lb, ["sngrep", "-N", "-q", "-L", f"udp:127.0.0.1:{HEP_PORT}",
                                                 "-O", str(hep_pcap)])
        time.sleep(1)
    uac = rig.start_uac("call", f"{VIP}:5060", CLIENT, calls=CALLS, rate=1, pause_ms=500, name="trunk-calls")
    call_id = f"{TRACED_CALL}-{uac.proc.popen.pid}@{CLIENT}"
    cap_pcap = rig.workdir / "capture.pcap"
    cap = tshark = None
    capture_argv = [str(E.siplbctl_path()), "capture", "--socket", str(rig.siplb_socket), "--call-id", call_id,
                    "--duration", str(CALLS + 5), "-w"]
    if "capture" in parts:
        cap = rig.spawn("siplbctl-capture", rig.ns_lb, capture_argv + [str(cap_pcap)])
    elif "capture_pipe" in parts:
        cap, tshark = capture_pipe(rig, capture_argv + ["-"])
    E.progress([uac], "calls", out_stream, budget=CALLS + 20)
    res = uac.wait(30)
    traffic = E.Outcome("traffic")
    traffic.check(res.rc == 0 and res.failed == 0 and res.successful == res.created == CALLS, res.summary())
    outcomes.append(traffic)
    if cap:
        o = E.Outcome("capture" if tshark is None else "capture_pipe")
        try:
            cap.popen.wait(timeout=CALLS + 15)
        except subprocess.TimeoutExpired:
            rig.stop(cap)
        summary = cap.log.read_text(errors="replace")
        o.check(cap.popen.returncode == 0, f"siplbctl capture exited {cap.popen.returncode}: {summary[-300:]!r}")
        if tshark is None:
            rows = sip_rows(cap_pcap)
        else:
            # siplbctl has exited: tshark reads to the end of the pipe and prints.
            try:
                text, err = tshark.popen.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                rig.stop(tshark)
                text, err = "", "tshark did not finish within 60 s"
            o.check(tshark.popen.returncode == 0, f"tshark -r - exited {tshark.popen.returncode}: {err[-300:]!r}")
            rows = parse_rows(text)
        check_capture(o, rows, call_id, summary)
        outcomes.append(o)
    if sngrep:
        o = E.Outcome("hep")
        time.sleep(1)
        rig.stop(sngrep, timeout=5)
        rc, text = d.ctl("status", "--json", check=False)
        import json
        status = json.loads(text) if rc == 0 else {}
        o.check(hep_pcap.exists(), f"sngrep wrote what it received to {hep_pcap}")
        if hep_pcap.exists():
            check_hep(o, hep_pcap, call_id, status)
        outcomes.append(o)
    return outcomes


def capture_pipe(rig: R.Rig, argv: list[str]) -> tuple[R.Proc, R.Proc]:
    """siplbctl capture ... -w - | tshark -r -: siplbctl's stdout is tshark's stdin; siplbctl's summary (stderr)
    goes to its log, tshark's fields to a pipe this process reads. Both are the rig's processes (stopped on
    failure by their PIDs)."""
    log = rig.workdir / "siplbctl-capture-pipe.log"
    with open(log, "wb") as f:
        ctl = subprocess.Popen(["ip", "netns", "exec", rig.ns_lb, *argv], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=f, cwd=rig.workdir, start_new_session=True)
    shark = subprocess.Popen(tshark_argv("-"), stdin=ctl.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=rig.workdir, start_new_session=True)
    ctl.stdout.close()  # tshark holds the read end: it sees EOF when siplbctl exits
    procs = (R.Proc("siplbctl-capture-pipe", ctl, log), R.Proc("tshark-pipe", shark, log))
    rig.procs.extend(procs)
    return procs


SKIPPED = []  # why a part could not run here


def run_pdump(rig: R.Rig, d: E.Daemon) -> E.Outcome:
    """dpdk-dumpcap as a secondary process of the daemon's EAL (same --file-prefix)."""
    o = E.Outcome("pdump")
    import json
    rc, text = d.ctl("status", "--json", check=False)
    o.check(rc == 0 and json.loads(text).get("pdump") is True,
            "siplb initialised rte_pdump (status \"pdump\": true): dpdk-dumpcap may attach")
    out = rig.workdir / "dumpcap.pcapng"
    dumpcap = shutil.which("dpdk-dumpcap")
    if not o.check(dumpcap is not None, "dpdk-dumpcap is installed (scripts/setup: dpdk-dev)"):
        return o
    uac = rig.start_uac("options", f"{VIP}:5060", CLIENT, calls=40, rate=10, name="options")
    r = subprocess.run(["ip", "netns", "exec", rig.ns_lb, dumpcap, f"--file-prefix={rig.pfx}",
                        "-i", "net_af_packet0", "-c", "10", "-a", "duration:8", "-w", str(out)],
                       capture_output=True, text=True, timeout=30)
    uac.wait(30)
    o.numbers["dumpcap_rc"] = r.returncode
    if r.returncode != 0 and not d.huge and "hugepage" in (r.stdout + r.stderr):
        # A --no-huge primary keeps its memory private: no secondary can map it.
        SKIPPED.append("dpdk-dumpcap cannot attach: the kernel has no hugepages, siplb runs with --no-huge, and a "
                       "secondary process maps the primary's hugepage files: " + (r.stdout + r.stderr).strip()[-300:])
        return o
    o.check(r.returncode == 0 and out.exists(),
            f"dpdk-dumpcap attached and wrote {out.name}: rc {r.returncode}: {(r.stdout + r.stderr).strip()[-600:]!r}")
    if out.exists():
        rows = sip_rows(out)
        o.check(any(x["kind"] == "OPTIONS" and x["dst"] == VIP for x in rows),
                f"dpdk-dumpcap saw OPTIONS to the VIP on net_af_packet0: {len(rows)} SIP frames")
    return o


def main() -> int:
    parts = sys.argv[1:]
    if (not parts or any(p not in ("capture", "capture_pipe", "hep", "pdump") for p in parts)
            or {"capture", "capture_pipe"} <= set(parts)):  # the daemon runs one capture at a time
        print("usage: capture.py capture|capture_pipe|hep|pdump... (capture or capture_pipe)")
        return 2
    if (rc := E.preflight()) is not None:
        return rc
    work = Path(tempfile.mkdtemp(prefix=f"siplb-e2e-{'-'.join(parts)}-"))

    def make_daemon(rig):
        d = MirrorDaemon(rig)
        d.huge = "pdump" in parts and hugepages() > 0
        return d

    def body(rig, d):
        outcomes = []
        if {"capture", "capture_pipe", "hep"} & set(parts):
            outcomes += run_traffic(rig, d, parts, sys.stdout)
        if "pdump" in parts:
            outcomes.append(run_pdump(rig, d))
        return outcomes

    if not E.report_outcomes(E.run_with_pool_daemon(work, make_daemon, body), work):
        return 1
    if SKIPPED:
        for why in SKIPPED:
            print(f"SKIP: {why}")
        return 77
    print("all checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
