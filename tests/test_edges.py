"""Edges a review of 0.2.0 found: several asyncio consumers, timeout 0 under asyncio, waiting for the end
from a callback, callbacks that raise SystemExit, a SOCKS5 proxy under a stalled server, a garbage collection
inside connect(), and a headers callable that returns garbage."""

from __future__ import annotations

import asyncio
import gc
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import steadyws
from promise_support import PromiseServer, Ticker, wait_until
from proxies import SocksProxy
from servers import tagged
from steadyws.testing import Server

LOOP_BOUND = 0.5  # seconds: the largest gap a 10 ms ticker may see


@pytest.fixture(scope="module")
def promise_server() -> Iterator[PromiseServer]:
    server = PromiseServer()
    yield server
    server.close()


def test_several_tasks_receive_from_one_aio_connection(steadyws_server: Server) -> None:
    """Four tasks receiving from one asyncio connection while another thread feeds the server: every
    message reaches exactly one of them, and the loop never spins (it used to hang at 100% CPU, where
    not even a timeout fires: the loop runs in a thread here, and the test waits for it from outside)."""
    total = 3000
    got: list[str] = []
    rng = random.Random(9)

    async def main() -> None:
        async with steadyws.aio.connect(steadyws_server.url, reconnect=False) as ws:

            async def consumer() -> None:
                while len(got) < total:
                    got.append(str(await ws.recv()))
                    await asyncio.sleep(rng.random() * 0.002)

            def feed() -> None:
                for i in range(total):
                    steadyws_server.send(f"m{i}")
                    time.sleep(rng.random() * 0.002)

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            tasks = [asyncio.create_task(consumer()) for _ in range(4)]
            while len(got) < total:
                await asyncio.sleep(0.05)
            for task in tasks:
                task.cancel()

    loop_thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    loop_thread.start()
    loop_thread.join(60)
    assert not loop_thread.is_alive(), f"the event loop hung after {len(got)} of {total} messages"
    assert sorted(got, key=lambda m: int(m[1:])) == [f"m{i}" for i in range(total)]


def test_aio_timeout_zero_takes_what_has_arrived(steadyws_server: Server) -> None:
    """recv, recv_batch and recv_events with timeout=0 return what is waiting in the engine, and only
    raise (or return []) when nothing is (asyncio.wait_for(..., 0) used to cancel them first)."""

    async def main() -> None:
        async with steadyws.aio.connect(steadyws_server.url, reconnect=False) as ws:
            steadyws_server.send("one")
            steadyws_server.send("two")
            steadyws_server.send("three")
            await asyncio.sleep(0.2)
            assert await ws.recv(timeout=0) == "one"
            assert await ws.recv_batch(timeout=0) == ["two", "three"]
            assert await ws.recv_batch(timeout=0) == []
            assert await ws.recv_events(timeout=0) == []
            with pytest.raises(TimeoutError):
                await ws.recv(timeout=0)

    asyncio.run(asyncio.wait_for(main(), 30))


def test_wait_closed_from_the_connections_own_callback(steadyws_server: Server) -> None:
    """From inside one of the connection's own callbacks (which on_close must wait for),
    wait_closed waits for the engine's end only: it returns True, threaded and under asyncio."""
    results: dict[str, object] = {}
    done = threading.Event()

    def on_message(ws: steadyws.WebSocket, message: object) -> None:
        ws.close()  # only starts the close, from a callback
        results["threaded"] = ws.wait_closed(timeout=5)
        done.set()

    ws = steadyws.connect(steadyws_server.url, reconnect=False, on_message=on_message, on_close=lambda *a: None)
    steadyws_server.send("go")
    assert done.wait(10)
    assert ws.wait_closed(5)

    async def main() -> None:
        finished = asyncio.Event()

        async def aio_on_message(ws: steadyws.aio.WebSocket, message: object) -> None:
            await ws.close()
            results["aio"] = await ws.wait_closed(timeout=5)
            finished.set()

        aws = await steadyws.aio.connect(
            steadyws_server.url, reconnect=False, on_message=aio_on_message, on_close=lambda *a: None
        )
        steadyws_server.send("go")
        await asyncio.wait_for(finished.wait(), 10)
        assert await aws.wait_closed(5)

    asyncio.run(asyncio.wait_for(main(), 30))
    assert results == {"threaded": True, "aio": True}


def test_a_callback_that_raises_systemexit_wedges_nothing(steadyws_server: Server) -> None:
    """A callback raising SystemExit (not an Exception) on the callback thread is reported like any other
    error; its connection and the others keep getting their events."""
    got: list[str] = []
    errors: list[BaseException] = []

    def on_message(ws: steadyws.WebSocket, message: object) -> None:
        got.append(str(message))
        if message == "exit":
            raise SystemExit(3)

    ws = steadyws.connect(
        steadyws_server.url, reconnect=False, on_message=on_message, on_callback_error=lambda ws, e: errors.append(e)
    )
    try:
        for m in ("exit", "after", "and more"):
            steadyws_server.send(m)
        wait_until(lambda: len(got) == 3, what="the messages after the SystemExit")
        with steadyws.connect(steadyws_server.url, reconnect=False, on_open=lambda ws: ws.send("hi")):
            steadyws_server.expect(lambda m: m == "hi")
    finally:
        ws.close()
    assert got == ["exit", "after", "and more"] and [type(e) for e in errors] == [SystemExit]


@pytest.fixture(scope="module")
def socks_proxy() -> Iterator[SocksProxy]:
    proxy = SocksProxy("bob", "s0cks-pw")
    yield proxy
    proxy.close()


def test_aio_send_through_socks5_never_blocks_the_loop(promise_server: PromiseServer, socks_proxy: SocksProxy) -> None:
    """Through a SOCKS5 proxy to a server that never reads, `await ws.send()` never blocks the loop (the
    proxy's connection wraps the socket; the non-blocking writes must reach under it)."""
    big = b"\x00" * (1 << 20)

    async def main() -> tuple[float, BaseException | None]:
        url = promise_server.url(tagged("/no-read?ms=30000"))
        ws = await steadyws.aio.connect(url, proxy=socks_proxy.url(), write_timeout=1, reconnect=False, close_timeout=1)
        ticker = Ticker().start()
        error: BaseException | None = None
        started = time.monotonic()
        try:
            while time.monotonic() - started < 20:
                try:
                    await ws.send(big)
                except (steadyws.ConnectionClosed, steadyws.NotConnected) as exc:
                    error = exc
                    break
        finally:
            await ticker.stop()
            await ws.close()
        return ticker.largest_gap, error

    gap, error = asyncio.run(asyncio.wait_for(main(), 60))
    assert gap < LOOP_BOUND, f"the loop stalled for {gap:.2f} s"
    assert error is not None


def test_garbage_collection_inside_connect_does_not_deadlock(
    steadyws_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A garbage collection that finalizes a dropped connection while connect() is opening another (on the
    same thread, inside the callback thread's registry lock) frees the dropped one and deadlocks nothing."""
    from steadyws import _conn

    def dropped() -> None:
        ws = steadyws.connect(steadyws_server.url, reconnect=False)
        cycle: list[Any] = [ws]
        cycle.append(cycle)  # only the cycle collector frees it

    real_open = _conn.Connection.open.__func__  # type: ignore[attr-defined]

    def open_after_a_collection(cls: type[_conn.Connection], *args: Any) -> _conn.Connection:
        gc.collect()
        return real_open(cls, *args)  # type: ignore[no-any-return]

    steadyws.connect(steadyws_server.url).close()  # the callback thread's hub exists from here on
    handles_before = steadyws.runtime_stats()["handles"]
    gc.disable()
    try:
        dropped()
        monkeypatch.setattr(_conn.Connection, "open", classmethod(open_after_a_collection))
        outcome: list[object] = []
        thread = threading.Thread(target=lambda: outcome.append(steadyws.connect(steadyws_server.url)), daemon=True)
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "connect() deadlocked on a finalizer"
    finally:
        gc.enable()
    ws = outcome[0]
    assert isinstance(ws, steadyws.WebSocket)
    ws.close()
    wait_until(lambda: steadyws.runtime_stats()["handles"] <= handles_before, what="the dropped connection freed")


def test_headers_callable_returning_garbage_fails_the_attempt_not_the_client(steadyws_server: Server) -> None:
    """A headers callable that returns something that is not headers before a reconnect fails that attempt
    (logged); the schedule goes on and the next good answer reconnects."""
    answers: list[object] = [[("X-Token", "first")], 42, [("Host", "evil")], [("X-Token", "good")]]

    def headers() -> object:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    ws = steadyws.connect(
        steadyws_server.url, headers=headers, reconnect=steadyws.Backoff(min=0.05, max=0.05, jitter=False)
    )
    try:
        wait_until(lambda: steadyws_server.counts()["live"] == 1)
        steadyws_server.reset()
        wait_until(lambda: ws.stats()["reconnects"] == 1, what="a reconnect with good headers")
        assert ws.state == "open" and answers == [[("X-Token", "good")]]
    finally:
        ws.close()
