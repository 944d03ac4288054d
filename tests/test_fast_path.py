"""The waiting consumer's fast path (core/turn.go, core/fast.go) keeps every promise.

A receive that waits reads the socket on its own thread (threaded: poll(2) inside
sws_poll; asyncio: add_reader on a dup of the socket); the reader goroutine covers
heartbeats, server pings, fragments, compression, large frames and a full queue, and
takes the socket back from a consumer that went away. Every test runs against real
servers over loopback, under the threaded and (where it applies) the asyncio API.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import steadyws
import trustme
import uvloop
from conftest import server_tls_context
from fast_support import (
    Collector,
    FastServer,
    expected_messages,
    numbered,
    receive_in_thread,
    seq_of,
    settled,
    steady,
)
from helpers import Stopwatch, ThreadCounts, outcome_of
from payloads import payload
from promise_support import async_wait_until, rss_bytes, wait_until
from servers import EchoServer, tagged
from steadyws.testing import Server

API = ("threaded", "asyncio")
ROUND_TRIPS = 300
MAJORITY = 0.6  # share of an echo loop's messages that must come through the fast path
SLACK = 0.5  # seconds of scheduling noise allowed on a loaded 2-core machine
FAST_RECONNECT = steadyws.Backoff(min=0.05, max=0.1, jitter=False)
MiB = 1 << 20


@pytest.fixture(scope="module")
def fast_server() -> Iterator[FastServer]:
    server = FastServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def fast_tls_server(tls_ca: trustme.CA) -> Iterator[FastServer]:
    server = FastServer(ssl_context=server_tls_context(tls_ca))
    yield server
    server.close()


def echo(ws: steadyws.WebSocket, n: int, prefix: str = "m") -> None:
    for i in range(n):
        ws.send(f"{prefix}{i}")
        assert ws.recv(timeout=5) == f"{prefix}{i}"


async def aecho(ws: steadyws.aio.WebSocket, n: int, prefix: str = "m") -> None:
    for i in range(n):
        await ws.send(f"{prefix}{i}")
        assert await ws.recv(timeout=5) == f"{prefix}{i}"


def fast(ws: Any) -> int:
    return int(ws.stats()["messages_fast"])


LOOPS = ("asyncio", "uvloop")


def run(coro: Any, timeout: float = 60, loop: str = "asyncio") -> Any:
    """Run ``coro`` on a new event loop: asyncio's own, or uvloop's."""
    if loop == "uvloop":
        return uvloop.run(asyncio.wait_for(coro, timeout))
    return asyncio.run(asyncio.wait_for(coro, timeout))


# -- the fast path is used ---------------------------------------------------------------


@pytest.mark.parametrize("api", [*API, "uvloop"])
def test_echo_loop_reads_on_the_consumers_thread(ws_server: EchoServer, api: str) -> None:
    """An echo loop of 300 round trips reports messages_fast for a clear majority of them (threaded,
    asyncio, and asyncio on uvloop): the waiting consumer read the socket itself."""
    url = ws_server.url("/echo")
    if api == "threaded":
        with steadyws.connect(url, reconnect=False) as ws:
            echo(ws, ROUND_TRIPS)
            stats = ws.stats()
    else:

        async def main() -> dict[str, int]:
            async with steadyws.aio.connect(url, reconnect=False) as ws:
                await aecho(ws, ROUND_TRIPS)
                return ws.stats()

        stats = run(main(), loop=api)
    assert stats["messages_in"] == ROUND_TRIPS
    assert MAJORITY * ROUND_TRIPS <= stats["messages_fast"] <= ROUND_TRIPS, stats


TLS_SIZES = (1, 200, 16_000, 16_500, 40_000, 65_000, 70_000, 200_000)  # across TLS records and the read buffer


@pytest.mark.parametrize("api", API)
def test_tls_echo_loop_uses_the_fast_path_and_keeps_messages_intact(
    wss_server: EchoServer, ca_file: str, api: str
) -> None:
    """wss://: an echo loop of 300 small messages comes mostly through the fast path, and messages of
    1 B to 200 KB (spanning TLS records and the 64 KiB read buffer), text and binary, echo intact."""
    url = wss_server.url("/echo")
    big = [payload("text" if i % 2 else "binary", n) for i, n in enumerate(TLS_SIZES)]

    def check(got: object, sent: str | bytes) -> None:
        assert type(got) is type(sent) and got == sent, f"a {len(sent)}-byte message came back altered"

    if api == "threaded":
        with steadyws.connect(url, ca_file=ca_file, reconnect=False) as ws:
            echo(ws, ROUND_TRIPS)
            small = fast(ws)
            for message in big:
                ws.send(message)
                check(ws.recv(timeout=10), message)
    else:

        async def main() -> int:
            async with steadyws.aio.connect(url, ca_file=ca_file, reconnect=False) as ws:
                await aecho(ws, ROUND_TRIPS)
                small = fast(ws)
                for message in big:
                    await ws.send(message)
                    check(await ws.recv(timeout=10), message)
                return small

        small = run(main())
    assert small >= MAJORITY * ROUND_TRIPS, f"{small} of {ROUND_TRIPS} messages through the fast path over TLS"


# -- heartbeats while Python is busy -------------------------------------------------------

PING_INTERVAL, PING_TIMEOUT = 0.2, 0.4
SERVER_PING_MS = 150
BUSY = 2.0  # seconds Python stays away: about 10 of our pings and 13 of the server's


def check_heartbeat_survived(
    server: FastServer, target: str, busy_from: float, before: dict[str, int], after: dict[str, int]
) -> None:
    assert after["connects"] == 1 and after["reconnects"] == 0, after
    assert after["pongs_received"] - before["pongs_received"] >= 0.5 * BUSY / PING_INTERVAL, (before, after)
    pings = {e.payload: e.at for e in server.server_pings(target) if busy_from <= e.at <= busy_from + BUSY - 0.5}
    pongs = {e.payload: e.at for e in server.pongs(target)}
    assert len(pings) >= 0.5 * BUSY / (SERVER_PING_MS / 1000), f"the server sent only {len(pings)} pings"
    unanswered = sorted(p for p in pings if p not in pongs)
    assert not unanswered, f"server pings {unanswered} got no pong while Python was busy"
    slowest = max(pongs[p] - at for p, at in pings.items())
    assert slowest < 1.0, f"a pong came {slowest:.2f} s after the server's ping"


def heartbeat_setup(request: pytest.FixtureRequest, scheme: str) -> tuple[FastServer, str, dict[str, Any]]:
    """The server (ws:// or wss://), a target that pings every SERVER_PING_MS, and the client's options."""
    server: FastServer = request.getfixturevalue("fast_tls_server" if scheme == "wss" else "fast_server")
    options: dict[str, Any] = {"ping_interval": PING_INTERVAL, "ping_timeout": PING_TIMEOUT, "reconnect": False}
    if scheme == "wss":
        options["ca_file"] = request.getfixturevalue("ca_file")
    return server, tagged(f"/fast?ping_ms={SERVER_PING_MS}"), options


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_heartbeat_while_a_threaded_consumer_is_busy(request: pytest.FixtureRequest, scheme: str) -> None:
    """A client (ws:// and wss://) that received on the fast path and then stops calling recv
    (time.sleep for ~10 ping intervals) stays open: our pings get their pongs read, every server ping
    gets a pong, and the fast path resumes afterwards."""
    fast_server, target, options = heartbeat_setup(request, scheme)
    with steadyws.connect(fast_server.url(target), **options) as ws:
        echo(ws, 50)
        before = ws.stats()
        assert before["messages_fast"] >= 25, before
        busy_from = time.monotonic()
        time.sleep(BUSY)  # Python is busy: nobody calls recv
        after = ws.stats()
        assert ws.state == "open"
        echo(ws, 50, "again")
        assert fast(ws) - after["messages_fast"] >= 25, "the fast path did not resume"
    check_heartbeat_survived(fast_server, target, busy_from, before, after)


@pytest.mark.parametrize(("how", "scheme"), [("blocked-loop", "ws"), ("blocked-loop", "wss"), ("no-recv", "ws")])
def test_heartbeat_while_the_event_loop_is_busy(request: pytest.FixtureRequest, how: str, scheme: str) -> None:
    """asyncio: after fast-path receives, the loop is blocked (time.sleep in a coroutine, while a task
    waits in recv; ws:// and wss://) or simply nobody awaits recv, for ~10 ping intervals: the connection
    stays open, every server ping gets a pong, and the waiting recv then gets the next message."""
    fast_server, target, options = heartbeat_setup(request, scheme)

    async def main() -> tuple[float, dict[str, int], dict[str, int]]:
        ws = await steadyws.aio.connect(fast_server.url(target), **options)
        async with ws:
            await aecho(ws, 50)
            before = ws.stats()
            assert before["messages_fast"] >= 25, before
            waiter = asyncio.ensure_future(ws.recv(timeout=30)) if how == "blocked-loop" else None
            await asyncio.sleep(0.05)  # the waiter is on the fast path: add_reader on the socket
            busy_from = time.monotonic()
            if waiter is not None:
                time.sleep(BUSY)  # the loop is blocked
            else:
                await asyncio.sleep(BUSY)
            after = ws.stats()
            assert ws.state == "open"
            await ws.send("after")
            assert await (waiter if waiter is not None else ws.recv(timeout=5)) == "after"
            await aecho(ws, 20, "again")
            return busy_from, before, after

    busy_from, before, after = run(main())
    check_heartbeat_survived(fast_server, target, busy_from, before, after)


DEAD_INTERVAL = DEAD_TIMEOUT = 0.3


def test_dead_peer_is_detected_while_a_thread_waits_on_the_fast_path(fast_server: FastServer) -> None:
    """A server that goes silent (no data, no pong, no FIN) while a thread waits in recv on the fast path
    is declared dead within ping_interval + ping_timeout (+ margin): recv raises ConnectionClosedError
    saying "ping timeout"."""
    target = tagged("/fast")
    ws = steadyws.connect(
        fast_server.url(target), ping_interval=DEAD_INTERVAL, ping_timeout=DEAD_TIMEOUT, reconnect=False
    )
    try:
        echo(ws, 30)
        assert fast(ws) >= 15
        got = Collector()
        receive_in_thread(lambda: ws.recv(timeout=30), got)
        time.sleep(0.1)  # the thread waits on the socket
        silent_at = time.monotonic()
        fast_server.silence(target)
        assert got.done.wait(10), "the dead peer was never detected"
    finally:
        ws.close()
    assert isinstance(got.error, steadyws.ConnectionClosedError), repr(got.error)
    assert "ping timeout" in str(got.error)
    assert got.ended_at is not None
    took = got.ended_at - silent_at
    assert took <= 1.1 * (DEAD_INTERVAL + DEAD_TIMEOUT) + SLACK, f"dead peer detected after {took:.2f} s"


@pytest.mark.parametrize("loop", LOOPS)
def test_aio_dead_peer_is_detected_while_a_task_waits_on_the_fast_path(fast_server: FastServer, loop: str) -> None:
    """asyncio (its loop and uvloop): the same silent server while a task awaits recv (add_reader on the
    socket): recv raises ConnectionClosedError ("ping timeout") within ping_interval + ping_timeout
    (+ margin)."""
    target = tagged("/fast")

    async def main() -> tuple[BaseException | None, float]:
        ws = await steadyws.aio.connect(
            fast_server.url(target), ping_interval=DEAD_INTERVAL, ping_timeout=DEAD_TIMEOUT, reconnect=False
        )
        try:
            await aecho(ws, 30)
            assert fast(ws) >= 15
            waiter = asyncio.ensure_future(ws.recv(timeout=30))
            await asyncio.sleep(0.1)
            silent_at = time.monotonic()
            fast_server.silence(target)
            try:
                await asyncio.wait_for(waiter, 10)
            except steadyws.ConnectionClosed as exc:
                return exc, time.monotonic() - silent_at
            return None, time.monotonic() - silent_at
        finally:
            await ws.close()

    error, took = run(main(), loop=loop)
    assert isinstance(error, steadyws.ConnectionClosedError) and "ping timeout" in str(error), repr(error)
    assert took <= 1.1 * (DEAD_INTERVAL + DEAD_TIMEOUT) + SLACK, f"dead peer detected after {took:.2f} s"


# -- backpressure and bounds -----------------------------------------------------------

MAX_QUEUE, MAX_QUEUE_BYTES, SIZE = 16, 4096, 300  # 13 messages fill the bytes, 16 the count
BURST, ROUNDS = 200, 8


def bounded(policy: str) -> dict[str, Any]:
    return {"max_queue": MAX_QUEUE, "max_queue_bytes": MAX_QUEUE_BYTES, "overflow": policy, "reconnect": False}


def check_bounds(stats: dict[str, int], max_queue: int, max_queue_bytes: int, size: int) -> None:
    assert stats["queue_depth"] <= max_queue, stats
    assert stats["queue_bytes"] <= max_queue_bytes + size, stats
    assert stats["queue_high_water"] <= max_queue, stats


def check_policy(policy: str, seqs: list[int], stats: dict[str, int], error: BaseException | None) -> None:
    total = BURST * ROUNDS
    assert seqs == sorted(set(seqs)), "messages out of order or twice"
    if policy == "close":
        assert isinstance(error, steadyws.QueueOverflow) and error.code == 1008, repr(error)
        assert seqs == list(range(len(seqs))), "a message was lost before the overflow"
        return
    assert error is None, repr(error)
    if policy == "block":
        assert seqs == list(range(total)) and stats["dropped"] == 0, (
            f"{len(seqs)} of {total}, {stats['dropped']} dropped"
        )
        return
    assert stats["dropped"] > 0, "the queue never overflowed"
    assert len(seqs) + stats["dropped"] == total, f"{len(seqs)} received + {stats['dropped']} dropped != {total}"
    if policy == "drop_newest":  # every burst starts on an empty queue, nothing held: its first message is kept
        missing = [r * BURST for r in range(ROUNDS) if r * BURST not in seqs]
        assert not missing, f"first messages of bursts dropped: {missing}"


@pytest.mark.parametrize("policy", ["block", "drop_oldest", "drop_newest", "close"])
def test_bounds_hold_when_fast_path_waits_alternate_with_slow_processing(fast_server: FastServer, policy: str) -> None:
    """max_queue=16, max_queue_bytes=4096: each round the consumer waits on an empty queue (the fast path
    reads the burst that arrives), then processes slowly; queue_depth and queue_bytes stay in bounds at
    every look, and block loses nothing, drop_oldest/drop_newest count every drop, close fails with
    QueueOverflow (1008)."""
    ws = steadyws.connect(fast_server.url(tagged("/fast")), **bounded(policy))
    seqs: list[int] = []
    error: BaseException | None = None
    try:
        for r in range(ROUNDS):
            assert ws.recv_batch(timeout=0) == []  # we come back for more: the batch we held no longer counts
            ws.send(f"burst:{r * BURST}:{BURST}:{SIZE}")
            while len(seqs) + ws.stats()["dropped"] < (r + 1) * BURST:  # each message received or dropped
                batch = ws.recv_batch(timeout=5)  # a fast-path wait when the queue is empty
                assert batch, "the burst stopped"
                check_bounds(ws.stats(), MAX_QUEUE, MAX_QUEUE_BYTES, SIZE)
                seqs += [seq_of(m) for m in batch]
                time.sleep(0.005)  # slow processing
        stats = ws.stats()
    except steadyws.ConnectionClosedError as exc:
        error, stats = exc, ws.stats()
    finally:
        ws.close()
    check_policy(policy, seqs, stats, error)
    if policy != "close":  # close ends in the first round, whichever path read it
        assert stats["messages_fast"] > 0, "the fast path never read a burst"


@pytest.mark.parametrize("policy", ["block", "drop_oldest"])
def test_aio_bounds_hold_when_fast_path_waits_alternate_with_slow_processing(
    fast_server: FastServer, policy: str
) -> None:
    """asyncio: the same rounds (the loop keeps running during the slow processing, nobody awaits recv):
    the bounds hold at every look, block loses nothing, drop_oldest counts every drop."""

    async def main() -> tuple[list[int], dict[str, int]]:
        ws = await steadyws.aio.connect(fast_server.url(tagged("/fast")), **bounded(policy))
        seqs: list[int] = []
        async with ws:
            for r in range(ROUNDS):
                assert await ws.recv_batch(timeout=0) == []
                await ws.send(f"burst:{r * BURST}:{BURST}:{SIZE}")
                while len(seqs) + ws.stats()["dropped"] < (r + 1) * BURST:
                    batch = await ws.recv_batch(timeout=5)
                    assert batch, "the burst stopped"
                    check_bounds(ws.stats(), MAX_QUEUE, MAX_QUEUE_BYTES, SIZE)
                    seqs += [seq_of(m) for m in batch]
                    await asyncio.sleep(0.005)  # slow processing; the loop runs, nobody awaits recv
            return seqs, ws.stats()

    seqs, stats = run(main())
    check_policy(policy, seqs, stats, None)
    assert stats["messages_fast"] > 0, "the fast path never read a burst"


BIG_SIZE, BIG_BURST, BIG_ROUNDS = 8000, 512, 15  # 4 MiB bursts, 60 MiB in all; a frame fits the read buffer
BIG_QUEUE_BYTES = 256 << 10
RSS_SLACK = 24 * MiB  # runtime noise: Go's heap and threads, Python's allocator, the server's writes


def test_rss_stays_bounded_with_fast_path_waits_and_slow_processing(fast_server: FastServer) -> None:
    """max_queue_bytes=256 KiB, 15 bursts of 4 MiB (8 KB messages, which the fast path may read): the
    consumer alternates fast-path waits and slow processing; the process grows by at most
    max_queue_bytes + one message (+ slack) and every message arrives, in order."""
    ws = steadyws.connect(fast_server.url(tagged("/fast")), max_queue_bytes=BIG_QUEUE_BYTES, reconnect=False)
    received, grown, last = 0, 0, -1
    try:
        echo(ws, 5)
        before = rss_bytes()
        for r in range(BIG_ROUNDS):
            ws.send(f"burst:{r * BIG_BURST}:{BIG_BURST}:{BIG_SIZE}")
            end = (r + 1) * BIG_BURST
            while received < end:
                batch = ws.recv_batch(timeout=10)
                assert batch, "the burst stopped"
                check_bounds(ws.stats(), 1024, BIG_QUEUE_BYTES, BIG_SIZE)
                for message in batch:
                    assert seq_of(message) == last + 1 and len(message) == BIG_SIZE
                    last += 1
                received += len(batch)
                del batch
                time.sleep(0.003)  # slow processing
            grown = max(grown, rss_bytes() - before)
        stats = ws.stats()
    finally:
        ws.close()
    assert received == BIG_ROUNDS * BIG_BURST
    assert stats["messages_fast"] > 0, "the fast path never read a burst"
    assert grown <= BIG_QUEUE_BYTES + BIG_SIZE + RSS_SLACK, f"RSS grew {grown / MiB:.1f} MiB"


# -- what the fast path leaves to the reader ----------------------------------------------


@pytest.mark.parametrize("how", ["one", "paced"])
@pytest.mark.parametrize("compression", [None, "deflate"])
@pytest.mark.parametrize("api", API)
def test_frames_left_to_the_reader_arrive_intact_and_in_order(
    fast_server: FastServer, api: str, compression: str | None, how: str
) -> None:
    """Small messages mixed with fragmented ones, control frames between fragments, messages over 64 KiB,
    a frame that fills the read buffer exactly and one a byte larger, empty messages, lone pings and
    (with compression="deflate") compressed ones, sent in one write or frame by frame while the consumer
    waits on the fast path: every message arrives intact and in order, and every ping gets its pong."""
    target = tagged("/fast?deflate=1")
    rounds = 3
    options: dict[str, Any] = {"compression": compression, "reconnect": False}
    got: list[list[object]] = []
    if api == "threaded":
        with steadyws.connect(fast_server.url(target), **options) as ws:
            for r in range(rounds):
                ws.send(f"mix:{r}:{how}")
                got.append([ws.recv(timeout=10) for _ in expected_messages(r, bool(compression))])
            stats = ws.stats()
    else:

        async def main() -> dict[str, int]:
            async with steadyws.aio.connect(fast_server.url(target), **options) as ws:
                for r in range(rounds):
                    await ws.send(f"mix:{r}:{how}")
                    got.append([await ws.recv(timeout=10) for _ in expected_messages(r, bool(compression))])
                return ws.stats()

        stats = run(main())
    for r in range(rounds):
        expected = expected_messages(r, bool(compression))
        wrong = [i for i, (a, b) in enumerate(zip(got[r], expected, strict=True)) if type(a) is not type(b) or a != b]
        assert not wrong, f"round {r}: messages {wrong} altered or out of place"
    pongs = {e.payload for e in fast_server.pongs(target)}
    assert {f"{k}{r}".encode() for k in ("mid", "lone") for r in range(rounds)} <= pongs, sorted(pongs)
    assert (stats["compressed_in"] > 0) == bool(compression), stats
    if how == "paced":
        assert stats["messages_fast"] > 0, "the fast path read none of the small messages"


# -- close ---------------------------------------------------------------------------------


def test_close_from_another_thread_ends_a_waiting_recv(fast_server: FastServer) -> None:
    """close() from another thread while a thread waits in recv() on the fast path: that recv raises
    ConnectionClosedOK promptly, and the server got our close frame with 1000."""
    target = tagged("/fast?close=0")
    ws = steadyws.connect(fast_server.url(target), reconnect=False)
    echo(ws, 30)
    assert fast(ws) >= 15
    got = Collector()
    receive_in_thread(lambda: ws.recv(timeout=30), got)
    time.sleep(0.1)
    closed_at = time.monotonic()
    ws.close()
    assert got.done.wait(5), "recv still waits after close()"
    assert isinstance(got.error, steadyws.ConnectionClosedOK), repr(got.error)
    assert got.ended_at is not None and got.ended_at - closed_at < 1.0
    assert fast_server.close_event(target).code == 1000


@pytest.mark.parametrize("loop", LOOPS)
def test_aio_close_ends_a_waiting_recv(fast_server: FastServer, loop: str) -> None:
    """asyncio (its loop and uvloop): close() from another task while a task awaits recv() on the fast
    path: that recv raises
    ConnectionClosedOK promptly."""
    target = tagged("/fast?close=0")

    async def main() -> tuple[BaseException | None, float]:
        ws = await steadyws.aio.connect(fast_server.url(target), reconnect=False)
        await aecho(ws, 30)
        assert fast(ws) >= 15
        waiter = asyncio.ensure_future(ws.recv(timeout=30))
        await asyncio.sleep(0.1)
        closed_at = time.monotonic()
        await ws.close()
        try:
            await asyncio.wait_for(waiter, 5)
        except steadyws.ConnectionClosed as exc:
            return exc, time.monotonic() - closed_at
        return None, time.monotonic() - closed_at

    error, took = run(main(), loop=loop)
    assert isinstance(error, steadyws.ConnectionClosedOK), repr(error)
    assert took < 1.0, f"recv ended {took:.2f} s after close()"
    assert fast_server.close_event(target).code == 1000


CLOSE_TRIALS = 12
PROMPT_CLOSE = 0.2  # seconds: the server answers at once; a look at a leased socket comes after up to 250 ms


def timed_closes(fast_server: FastServer, api: str) -> list[float]:
    """How long close() takes, CLOSE_TRIALS times, with a consumer waiting on the fast path and a server
    that answers our close frame at once (and then closes TCP)."""
    times: list[float] = []
    for _ in range(CLOSE_TRIALS):
        url = fast_server.url(tagged("/fast?close=0"))
        if api == "threaded":
            ws = steadyws.connect(url, reconnect=False, close_timeout=5)
            echo(ws, 10)
            got = Collector()
            receive_in_thread(lambda ws=ws: ws.recv(timeout=30), got)
            time.sleep(0.1)
            with Stopwatch() as clock:
                ws.close()
            assert got.done.wait(5) and isinstance(got.error, steadyws.ConnectionClosedOK), repr(got.error)
            times.append(clock.elapsed)
            continue

        async def main(url: str = url) -> float:
            ws = await steadyws.aio.connect(url, reconnect=False, close_timeout=5)
            await aecho(ws, 10)
            waiter = asyncio.ensure_future(ws.recv(timeout=30))
            await asyncio.sleep(0.1)
            with Stopwatch() as clock:
                await ws.close()
            with pytest.raises(steadyws.ConnectionClosedOK):
                await waiter
            return clock.elapsed

        times.append(run(main()))
    return times


@pytest.mark.parametrize("api", API)
def test_close_with_a_waiting_consumer_returns_once_the_server_answers(fast_server: FastServer, api: str) -> None:
    """close() while a consumer waits on the fast path, against a server that answers the close frame at
    once: close() returns as soon as the server's close frame is in (the close recalls the socket to the
    reader goroutine), not after the reader's next look at a leased socket (up to 250 ms later)."""
    times = timed_closes(fast_server, api)
    slow = [round(t, 3) for t in times if t >= PROMPT_CLOSE]
    assert not slow, f"{len(slow)} of {len(times)} closes took {slow} s (all: {[round(t, 3) for t in times]})"


@pytest.mark.parametrize("api", API)
def test_close_timeout_holds_against_a_server_that_never_answers(fast_server: FastServer, api: str) -> None:
    """close_timeout=0.5 against a server that never answers our close frame, while a consumer waits on
    the fast path: close() returns after about close_timeout, the waiting recv raises ConnectionClosedOK,
    and the server got our close frame with 1000."""
    target = tagged("/fast?close=never")
    url = fast_server.url(target)
    if api == "threaded":
        ws = steadyws.connect(url, reconnect=False, close_timeout=0.5)
        echo(ws, 10)
        got = Collector()
        receive_in_thread(lambda: ws.recv(timeout=30), got)
        time.sleep(0.1)
        with Stopwatch() as clock:
            ws.close()
        assert got.done.wait(5)
        error, state, took = got.error, ws.state, clock.elapsed
    else:

        async def main() -> tuple[BaseException | None, str, float]:
            ws = await steadyws.aio.connect(url, reconnect=False, close_timeout=0.5)
            await aecho(ws, 10)
            waiter = asyncio.ensure_future(ws.recv(timeout=30))
            await asyncio.sleep(0.1)
            with Stopwatch() as clock:
                await ws.close()
            try:
                await asyncio.wait_for(waiter, 5)
            except steadyws.ConnectionClosed as exc:
                return exc, ws.state, clock.elapsed
            return None, ws.state, clock.elapsed

        error, state, took = run(main())
    assert isinstance(error, steadyws.ConnectionClosedOK), repr(error)
    assert state == "closed"
    assert 0.4 <= took <= 0.5 + 1.0, f"close() took {took:.2f} s with close_timeout=0.5"
    assert fast_server.wait_for(lambda e: e.target == target and e.kind == "client_close").code == 1000


@pytest.mark.parametrize("api", API)
def test_server_reset_while_waiting_raises_promptly(fast_server: FastServer, api: str) -> None:
    """A TCP reset while a consumer waits on the fast path raises ConnectionClosedError (1006) at once,
    not after a heartbeat timeout (ping_interval and ping_timeout are 20 s)."""
    target = tagged("/fast")
    url = fast_server.url(target)
    if api == "threaded":
        ws = steadyws.connect(url, reconnect=False)
        try:
            echo(ws, 30)
            got = Collector()
            receive_in_thread(lambda: ws.recv(timeout=30), got)
            time.sleep(0.1)
            fast_server.reset(target)
            assert got.done.wait(10)
        finally:
            ws.close()
        error, ended_at = got.error, got.ended_at
    else:

        async def main() -> tuple[BaseException | None, float]:
            ws = await steadyws.aio.connect(url, reconnect=False)
            try:
                await aecho(ws, 30)
                waiter = asyncio.ensure_future(ws.recv(timeout=30))
                await asyncio.sleep(0.1)
                fast_server.reset(target)
                try:
                    await asyncio.wait_for(waiter, 10)
                except steadyws.ConnectionClosed as exc:
                    return exc, time.monotonic()
                return None, time.monotonic()
            finally:
                await ws.close()

        error, ended_at = run(main())
    reset_at = fast_server.wait_for(lambda e: e.target == target and e.kind == "reset").at
    assert isinstance(error, steadyws.ConnectionClosedError) and error.code == 1006, repr(error)
    assert ended_at is not None and ended_at - reset_at < 1.0, (
        f"the reset was noticed after {ended_at - reset_at:.2f} s"
    )  # type: ignore[operator]


# kind: (class, code, reason or None to skip, closed_by); the server gets our close frame with the code
ENDS: dict[str, tuple[type[steadyws.ConnectionClosed], int, str | None, str]] = {
    "close-1000": (steadyws.ConnectionClosedOK, 1000, "bye", "server"),
    "close-4000": (steadyws.ConnectionClosedError, 4000, "custom", "server"),
    "invalid-utf8": (steadyws.ProtocolError, 1007, None, "client"),
    "masked": (steadyws.ProtocolError, 1002, None, "client"),
    "reserved-opcode": (steadyws.ProtocolError, 1002, None, "client"),
}


def described(error: object) -> tuple[object, ...]:
    if not isinstance(error, steadyws.ConnectionClosed):
        return (repr(error),)
    return type(error), error.code, error.reason, getattr(error, "closed_by", "<none>")


@pytest.mark.parametrize("kind", ENDS)
@pytest.mark.parametrize("api", API)
def test_an_end_met_on_the_fast_path_is_one_exception(fast_server: FastServer, api: str, kind: str) -> None:
    """While a consumer waits on the fast path, the server sends a close frame (1000 "bye", 4000
    "custom") or breaks the protocol -- invalid UTF-8 (a whole frame the consumer's thread reads and
    refuses), a masked frame or a reserved opcode (frames it leaves to the reader goroutine): the waiting
    recv raises at once the end's class, code, reason and closed_by, a later recv and close_code repeat
    them, and the server gets our close frame with that code."""
    target = tagged("/fast")
    if api == "threaded":
        ws = steadyws.connect(fast_server.url(target), reconnect=False)
        try:
            echo(ws, 10)
            got = Collector()
            receive_in_thread(lambda: ws.recv(timeout=30), got)
            time.sleep(0.1)
            sent_at = time.monotonic()
            ws.send(f"end:{kind}")
            assert got.done.wait(5), "recv still waits"
            first, took = got.error, (got.ended_at or 0) - sent_at
            again = outcome_of(lambda: ws.recv(timeout=1))
            close_code = ws.close_code
        finally:
            ws.close()
    else:

        async def main() -> tuple[object, float, object, int | None]:
            ws = await steadyws.aio.connect(fast_server.url(target), reconnect=False)
            async with ws:
                await aecho(ws, 10)
                waiter = asyncio.ensure_future(ws.recv(timeout=30))
                await asyncio.sleep(0.1)
                sent_at = time.monotonic()
                await ws.send(f"end:{kind}")
                try:
                    first: object = await asyncio.wait_for(waiter, 5)
                except steadyws.ConnectionClosed as exc:
                    first = exc
                took = time.monotonic() - sent_at
                try:
                    again: object = await ws.recv(timeout=1)
                except steadyws.ConnectionClosed as exc:
                    again = exc
                return first, took, again, ws.close_code

        first, took, again, close_code = run(main())
    kind_of, code, reason, closed_by = ENDS[kind]
    seen = described(first)
    assert isinstance(first, kind_of) and seen[1] == code and seen[3] == closed_by, seen
    assert reason is None or seen[2] == reason, seen
    assert described(again) == seen and close_code == code, (described(again), close_code)
    assert took < 1.0, f"the end came {took:.2f} s after the frame was asked for"
    assert fast_server.close_event(target).code == code


RESETS = 5


@pytest.mark.parametrize("api", API)
def test_reconnect_after_a_reset_keeps_the_fast_path(fast_server: FastServer, api: str) -> None:
    """Reset 5 times while a consumer waits on the fast path (reconnect on): each new connection's echo
    loop again comes mostly through the fast path, intact."""
    per_round = 100

    def new_target() -> str:
        return tagged("/fast")

    if api == "threaded":
        shares = []
        target = new_target()
        with steadyws.connect(fast_server.url(target), reconnect=FAST_RECONNECT) as ws:
            for k in range(RESETS):
                before = fast(ws)
                echo(ws, per_round, f"r{k}-")
                shares.append((fast(ws) - before) / per_round)
                fast_server.reset(target)
                with pytest.raises(TimeoutError):
                    ws.recv(timeout=0.2)  # waits through the reset and the reconnect
                wait_until(lambda n=k + 2: ws.stats()["connects"] >= n and ws.state == "open", what="reconnected")
            stats = ws.stats()
    else:

        async def main() -> tuple[list[float], dict[str, int]]:
            shares = []
            target = new_target()
            async with steadyws.aio.connect(fast_server.url(target), reconnect=FAST_RECONNECT) as ws:
                for k in range(RESETS):
                    before = fast(ws)
                    await aecho(ws, per_round, f"r{k}-")
                    shares.append((fast(ws) - before) / per_round)
                    fast_server.reset(target)
                    with pytest.raises(TimeoutError):
                        await ws.recv(timeout=0.2)
                    await async_wait_until(
                        lambda n=k + 2: ws.stats()["connects"] >= n and ws.state == "open", what="reconnected"
                    )
                return shares, ws.stats()

        shares, stats = run(main())
    assert stats["connects"] >= RESETS + 1, stats
    assert all(share >= MAJORITY for share in shares), f"fast-path share per connection: {shares}"


# -- several consumers on one connection -----------------------------------------------------

CONSUMERS = 8
TOTAL = 6000
PER_SEND = 30


class Tally:
    """How many messages the consumers took in all, waited on by the sender."""

    def __init__(self) -> None:
        self.count = 0
        self.errors: list[str] = []
        self.cond = threading.Condition()

    def add(self, n: int) -> None:
        with self.cond:
            self.count += n
            self.cond.notify_all()

    def fail(self, why: str) -> None:
        with self.cond:
            self.errors.append(why)
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = 10) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.count >= n or bool(self.errors), timeout):
                raise AssertionError(f"only {self.count} of {n} messages consumed")


def check_once_each(seen: list[list[int]], total: int) -> None:
    everything = sorted(n for mine in seen for n in mine)
    duplicates = len(everything) - len(set(everything))
    assert everything == list(range(total)), f"{duplicates} duplicates, {total - len(set(everything))} missing"
    for k, mine in enumerate(seen):
        assert mine == sorted(mine), f"consumer {k} got messages out of order"


def test_many_threads_consuming_one_connection_get_each_message_once(fast_server: FastServer) -> None:
    """8 threads (recv, recv_batch and recv_events mixed) consume one connection whose messages arrive in
    small bursts, so that waits on the fast path alternate with queued batches, with
    sys.setswitchinterval(1e-6): each of 6,000 messages is delivered exactly once, in order per thread."""
    old_interval = sys.getswitchinterval()
    seen: list[list[int]] = [[] for _ in range(CONSUMERS)]
    tally = Tally()
    stop = threading.Event()
    ws = steadyws.connect(fast_server.url(tagged("/fast")), reconnect=False)

    def consumer(k: int) -> None:
        mine = seen[k]
        try:
            while not stop.is_set():
                if k % 3 == 0:
                    try:
                        got: list[object] = [ws.recv(timeout=0.1)]
                    except TimeoutError:
                        got = []
                elif k % 3 == 1:
                    got = list(ws.recv_batch(max_messages=1 + k, timeout=0.1))
                else:
                    got = [e for e in ws.recv_events(max_events=1 + k, timeout=0.1) if isinstance(e, str)]
                mine.extend(seq_of(m) for m in got)
                tally.add(len(got))
        except Exception as exc:  # noqa: BLE001 - reported below
            tally.fail(f"consumer {k}: {exc!r}")

    threads = [threading.Thread(target=consumer, args=(k,), daemon=True) for k in range(CONSUMERS)]
    try:
        sys.setswitchinterval(1e-6)
        for thread in threads:
            thread.start()
        for start in range(0, TOTAL, PER_SEND):
            ws.send_batch([numbered(seq, 24) for seq in range(start, start + PER_SEND)])
            tally.wait_for(start + PER_SEND)
        stats = ws.stats()
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        sys.setswitchinterval(old_interval)
        ws.close()
    assert not any(thread.is_alive() for thread in threads), "a consumer hung"
    assert not tally.errors, tally.errors[:5]
    check_once_each(seen, TOTAL)
    assert stats["messages_fast"] > 0, "no burst came through the fast path"


def test_aio_many_tasks_consuming_one_connection_get_each_message_once(fast_server: FastServer) -> None:
    """asyncio: 6 tasks (recv, recv_batch and recv_events mixed) await one connection whose messages
    arrive in small bursts: each of 3,000 messages is delivered exactly once, in order per task."""
    tasks_n, total = 6, 3000
    seen: list[list[int]] = [[] for _ in range(tasks_n)]

    async def main() -> dict[str, int]:
        count = 0
        ws = await steadyws.aio.connect(fast_server.url(tagged("/fast")), reconnect=False)

        async def consumer(k: int) -> None:
            nonlocal count
            mine = seen[k]
            while True:
                if k % 3 == 0:
                    try:
                        got: list[object] = [await ws.recv(timeout=0.1)]
                    except TimeoutError:
                        got = []
                elif k % 3 == 1:
                    got = list(await ws.recv_batch(max_messages=1 + k, timeout=0.1))
                else:
                    got = [e for e in await ws.recv_events(max_events=1 + k, timeout=0.1) if isinstance(e, str)]
                mine.extend(seq_of(m) for m in got)
                count += len(got)

        tasks = [asyncio.ensure_future(consumer(k)) for k in range(tasks_n)]
        try:
            for start in range(0, total, PER_SEND):
                await ws.send_batch([numbered(seq, 24) for seq in range(start, start + PER_SEND)])
                await async_wait_until(lambda n=start + PER_SEND: count >= n or any(t.done() for t in tasks))
                for task in tasks:
                    if task.done():
                        task.result()  # a consumer failed: raise its exception
            return ws.stats()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ws.close()

    stats = run(main())
    check_once_each(seen, total)
    assert stats["messages_fast"] > 0, "no burst came through the fast path"


# -- no fd or thread leaks ---------------------------------------------------------------------

CYCLES = 150
LEAK_SLACK = {"fds": 2, "os_threads": 2, "python_threads": 0, "goroutines": 5, "handles": 0}
SETTLE = 10.0  # seconds: threads and goroutines end asynchronously

Counters = dict[str, int]


def counter(fd_count: Callable[[], int], thread_count: Callable[[], ThreadCounts]) -> Callable[[], Counters]:
    def measure() -> Counters:
        stats = steadyws.runtime_stats()
        threads = thread_count()
        return {
            "fds": fd_count(),
            "os_threads": threads.os,
            "python_threads": threads.python,
            "goroutines": int(stats["goroutines"]),
            "handles": int(stats["handles"]),
        }

    return measure


def within(baseline: Counters) -> Callable[[Counters], bool]:
    return lambda now: all(now[k] <= baseline[k] + LEAK_SLACK[k] for k in LEAK_SLACK)


ECHOES = 3


def cycles(api: str, url: Callable[[], str], n: int) -> int:
    """``n`` connect / echo / close cycles; how many echoes came through the fast path."""
    total = 0
    if api == "threaded":
        for i in range(n):
            with steadyws.connect(url(), reconnect=False) as ws:
                echo(ws, ECHOES, f"c{i}-")
                total += fast(ws)
        return total

    async def main() -> int:
        total = 0
        for i in range(n):
            async with steadyws.aio.connect(url(), reconnect=False) as ws:
                await aecho(ws, ECHOES, f"c{i}-")
                total += fast(ws)
        return total

    return int(run(main(), 120))


@pytest.mark.parametrize("api", API)
def test_connect_echo_close_cycles_leak_no_fds_or_threads(
    fast_server: FastServer, fd_count: Callable[[], int], thread_count: Callable[[], ThreadCounts], api: str
) -> None:
    """150 connect / fast-path echo / close cycles: fds, OS and Python threads (the server's included:
    one per connection), goroutines and handles return to their baseline."""
    measure = counter(fd_count, thread_count)

    def url() -> str:
        return fast_server.url(tagged("/fast"))

    cycles(api, url, 5)
    baseline = steady(measure)
    fast_echoes = cycles(api, url, CYCLES)
    now = settled(measure, within(baseline), SETTLE)
    assert within(baseline)(now), f"baseline {baseline}, after {CYCLES} cycles {now}"
    assert fast_echoes >= MAJORITY * CYCLES * ECHOES, f"only {fast_echoes} echoes through the fast path"


def socket_fds() -> set[str]:
    """The socket descriptors of this process (fd numbers and their inodes)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:"):
            found.add(f"{fd}->{link}")
    return found


@pytest.mark.parametrize("loop", LOOPS)
def test_aio_socket_dup_is_closed_once_the_connection_ended(
    fast_server: FastServer, fd_count: Callable[[], int], loop: str
) -> None:
    """asyncio (its loop and uvloop), a task waiting in recv on the fast path (add_reader on a dup of the
    socket): after 5 resets and reconnects the fd count is what one connection costs, and once the server
    resets the last one (reconnect off) the fd count is back to its baseline while the WebSocket object is
    still alive."""
    reconnecting = tagged("/fast")
    final = tagged("/fast")

    async def main() -> None:
        baseline = fd_count()
        ws = await steadyws.aio.connect(fast_server.url(reconnecting), reconnect=FAST_RECONNECT)
        await aecho(ws, 10)
        one_connection = fd_count()
        assert one_connection > baseline
        for k in range(RESETS):
            waiter = asyncio.ensure_future(ws.recv(timeout=5))
            await asyncio.sleep(0.05)
            fast_server.reset(reconnecting)
            await async_wait_until(lambda n=k + 2: ws.stats()["connects"] >= n and ws.state == "open")
            await ws.send("back")
            assert await waiter == "back"
            await aecho(ws, 10, f"r{k}-")
            assert fd_count() <= one_connection, (
                f"after {k + 1} reconnects: {fd_count()} fds, one connection {one_connection}"
            )
        await ws.close()
        ws = await steadyws.aio.connect(fast_server.url(final), reconnect=False)
        await aecho(ws, 10)
        waiter = asyncio.ensure_future(ws.recv(timeout=10))
        await asyncio.sleep(0.05)
        fast_server.reset(final)
        with pytest.raises(steadyws.ConnectionClosedError):
            await waiter
        await async_wait_until(
            lambda: fd_count() <= baseline, timeout=5, what=f"fds back to {baseline} (now {fd_count()})"
        )
        assert ws.state == "closed"  # ws is alive here: the descriptors went with the connection, not the object

    run(main(), loop=loop)


@pytest.mark.parametrize("api", API)
def test_no_descriptor_of_an_ended_connection_stays_open(fast_server: FastServer, api: str) -> None:
    """A consumer received on the fast path, then stops receiving; the server resets the connection
    (reconnect off). Once it has ended (state "closed"), no descriptor of its socket is open any more --
    not the engine's, not its consumer dup, not the dup asyncio waits on -- while the WebSocket object is
    still alive."""
    target = tagged("/fast")

    def check(ws: Any, before: set[str]) -> None:
        wait_until(lambda: ws.state == "closed", what="the end of the connection")
        wait_until(lambda: not socket_fds() - before, timeout=5, what="the socket's descriptors closed")

    if api == "threaded":
        before = socket_fds()
        ws = steadyws.connect(fast_server.url(target), reconnect=False)
        echo(ws, 10)
        fast_server.reset(target)
        check(ws, before)
        ws.close()
        return

    async def main() -> None:
        before = socket_fds()  # with the loop's own (its self-pipe is a socket pair)
        ws = await steadyws.aio.connect(fast_server.url(target), reconnect=False)
        await aecho(ws, 10)
        fast_server.reset(target)
        await asyncio.to_thread(check, ws, before)
        await ws.close()

    run(main())


# -- busy_poll -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.005, 0.01, 0])
@pytest.mark.parametrize("api", API)
def test_valid_busy_poll_values_deliver(ws_server: EchoServer, api: str, value: float) -> None:
    """busy_poll=0.005, 0.01 (the maximum) and 0: an echo loop of 300 messages arrives intact, mostly
    through the fast path."""
    url = ws_server.url("/echo")
    if api == "threaded":
        with steadyws.connect(url, busy_poll=value, reconnect=False) as ws:
            echo(ws, ROUND_TRIPS)
            stats = ws.stats()
    else:

        async def main() -> dict[str, int]:
            async with steadyws.aio.connect(url, busy_poll=value, reconnect=False) as ws:
                await aecho(ws, ROUND_TRIPS)
                return ws.stats()

        stats = run(main())
    assert stats["messages_fast"] >= MAJORITY * ROUND_TRIPS, stats


BAD_BUSY_POLL = [(-1, ValueError), (0.5, ValueError), (0.011, ValueError), (float("nan"), ValueError),
                 (float("inf"), ValueError), (True, TypeError), ("1", TypeError), (None, TypeError)]  # fmt: skip


@pytest.mark.parametrize(("value", "error"), BAD_BUSY_POLL, ids=[repr(v) for v, _ in BAD_BUSY_POLL])
@pytest.mark.parametrize("api", API)
def test_invalid_busy_poll_is_refused_before_any_io(
    steadyws_server: Server, api: str, value: object, error: type[Exception]
) -> None:
    """busy_poll=-1, 0.5, 0.011, NaN or inf is a ValueError, True, "1" or None a TypeError, naming
    busy_poll, raised by connect() (asyncio: when called, before the await), before any I/O."""
    if api == "threaded":
        with pytest.raises(error, match=r"\bbusy_poll\b"):
            steadyws.connect(steadyws_server.url, busy_poll=value)  # type: ignore[arg-type]
    else:

        async def main() -> None:
            with pytest.raises(error, match=r"\bbusy_poll\b"):
                steadyws.aio.connect(steadyws_server.url, busy_poll=value)  # type: ignore[arg-type]

        run(main())
    assert steadyws_server.counts()["handshakes"] == 0


IDLE_WAIT = 2.0
IDLE_CPU = 0.05


@pytest.mark.parametrize("api", API)
def test_default_busy_poll_never_spins(fast_server: FastServer, api: str) -> None:
    """With the default busy_poll, a client waiting on the fast path (recv(timeout=2) after an echo
    loop, nothing arriving) uses well under 5% of a core: the wait sleeps in the kernel."""

    def cpu() -> float:
        t = os.times()
        return t.user + t.system

    if api == "threaded":
        with steadyws.connect(fast_server.url(tagged("/fast")), reconnect=False) as ws:
            echo(ws, 20)
            assert fast(ws) >= 10
            used, wall = cpu(), time.monotonic()
            with pytest.raises(TimeoutError):
                ws.recv(timeout=IDLE_WAIT)
            used, wall = cpu() - used, time.monotonic() - wall
    else:

        async def main() -> tuple[float, float]:
            async with steadyws.aio.connect(fast_server.url(tagged("/fast")), reconnect=False) as ws:
                await aecho(ws, 20)
                assert fast(ws) >= 10
                used, wall = cpu(), time.monotonic()
                with pytest.raises(TimeoutError):
                    await ws.recv(timeout=IDLE_WAIT)
                return cpu() - used, time.monotonic() - wall

        used, wall = run(main())
    assert wall >= 0.9 * IDLE_WAIT
    assert used / wall < IDLE_CPU, f"{100 * used / wall:.1f}% of a core while waiting idle"
