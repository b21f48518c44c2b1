#!/usr/bin/env python3
"""Self-test of the end-to-end rig, without siplb: builds the namespaces,
checks what net_af_packet will see on the lb veth (complete checksums), the
DNS server and its live edit, and real sipp calls, REGISTERs and OPTIONS
from three client addresses straight to the backends (the lb kernel routes
for this test only), then tears everything down and checks nothing is left.
Exit 77 (skip) only when network namespaces cannot be created."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))
import siplb_rig as R  # noqa: E402

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def main() -> int:
    ok, why = R.have_netns_privileges()
    if not ok:
        print(f"SKIP: {why}")
        return 77
    import tempfile
    work = Path(tempfile.mkdtemp(prefix="siplb-e2e-selftest-"))
    rig = R.Rig(work, n_backends=4, spare_backends=1)
    with rig:
        check(rig.checksum_check() == "", "af_packet on lb ext0 sees frames with complete IPv4/UDP checksums")

        zone = {"ttl": 3,
                "srv": [("_sip._udp.lund.example.net", f"b{i}.lund.example.net", 5060, 10, 10) for i in range(2)],
                "a": [(f"b{i}.lund.example.net", R.backend_ip(i)) for i in range(2)]}
        rig.start_dns(zone)
        srv = rig.dns_query("_sip._udp.lund.example.net")
        check(sorted(r[1][3] for r in srv) == ["b0.lund.example.net", "b1.lund.example.net"],
              f"dnsmasq serves the SRV set to the lb namespace: {srv}")
        check(all(0 < r[0] <= 3 for r in srv), "SRV TTL is the configured short TTL (3 s)")
        zone["srv"].append(("_sip._udp.lund.example.net", "b2.lund.example.net", 5060, 10, 10))
        zone["a"].append(("b2.lund.example.net", R.backend_ip(2)))
        rig.update_dns(zone)
        srv = rig.dns_query("_sip._udp.lund.example.net")
        a = rig.dns_query("b2.lund.example.net", "A")
        check(len(srv) == 3 and a and a[0][1] == R.backend_ip(2), "live DNS edit: third SRV target and its A record")

        for i in range(4):
            rig.start_backend(R.backend_ip(i))
        overloaded = rig.start_backend(R.backend_ip(4), variant="503")
        rig.wait_backends_ready()

        rig.set_kernel_forwarding(True)
        runs = []
        for i, src in enumerate(R.CLIENT_IPS):
            runs.append(rig.start_uac("call", f"{R.backend_ip(i)}:5060", src, calls=6, rate=10, pause_ms=300))
        runs.append(rig.start_uac("register", f"{R.backend_ip(3)}:5060", R.CLIENT_IPS[0], calls=5, rate=20))
        runs.append(rig.start_uac("options", f"{R.backend_ip(3)}:5060", R.CLIENT_IPS[1], calls=5, rate=20))
        probe503 = rig.start_uac("options", f"{overloaded.addr}", R.CLIENT_IPS[2], calls=2, rate=20,
                                 name="uac-options-503")
        t0 = time.monotonic()
        results = [r.wait(30) for r in runs]
        r503 = probe503.wait(30)
        for res in results:
            check(res.rc == 0 and res.successful == res.created > 0 and res.failed == 0, res.summary())
        check(r503.successful == 0 and r503.failed == 2, f"503 variant rejects OPTIONS: {r503.summary()}")
        print(f"     direct traffic took {time.monotonic() - t0:.1f}s")

        backends = [rig.backends[R.backend_ip(i)] for i in range(4)]
        seen, split = R.calls_per_backend(backends)
        invites = {cid: where for cid, where in seen.items()
                   if any("INVITE" in m for m in where.values())}
        complete = [cid for cid, where in invites.items()
                    if sorted(next(iter(where.values()))) == ["ACK", "BYE", "INVITE"]]
        check(len(invites) == 18 and len(complete) == 18 and not split,
              f"every call's INVITE, ACK and BYE logged by one backend ({len(complete)}/18 complete, {len(split)} split)")
        for i in range(3):
            n = sum(1 for _, m in backends[i].received() if m == "INVITE")
            check(n == 6, f"backend {backends[i].addr} logged {n}/6 INVITEs")
        regs = sum(1 for _, m in backends[3].received() if m in ("REGISTER", "OPTIONS"))
        check(regs == 10, f"backend {backends[3].addr} logged {regs}/10 REGISTER+OPTIONS")
        opts503 = sum(1 for _, m in overloaded.received() if m == "OPTIONS")
        check(opts503 == 2, f"503 backend logged {opts503}/2 OPTIONS")

        rig.kill_backend(R.backend_ip(0))
        check(not rig.backends[R.backend_ip(0)].proc.alive(), "a backend can be killed by its saved PID")
    left = rig.leftovers()
    check(not left, f"no namespaces, links or processes left after teardown: {left}")
    if failures:
        print(f"rig self-test: {len(failures)} check(s) failed; logs in {work}")
        return 1
    print("rig self-test: all checks passed")
    import shutil
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
