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


def main() -> int:
    names = sys.argv[1:]
    if not names or any(n not in E.SCENARIOS for n in names):
        print(f"usage: balanced.py {'|'.join(E.SCENARIOS)}...")
        return 2
    if (rc := E.preflight()) is not None:
        return rc
    work = Path(tempfile.mkdtemp(prefix=f"siplb-e2e-{'-'.join(names)}-"))
    return E.run_balanced_main(names, work, show_number=lambda k: not str(k).startswith("siplbctl"))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
