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
from typing import Union

from . import _ffi
from ._errors import ErrorCode, WebSocketError
from ._options import check_close, encode_message

Message = Union[str, bytes]

_RECV_BUFFER = 64 << 10


class Server:
    """A WebSocket server on 127.0.0.1 and a free port; see the module doc.

    ``max_message_size`` bounds what a client may send (default 16 MiB);
    ``max_received`` how many received messages are kept for :meth:`expect`
    (default 10,000, oldest dropped); ``max_clients`` how many connections
    may be open at once (default 1,024).
    """

    def __init__(
        self, *, max_message_size: int = 16 << 20, max_received: int = 10_000, max_clients: int = 1024
    ) -> None:
        for name, value in (
            ("max_message_size", max_message_size),
            ("max_received", max_received),
            ("max_clients", max_clients),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if not 1 <= value <= (1 << 30 if name == "max_message_size" else 1 << 24):
                raise ValueError(f"{name} must be positive and not absurd, got {value}")
        _ffi.check_fork()
        handle = ctypes.c_int64()
        self._check(
            _ffi.lib.sws_server_start(max_message_size, max_received, max_clients, ctypes.byref(handle)), "start", 0
        )
        self._h = handle.value
        # Handles are never reused: a call racing stop() gets BAD_HANDLE, never
        # another server. _lock guards the received log, _pull_lock its order.
        self._lock = threading.Lock()
        self._pull_lock = threading.Lock()
        self._stopped = False
        self._received: list[Message] = []
        self._consumed = 0  # messages of _received already matched by expect()
        url = _ffi.read_string(lambda buf, cap, out: _ffi.lib.sws_server_url(self._h, buf, cap, out), 64)
        self.url: str = url or ""
        self.port: int = int(self.url.rsplit(":", 1)[1].rstrip("/"))

    def __repr__(self) -> str:
        return f"<steadyws.testing.Server {self.url}{' stopped' if self._stopped else ''}>"

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # Sending.

    def send(self, message: Message) -> None:
        """Send ``message`` (``str``: text, bytes: binary) to every connected client."""
        self._send(-1, message)

    def _send(self, client: int, message: Message) -> None:
        data, text = encode_message(message)
        self._call("send", lambda h: _ffi.lib.sws_server_send(h, client, data, len(data), text))

    def flood(self, n: int, size: int = 200) -> None:
        """Send ``n`` market-data-like JSON messages of ``size`` bytes to every
        client, in the background, as fast as each client takes them."""
        self._flood(-1, n, size)

    def _flood(self, client: int, n: int, size: int) -> None:
        for name, value in (("n", n), ("size", size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if n < 0 or not 0 <= size <= 16 << 20:
            raise ValueError(f"n must be >= 0 and size 0-16 MiB, got n={n}, size={size}")
        self._call("flood", lambda h: _ffi.lib.sws_server_flood(h, client, n, size))

    # Faults.

    def reset(self) -> None:
        """End every connection with a TCP reset: no close frame, no FIN."""
        self._call("reset", lambda h: _ffi.lib.sws_server_reset(h, -1))

    def blackhole(self, seconds: float) -> None:
        """For ``seconds``, read and discard everything (pings get no pong),
        send nothing and leave new handshakes unanswered; connections stay
        open, as behind a dead NAT or a pulled cable."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
        if not 0 <= seconds <= 86400:
            raise ValueError(f"seconds must be between 0 and 86400, got {seconds}")
        self._call("blackhole", lambda h: _ffi.lib.sws_server_blackhole(h, int(seconds * 1000)))

    def refuse(self, status: int = 503, *, retry_after: int | None = None, times: int | None = None) -> None:
        """Answer the next ``times`` handshakes (``None``: every one until
        :meth:`accept`) with HTTP ``status``, and ``Retry-After`` if given."""
        for name, value in (("status", status), ("retry_after", retry_after), ("times", times)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if not 200 <= status <= 599 or status == 101:
            raise ValueError(f"status must be 200-599 and not 101, got {status}")
        if retry_after is not None and not 0 <= retry_after <= 86400:
            raise ValueError(f"retry_after must be 0-86400 seconds, got {retry_after}")
        if times is not None and times < 1:
            raise ValueError(f"times must be positive or None, got {times}")
        ra, n = -1 if retry_after is None else retry_after, -1 if times is None else times
        self._call("refuse", lambda h: _ffi.lib.sws_server_refuse(h, status, ra, n))

    def accept(self) -> None:
        """Stop refusing handshakes."""
        self._call("accept", lambda h: _ffi.lib.sws_server_accept(h))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close every connection with a close frame (``code``, ``reason``),
        waiting up to a second for each client's answer."""
        raw = check_close(code, reason)
        self._call("close", lambda h: _ffi.lib.sws_server_close(h, -1, code, raw, len(raw)))

    # What clients sent.

    def expect(self, predicate: Callable[[Message], bool], timeout: float = 5.0) -> Message:
        """Return the first message a client sent (since the last one
        ``expect`` returned) for which ``predicate`` is true, waiting up to
        ``timeout`` seconds; raise AssertionError listing what came instead."""
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
        """Move the messages the engine holds into ``_received``."""
        buf = ctypes.create_string_buffer(_RECV_BUFFER)
        size, text, client = ctypes.c_int64(), ctypes.c_int32(), ctypes.c_int64()
        timeout_ms = int(wait * 1000)
        with self._pull_lock:
            while not self._stopped:
                rc = _ffi.lib.sws_server_recv(
                    self._h, timeout_ms, buf, len(buf), ctypes.byref(size), ctypes.byref(text), ctypes.byref(client)
                )
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
        self._call("clients", lambda h: _ffi.lib.sws_server_clients(h, out, len(out), ctypes.byref(n)))
        return [ServerClient(self, out[i]) for i in range(min(n.value, len(out)))]

    def counts(self) -> dict[str, int]:
        """``handshakes`` accepted, ``refused``, ``live`` connections,
        messages ``received`` and ``dropped`` (past ``max_received``)."""
        out = (ctypes.c_int64 * 5)()
        self._call("counts", lambda h: _ffi.lib.sws_server_counts(h, out, len(out)))
        return dict(zip(("handshakes", "refused", "live", "received", "dropped"), out, strict=False))

    def stop(self) -> None:
        """Close every connection and the listener. Idempotent; never hangs."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        rc = _ffi.lib.sws_free(self._h)
        if rc not in (ErrorCode.OK, ErrorCode.BAD_HANDLE):
            raise WebSocketError(f"test server stop: {_ffi.last_error(self._h) or ErrorCode(rc).name}")

    def _call(self, op: str, fn: Callable[[int], int]) -> None:
        rc = ErrorCode.BAD_HANDLE if self._stopped else fn(self._h)
        if rc == ErrorCode.BAD_HANDLE and self._stopped:
            raise RuntimeError(f"{op}: the test server is stopped")
        if rc != ErrorCode.OK:
            self._check(rc, op, _ffi.last_error(self._h))

    @staticmethod
    def _check(rc: int, op: str, message: object) -> None:
        if rc == ErrorCode.OK:
            return
        text = f"{op}: {message or ErrorCode(rc).name}"
        if rc == ErrorCode.INVALID_ARGUMENT:
            raise ValueError(text)
        raise WebSocketError(text)


class ServerClient:
    """One connection to a :class:`Server`; ``id`` counts from 1 in handshake order."""

    def __init__(self, server: Server, client_id: int) -> None:
        self._server, self.id = server, client_id

    def __repr__(self) -> str:
        return f"<steadyws.testing.ServerClient {self.id}>"

    def send(self, message: Message) -> None:
        """Send ``message`` to this client only."""
        self._server._send(self.id, message)

    def flood(self, n: int, size: int = 200) -> None:
        self._server._flood(self.id, n, size)

    def reset(self) -> None:
        """End this connection with a TCP reset."""
        self._server._call("reset", lambda h: _ffi.lib.sws_server_reset(h, self.id))

    def close(self, code: int = 1000, reason: str = "") -> None:
        raw = check_close(code, reason)
        self._server._call("close", lambda h: _ffi.lib.sws_server_close(h, self.id, code, raw, len(raw)))
