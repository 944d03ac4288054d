"""Rehearse the bad day in your own tests: a real WebSocket server on
loopback that resets, goes silent, refuses, floods and closes on command.

::

    from steadyws.testing import Server

    with Server() as srv:
        ws = steadyws.connect(srv.url)
        srv.send('{"e":"trade","p":"101.5"}')    # to every connected client
        srv.reset()                              # RST every connection

The server runs in the steadyws library itself (Go, like the client), so it
needs nothing else installed. Every method is safe from any thread, and
leaving the ``with`` block (or :meth:`Server.stop`) never hangs: sockets are
closed and the server's goroutines awaited for at most a few seconds. The
pytest plugin offers it as the ``steadyws_server`` fixture.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Union

from . import _lib
from ._abi import ErrorCode
from ._handle import Handle, HandleClosed
from ._options import check_close, encode_message

Message = Union[str, bytes]

_RECV_BUFFER = 64 << 10
lib = _lib.lib


def _int(name: str, value: object) -> int:
    """An int argument, as ctypes needs it; the library checks its range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not -(2**62) <= value < 2**62:
        raise ValueError(f"{name} is out of range: {value}")
    return value


def _milliseconds(name: str, seconds: object, maximum: int) -> int:
    """A number of seconds from 0 to ``maximum``, as whole milliseconds."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(seconds).__name__}")
    if not 0 <= seconds <= maximum:  # also False for NaN
        raise ValueError(f"{name} must be between 0 and {maximum}, got {seconds}")
    return int(seconds * 1000)


class _Commands:
    """The calls on a live server's handle, for the server and its clients."""

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    def call(self, fn: Callable[[int], Any]) -> Any:
        """Run ``fn(handle)`` on the live server; RuntimeError once stopped."""
        _lib.check_fork()
        try:
            h = self.handle.acquire()
        except HandleClosed:
            raise RuntimeError("the test server is stopped") from None
        try:
            return fn(h)
        finally:
            self.handle.release()

    def send(self, client: int, message: Message) -> None:
        data, text = encode_message(message)
        self.call(lambda h: _lib.call(lib.sws_server_send, h, client, data, len(data), text))

    def flood(self, client: int, n: int, size: int) -> None:
        count, length = _int("n", n), _int("size", size)
        self.call(lambda h: _lib.call(lib.sws_server_flood, h, client, count, length))

    def reset(self, client: int) -> None:
        self.call(lambda h: _lib.call(lib.sws_server_reset, h, client))

    def close(self, client: int, code: int, reason: str) -> None:
        raw = check_close(code, reason)
        self.call(lambda h: _lib.call(lib.sws_server_close, h, client, code, raw, len(raw)))


class Server:
    """A WebSocket server on 127.0.0.1 and a free port; see the module doc.

    ``max_message_size`` bounds what a client may send (default 16 MiB);
    ``max_received`` how many received messages are kept for :meth:`expect`
    (default 10,000, oldest dropped); ``max_clients`` how many connections
    may be open at once (default 1,024). ``expire_after`` (seconds, default
    None: never) closes each connection with 1001 once it is that old, as
    venues end connections after about a day.
    """

    def __init__(
        self,
        *,
        max_message_size: int = 16 << 20,
        max_received: int = 10_000,
        max_clients: int = 1024,
        expire_after: float | None = None,
    ) -> None:
        _lib.check_fork()
        limits = [_int(n, v) for n, v in (("max_message_size", max_message_size), ("max_received", max_received),
                                          ("max_clients", max_clients))]  # fmt: skip
        expire_ms = 0 if expire_after is None else _milliseconds("expire_after", expire_after, 365 * 86400)
        value = ctypes.c_int64()
        _lib.call(lib.sws_server_start, *limits, expire_ms, ctypes.byref(value))
        self._handle = Handle(value.value)
        self._commands = _Commands(self._handle)
        # _lock guards the received log, _pull_lock the order of its pulls.
        self._lock = threading.Lock()
        self._pull_lock = threading.Lock()
        self._received: list[Message] = []
        self._consumed = 0  # messages of _received already matched by expect()
        self.url: str = self._call(lambda h: _lib.read_string(lib.sws_server_url, h, initial=64))
        self.port: int = int(self.url.rsplit(":", 1)[1].rstrip("/"))

    def __repr__(self) -> str:
        return f"<steadyws.testing.Server {self.url}{' stopped' if self._handle.freed else ''}>"

    def __enter__(self) -> Server:
        _lib.check_fork()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _call(self, fn: Callable[[int], Any]) -> Any:
        return self._commands.call(fn)

    # Sending.

    def send(self, message: Message) -> None:
        """Send ``message`` (``str``: text, bytes: binary) to every connected client."""
        self._commands.send(-1, message)

    def flood(self, n: int, size: int = 200) -> None:
        """Send ``n`` market-data-like JSON messages of ``size`` bytes to every
        client, in the background, as fast as each client takes them."""
        self._commands.flood(-1, n, size)

    # Faults.

    def reset(self) -> None:
        """End every connection with a TCP reset: no close frame, no FIN."""
        self._commands.reset(-1)

    def blackhole(self, seconds: float) -> None:
        """For ``seconds``, read and discard everything (pings get no pong),
        send nothing and leave new handshakes unanswered; connections stay
        open, as behind a dead NAT or a pulled cable."""
        ms = _milliseconds("seconds", seconds, 86400)
        self._call(lambda h: _lib.call(lib.sws_server_blackhole, h, ms))

    def silence(self, seconds: float) -> None:
        """For ``seconds``, send no data while staying healthy: pings are
        answered and connections stay open ("connected, but no data", which
        ``max_silence`` detects); :meth:`send` and :meth:`flood` send nothing
        meanwhile."""
        ms = _milliseconds("seconds", seconds, 86400)
        self._call(lambda h: _lib.call(lib.sws_server_silence, h, ms))

    def refuse(self, status: int = 503, *, retry_after: int | None = None, times: int | None = None) -> None:
        """Answer the next ``times`` handshakes (``None``: every one until
        :meth:`accept`) with HTTP ``status``, and ``Retry-After`` if given."""
        code = _int("status", status)
        ra = -1 if retry_after is None else _int("retry_after", retry_after)
        if retry_after is not None and ra < 0:  # -1 is how None crosses the boundary
            raise ValueError(f"retry_after must be 0-86400 seconds or None, got {retry_after}")
        n = -1 if times is None else _int("times", times)
        self._call(lambda h: _lib.call(lib.sws_server_refuse, h, code, ra, n))

    def accept(self) -> None:
        """Stop refusing handshakes."""
        self._call(lambda h: _lib.call(lib.sws_server_accept, h))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close every connection with a close frame (``code``, ``reason``),
        waiting up to a second for each client's answer."""
        self._commands.close(-1, code, reason)

    # What clients sent.

    def expect(self, predicate: Callable[[Message], bool], timeout: float = 5.0) -> Message:
        """Return the first message a client sent (since the last one
        ``expect`` returned) for which ``predicate`` is true, waiting up to
        ``timeout`` seconds; raise AssertionError listing what came instead."""
        _lib.check_fork()
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for i in range(self._consumed, len(self._received)):
                    if predicate(self._received[i]):
                        self._consumed = i + 1
                        return self._received[i]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching message within {timeout}s; received {self.received[-20:]!r}")
            self._pull(min(left, 0.05))

    @property
    def received(self) -> list[Message]:
        """Every message the clients sent so far, oldest first (bounded by ``max_received``)."""
        self._pull(0)
        with self._lock:
            return list(self._received)

    def _pull(self, wait: float) -> None:
        """Move the messages the engine holds into ``_received``: every one
        that has arrived, waiting up to ``wait`` seconds for the first."""
        buf = ctypes.create_string_buffer(_RECV_BUFFER)
        size, text, client = ctypes.c_int64(), ctypes.c_int32(), ctypes.c_int64()
        timeout_ms = int(wait * 1000)
        ok = (ErrorCode.BUFFER_TOO_SMALL, ErrorCode.TIMEOUT)

        def recv(h: int) -> int:
            return _lib.call(
                lib.sws_server_recv, h, timeout_ms, buf, len(buf), ctypes.byref(size), ctypes.byref(text),
                ctypes.byref(client), allow=ok,
            )  # fmt: skip

        with self._pull_lock:
            while True:
                rc = self._call(recv)
                if rc == ErrorCode.BUFFER_TOO_SMALL:
                    buf = ctypes.create_string_buffer(size.value)
                    continue
                if rc != ErrorCode.OK:
                    return
                data = buf.raw[: size.value]
                with self._lock:
                    self._received.append(data.decode("utf-8") if text.value else data)
                timeout_ms = 0

    # Lifetime and counters.

    @property
    def clients(self) -> list[ServerClient]:
        """The open connections, oldest first."""
        out = (ctypes.c_int64 * 1024)()
        n = ctypes.c_int32()
        self._call(lambda h: _lib.call(lib.sws_server_clients, h, out, len(out), ctypes.byref(n)))
        return [ServerClient(self._commands, out[i]) for i in range(min(n.value, len(out)))]

    def counts(self) -> dict[str, int]:
        """``handshakes`` accepted, ``refused``, ``live`` connections,
        messages ``received`` and ``dropped`` (past ``max_received``), and
        ``max_per_second``: the most data messages one client sent within
        any one second (``max_frames_per_second`` counts pings and pongs
        too; ``max_all_per_second`` the data messages of all
        clients together), for testing a rate limit."""
        names = ("handshakes", "refused", "live", "received", "dropped", "max_per_second", "max_frames_per_second",
                 "max_all_per_second")  # fmt: skip
        out = (ctypes.c_int64 * len(names))()
        self._call(lambda h: _lib.call(lib.sws_server_counts, h, out, len(out)))
        return dict(zip(names, out, strict=True))

    def stop(self) -> None:
        """Close every connection and the listener. Idempotent; never hangs."""
        _lib.check_fork()
        self._handle.free()


class ServerClient:
    """One connection to a :class:`Server`; ``id`` counts from 1 in handshake order."""

    def __init__(self, commands: _Commands, client_id: int) -> None:
        self._commands, self.id = commands, client_id

    def __repr__(self) -> str:
        return f"<steadyws.testing.ServerClient {self.id}>"

    def send(self, message: Message) -> None:
        """Send ``message`` to this client only."""
        self._commands.send(self.id, message)

    def flood(self, n: int, size: int = 200) -> None:
        """Flood this client only (see Server.flood)."""
        self._commands.flood(self.id, n, size)

    def reset(self) -> None:
        """End this connection with a TCP reset."""
        self._commands.reset(self.id)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close this connection with a close frame."""
        self._commands.close(self.id, code, reason)
