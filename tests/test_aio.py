"""steadyws.aio on the default asyncio loop and on uvloop: the same engine,
waited on through its wakeup fd, with no thread per connection."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import steadyws
import uvloop
from servers import EchoServer, MisbehavingServer, tagged


def loop_time() -> float:
    return asyncio.get_running_loop().time()


LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Runs a coroutine to completion on the loop under test."""

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        loop = LOOPS[request.param]()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, 30))
        finally:
            loop.close()

    return runner


def test_roundtrip_and_iteration(run: Callable[..., Any], ws_server: EchoServer) -> None:
    """async with / send / recv / recv_batch / async for, with str and bytes."""

    async def main() -> list[str | bytes]:
        async with steadyws.aio.connect(ws_server.url("/echo"), reconnect=False) as ws:
            await ws.send("héllo")
            assert await ws.recv(timeout=5) == "héllo"
            await ws.send(b"\x00\x01")
            assert await ws.recv(timeout=5) == b"\x00\x01"
            await ws.send_batch(["a", "b", "c"])
            got: list[str | bytes] = []
            while len(got) < 3:
                got += await ws.recv_batch(timeout=5)
            assert ws.state == "open"
        assert ws.state == "closed"
        async with steadyws.aio.connect(ws_server.url("/flood?n=50&size=20"), reconnect=False) as ws:
            return [m async for m in ws]  # ends quietly on the server's normal close

    messages = run(main())
    assert len(messages) == 50 and str(messages[-1]).startswith("msg-49:")


def test_recv_timeout_and_close_wake_a_waiter(run: Callable[..., Any], ws_server: EchoServer) -> None:
    """recv(timeout) raises TimeoutError; close() makes a pending recv raise ConnectionClosedOK."""

    async def main() -> None:
        ws = await steadyws.aio.connect(ws_server.url("/echo"), reconnect=False)
        with pytest.raises(TimeoutError):
            await ws.recv(timeout=0.2)
        assert await ws.recv_batch(timeout=0.1) == []
        waiter = asyncio.ensure_future(ws.recv())
        await asyncio.sleep(0.1)
        await ws.close()
        with pytest.raises(steadyws.ConnectionClosedOK):
            await waiter
        assert ws.state == "closed"

    run(main())


def test_no_thread_per_connection(run: Callable[..., Any], external_echo: str) -> None:
    """50 asyncio connections add no Python thread: the loop waits on the engines' eventfds."""

    async def main() -> int:
        before = threading.active_count()
        conns = [await steadyws.aio.connect(external_echo, reconnect=False) for _ in range(50)]
        for i, ws in enumerate(conns):
            await ws.send(f"n{i}")
        answers = await asyncio.gather(*(ws.recv(timeout=5) for ws in conns))
        assert answers == [f"n{i}" for i in range(50)]
        during = threading.active_count()
        for ws in conns:
            await ws.close()
        return during - before

    assert run(main()) == 0


def test_errors_and_reconnect_events(run: Callable[..., Any], bad_server: MisbehavingServer) -> None:
    """Handshake errors raise from connect; reconnect events reach the callbacks and the stream in order."""
    calls: list[str] = []

    async def main() -> list[object]:
        with pytest.raises(steadyws.HandshakeError) as err:
            await steadyws.aio.connect(bad_server.url("/status/403"))
        assert err.value.status == 403
        ws = await steadyws.aio.connect(
            bad_server.url(tagged("/accept-then?then=drop")),
            reconnect=steadyws.Backoff(min=0.05, max=5, factor=100, jitter=False),  # attempt 2 waits 5 s
            on_open=lambda ws: calls.append("open"),
            on_reconnect_attempt=lambda ws, n, delay: calls.append(f"attempt {n}"),
        )
        seen: list[object] = []
        while not any(isinstance(e, steadyws.Reconnecting) and e.attempt == 2 for e in seen):
            seen += await ws.recv_events(timeout=5)
        with pytest.raises(steadyws.NotConnected):
            await ws.send("x")
        started = loop_time()
        await ws.close()  # ends the 5 s wait at once
        assert loop_time() - started < 1
        return seen

    seen = run(main())
    kinds = [type(e).__name__ for e in seen]
    assert kinds == ["Disconnected", "Reconnecting", "Opened", "Disconnected", "Reconnecting"]
    assert calls == ["open", "attempt 1", "open", "attempt 2"]


def test_bad_options_are_refused_before_io() -> None:
    """The asyncio connect takes exactly the threaded client's options, checked when it is called."""
    with pytest.raises(TypeError, match="no_such"):
        steadyws.aio.connect("ws://127.0.0.1:1/", no_such=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="max_queue"):
        steadyws.aio.connect("ws://127.0.0.1:1/", max_queue=0)
    with pytest.raises(TypeError, match="on_open"):
        steadyws.aio.connect("ws://127.0.0.1:1/", on_open=42)  # type: ignore[typeddict-item]
