"""Turning one polled batch into Python objects.

sws_poll fills two caller-owned buffers in one call: META_WORDS uint32 words
per event (kind, length, a, b) and the events' data back to back. A batch of
text messages, the common case, is decoded with one UTF-8 decode of the whole
data and sliced by code-point offsets that Go computed; other batches are cut
per event.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from itertools import accumulate
from typing import Union

from ._ffi import (
    EVENT_BINARY,
    EVENT_CLOSED,
    EVENT_DISCONNECTED,
    EVENT_OPEN,
    EVENT_RECONNECTING,
    EVENT_TEXT,
    EVENT_WARNING,
    META_WORDS,
)

Message = Union[str, bytes]


@dataclass(frozen=True)
class Opened:
    """A connection opened (the first, or a reconnect); the server chose ``subprotocol``."""

    subprotocol: str | None


@dataclass(frozen=True)
class Ended:
    """How a connection ended.

    code: the close code received, the one steadyws closed with (1002, 1007,
    1009), or 1006 when no close frame was exchanged.
    reason: the close reason.
    error: an ErrorCode; OK after a clean close handshake.
    status: the HTTP status when the opening handshake failed, else 0.
    detail: the engine's message for a failure, else "".
    dialing: the failure happened while connecting.
    """

    code: int
    reason: str
    error: int
    status: int = 0
    detail: str = ""
    dialing: bool = False


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


@dataclass(frozen=True)
class QueueWarning:
    """The inbound queue is in trouble (at most one per kind per second):
    ``kind`` is "drops" (``count`` messages dropped since the last warning)
    or "high_water" (the queue passed 80% of a bound; ``count`` is its depth)."""

    kind: str
    count: int
    message: str


Lifecycle = Union[Opened, Disconnected, Reconnecting, Closed, QueueWarning]
Event = Union[Message, Lifecycle]


class Buffers:
    """The meta and data buffers of one consumer, grown on demand."""

    def __init__(self, max_events: int, data_size: int) -> None:
        self.max_events = max_events
        self.meta = bytearray(4 * META_WORDS * max_events)
        self.meta_c = (ctypes.c_char * len(self.meta)).from_buffer(self.meta)
        self.words = memoryview(self.meta).cast("I")
        self.resize(data_size)

    def resize(self, data_size: int) -> None:
        self.data = bytearray(data_size)
        self.data_c = (ctypes.c_char * data_size).from_buffer(self.data)
        self.view = memoryview(self.data)

    def decode(self, count: int, size: int) -> tuple[list[Event], bool]:
        """The batch as Python objects, and whether it holds messages only."""
        end = META_WORDS * count
        kinds = self.words[0:end:META_WORDS].tolist()
        if kinds.count(EVENT_TEXT) == count:
            return self._texts(self.words[2:end:META_WORDS].tolist(), size), True
        if kinds.count(EVENT_BINARY) == count:
            return self._binaries(self.words[1:end:META_WORDS].tolist(), size), True
        return self._mixed(self.words[:end].tolist(), count), False

    def _texts(self, runes: list[int], size: int) -> list[Event]:
        """One UTF-8 decode for the whole batch, sliced at the code-point
        offsets Go computed."""
        text = str(self.view[:size], "utf-8")
        ends = list(accumulate(runes))
        return [text[a:b] for a, b in zip([0, *ends], ends, strict=False)]

    def _binaries(self, lengths: list[int], size: int) -> list[Event]:
        raw = bytes(self.view[:size])
        ends = list(accumulate(lengths))
        return [raw[a:b] for a, b in zip([0, *ends], ends, strict=False)]

    def _mixed(self, words: list[int], count: int) -> list[Event]:
        out: list[Event] = []
        view, off = self.view, 0
        for i in range(count):
            kind, length, a, b = words[i * META_WORDS : (i + 1) * META_WORDS]
            data = view[off : off + length]
            off += length
            if kind == EVENT_TEXT:
                out.append(str(data, "utf-8"))
            elif kind == EVENT_BINARY:
                out.append(bytes(data))
            elif kind == EVENT_OPEN:
                out.append(Opened(str(data, "utf-8") or None))
            elif kind in (EVENT_CLOSED, EVENT_DISCONNECTED):
                out.append(_ended(kind, a, b, str(data, "utf-8", "replace")))
            elif kind == EVENT_RECONNECTING:
                out.append(Reconnecting(a, b / 1000, str(data, "utf-8", "replace")))
            elif kind == EVENT_WARNING:
                out.append(QueueWarning("drops" if a == 1 else "high_water", b, str(data, "utf-8", "replace")))
        return out


def _ended(kind: int, a: int, b: int, text: str) -> Closed | Disconnected:
    """Closed or Disconnected from its packed words: the data is the close
    reason after a clean close, the error message otherwise."""
    cls: type[Closed] | type[Disconnected] = Closed if kind == EVENT_CLOSED else Disconnected
    error, dialing = b & 0xFFFF, bool(b >> 16)
    if error == 0:
        return cls(a & 0xFFFF, text, error, a >> 16)
    return cls(a & 0xFFFF, "", error, a >> 16, text, dialing)
