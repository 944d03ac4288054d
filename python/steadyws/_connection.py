"""The synchronous client: connect() and WebSocket.

Threading model: the engine's Go threads do all network I/O; Python threads
only cross into Go to send, to poll a batch of events, and to close. Blocking
calls wait inside Go in slices of at most SLICE seconds, with the GIL
released, so other threads run and Ctrl-C is seen between slices.
"""

from __future__ import annotations

import array
import ctypes
import json
import logging
import select
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType

from . import _ffi
from ._batch import Buffers, Closed, Ended, Event, Lifecycle, Message, Opened
from ._callbacks import (
    Callbacks,
    OnCallbackError,
    OnClose,
    OnDisconnect,
    OnMessage,
    OnOpen,
    OnReconnectAttempt,
)
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
from ._handle import Handle, header_provider, open_handle
from ._options import (
    Backoff,
    HeadersArg,
    HeadersLike,
    build_config,
    check_close,
    check_positive_int,
    check_timeout,
    encode_message,
    redact_url,
)

logger = logging.getLogger("steadyws")

SLICE = 0.1  # longest wait inside one Go call, in seconds
_POLL_EVENTS = 1024  # events per polled batch
_POLL_BYTES = 1 << 20  # initial data buffer (per polling thread); grows to the largest message
_FATAL_WAIT_MS = 1000  # after a failed send, wait this long for the engine to settle
_SPIN = 100e-6  # a blocking poll first spins this long (seconds) before it sleeps
_DISPATCHER_JOIN = 5.0  # close() waits this long for the on_message thread

lib = _ffi.lib

_local = threading.local()


def _thread_buffers() -> Buffers:
    """The poll buffers of the calling thread. Shared by every connection
    the thread polls (a batch is turned into objects before the next poll),
    so 10,000 connections cost one buffer, not 10,000."""
    b: Buffers | None = getattr(_local, "buffers", None)
    if b is None:
        b = _local.buffers = Buffers(_POLL_EVENTS, _POLL_BYTES)
    return b


def connect(
    url: str,
    *,
    headers: HeadersArg = None,
    subprotocols: list[str] | None = None,
    # Reconnect.
    reconnect: Backoff | bool = True,
    fatal_statuses: Iterable[int] = (400, 401, 403, 404),
    healthy_after: float | None = None,
    # Heartbeat, in seconds (None: off).
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    # Timeouts, in seconds (None: no limit).
    open_timeout: float | None = 10.0,
    close_timeout: float | None = 10.0,
    write_timeout: float | None = 10.0,
    # Limits and flow control.
    max_message_size: int = 1 << 20,
    max_queue: int = 1024,
    max_queue_bytes: int = 64 << 20,
    overflow: str = "block",
    compression: str | None = None,
    # TLS, for wss:// URLs.
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    server_hostname: str | None = None,
    insecure_skip_verify: bool = False,
    pin_sha256: Iterable[str] | None = None,
    # Proxy: a URL, True for HTTP(S)_PROXY/NO_PROXY from the environment, None for none.
    proxy: str | bool | None = True,
    # Callbacks, run in order with the messages, never on an engine thread.
    on_message: OnMessage | None = None,
    on_open: OnOpen | None = None,
    on_disconnect: OnDisconnect | None = None,
    on_reconnect_attempt: OnReconnectAttempt | None = None,
    on_close: OnClose | None = None,
    on_callback_error: OnCallbackError | None = None,
) -> WebSocket:
    """Open a WebSocket connection and return it once the handshake is done.

    The first connection must succeed: its failure raises (HandshakeError,
    OpenTimeout, a NetworkError, ...). After that, with ``reconnect`` on, a
    lost connection is dialled again on the backoff schedule. With
    ``on_message``, messages go to that callback on one dispatcher thread
    instead of recv(). The README documents every option and its default.
    """
    options = {k: v for k, v in locals().items() if k not in ("url",)}
    config, header_fn, callbacks = build_config(url, **options)
    _ffi.check_fork()
    ws = WebSocket(open_handle(config), url, callbacks)
    if header_fn is not None:
        ws._provide_headers(header_fn)
    logger.debug("connecting to %s", ws.url)
    ws._wait_open()
    logger.debug("connected to %s (subprotocol %s)", ws.url, ws.subprotocol)
    if on_message is not None:
        ws._start_dispatcher()
    return ws


def _is_message(item: object) -> bool:
    return type(item) is str or type(item) is bytes


class WebSocket:
    """A client connection. Create it with :func:`connect`.

    ``send`` and ``close`` are safe from any thread; ``recv``, ``recv_batch``,
    ``recv_events`` and iteration may be used from several threads too (one
    waits while another polls).
    """

    def __init__(self, handle: int, url: str, callbacks: Callbacks | None = None) -> None:
        self._h = Handle(handle)
        self._finalizer = weakref.finalize(self, self._h.free)
        self.url = redact_url(url)
        self._callbacks = callbacks or Callbacks()
        self._subprotocol: str | None = None
        self._opened = False
        self._pending: deque[Event] = deque()  # messages and lifecycle events, in order
        self._lifecycle = 0  # lifecycle events in _pending
        self._count = ctypes.c_int32()
        self._size = ctypes.c_int64()
        self._count_ref = ctypes.byref(self._count)
        self._size_ref = ctypes.byref(self._size)
        self._poll_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._closed: Closed | None = None  # the terminal event, once polled
        self._sent_close: tuple[int, str] | None = None  # set by close()
        self._final_stats: dict[str, int] | None = None
        self._before_free: Callable[[], None] | None = None  # the asyncio layer's remove_reader
        self._dispatcher: threading.Thread | None = None
        self._waker: select.poll | None = None

    def __repr__(self) -> str:
        return f"<steadyws.WebSocket {self.url} {self.state}>"

    # Properties.

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose, or None."""
        return self._subprotocol

    @property
    def state(self) -> str:
        """ "connecting", "open", "reconnecting", "closing" or "closed"."""
        if self._h.freed:
            return "closed"
        st = ctypes.c_int32()
        if lib.sws_state(self._h.value, ctypes.byref(st)) != ErrorCode.OK:
            return "closed"
        return _ffi.STATES[st.value]

    @property
    def close_code(self) -> int | None:
        """The close code once the connection has ended for good, else None."""
        if self._sent_close is not None:
            return self._sent_close[0]
        return self._closed.code if self._closed else None

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection has ended for good, else None."""
        if self._sent_close is not None:
            return self._sent_close[1]
        return self._closed.reason if self._closed else None

    def stats(self) -> dict[str, int]:
        """Counters: messages and bytes in and out, queue depth, pings, reconnects, ..."""
        if self._final_stats is not None:
            return dict(self._final_stats)
        h = self._h.value
        values = _ffi.int64s(lambda out, cap, n: lib.sws_stats(h, out, cap, n), len(_ffi.STAT_NAMES))
        if values is None:  # freed meanwhile: _release kept the last counters
            return dict(self._final_stats or {})
        return dict(zip(_ffi.STAT_NAMES, values, strict=False))

    def set_reconnect(self, backoff: Backoff) -> None:
        """Change the reconnect policy of this live connection, from the next attempt on."""
        if not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a steadyws.Backoff, not {type(backoff).__name__}")
        raw = json.dumps(backoff.config()).encode("utf-8")
        rc = lib.sws_set_backoff(self._h.value, raw, len(raw))
        if rc == ErrorCode.INVALID_ARGUMENT:
            raise ValueError(_ffi.last_error(self._h.value))
        if rc != ErrorCode.OK:
            raise self._closed_exception()

    def _provide_headers(self, fn: Callable[[], HeadersLike]) -> None:
        provider = header_provider(fn)
        self._h.keep.append(provider)
        lib.sws_set_header_provider(self._h.value, provider, None)

    # Sending.

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (str) or binary (bytes-like) message.

        Raises NotConnected while (re)connecting and ConnectionClosed once the
        connection has ended: a message is never queued for later.
        """
        data, text = encode_message(message)
        if _ffi._forked:
            _ffi.check_fork()
        rc = lib.sws_send(self._h.value, data, len(data), text)
        if rc != ErrorCode.OK:
            raise self._send_error(rc)

    def _send_error(self, rc: int) -> Exception:
        if rc == ErrorCode.NOT_CONNECTED:
            return NotConnected("the connection is not open: it is " + self.state)
        if rc == ErrorCode.INVALID_ARGUMENT:
            return ValueError(_ffi.last_error(self._h.value))
        if rc == ErrorCode.BAD_HANDLE or self._closed is not None:
            return self._closed_exception()
        detail = _ffi.last_error(self._h.value)
        lib.sws_wait(self._h.value, _FATAL_WAIT_MS)  # let the state settle
        return ConnectionClosedError(1006, "", detail)

    def send_batch(self, messages: Iterable[str | bytes | bytearray | memoryview]) -> None:
        """Send several messages in one call: one boundary crossing and, for
        small messages, one write to the socket. All or nothing is sent,
        unless the connection fails in the middle."""
        payloads: list[bytes] = []
        words = array.array("I")
        for message in messages:
            data, text = encode_message(message, "messages")
            payloads.append(data)
            words.extend((len(data), text))
        if not payloads:
            return
        if _ffi._forked:
            _ffi.check_fork()
        blob = b"".join(payloads)
        rc = lib.sws_send_batch(self._h.value, blob, len(blob), words.buffer_info()[0], len(payloads))
        if rc != ErrorCode.OK:
            raise self._send_error(rc)

    # Receiving.

    def recv(self, timeout: float | None = None) -> Message:
        """Return the next message: str for text, bytes for binary.

        Lifecycle events on the way run their callbacks. Raises TimeoutError
        after ``timeout`` seconds (None: wait forever); once the connection
        has ended for good and every earlier message was returned, raises
        ConnectionClosedOK, ConnectionClosedError, or the error that ended
        the last reconnect attempt.
        """
        self._check_receiver()
        deadline = _deadline(timeout)
        while True:
            if not self._wait_pending(deadline):
                raise TimeoutError(f"no message within {timeout} s")
            item = self._pending.popleft()
            if _is_message(item):
                return item  # type: ignore[return-value]
            self._lifecycle -= 1
            self._reach(item)  # type: ignore[arg-type]

    def recv_batch(self, max_messages: int = 1000, timeout: float | None = None) -> list[Message]:
        """Return up to ``max_messages`` messages, waiting up to ``timeout``
        seconds for the first; [] if none came. Raises like recv() once the
        connection has ended and nothing is left."""
        check_positive_int("max_messages", max_messages, 1 << 30)
        self._check_receiver()
        deadline = _deadline(timeout)
        while self._wait_pending(deadline):
            pending = self._pending
            if self._lifecycle == 0 and len(pending) <= max_messages:
                everything: list[Message] = list(pending)  # type: ignore[arg-type]
                pending.clear()
                return everything
            taken = self._take(max_messages)
            if taken:
                return taken
        return []

    def _take(self, max_messages: int) -> list[Message]:
        """Pop up to max_messages, running lifecycle events on the way; stop
        before the terminal event if messages were taken."""
        out: list[Message] = []
        pending = self._pending
        while pending and len(out) < max_messages:
            item = pending[0]
            if _is_message(item):
                out.append(pending.popleft())  # type: ignore[arg-type]
                continue
            if isinstance(item, Closed) and out:
                break
            pending.popleft()
            self._lifecycle -= 1
            self._reach(item)  # type: ignore[arg-type]
        return out

    def recv_events(self, max_events: int = 1000, timeout: float | None = None) -> list[Event]:
        """Return up to ``max_events`` items of the event stream -- messages
        and the lifecycle events Opened, Disconnected, Reconnecting and
        Closed, in order -- waiting up to ``timeout`` seconds for the first;
        [] if none came. Callbacks run as for recv(). Once the Closed event
        was returned, raises like recv()."""
        check_positive_int("max_events", max_events, 1 << 30)
        self._check_receiver()
        if not self._wait_pending(_deadline(timeout)):
            return []
        return self._take_events(max_events)

    def _take_events(self, max_events: int) -> list[Event]:
        """Pop up to max_events pending items, running lifecycle callbacks."""
        out: list[Event] = []
        while self._pending and len(out) < max_events:
            item = self._pending.popleft()
            if not _is_message(item):
                self._lifecycle -= 1
                self._callbacks.run(self, item)  # type: ignore[arg-type]
            out.append(item)
        return out

    def __iter__(self) -> Iterator[Message]:
        """Yield messages until the connection ends for good; a normal close
        ends the loop quietly, anything else raises."""
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    def _check_receiver(self) -> None:
        if self._dispatcher is not None and self._dispatcher is not threading.current_thread():
            raise RuntimeError("this connection delivers its messages to on_message; recv() is not available")

    def _start_dispatcher(self) -> None:
        self._dispatcher = threading.Thread(target=self._dispatch_forever, name=f"steadyws {self.url}", daemon=True)
        self._dispatcher.start()

    def _dispatch_forever(self) -> None:
        """The on_message thread: every message and lifecycle event, in
        order, to the callbacks, until the connection ends for good. A
        callback's exception is logged and never ends the loop."""
        try:
            while True:
                for item in self.recv_events(timeout=None):
                    if _is_message(item):
                        self._callbacks.message(self, item)  # type: ignore[arg-type]
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("%s: the on_message dispatcher stopped", self.url)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the connection has ended for good (and, with
        on_message, every callback has run); False after ``timeout``."""
        deadline = _deadline(timeout)
        if self._dispatcher is not None and self._dispatcher is not threading.current_thread():
            self._dispatcher.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            return not self._dispatcher.is_alive()
        while self.state != "closed":
            if deadline is not None and time.monotonic() >= deadline:
                return False
            lib.sws_wait(self._h.value, int(SLICE * 1000))
        return True

    def _reach(self, event: Lifecycle) -> None:
        """The receiver reached ``event`` in the stream: run its callback;
        the terminal event raises."""
        self._callbacks.run(self, event)
        if isinstance(event, Closed):
            raise self._closed_exception()

    def _wait_pending(self, deadline: float | None) -> bool:
        """Wait until an item is pending (True) or deadline passes (False)."""
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
        """Poll one batch (waiting up to ``wait`` s) and queue it. Holds _poll_lock.

        An empty queue is waited on in the kernel, on the engine's eventfd
        with the GIL released, not inside Go: the engine's reader wakes this
        thread directly, which saves the Go scheduler's hand-off to a thread
        parked in a cgo call (about 40 us a message on a ping-pong)."""
        if self._h.freed:
            return
        if _ffi._forked:
            _ffi.check_fork()
        b = _thread_buffers()
        rc = lib.sws_poll(
            self._h.value, b.meta_c, b.max_events, b.data_c, len(b.data), 0, self._count_ref, self._size_ref
        )
        if rc == ErrorCode.OK and self._count.value == 0 and wait > 0:
            spin_until = time.perf_counter() + _SPIN
            while (
                rc == ErrorCode.OK and self._count.value == 0 and time.perf_counter() < spin_until
            ):  # a reply that close is cheaper to catch than to be woken for
                rc = lib.sws_poll(
                    self._h.value, b.meta_c, b.max_events, b.data_c, len(b.data), 0, self._count_ref, self._size_ref
                )
        if rc == ErrorCode.OK and self._count.value == 0 and wait > 0:
            self._wakeup().poll(int(wait * 1000))
            rc = lib.sws_poll(
                self._h.value, b.meta_c, b.max_events, b.data_c, len(b.data), 0, self._count_ref, self._size_ref
            )
        if rc == ErrorCode.OK:
            self._dispatch(*b.decode(self._count.value, self._size.value))
        elif rc == ErrorCode.BUFFER_TOO_SMALL:
            b.resize(max(self._size.value, 2 * len(b.data)))
        elif rc in (ErrorCode.CLOSED, ErrorCode.BAD_HANDLE):
            self._dispatch([Closed(1006, "", ErrorCode.CLOSED)])
        else:
            raise InternalError(f"poll failed: {_ffi.last_error(self._h.value)}")

    def _wakeup(self) -> select.poll:
        """A poll object on the engine's wakeup eventfd, made on first use
        (so connections nobody waits on cost no fd). The fd is closed by
        sws_free, which only runs under _poll_lock, like this wait."""
        if self._waker is None:
            fd = ctypes.c_int32()
            if lib.sws_wakeup_fd(self._h.value, ctypes.byref(fd)) != ErrorCode.OK:
                raise InternalError(f"no wakeup fd: {_ffi.last_error(self._h.value)}")
            self._waker = select.poll()
            self._waker.register(fd.value, select.POLLIN)
        return self._waker

    def _dispatch(self, events: list[Event], messages_only: bool = False) -> None:
        if messages_only and self._sent_close is None:
            self._pending.extend(events)
            return
        for ev in events:
            if _is_message(ev):
                if self._sent_close is None:  # after close(), nobody reads them
                    self._pending.append(ev)
                continue
            if isinstance(ev, Opened):
                self._subprotocol, self._opened = ev.subprotocol, True
            elif isinstance(ev, Closed):
                if self._closed is not None:
                    continue
                self._closed = ev
                self._release()
            self._pending.append(ev)
            self._lifecycle += 1

    def _release(self) -> None:
        """Free the engine handle, keeping the final counters."""
        if self._h.freed:
            return
        self._final_stats = self.stats()
        if self._before_free is not None:
            self._before_free()
        self._h.free()
        self._finalizer.detach()

    def _exception_for(self, ev: Ended) -> Exception:
        """The exception that tells how a connection or an attempt ended."""
        if ev.dialing and ev.error != ErrorCode.OK:
            return connect_error(ev.error, ev.detail or "connection failed", ev.status)
        return closed_error(ev.code, ev.reason, ev.error, ev.detail)

    def _closed_exception(self) -> Exception:
        if self._sent_close is not None:
            return ConnectionClosedOK(*self._sent_close)
        return self._exception_for(self._closed or Closed(1006, "", ErrorCode.CLOSED))

    def _wait_open(self) -> None:
        """Poll until the first OPEN or the CLOSED event; raise if it failed,
        else run on_open."""
        try:
            while not self._opened and self._closed is None:
                with self._poll_lock:
                    self._poll_once(SLICE)
        except BaseException:
            self._h.free()
            raise
        self._after_open()

    def _after_open(self) -> None:
        """Raise if the first connection failed, else run on_open for it."""
        if not self._opened:
            raise self._closed_exception()
        while self._pending and not _is_message(self._pending[0]):
            event = self._pending.popleft()
            self._lifecycle -= 1
            self._callbacks.run(self, event)  # type: ignore[arg-type]
            if isinstance(event, Opened):
                break

    # Closing.

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection: send a close frame with ``code`` and
        ``reason``, wait up to close_timeout for the server's, close TCP.
        During a reconnect wait, end it at once.

        Idempotent and safe from any thread; a recv() blocked in another
        thread raises ConnectionClosedOK. on_close runs once, here.
        """
        raw = check_close(code, reason)
        with self._close_lock:
            if not self._begin_close(code, reason, raw):
                return
            h = self._h.value
            while lib.sws_wait(h, int(SLICE * 1000)) == ErrorCode.TIMEOUT:
                pass
            with self._poll_lock:
                while not self._h.freed:
                    self._poll_once(0)
        self._finish_close()
        if self._dispatcher is not None and self._dispatcher is not threading.current_thread():
            self._dispatcher.join(_DISPATCHER_JOIN)

    def _begin_close(self, code: int, reason: str, raw: bytes) -> bool:
        """Start the close handshake; False if the connection already ended."""
        if self._sent_close is not None or self._closed is not None:
            return False
        _ffi.check_fork()
        self._sent_close = (code, reason)
        lib.sws_close(self._h.value, code, raw, len(raw))
        return True

    def _finish_close(self) -> None:
        """After the engine stopped: drop what nobody will read, run on_close."""
        self._pending.clear()
        self._lifecycle = 0
        assert self._sent_close is not None
        code, reason = self._sent_close
        logger.debug("closed connection to %s with %d", self.url, code)
        self._callbacks.run(self, Closed(code, reason, ErrorCode.OK))

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(1011 if exc_type is not None and not issubclass(exc_type, ConnectionClosed) else 1000)


def _deadline(timeout: float | None) -> float | None:
    t = check_timeout("timeout", timeout)
    return None if t is None else time.monotonic() + t
