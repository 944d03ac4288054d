"""Connections give back every resource: fds, OS threads, goroutines and handles."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import steadyws
from helpers import ThreadCounts
from servers import EchoServer

CYCLES = 1000
WARMUP = 20
SLACK = {"fds": 2, "os_threads": 2, "goroutines": 5, "handles": 0}
SETTLE_SECONDS = 10.0  # the in-process server's threads and Go's goroutines exit asynchronously

Counters = dict[str, int]
Measure = Callable[[], Counters]


def make_measure(fd_count: Callable[[], int], thread_count: Callable[[], ThreadCounts]) -> Measure:
    def measure() -> Counters:
        gc.collect()
        stats = steadyws.runtime_stats()
        return {
            "fds": fd_count(),
            "os_threads": thread_count().os,
            "goroutines": int(stats["goroutines"]),
            "handles": int(stats["handles"]),
        }

    return measure


def steady(measure: Measure, timeout: float = 3.0) -> Counters:
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


def excess_after_settling(measure: Measure, baseline: Counters) -> dict[str, tuple[int, int]]:
    """Counters still above baseline + SLACK after up to SETTLE_SECONDS: {name: (baseline, now)}."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        now = measure()
        excess = {k: (baseline[k], now[k]) for k in SLACK if now[k] > baseline[k] + SLACK[k]}
        if not excess or time.monotonic() > deadline:
            return excess
        time.sleep(0.1)


def echo_cycle(url: str) -> None:
    ws = steadyws.connect(url)
    try:
        ws.send("cycle")
        assert ws.recv(timeout=10) == "cycle"
    finally:
        ws.close()


def test_connect_close_cycles_leak_nothing(
    ws_server: EchoServer, fd_count: Callable[[], int], thread_count: Callable[[], ThreadCounts]
) -> None:
    """1,000 connect/echo/close cycles return fds, OS threads, goroutines and handles to the baseline."""
    measure = make_measure(fd_count, thread_count)
    url = ws_server.url("/echo")
    for _ in range(WARMUP):
        echo_cycle(url)
    baseline = steady(measure)
    for _ in range(CYCLES):
        echo_cycle(url)
    assert excess_after_settling(measure, baseline) == {}


def test_runtime_stats_follow_open_connections(
    ws_server: EchoServer, fd_count: Callable[[], int], thread_count: Callable[[], ThreadCounts]
) -> None:
    """Open connections show up in goroutines and handles, and both drop back once closed and collected."""
    measure = make_measure(fd_count, thread_count)
    baseline = steady(measure)
    sockets = [steadyws.connect(ws_server.url("/echo")) for _ in range(5)]
    while_open = measure()
    assert while_open["handles"] > baseline["handles"]
    assert while_open["goroutines"] > baseline["goroutines"]
    for ws in sockets:
        ws.close()
    del sockets, ws
    assert excess_after_settling(measure, baseline) == {}
