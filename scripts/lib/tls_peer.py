#!/usr/bin/env python3
"""SIP over TLS endpoints for the rig (Debian's sipp has no TLS), used by
tests/e2e/tcp.py and scripts/demo through siplb_e2e.py.

  tls_peer.py server --ip IP --port PORT --cert CERT --key KEY --name NAME
      Accepts TLS connections on IP:PORT and answers every SIP request on
      them with "SIP/2.0 200 OK", the request's Call-ID and "X-Backend: NAME";
      logs "<Call-ID> <METHOD>" per request on stdout.
  tls_peer.py client --src SRC_IP --vip VIP --port PORT --cafile CAFILE
                     --server-name NAME --connections N [--hold S] [--every S]
      Opens N connections from SRC_IP, one after the other (--every S apart),
      each: TLS handshake verifying the server against CAFILE and NAME, an
      OPTIONS, its 200; with --hold S, prints {"holding": local port}, waits
      S seconds and sends a second OPTIONS on the same connection. Prints one
      JSON line per connection: the backend of each answer, the local port,
      and the SHA-256 of the certificate the server presented. Exits 1 when
      a connection failed.
"""
import argparse
import hashlib
import json
import socket
import ssl
import sys
import threading
import time


def read_message(conn, buf: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        buf += chunk
    end = buf.index(b"\r\n\r\n") + 4
    msg = bytes(buf[:end])
    del buf[:end]
    return msg


def header(msg: bytes, name: str) -> str:
    for line in msg.decode(errors="replace").split("\r\n"):
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def serve(ip: str, port: int, cert: str, key: str, name: str) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((ip, port))
    lsock.listen(64)
    lock = threading.Lock()

    def handle(raw):
        try:
            with ctx.wrap_socket(raw, server_side=True) as conn:
                buf = bytearray()
                while (msg := read_message(conn, buf)) is not None:
                    call_id = header(msg, "Call-ID")
                    with lock:
                        print(f"{call_id} {msg.split(b' ', 1)[0].decode()}", flush=True)
                    conn.sendall((f"SIP/2.0 200 OK\r\nVia: {header(msg, 'Via')}\r\nCall-ID: {call_id}\r\n"
                                  f"CSeq: {header(msg, 'CSeq')}\r\nX-Backend: {name}\r\nContent-Length: 0\r\n\r\n")
                                 .encode())
        except (OSError, ssl.SSLError):
            pass

    while True:
        raw, _ = lsock.accept()
        threading.Thread(target=handle, args=(raw,), daemon=True).start()


def options(n: int, src: str, port: int) -> bytes:
    call_id = f"tls-{src}-{port}-{n}"
    return (f"OPTIONS sip:ping@example.net SIP/2.0\r\nVia: SIP/2.0/TLS {src}:{port};branch=z9hG4bK{n}{port}\r\n"
            f"From: <sip:t@example.net>;tag={port}\r\nTo: <sip:ping@example.net>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


def client(src: str, vip: str, port: int, cafile: str, server_name: str, count: int, hold_s: float,
           every_s: float) -> int:
    ctx = ssl.create_default_context(cafile=cafile)
    failures = 0
    start = time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, start + i * every_s - time.monotonic()))
        result = {"backends": [], "error": ""}
        try:
            raw = socket.create_connection((vip, port), timeout=5, source_address=(src, 0))
            with ctx.wrap_socket(raw, server_hostname=server_name) as conn:
                lport = conn.getsockname()[1]
                result["port"] = lport
                result["cert_sha256"] = hashlib.sha256(conn.getpeercert(binary_form=True)).hexdigest()
                buf = bytearray()
                for n in (1, 2) if hold_s else (1,):
                    if n == 2:
                        print(json.dumps({"holding": lport}), flush=True)
                        time.sleep(hold_s)
                    conn.sendall(options(n, src, lport))
                    answer = read_message(conn, buf)
                    if answer is None or not answer.startswith(b"SIP/2.0 200 "):
                        raise OSError(f"answer {answer!r}")
                    if header(answer, "Call-ID") != f"tls-{src}-{lport}-{n}":
                        raise OSError("answer for another Call-ID")
                    result["backends"].append(header(answer, "X-Backend"))
        except (OSError, ssl.SSLError) as e:
            result["error"] = str(e)
            failures += 1
        print(json.dumps(result), flush=True)
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="role", required=True)
    sv = sub.add_parser("server")
    sv.add_argument("--ip", required=True)
    sv.add_argument("--port", type=int, required=True)
    sv.add_argument("--cert", required=True)
    sv.add_argument("--key", required=True)
    sv.add_argument("--name", required=True)
    cl = sub.add_parser("client")
    cl.add_argument("--src", required=True)
    cl.add_argument("--vip", required=True)
    cl.add_argument("--port", type=int, required=True)
    cl.add_argument("--cafile", required=True)
    cl.add_argument("--server-name", required=True)
    cl.add_argument("--connections", type=int, required=True)
    cl.add_argument("--hold", type=float, default=0)
    cl.add_argument("--every", type=float, default=0)
    a = ap.parse_args()
    if a.role == "server":
        serve(a.ip, a.port, a.cert, a.key, a.name)
        return 0
    return client(a.src, a.vip, a.port, a.cafile, a.server_name, a.connections, a.hold, a.every)


if __name__ == "__main__":
    sys.exit(main())
