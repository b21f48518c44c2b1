#!/usr/bin/env python3
"""Edge networking end to end (issue 6) through the siplb daemon in the rig,
IPv4 and IPv6 (Rig(ipv6=True)), net_af_packet with framesz=4096:

0. control, before siplb starts: with an on-link route to each VIP the
   client's ARP / neighbor solicitation goes unanswered and so do its
   echoes (the lb kernel has no VIPs, no proxy ARP/ND, forwarding off and
   a blackhole route for the IPv6 VIP prefix), so whatever answers later
   is siplb.
1. ping: the client pings the IPv4 and the IPv6 VIP through the static
   route via the lb node address; siplb answers 3 of 3 echoes.
2. ARP and ND: the client gets on-link routes to both VIPs (no neighbor
   entry for them), pings again, and its kernel resolves each VIP itself;
   `ip neigh` must then show the VIP at the lb ext MAC (reachable), and a
   capture on c0 the ARP reply / solicited neighbor advertisement naming it.
3. fragments: the client sends one SIP INVITE of 3000 bytes of UDP
   payload (large SDP, unique Call-ID) to each VIP; at MTU 1500 its kernel
   fragments it. Checked: a final response (200) comes back from the
   VIP:5060 it was sent to, ACK and BYE are answered, the Call-ID is
   logged by exactly one backend (the one `siplbctl query` names), and an
   AF_PACKET capture on b0 (backends namespace), checked here and not by
   siplb, shows the INVITE arriving as IP fragments of at most 1500 bytes
   with valid IPv4 header checksums, contiguous offsets, a valid UDP
   checksum over the reassembled datagram, a UDP payload byte-identical to
   the one the client sent and (IPv6) a fragment identification set.
   IPv4: the PMD's fanout socket has the kernel reassemble the fragments
   (PACKET_FANOUT_FLAG_DEFRAG), so siplb receives one 3042-byte frame and
   fragments it on egress. IPv6: siplb reassembles (rte_ip_frag), balances
   and fragments again.
   The IPv4 INVITE uses a Call-ID that lands on 198.51.100.13, which is in
   lund and trunk: its answers must come from trunk's VIP, the one the
   client sent to (siplb places a shared backend's datagram by its call).
   siplb's own counters ('stats' edge.*) must agree: echo replies, ARP
   replies / NAs, fragments sent (and for IPv6 received and reassembled).
4. siplb stops cleanly; no namespaces, links or processes are left.

Exit 77 (skip) only when network namespaces cannot be created."""
import json
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))
import siplb_e2e as E  # noqa: E402
import siplb_rig as R  # noqa: E402

MTU = 1500
INVITE_PAYLOAD = 3000     # bytes of UDP payload (SIP headers + SDP)
PINGS = 3
RESOLVED_STATES = {"REACHABLE", "STALE", "DELAY", "PROBE"}

# ICMP / ICMPv6 echo from one source address; prints JSON: answered, RTTs.
PINGER = r"""
import json, os, socket, struct, sys, time
src, dst, n, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
v6 = ":" in dst
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack(f"!{len(b)//2}H", b))
    while t >> 16: t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF
if v6:  # the kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket (RFC 3542)
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    request, reply = 128, 129
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    request, reply = 8, 0
s.bind((src, 0))
s.settimeout(wait)
ident, answered, rtts = os.getpid() & 0xFFFF, 0, []
for seq in range(1, n + 1):
    payload = b"siplb-edge" * 5
    h = struct.pack("!BBHHH", request, 0, 0, ident, seq)
    ck = 0 if v6 else csum(h + payload)
    t0 = time.monotonic()
    s.sendto(struct.pack("!BBHHH", request, 0, ck, ident, seq) + payload, (dst, 0))
    deadline = t0 + wait
    while time.monotonic() < deadline:
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            break
        icmp = data if v6 else data[(data[0] & 15) * 4:]
        if (addr[0] == dst and len(icmp) >= 8 and icmp[0] == reply and
                struct.unpack("!HH", icmp[4:8]) == (ident, seq) and icmp[8:] == payload):
            answered += 1
            rtts.append(round((time.monotonic() - t0) * 1000, 2))
            break
print(json.dumps({"answered": answered, "rtt_ms": rtts}))
"""

# One INVITE dialog from src to vip:5060: INVITE (payload of exactly `size`
# bytes), then ACK and BYE once a 2xx arrives. Writes the INVITE's UDP
# payload to `payload_file` and prints JSON: source port, every response
# (status, CSeq method, source address and port), and the BYE's answer.
INVITER = r"""
import hashlib, json, socket, sys, time
src, vip, port, call_id, size, payload_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
v6 = ":" in vip
fam = socket.AF_INET6 if v6 else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
if not v6:  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT: never DF, the kernel fragments at the 1500-byte MTU
    s.setsockopt(socket.IPPROTO_IP, 10, 0)
s.bind((src, 0))
sport = s.getsockname()[1]
me = f"[{src}]:{sport}" if v6 else f"{src}:{sport}"
target = f"[{vip}]:{port}" if v6 else f"{vip}:{port}"
ipver = "IP6" if v6 else "IP4"
def request(method, cseq, to_tag="", body=b""):
    lines = [f"{method} sip:edge@{target} SIP/2.0",
             f"Via: SIP/2.0/UDP {me};branch=z9hG4bK{hashlib.sha1((call_id + method).encode()).hexdigest()[:16]};rport",
             "Max-Forwards: 70",
             f"From: <sip:client@{me}>;tag=edge{sport}",
             f"To: <sip:edge@{target}>" + (f";tag={to_tag}" if to_tag else ""),
             f"Call-ID: {call_id}",
             f"CSeq: {cseq} {method}",
             f"Contact: <sip:client@{me}>"]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
def sdp(length):
    # A large but valid offer: many attribute lines, the last one padded so
    # that the whole datagram has exactly `size` bytes.
    head = (f"v=0\r\no=client 4711 4711 IN {ipver} {src}\r\ns=siplb edge\r\nc=IN {ipver} {src}\r\nt=0 0\r\n"
            "m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\n").encode()
    body, i = head, 0
    while len(body) < length:
        line = f"a=x-siplb-pad:{i:04d}:{hashlib.sha256(f'{call_id}{i}'.encode()).hexdigest()}\r\n".encode()
        if len(body) + len(line) > length:
            room = length - len(body)
            line = (b"a=x-p:" + b"x" * max(0, room - 8) + b"\r\n")[:room] if room >= 8 else b""
            if not line:  # fewer than 8 bytes left: widen the previous line instead
                body = body[:-2] + b"y" * room + b"\r\n"
                break
        body += line
        i += 1
    return body
body_len = 1000
for _ in range(3):  # Content-Length has as many digits as the body length needs
    body_len = size - len(request("INVITE", 1, body=b"x" * body_len)) + body_len
invite = request("INVITE", 1, body=sdp(body_len))
assert len(invite) == size, (len(invite), size)
open(payload_file, "wb").write(invite)
def parse(data):
    text = data.decode("latin-1")
    head = text.split("\r\n\r\n", 1)[0].split("\r\n")
    hdr = {}
    for l in head[1:]:
        k, _, v = l.partition(":")
        hdr.setdefault(k.strip().lower(), v.strip())
    parts = head[0].split(" ", 2)
    code = int(parts[1]) if head[0].startswith("SIP/2.0 ") and parts[1].isdigit() else 0
    return code, hdr
result = {"sport": sport, "invite_bytes": len(invite), "responses": [], "bye": None}
s.settimeout(0.25)
def wait_for(method, budget):
    end = time.monotonic() + budget
    while time.monotonic() < end:
        try:
            data, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        code, hdr = parse(data)
        if not code or hdr.get("call-id") != call_id:
            continue
        cseq_method = hdr.get("cseq", " ").split()[-1]
        result["responses"].append({"code": code, "method": cseq_method, "from": [addr[0], addr[1]]})
        if cseq_method == method and code >= 200:
            return code, hdr
    return 0, {}
t0 = time.monotonic()
s.sendto(invite, (vip, port))
code, hdr = wait_for("INVITE", 4)
result["final_s"] = round(time.monotonic() - t0, 3)
if 200 <= code < 300:
    to_tag = hdr.get("to", "").partition(";tag=")[2].split(";")[0]
    s.sendto(request("ACK", 1, to_tag), (vip, port))
    s.sendto(request("BYE", 2, to_tag), (vip, port))
    bye, _ = wait_for("BYE", 3)
    result["bye"] = bye
print(json.dumps(result))
"""


# ------------------------------------------------------------ wire checks
def csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return t


def parse_ip(frame: bytes) -> dict | None:
    """One captured Ethernet frame as an IP datagram or fragment: addresses,
    fragment fields, the IP datagram length on the wire and the bytes
    after the IP header (and fragment header)."""
    if len(frame) < 34:
        return None
    et, ip = frame[12:14], frame[14:]
    if et == b"\x08\x00" and ip[0] >> 4 == 4:
        ihl, total = (ip[0] & 15) * 4, struct.unpack("!H", ip[2:4])[0]
        ip = ip[:total]  # drop Ethernet padding
        flags = struct.unpack("!H", ip[6:8])[0]
        return {"v": 4, "src": socket.inet_ntop(socket.AF_INET, ip[12:16]),
                "dst": socket.inet_ntop(socket.AF_INET, ip[16:20]), "raw_src": ip[12:16], "raw_dst": ip[16:20],
                "ip_len": total, "hdr_ok": csum(ip[:ihl]) == 0xFFFF, "ttl": ip[8], "proto": ip[9],
                "id": struct.unpack("!H", ip[4:6])[0], "mf": bool(flags & 0x2000), "df": bool(flags & 0x4000),
                "off": (flags & 0x1FFF) * 8, "frag": bool(flags & 0x3FFF), "data": ip[ihl:]}
    if et == b"\x86\xdd" and ip[0] >> 4 == 6 and len(ip) >= 40:
        plen = struct.unpack("!H", ip[4:6])[0]
        ip = ip[:40 + plen]
        d = {"v": 6, "src": socket.inet_ntop(socket.AF_INET6, ip[8:24]),
             "dst": socket.inet_ntop(socket.AF_INET6, ip[24:40]), "raw_src": ip[8:24], "raw_dst": ip[24:40],
             "ip_len": 40 + plen, "hdr_ok": True, "ttl": ip[7], "proto": ip[6], "id": None, "mf": False,
             "df": False, "off": 0, "frag": False, "data": ip[40:]}
        if ip[6] == 44 and len(ip) >= 48:  # fragment header right after the fixed header
            fh = ip[40:48]
            offmf = struct.unpack("!H", fh[2:4])[0]
            d.update(proto=fh[0], id=struct.unpack("!I", fh[4:8])[0], mf=bool(offmf & 1), off=offmf & 0xFFF8,
                     frag=True, data=ip[48:])
        return d
    return None


def reassemble(pieces: list[dict]) -> tuple[bytes | None, str]:
    """The transport bytes of one datagram from its fragments (or its one
    unfragmented packet), with the reason when they do not fit together."""
    pieces = sorted(pieces, key=lambda p: p["off"])
    out, at = b"", 0
    for i, p in enumerate(pieces):
        last = i == len(pieces) - 1
        if p["off"] != at:
            return None, f"fragment at offset {p['off']}, expected {at} (hole or overlap)"
        if p["mf"] == last:
            return None, f"fragment at offset {p['off']}: more-fragments flag {p['mf']} on the {'last' if last else 'not last'} piece"
        if not last and len(p["data"]) % 8:
            return None, f"fragment at offset {p['off']}: {len(p['data'])} data bytes, not a multiple of 8"
        out += p["data"]
        at += len(p["data"])
    return out, ""


def udp_checksum_ok(v: int, raw_src: bytes, raw_dst: bytes, udp: bytes) -> bool:
    if len(udp) < 8 or struct.unpack("!H", udp[6:8])[0] == 0:
        return False  # absent checksum: not accepted here (mandatory for IPv6, sent by the client for IPv4)
    if v == 4:
        pseudo = raw_src + raw_dst + struct.pack("!BBH", 0, 17, len(udp))
    else:
        pseudo = raw_src + raw_dst + struct.pack("!IxxxB", len(udp), 17)
    return csum(pseudo + udp) == 0xFFFF


def check_invite_on_wire(out: E.Outcome, fam: str, frames: list[bytes], client_ip: str, backend_ips: set,
                         call_id: str, sent: bytes) -> int:
    """The INVITE as b0 received it, verified independently of siplb.
    Returns the number of its fragments seen."""
    pkts = [p for p in (parse_ip(f) for f in frames) if p and p["src"] == client_ip and p["dst"] in backend_ips]
    groups: dict = {}
    for p in pkts:
        if p["proto"] != 17:
            continue
        key = (p["dst"], p["id"]) if p["frag"] else (p["dst"], "whole", id(p))
        groups.setdefault(key, []).append(p)
    invites = []
    for key, pieces in groups.items():
        data, why = reassemble(pieces)
        first = next((p for p in pieces if p["off"] == 0), None)
        if first is None or len(first["data"]) < 8:
            continue
        if data is None:
            # first fragment names the datagram: keep the broken one if it is ours
            if call_id.encode() in first["data"]:
                invites.append((pieces, None, why))
            continue
        if data[8:15] == b"INVITE " and f"Call-ID: {call_id}\r\n".encode() in data:
            invites.append((pieces, data, ""))
    n_frames = sum(len(p) for p, _, _ in invites)
    out.numbers[f"{fam}_invite_frames_on_b0"] = n_frames
    if not invites:
        out.check(False, f"{fam}: the fragmented INVITE reached b0 ({len(pkts)} frames from {client_ip} to the "
                         f"backends captured, none of them the INVITE)")
        return 0
    out.check(len(invites) == 1, f"{fam}: the INVITE reached b0 exactly once ({len(invites)} datagrams)")
    pieces, data, why = invites[0]
    pieces = sorted(pieces, key=lambda p: p["off"])
    sizes = [p["ip_len"] for p in pieces]
    out.numbers[f"{fam}_fragment_ip_bytes"] = sizes
    out.numbers[f"{fam}_fragment_offsets"] = [p["off"] for p in pieces]
    out.numbers[f"{fam}_fragment_id"] = pieces[0]["id"]
    if fam == "v6":
        # siplb builds these fragment headers itself (DPDK's fragmenter writes
        # identification 0 into every one, so two datagrams could be merged).
        out.check(pieces[0]["id"] != 0, f"{fam}: fragment header identification set ({pieces[0]['id']}, not 0)")
    out.numbers[f"{fam}_ttl"] = sorted({p["ttl"] for p in pieces})
    out.check(len(pieces) >= 2 and all(p["frag"] for p in pieces) and max(sizes) <= MTU,
              f"{fam}: INVITE arrives as {len(pieces)} IP fragment(s) of {sizes} bytes of IP datagram "
              f"(at most {MTU} each)")
    if fam == "v4":
        bad = [p["off"] for p in pieces if not p["hdr_ok"]]
        out.check(not bad, f"{fam}: IPv4 header checksum valid on all {len(pieces)} fragments (bad at offsets {bad})")
    out.check(data is not None, f"{fam}: the fragments fit together (contiguous offsets, MF set on all but the "
                                f"last){': ' + why if why else ''}")
    if data is None:
        return len(pieces)
    ulen = struct.unpack("!H", data[4:6])[0]
    ok = udp_checksum_ok(pieces[0]["v"], pieces[0]["raw_src"], pieces[0]["raw_dst"], data)
    out.numbers[f"{fam}_udp_checksum"] = f"0x{struct.unpack('!H', data[6:8])[0]:04x} {'valid' if ok else 'INVALID'}"
    out.check(ulen == len(data) and ok,
              f"{fam}: UDP checksum over the reassembled {len(data)}-byte datagram valid ({ok}), "
              f"UDP length {ulen}")
    payload = data[8:]
    same = payload == sent
    first_diff = next((i for i, (a, b) in enumerate(zip(payload, sent)) if a != b), min(len(payload), len(sent)))
    out.check(same, f"{fam}: reassembled UDP payload ({len(payload)} bytes) byte-identical to what the client sent "
                    f"({len(sent)} bytes)" + ("" if same else f", first difference at byte {first_diff}"))
    return len(pieces)


# ---------------------------------------------------------------- helpers
def script(rig: R.Rig, name: str, text: str) -> str:
    """The helper programs run in the client namespace from files in the
    workdir (short command lines in errors, kept with the logs)."""
    path = rig.workdir / name
    path.write_text(text)
    return str(path)


def ping(rig: R.Rig, src: str, dst: str, n: int = PINGS, wait: float = 2) -> dict:
    return json.loads(R.sh(sys.executable, script(rig, "pinger.py", PINGER), src, dst, str(n), str(wait),
                           ns=rig.ns_client, timeout=n * wait + 10))


def neighbor(rig: R.Rig, ip: str) -> dict:
    fam = "-6" if ":" in ip else "-4"
    entries = json.loads(R.sh("ip", "-j", fam, "neigh", "show", "to", ip, "dev", "c0", ns=rig.ns_client) or "[]")
    return entries[0] if entries else {}


def stats(d: E.Daemon) -> dict:
    rc, text = d.ctl("stats", "--json", check=False)
    try:
        return json.loads(text) if rc == 0 else {}
    except ValueError:
        return {}


def drops(st: dict) -> dict:
    """Drop counters by reason and port TX drops from 'siplbctl stats --json'."""
    d = {k: v for k, v in st.get("totals", {}).get("drops", {}).items() if v}
    for p in st.get("ports", []):
        for k, v in p.get("traffic", {}).items():
            if k == "tx_dropped" and v:
                d[f"port {p.get('port')} tx_dropped"] = v
        for k, v in p.get("driver", {}).items():
            if k == "oerrors" and v:
                d[f"port {p.get('port')} oerrors"] = v
    return d


def edge_counters(st: dict) -> dict:
    """siplb's worker counters ('stats' totals.GROUP.NAME) as {"GROUP.NAME": n}."""
    return {f"{g}.{k}": v for g, kinds in st.get("totals", {}).items() if isinstance(kinds, dict)
            for k, v in kinds.items() if isinstance(v, int)}


def sent_to_backends(st: dict, pool: str) -> dict:
    """Packets and bytes siplb counts as forwarded to each backend of a pool."""
    return {b["backend"]: (b.get("traffic", {}).get("packets_to", 0), b.get("traffic", {}).get("bytes_to", 0))
            for b in st.get("backends", []) if b.get("pool") == pool}


def delta(after: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def onlink_route(rig: R.Rig, fam: str, src: str, vip: str, add: bool) -> None:
    plen = "128" if fam == "v6" else "32"
    f = "-6" if fam == "v6" else "-4"
    if add:
        R.sh("ip", f, "route", "add", f"{vip}/{plen}", "dev", "c0", "src", src, ns=rig.ns_client)
    else:
        R.sh("ip", f, "route", "del", f"{vip}/{plen}", "dev", "c0", ns=rig.ns_client)
        R.sh("ip", f, "neigh", "flush", "to", vip, "dev", "c0", ns=rig.ns_client, check=False)


def state_of(entry: dict) -> set:
    st = entry.get("state", [])
    return set(st if isinstance(st, list) else [st])


def nobody_answers_without_siplb(out: E.Outcome, rig: R.Rig, fam: str, src: str, vip: str) -> None:
    """Control, before siplb starts: on the on-link route the VIP stays
    unresolved and unanswered, so the lb kernel (no VIPs, no proxy ARP/ND)
    cannot be what answers once siplb runs."""
    onlink_route(rig, fam, src, vip, add=True)
    r = ping(rig, src, vip, n=1, wait=1.2)
    entry = neighbor(rig, vip)
    onlink_route(rig, fam, src, vip, add=False)
    st = state_of(entry)
    out.check(r["answered"] == 0 and not (st & RESOLVED_STATES) and not entry.get("lladdr"),
              f"{fam}: before siplb runs, the VIP {vip} is not resolved ({'/'.join(sorted(st)) or 'no entry'}) "
              f"and not answered ({r['answered']} echo replies): the lb kernel does not answer for it")


def resolve_and_ping(out: E.Outcome, rig: R.Rig, d: E.Daemon, fam: str, src: str, vip: str) -> None:
    """On-link route to the VIP, no neighbor entry: the client's kernel must
    resolve it (ARP / neighbor solicitation), and only siplb can answer.
    A capture on c0 shows the answer itself."""
    onlink_route(rig, fam, src, vip, add=True)
    before_entry = neighbor(rig, vip)
    cap = R.FrameCapture(rig, rig.ns_client, "c0", seconds=8, arp=True)
    c0 = edge_counters(stats(d))
    r = ping(rig, src, vip)
    entry = neighbor(rig, vip)
    moved = delta(edge_counters(stats(d)), c0)
    answers = [a for a in (resolution_answer(f, vip) for f in cap.frames()) if a]
    st = state_of(entry)
    what = "ARP" if fam == "v4" else "ND"
    out.numbers[f"{fam}_neigh"] = f"{entry.get('lladdr', '-')} {'/'.join(sorted(st)) or '-'}"
    out.numbers[f"{fam}_{what}_answers_on_c0"] = answers
    out.numbers[f"{fam}_onlink_ping_rtt_ms"] = r["rtt_ms"]
    out.numbers[f"{fam}_siplb_counters_onlink_ping"] = moved
    out.check(not before_entry and entry.get("lladdr") == R.MAC_LB_EXT and st & RESOLVED_STATES,
              f"{fam}: client resolves VIP {vip} by {what} on an on-link route: ip neigh "
              f"{entry.get('lladdr', 'none')} {'/'.join(sorted(st)) or '-'} (lb ext MAC {R.MAC_LB_EXT}; "
              f"no entry before: {not before_entry})")
    good = [a for a in answers if a["mac"] == R.MAC_LB_EXT and a["ok"]]
    out.check(good and len(good) == len(answers),
              f"{fam}: {len(answers)} {what} answer(s) for {vip} on c0, {len(good)} naming {R.MAC_LB_EXT}"
              + (" (solicited NA, override, target link-layer address, valid ICMPv6 checksum)" if fam == "v6"
                 else " (ARP reply from the VIP to the client)"))
    name = "neighbor.arp_replies" if fam == "v4" else "neighbor.nd_advertisements"
    out.check(moved.get(name, 0) >= 1, f"{fam}: siplb counts the answer ({name} +{moved.get(name, 0)})")
    out.check(r["answered"] == PINGS and moved.get("icmp.echo_replies", 0) == PINGS,
              f"{fam}: client pings VIP {vip} on-link, siplb answers {r['answered']} of {PINGS} echoes "
              f"(icmp.echo_replies +{moved.get('icmp.echo_replies', 0)}; RTT ms {r['rtt_ms']})")


def resolution_answer(frame: bytes, vip: str) -> dict | None:
    """An ARP reply or neighbor advertisement for `vip` in a frame from c0."""
    if len(frame) >= 42 and frame[12:14] == b"\x08\x06":
        arp = frame[14:42]
        op = struct.unpack("!H", arp[6:8])[0]
        if op == 2 and socket.inet_ntop(socket.AF_INET, arp[14:18]) == vip:
            mac = arp[8:14].hex(":")
            return {"kind": "arp-reply", "mac": mac, "eth_src": frame[6:12].hex(":"),
                    "ok": frame[6:12].hex(":") == mac and arp[:6] == b"\x00\x01\x08\x00\x06\x04"}
    p = parse_ip(frame)
    if p and p["v"] == 6 and p["proto"] == 58 and len(p["data"]) >= 32 and p["data"][0] == 136:
        icmp = p["data"]
        if socket.inet_ntop(socket.AF_INET6, icmp[8:24]) != vip:
            return None
        mac = next((icmp[o + 2:o + 8].hex(":") for o in range(24, len(icmp) - 7, 8)
                    if icmp[o] == 2 and icmp[o + 1] == 1), None)
        pseudo = p["raw_src"] + p["raw_dst"] + struct.pack("!IxxxB", len(icmp), 58)
        ok = (csum(pseudo + icmp) == 0xFFFF and icmp[4] & 0x60 == 0x60 and p["ttl"] == 255)
        return {"kind": "na", "mac": mac, "src": p["src"], "dst": p["dst"], "flags": f"0x{icmp[4]:02x}", "ok": ok}
    return None


def call_id_for(d: E.Daemon, pool: str, wanted: set, fam: str, src: str) -> tuple[str, str]:
    """A fresh Call-ID that siplb's table (siplbctl query) puts on one of
    `wanted` backend addresses."""
    for _ in range(8):
        candidates = [f"edge-{fam}-{uuid.uuid4().hex}@{src}" for _ in range(8)]
        _, text = d.ctl("query", pool, "--", *candidates)
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[0] in candidates and parts[1] in wanted:
                return parts[0], parts[1]
    raise R.RigError(f"siplbctl query {pool}: no Call-ID of 64 maps to {sorted(wanted)}")


def fragmented_invite(out: E.Outcome, rig: R.Rig, d: E.Daemon, fam: str, src: str, vip: str, pool: str,
                      backend_ips: list, wanted: list) -> None:
    """wanted: the backends the Call-ID must hash to (for IPv4 the rig's b2,
    which is in lund and trunk: the answers must still come from the VIP the
    INVITE went to)."""
    call_id, predicted = call_id_for(d, pool, {R.host_port(ip, R.SIP_PORT) for ip in wanted}, fam, src)
    payload_file = rig.workdir / f"invite-{fam}.bin"
    st0 = stats(d)
    cap = R.FrameCapture(rig, rig.ns_back, "b0", seconds=12)
    t0 = time.monotonic()
    res = json.loads(R.sh(sys.executable, script(rig, "inviter.py", INVITER), src, vip, str(R.SIP_PORT), call_id, str(INVITE_PAYLOAD),
                          str(payload_file), ns=rig.ns_client, timeout=20))
    time.sleep(0.3)  # the last frames of the BYE transaction on b0
    frames = cap.frames()
    st1 = stats(d)
    out.numbers[f"{fam}_invite_s"] = round(time.monotonic() - t0, 2)
    out.numbers[f"{fam}_siplb_drops_during_invite"] = delta(drops(st1), drops(st0))
    frag = {k: v for k, v in delta(edge_counters(st1), edge_counters(st0)).items() if k.startswith("fragments.")}
    out.numbers[f"{fam}_siplb_fragment_counters"] = frag
    before = sent_to_backends(st0, pool)
    out.numbers[f"{fam}_siplb_sent_to_{pool}_backends"] = {
        k: f"{n - before.get(k, (0, 0))[0]} pkts {b - before.get(k, (0, 0))[1]} bytes"
        for k, (n, b) in sent_to_backends(st1, pool).items() if n != before.get(k, (0, 0))[0]}
    sent = payload_file.read_bytes()
    finals = [r for r in res["responses"] if r["method"] == "INVITE" and r["code"] >= 200]
    out.numbers[f"{fam}_responses"] = [f"{r['code']} {r['method']} from {R.host_port(*r['from'])}"
                                       for r in res["responses"]]
    f = finals[0] if finals else None
    from_vip = f is not None and f["from"] == [vip, R.SIP_PORT]
    out.check(len(sent) == INVITE_PAYLOAD and f is not None and 200 <= f["code"] < 300 and from_vip,
              f"{fam}: {len(sent)}-byte INVITE to {R.host_port(vip, R.SIP_PORT)}: final response "
              + (f"{f['code']} from {R.host_port(*f['from'])} after {res['final_s']}s" if f else
                 f"none within 4s (responses {out.numbers[f'{fam}_responses']})"))
    if f is not None and 200 <= f["code"] < 300:
        out.check(res["bye"] == 200, f"{fam}: ACK and BYE of the dialog answered ({res['bye']})")
    where = {b.addr: [m for cid, m in b.received() if cid == call_id] for b in rig.backends.values()}
    where = {k: v for k, v in where.items() if v}
    ips = {R.host_port(ip, R.SIP_PORT) for ip in backend_ips}
    out.check(len(where) == 1 and set(where) == {predicted} and set(where) <= ips
              and "INVITE" in next(iter(where.values())),
              f"{fam}: Call-ID logged by exactly one backend of pool {pool}, the one siplbctl query names "
              f"({predicted}): {where}")
    n_wire = check_invite_on_wire(out, fam, frames, src, set(backend_ips), call_id, sent)
    # siplb's own account of the same datagram agrees with the wire.
    want = {"fragments.sent": n_wire}
    if fam == "v6":
        want.update({"fragments.received": n_wire, "fragments.reassembled": 1})
    got = {k: frag.get(k, 0) for k in want}
    out.check(n_wire and got == want and not frag.get("fragments.failed") and not frag.get("fragments.dropped"),
              f"{fam}: siplb's fragment counters match the wire: {got} (want {want}, failed/dropped 0)")


def main() -> int:
    if (rc := E.preflight()) is not None:
        return rc
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="siplb-e2e-edge-"))
    out = E.Outcome("edge")
    rig = R.Rig(work, n_backends=4, spare_backends=1, ipv6=True)
    vip4, vip6 = R.VIPS["trunk"], R.VIPS6["trunk6"]
    src4, src6 = R.CLIENT_IPS[0], R.CLIENT_IPS6[0]
    try:
        with rig:
            for fam, src, vip in (("v4", src4, vip4), ("v6", src6, vip6)):
                nobody_answers_without_siplb(out, rig, fam, src, vip)
            rig.start_dns(E.zone())
            E.start_pool_backends(rig)
            d = E.Daemon(rig, framesz=4096)
            d.start()
            E.wait_pool_ready(rig, d, out)
            if out.ok:
                for fam, src, vip in (("v4", src4, vip4), ("v6", src6, vip6)):
                    c0 = edge_counters(stats(d))
                    r = ping(rig, src, vip)
                    echoes = delta(edge_counters(stats(d)), c0).get("icmp.echo_replies", 0)
                    out.check(r["answered"] == PINGS and echoes == PINGS,
                              f"{fam}: client pings VIP {vip} (routed via the lb node address), siplb answers "
                              f"{r['answered']} of {PINGS} echoes (icmp.echo_replies +{echoes}; RTT ms {r['rtt_ms']})")
                for fam, src, vip in (("v4", src4, vip4), ("v6", src6, vip6)):
                    resolve_and_ping(out, rig, d, fam, src, vip)
                trunk4 = [R.backend_ip(i) for i in E.TRUNK]
                # b2 is in lund and trunk: its answers must still come from trunk's VIP.
                shared = [R.backend_ip(i) for i in E.TRUNK if i in E.LUND_WEIGHTS]
                trunk6 = [R.backend_ip6(i) for i in E.TRUNK]
                fragmented_invite(out, rig, d, "v4", src4, vip4, "trunk", trunk4, shared)
                fragmented_invite(out, rig, d, "v6", src6, vip6, "trunk6", trunk6, trunk6)
            rc = d.stop()
            out.check(rc == 0, f"siplb stopped cleanly on SIGTERM (exit {rc})")
        left = rig.leftovers()
        out.check(not left, f"no namespaces, links or processes left: {left}")
    except (R.RigError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        out.check(False, f"rig: {type(e).__name__}: {e}")
    out.numbers["duration_s"] = round(time.monotonic() - t_start, 1)
    for c in out.checks:
        print(("ok   " if c.ok else "FAIL ") + c.text, flush=True)
    if out.numbers:
        print("     numbers:", flush=True)
        for k, v in out.numbers.items():
            print(f"       {k} = {v}", flush=True)
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
