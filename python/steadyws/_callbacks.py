"""User callbacks, and what each event of a connection means for them.

A :class:`Lifecycle` runs when the event happens -- on the process-wide
callback thread of the threaded client, on the event loop for asyncio --
never on an engine thread and never inside the user's recv. For each event
it logs once, at the level the event deserves, names the callback to call
(:meth:`Lifecycle.begin`), and after it returned does the bookkeeping
(:meth:`Lifecycle.done`): a new connection is ready for other senders only
once its on_open has returned, a header request is answered with the
headers callable's result, and the end is recorded after on_close.

The two drivers differ only in how they call a callback (the asyncio one
awaits what an ``async def`` callback returns).
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._events import (
    Closed,
    Disconnected,
    HeadersWanted,
    HubEvent,
    Opened,
    QueueWarning,
    Reconnecting,
    Rotated,
    is_message,
)

if TYPE_CHECKING:
    from ._conn import Connection

logger = logging.getLogger("steadyws")

Callback = Callable[..., Any]

CALLBACK_NAMES = ("on_message", "on_open", "on_disconnect", "on_reconnect_attempt", "on_close", "on_callback_error")

# The connection (and its number) whose on_open is running in this thread or
# task: its sends go out before the connection is ready for anyone else.
_opening: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("steadyws_opening", default=None)


def opening_number(conn: object) -> int:
    """The connection number to send with from here: that of the on_open of
    ``conn`` running in this context, else 0."""
    current = _opening.get()
    return current[1] if current is not None and current[0] == id(conn) else 0


@contextmanager
def opening(conn: object, number: int) -> Iterator[None]:
    """Mark the on_open of connection ``number`` of ``conn`` as running here."""
    token = _opening.set((id(conn), number))
    try:
        yield
    finally:
        _opening.reset(token)


@dataclass(frozen=True)
class Callbacks:
    """The callbacks given to connect(); each gets the connection first."""

    on_message: Callback | None = None
    on_open: Callback | None = None
    on_disconnect: Callback | None = None
    on_reconnect_attempt: Callback | None = None
    on_close: Callback | None = None
    on_callback_error: Callback | None = None

    def receiver(self, grouped: bool) -> str | None:
        """Where a connection's messages go if not to its receive calls:
        "on_message", "its Group", or None. TypeError for both at once."""
        if self.on_message is not None and grouped:
            raise TypeError("on_message is not for a Group member: its messages go to the group")
        return "on_message" if self.on_message is not None else "its Group" if grouped else None

    @classmethod
    def take(cls, options: dict[str, Any]) -> Callbacks:
        """Remove the callbacks from ``options``; TypeError for one that is
        not callable."""
        found: dict[str, Callback | None] = {}
        for name in CALLBACK_NAMES:
            fn = options.pop(name, None)
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, not {type(fn).__name__}")
            found[name] = fn
        return cls(**found)

    def any(self) -> bool:
        return any(getattr(self, name) is not None for name in CALLBACK_NAMES)


class Lifecycle:
    """What the events of one connection mean: logging, the user's
    callbacks, and the bookkeeping around them."""

    def __init__(
        self,
        owner: object,
        conn: Connection,
        callbacks: Callbacks,
        headers: Callable[[], Any] | None,
    ) -> None:
        # Without callbacks the connection is not kept alive by its events:
        # dropping the last reference to it frees it.
        self._owner: Callable[[], object | None] = (
            (lambda: owner) if callbacks.any() or headers is not None else weakref.ref(owner)
        )
        self.conn = conn
        self.callbacks = callbacks
        self.headers = headers

    def begin(self, event: HubEvent) -> tuple[Callback, tuple[Any, ...]] | None:
        """Log ``event`` and name the callback to run for it, with its
        arguments (None: nothing to call)."""
        owner = self._owner()
        if owner is None:
            return None
        cb, url = self.callbacks, self.conn.url
        if is_message(event):
            return _with(cb.on_message, owner, event)
        if isinstance(event, Opened):
            self.conn.opened_with(event)
            logger.debug("%s: connection %d open (subprotocol %s)", url, event.connection, event.subprotocol)
            return _with(cb.on_open, owner)
        if isinstance(event, Disconnected):
            error = event.exception()
            if event.error == 0 and event.code in (1000, 1001, 1005):
                logger.info("%s: the server closed the connection: %s", url, error)
            else:
                logger.warning("%s: connection lost: %s", url, error)
            return _with(cb.on_disconnect, owner, error)
        if isinstance(event, Reconnecting):
            why = f" ({event.detail})" if event.detail else ""
            logger.info("%s: reconnect attempt %d in %.3f s%s", url, event.attempt, event.delay, why)
            return _with(cb.on_reconnect_attempt, owner, event.attempt, event.delay)
        if isinstance(event, QueueWarning):
            # Drops lose data; a queue above its high-water mark under the
            # block policy is backpressure doing its job.
            logger.log(logging.WARNING if event.kind == "drops" else logging.INFO, "%s: %s", url, event.message)
            return None
        if isinstance(event, HeadersWanted):
            return (self.headers, ()) if self.headers is not None else None
        if isinstance(event, Rotated):
            logger.info("%s: rotated to connection %d", url, event.connection)
            return None
        if isinstance(event, Closed):
            self.conn.record_end(event)
            # A lost connection was logged when it was lost; giving up on
            # reconnecting is news.
            level = logging.INFO if event.dialing and event.error != 0 else logging.DEBUG
            logger.log(level, "%s: closed for good: %s", url, event.exception())
            if not self.conn.was_ready:
                return None  # it never opened: connect() raises instead
            return _with(cb.on_close, owner, event.code, event.reason)
        return None

    def context(self, event: HubEvent) -> AbstractContextManager[None]:
        """The context to run ``event``'s callback in: on_open's sends go out."""
        if isinstance(event, Opened):
            return opening(self.conn, event.connection)
        return nullcontext()

    def done(self, event: HubEvent, result: Any, failed: bool) -> None:
        """After ``event``'s callback (if any) returned ``result`` or failed."""
        if isinstance(event, Opened):
            self.conn.ready(event.connection)
        elif isinstance(event, HeadersWanted):
            self._answer(event.request, result, failed)
        elif isinstance(event, Closed):
            self.conn.observed_end()

    def _answer(self, request: int, result: Any, failed: bool) -> None:
        """Answer a header request, always: an attempt must never wait for it."""
        if failed or self.headers is None:
            self.conn.provide_headers(request, None, "the headers callable raised")
            return
        try:
            self.conn.provide_headers(request, result, "")
        except Exception as exc:  # noqa: BLE001 - bad headers fail the attempt, not the runner
            logger.error("%s: the headers callable returned bad headers: %s", self.conn.url, exc)
            self.conn.provide_headers(request, None, f"the headers callable returned bad headers: {exc}")

    def failed(self, fn: Callback, exc: BaseException) -> tuple[Callback, tuple[Any, ...]] | None:
        """Log a callback's exception; name on_callback_error to call with it."""
        logger.error("%s: callback %s raised", self.conn.url, getattr(fn, "__name__", fn), exc_info=exc)
        owner = self._owner()
        if self.callbacks.on_callback_error is None or owner is None or fn is self.callbacks.on_callback_error:
            return None
        return self.callbacks.on_callback_error, (owner, exc)


def _with(fn: Callback | None, *args: Any) -> tuple[Callback, tuple[Any, ...]] | None:
    return None if fn is None else (fn, args)


def run(lifecycle: Lifecycle, event: HubEvent) -> None:
    """Run one event's callback synchronously (the threaded client's
    callback thread), and the bookkeeping after it, whatever it raises."""
    call = lifecycle.begin(event)
    result: Any = None
    failed = False
    try:
        if call is not None:
            fn, args = call
            try:
                with lifecycle.context(event):
                    result = fn(*args)
                if inspect.isawaitable(result):
                    _discard(result)
                    raise TypeError(f"{getattr(fn, '__name__', fn)} is async: async callbacks need steadyws.aio")
            except BaseException as exc:  # noqa: BLE001 - SystemExit too: the thread serves every connection
                failed = True
                handler = lifecycle.failed(fn, exc)
                if handler is not None:
                    try:
                        handler[0](*handler[1])
                    except BaseException:  # noqa: BLE001
                        logger.exception("%s: on_callback_error raised", lifecycle.conn.url)
    finally:
        lifecycle.done(event, result, failed)


async def run_async(lifecycle: Lifecycle, event: HubEvent) -> None:
    """Run one event's callback on the event loop, awaiting it if it is
    async, and the bookkeeping after it, even if the task is cancelled."""
    call = lifecycle.begin(event)
    result: Any = None
    failed = False
    try:
        if call is not None:
            fn, args = call
            try:
                with lifecycle.context(event):
                    result = fn(*args)
                    if inspect.isawaitable(result):
                        result = await result
            except Exception as exc:  # noqa: BLE001 - reported to the user, never fatal
                failed = True
                handler = lifecycle.failed(fn, exc)
                if handler is not None:
                    try:
                        outcome = handler[0](*handler[1])
                        if inspect.isawaitable(outcome):
                            await outcome
                    except Exception:  # noqa: BLE001
                        logger.exception("%s: on_callback_error raised", lifecycle.conn.url)
    finally:
        lifecycle.done(event, result, failed)


def _discard(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()  # no "never awaited" warning: the error says what happened
