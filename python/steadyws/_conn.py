"""One connection as both drivers and the callback runner share it.

A :class:`Connection` holds the engine handle, the event stream and what is
known of the end; each of its methods is one call into the library. The
threaded and asyncio clients add only how they wait; the callback runner
(:mod:`steadyws._callbacks`) tells it when a connection opened, is ready,
or ended. Nothing else touches its handle.

The handle is freed once both of its users are done with it -- the
consumer, when it reached the end (or closed), and the callback runner,
when it has seen the end and on_close returned -- or by the garbage
collector, when the connection is dropped.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from . import _lib
from ._abi import STAT_NAMES, STATES, ErrorCode, PollFlags, SendFlags
from ._errors import ConnectionClosedError, ConnectionClosedOK
from ._events import Buffers, Closed, Ended, HubEvent, Opened
from ._handle import Handle, HandleClosed
from ._options import Backoff, encode, headers_json, redact_url
from ._stream import EventStream

lib = _lib.lib
_TEXT, _NO_WAIT = int(SendFlags.TEXT), int(SendFlags.NO_WAIT)
_FAST = int(PollFlags.FAST)
_WOULD_BLOCK = (ErrorCode.WOULD_BLOCK,)
_POLL_ALLOWED = (ErrorCode.BUFFER_TOO_SMALL, ErrorCode.CLOSED)

T = TypeVar("T")


class Connection:
    """An engine connection: its handle, stream and end."""

    def __init__(self, handle: Handle, member: int, url: str, has_on_close: bool = False, consumer: int = 0) -> None:
        self.handle = handle
        self.member = member  # in the observing hub (the callback thread's, or the loop's)
        self.consumer = consumer  # in the consuming hub (a Group's), if any
        self.url = redact_url(url)
        self.stream = EventStream()
        self.opened = threading.Event()  # the first connection is ready, or the client ended before
        self.finished = threading.Event()  # the end was seen by the callback runner: on_close returned
        self.subprotocol: str | None = None
        self.local_close: tuple[int, str] | None = None  # close() was called with these
        self.was_ready = False  # a connection was open and ready once
        self.has_on_close = has_on_close  # then "closed" includes on_close having run
        self._lock = threading.Lock()
        self._end: Ended | None = None
        self._users = {"consumer", "callbacks"}  # who still needs the handle
        self._final_stats: dict[str, int] | None = None
        self._waker: int | None = None
        self._socket: tuple[int, int] | None = None  # (connection, fd): our descriptor of its socket
        handle.before_free(self._keep_stats)
        handle.before_free(self._drop_socket)

    @classmethod
    def open(cls, url: str, config: dict[str, Any], observe: int, consume: int, has_on_close: bool) -> Connection:
        """Start a connection with ``config`` (checked by the engine: no I/O
        yet), its lifecycle observed by hub ``observe``, its event stream
        consumed by hub ``consume`` (0: by its own receive calls; the same
        hub: by that hub's callbacks, as for on_message)."""
        raw = encode(config)
        value, member, consumer = ctypes.c_int64(), ctypes.c_int32(), ctypes.c_int32()
        _lib.call(
            lib.sws_connect, raw, len(raw), observe, consume, ctypes.byref(value), ctypes.byref(member),
            ctypes.byref(consumer),
        )  # fmt: skip
        return cls(Handle(value.value), member.value, url, has_on_close, consumer.value)

    # The end.

    def record_end(self, ended: Ended) -> None:
        """Remember how the client ended, the first time anyone learns it."""
        with self._lock:
            if self._end is None:
                self._end = ended

    def end_exception(self) -> Exception:
        """The exception for the end: the engine's word on it once known,
        else our close() (it is final), for calls made after the handle is
        gone or after close()."""
        with self._lock:
            end = self._end
        if end is not None:
            return end.exception()
        if self.local_close is not None:
            return ConnectionClosedOK(*self.local_close, closed_by="client")
        return ConnectionClosedError(1006, "", "the connection is gone")

    def close_info(self) -> tuple[int, str] | None:
        """The close code and reason once the connection has ended for good
        (or close() was called), else None."""
        with self._lock:
            end = self._end
        if end is not None:
            return end.code, end.reason
        return self.local_close

    def consumer_done(self) -> None:
        """The consumer reached the end or closed: it needs the handle no more."""
        self._done("consumer")

    def observed_end(self) -> None:
        """The callback runner saw the end, and on_close returned."""
        self.finished.set()
        self.opened.set()
        self._done("callbacks")

    def _done(self, user: str) -> None:
        with self._lock:
            if user not in self._users:
                return
            self._users.discard(user)
            last = not self._users
        if last:
            self.handle.free()

    def abandon(self) -> None:
        """Free the handle now (the connection was dropped, or never opened)."""
        self.handle.free()

    # Calls.

    def acquire(self) -> int:
        """The handle for one call; HandleClosed becomes the end's exception."""
        try:
            return self.handle.acquire()
        except HandleClosed:
            raise self.end_exception() from None

    def release(self) -> None:
        """Release what acquire() gave."""
        self.handle.release()

    @contextmanager
    def using(self) -> Iterator[int]:
        """The handle for the calls of a block; the end's exception if it is gone."""
        h = self.acquire()
        try:
            yield h
        finally:
            self.handle.release()

    def _or(self, default: T, fn: Callable[[int], T]) -> T:
        """``fn(handle)``, or ``default`` once the handle is gone."""
        try:
            h = self.handle.acquire()
        except HandleClosed:
            return default
        try:
            return fn(h)
        finally:
            self.handle.release()

    def send(self, data: bytes, text: int, opening: int, nowait: bool = False) -> bool:
        """Send one message; False if ``nowait`` and another write is in progress.
        (The hot path of every strategy: no context manager, no enum arithmetic.)"""
        flags = (_TEXT if text else 0) | (_NO_WAIT if nowait else 0)
        h = self.acquire()
        try:
            rc = _lib.call(lib.sws_send, h, data, len(data), flags, opening, allow=_WOULD_BLOCK)
        finally:
            self.handle.release()
        return rc == ErrorCode.OK

    def send_batch(self, blob: bytes, words: list[int], opening: int, nowait: bool = False) -> bool:
        """Send messages back to back (see sws_send_batch); False as for send."""
        meta = (ctypes.c_uint32 * len(words))(*words)
        flags = SendFlags.NO_WAIT if nowait else 0
        with self.using() as h:
            rc = _lib.call(
                lib.sws_send_batch, h, blob, len(blob), meta, len(words) // 2, flags, opening,
                allow=(ErrorCode.WOULD_BLOCK,),
            )  # fmt: skip
        return rc == ErrorCode.OK

    def poll(self, h: int, buffers: Buffers, timeout_ms: int = 0, fast: bool = False) -> list[HubEvent]:
        """Poll one batch into the stream; the events (empty if none or the
        buffer had to grow). ``h`` is the caller's acquire(). ``fast``: read
        the socket on this thread if nothing is queued (sws_poll's
        SWS_POLL_FAST); buffers.gen then names the connection whose socket
        the caller may wait on (socket_fd), 0 if none."""
        rc = _lib.call(
            lib.sws_poll, h, buffers.meta_c, buffers.max_events, buffers.data_c,
            len(buffers.data), timeout_ms, _FAST if fast else 0, buffers.count_ref, buffers.size_ref,
            buffers.gen_ref, allow=_POLL_ALLOWED,
        )  # fmt: skip
        if rc:
            if rc == ErrorCode.BUFFER_TOO_SMALL:
                buffers.resize(max(buffers.size.value, 2 * len(buffers.data)))
            else:  # CLOSED: the end was taken already
                self.stream.end(self.end_exception)
            return []
        if buffers.count.value == 0:
            return []
        events, messages_only = buffers.decode()
        if not messages_only and any(isinstance(ev, Ended) for ev in events):
            self._drop_socket(h)  # Disconnected or Closed: that socket is over
        if self.stream.feed(events, buffers.times(), messages_only):
            for ev in reversed(events):
                if isinstance(ev, Closed):
                    self.record_end(ev)
                    break
            self.consumer_done()
        return events

    def socket_fd(self, h: int, gen: int) -> int | None:
        """A descriptor of connection ``gen``'s socket, to wait on between
        fast polls (None if it is over). Ours: one at a time, closed when
        the next connection's is made, when the connection ends, and
        before the handle is freed. Only the polling consumer calls it."""
        if self._socket is not None and self._socket[0] == gen:
            return self._socket[1]
        fd = ctypes.c_int32()
        if _lib.call(lib.sws_socket_fd, h, gen, ctypes.byref(fd), allow=(ErrorCode.NOT_CONNECTED,)) != ErrorCode.OK:
            return None
        self._drop_socket(h)
        self._socket = (gen, fd.value)
        return fd.value

    def drop_socket(self) -> None:
        """Close the descriptor socket_fd gave, if any: its socket is over.
        Only on the polling consumer's thread (or loop), between polls."""
        self._drop_socket(0)

    def _drop_socket(self, _h: int) -> None:
        if self._socket is not None:
            os.close(self._socket[1])
            self._socket = None

    def gone(self) -> None:
        """The consumer found the handle gone: the stream ends with the end."""
        self.stream.end(self.end_exception)
        self.consumer_done()

    def wakeup_fd(self, h: int) -> int:
        """The engine's eventfd, readable while events wait (made on first
        use); ``h`` is the caller's acquire(): the fd lives until release."""
        if self._waker is None:
            fd = ctypes.c_int32()
            _lib.call(lib.sws_wakeup_fd, h, ctypes.byref(fd))
            self._waker = fd.value
        return self._waker

    def closed(self) -> bool:
        """Whether it has ended for good (its end was seen, or the engine is
        done), and its on_close (if any) ran."""
        if self.finished.is_set():
            return True
        if self.has_on_close:
            return False
        with self._lock:
            seen = self._end is not None
        return seen or self.wait(0)

    def wait(self, timeout_ms: int) -> bool:
        """Whether the engine has ended, waiting up to ``timeout_ms``."""
        return self._or(
            True, lambda h: _lib.call(lib.sws_wait, h, timeout_ms, allow=(ErrorCode.TIMEOUT,)) == ErrorCode.OK
        )

    def begin_close(self, code: int, reason: str) -> None:
        """Start the close handshake. The first call's code and reason are
        the ones; every call goes to the engine (it is idempotent there), so
        a close() interrupted before it got there is completed by the next.
        What the stream holds is dropped: after close(), nobody reads it."""
        with self._lock:
            if self.local_close is None:
                self.local_close = (code, reason)
            code, reason = self.local_close
        raw = reason.encode("utf-8")
        self.stream.end(self.end_exception)
        self._or(None, lambda h: _lib.call(lib.sws_close, h, code, raw, len(raw)))
        if not self.consumer:  # a hub that consumes it (a Group) takes the end itself
            self.consumer_done()

    def state(self) -> str:
        return self._or("closed", lambda h: STATES[self._int32(lib.sws_state, h)])

    @staticmethod
    def _int32(fn: Callable[..., int], h: int) -> int:
        out = ctypes.c_int32()
        _lib.call(fn, h, ctypes.byref(out))
        return out.value

    def stats(self) -> dict[str, int]:
        """The engine's counters; the last ones once the handle is gone."""
        return self._or(dict(self._final_stats or dict.fromkeys(STAT_NAMES, 0)), self._stats)

    def _stats(self, h: int) -> dict[str, int]:
        values = _lib.int64s(lib.sws_stats, h, count=len(STAT_NAMES))
        return dict(zip(STAT_NAMES, values, strict=False))

    def _keep_stats(self, h: int) -> None:
        try:
            self._final_stats = self._stats(h)
        except Exception:  # noqa: BLE001 - freeing goes on
            self._final_stats = None

    def opened_with(self, event: Opened) -> None:
        """A connection opened (seen by the callback runner)."""
        self.subprotocol = event.subprotocol

    def ready(self, number: int) -> None:
        """Connection ``number``'s on_open returned: everyone may send."""
        self._or(None, lambda h: _lib.call(lib.sws_ready, h, number))
        self.was_ready = True
        self.opened.set()

    def check_opened(self) -> None:
        """After connect() waited: raise how the client ended if it never
        opened (and free it)."""
        if not self.was_ready:
            self.abandon()
            raise self.end_exception()

    def provide_headers(self, request: int, headers: object, failure: str) -> None:
        """Answer a header request; TypeError or ValueError if the engine
        refuses the headers (the attempt then fails)."""
        if failure:
            why = failure.encode("utf-8")
            self._or(None, lambda h: _lib.call(lib.sws_provide_headers, h, request, None, 0, why, len(why)))
            return
        raw = headers_json(headers)
        self._or(None, lambda h: _lib.call(lib.sws_provide_headers, h, request, raw, len(raw), None, 0))

    def set_backoff(self, config: dict[str, Any]) -> None:
        raw = encode(config)
        with self.using() as h:
            _lib.call(lib.sws_set_backoff, h, raw, len(raw))


class ConnectionInfo:
    """What the threaded and the asyncio WebSocket share: the properties and
    the calls that neither waits for. ``_conn`` is the connection."""

    _conn: Connection
    url: str

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose, or None."""
        _lib.check_fork()
        return self._conn.subprotocol

    @property
    def state(self) -> str:
        """ "connecting" (until on_open returned), "open", "reconnecting", "closing" or "closed"."""
        _lib.check_fork()
        return self._conn.state()

    def rotate(self) -> None:
        """Replace the connection make-before-break, now (see
        max_connection_age): a second connection opens with fresh headers
        and runs on_open; delivery switches to it once it delivers, without
        duplicates or a gap when both get the same feed; then the old one
        closes with 1000 (events Opened, then Rotated). NotConnected unless
        a connection is open; a rotation under way is not started twice.
        A rotation that cannot open leaves the old connection serving and
        tries again on the reconnect policy's backoff schedule."""
        _lib.check_fork()
        h = self._conn.acquire()
        try:
            _lib.call(lib.sws_rotate, h)
        finally:
            self._conn.release()

    @property
    def last_received_ns(self) -> int:
        """When the message most recently handed out (by recv, recv_batch,
        iteration, on_message or the Group) was read from the socket -- its
        last frame -- in time.time_ns()'s clock; 0 before the first."""
        _lib.check_fork()
        return self._conn.stream.last_ns

    @property
    def close_code(self) -> int | None:
        """The close code once the connection has ended for good, else None."""
        _lib.check_fork()
        info = self._conn.close_info()
        return None if info is None else info[0]

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection has ended for good, else None."""
        _lib.check_fork()
        info = self._conn.close_info()
        return None if info is None else info[1]

    def stats(self) -> dict[str, int]:
        """Counters: messages and bytes in and out, queue depth (what the
        engine queues and the batch this process holds), pings, reconnects,
        ...; ``held_messages`` and ``held_bytes`` are what the client holds in
        Python for the consumer now."""
        _lib.check_fork()
        stats = self._conn.stats()
        stats["held_messages"], stats["held_bytes"] = self._conn.stream.held()
        return stats

    def set_reconnect(self, backoff: Backoff) -> None:
        """Change the reconnect policy of this live connection, from the next attempt on."""
        _lib.check_fork()
        if not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a steadyws.Backoff, not {type(backoff).__name__}")
        self._conn.set_backoff(backoff.config())
