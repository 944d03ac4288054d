"""The callback thread of the threaded client: one for the whole process.

Every threaded connection is a member of one hub, polled by one daemon
thread, "steadyws-callbacks": it runs each connection's callbacks in event
order, when the events happen -- not only while someone is inside recv --
and never one thread per connection, however many there are. A callback
that blocks holds up the others: keep them short, or hand work to a thread
of your own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from . import _lib
from ._callbacks import Lifecycle, run
from ._conn import Connection
from ._events import is_message
from ._hub import Hub

logger = logging.getLogger("steadyws")

THREAD_NAME = "steadyws-callbacks"
_IDLE_POLL_MS = 1000  # the thread's longest wait in one call
_SLICE = 0.1  # longest wait of a caller between checks for Ctrl-C


class Dispatcher:
    """The process's callback thread and its hub."""

    def __init__(self) -> None:
        # Reentrant: a garbage collection inside open() may run the finalizer
        # of a dropped connection, which forgets it, on this very thread.
        self._lock = threading.RLock()
        self._hub: Hub | None = None
        self._thread: threading.Thread | None = None
        self._members: dict[int, Lifecycle] = {}

    def open(
        self,
        url: str,
        config: dict[str, Any],
        lifecycle: Callable[[Connection], Lifecycle],
        has_on_close: bool,
        *,
        messages: bool = False,
        consumer: int = 0,
    ) -> Connection:
        """Start a connection observed by the hub, its callbacks run by
        ``lifecycle``; with ``messages``, its messages go to on_message here
        too, else to hub ``consumer`` (0: its own receive calls)."""
        with self._lock:
            hub = self._start().value
            conn = Connection.open(url, config, hub, hub if messages else consumer, has_on_close)
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
        self._members.pop(member, None)  # atomic; it may run in a finalizer

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
        for member, events, times in hub.poll(timeout_ms):
            with self._lock:
                lifecycle = self._members.get(member)
            try:
                if lifecycle is not None:
                    for event, at in zip(events, times, strict=True):
                        if is_message(event):
                            lifecycle.conn.stream.delivered(at)
                        run(lifecycle, event)
            except BaseException:  # noqa: BLE001 - a bug here must not wedge the other connections
                logger.exception("steadyws: the events of a connection failed")
            finally:
                hub.ack((member,))
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


DISPATCHER = Dispatcher()
