#!/usr/bin/env python3
"""SIP over TLS endpoints for tests/e2e/tcp.py (Debian's sipp has no TLS).

  tls_peer.py server IP PORT CERT KEY NAME
      Accepts TLS connections on IP:PORT and answers every SIP request on
      them with "SIP/2.0 200 OK", the request's Call-ID and "X-Backend: NAME";
      logs "<Call-ID> <METHOD>" per request on stdout.
  tls_peer.py client SRC_IP VIP PORT CAFILE SERVER_NAME CONNECTIONS [HOLD_S]
      Opens CONNECTIONS connections from SRC_IP, each: TLS handshake
      verifying the server against CAFILE and SERVER_NAME, an OPTIONS, its
      200; with HOLD_S, waits that long and sends a second OPTIONS on the same
      connection. Prints one JSON line per connection: the backend of each
      answer, the local port, and the SHA-256 of the certificate the server
      presented.
"""
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


def client(src: str, vip: str, port: int, cafile: str, server_name: str, count: int, hold_s: float) -> int:
    ctx = ssl.create_default_context(cafile=cafile)
    failures = 0
    for _ in range(count):
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


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "server" and len(a) == 6:
        serve(a[1], int(a[2]), a[3], a[4], a[5])
    elif a and a[0] == "client" and len(a) in (7, 8):
        sys.exit(client(a[1], a[2], int(a[3]), a[4], a[5], int(a[6]), float(a[7]) if len(a) == 8 else 0))
    else:
        print(__doc__)
        sys.exit(2)
