"""The events of a connection, and turning one polled batch into them.

sws_poll fills two caller-owned buffers in one call: META_WORDS uint32 words
per event (kind, length, a, b, and the time it happened or its last frame
was read, a uint64 of unix nanoseconds) and the events' data back to back (a hub poll
also fills the member of each event). A batch of text messages, the common
case, is decoded with one UTF-8 decode of the whole data and sliced by
code-point offsets that Go computed; other batches are cut per event.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Union

from ._abi import (
    END_DIALING_SHIFT,
    END_ERR_MASK,
    END_REASON_SHIFT,
    END_SIDE_MASK,
    END_SIDE_SHIFT,
    META_WORDS,
    EventKind,
    WarnKind,
)
from ._errors import ClosedBy, WebSocketError, end_error, side_name

Message = Union[str, bytes]


@dataclass(frozen=True)
class Opened:
    """A connection opened (the first, or a reconnect); the server chose
    ``subprotocol``. ``connection`` counts the connections, from 1."""

    subprotocol: str | None
    connection: int = 1
    time_ns: int = field(default=0, compare=False)  # when it happened: time.time_ns()'s clock


@dataclass(frozen=True)
class Ended:
    """How a connection ended.

    code: the close code received, the one steadyws closed with (ours, or
    1002, 1007, 1008, 1009), 1005 for a close frame without a code, or 1006
    when no close frame was exchanged.
    reason: the close reason.
    error: an ErrorCode; OK after a clean close handshake (and after our
    own close()).
    status: the HTTP status when the opening handshake failed, else 0.
    detail: the engine's message for a failure, else "".
    dialing: the failure happened while connecting.
    closed_by: who sent the first close frame: "server", "client" or None.
    """

    code: int
    reason: str
    error: int
    status: int = 0
    detail: str = ""
    dialing: bool = False
    closed_by: ClosedBy = None
    time_ns: int = field(default=0, compare=False)  # when it happened: time.time_ns()'s clock

    def exception(self) -> WebSocketError:
        """The exception this end raises, everywhere."""
        side = {"client": 1, "server": 2}.get(self.closed_by or "", 0)
        return end_error(self.code, self.reason, self.error, self.status, self.detail, self.dialing, side)


@dataclass(frozen=True)
class Disconnected(Ended):
    """An open connection was lost; a Reconnecting or Closed event follows."""


@dataclass(frozen=True)
class Closed(Ended):
    """The client ended for good: the last event."""


@dataclass(frozen=True)
class Reconnecting:
    """Attempt number ``attempt`` will be dialled after ``delay`` seconds;
    ``detail`` says why the last connection or attempt failed."""

    attempt: int
    delay: float
    detail: str
    time_ns: int = field(default=0, compare=False)  # when it happened: time.time_ns()'s clock


@dataclass(frozen=True)
class QueueWarning:
    """The inbound queue is in trouble: ``kind`` is "drops" (``count``
    messages dropped since the last warning) or "high_water" (the queue
    passed 80% of a bound; ``count`` is its depth). A warning nobody has
    taken yet absorbs the next ones of its kind."""

    kind: str
    count: int
    message: str
    time_ns: int = field(default=0, compare=False)  # when it happened: time.time_ns()'s clock


@dataclass(frozen=True)
class Rotated:
    """A rotation switched delivery to connection number ``connection`` (its
    Opened came before, and its on_open ran); the old connection closes
    with 1000. Messages the old one delivered are not delivered again."""

    connection: int
    time_ns: int = field(default=0, compare=False)  # when it happened: time.time_ns()'s clock


@dataclass(frozen=True)
class HeadersWanted:
    """Reconnect attempt ``request`` waits for fresh headers (internal: the
    callback runner answers it with the user's headers callable)."""

    request: int


Lifecycle = Union[Opened, Disconnected, Reconnecting, Closed, QueueWarning, Rotated]
Event = Union[Message, Lifecycle]
HubEvent = Union[Event, HeadersWanted]


def is_message(item: object) -> bool:
    return type(item) is str or type(item) is bytes


class Buffers:
    """The meta and data buffers of one consumer, grown on demand; with
    ``sources``, also the member of each event of a hub poll."""

    def __init__(self, max_events: int, data_size: int, sources: bool = False) -> None:
        self.max_events = max_events
        self.meta = bytearray(4 * META_WORDS * max_events)
        self.meta_c = (ctypes.c_char * len(self.meta)).from_buffer(self.meta)
        self.words = memoryview(self.meta).cast("I")
        self.times_view = memoryview(self.meta).cast("Q")  # each event's time is the uint64 at index 3 * i + 2
        self.src = (ctypes.c_uint32 * max_events)() if sources else None
        self.count = ctypes.c_int32()
        self.size = ctypes.c_int64()
        self.gen = ctypes.c_int32()  # a fast poll's connection to wait on (0: none)
        self.count_ref = ctypes.byref(self.count)
        self.size_ref = ctypes.byref(self.size)
        self.gen_ref = ctypes.byref(self.gen)
        self.resize(data_size)

    def resize(self, data_size: int) -> None:
        self.data = bytearray(data_size)
        self.data_c = (ctypes.c_char * data_size).from_buffer(self.data)
        self.view = memoryview(self.data)

    def decode(self) -> tuple[list[HubEvent], bool]:
        """The last polled batch as Python objects, and whether it holds
        messages only."""
        count, size = self.count.value, self.size.value
        if count == 1 and self.words[0] == EventKind.TEXT:  # a reply, a quiet feed's next message
            return [str(self.view[:size], "utf-8")], True
        end = META_WORDS * count
        kinds = self.words[0:end:META_WORDS].tolist()
        if kinds.count(EventKind.TEXT) == count:
            return self._texts(self.words[2:end:META_WORDS].tolist(), size), True
        if kinds.count(EventKind.BINARY) == count:
            return self._binaries(self.words[1:end:META_WORDS].tolist(), size), True
        return self._mixed(self.words[:end].tolist(), count), False

    def times(self) -> list[int]:
        """When each event of the last batch happened (a message: when its
        last frame was read), in time.time_ns()'s clock."""
        return self.times_view[2 : 3 * self.count.value : 3].tolist()

    def sources(self) -> list[int]:
        """The member of each event of the last hub poll."""
        assert self.src is not None
        return self.src[: self.count.value]

    def _texts(self, runes: list[int], size: int) -> list[HubEvent]:
        """One UTF-8 decode for the whole batch, sliced at the code-point
        offsets Go computed."""
        text = str(self.view[:size], "utf-8")
        ends = list(accumulate(runes))
        return [text[a:b] for a, b in zip([0, *ends], ends, strict=False)]

    def _binaries(self, lengths: list[int], size: int) -> list[HubEvent]:
        raw = bytes(self.view[:size])
        ends = list(accumulate(lengths))
        return [raw[a:b] for a, b in zip([0, *ends], ends, strict=False)]

    def _mixed(self, words: list[int], count: int) -> list[HubEvent]:
        out: list[HubEvent] = []
        view, off = self.view, 0
        for i in range(count):
            kind, length, a, b, low, high = words[i * META_WORDS : (i + 1) * META_WORDS]
            data = view[off : off + length]
            off += length
            out.append(_event(kind, a, b, data, low | high << 32))
        return out


def _event(kind: int, a: int, b: int, data: memoryview, at: int) -> HubEvent:
    if kind == EventKind.TEXT:
        return str(data, "utf-8")
    if kind == EventKind.BINARY:
        return bytes(data)
    if kind == EventKind.OPEN:
        return Opened(str(data, "utf-8") or None, a, at)
    if kind in (EventKind.CLOSED, EventKind.DISCONNECTED):
        return _ended(kind, a, b, bytes(data), at)
    if kind == EventKind.RECONNECTING:
        return Reconnecting(a, b / 1000, str(data, "utf-8", "replace"), at)
    if kind == EventKind.WARNING:
        kind_name = "drops" if a == WarnKind.DROPS else "high_water"
        return QueueWarning(kind_name, b, str(data, "utf-8", "replace"), at)
    if kind == EventKind.HEADERS:
        return HeadersWanted(a)
    if kind == EventKind.ROTATED:
        return Rotated(a, at)
    raise ValueError(f"unknown event kind {kind}")


def _ended(kind: int, a: int, b: int, data: bytes, at: int) -> Closed | Disconnected:
    """Closed or Disconnected from its packed words: the data is the close
    reason, then the detail."""
    cls: type[Closed] | type[Disconnected] = Closed if kind == EventKind.CLOSED else Disconnected
    cut = b >> END_REASON_SHIFT
    return cls(
        code=a & 0xFFFF,
        reason=data[:cut].decode("utf-8", "replace"),
        error=b & END_ERR_MASK,
        status=a >> 16,
        detail=data[cut:].decode("utf-8", "replace"),
        dialing=bool(b >> END_DIALING_SHIFT & 1),
        closed_by=side_name(b >> END_SIDE_SHIFT & END_SIDE_MASK),
        time_ns=at,
    )


POLL_EVENTS = 1024  # events per polled batch
POLL_BYTES = 1 << 20  # initial data buffer (per polling thread); grows to the largest message

_local = threading.local()


def thread_buffers() -> Buffers:
    """The poll buffers of the calling thread. Shared by every connection
    the thread polls (a batch is fed to a stream before the next poll), so
    10,000 connections cost one buffer, not 10,000."""
    b: Buffers | None = getattr(_local, "buffers", None)
    if b is None:
        b = _local.buffers = Buffers(POLL_EVENTS, POLL_BYTES)
    return b
