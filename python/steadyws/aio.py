"""steadyws for asyncio: the same engine, waited on without threads.

    async with steadyws.aio.connect(url) as ws:
        await ws.send(SUBSCRIBE)
        async for message in ws:
            handle(message)

A thin driver over the same :class:`~steadyws._conn.Connection` as the
threaded client. A receive waits on the connection's eventfd with
``loop.add_reader`` (epoll) only while it waits, and polls the engine only
then, so the engine's bounded queue is the one bound -- no thread per
connection, no busy polling, on the default loop and on uvloop alike.

Callbacks run on the loop, when the events happen: each loop has one hub
(one eventfd, one add_reader) for all its connections. ``async def``
callbacks are awaited, in order: a connection's next event waits for the
previous callback. Every callback gets the ``steadyws.aio.WebSocket``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from . import _lib
from ._callbacks import Callbacks, Lifecycle, opening_number, run_async
from ._conn import Connection, ConnectionInfo
from ._errors import ConnectionClosed, ConnectionClosedOK, RateLimited
from ._events import Ended, Event, HubEvent, Message, is_message, thread_buffers
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
    send_pacing,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ConnectOptions", "Group", "WebSocket", "connect"]

logger = logging.getLogger("steadyws")

_SEND_RETRY = (0.001, 0.05)  # first and longest wait for a socket that takes no more data
_AFTER_END = 1.0  # how long a closing group waits for the loop's hub to run a member's end
T = TypeVar("T")


class ConnectOptions(Options, total=False):
    """steadyws.aio.connect()'s options: the engine's, and the callbacks,
    which get the aio.WebSocket first and may be ``async def``."""

    on_message: Callable[[WebSocket, Message], object] | None
    on_open: Callable[[WebSocket], object] | None
    on_disconnect: Callable[[WebSocket, Exception], object] | None
    on_reconnect_attempt: Callable[[WebSocket, int, float], object] | None
    on_close: Callable[[WebSocket, int, str], object] | None
    on_callback_error: Callable[[WebSocket, Exception], object] | None


def connect(url: str, **options: Unpack[ConnectOptions]) -> _Connect:
    """Open a connection; ``await`` it or use it with ``async with``.

    Takes the options of :func:`steadyws.connect`, with the same defaults
    and exceptions; callbacks run on the event loop, in order with the
    messages, and ``async def`` ones are awaited.
    """
    _lib.check_fork()
    built = build(url, options)
    _lib.validate(built[0])  # bad options raise here, not when awaited
    return _Connect(url, built, send_pacing(options))


class _Connect:
    """The awaitable (and async context manager) connect() returns."""

    def __init__(self, url: str, built: Built, send_wait: float) -> None:
        self._url, self._built, self._send_wait = url, built, send_wait
        self._ws: WebSocket | None = None

    def __await__(self) -> Generator[Any, None, WebSocket]:
        return self._open().__await__()

    async def _open(self) -> WebSocket:
        _lib.check_fork()
        ws, member = _open(self._url, self._built, 0, self._send_wait)
        await _wait_ready(member)
        return ws

    async def __aenter__(self) -> WebSocket:
        self._ws = await self._open()
        return self._ws

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._ws is not None
        await self._ws.__aexit__(exc_type, exc, tb)


_token = object()

Built = tuple[dict[str, Any], Callbacks, Callable[[], Any] | None]


def _open(url: str, built: Built, group: int, send_wait: float) -> tuple[WebSocket, Member]:
    """Start a connection on the running loop whose messages go to its
    receive calls, to on_message, or to the group with hub ``group``; it is
    ready once its member's ``opened`` is set. ``send_wait``: see
    send_pacing."""
    config, callbacks, header_fn = built
    receiver = callbacks.receiver(grouped=bool(group))
    made: list[WebSocket] = []

    def lifecycle(conn: Connection) -> Lifecycle:
        return Lifecycle(made[0], conn, callbacks, header_fn)

    def owner(member: Member) -> None:
        made.append(WebSocket(_token, member, receiver, send_wait))

    runner = LoopHub.of(asyncio.get_running_loop())
    member = runner.open(
        url, config, owner, lifecycle, callbacks.on_close is not None, messages=receiver == "on_message", consumer=group
    )
    return made[0], member


class Member:
    """A connection's place in its loop's hub: its callbacks run in order on
    one task at a time, and the asyncio side of its state."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lifecycle: Lifecycle
        self.pending: deque[tuple[HubEvent, int]] = deque()  # events and their times
        self.task: asyncio.Task[None] | None = None
        self.opened = asyncio.Event()  # first connection ready, or ended before
        self.finished = asyncio.Event()  # the end was seen and on_close returned
        self.ended: Callable[[], None] = lambda: None  # a socket is over (Disconnected, Closed)


class LoopHub:
    """One event loop's hub: every connection of the loop, one add_reader."""

    _loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopHub] = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> LoopHub:
        hub = cls._loops.get(loop)
        if hub is None or hub.closed:
            hub = cls._loops[loop] = cls(loop)
        return hub

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # _loops holds this hub: a strong reference would keep the loop forever
        self._hub = Hub()
        self._lock = threading.RLock()  # a finalizer may forget a member, on any thread
        self._members: dict[int, Member] = {}
        self.closed = False
        loop.add_reader(self._hub.wakeup_fd(), self._readable)

    def open(
        self,
        url: str,
        config: dict[str, Any],
        owner: Callable[[Member], None],
        lifecycle: Callable[[Connection], Lifecycle],
        has_on_close: bool,
        *,
        messages: bool = False,
        consumer: int = 0,
    ) -> Member:
        """Start a connection in the loop's hub: ``owner`` makes the object
        the user holds, ``lifecycle`` the runner of its events. Its events
        wait for the next loop iteration, so both exist by then."""
        hub = self._hub.value
        conn = Connection.open(url, config, hub, hub if messages else consumer, has_on_close)
        member = Member(conn)
        owner(member)
        member.lifecycle = lifecycle(conn)
        with self._lock:
            self._members[conn.member] = member
        member_id = conn.member

        def forget(_: int) -> None:
            self._forget(member_id)

        conn.handle.before_free(forget)
        return member

    def _forget(self, member: int) -> None:
        self._members.pop(member, None)  # atomic; it may run in a finalizer

    def _readable(self) -> None:
        """Members have events: queue each run on its member's task."""
        for member_id, events, times in self._hub.poll(0):
            with self._lock:
                member = self._members.get(member_id)
            if member is None:
                self._hub.ack((member_id,))
                continue
            member.pending.extend(zip(events, times, strict=True))
            if member.task is None:
                member.task = asyncio.get_running_loop().create_task(self._run(member_id, member))

    async def _run(self, member_id: int, member: Member) -> None:
        """Run a member's events in order, awaiting async callbacks; then
        let the hub hand out its next run."""
        try:
            while member.pending:
                ev, at = member.pending.popleft()
                if is_message(ev):
                    member.conn.stream.delivered(at)
                await run_async(member.lifecycle, ev)
                if isinstance(ev, Ended):
                    member.ended()
                if member.conn.opened.is_set():
                    member.opened.set()
        except Exception:  # noqa: BLE001 - a bug here must not wedge the connection
            logger.exception("%s: the events of the connection failed", member.conn.url)
        finally:
            member.task = None
            self._hub.ack((member_id,))
            if member.conn.finished.is_set():
                member.finished.set()
                self._forget(member_id)
                self._close_if_idle()

    def _close_if_idle(self) -> None:
        with self._lock:
            idle = not self._members
        if idle and not self.closed:
            self.closed = True
            loop = self._loop()
            if loop is not None and not loop.is_closed():
                loop.remove_reader(self._hub.wakeup_fd())
            self._hub.close()


async def _wait_ready(member: Member) -> None:
    """Wait until the first connection is open and its on_open returned;
    raise how the client ended if it never opened."""
    try:
        await member.opened.wait()
    except BaseException:
        member.conn.abandon()
        raise
    member.conn.check_opened()


class WebSocket(ConnectionInfo):
    """An asyncio client connection. Create it with :func:`connect`."""

    def __init__(self, token: object, member: Member, receiver: str | None, send_wait: float = 0.0) -> None:
        if token is not _token:
            raise TypeError("use steadyws.aio.connect() to make a WebSocket")
        self._member = member
        self._conn = member.conn
        self._receiver = receiver  # where the messages go if not to recv: on_message, or a Group
        self._send_wait = send_wait  # seconds a send waits for its send_rate (see send_pacing)
        self._turns = turns = _Turns()
        self._lease = 0  # the connection whose socket this consumer holds (the last fast poll's gen)
        conn = member.conn

        def ended() -> None:  # no descriptor outlives its socket, also while nobody receives
            if not turns.busy:  # else the polling task sees the end itself, and drops it then
                conn.drop_socket()

        member.ended = ended
        self.url = member.conn.url
        weakref.finalize(self, member.conn.abandon).atexit = False  # see Handle
        if receiver == "on_message":
            member.conn.consumer_done()  # the loop's hub is its consumer

    def __repr__(self) -> str:
        return f"<steadyws.aio.WebSocket {self.url}>"

    # Sending: never blocks the loop. A socket that takes no more data makes
    # the coroutine wait (others run); write_timeout still ends a connection
    # whose server stopped reading.

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (str) or binary (bytes-like) message; see steadyws.WebSocket.send."""
        _lib.check_fork()
        data, text = encode_message(message)
        opening = opening_number(self._conn)
        await self._retry(lambda: self._conn.send(data, text, opening, nowait=True))

    async def send_batch(self, messages: Iterable[str | bytes | bytearray | memoryview]) -> None:
        """Send several messages in one call; see steadyws.WebSocket.send_batch."""
        _lib.check_fork()
        blob, words = encode_batch(messages)
        if words:
            opening = opening_number(self._conn)
            await self._retry(lambda: self._conn.send_batch(blob, words, opening, nowait=True))

    async def _retry(self, attempt: Callable[[], bool]) -> None:
        """Try a non-blocking send until it goes out: a socket that takes no
        more data is waited for with growing sleeps, a send_rate with no
        room for its retry_after (up to write_timeout, with wait=True)."""
        delay, longest = _SEND_RETRY
        deadline = time.monotonic() + self._send_wait
        while True:
            try:
                if attempt():
                    return
            except RateLimited as exc:
                if time.monotonic() + exc.retry_after > deadline:
                    raise
                await asyncio.sleep(exc.retry_after)
                continue
            await asyncio.sleep(delay)
            delay = min(2 * delay, longest)

    # Receiving.

    def _check_receiver(self) -> None:
        _lib.check_fork()
        if self._receiver is not None:
            raise RuntimeError(f"this connection delivers its messages to {self._receiver}; recv() is not available")

    async def _pull(self) -> None:
        """Poll one batch into the stream, waiting for the eventfd if the
        engine has nothing (one task at a time: see _Turns)."""
        stream = self._conn.stream
        if stream.empty() and not stream.ended():
            await self._turns.take(self._poll)

    async def _poll(self) -> None:
        conn = self._conn
        try:
            h = conn.acquire()
        except ConnectionClosed:
            conn.gone()
            return
        try:
            # Wait on the eventfd and, while this consumer holds the socket,
            # on the socket: when the socket wakes the loop, the fast poll
            # reads the frames right here (see the threaded driver's _poll).
            if self._lease or not self._fast_poll(h):
                await self._turns.readable(conn.wakeup_fd(h), conn.socket_fd(h, self._lease) if self._lease else None)
                self._fast_poll(h)
        finally:
            conn.release()

    def _fast_poll(self, h: int) -> bool:
        b = thread_buffers()
        got = self._conn.poll(h, b, fast=True)
        self._lease = b.gen.value
        return bool(got)

    def _poll_now(self) -> None:
        """Take what the engine has, without waiting (timeout 0)."""
        conn = self._conn
        if conn.stream.empty() and not conn.stream.ended() and not self._turns.busy:
            try:
                h = conn.acquire()
            except ConnectionClosed:
                conn.gone()
                return
            try:
                conn.poll(h, thread_buffers())
            finally:
                conn.release()

    def _wake(self) -> None:
        """Wake the task waiting on the eventfd (close() was called)."""
        self._turns.wake()

    async def recv(self, timeout: float | None = None) -> Message:
        """The next message: str for text, bytes for binary. Raises
        TimeoutError after ``timeout`` seconds (0: only what has arrived),
        the end once it was reached."""
        self._check_receiver()
        if check_timeout("timeout", timeout) == 0:
            waiting = self._now(lambda: [m] if (m := self._conn.stream.take_message()) is not None else [])
            if not waiting:
                raise TimeoutError("no message waiting")
            return waiting[0]
        message: Message = await _with_timeout(self._recv(), timeout)
        return message

    def _now(self, take: Callable[[], T], empty: Callable[[T], bool] = operator.not_) -> T:
        """``take()`` what has arrived, polling the engine once if nothing has."""
        got = take()
        if empty(got):
            self._poll_now()
            got = take()
        return got

    async def _recv(self) -> Message:
        stream = self._conn.stream
        while (message := stream.take_message()) is None:
            await self._pull()
        return message

    @overload
    async def recv_batch(
        self, max_messages: int = ..., timeout: float | None = ..., *, timestamps: Literal[False] = ...
    ) -> list[Message]: ...

    @overload
    async def recv_batch(
        self, max_messages: int = ..., timeout: float | None = ..., *, timestamps: Literal[True]
    ) -> tuple[list[Message], list[int]]: ...

    async def recv_batch(
        self, max_messages: int = 1000, timeout: float | None = None, *, timestamps: bool = False
    ) -> list[Message] | tuple[list[Message], list[int]]:
        """Up to ``max_messages`` messages, waiting up to ``timeout`` for the
        first; [] if none came; with ``timestamps=True`` also their receive
        times (see steadyws.WebSocket.recv_batch)."""
        check_count("max_messages", max_messages)
        check_flag("timestamps", timestamps)
        self._check_receiver()
        stream = self._conn.stream
        taken: tuple[list[Message], list[int]]
        if check_timeout("timeout", timeout) == 0:
            taken = self._now(lambda: stream.take_messages(max_messages), lambda got: not got[0])
            return taken if timestamps else taken[0]

        async def batch() -> tuple[list[Message], list[int]]:
            while not (got := stream.take_messages(max_messages))[0]:
                await self._pull()
            return got

        try:
            taken = await _with_timeout(batch(), timeout)
        except TimeoutError:
            taken = ([], [])
        return taken if timestamps else taken[0]

    async def recv_events(self, max_events: int = 1000, timeout: float | None = None) -> list[Event]:
        """Up to ``max_events`` items of the event stream (messages and
        lifecycle events), waiting up to ``timeout`` for the first."""
        check_count("max_events", max_events)
        self._check_receiver()
        stream = self._conn.stream
        if check_timeout("timeout", timeout) == 0:
            return self._now(lambda: stream.take_events(max_events))

        async def events() -> list[Event]:
            while not (got := stream.take_events(max_events)):
                await self._pull()
            return got

        try:
            result: list[Event] = await _with_timeout(events(), timeout)
        except TimeoutError:
            return []
        return result

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        try:
            while True:
                yield await self.recv()
        except ConnectionClosedOK:
            return

    # Closing.

    async def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the connection has ended for good and its on_close (if
        any) ran; False after ``timeout`` seconds (0: only check). From the
        connection's own callback, only the engine's end is awaited: its
        on_close cannot run before the callback returns."""
        _lib.check_fork()
        if check_timeout("timeout", timeout) == 0:
            return self._done()
        try:
            await _with_timeout(self._closed(), timeout)
        except TimeoutError:
            return self._done()
        return True

    def _done(self) -> bool:
        if asyncio.current_task() is self._member.task:
            return self._conn.wait(0)
        return self._conn.closed()

    async def _closed(self) -> None:
        """Until the end was seen (and on_close ran), or the engine ended and
        there is no on_close to wait for."""
        while not self._done():
            try:
                await asyncio.wait_for(self._member.finished.wait(), 0.1)
            except asyncio.TimeoutError:
                pass

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection, waiting (without blocking the loop) up to
        close_timeout for the server; see steadyws.WebSocket.close. Called
        from this connection's own callback, it only starts the close.
        Cancelled, a later close() finishes the job; on_close runs once."""
        _lib.check_fork()
        check_close(code, reason)
        self._conn.begin_close(code, reason)
        self._wake()
        if asyncio.current_task() is self._member.task:
            return
        await self._closed()

    async def __aenter__(self) -> WebSocket:
        _lib.check_fork()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close(1011 if exc_type is not None and not issubclass(exc_type, ConnectionClosed) else 1000)


class _Turns:
    """One task at a time polls for everybody; the others wait until its
    turn has ended (a future resolved only after the turn cleared itself, so
    nobody waits on a finished turn), then look again. The polling task
    waits on an eventfd with add_reader, which wake() ends early."""

    def __init__(self) -> None:
        self._turn: asyncio.Future[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    @property
    def busy(self) -> bool:
        return self._turn is not None

    async def take(self, poll: Callable[[], Awaitable[None]]) -> None:
        if self._turn is not None:
            await asyncio.shield(self._turn)
            return
        turn = self._turn = asyncio.get_running_loop().create_future()
        try:
            await poll()
        finally:
            self._turn = None
            _resolve(turn)

    async def readable(self, fd: int, other: int | None = None) -> None:
        """Until ``fd`` or ``other`` is readable (or wake())."""
        loop = asyncio.get_running_loop()
        ready = self._ready = loop.create_future()
        fds = (fd,) if other is None else (fd, other)
        for each in fds:
            loop.add_reader(each, _resolve, ready)
        try:
            await ready
        finally:
            for each in fds:
                loop.remove_reader(each)
            self._ready = None

    def wake(self) -> None:
        if self._ready is not None:
            _resolve(self._ready)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _with_timeout(aw: Awaitable[Any], timeout: float | None) -> Any:
    t = check_timeout("timeout", timeout)
    if t is None:
        return await aw
    try:
        return await asyncio.wait_for(aw, t)
    except asyncio.TimeoutError:
        raise TimeoutError(f"no message within {timeout} s") from None


class Group:
    """Many connections, one event stream, on one event loop; see
    steadyws.Group::

        async with steadyws.aio.Group() as feeds:
            ws = await feeds.connect(url, on_open=subscribe)
            async for ws, message in feeds:
                ...

    The group's hub is waited on with one ``add_reader`` while a consumer
    waits, and polled only then.
    """

    def __init__(self) -> None:
        _lib.check_fork()
        self._hub = Hub()
        self._stream: GroupStream[WebSocket] = GroupStream()
        self._finished: dict[Connection, asyncio.Event] = {}  # each member's Member.finished
        self._turns = _Turns()

    def __repr__(self) -> str:
        return f"<steadyws.aio.Group of {len(self._stream.members())}>"

    async def connect(self, url: str, **options: Unpack[ConnectOptions]) -> WebSocket:
        """Open a member (see steadyws.aio.connect) once its on_open returned."""
        _lib.check_fork()
        built, send_wait = build(url, options), send_pacing(options)
        if self._hub.handle.freed:
            raise RuntimeError("the group is closed")
        ws, member = _open(url, built, self._hub.value, send_wait)
        self._stream.add(member.conn.consumer, ws, member.conn)  # before the group can poll
        self._finished[member.conn] = member.finished
        try:
            await _wait_ready(member)
        except BaseException:
            self._stream.discard(member.conn.consumer, ws)
            del self._finished[member.conn]
            raise
        return ws

    @property
    def members(self) -> list[WebSocket]:
        _lib.check_fork()
        return self._stream.members()

    async def recv(self, timeout: float | None = None) -> tuple[WebSocket, Message]:
        """The next ``(ws, message)`` of any member; see steadyws.Group.recv."""
        _lib.check_fork()

        async def one() -> tuple[WebSocket, Message]:
            while (item := self._stream.take_message()) is None:
                await self._pull()
            return item

        if check_timeout("timeout", timeout) == 0:
            self._poll_now()
            item = self._stream.take_message()
            if item is None:
                raise TimeoutError("no message waiting")
            return item
        result: tuple[WebSocket, Message] = await _with_timeout(one(), timeout)
        return result

    @overload
    async def recv_batch(
        self, max_messages: int = ..., timeout: float | None = ..., *, timestamps: Literal[False] = ...
    ) -> list[tuple[WebSocket, Message]]: ...

    @overload
    async def recv_batch(
        self, max_messages: int = ..., timeout: float | None = ..., *, timestamps: Literal[True]
    ) -> tuple[list[tuple[WebSocket, Message]], list[int]]: ...

    async def recv_batch(
        self, max_messages: int = 1000, timeout: float | None = None, *, timestamps: bool = False
    ) -> list[tuple[WebSocket, Message]] | tuple[list[tuple[WebSocket, Message]], list[int]]:
        """Up to ``max_messages`` ``(ws, message)`` pairs; [] if none came;
        with ``timestamps=True`` also their receive times."""
        check_count("max_messages", max_messages)
        check_flag("timestamps", timestamps)
        nothing: tuple[list[tuple[WebSocket, Message]], list[int]] = ([], [])
        items, stamps = await self._take(
            lambda: self._stream.take_messages(max_messages), timeout, lambda got: not got[0], nothing
        )
        return (items, stamps) if timestamps else items

    async def recv_events(self, max_events: int = 1000, timeout: float | None = None) -> list[tuple[WebSocket, Event]]:
        """Up to ``max_events`` ``(ws, event)`` pairs, lifecycle events too."""
        check_count("max_events", max_events)
        nothing: list[tuple[WebSocket, Event]] = []
        return await self._take(lambda: self._stream.take_events(max_events), timeout, operator.not_, nothing)

    async def _take(self, take: Callable[[], T], timeout: float | None, empty: Callable[[T], bool], nothing: T) -> T:
        _lib.check_fork()
        if check_timeout("timeout", timeout) == 0:
            self._poll_now()
            return take()

        async def some() -> T:
            while empty(got := take()):
                await self._pull()
            return got

        try:
            result: T = await _with_timeout(some(), timeout)
        except TimeoutError:
            return nothing
        return result

    def __aiter__(self) -> AsyncIterator[tuple[WebSocket, Message]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[WebSocket, Message]]:
        try:
            while True:
                yield await self.recv()
        except ConnectionClosedOK:
            return

    async def _pull(self) -> None:
        if self._stream.empty() and not self._stream.over():
            await self._turns.take(self._poll)

    def _feed(self, runs: list[tuple[int, list[HubEvent], list[int]]]) -> bool:
        self._hub.ack(self._stream.feed(runs))
        return bool(runs)

    def _poll_now(self) -> bool:
        self._hub.ack(self._stream.owed())
        return self._feed(self._hub.poll(0))

    async def _poll(self) -> None:
        if self._poll_now():
            return
        handle = self._hub.handle
        handle.acquire()  # the fd lives until release
        try:
            await self._turns.readable(self._hub.wakeup_fd())
        finally:
            handle.release()
        self._feed(self._hub.poll(0))

    async def close(self) -> None:
        """Close every member and wait for their ends; then free the group's hub."""
        _lib.check_fork()
        for ws, conn in self._stream.close_all():
            await ws.wait_closed()
            finished = self._finished.pop(conn, None)
            if finished is not None:  # the loop's hub has run its end (on_close or not)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(finished.wait(), _AFTER_END)
            self._stream.finished(conn)
        self._hub.close()

    async def __aenter__(self) -> Group:
        _lib.check_fork()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
