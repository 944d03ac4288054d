"""A WebSocket server fast enough never to be the bottleneck.

It answers the opening handshake, then writes pre-encoded frames in large
chunks (one sendall per ~1 MiB). Paths:

    /flood?n=N&size=S&binary=0   N messages of S bytes, then a close frame (1000)
    /echo                        echoes every message (unmasked), for latency
    /stall?bytes=B&size=S        writes B bytes of S-byte messages as fast as TCP allows

Run it in its own process so it never shares a GIL with the client measured.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import sys
import threading
import urllib.parse

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CHUNK = 1 << 20


def frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def unmask(data: bytes, mask: bytes) -> bytes:
    """RFC 6455 5.3, with one big-integer XOR instead of a loop per byte."""
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def handshake(sock: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise EOFError
        data += more
    lines = data.decode("latin-1").split("\r\n")
    target = lines[0].split(" ")[1]
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()).decode()
    sock.sendall(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()
    )
    return target


def payloads(size: int, binary: bool) -> bytes:
    text = (b"x" * size)[:size]
    return frame(0x2 if binary else 0x1, text)


def flood(sock: socket.socket, n: int, size: int, binary: bool) -> None:
    one = payloads(size, binary)
    per_chunk = max(1, CHUNK // len(one))
    chunk = one * per_chunk
    sent = 0
    while sent + per_chunk <= n:
        sock.sendall(chunk)
        sent += per_chunk
    sock.sendall(one * (n - sent) + frame(0x8, struct.pack("!H", 1000)))
    drain(sock)


def stall(sock: socket.socket, total: int, size: int) -> None:
    one = payloads(size, False)
    chunk = one * max(1, CHUNK // len(one))
    sent = 0
    try:
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:
        return
    drain(sock)


def drain(sock: socket.socket) -> None:
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def echo(sock: socket.socket) -> None:
    buf = b""
    while True:
        more = sock.recv(65536)
        if not more:
            return
        buf += more
        out = []
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, off = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, off = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < off + 4 + n:
                break
            mask = buf[off : off + 4]
            payload = unmask(buf[off + 4 : off + 4 + n], mask)
            buf = buf[off + 4 + n :]
            opcode = b0 & 0x0F
            if opcode == 0x8:
                sock.sendall(b"".join(out) + frame(0x8, payload[:2]))
                return
            if opcode in (0x1, 0x2):
                out.append(frame(opcode, payload))
            elif opcode == 0x9:
                out.append(frame(0xA, payload))
        if out:
            sock.sendall(b"".join(out))


def serve_one(sock: socket.socket) -> None:
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            target = handshake(sock)
        except (EOFError, OSError, KeyError):
            return
        url = urllib.parse.urlsplit(target)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        try:
            if url.path == "/flood":
                flood(sock, int(q.get("n", "1000000")), int(q.get("size", "100")), q.get("binary") == "1")
            elif url.path == "/stall":
                stall(sock, int(q.get("bytes", str(1 << 30))), int(q.get("size", "1000")))
            else:
                echo(sock)
        except OSError:
            pass


def main() -> None:
    listener = socket.create_server(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), backlog=4096)
    print(listener.getsockname()[1], flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve_one, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()
