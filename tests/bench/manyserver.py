"""An asyncio WebSocket server for many connections at once (uvloop if present).

    /rate?per_tick=K&size=S   K text messages of S bytes to this connection every TICK
    /idle                     nothing; answers pings and the close handshake

One ticker writes to every /rate connection, so 1,000 connections cost one
timer, not 1,000; it spreads the writes over each tick.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import resource
import struct
import sys
import urllib.parse

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TICK = 0.1
SLICES = 20


def frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x80 | opcode, n) + payload
    return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload


class Conn(asyncio.Protocol):
    rate: dict[Conn, bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = b""
        self.open = False

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.open:
            if b"\r\n\r\n" not in self.buf:
                return
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            self.upgrade(head.decode("latin-1"))
        self.frames()

    def upgrade(self, head: str) -> None:
        lines = head.split("\r\n")
        target = urllib.parse.urlsplit(lines[0].split(" ")[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()).decode()
        self.t.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        self.open = True
        if target.path == "/rate":
            q = {k: v[0] for k, v in urllib.parse.parse_qs(target.query).items()}
            Conn.rate[self] = frame(0x1, b"x" * int(q.get("size", "100"))) * int(q.get("per_tick", "5"))

    def frames(self) -> None:
        while len(self.buf) >= 6:
            n, off = self.buf[1] & 0x7F, 2
            if n == 126:
                n, off = struct.unpack("!H", self.buf[2:4])[0], 4
            if len(self.buf) < off + 4 + n:
                return
            mask, payload = self.buf[off : off + 4], self.buf[off + 4 : off + 4 + n]
            opcode = self.buf[0] & 0x0F
            self.buf = self.buf[off + 4 + n :]
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:
                self.t.write(frame(0xA, data))
            elif opcode == 0x8:
                self.t.write(frame(0x8, data[:2]))
                self.t.close()

    def connection_lost(self, exc: Exception | None) -> None:
        Conn.rate.pop(self, None)


async def ticker() -> None:
    """Every TICK, a chunk to every /rate connection, spread over the tick:
    a slice of the connections every TICK / SLICES, so that arrivals are
    spread out in time as a real fan-in's are, not one burst."""
    turn = 0
    while True:
        await asyncio.sleep(TICK / SLICES)
        conns = list(Conn.rate.items())
        for conn, chunk in conns[turn % SLICES :: SLICES]:
            if conn.t.get_write_buffer_size() < 1 << 20:  # a slow client gets no more
                conn.t.write(chunk)
        turn += 1


async def main() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Conn, "127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await ticker()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
