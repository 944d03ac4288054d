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

from ._ffi import EVENT_BINARY, EVENT_CLOSED, EVENT_OPEN, EVENT_TEXT, META_WORDS

Message = Union[str, bytes]


@dataclass(frozen=True)
class Opened:
    """The connection opened; the server chose ``subprotocol``."""

    subprotocol: str | None


@dataclass(frozen=True)
class Closed:
    """The connection ended for good."""

    code: int
    reason: str
    error: int  # ErrorCode; OK after a clean close handshake
    status: int  # HTTP status when the opening handshake failed


Event = Union[Message, Opened, Closed]


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

    def decode(self, count: int, size: int) -> list[Event]:
        words = self.words[: META_WORDS * count].tolist()
        kinds = words[0::META_WORDS]
        if all(k == EVENT_TEXT for k in kinds):
            return self._texts(words[2::META_WORDS], size)
        return self._mixed(words, count)

    def _texts(self, runes: list[int], size: int) -> list[Event]:
        text = str(self.view[:size], "utf-8")
        ends = list(accumulate(runes))
        return [text[a:b] for a, b in zip([0, *ends], ends)]

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
            elif kind == EVENT_CLOSED:
                out.append(Closed(a & 0xFFFF, str(data, "utf-8", "replace"), b, a >> 16))
        return out
