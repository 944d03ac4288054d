"""Small test utilities that are not servers."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, NamedTuple

import steadyws


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


# -- resources ---------------------------------------------------------------------------

Counters = dict[str, int]
SLACK = {"fds": 2, "os_threads": 2, "goroutines": 5, "handles": 0}
SETTLE_SECONDS = 10.0  # Go's goroutines and threads, and in-process servers' threads, end asynchronously


def resources(fd_count: Callable[[], int], os_threads: Callable[[], int]) -> Counters:
    """fds, OS threads, goroutines and live handles of this process, after a collection."""
    gc.collect()
    stats = steadyws.runtime_stats()
    return {
        "fds": fd_count(),
        "os_threads": os_threads(),
        "goroutines": int(stats["goroutines"]),
        "handles": int(stats["handles"]),
    }


def steady(measure: Callable[[], Counters], timeout: float = 3.0) -> Counters:
    """A reading equal to the one 0.1 s before it (or the last one after ``timeout``)."""
    previous = measure()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        current = measure()
        if current == previous:
            return current
        previous = current
    return previous


def excess_after_settling(
    measure: Callable[[], Counters], baseline: Counters, timeout: float = SETTLE_SECONDS
) -> dict[str, tuple[int, int]]:
    """Counters still above baseline + SLACK after up to ``timeout`` seconds: {name: (baseline, now)}."""
    deadline = time.monotonic() + timeout
    while True:
        now = measure()
        excess = {k: (baseline[k], now[k]) for k in SLACK if now[k] > baseline[k] + SLACK[k]}
        if not excess or time.monotonic() > deadline:
            return excess
        time.sleep(0.1)


# -- fork --------------------------------------------------------------------------------

FORK_BOUND = 1.0  # seconds a call may take in the child before it counts as a hang (the spec's "within a second")
KILL_AFTER = 5.0  # seconds the parent waits for a child's report before it kills it


def in_child(action: Callable[[], Any]) -> dict[str, Any]:
    """Run ``action`` in a forked child (awaiting it on a fresh loop if it returns an awaitable); return
    the child's report: the exception's type name and message (None if none), and the time it took."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running any of the parent's cleanup
        try:
            os.close(read_fd)
            started = time.monotonic()
            report: dict[str, Any] = {"raised": None, "message": ""}
            try:
                result = action()
                if inspect.isawaitable(result):
                    loop = asyncio.new_event_loop()
                    try:
                        loop.run_until_complete(result)  # type: ignore[arg-type]
                    finally:
                        loop.close()
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                report = {"raised": type(exc).__name__, "message": str(exc)[:300]}
            report["elapsed"] = time.monotonic() - started
            os.write(write_fd, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    return _child_report(pid, read_fd)


def _child_report(pid: int, read_fd: int) -> dict[str, Any]:
    data = b""
    try:
        deadline = time.monotonic() + KILL_AFTER
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([read_fd], [], [], left)
            if not ready:
                break
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_fd)
    done, _ = os.waitpid(pid, os.WNOHANG)
    if not done:
        if not data:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if not data:
        return {"raised": "HANG", "message": f"no report within {KILL_AFTER} s", "elapsed": KILL_AFTER}
    report = json.loads(data)
    assert isinstance(report, dict)
    return report


def fork_problem(report: dict[str, Any]) -> str | None:
    """None if the child saw a RuntimeError mentioning fork within FORK_BOUND, else what went wrong."""
    if report["raised"] != "RuntimeError" or "fork" not in report["message"].lower():
        return f"{report['raised'] or 'returned normally'}: {report['message']}"
    if report["elapsed"] >= FORK_BOUND:
        return f"RuntimeError after {report['elapsed']:.2f} s"
    return None
