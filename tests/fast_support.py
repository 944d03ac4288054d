"""Support for tests/test_fast_path.py: a raw-socket server whose connections echo,
ping, go silent, reset, hold back their close frame and send scripted mixes of the
frames the fast path must leave to the reader goroutine; and the script itself, so
the tests build what they expect from the same function the server sends from.

This module does not import steadyws, so the server can be used on its own.
"""

from __future__ import annotations

import gc
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from payloads import Message, binary_payload, split_bytes, text_payload
from promise_support import POLL, PromiseServer
from servers import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Event,
    RawConnection,
    Request,
    accept_key,
    encode_frame,
    switching_protocols,
)

DEFLATE = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
READ_BUFFER = 64 << 10  # the engine's buffered reader (core/dial.go): larger frames go to the reader goroutine


def deflate(data: bytes) -> bytes:
    """One message compressed on its own (RFC 7692 7.2.1: the 00 00 ff ff tail removed)."""
    compressor = zlib.compressobj(wbits=-15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def compressed_frame(opcode: int, data: bytes) -> bytes:
    frame = bytearray(encode_frame(opcode, deflate(data)))
    frame[0] |= 0x40  # RSV1: compressed
    return bytes(frame)


BURST_WRITE = 256 << 10  # bytes per write of a burst

# What "end:<kind>" makes the server send: each ends the connection, through the fast path (a close
# frame, invalid UTF-8: whole frames the consumer reads itself) or the reader goroutine (a masked
# frame, a reserved opcode: frames the fast path refuses to read).
ENDINGS = {
    "close-1000": encode_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye"),
    "close-4000": encode_frame(OP_CLOSE, struct.pack("!H", 4000) + b"custom"),
    "invalid-utf8": encode_frame(OP_TEXT, b"ok \xff\xfe"),
    "masked": bytes([0x80 | OP_TEXT, 0x80 | 2]) + b"\x01\x02\x03\x04" + bytes([ord("h") ^ 1, ord("i") ^ 2]),
    "reserved-opcode": encode_frame(0x3, b"??"),
}


def numbered(seq: int, size: int) -> str:
    """Message ``seq`` of a burst: "<seq>:" padded with dots to ``size`` bytes."""
    head = f"{seq}:"
    return head + "." * (size - len(head))


def seq_of(message: object) -> int:
    """The number of a :func:`numbered` message."""
    text = message if isinstance(message, str) else bytes(message).decode()  # type: ignore[arg-type]
    return int(text[: text.index(":")])


@dataclass(frozen=True)
class Piece:
    """One step of a mix: the bytes the server writes, the message it carries (None for a control
    frame alone), and what the step is, for assertion messages."""

    what: str
    wire: bytes
    message: Message | None


def _small(label: str) -> Piece:
    return Piece("small", encode_frame(OP_TEXT, label.encode()), label)


def mix(round_no: int, compressed: bool) -> list[Piece]:
    """Round ``round_no`` of the mixed script: small messages between every kind of frame the
    fast path hands to the reader goroutine (fragments, control frames between fragments,
    compression, frames larger than the read buffer) and the edge cases it reads itself
    (empty messages, a frame that fills the buffer exactly, a lone ping)."""
    r = round_no
    text = text_payload(300 + r)
    big = binary_payload(100_000 + r)
    fill = binary_payload(READ_BUFFER - 4)  # 4-byte header + payload: exactly the buffer
    past = binary_payload(READ_BUFFER - 3)  # one byte more than fits
    first, second, third = split_bytes(text.encode(), 3)
    b1, b2 = split_bytes(big, 2)
    pieces = [
        _small(f"r{r}-a"),
        Piece(
            "fragmented text",
            encode_frame(OP_TEXT, first, fin=False)
            + encode_frame(OP_CONT, second, fin=False)
            + encode_frame(OP_CONT, third),
            text,
        ),  # fmt: skip
        _small(f"r{r}-b"),
        Piece(
            "ping between fragments",
            encode_frame(OP_BINARY, b1, fin=False)
            + encode_frame(OP_PING, f"mid{r}".encode())
            + encode_frame(OP_CONT, b2),
            big,
        ),  # fmt: skip
        _small(f"r{r}-c"),
        Piece("larger than the buffer", encode_frame(OP_BINARY, big), big),
        Piece("empty text", encode_frame(OP_TEXT, b""), ""),
        Piece("empty binary", encode_frame(OP_BINARY, b""), b""),
        Piece("lone ping", encode_frame(OP_PING, f"lone{r}".encode()), None),
        _small(f"r{r}-d"),
        Piece("fills the buffer", encode_frame(OP_BINARY, fill), fill),
        Piece("one byte past the buffer", encode_frame(OP_BINARY, past), past),
        Piece("126-length text", encode_frame(OP_TEXT, text_payload(1000 + r).encode()), text_payload(1000 + r)),
    ]
    if compressed:
        zipped = text_payload(5000 + r)
        z1, z2 = split_bytes(deflate(zipped.encode()), 2)
        head = bytearray(encode_frame(OP_TEXT, z1, fin=False))
        head[0] |= 0x40  # RSV1 on the first frame only (RFC 7692 6.1)
        pieces += [
            Piece("compressed text", compressed_frame(OP_TEXT, zipped.encode()), zipped),
            _small(f"r{r}-e"),
            Piece("compressed binary", compressed_frame(OP_BINARY, big), big),
            Piece("compressed fragments", bytes(head) + encode_frame(OP_CONT, z2), zipped),
        ]
    return [*pieces, _small(f"r{r}-z")]


def expected_messages(round_no: int, compressed: bool) -> list[Message]:
    return [p.message for p in mix(round_no, compressed) if p.message is not None]


@dataclass
class Control:
    """What the test asks of one /fast connection (its target)."""

    silent: bool = False
    resets: int = 0  # reset() calls so far: a connection made before the last one is reset


class FastServer(PromiseServer):
    """PromiseServer plus the ``/fast`` route, a raw echo server for the fast-path tests.

    ``/fast?ping_ms=&close=&deflate=&delay_ms=``: completes the handshake (accepting
    permessage-deflate if ``deflate=1`` and the client offered it), then echoes every text
    and binary message ``delay_ms`` (default 1) milliseconds later -- a network's round
    trip, so that the client waits when the echo comes (in-process, the server's thread
    would otherwise race the client's for the GIL) -- and answers pings. With ``ping_ms``
    it pings the client every ``ping_ms`` milliseconds (``server_ping`` events, payload
    "n") and records each pong (``pong`` events). ``close=never`` never answers the
    client's close frame (it drains until EOF); ``close=<ms>`` answers it that late; both
    record ``client_close``. A text message "mix:<round>:one" is answered with that round
    of :func:`mix` in one write, "mix:<round>:paced" frame by frame, 2 ms apart.

    A text message "burst:<start>:<n>:<size>" is answered with ``n`` :func:`numbered`
    messages from ``start`` on, in writes of 256 KiB; "end:<kind>" with the frame
    ``ENDINGS[kind]`` (after a server close frame, the client's answer is recorded and TCP
    closed).

    ``silence(target)`` makes the connection a dead peer (reads and drops everything,
    sends nothing, no FIN); ``reset(target)`` ends the connections open now with a TCP
    reset (``reset`` events), and lets later ones to the same target be.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(ssl_context)
        self._controls: dict[str, Control] = {}
        self._routes["/fast"] = self._fast

    @staticmethod
    def _readable(conn: RawConnection, timeout: float) -> bool:
        """Also what TLS decrypted already, which select() cannot see."""
        pending = getattr(conn.sock, "pending", None)
        if pending is not None and pending() > 0:
            return True
        return PromiseServer._readable(conn, timeout)

    def _control(self, target: str) -> Control:
        with self._lock:
            return self._controls.setdefault(target, Control())

    def silence(self, target: str) -> None:
        self._control(target).silent = True

    def reset(self, target: str) -> None:
        """Reset the connections of ``target`` open now (not those made later)."""
        control = self._control(target)
        with self._lock:
            control.resets += 1

    def pongs(self, target: str) -> list[Event]:
        return [e for e in self.events if e.target == target and e.kind == "pong"]

    def server_pings(self, target: str) -> list[Event]:
        return [e for e in self.events if e.target == target and e.kind == "server_ping"]

    def _fast(self, conn: RawConnection, request: Request) -> None:
        target = request.target
        control = self._control(target)
        generation = control.resets
        response = switching_protocols(accept_key(request.headers.get("sec-websocket-key", "")))
        deflating = request.query.get("deflate") == "1" and "permessage-deflate" in request.headers.get(
            "sec-websocket-extensions", ""
        )
        if deflating:
            response = response.replace(b"\r\n\r\n", f"\r\nSec-WebSocket-Extensions: {DEFLATE}\r\n\r\n".encode(), 1)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.send(response)
        ping_every = request.int_param("ping_ms", 0) / 1000
        delay = request.int_param("delay_ms", 1) / 1000
        next_ping = time.monotonic() + ping_every
        pings = 0
        server_closed = False  # we sent the first close frame
        while not self._stopping.is_set():
            if control.resets != generation:
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.record(Event("reset", target))
                return  # leaving _serve's `with sock` sends the RST
            if control.silent:
                conn._buffer.clear()
                if self._readable(conn, POLL) and not conn.sock.recv(65536):
                    self.record(Event("eof", target))
                    return
                continue
            if ping_every and time.monotonic() >= next_ping:
                pings += 1
                conn.send(encode_frame(OP_PING, str(pings).encode()))
                self.record(Event("server_ping", target, payload=str(pings).encode()))
                next_ping += ping_every
            wait = POLL if not ping_every else max(0.0, min(POLL, next_ping - time.monotonic()))
            if not self._readable(conn, wait):
                continue
            echoes: list[bytes] = []  # what came in one go is echoed in one go, after one delay
            while self._readable(conn, 0):
                try:
                    frame = conn.read_frame()
                except EOFError:
                    self.record(Event("eof", target))
                    return
                if frame.opcode in (OP_TEXT, OP_BINARY) and not frame.payload.startswith((b"mix:", b"burst:", b"end:")):
                    echoes.append(encode_frame(frame.opcode, frame.payload))
                    continue
                self._flush(conn, echoes, delay)
                if frame.opcode == OP_TEXT and frame.payload.startswith(b"mix:"):
                    self._send_mix(conn, frame.payload.decode(), deflating)
                elif frame.opcode == OP_TEXT and frame.payload.startswith(b"end:"):
                    ending = frame.payload.decode()[4:]
                    conn.send(ENDINGS[ending])
                    server_closed = ending.startswith("close")
                elif frame.opcode == OP_TEXT and frame.payload.startswith(b"burst:"):
                    self._send_burst(conn, frame.payload.decode())
                elif frame.opcode == OP_PING:
                    conn.send(encode_frame(OP_PONG, frame.payload))
                elif frame.opcode == OP_PONG:
                    self.record(Event("pong", target, payload=frame.payload, masked=frame.masked))
                elif frame.opcode == OP_CLOSE:
                    self._answer_close(conn, request, frame.payload, server_closed)
                    return
            self._flush(conn, echoes, delay)

    @staticmethod
    def _flush(conn: RawConnection, echoes: list[bytes], delay: float) -> None:
        if echoes:
            time.sleep(delay)  # a network's round trip: the client is waiting when the echo comes
            conn.send(b"".join(echoes))
            echoes.clear()

    @staticmethod
    def _send_mix(conn: RawConnection, command: str, deflating: bool) -> None:
        _, round_no, how = command.split(":")
        pieces = mix(int(round_no), deflating)
        if how == "one":
            conn.send(b"".join(p.wire for p in pieces))
            return
        for piece in pieces:
            conn.send(piece.wire)
            time.sleep(0.002)

    @staticmethod
    def _send_burst(conn: RawConnection, command: str) -> None:
        _, start, count, size = command.split(":")
        frames = [
            encode_frame(OP_TEXT, numbered(seq, int(size)).encode())
            for seq in range(int(start), int(start) + int(count))
        ]
        per_write = max(1, BURST_WRITE // len(frames[0]))
        for i in range(0, len(frames), per_write):
            conn.send(b"".join(frames[i : i + per_write]))

    def _answer_close(self, conn: RawConnection, request: Request, payload: bytes, answer: bool) -> None:
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        self.record(Event("client_close", request.target, code))
        how = request.query.get("close", "0")
        try:
            if answer:  # the client answered our close frame: we close TCP
                conn.sock.shutdown(socket.SHUT_WR)
                conn.drain()
            elif how == "never":
                conn.drain()
            else:
                if self._stopping.wait(int(how) / 1000):
                    return
                conn.send(encode_frame(OP_CLOSE, payload[:2]))
                self.record(Event("server_close", request.target, code))
                conn.sock.shutdown(socket.SHUT_WR)  # RFC 6455 7.1.1: the server closes TCP first
                conn.drain()
        except OSError:
            pass
        self.record(Event("eof", request.target))


# -- counting resources ------------------------------------------------------------------


def settled(
    measure: Callable[[], dict[str, int]], within: Callable[[dict[str, int]], bool], timeout: float
) -> dict[str, int]:
    """The first reading (after a gc) that ``within`` accepts, or the last one after ``timeout``:
    threads and goroutines exit asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        now = measure()
        if within(now) or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def steady(measure: Callable[[], dict[str, int]], timeout: float = 3.0) -> dict[str, int]:
    """A reading equal to the one 0.1 s before it (or the last one after ``timeout``)."""
    gc.collect()
    previous = measure()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        gc.collect()
        current = measure()
        if current == previous:
            return current
        previous = current
    return previous


class Collector:
    """Messages a receiving thread got, and how its receiving ended (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[object] = []
        self.error: BaseException | None = None
        self.ended_at: float | None = None
        self.done = threading.Event()

    def add(self, message: object) -> None:
        with self.lock:
            self.messages.append(message)

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def end(self, error: BaseException | None) -> None:
        self.error, self.ended_at = error, time.monotonic()
        self.done.set()


def receive_in_thread(recv: Callable[[], object], into: Collector) -> threading.Thread:
    """A daemon thread calling ``recv()`` until it raises anything but TimeoutError."""

    def run() -> None:
        while True:
            try:
                into.add(recv())
            except TimeoutError:
                continue
            except BaseException as exc:  # noqa: BLE001 - the outcome is what the test inspects
                into.end(exc)
                return

    thread = threading.Thread(target=run, name="fast-path-receiver", daemon=True)
    thread.start()
    return thread
