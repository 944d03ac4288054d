"""Small test utilities that are not servers."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import NamedTuple


class ThreadCounts(NamedTuple):
    python: int  # threading.active_count()
    os: int  # "Threads:" in /proc/self/status (includes the Go runtime's threads)


def open_fd_count() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def thread_counts() -> ThreadCounts:
    """Python threads and OS threads of this process."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("Threads:"))
    return ThreadCounts(python=threading.active_count(), os=int(line.split()[1]))


class Stopwatch:
    """Context manager measuring wall time (monotonic) into ``elapsed``."""

    def __enter__(self) -> Stopwatch:
        self.start = time.monotonic()
        self.elapsed = 0.0
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.elapsed = time.monotonic() - self.start


def outcome_of(action: Callable[[], object]) -> object:
    """What ``action()`` returned, or the exception it raised."""
    try:
        return action()
    except BaseException as exc:  # noqa: BLE001 - the outcome is what we inspect
        return exc
