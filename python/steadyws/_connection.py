"""The threaded client: connect() and WebSocket.

A thin driver over a :class:`~steadyws._conn.Connection`: the engine's Go
threads do all network I/O; a receive polls a batch into the connection's
event stream and takes from it, waiting on the engine's eventfd in the
kernel with the GIL released, in slices of at most SLICE seconds so that
Ctrl-C is seen. Callbacks run on the process's callback thread
(:mod:`steadyws._dispatch`), when the events happen.
"""

from __future__ import annotations

import select
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from . import _lib
from ._abi import HubMode
from ._callbacks import Lifecycle, opening_number
from ._conn import Connection, ConnectionInfo
from ._dispatch import DISPATCHER
from ._errors import ConnectionClosed, ConnectionClosedOK
from ._events import Event, Message, thread_buffers
from ._options import Options, build, check_close, check_count, check_timeout, encode_batch, encode_message

if TYPE_CHECKING:
    from typing_extensions import Unpack

SLICE = 0.1  # longest wait inside one call, in seconds
_SPIN = 100e-6  # a blocking poll first spins this long (seconds) before it sleeps
_CLOSE_GRACE = 1.0  # close() waits this long past the engine's end for on_close


class ConnectOptions(Options, total=False):
    """connect()'s options: the engine's, and the callbacks, which get the
    WebSocket first."""

    on_message: Callable[[WebSocket, Message], object] | None
    on_open: Callable[[WebSocket], object] | None
    on_disconnect: Callable[[WebSocket, Exception], object] | None
    on_reconnect_attempt: Callable[[WebSocket, int, float], object] | None
    on_close: Callable[[WebSocket, int, str], object] | None
    on_callback_error: Callable[[WebSocket, Exception], object] | None


def connect(url: str, **options: Unpack[ConnectOptions]) -> WebSocket:
    """Open a WebSocket connection and return it once the handshake is done
    and on_open (if any) has returned.

    The first connection must succeed: its failure raises (HandshakeError,
    OpenTimeout, a NetworkError, ...). After that, with ``reconnect`` on, a
    lost connection is dialled again on the backoff schedule. With
    ``on_message``, messages go to that callback instead of recv(). The
    README documents every option and its default.
    """
    _lib.check_fork()
    config, callbacks, header_fn = build(url, options)
    dispatched = callbacks.on_message is not None
    made: list[WebSocket] = []

    def lifecycle(conn: Connection) -> Lifecycle:
        made.append(WebSocket(_token, conn, dispatched))
        return Lifecycle(made[0], conn, callbacks, header_fn)

    mode = HubMode.CONSUME if dispatched else HubMode.OBSERVE
    conn = DISPATCHER.open(url, config, mode, lifecycle, callbacks.on_close is not None)
    _wait_ready(conn)
    return made[0]


def _wait_ready(conn: Connection) -> None:
    """Wait until the first connection is open and its on_open returned;
    raise how the client ended if it never opened."""
    try:
        DISPATCHER.wait(conn.opened, None)
    except BaseException:
        conn.abandon()
        raise
    conn.check_opened()


_token = object()  # WebSocket objects come from connect()


class WebSocket(ConnectionInfo):
    """A client connection. Create it with :func:`connect`.

    ``send`` and ``close`` are safe from any thread; ``recv``, ``recv_batch``,
    ``recv_events`` and iteration too: each message goes to exactly one
    caller.
    """

    def __init__(self, token: object, conn: Connection, dispatched: bool) -> None:
        if token is not _token:
            raise TypeError("use steadyws.connect() to make a WebSocket")
        self._conn = conn
        self._dispatched = dispatched  # messages go to on_message
        self._poll_lock = threading.Lock()
        self._waker: select.poll | None = None
        self.url = conn.url
        weakref.finalize(self, conn.abandon).atexit = False  # see Handle
        if dispatched:
            conn.consumer_done()  # the callback thread is its consumer

    def __repr__(self) -> str:
        return f"<steadyws.WebSocket {self.url}>"

    # Sending.

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (str) or binary (bytes-like) message.

        Raises NotConnected while (re)connecting -- and, after a reconnect,
        until on_open has returned, except in on_open itself -- and the
        connection's end once it has ended: a message is never queued for
        later.
        """
        _lib.check_fork()
        data, text = encode_message(message)
        self._conn.send(data, text, opening_number(self._conn))

    def send_batch(self, messages: Iterable[str | bytes | bytearray | memoryview]) -> None:
        """Send several messages in one call: one boundary crossing and, for
        small messages, one write to the socket. All or nothing is sent,
        unless the connection fails in the middle."""
        _lib.check_fork()
        blob, words = encode_batch(messages)
        if words:
            self._conn.send_batch(blob, words, opening_number(self._conn))

    # Receiving.

    def recv(self, timeout: float | None = None) -> Message:
        """Return the next message: str for text, bytes for binary.

        Raises TimeoutError after ``timeout`` seconds (None: wait forever; 0:
        only what has arrived); once the connection has ended for good and
        every earlier message was returned, raises the end: ConnectionClosedOK,
        ConnectionClosedError, or the error that ended the last reconnect
        attempt.
        """
        self._check_receiver()
        deadline = _deadline(timeout)
        stream = self._conn.stream
        while True:
            message = stream.take_message()
            if message is not None:
                return message
            if not self._pull(deadline):
                raise TimeoutError(f"no message within {timeout} s")

    def recv_batch(self, max_messages: int = 1000, timeout: float | None = None) -> list[Message]:
        """Return up to ``max_messages`` messages, waiting up to ``timeout``
        seconds for the first; [] if none came. Raises like recv() once the
        connection has ended and nothing is left."""
        check_count("max_messages", max_messages)
        self._check_receiver()
        deadline = _deadline(timeout)
        stream = self._conn.stream
        while True:
            messages = stream.take_messages(max_messages)
            if messages or not self._pull(deadline):
                return messages

    def recv_events(self, max_events: int = 1000, timeout: float | None = None) -> list[Event]:
        """Return up to ``max_events`` items of the event stream -- messages
        and the lifecycle events Opened, Disconnected, Reconnecting,
        QueueWarning and Closed, in order -- waiting up to ``timeout`` seconds
        for the first; [] if none came. Once Closed was returned, raises
        like recv()."""
        check_count("max_events", max_events)
        self._check_receiver()
        deadline = _deadline(timeout)
        stream = self._conn.stream
        while True:
            events = stream.take_events(max_events)
            if events or not self._pull(deadline):
                return events

    def __iter__(self) -> Iterator[Message]:
        """Yield messages until the connection ends for good; a normal close
        ends the loop quietly, anything else raises."""
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    def _check_receiver(self) -> None:
        _lib.check_fork()
        if self._dispatched:
            raise RuntimeError("this connection delivers its messages to on_message; recv() is not available")

    def _pull(self, deadline: float | None) -> bool:
        """Poll the engine once into the stream, waiting up to the deadline
        (one thread polls, the others wait for it); False once the deadline
        passed with nothing."""
        wait = SLICE if deadline is None else min(SLICE, deadline - time.monotonic())
        stream = self._conn.stream
        if self._poll_lock.acquire(timeout=max(wait, 0.001)):
            try:
                if stream.empty() and not stream.ended():
                    self._poll(max(wait, 0.0))
            finally:
                self._poll_lock.release()
        return deadline is None or time.monotonic() < deadline or not stream.empty()

    def _poll(self, wait: float) -> None:
        """One batch, waiting up to ``wait`` seconds. An empty queue is
        waited on in the kernel, on the engine's eventfd with the GIL
        released: the engine's reader wakes this thread directly."""
        conn = self._conn
        try:
            h = conn.acquire()
        except ConnectionClosed:
            conn.gone()
            return
        try:
            b = thread_buffers()
            if conn.poll(h, b) or wait <= 0:
                return
            spin_until = time.perf_counter() + min(_SPIN, wait)
            while time.perf_counter() < spin_until:  # a reply that close is cheaper to catch than to wake for
                if conn.poll(h, b):
                    return
            self._wakeup(conn.wakeup_fd(h)).poll(int(wait * 1000))
            conn.poll(h, b)
        finally:
            conn.release()

    def _wakeup(self, fd: int) -> select.poll:
        """A poll object on the engine's wakeup eventfd, made on first use
        (so connections nobody waits on cost no fd)."""
        if self._waker is None:
            self._waker = select.poll()
            self._waker.register(fd, select.POLLIN)
        return self._waker

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the connection has ended for good and its on_close (if
        any) has run; False after ``timeout`` seconds (0: only check)."""
        _lib.check_fork()
        deadline = _deadline(timeout)
        conn = self._conn
        if DISPATCHER.on_thread():  # from a callback: this connection's callbacks wait for it
            while not conn.wait(int(_slice(deadline) * 1000)):
                if deadline is not None and time.monotonic() >= deadline:
                    return False
            return True
        while not conn.closed():
            step = time.monotonic() + SLICE if deadline is None else min(deadline, time.monotonic() + SLICE)
            if not DISPATCHER.wait(conn.finished, step) and deadline is not None and time.monotonic() >= deadline:
                return conn.closed()
        return True

    # Closing.

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection: send a close frame with ``code`` and
        ``reason``, wait up to close_timeout for the server's, close TCP.
        During a reconnect wait, end it at once. Returns once the connection
        has ended and on_close has run -- unless called from a callback,
        where it only starts the close.

        Idempotent and safe from any thread; a recv() blocked in another
        thread raises ConnectionClosedOK. Interrupted (Ctrl-C), a later
        close() finishes the job; on_close runs exactly once.
        """
        _lib.check_fork()
        check_close(code, reason)
        conn = self._conn
        conn.begin_close(code, reason)
        if DISPATCHER.on_thread():
            return
        ended_at: float | None = None
        while not DISPATCHER.wait(conn.finished, time.monotonic() + SLICE):
            if ended_at is None and conn.wait(0):
                if not conn.has_on_close:
                    return
                ended_at = time.monotonic()
            if ended_at is not None and time.monotonic() - ended_at > _CLOSE_GRACE:
                return  # the callback thread is busy; on_close runs when it gets there

    def __enter__(self) -> WebSocket:
        _lib.check_fork()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(1011 if exc_type is not None and not issubclass(exc_type, ConnectionClosed) else 1000)


def _slice(deadline: float | None) -> float:
    """The next wait: a slice, or less if the deadline comes sooner."""
    return SLICE if deadline is None else max(0.0, min(SLICE, deadline - time.monotonic()))


def _deadline(timeout: object) -> float | None:
    t = check_timeout("timeout", timeout)
    return None if t is None else time.monotonic() + t
