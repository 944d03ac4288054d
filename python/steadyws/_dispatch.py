"""The callback thread of the threaded client: one for the whole process.

Every threaded connection is a member of one hub, polled by one daemon
thread, "steadyws-callbacks": it runs each connection's callbacks in event
order, when the events happen -- not only while someone is inside recv --
and never one thread per connection, however many there are. A callback
that blocks holds up the others: keep them short, or hand work to a thread
of your own.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from . import _lib
from ._callbacks import Lifecycle
from ._conn import Connection
from ._events import HubEvent
from ._hub import Hub

logger = logging.getLogger("steadyws")

THREAD_NAME = "steadyws-callbacks"
_IDLE_POLL_MS = 1000  # the thread's longest wait in one call
_SLICE = 0.1  # longest wait of a caller between checks for Ctrl-C


class Dispatcher:
    """The process's callback thread and its hub."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hub: Hub | None = None
        self._thread: threading.Thread | None = None
        self._members: dict[int, Lifecycle] = {}

    def open(
        self,
        url: str,
        config: dict[str, Any],
        mode: int,
        lifecycle: Callable[[Connection], Lifecycle],
        has_on_close: bool,
    ) -> Connection:
        """Start a connection in the hub, its callbacks run by ``lifecycle``."""
        with self._lock:
            hub = self._start()
            conn = Connection.open(url, config, hub.value, mode, has_on_close)
            self._members[conn.member] = lifecycle(conn)
        member = conn.member

        def forget(_: int) -> None:
            self._forget(member)

        conn.handle.before_free(forget)
        return conn

    def _start(self) -> Hub:
        if self._hub is None:
            self._hub = Hub()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()
        return self._hub

    def on_thread(self) -> bool:
        """Whether the caller is the callback thread."""
        return threading.current_thread() is self._thread

    def _forget(self, member: int) -> None:
        with self._lock:
            self._members.pop(member, None)

    def _run(self) -> None:
        while True:
            try:
                self.pump(_IDLE_POLL_MS)
            except BaseException:  # noqa: BLE001 - the thread must outlive anything
                if _lib.forked():
                    return
                logger.exception("steadyws: the callback thread failed; it goes on")
                time.sleep(0.01)

    def pump(self, timeout_ms: int) -> None:
        """Run the callbacks of the next events, waiting up to ``timeout_ms``."""
        hub = self._hub
        assert hub is not None
        for member, events in hub.poll(timeout_ms):
            with self._lock:
                lifecycle = self._members.get(member)
            if lifecycle is not None:
                for event in events:
                    run(lifecycle, event)
            hub.ack(member)
            if lifecycle is not None and lifecycle.conn.finished.is_set():
                self._forget(member)

    def wait(self, event: threading.Event, deadline: float | None) -> bool:
        """Wait until ``event`` is set or ``deadline`` (monotonic) passes, in
        slices so that Ctrl-C is seen; on the callback thread itself, run
        callbacks meanwhile, since it cannot wait for itself."""
        while not event.is_set():
            left = _SLICE if deadline is None else min(deadline - time.monotonic(), _SLICE)
            if left <= 0:
                return False
            if self.on_thread():
                self.pump(int(left * 1000))
            else:
                event.wait(left)
        return True


def run(lifecycle: Lifecycle, event: HubEvent) -> None:
    """Run one event's callback, synchronously, and the bookkeeping after it."""
    call = lifecycle.begin(event)
    result: Any = None
    failed = False
    if call is not None:
        fn, args = call
        with lifecycle.context(event):
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    _discard(result)
                    raise TypeError(f"{getattr(fn, '__name__', fn)} is async: async callbacks need steadyws.aio")
            except Exception as exc:  # noqa: BLE001 - reported to the user, never fatal
                failed = True
                handler = lifecycle.failed(fn, exc)
                if handler is not None:
                    try:
                        handler[0](*handler[1])
                    except Exception:  # noqa: BLE001
                        logger.exception("%s: on_callback_error raised", lifecycle.conn.url)
    lifecycle.done(event, result, failed)


def _discard(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()  # no "never awaited" warning: the error says what happened


DISPATCHER = Dispatcher()
