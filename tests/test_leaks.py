"""Connections give back every resource: fds, OS threads, goroutines and handles."""

from __future__ import annotations

from collections.abc import Callable

import steadyws
from helpers import Counters, ThreadCounts, excess_after_settling, resources, steady
from servers import EchoServer

CYCLES = 1000
WARMUP = 20

Measure = Callable[[], Counters]


def make_measure(fd_count: Callable[[], int], thread_count: Callable[[], ThreadCounts]) -> Measure:
    return lambda: resources(fd_count, lambda: thread_count().os)


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
