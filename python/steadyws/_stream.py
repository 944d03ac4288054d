"""One connection's event stream, without I/O.

An :class:`EventStream` owns what was polled from the engine and not yet
delivered, and the end once it was reached. The threaded and the asyncio
clients drive it through its methods only: they feed it the batches they
poll, and their receive calls take messages and events out. Its lock makes
every message go to exactly one consumer, however many threads take at once.

It holds at most one batch: a driver polls again only when the stream is
empty, and the engine counts the last batch against max_queue and
max_queue_bytes until then, so what Python holds and what the engine queues
stay within the user's bounds together.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from ._events import Closed, Event, HubEvent, Message, Opened, is_message


class EventStream:
    """Messages and lifecycle events in order, then the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[Event] = deque()
        self._times: deque[int] = deque()  # each item's time_ns: when it happened, or its last frame was read
        self._lifecycle = 0  # items that are not messages
        self.last_ns = 0  # the time of the message most recently taken (0: none yet)
        self._end: Callable[[], Exception] | None = None  # makes the end's exception, once reached

    def empty(self) -> bool:
        """Nothing is waiting: the driver may poll."""
        return not self._items

    def ended(self) -> bool:
        """The consumer has reached the end: every call raises it."""
        return self._end is not None

    def feed(self, events: list[HubEvent], times: list[int], messages_only: bool = False) -> bool:
        """Queue a polled batch and its times; True if it held the end (Closed)."""
        with self._lock:
            if self._end is not None:
                return False
            if messages_only:
                self._items.extend(events)  # type: ignore[arg-type]
                self._times.extend(times)
                return False
            closed = False
            for ev, at in zip(events, times, strict=True):
                if is_message(ev):
                    self._items.append(ev)  # type: ignore[arg-type]
                    self._times.append(at)
                    continue
                if isinstance(ev, Opened) and ev.connection == 1:
                    continue  # connect() waited for it
                closed = closed or isinstance(ev, Closed)
                self._items.append(ev)  # type: ignore[arg-type]
                self._times.append(at)
                self._lifecycle += 1
            return closed

    def delivered(self, at: int) -> None:
        """A message of this connection with time ``at`` was handed out by
        another way (on_message, a Group): it is the last received."""
        self.last_ns = at

    def end(self, exception: Callable[[], Exception]) -> None:
        """The connection ended without the stream reaching a Closed event
        (our own close(), or the handle is gone): drop what is left, raise
        ``exception()`` from now on."""
        with self._lock:
            if self._end is None:
                self._end = exception
            self._clear()

    def take_message(self) -> Message | None:
        """The next message, skipping lifecycle events; None if nothing is
        waiting; raises the end once reached."""
        with self._lock:
            items, times = self._items, self._times
            while items:
                item, at = items.popleft(), times.popleft()
                if is_message(item):
                    self.last_ns = at
                    return item  # type: ignore[return-value]
                self._lifecycle -= 1
                self._reach(item)
            self._raise_if_ended()
            return None

    def take_messages(self, limit: int) -> tuple[list[Message], list[int]]:
        """Up to ``limit`` messages and their times; [] if nothing is
        waiting; raises the end once reached with nothing taken."""
        with self._lock:
            items, times = self._items, self._times
            stamps: list[int]
            if self._lifecycle == 0 and len(items) <= limit:
                out: list[Message] = list(items)  # type: ignore[arg-type]
                stamps = list(times)
                items.clear()
                times.clear()
            else:
                out, stamps = [], []
                while items and len(out) < limit:
                    item = items[0]
                    if is_message(item):
                        out.append(items.popleft())  # type: ignore[arg-type]
                        stamps.append(times.popleft())
                        continue
                    if isinstance(item, Closed) and out:
                        break  # the end after what was taken
                    items.popleft()
                    times.popleft()
                    self._lifecycle -= 1
                    self._reach(item)
            if out:
                self.last_ns = stamps[-1]
            else:
                self._raise_if_ended()
            return out, stamps

    def take_events(self, limit: int) -> list[Event]:
        """Up to ``limit`` items, lifecycle events included; the Closed event
        is the last one returned, and the next call raises."""
        with self._lock:
            if not self._items:
                self._raise_if_ended()
            out: list[Event] = []
            while self._items and len(out) < limit:
                item, at = self._items.popleft(), self._times.popleft()
                out.append(item)
                if is_message(item):
                    self.last_ns = at
                else:
                    self._lifecycle -= 1
                    if isinstance(item, Closed):
                        self._end = item.exception
                        self._clear()
            return out

    def held(self) -> tuple[int, int]:
        """Messages and bytes (UTF-8 for text) held for the consumer."""
        with self._lock:
            items = list(self._items)
        count = size = 0
        for item in items:
            if isinstance(item, bytes):
                count, size = count + 1, size + len(item)
            elif isinstance(item, str):
                count, size = count + 1, size + len(item.encode("utf-8"))
        return count, size

    def _reach(self, item: Event) -> None:
        if isinstance(item, Closed):
            self._end = item.exception
            self._clear()

    def _clear(self) -> None:
        self._items.clear()
        self._times.clear()
        self._lifecycle = 0

    def _raise_if_ended(self) -> None:
        if self._end is not None:
            raise self._end()  # a new exception each time: tracebacks never pile up
