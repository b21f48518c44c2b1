#!/usr/bin/env python3
"""Edge networking end to end (issue 6) through the siplb daemon in the rig:
the client namespace pings a VIP and siplb answers the echoes (the lb kernel
has no VIPs and ip_forward=0, so nobody else could). Exit 77 (skip) only
when network namespaces cannot be created.

Fragmented datagrams are covered byte-exactly over net_ring
(tests/dataplane/frag_test.cpp). Through net_af_packet they are not yet:
the kernel defragments for the PMD's fanout socket, so siplb receives one
oversize frame, and egress fragmentation applies only to datagrams siplb
reassembled itself."""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))
import siplb_e2e as E  # noqa: E402
import siplb_rig as R  # noqa: E402

PINGER = r"""
import os, socket, struct, sys, time
dst, n = sys.argv[1], int(sys.argv[2])
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack(f"!{len(b)//2}H", b))
    while t >> 16: t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(2)
ident, answered = os.getpid() & 0xFFFF, 0
for seq in range(1, n + 1):
    payload = b"siplb-edge" * 5
    h = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    s.sendto(struct.pack("!BBHHH", 8, 0, csum(h + payload), ident, seq) + payload, (dst, 0))
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            break
        icmp = data[(data[0] & 15) * 4:]
        if addr[0] == dst and icmp[0] == 0 and struct.unpack("!HH", icmp[4:8]) == (ident, seq) and icmp[8:] == payload:
            answered += 1
            break
print(answered)
"""

def main() -> int:
    ok, why = R.have_netns_privileges()
    if not ok:
        print(f"SKIP: {why}")
        return 77
    for binary in (E.daemon_path(), E.siplbctl_path()):
        if not binary.exists():
            print(f"FAIL: {binary} is not built")
            return 1
    work = Path(tempfile.mkdtemp(prefix="siplb-e2e-edge-"))
    out = E.Outcome("edge")
    rig = R.Rig(work, n_backends=4, spare_backends=1)
    try:
        with rig:
            rig.start_dns(E.zone())
            E.start_pool_backends(rig)
            d = E.Daemon(rig)
            d.start()
            E.wait_pool_ready(rig, d, out)
            if out.ok:
                vip = R.VIPS["trunk"]
                r = R.sh("python3", "-c", PINGER, vip, "3", ns=rig.ns_client, timeout=20).strip()
                out.check(r == "3", f"client pings VIP {vip}, siplb answers 3 of 3 echoes ({r})")
            rc = d.stop()
            out.check(rc == 0, f"siplb stopped cleanly on SIGTERM (exit {rc})")
        left = rig.leftovers()
        out.check(not left, f"no namespaces, links or processes left: {left}")
    except R.RigError as e:
        out.check(False, f"rig: {e}")
    for c in out.checks:
        print(("ok   " if c.ok else "FAIL ") + c.text, flush=True)
    if out.numbers:
        print("     numbers: " + ", ".join(f"{k}={v}" for k, v in out.numbers.items()), flush=True)
    if not out.ok:
        print(f"edge: failed; logs in {work}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
