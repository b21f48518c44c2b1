#!/usr/bin/env python3
"""siplb on AF_XDP ports (issue 17): the balanced 'distribution' scenario
(calls, registrations, OPTIONS and keepalives to both pools, weights, call
integrity, checksums on both wires) with siplb's ports on net_af_xdp over
the rig's veths instead of net_af_packet. The veth runs the PMD's XDP
program (native veth XDP when the kernel offers it, copy mode: veths have
no zero-copy); the lb node's own traffic (DNS, health checks) goes through
siplb's kernel path (kernel_path = true). Checks siplb's ports are the
af_xdp PMD's and the XDP program is attached while siplb runs. Exit 77 (skip) only when network namespaces
cannot be created."""
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))
import siplb_e2e as E  # noqa: E402
import siplb_rig as R  # noqa: E402


def xdp_modes(rig: R.Rig) -> dict:
    """{iface: 'native'|'generic'|'none'} for the lb veths."""
    out = {}
    for dev in ("ext0", "int0"):
        r = subprocess.run(["ip", "netns", "exec", rig.ns_lb, "ip", "-d", "link", "show", "dev", dev],
                           capture_output=True, text=True, timeout=10)
        m = re.search(r"\b(xdpgeneric|xdpdrv|xdp)\b", r.stdout)
        out[dev] = {"xdpgeneric": "generic", "xdpdrv": "native", "xdp": "native"}.get(m[1] if m else "", "none")
    return out


def scenario_af_xdp(rig: R.Rig, d: E.Daemon, out_stream=None) -> E.Outcome:
    """The distribution scenario, then: siplb's ports are the af_xdp PMD's and
    the XDP program sits on both lb veths."""
    out = E.scenario_distribution(rig, d, out_stream)
    rc, text = d.ctl("stats", "--json", check=False)
    try:
        ports = {p["port"]: p for p in json.loads(text).get("ports", [])} if rc == 0 else {}
    except ValueError:
        ports = {}
    devices = {n: p.get("device") for n, p in ports.items()}
    out.check(devices == {"ext": "net_af_xdp0", "int": "net_af_xdp1"}, f"siplb's ports are net_af_xdp: {devices}")
    modes = xdp_modes(rig)
    out.numbers["xdp_mode"] = modes
    out.check(all(m != "none" for m in modes.values()), f"XDP program attached on the lb veths: {modes}")
    rx = {n: p.get("traffic", {}).get("rx_packets", 0) for n, p in ports.items()}
    out.check(all(v > 0 for v in rx.values()) and len(rx) == 2, f"both af_xdp ports received frames: {rx}")
    return out


def main() -> int:
    if (rc := E.preflight()) is not None:
        return rc
    work = Path(tempfile.mkdtemp(prefix="siplb-e2e-af_xdp-"))
    E.SCENARIOS["af_xdp"] = scenario_af_xdp
    return E.run_balanced_main(["af_xdp"], work, driver="af_xdp")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
