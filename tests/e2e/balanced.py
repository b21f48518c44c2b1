#!/usr/bin/env python3
"""End-to-end scenarios through the siplb daemon (issue 9), one per test:
  balanced.py distribution|dns_add|kill|overload|passive_overload|ctl|two_vips|transports
Builds the rig (namespaces, sipp backends, dnsmasq), starts siplb in the lb
namespace from a generated config, runs the scenario and asserts every
number it prints. Exit 77 (skip) only when network namespaces cannot be
created; a missing daemon binary is a failure."""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))
import siplb_e2e as E  # noqa: E402
import siplb_rig as R  # noqa: E402


def main() -> int:
    names = sys.argv[1:]
    if not names or any(n not in E.SCENARIOS for n in names):
        print(f"usage: balanced.py {'|'.join(E.SCENARIOS)}...")
        return 2
    if (rc := E.preflight()) is not None:
        return rc
    work = Path(tempfile.mkdtemp(prefix=f"siplb-e2e-{'-'.join(names)}-"))
    failed = []

    def report(o):
        if not E.print_outcome(o, show_number=lambda k: not str(k).startswith("siplbctl")):
            failed.append(o.name)

    try:
        E.run_balanced(names, work, out_stream=sys.stdout, report=report)
    except R.RigError as e:
        print(f"FAIL: {e}")
        failed.append("rig")
    if failed:
        print(f"{len(failed)} part(s) failed: {', '.join(failed)}; logs in {work}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
