"""The synchronous client: connect() and WebSocket.

Threading model: the engine's Go threads do all network I/O; Python threads
only cross into Go to send, to poll a batch of events, and to close. Blocking
calls wait inside Go in slices of at most SLICE seconds, with the GIL
released, so other threads run and Ctrl-C is seen between slices.
"""

from __future__ import annotations

import ctypes
import json
import logging
import threading
import time
import weakref
from collections import deque
from types import TracebackType
from typing import Any, Iterator

from . import _ffi
from ._batch import Buffers, Closed, Message, Opened
from ._errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ErrorCode,
    InternalError,
    NotConnected,
    closed_error,
    connect_error,
)
from ._options import (
    HeadersLike,
    check_close,
    check_headers,
    check_path,
    check_positive_int,
    check_subprotocols,
    check_timeout,
    check_url,
    redact_url,
    seconds,
)

logger = logging.getLogger("steadyws")

SLICE = 0.1  # longest wait inside one Go call, in seconds
MAX_MESSAGE_SIZE_LIMIT = 1 << 30
MAX_QUEUE_LIMIT = 1 << 24
_POLL_EVENTS = 1024  # events per polled batch
_POLL_BYTES = 64 << 10  # initial data buffer; grows to the largest message
_FATAL_WAIT_MS = 1000  # after a failed send, wait this long for the engine to settle

lib = _ffi.lib


def connect(
    url: str,
    *,
    headers: HeadersLike | None = None,
    subprotocols: list[str] | None = None,
    # Timeouts, in seconds (None: no limit).
    open_timeout: float | None = 10.0,
    close_timeout: float | None = 10.0,
    write_timeout: float | None = 10.0,
    # Limits.
    max_message_size: int = 1 << 20,
    max_queue: int = 1024,
    # TLS, for wss:// URLs.
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    server_hostname: str | None = None,
    insecure_skip_verify: bool = False,
) -> WebSocket:
    """Open a WebSocket connection and return it once the handshake is done.

    url: ``ws://`` or ``wss://`` address; user info becomes Basic auth.
    headers: extra handshake headers, a mapping or (name, value) pairs. Default none.
    subprotocols: offered in order of preference; see ``WebSocket.subprotocol``.
    open_timeout: TCP connect + TLS + handshake. Default 10 s.
    close_timeout: how long close() waits for the server's close frame. Default 10 s.
    write_timeout: how long one frame write may block; a timed-out write ends
        the connection. Default 10 s.
    max_message_size: largest inbound message in bytes; larger ones close the
        connection with 1009 (MessageTooBig). Default 1 MiB.
    max_queue: inbound messages buffered before reading pauses (TCP pushes
        back on the server). Default 1024.
    ca_file: PEM CA bundle replacing the system roots. Default: system roots.
    cert_file, key_file: PEM client certificate and key (mutual TLS). Default none.
    server_hostname: name to verify the certificate against (and SNI).
        Default: the URL's host.
    insecure_skip_verify: skip certificate verification. Default False; tests only.

    Raises HandshakeError, OpenTimeout, NetworkError subclasses, ValueError
    and TypeError (bad arguments, before any I/O).
    """
    config = {
        "url": check_url(url),
        "headers": check_headers(headers),
        "subprotocols": check_subprotocols(subprotocols),
        "open_timeout": seconds(check_timeout("open_timeout", open_timeout)),
        "close_timeout": seconds(check_timeout("close_timeout", close_timeout)),
        "write_timeout": seconds(check_timeout("write_timeout", write_timeout)),
        "max_message_size": check_positive_int("max_message_size", max_message_size, MAX_MESSAGE_SIZE_LIMIT),
        "max_queue": check_positive_int("max_queue", max_queue, MAX_QUEUE_LIMIT),
        "ca_file": check_path("ca_file", ca_file),
        "cert_file": check_path("cert_file", cert_file),
        "key_file": check_path("key_file", key_file),
        "server_hostname": server_hostname or "",
        "insecure_skip_verify": bool(insecure_skip_verify),
    }
    _ffi.check_fork()
    ws = WebSocket(_open_handle(config), url)
    logger.debug("connecting to %s", ws.url)
    ws._wait_open()
    logger.debug("connected to %s (subprotocol %s)", ws.url, ws.subprotocol)
    return ws


def _open_handle(config: dict[str, Any]) -> int:
    raw = json.dumps(config).encode("utf-8")
    handle = ctypes.c_int64()
    err = ctypes.create_string_buffer(1024)
    rc = lib.sws_connect(raw, len(raw), ctypes.byref(handle), err, len(err))
    if rc == ErrorCode.INVALID_ARGUMENT:
        raise ValueError(err.value.decode("utf-8", "replace"))
    if rc != ErrorCode.OK:
        raise connect_error(rc, err.value.decode("utf-8", "replace"))
    return handle.value


class _Handle:
    """One engine handle, freed exactly once (explicitly or by the GC)."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.freed = False
        self._lock = threading.Lock()

    def free(self) -> None:
        with self._lock:
            if self.freed:
                return
            self.freed = True
        if not _ffi._forked:
            lib.sws_free(self.value)


class WebSocket:
    """A client connection. Create it with :func:`connect`.

    ``send`` and ``close`` are safe from any thread; ``recv``, ``recv_batch``
    and iteration may be used from several threads too (one waits while
    another polls).
    """

    def __init__(self, handle: int, url: str) -> None:
        self._h = _Handle(handle)
        self._finalizer = weakref.finalize(self, self._h.free)
        self.url = redact_url(url)
        self._subprotocol: str | None = None
        self._opened = False
        self._pending: deque[Message] = deque()
        self._buffers = Buffers(_POLL_EVENTS, _POLL_BYTES)
        self._count = ctypes.c_int32()
        self._size = ctypes.c_int64()
        self._count_ref = ctypes.byref(self._count)
        self._size_ref = ctypes.byref(self._size)
        self._poll_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._closed: Closed | None = None  # the terminal event, once seen
        self._detail = ""  # the engine's message for an abnormal end
        self._sent_close: tuple[int, str] | None = None  # set by close()
        self._final_stats: dict[str, int] | None = None

    def __repr__(self) -> str:
        return f"<steadyws.WebSocket {self.url} {self.state}>"

    # Properties.

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose, or None."""
        return self._subprotocol

    @property
    def state(self) -> str:
        """"connecting", "open", "reconnecting", "closing" or "closed"."""
        if self._h.freed:
            return "closed"
        st = ctypes.c_int32()
        if lib.sws_state(self._h.value, ctypes.byref(st)) != ErrorCode.OK:
            return "closed"
        return _ffi.STATES[st.value]

    @property
    def close_code(self) -> int | None:
        """The close code once the connection has ended, else None."""
        return self._closed.code if self._closed else None

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection has ended, else None."""
        return self._closed.reason if self._closed else None

    def stats(self) -> dict[str, int]:
        """Counters: messages and bytes in and out, queue depth, ..."""
        if self._final_stats is not None:
            return dict(self._final_stats)
        h = self._h.value
        values = _ffi.int64s(lambda out, cap, n: lib.sws_stats(h, out, cap, n), len(_ffi.STAT_NAMES))
        if values is None:  # freed meanwhile: _release kept the last counters
            return dict(self._final_stats or {})
        return dict(zip(_ffi.STAT_NAMES, values))

    # Sending.

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (str) or binary (bytes-like) message.

        Raises NotConnected before the connection is open and ConnectionClosed
        once it has ended: a message is never queued for later.
        """
        if isinstance(message, str):
            data, text = message.encode("utf-8"), 1
        elif isinstance(message, bytes):
            data, text = message, 0
        elif isinstance(message, (bytearray, memoryview)):
            data, text = bytes(message), 0
        else:
            raise TypeError(f"message must be str or bytes-like, not {type(message).__name__}")
        if _ffi._forked:
            _ffi.check_fork()
        rc = lib.sws_send(self._h.value, data, len(data), text)
        if rc != ErrorCode.OK:
            raise self._send_error(rc)

    def _send_error(self, rc: int) -> Exception:
        if rc == ErrorCode.NOT_CONNECTED:
            return NotConnected("the connection is not open")
        if rc == ErrorCode.INVALID_ARGUMENT:
            return ValueError(_ffi.last_error(self._h.value))
        if rc == ErrorCode.BAD_HANDLE or self._closed is not None:
            return self._closed_exception()
        detail = _ffi.last_error(self._h.value)
        lib.sws_wait(self._h.value, _FATAL_WAIT_MS)  # let the state settle to "closed"
        return ConnectionClosedError(1006, "", detail)

    # Receiving.

    def recv(self, timeout: float | None = None) -> Message:
        """Return the next message: str for text, bytes for binary.

        Raises TimeoutError after ``timeout`` seconds (None: wait forever),
        ConnectionClosedOK or ConnectionClosedError once the connection has
        ended and every message received before has been returned.
        """
        if not self._wait_pending(_deadline(timeout)):
            raise TimeoutError(f"no message within {timeout} s")
        return self._pending.popleft()

    def recv_batch(self, max_messages: int = 1000, timeout: float | None = None) -> list[Message]:
        """Return up to ``max_messages`` messages, waiting up to ``timeout``
        seconds for the first; [] if none came. Raises like recv() once the
        connection has ended and nothing is left."""
        check_positive_int("max_messages", max_messages, 1 << 30)
        if not self._wait_pending(_deadline(timeout)):
            return []
        pending = self._pending
        if len(pending) <= max_messages:
            batch = list(pending)
            pending.clear()
            return batch
        return [pending.popleft() for _ in range(max_messages)]

    def __iter__(self) -> Iterator[Message]:
        """Yield messages until the connection closes; a normal close ends
        the loop quietly, an abnormal one raises ConnectionClosedError."""
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    def _wait_pending(self, deadline: float | None) -> bool:
        """Wait until a message is pending (True) or deadline passes (False)."""
        while not self._pending:
            if self._closed is not None or self._sent_close is not None:
                raise self._closed_exception()
            wait = SLICE if deadline is None else min(SLICE, deadline - time.monotonic())
            if not self._poll_lock.acquire(timeout=max(wait, 0.001)):
                continue
            try:
                if not self._pending:
                    self._poll_once(max(wait, 0.0))
            finally:
                self._poll_lock.release()
            if not self._pending and deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def _poll_once(self, wait: float) -> None:
        """Poll one batch (waiting up to ``wait`` s) and dispatch it. Holds _poll_lock."""
        if self._h.freed:
            return
        if _ffi._forked:
            _ffi.check_fork()
        b = self._buffers
        rc = lib.sws_poll(
            self._h.value, b.meta_c, b.max_events, b.data_c, len(b.data), int(wait * 1000), self._count_ref, self._size_ref
        )
        if rc == ErrorCode.OK:
            self._dispatch(b.decode(self._count.value, self._size.value))
        elif rc == ErrorCode.BUFFER_TOO_SMALL:
            b.resize(max(self._size.value, 2 * len(b.data)))
        elif rc in (ErrorCode.CLOSED, ErrorCode.BAD_HANDLE):
            self._on_closed(Closed(1006, "", ErrorCode.CLOSED, 0))
        else:
            raise InternalError(f"poll failed: {_ffi.last_error(self._h.value)}")

    def _dispatch(self, events: list[Any]) -> None:
        if self._sent_close is None and all(type(e) is str or type(e) is bytes for e in events):
            self._pending.extend(events)
            return
        for ev in events:
            if isinstance(ev, (str, bytes)):
                if self._sent_close is None:  # after close(), nobody reads them
                    self._pending.append(ev)
            elif isinstance(ev, Opened):
                self._subprotocol, self._opened = ev.subprotocol, True
            elif isinstance(ev, Closed):
                self._on_closed(ev)

    def _on_closed(self, ev: Closed) -> None:
        if self._closed is not None:
            return
        if ev.error not in (ErrorCode.OK, ErrorCode.CLOSED) or (ev.error == ErrorCode.CLOSED and ev.code == 1006):
            self._detail = _ffi.last_error(self._h.value)
        self._closed = ev
        logger.debug("connection to %s ended: %s %s %s", self.url, ev.code, ev.reason, self._detail)
        self._release()

    def _release(self) -> None:
        """Free the engine handle, keeping the final counters."""
        if self._h.freed:
            return
        self._final_stats = self.stats()
        self._h.free()
        self._finalizer.detach()

    def _closed_exception(self) -> ConnectionClosed:
        if self._sent_close is not None:
            return ConnectionClosedOK(*self._sent_close)
        ev = self._closed or Closed(1006, "", ErrorCode.CLOSED, 0)
        return closed_error(ev.code, ev.reason, ev.error, self._detail)

    def _wait_open(self) -> None:
        """Poll until the OPEN or the CLOSED event; raise if it failed."""
        try:
            while not self._opened and self._closed is None:
                with self._poll_lock:
                    self._poll_once(SLICE)
        except BaseException:
            self._h.free()
            raise
        if not self._opened and self._closed is not None:
            ev = self._closed
            raise connect_error(ev.error, self._detail or "connection failed", ev.status)

    # Closing.

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection: send a close frame with ``code`` and
        ``reason``, wait up to close_timeout for the server's, close TCP.

        Idempotent and safe from any thread; a recv() blocked in another
        thread raises ConnectionClosedOK.
        """
        raw = check_close(code, reason)
        with self._close_lock:
            if self._h.freed or self._sent_close is not None:
                return
            _ffi.check_fork()
            self._sent_close = (code, reason)
            h = self._h.value
            lib.sws_close(h, code, raw, len(raw))
            while lib.sws_wait(h, int(SLICE * 1000)) == ErrorCode.TIMEOUT:
                pass
            with self._poll_lock:
                while not self._h.freed:
                    self._poll_once(0)
        logger.debug("closed connection to %s with %d", self.url, code)

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(1011 if exc_type is not None and not issubclass(exc_type, ConnectionClosed) else 1000)


def _deadline(timeout: float | None) -> float | None:
    t = check_timeout("timeout", timeout)
    return None if t is None else time.monotonic() + t
