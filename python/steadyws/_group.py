"""Many connections, one event stream: what steadyws.Group and
steadyws.aio.Group share.

A group owns a hub in the engine that consumes its members' event streams:
one wakeup and one poll bring the messages of many members, in the order
they arrived, each member handing out at most one batch per poll (so a
member that floods holds up the others by one batch at most) and getting no
more until the group has delivered it. The members' callbacks still run on
the callback thread (or the loop), as for any connection: the group only
takes their messages and events.

:class:`GroupStream` is the sans-I/O part, like EventStream for one
connection: the (member, event) pairs polled and not yet delivered, the
members, and the batches owed back to the hub.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from itertools import islice, repeat
from typing import Generic, TypeVar

from ._conn import Connection
from ._errors import ConnectionClosedOK
from ._events import Closed, Event, HubEvent, Message, Opened, is_message

_MESSAGE_TYPES = {str, bytes}
W = TypeVar("W")  # the member type: steadyws.WebSocket or steadyws.aio.WebSocket
Run = tuple[int, list[HubEvent], list[int]]  # a hub poll's events of one member, and their times


class GroupStream(Generic[W]):
    """The members of a group and their events in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: dict[int, tuple[W, Connection]] = {}  # by consumer member id
        self._items: deque[tuple[W, Event]] = deque()
        self._times: deque[int] = deque()  # each item's time_ns
        self._conn_of: dict[int, Connection] = {}  # by id() of the member: whose last_received_ns to set
        self._lifecycle = 0  # items that are not messages
        self._owed: list[int] = []  # members whose batch is out: ack them once it is delivered
        self._leaving: dict[int, tuple[W, Connection]] = {}  # closed by close_all(), not yet finished
        self._left: set[int] = set()  # discarded before their end was polled
        self._early: dict[int, list[Run]] = {}  # polled before add(): at most one batch each

    def add(self, member: int, ws: W, conn: Connection) -> None:
        """A member joins; what the group polled of it before is queued now."""
        with self._lock:
            self._members[member] = (ws, conn)
            self._conn_of[id(ws)] = conn
            early = self._early.pop(member, [])
        self.feed(early)  # owed like any run: acknowledged once delivered

    def discard(self, member: int, ws: W) -> None:
        """A member that never opened leaves, with whatever it gave (its
        end, usually): the caller raised how it ended."""
        with self._lock:
            self._conn_of.pop(id(ws), None)
            if self._members.pop(member, None) is not None:
                self._left.add(member)  # its end was not polled yet: acknowledge what comes
            self._early.pop(member, None)
            kept = [(item, at) for item, at in zip(self._items, self._times, strict=True) if item[0] is not ws]
            if len(kept) != len(self._items):
                self._items = deque(item for item, _ in kept)
                self._times = deque(at for _, at in kept)
                self._lifecycle = sum(not is_message(item[1]) for item, _ in kept)

    def members(self) -> list[W]:
        """The members that have not ended, nor been closed."""
        with self._lock:
            return [ws for ws, conn in self._members.values() if conn.close_info() is None]

    def close_all(self) -> list[tuple[W, Connection]]:
        """Start closing every member (with 1000), which leaves the group;
        the members, for the driver to wait on, then to hand to finished()."""
        with self._lock:
            self._leaving.update(self._members)
            self._members.clear()
            self._conn_of.clear()
            self._items.clear()
            self._times.clear()
            self._lifecycle = 0
            self._early.clear()
            self._left.clear()
            closing = list(self._leaving.values())  # with those of a close() that was interrupted
        for _, conn in closing:
            conn.begin_close(1000, "")
        return closing

    def finished(self, conn: Connection) -> None:
        """A member that close_all() closed has ended: nobody will take its
        last events, and the group is done with it."""
        conn.consumer_done()
        with self._lock:
            self._leaving.pop(conn.consumer, None)

    def empty(self) -> bool:
        return not self._items

    def owed(self) -> list[int]:
        """The members to acknowledge before the next poll: everything they
        gave has been delivered (the stream is empty)."""
        with self._lock:
            owed, self._owed = self._owed, []
        return owed

    def feed(self, runs: Iterable[Run]) -> list[int]:
        """Queue a hub poll's runs; the members that left the group, which
        the caller acknowledges at once. A run of messages only, the common
        case, is queued without a loop in Python. The run of a member not
        added yet waits for add(), unacknowledged (so the hub gives it no
        more meanwhile)."""
        unknown = []
        with self._lock:
            for run in runs:
                member, events, times = run
                entry = self._members.get(member)
                if entry is None:
                    if member in self._leaving or member in self._left:
                        unknown.append(member)
                        if any(isinstance(ev, Closed) for ev in events):
                            self._left.discard(member)  # nothing follows an end
                    else:
                        self._early.setdefault(member, []).append(run)
                    continue
                self._owed.append(member)
                if set(map(type, events)) <= _MESSAGE_TYPES:
                    self._items.extend(zip(repeat(entry[0]), events))  # type: ignore[arg-type]
                    self._times.extend(times)
                else:
                    self._feed_events(member, entry, events, times)
        return unknown

    def _feed_events(self, member: int, entry: tuple[W, Connection], events: list[HubEvent], times: list[int]) -> None:
        ws, conn = entry
        for ev, at in zip(events, times, strict=True):
            if isinstance(ev, Opened) and ev.connection == 1:
                continue  # connect() waited for it
            if isinstance(ev, Closed):
                conn.record_end(ev)
                conn.consumer_done()
                del self._members[member]
                self._conn_of.pop(id(ws), None)
            if not is_message(ev):
                self._lifecycle += 1
            self._items.append((ws, ev))  # type: ignore[arg-type]
            self._times.append(at)

    def take_message(self) -> tuple[W, Message] | None:
        """The next message and its member; None if none is waiting; raises
        once the group has no members and nothing is left."""
        with self._lock:
            while self._items:
                ws, item = self._items.popleft()
                at = self._times.popleft()
                if is_message(item):
                    self._delivered(ws, at)
                    return ws, item  # type: ignore[return-value]
                self._lifecycle -= 1
            self._raise_if_over()
            return None

    def take_messages(self, limit: int) -> tuple[list[tuple[W, Message]], list[int]]:
        """Up to ``limit`` (member, message) pairs and their times."""
        with self._lock:
            items, times = self._items, self._times
            out: list[tuple[W, Message]]
            stamps: list[int]
            if self._lifecycle == 0 and len(items) <= limit:  # messages only: no loop in Python
                out, stamps = list(items), list(times)  # type: ignore[arg-type]
                items.clear()
                times.clear()
            elif self._lifecycle == 0:
                out = [items.popleft() for _ in range(limit)]  # type: ignore[misc]
                stamps = [times.popleft() for _ in range(limit)]
            else:
                out, stamps = [], []
                while items and len(out) < limit:
                    ws, item = items.popleft()
                    at = times.popleft()
                    if is_message(item):
                        out.append((ws, item))  # type: ignore[arg-type]
                        stamps.append(at)
                    else:
                        self._lifecycle -= 1
            if out:
                self._delivered(out[-1][0], stamps[-1])
            else:
                self._raise_if_over()
            return out, stamps

    def take_events(self, limit: int) -> list[tuple[W, Event]]:
        with self._lock:
            out = list(islice(self._items, limit))
            for _ in out:
                ws, item = self._items.popleft()
                at = self._times.popleft()
                if is_message(item):
                    self._delivered(ws, at)
                else:
                    self._lifecycle -= 1
            if not out:
                self._raise_if_over()
            return out

    def _delivered(self, ws: W, at: int) -> None:
        """The member's last_received_ns: at (for a batch, that of its last
        message's member)."""
        conn = self._conn_of.get(id(ws))
        if conn is not None:
            conn.stream.delivered(at)

    def over(self) -> bool:
        """No member is left and everything was delivered."""
        with self._lock:
            return not self._members and not self._items

    def _raise_if_over(self) -> None:
        if not self._members and not self._items:
            raise ConnectionClosedOK(1000, "", "the group has no connections left")
