#!/usr/bin/env python3
"""The body of scripts/demo (after setup and build): siplb balancing real SIP
traffic from sipp across sipp backends in network namespaces, with a real
DNS server, printed as a short report; one pool serves UDP, TCP and TLS
clients at once. Exits non-zero when a step fails or
when a part needed for the balanced demo is not built."""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import siplb_e2e as E  # noqa: E402
import siplb_rig as R  # noqa: E402

BOLD = "\033[1m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""
failed_steps = []


def say(text=""):
    print(text, flush=True)


def report(o: E.Outcome):
    say(f"{BOLD}[{'PASS' if o.ok else 'FAIL'}] {o.name}{RESET}")
    for c in o.checks:
        say(f"   {'ok ' if c.ok else 'BAD'} {c.text}")
    if not o.ok:
        failed_steps.append(o.name)


def ctl_commands() -> set:
    ctl = E.siplbctl_path()
    if not ctl.exists():
        return set()
    r = subprocess.run([str(ctl), "--help"], capture_output=True, text=True)
    return {line.split()[0] for line in r.stdout.splitlines() if line.startswith("  ") and line.split()}


def offline_step(work: Path, cmds: set):
    """The parser and the offline balancer on a sample call, when built."""
    ctl = str(E.siplbctl_path())
    sample = work / "invite.sip"
    sample.write_bytes(("INVITE sip:alice@lund.example.net SIP/2.0\r\n"
                        "Via: SIP/2.0/UDP 192.0.2.11:5060;branch=z9hG4bK-demo-1\r\n"
                        "From: <sip:bob@example.org>;tag=1\r\nTo: <sip:alice@lund.example.net>\r\n"
                        "Call-ID: demo-call-1@192.0.2.11\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
                        "Content-Length: 0\r\n\r\n").encode())
    if "parse" in cmds:
        r = subprocess.run([ctl, "parse", str(sample)], capture_output=True, text=True, timeout=20)
        o = E.Outcome("siplbctl parse (offline SIP parser)")
        o.check(r.returncode == 0, f"parse {sample.name}: rc {r.returncode}")
        report(o)
        for line in (r.stdout or r.stderr).splitlines()[:8]:
            say("      " + line)
    else:
        say("[----] siplbctl parse: not built yet (sip subsystem)")
    if "lookup" in cmds:
        rig = R.Rig(work / "cfg", run_id="offline")
        cfg = work / "offline.toml"
        cfg.write_text(E.config_text(rig))
        o = E.Outcome("siplbctl lookup --config (offline Maglev)")
        cids = [f"demo-call-{i}@192.0.2.1{i % 3 + 1}" for i in range(1, 7)]
        r = subprocess.run([ctl, "lookup", "--config", str(cfg), "--pool", "trunk", *cids],
                           capture_output=True, text=True, timeout=20)
        o.check(r.returncode == 0, f"6 Call-IDs through the trunk pool's Maglev table: rc {r.returncode}")
        report(o)
        for line in (r.stdout or r.stderr).strip().splitlines()[:8]:
            say("      " + line)
    else:
        say("[----] siplbctl lookup --config: not built yet (balance subsystem)")


def rig_step(work: Path):
    """Topology and endpoints without the balancer (lb kernel routes)."""
    o = E.Outcome("rig: namespaces, sipp endpoints, dnsmasq (direct calls, no balancer)")
    rig = R.Rig(work / "direct", n_backends=4, spare_backends=0)
    with rig:
        o.check(rig.checksum_check() == "", "lb veth (af_packet view) carries complete UDP checksums")
        rig.start_dns(E.zone())
        srv = rig.dns_query(E.LUND_SRV)
        o.check(len(srv) == 3, f"dnsmasq answers {E.LUND_SRV}: {len(srv)} SRV records, TTL {srv[0][0] if srv else '?'}s")
        E.start_pool_backends(rig)
        rig.set_kernel_forwarding(True)
        runs = [rig.start_uac("call", f"{R.backend_ip(i)}:5060", src, calls=10, rate=20, pause_ms=200)
                for i, src in enumerate(R.CLIENT_IPS)]
        E.progress(runs, "direct calls", sys.stdout, budget=30)
        for res in (r.wait(20) for r in runs):
            o.check(res.failed == 0 and res.successful == res.created == 10, res.summary())
    o.check(not rig.leftovers(), "torn down, nothing left")
    report(o)


def main() -> int:
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="siplb-demo-"))
    say(f"{BOLD}siplb demo{RESET}  (logs: {work})")
    ok, why = R.have_netns_privileges()
    cmds = ctl_commands()
    offline_step(work, cmds)
    if not ok:
        say(f"[FAIL] network namespaces unavailable: {why}; the demo needs root")
        return 1
    daemon = E.daemon_path()
    if not daemon.exists():
        rig_step(work)
        say("")
        say(f"{BOLD}NOT DEMONSTRATED: balancing through siplb{RESET} - the daemon ({daemon}) is not built yet;")
        say("only the rig itself (direct sipp calls, DNS, checksums) and the offline tools above were run.")
        return 2
    say("siplb in the lb namespace (net_af_packet on ext0/int0), pools lund (DNS SRV) and trunk (static;"
        " UDP, TCP, TLS)")
    E.run_balanced(["distribution", "dns_add", "kill", "overload", "transports", "ctl"], work / "balanced",
                   out_stream=sys.stdout, report=report)
    say("")
    say(f"demo finished in {time.monotonic() - t0:.0f}s: "
        + ("all steps passed" if not failed_steps else f"FAILED: {', '.join(failed_steps)}"))
    return 1 if failed_steps else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("\ninterrupted; everything created was removed")
        sys.exit(130)
    except R.RigError as e:
        say(f"[FAIL] {e}")
        sys.exit(1)
