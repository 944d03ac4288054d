"""A hub: the events of many connections through one wakeup and one poll."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from itertools import groupby

from . import _lib
from ._abi import ErrorCode
from ._events import Buffers, HubEvent
from ._handle import Handle, HandleClosed

lib = _lib.lib

PER_MEMBER = 256  # events of one member per poll: a flood holds others up one batch at most
MAX_EVENTS = 1024  # events per poll
DATA_BYTES = 1 << 20  # the data buffer; it grows to the largest event


class Hub:
    """One hub handle and its poll buffers (for one thread or loop)."""

    def __init__(self) -> None:
        value = ctypes.c_int64()
        _lib.call(lib.sws_hub_new, ctypes.byref(value))
        self.handle = Handle(value.value)
        self._buffers = Buffers(MAX_EVENTS, DATA_BYTES, sources=True)
        self._fd: int | None = None

    def poll(self, timeout_ms: int) -> list[tuple[int, list[HubEvent], list[int]]]:
        """The next events, waiting up to ``timeout_ms``, as (member, events,
        times) runs; each member's run must be acknowledged (ack) after it
        ran."""
        b = self._buffers
        try:
            h = self.handle.acquire()
        except HandleClosed:
            return []
        try:
            rc = _lib.call(
                lib.sws_hub_poll, h, b.meta_c, b.src, b.max_events, b.data_c, len(b.data), PER_MEMBER,
                timeout_ms, b.count_ref, b.size_ref, allow=(ErrorCode.BUFFER_TOO_SMALL, ErrorCode.CLOSED),
            )  # fmt: skip
        finally:
            self.handle.release()
        if rc == ErrorCode.BUFFER_TOO_SMALL:
            b.resize(max(b.size.value, 2 * len(b.data)))
            return []
        if rc != ErrorCode.OK or b.count.value == 0:
            return []
        events, _ = b.decode()
        times = b.times()
        # Each member's events come as one run: cut the batch at the changes
        # of member, per run rather than per event.
        runs: list[tuple[int, list[HubEvent], list[int]]] = []
        start = 0
        for member, same in groupby(b.sources()):
            end = start + len(list(same))
            runs.append((member, events[start:end], times[start:end]))
            start = end
        return runs

    def ack(self, members: Sequence[int]) -> None:
        """The runs of ``members`` were handled: they may get more (one call
        for all of them)."""
        if not members:
            return
        ids = (ctypes.c_uint32 * len(members))(*members)
        try:
            h = self.handle.acquire()
        except HandleClosed:
            return
        try:
            _lib.call(lib.sws_hub_ack, h, ids, len(members))
        finally:
            self.handle.release()

    def wakeup_fd(self) -> int:
        """An eventfd readable while members have events (closed with the hub)."""
        if self._fd is None:
            fd = ctypes.c_int32()
            h = self.handle.acquire()
            try:
                _lib.call(lib.sws_hub_wakeup_fd, h, ctypes.byref(fd))
            finally:
                self.handle.release()
            self._fd = fd.value
        return self._fd

    @property
    def value(self) -> int:
        """The hub's handle, for sws_connect (the hub outlives its members)."""
        h = self.handle.acquire()
        self.handle.release()
        return h

    def close(self) -> None:
        self.handle.free()
