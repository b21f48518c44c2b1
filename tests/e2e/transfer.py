#!/usr/bin/env python3
"""Attended transfer through the daemon (issue 22): a dialog-creating INVITE
with Replaces (RFC 3891) reaches the backend of the dialog it names.

A client in the client namespace (python, raw SIP over UDP) sets up CALLS
calls A through the lund VIP (three backends, SRV weights 2:1:1) and keeps
them up; then, for each, it sends an INVITE with a new Call-ID B and
`Replaces: <A's Call-ID>;to-tag=<A's 200 OK>;from-tag=<A's From>`. Every B is
chosen (siplbctl query, before it is sent) so that the pool's table would
put it on another backend than A: only following the Replaces header puts it
on A's. Every other B writes A's Call-ID with '@' escaped as %40, the form a
phone copies verbatim from a Refer-To. Asserted: each B's INVITE logged by
exactly the backend (sipp UAS) that logged A's, every call answered 200 and
ended by BYE, and the lund pool's `dialogs.replaces_followed` in
`siplbctl stats --json` grew by CALLS with no `replaces_malformed`.
Exit 77 (skip) only when network namespaces cannot be created."""
import json
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))
import siplb_e2e as E  # noqa: E402
import siplb_rig as R  # noqa: E402

CALLS = 20
POOL = "lund"
VIP = R.VIPS[POOL]
CLIENT = R.CLIENT_IPS[0]

# The client: reads the plan (JSON list of {"a", "b", "escaped"}) and prints
# JSON per call: A's and B's final INVITE status, the tags, the BYE answers.
# INVITEs are resent every 0.5 s until a response arrives (RFC 3261 timer A).
TRANSFERRER = r"""
import hashlib, json, socket, sys, time
src, vip, port, plan = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.load(open(sys.argv[4]))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
sport = s.getsockname()[1]
me, target = f"{src}:{sport}", f"{vip}:{port}"
def request(method, call_id, cseq, from_tag, to_tag="", extra=()):
    branch = hashlib.sha1(f"{call_id}{method}{cseq}".encode()).hexdigest()[:16]
    lines = [f"{method} sip:transfer@{target} SIP/2.0",
             f"Via: SIP/2.0/UDP {me};branch=z9hG4bK{branch};rport",
             "Max-Forwards: 70",
             f"From: <sip:client@{me}>;tag={from_tag}",
             f"To: <sip:transfer@{target}>" + (f";tag={to_tag}" if to_tag else ""),
             f"Call-ID: {call_id}",
             f"CSeq: {cseq} {method}",
             f"Contact: <sip:client@{me}>", *extra, "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
def parse(data):
    head = data.decode("latin-1").split("\r\n\r\n", 1)[0].split("\r\n")
    hdr = {}
    for l in head[1:]:
        k, _, v = l.partition(":")
        hdr.setdefault(k.strip().lower(), v.strip())
    parts = head[0].split(" ", 2)
    code = int(parts[1]) if head[0].startswith("SIP/2.0 ") and parts[1].isdigit() else 0
    return code, hdr
s.settimeout(0.1)
def transaction(msg, call_id, method, budget=4.0):
    # (final status, To tag, source "ip:port" of the final response); 0 when none arrived in time
    end, resend, answered = time.monotonic() + budget, 0.0, False
    while time.monotonic() < end:
        if not answered and time.monotonic() >= resend:
            s.sendto(msg, (vip, port))
            resend = time.monotonic() + 0.5
        try:
            data, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        code, hdr = parse(data)
        if not code or hdr.get("call-id") != call_id or hdr.get("cseq", " ").split()[-1] != method:
            continue
        answered = True
        if code >= 200:
            return code, hdr.get("to", "").partition(";tag=")[2].split(";")[0], f"{addr[0]}:{addr[1]}"
    return 0, "", ""
out = []
for p in plan:  # the calls A, kept up
    tag = "fa" + hashlib.sha1(p["a"].encode()).hexdigest()[:10]
    code, to_tag, peer = transaction(request("INVITE", p["a"], 1, tag), p["a"], "INVITE")
    if 200 <= code < 300:
        s.sendto(request("ACK", p["a"], 1, tag, to_tag), (vip, port))
    out.append({"a": p["a"], "a_code": code, "a_from_tag": tag, "a_to_tag": to_tag, "a_peer": peer})
for p, r in zip(plan, out):  # the transferee's INVITEs, one per call A
    if not r["a_to_tag"]:
        continue
    named = p["a"].replace("@", "%40") if p["escaped"] else p["a"]
    replaces = f"Replaces: {named};to-tag={r['a_to_tag']};from-tag={r['a_from_tag']}"
    tag = "fb" + hashlib.sha1(p["b"].encode()).hexdigest()[:10]
    code, to_tag, peer = transaction(request("INVITE", p["b"], 1, tag, extra=[replaces]), p["b"], "INVITE")
    if 200 <= code < 300:
        s.sendto(request("ACK", p["b"], 1, tag, to_tag), (vip, port))
    r.update({"b": p["b"], "b_code": code, "b_from_tag": tag, "b_to_tag": to_tag, "b_peer": peer,
              "replaces": replaces})
for r in out:  # both dialogs end (a UAS that honoured Replaces would end A itself)
    for leg in ("a", "b"):
        if r.get(f"{leg}_to_tag"):
            msg = request("BYE", r[leg], 2, r[f"{leg}_from_tag"], r[f"{leg}_to_tag"])
            r[f"{leg}_bye"] = transaction(msg, r[leg], "BYE", budget=3.0)[0]
print(json.dumps(out))
"""


def query(d: E.Daemon, call_ids: list) -> dict:
    """Call-ID -> (backend, reason) as siplbctl query reports it."""
    _, text = d.ctl("query", POOL, "--", *call_ids)
    got = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 4 and parts[0] in call_ids:
            got[parts[0]] = (parts[1], parts[3])
    return got


def pool_dialogs(d: E.Daemon) -> dict:
    rc, text = d.ctl("stats", "--json", check=False)
    st = json.loads(text) if rc == 0 else {}
    for p in st.get("pools", []):
        if p.get("pool") == POOL:
            return p.get("dialogs", {})
    return {}


def plan_calls(d: E.Daemon, out: E.Outcome) -> list:
    """CALLS pairs (A, B): B's table pick is another backend than A's."""
    run = uuid.uuid4().hex[:8]
    a_ids = [f"xfer-a{i}-{run}@{CLIENT}" for i in range(CALLS)]
    a_pick = query(d, a_ids)
    plan = []
    for i, a in enumerate(a_ids):
        for attempt in range(8):
            cands = [f"xfer-b{i}-{attempt}{k}-{run}@{CLIENT}" for k in range(8)]
            b_pick = query(d, cands)
            b = next((c for c in cands if c in b_pick and a in a_pick and b_pick[c][0] != a_pick[a][0]), None)
            if b:
                plan.append({"a": a, "a_table": a_pick[a][0], "b": b, "b_table": b_pick[b][0], "escaped": i % 2 == 1})
                break
        else:
            raise R.RigError(f"siplbctl query {POOL}: no Call-ID of 64 maps elsewhere than {a_pick.get(a)}")
    elsewhere = sum(1 for p in plan if p["b_table"] != p["a_table"])
    out.check(elsewhere == CALLS, f"siplbctl query: the table puts {elsewhere}/{CALLS} transfer Call-IDs on "
                                  f"another backend than the call they replace")
    return plan


def run(rig: R.Rig, d: E.Daemon) -> E.Outcome:
    out = E.Outcome("transfer")
    plan = plan_calls(d, out)
    before = pool_dialogs(d)
    plan_file = rig.workdir / "plan.json"
    plan_file.write_text(json.dumps(plan))
    script = rig.workdir / "transferrer.py"
    script.write_text(TRANSFERRER)
    res = json.loads(R.sh(sys.executable, str(script), CLIENT, VIP, str(R.SIP_PORT), str(plan_file),
                          ns=rig.ns_client, timeout=CALLS * 12 + 10))
    after = pool_dialogs(d)
    vip = R.host_port(VIP, R.SIP_PORT)
    answered = [r for r in res if r["a_code"] == 200 and r.get("b_code") == 200
                and r["a_peer"] == r.get("b_peer") == vip]
    ended = [r for r in answered if r.get("a_bye") == 200 and r.get("b_bye") == 200]
    not_ended = [(r["a_code"], r["a_peer"], r.get("b_code"), r.get("b_peer"), r.get("a_bye"), r.get("b_bye"))
                 for r in res if r not in ended]
    out.check(len(answered) == CALLS and len(ended) == CALLS,
              f"{len(answered)}/{CALLS} calls A and their Replaces INVITEs answered 200 from the VIP, "
              f"{len(ended)} pairs ended by BYE/200: "
              f"{not_ended}")

    where = {}  # Call-ID -> backends that logged its INVITE
    for b in rig.backends.values():
        for cid, m in b.received():
            if m == "INVITE":
                where.setdefault(cid, set()).add(b.addr)
    lund = {R.host_port(R.backend_ip(i), R.SIP_PORT) for i in E.LUND_WEIGHTS}
    followed, wrong, on_table = 0, [], 0
    for p in plan:
        wa, wb = where.get(p["a"], set()), where.get(p["b"], set())
        if len(wa) == 1 and wa == wb and wa <= lund:
            followed += 1
        else:
            wrong.append(f"{p['b']}{' (escaped)' if p['escaped'] else ''}: A on {sorted(wa)}, B on {sorted(wb)}")
        on_table += wa == {p["a_table"]}
    out.numbers["backends_of_calls_a"] = {k: sum(1 for p in plan if where.get(p["a"]) == {k}) for k in sorted(lund)}
    out.check(on_table == CALLS, f"{on_table}/{CALLS} calls A on the backend siplbctl query named beforehand")
    escaped = sum(1 for p in plan if p["escaped"])
    out.check(not wrong, f"{followed}/{CALLS} Replaces INVITEs ({escaped} naming the call with '@' as %40) reached "
                         f"exactly the backend of the call they replace, not the table's pick: {wrong}")
    grown = {k: after.get(k, 0) - before.get(k, 0) for k in ("replaces_followed", "replaces_malformed")}
    out.numbers["dialogs_counters"] = after
    out.check(grown == {"replaces_followed": CALLS, "replaces_malformed": 0},
              f"pool {POOL} stats dialogs: replaces_followed +{grown['replaces_followed']} (want {CALLS}), "
              f"replaces_malformed +{grown['replaces_malformed']} (want 0)")
    return out


def main() -> int:
    if (rc := E.preflight()) is not None:
        return rc
    work = Path(tempfile.mkdtemp(prefix="siplb-e2e-transfer-"))
    outcomes = E.run_with_pool_daemon(work, E.Daemon, lambda rig, d: [run(rig, d)])
    if not E.report_outcomes(outcomes, work):
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
