"""Support for the tests of issue 9 (test_promises_*.py): a raw-socket server with
the extra routes those tests need, and small waiting and measuring helpers.

This module does not import steadyws, so the servers can be used on their own.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from servers import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Event,
    MisbehavingServer,
    RawConnection,
    Request,
    accept_key,
    encode_frame,
    switching_protocols,
)

POLL = 0.01  # seconds between two checks of a condition


def wait_until(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` every 10 ms until it is true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(POLL)


async def async_wait_until(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """``wait_until`` for a coroutine: polls every 10 ms without blocking the loop."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(POLL)


def rss_bytes() -> int:
    """Resident set size of this process (VmRSS in /proc/self/status)."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


class Ticker:
    """A task that wakes every 10 ms and records the largest gap between two wakeups
    (counted from ``start()`` to ``stop()``): a gap much larger than 10 ms means
    something blocked the event loop."""

    def __init__(self) -> None:
        self.largest_gap = 0.0
        self.ticks = 0
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None

    def _tick(self) -> None:
        now = asyncio.get_running_loop().time()
        self.largest_gap = max(self.largest_gap, now - self._last)
        self._last = now

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            self._tick()
            self.ticks += 1

    def start(self) -> Ticker:
        self._last = asyncio.get_running_loop().time()
        self._task = asyncio.ensure_future(self._run())
        return self

    async def stop(self) -> None:
        assert self._task is not None
        self._tick()  # a stall that lasted until now counts too
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


@dataclass
class Session:
    """One server-side connection of the /sessions route: the first text messages it
    received (up to ``KEEP``), the distinct ones, and how many it received in all."""

    KEEP = 50
    target: str
    messages: list[str] = field(default_factory=list)
    distinct: set[str] = field(default_factory=set)
    count: int = 0
    ended: bool = False


class PromiseServer(MisbehavingServer):
    """The misbehaving raw-socket server plus the routes of the issue-9 tests.

    Paths (besides those of MisbehavingServer):

    * ``/close-late?ms=``: after the handshake, answers pings; when the client's close
      frame arrives it is recorded (``client_close``), and the server's close frame
      follows ``ms`` milliseconds later.
    * ``/empty-close``: sends a close frame without a body (no status code: 1005) right
      after the handshake, records the client's answer, then closes TCP.
    * ``/no-read?ms=``: completes the handshake, then never reads (for ``ms`` ms, or
      until the server is closed): the client's writes fill the socket buffers.
    * ``/sessions``: records the text messages of every connection separately
      (``sessions()``); ``reset_sessions()`` ends every open one with a TCP reset.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(ssl_context)
        self._session_lock = threading.Lock()
        self._sessions: list[Session] = []
        self._generation = 0
        self._routes.update(
            {
                "/close-late": self._close_late,
                "/empty-close": self._empty_close,
                "/no-read": self._no_read,
                "/sessions": self._sessions_route,
            }
        )

    # -- the /sessions route ---------------------------------------------------

    def sessions(self, target: str | None = None) -> list[Session]:
        """A snapshot of the /sessions connections (of ``target`` only, if given), oldest first."""
        with self._session_lock:
            return [
                Session(s.target, list(s.messages), set(s.distinct), s.count, s.ended)
                for s in self._sessions
                if target is None or s.target == target
            ]

    def reset_sessions(self) -> None:
        """End every open /sessions connection with a TCP reset (within about 10 ms)."""
        with self._session_lock:
            self._generation += 1

    @staticmethod
    def _readable(conn: RawConnection, timeout: float) -> bool:
        """A frame (or part of one) is waiting: in the connection's buffer or the socket."""
        if conn._buffer:
            return True
        ready, _, _ = select.select([conn.sock], [], [], timeout)
        return bool(ready)

    def _sessions_route(self, conn: RawConnection, request: Request) -> None:
        conn.send(switching_protocols(accept_key(request.headers.get("sec-websocket-key", ""))))
        session = Session(request.target)
        with self._session_lock:
            self._sessions.append(session)
            generation = self._generation
        try:
            while not self._stopping.is_set():
                with self._session_lock:
                    if self._generation != generation:
                        break
                if not self._readable(conn, POLL):
                    continue
                frame = conn.read_frame()
                if frame.opcode == OP_TEXT:
                    text = frame.payload.decode("utf-8", "replace")
                    with self._session_lock:
                        if len(session.messages) < Session.KEEP:
                            session.messages.append(text)
                        session.distinct.add(text)
                        session.count += 1
                elif frame.opcode == OP_PING:
                    conn.send(encode_frame(OP_PONG, frame.payload))
                elif frame.opcode == OP_CLOSE:
                    conn.send(encode_frame(OP_CLOSE, frame.payload[:2]))
                    return
            else:
                return
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.record(Event("reset", request.target))
            # Leaving _serve's `with sock` closes the socket: with SO_LINGER (1, 0) that is an RST.
        finally:
            with self._session_lock:
                session.ended = True

    # -- close handshakes ------------------------------------------------------

    def _close_late(self, conn: RawConnection, request: Request) -> None:
        conn.send(switching_protocols(accept_key(request.headers.get("sec-websocket-key", ""))))
        delay = request.int_param("ms", 1500) / 1000
        while True:
            try:
                frame = conn.read_frame()
            except EOFError:
                self.record(Event("eof", request.target))
                return
            if frame.opcode == OP_PING:
                conn.send(encode_frame(OP_PONG, frame.payload))
            elif frame.opcode == OP_CLOSE:
                code = struct.unpack("!H", frame.payload[:2])[0] if len(frame.payload) >= 2 else None
                reason = frame.payload[2:].decode("utf-8", "replace")
                self.record(Event("client_close", request.target, code, reason, masked=frame.masked))
                if self._stopping.wait(delay):
                    return
                try:
                    conn.send(encode_frame(OP_CLOSE, frame.payload[:2]))
                    self.record(Event("server_close", request.target, code))
                    conn.drain()
                except OSError:
                    pass
                self.record(Event("eof", request.target))
                return

    def _empty_close(self, conn: RawConnection, request: Request) -> None:
        accept = accept_key(request.headers.get("sec-websocket-key", ""))
        conn.send(switching_protocols(accept) + encode_frame(OP_CLOSE, b""))
        while True:
            try:
                frame = conn.read_frame()
            except EOFError:
                self.record(Event("eof", request.target))
                return
            if frame.opcode == OP_CLOSE:
                code = struct.unpack("!H", frame.payload[:2])[0] if len(frame.payload) >= 2 else None
                self.record(Event("client_close", request.target, code, masked=frame.masked))
                return  # the server sent the first close frame: it closes TCP now

    # -- a peer that stops reading ----------------------------------------------

    def _no_read(self, conn: RawConnection, request: Request) -> None:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        conn.send(switching_protocols(accept_key(request.headers.get("sec-websocket-key", ""))))
        self._stopping.wait(request.int_param("ms", 30_000) / 1000)
