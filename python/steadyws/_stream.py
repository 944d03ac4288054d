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
from collections.abc import Callable, Iterable

from ._events import Closed, Event, HubEvent, Message, Opened, is_message


class EventStream:
    """Messages and lifecycle events in order, then the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[Event] = deque()
        self._lifecycle = 0  # items that are not messages
        self._end: Callable[[], Exception] | None = None  # makes the end's exception, once reached

    def empty(self) -> bool:
        """Nothing is waiting: the driver may poll."""
        return not self._items

    def ended(self) -> bool:
        """The consumer has reached the end: every call raises it."""
        return self._end is not None

    def feed(self, events: Iterable[HubEvent], messages_only: bool = False) -> bool:
        """Queue a polled batch; True if it held the end (Closed)."""
        with self._lock:
            if self._end is not None:
                return False
            if messages_only:
                self._items.extend(events)  # type: ignore[arg-type]
                return False
            closed = False
            for ev in events:
                if is_message(ev):
                    self._items.append(ev)  # type: ignore[arg-type]
                    continue
                if isinstance(ev, Opened) and ev.connection == 1:
                    continue  # connect() waited for it
                closed = closed or isinstance(ev, Closed)
                self._items.append(ev)  # type: ignore[arg-type]
                self._lifecycle += 1
            return closed

    def end(self, exception: Callable[[], Exception]) -> None:
        """The connection ended without the stream reaching a Closed event
        (our own close(), or the handle is gone): drop what is left, raise
        ``exception()`` from now on."""
        with self._lock:
            if self._end is None:
                self._end = exception
            self._items.clear()
            self._lifecycle = 0

    def take_message(self) -> Message | None:
        """The next message, skipping lifecycle events; None if nothing is
        waiting; raises the end once reached."""
        with self._lock:
            items = self._items
            while items:
                item = items.popleft()
                if is_message(item):
                    return item  # type: ignore[return-value]
                self._lifecycle -= 1
                self._reach(item)
            self._raise_if_ended()
            return None

    def take_messages(self, limit: int) -> list[Message]:
        """Up to ``limit`` messages; [] if nothing is waiting; raises the end
        once reached with nothing taken."""
        with self._lock:
            items = self._items
            if self._lifecycle == 0 and len(items) <= limit:
                out: list[Message] = list(items)  # type: ignore[arg-type]
                items.clear()
            else:
                out = []
                while items and len(out) < limit:
                    item = items[0]
                    if is_message(item):
                        out.append(items.popleft())  # type: ignore[arg-type]
                        continue
                    if isinstance(item, Closed) and out:
                        break  # the end after what was taken
                    items.popleft()
                    self._lifecycle -= 1
                    self._reach(item)
            if not out:
                self._raise_if_ended()
            return out

    def take_events(self, limit: int) -> list[Event]:
        """Up to ``limit`` items, lifecycle events included; the Closed event
        is the last one returned, and the next call raises."""
        with self._lock:
            if not self._items:
                self._raise_if_ended()
            out: list[Event] = []
            while self._items and len(out) < limit:
                item = self._items.popleft()
                out.append(item)
                if not is_message(item):
                    self._lifecycle -= 1
                    if isinstance(item, Closed):
                        self._end = item.exception
                        self._items.clear()
                        self._lifecycle = 0
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
            self._items.clear()
            self._lifecycle = 0

    def _raise_if_ended(self) -> None:
        if self._end is not None:
            raise self._end()  # a new exception each time: tracebacks never pile up
