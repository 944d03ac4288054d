"""steadyws for asyncio: the same engine, waited on without threads.

    async with steadyws.aio.connect(url) as ws:
        await ws.send(SUBSCRIBE)
        async for message in ws:
            handle(message)

Each connection's engine keeps an eventfd readable exactly while events are
queued; the event loop watches it with ``loop.add_reader`` (epoll), so there
is no thread per connection and no busy polling, on the default loop and on
uvloop alike. Events are polled in batches, without blocking, only when the
fd is readable; while the consumer is behind, the fd is not watched, and the
engine's bounded queue applies its overflow policy.
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
from collections.abc import AsyncIterator, Awaitable, Generator, Iterable
from types import TracebackType
from typing import Any

from . import _ffi
from ._batch import Event, Message
from ._connection import WebSocket as SyncWebSocket
from ._connection import _is_message
from ._connection import connect as sync_connect
from ._errors import ConnectionClosed, ConnectionClosedOK, ErrorCode
from ._handle import open_handle
from ._options import Backoff, build_config, check_close, check_positive_int

__all__ = ["WebSocket", "connect"]

_HIGH_WATER = 4096  # items buffered in Python before the fd stops being watched


class _Connect:
    """The awaitable (and async context manager) connect() returns."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self._url, self._options = url, options
        self._ws: WebSocket | None = None

    def __await__(self) -> Generator[Any, None, WebSocket]:
        return self._open().__await__()

    async def _open(self) -> WebSocket:
        config, header_fn, callbacks = build_config(self._url, **self._options)
        _ffi.check_fork()
        sync = SyncWebSocket(open_handle(config), self._url, callbacks)
        if header_fn is not None:
            sync._provide_headers(header_fn)
        ws = WebSocket(sync, asyncio.get_running_loop())
        await ws._wait_open()
        return ws

    async def __aenter__(self) -> WebSocket:
        self._ws = await self._open()
        return self._ws

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._ws is not None
        await self._ws.__aexit__(exc_type, exc, tb)


def connect(url: str, **options: Any) -> _Connect:
    """Open a connection; ``await`` it or use it with ``async with``.

    Takes exactly the options of :func:`steadyws.connect`, with the same
    defaults; callbacks run on the event loop's thread, in order with the
    messages. ``on_message`` is not available: iterate instead.
    """
    if options.get("on_message") is not None:
        raise TypeError("on_message is for the threaded client; use `async for message in ws`")
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"connect() got unexpected options: {', '.join(sorted(unknown))}")
    return _Connect(url, {**_DEFAULTS, **options})


# The options and defaults of the threaded connect(), so both stay one list.
_DEFAULTS: dict[str, Any] = {
    name: p.default for name, p in inspect.signature(sync_connect).parameters.items() if p.kind is p.KEYWORD_ONLY
}


class WebSocket:
    """An asyncio client connection. Create it with :func:`connect`."""

    def __init__(self, sync: SyncWebSocket, loop: asyncio.AbstractEventLoop) -> None:
        self._ws = sync
        self._loop = loop
        self._ready = asyncio.Event()
        self._watching = False
        fd = ctypes.c_int32()
        if _ffi.lib.sws_wakeup_fd(sync._h.value, ctypes.byref(fd)) != ErrorCode.OK:
            raise RuntimeError("steadyws: no wakeup fd for this connection")
        self._fd = fd.value
        sync._before_free = self._unwatch  # the engine closes the fd when the handle is freed
        self._watch()

    def __repr__(self) -> str:
        return f"<steadyws.aio.WebSocket {self._ws.url} {self.state}>"

    # Properties, shared with the threaded client.

    @property
    def url(self) -> str:
        return self._ws.url

    @property
    def state(self) -> str:
        return self._ws.state

    @property
    def subprotocol(self) -> str | None:
        return self._ws.subprotocol

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason

    def stats(self) -> dict[str, int]:
        return self._ws.stats()

    def set_reconnect(self, backoff: Backoff) -> None:
        self._ws.set_reconnect(backoff)

    # The wakeup fd.

    def _watch(self) -> None:
        if not self._watching and not self._ws._h.freed:
            self._loop.add_reader(self._fd, self._on_readable)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False

    def _on_readable(self) -> None:
        """Events are queued: take a batch without blocking."""
        ws = self._ws
        if not ws._h.freed and ws._poll_lock.acquire(blocking=False):
            try:
                ws._poll_once(0)
            finally:
                ws._poll_lock.release()
        if len(ws._pending) >= _HIGH_WATER:
            self._unwatch()  # the consumer is behind: let the engine's queue hold the rest
        self._ready.set()

    async def _wait(self) -> None:
        """Wait for the next batch (or the end)."""
        self._ready.clear()
        self._watch()
        if self._watching:
            await self._ready.wait()

    def _ended(self) -> bool:
        ws = self._ws
        return ws._closed is not None or ws._sent_close is not None

    # Opening.

    async def _wait_open(self) -> None:
        ws = self._ws
        try:
            while not ws._opened and ws._closed is None:
                await self._wait()
        except BaseException:
            self._unwatch()
            ws._h.free()
            raise
        ws._after_open()

    # Sending: the engine writes at once (it blocks only if the socket's
    # buffer is full, up to write_timeout).

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (str) or binary (bytes-like) message; see steadyws.WebSocket.send."""
        self._ws.send(message)

    async def send_batch(self, messages: Iterable[str | bytes | bytearray | memoryview]) -> None:
        """Send several messages in one call; see steadyws.WebSocket.send_batch."""
        self._ws.send_batch(messages)

    # Receiving.

    def _next_nowait(self) -> Message | None:
        """The next pending message, running lifecycle events on the way;
        None if nothing is pending; raises once the connection has ended."""
        ws = self._ws
        while ws._pending:
            item = ws._pending.popleft()
            if _is_message(item):
                return item  # type: ignore[return-value]
            ws._lifecycle -= 1
            ws._reach(item)  # type: ignore[arg-type]
        if self._ended():
            raise ws._closed_exception()
        return None

    async def recv(self, timeout: float | None = None) -> Message:
        """The next message: str for text, bytes for binary. Raises
        TimeoutError after ``timeout`` seconds, ConnectionClosed* at the end."""
        message: Message = await _with_timeout(self._recv(), timeout)
        return message

    async def _recv(self) -> Message:
        while (item := self._next_nowait()) is None:
            await self._wait()
        return item

    async def recv_batch(self, max_messages: int = 1000, timeout: float | None = None) -> list[Message]:
        """Up to ``max_messages`` messages, waiting up to ``timeout`` for the first; [] if none came."""
        check_positive_int("max_messages", max_messages, 1 << 30)
        try:
            first: Message = await _with_timeout(self._recv(), timeout)
        except TimeoutError:
            return []
        return [first, *self._ws._take(max_messages - 1)] if max_messages > 1 else [first]

    async def recv_events(self, max_events: int = 1000, timeout: float | None = None) -> list[Event]:
        """Up to ``max_events`` items of the event stream (messages and
        lifecycle events), waiting up to ``timeout`` for the first."""
        check_positive_int("max_events", max_events, 1 << 30)
        ws = self._ws

        async def first() -> None:
            while not ws._pending:
                if self._ended():
                    raise ws._closed_exception()
                await self._wait()

        try:
            await _with_timeout(first(), timeout)
        except TimeoutError:
            return []
        return ws._take_events(max_events)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        try:
            while True:
                yield await self._recv()
        except ConnectionClosedOK:
            return

    # Closing.

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection, waiting (without blocking the loop) up to
        close_timeout for the server; see steadyws.WebSocket.close."""
        raw = check_close(code, reason)
        ws = self._ws
        if not ws._begin_close(code, reason, raw):
            return
        while not ws._h.freed:
            await self._wait()
        ws._finish_close()

    async def __aenter__(self) -> WebSocket:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close(1011 if exc_type is not None and not issubclass(exc_type, ConnectionClosed) else 1000)


async def _with_timeout(aw: Awaitable[Any], timeout: float | None) -> Any:
    if timeout is None:
        return await aw
    if timeout < 0:
        raise ValueError(f"timeout must be a non-negative number, got {timeout}")
    try:
        return await asyncio.wait_for(aw, timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"no message within {timeout} s") from None
