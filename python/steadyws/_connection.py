"""The threaded client: connect() and WebSocket.

A thin driver over a :class:`~steadyws._conn.Connection`: the engine's Go
threads do all network I/O; a receive polls a batch into the connection's
event stream and takes from it, waiting on the engine's eventfd in the
kernel with the GIL released, in slices of at most SLICE seconds so that
Ctrl-C is seen. Callbacks run on the process's callback thread
(:mod:`steadyws._dispatch`), when the events happen.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from . import _lib
from ._callbacks import Lifecycle, opening_number
from ._conn import Connection, ConnectionInfo
from ._dispatch import DISPATCHER
from ._errors import ConnectionClosed, ConnectionClosedOK
from ._events import Event, Message, thread_buffers
from ._group import GroupStream
from ._hub import Hub
from ._options import (
    Options,
    build,
    check_close,
    check_count,
    check_flag,
    check_timeout,
    encode_batch,
    encode_message,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

SLICE = 0.1  # longest wait inside one call, in seconds
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
    ws, conn = _open(url, options, 0)
    _wait_ready(conn)
    return ws


def _open(url: str, options: Mapping[str, Any], group: int) -> tuple[WebSocket, Connection]:
    """Start a connection whose messages go to its receive calls, to
    on_message, or to the group with hub ``group``; it is ready once
    _wait_ready returned."""
    config, callbacks, header_fn = build(url, options)
    receiver = callbacks.receiver(grouped=bool(group))
    made: list[WebSocket] = []

    def lifecycle(conn: Connection) -> Lifecycle:
        made.append(WebSocket(_token, conn, receiver))
        return Lifecycle(made[0], conn, callbacks, header_fn)

    conn = DISPATCHER.open(
        url, config, lifecycle, callbacks.on_close is not None, messages=receiver == "on_message", consumer=group
    )
    return made[0], conn


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

    def __init__(self, token: object, conn: Connection, receiver: str | None) -> None:
        if token is not _token:
            raise TypeError("use steadyws.connect() to make a WebSocket")
        self._conn = conn
        self._receiver = receiver  # where the messages go if not to recv: on_message, or a Group
        self._poll_lock = threading.Lock()
        self.url = conn.url
        weakref.finalize(self, conn.abandon).atexit = False  # see Handle
        if receiver == "on_message":
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
        stream = self._conn.stream
        message = stream.take_message()
        if message is not None:
            return message
        deadline = _deadline(timeout)
        while True:
            if not self._pull(deadline):
                raise TimeoutError(f"no message within {timeout} s")
            message = stream.take_message()
            if message is not None:
                return message

    @overload
    def recv_batch(
        self, max_messages: int = ..., timeout: float | None = ..., *, timestamps: Literal[False] = ...
    ) -> list[Message]: ...

    @overload
    def recv_batch(
        self, max_messages: int = ..., timeout: float | None = ..., *, timestamps: Literal[True]
    ) -> tuple[list[Message], list[int]]: ...

    def recv_batch(
        self, max_messages: int = 1000, timeout: float | None = None, *, timestamps: bool = False
    ) -> list[Message] | tuple[list[Message], list[int]]:
        """Return up to ``max_messages`` messages, waiting up to ``timeout``
        seconds for the first; [] if none came. Raises like recv() once the
        connection has ended and nothing is left. With ``timestamps=True``:
        the messages and, for each, when its last frame was read from the
        socket (time.time_ns()'s clock)."""
        check_count("max_messages", max_messages)
        check_flag("timestamps", timestamps)
        self._check_receiver()
        deadline = _deadline(timeout)
        stream = self._conn.stream
        while True:
            messages, stamps = stream.take_messages(max_messages)
            if messages or not self._pull(deadline):
                return (messages, stamps) if timestamps else messages

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
        if self._receiver is not None:
            raise RuntimeError(f"this connection delivers its messages to {self._receiver}; recv() is not available")

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
        """One batch, waiting up to ``wait`` seconds, in one call: the
        engine waits on this thread (the GIL released) on its eventfd and,
        while this consumer holds the socket, on the socket itself; when the
        socket wakes it, the same call reads the frames here, with no hop
        through the engine's reader (the fast path: core/turn.go)."""
        conn = self._conn
        try:
            h = conn.acquire()
        except ConnectionClosed:
            conn.gone()
            return
        try:
            conn.poll(h, thread_buffers(), math.ceil(wait * 1000), fast=True)
        finally:
            conn.release()

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


class Group:
    """Many connections, one event stream: every member's messages in arrival
    order, through one wakeup and one poll.

    ::

        with steadyws.Group() as feeds:
            btc = feeds.connect(url_btc, on_open=subscribe_btc)
            for ws, message in feeds:
                ...

    ``connect`` takes the options of :func:`steadyws.connect` (not
    ``on_message``); each member keeps its own bounds, overflow policy,
    heartbeat, reconnect and callbacks (on the callback thread, as ever), and
    its ``send`` and ``close``, but its messages come from the group. A member
    that floods holds up another's messages by one batch at most. Leaving the
    ``with`` block closes every member.
    """

    def __init__(self) -> None:
        _lib.check_fork()
        self._hub = Hub()
        self._stream: GroupStream[WebSocket] = GroupStream()
        self._poll_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<steadyws.Group of {len(self._stream.members())}>"

    def connect(self, url: str, **options: Unpack[ConnectOptions]) -> WebSocket:
        """Open a member (see steadyws.connect) once its on_open returned."""
        _lib.check_fork()
        ws, conn = _open(url, options, self._group_hub())
        self._stream.add(conn.consumer, ws, conn)  # the group keeps what it polled of it meanwhile
        try:
            _wait_ready(conn)
        except BaseException:
            self._stream.discard(conn.consumer, ws)
            raise
        return ws

    def _group_hub(self) -> int:
        if self._hub.handle.freed:
            raise RuntimeError("the group is closed")
        return self._hub.value

    @property
    def members(self) -> list[WebSocket]:
        """The members that have not ended; ``member.close()`` ends one."""
        _lib.check_fork()
        return self._stream.members()

    def recv(self, timeout: float | None = None) -> tuple[WebSocket, Message]:
        """The next message of any member, and the member: ``(ws, message)``.
        TimeoutError after ``timeout`` seconds; ConnectionClosedOK once no
        member is left."""
        _lib.check_fork()
        deadline = _deadline(timeout)
        while True:
            item = self._stream.take_message()
            if item is not None:
                return item
            if not self._pull(deadline):
                raise TimeoutError(f"no message within {timeout} s")

    @overload
    def recv_batch(
        self, max_messages: int = ..., timeout: float | None = ..., *, timestamps: Literal[False] = ...
    ) -> list[tuple[WebSocket, Message]]: ...

    @overload
    def recv_batch(
        self, max_messages: int = ..., timeout: float | None = ..., *, timestamps: Literal[True]
    ) -> tuple[list[tuple[WebSocket, Message]], list[int]]: ...

    def recv_batch(
        self, max_messages: int = 1000, timeout: float | None = None, *, timestamps: bool = False
    ) -> list[tuple[WebSocket, Message]] | tuple[list[tuple[WebSocket, Message]], list[int]]:
        """Up to ``max_messages`` ``(ws, message)`` pairs, waiting up to
        ``timeout`` for the first; [] if none came. With ``timestamps=True``
        also each message's receive time (see WebSocket.recv_batch)."""
        check_count("max_messages", max_messages)
        check_flag("timestamps", timestamps)
        _lib.check_fork()
        deadline = _deadline(timeout)
        while True:
            items, stamps = self._stream.take_messages(max_messages)
            if items or not self._pull(deadline):
                return (items, stamps) if timestamps else items

    def recv_events(self, max_events: int = 1000, timeout: float | None = None) -> list[tuple[WebSocket, Event]]:
        """Up to ``max_events`` ``(ws, event)`` pairs: messages and each
        member's lifecycle events, in order."""
        check_count("max_events", max_events)
        _lib.check_fork()
        deadline = _deadline(timeout)
        while True:
            items = self._stream.take_events(max_events)
            if items or not self._pull(deadline):
                return items

    def __iter__(self) -> Iterator[tuple[WebSocket, Message]]:
        """Yield ``(ws, message)`` until no member is left."""
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    def _pull(self, deadline: float | None) -> bool:
        """Poll the hub once into the stream (one thread at a time), waiting
        on its eventfd up to the deadline; False once it passed with nothing."""
        wait = _slice(deadline)
        stream = self._stream
        if self._poll_lock.acquire(timeout=max(wait, 0.001)):
            try:
                if stream.empty() and not stream.over():
                    self._poll(wait)
            finally:
                self._poll_lock.release()
        return deadline is None or time.monotonic() < deadline or not stream.empty()

    def _poll(self, wait: float) -> None:
        hub = self._hub
        hub.ack(self._stream.owed())
        hub.ack(self._stream.feed(hub.poll(math.ceil(wait * 1000))))  # runs: (member, events, times)

    def close(self) -> None:
        """Close every member (with 1000) and wait for their ends; then the
        group's hub is freed. Idempotent."""
        _lib.check_fork()
        for ws, conn in self._stream.close_all():
            ws.wait_closed()
            self._stream.finished(conn)
        self._hub.close()

    def __enter__(self) -> Group:
        _lib.check_fork()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
