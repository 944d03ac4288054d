"""Issue 9, callbacks: lifecycle callbacks run when the event happens (on one process-wide
thread, or on the loop), on_open gates the sends of a new connection, every callback gets
the object the user holds, and `async def` callbacks are awaited in order."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import steadyws
from promise_support import PromiseServer, async_wait_until, wait_until
from servers import tagged
from steadyws.testing import Server

CALLBACK_THREAD = "steadyws-callbacks"


def fast_reconnect() -> steadyws.Backoff:
    return steadyws.Backoff(min=0.05, max=0.1, jitter=False)


@pytest.fixture(scope="module")
def promise_server() -> Iterator[PromiseServer]:
    server = PromiseServer()
    yield server
    server.close()


# -- row 6: lifecycle callbacks run when the event happens ----------------------------


def test_threaded_lifecycle_callbacks_run_without_recv(steadyws_server: Server) -> None:
    """Nobody calls recv: a server reset still runs on_disconnect, on_reconnect_attempt and on_open
    (whose resubscribe reaches the server), close() runs on_close once before it returns, and every
    callback runs on the one "steadyws-callbacks" thread."""
    calls: list[tuple[str, str]] = []

    def note(name: str) -> None:
        calls.append((name, threading.current_thread().name))

    def on_open(ws: steadyws.WebSocket) -> None:
        note("open")
        ws.send("subscribe")

    def names() -> list[str]:
        return [name for name, _ in calls]

    ws = steadyws.connect(
        steadyws_server.url,
        reconnect=fast_reconnect(),
        on_open=on_open,
        on_disconnect=lambda ws, error: note("disconnect"),
        on_reconnect_attempt=lambda ws, attempt, delay: note("attempt"),
        on_close=lambda ws, code, reason: note("close"),
    )
    try:
        steadyws_server.expect(lambda m: m == "subscribe")
        steadyws_server.reset()
        wait_until(lambda: "disconnect" in names(), what="on_disconnect after a server reset (no recv running)")
        wait_until(lambda: "attempt" in names(), what="on_reconnect_attempt after a server reset (no recv running)")
        wait_until(lambda: names().count("open") >= 2, what="on_open after the reconnect (no recv running)")
        steadyws_server.expect(lambda m: m == "subscribe")  # the resubscribe reached the server
    finally:
        ws.close()
    assert names().count("close") == 1, f"on_close had not run when close() returned: {names()}"
    assert ws.wait_closed(5)
    time.sleep(0.2)  # give a second on_close (the bug) time to show
    assert names().count("close") == 1, names()
    assert names()[:2] == ["open", "disconnect"] and names()[-2:] == ["open", "close"], names()
    assert {thread for _, thread in calls} == {CALLBACK_THREAD}, calls


def test_callbacks_of_many_connections_share_one_thread(steadyws_server: Server) -> None:
    """20 connections with callbacks (on_message included) add at most one Python thread, and every
    on_message runs on "steadyws-callbacks" with the connection it belongs to."""
    before = threading.active_count()
    got: list[tuple[int, str]] = []

    def on_message(ws: steadyws.WebSocket, message: str | bytes) -> None:
        got.append((id(ws), threading.current_thread().name))

    conns: list[steadyws.WebSocket] = []
    try:
        for _ in range(20):
            conns.append(
                steadyws.connect(
                    steadyws_server.url,
                    reconnect=False,
                    on_open=lambda ws: None,
                    on_message=on_message,  # type: ignore[arg-type]
                    on_close=lambda ws, code, reason: None,
                )
            )
        added = threading.active_count() - before
        assert added <= 1, f"20 connections with callbacks added {added} Python threads"
        wait_until(lambda: steadyws_server.counts()["live"] == 20, what="20 live connections")
        steadyws_server.send("tick")
        wait_until(lambda: len(got) == 20, what="on_message on all 20 connections")
    finally:
        for ws in conns:
            ws.close()
    assert {ident for ident, _ in got} == {id(ws) for ws in conns}
    assert {thread for _, thread in got} == {CALLBACK_THREAD}


def test_aio_lifecycle_callbacks_run_without_recv(steadyws_server: Server) -> None:
    """asyncio, nobody awaiting recv: a server reset runs on_disconnect, on_reconnect_attempt and on_open
    (the resubscribe reaches the server) on the loop; close() runs on_close once."""
    calls: list[tuple[str, int]] = []

    def names() -> list[str]:
        return [name for name, _ in calls]

    def on_open(ws: steadyws.aio.WebSocket) -> None:
        calls.append(("open", threading.get_ident()))
        sent = ws.send("subscribe")  # a plain callback (async ones are row 9's test): schedule the send
        if inspect.isawaitable(sent):
            asyncio.ensure_future(sent)

    async def main() -> int:
        ws = await steadyws.aio.connect(
            steadyws_server.url,
            reconnect=fast_reconnect(),
            on_open=on_open,
            on_disconnect=lambda ws, error: calls.append(("disconnect", threading.get_ident())),
            on_reconnect_attempt=lambda ws, attempt, delay: calls.append(("attempt", threading.get_ident())),
            on_close=lambda ws, code, reason: calls.append(("close", threading.get_ident())),
        )
        try:
            await asyncio.to_thread(steadyws_server.expect, lambda m: m == "subscribe")
            await asyncio.to_thread(steadyws_server.reset)
            await async_wait_until(lambda: "disconnect" in names(), what="on_disconnect (no recv running)")
            await async_wait_until(lambda: "attempt" in names(), what="on_reconnect_attempt (no recv running)")
            await async_wait_until(lambda: names().count("open") >= 2, what="on_open after the reconnect")
            await asyncio.to_thread(steadyws_server.expect, lambda m: m == "subscribe")
        finally:
            await ws.close()
        await async_wait_until(lambda: "close" in names(), timeout=5, what="on_close after close()")
        await asyncio.sleep(0.2)  # give a second on_close (the bug) time to show
        return threading.get_ident()

    loop_thread = asyncio.run(asyncio.wait_for(main(), 60))
    assert names().count("close") == 1, names()
    assert {thread for _, thread in calls} == {loop_thread}, "a callback ran off the loop's thread"


# -- row 7: on_open gates the sends of a new connection -------------------------------


def test_on_open_messages_come_first_on_every_connection(promise_server: PromiseServer) -> None:
    """on_open sends "login", sleeps 0.2 s, sends "subscribe"; another thread sends "order" in a loop
    (NotConnected is expected); across 5 server resets, every server-side connection receives
    "login" then "subscribe" before anything else."""
    target = tagged("/sessions")
    stop = threading.Event()
    errors: list[BaseException] = []
    not_connected = 0

    def on_open(ws: steadyws.WebSocket) -> None:
        ws.send("login")
        time.sleep(0.2)
        ws.send("subscribe")

    ws = steadyws.connect(promise_server.url(target), reconnect=fast_reconnect(), on_open=on_open)

    def sender() -> None:
        nonlocal not_connected
        while not stop.is_set():
            try:
                ws.send("order")
            except steadyws.NotConnected:
                not_connected += 1
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            time.sleep(0.001)

    def reader() -> None:  # a consumer, as a real strategy has one
        while not stop.is_set():
            try:
                ws.recv(timeout=0.1)
            except TimeoutError:
                pass
            except steadyws.ConnectionClosed:
                return

    threads = [threading.Thread(target=sender, daemon=True), threading.Thread(target=reader, daemon=True)]
    for thread in threads:
        thread.start()

    def subscribed(count: int) -> bool:
        sessions = promise_server.sessions(target)
        return len(sessions) == count and "subscribe" in sessions[-1].distinct

    try:
        for connections in range(1, 7):
            wait_until(lambda n=connections: subscribed(n), what=f"connection {connections} subscribed")
            if connections < 6:
                time.sleep(0.05)  # let a few orders through on this connection
                promise_server.reset_sessions()
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        ws.close()
    sessions = promise_server.sessions(target)
    firsts = [s.messages[:2] for s in sessions]
    assert firsts == [["login", "subscribe"]] * 6, f"the first two messages of each connection: {firsts}"
    assert not errors, f"send raised something other than NotConnected: {errors[:3]!r}"
    assert sum(s.count for s in sessions) > 6 * 2, "the order thread never got a message through"
    assert not_connected > 0, "no send was refused while a connection was logging in"


# -- row 8: on_message(ws, message) ---------------------------------------------------


def test_on_message_tells_connections_apart(steadyws_server: Server) -> None:
    """on_message(ws, message): ws is the WebSocket the user holds, so one handler shared by two
    connections knows where each message came from."""
    got: list[tuple[Any, str | bytes]] = []

    def handler(ws: steadyws.WebSocket, message: str | bytes) -> None:
        got.append((ws, message))

    a = steadyws.connect(steadyws_server.url, reconnect=False, on_message=handler)  # type: ignore[arg-type]
    try:
        wait_until(lambda: steadyws_server.counts()["live"] == 1, what="a registered")
        b = steadyws.connect(steadyws_server.url, reconnect=False, on_message=handler)  # type: ignore[arg-type]
        try:
            wait_until(lambda: steadyws_server.counts()["live"] == 2, what="b registered")
            first, second = steadyws_server.clients
            first.send("for a")
            second.send("for b")
            wait_until(lambda: len(got) == 2, what="both messages handled")
        finally:
            b.close()
    finally:
        a.close()
    by_message = {message: ws for ws, message in got}
    assert by_message["for a"] is a and by_message["for b"] is b


def test_aio_on_message_gets_the_aio_websocket(steadyws_server: Server) -> None:
    """Under asyncio, on_message(ws, message) is allowed and ws is the aio.WebSocket the user holds."""
    got: list[tuple[Any, str | bytes]] = []

    async def main() -> tuple[Any, Any]:
        def handler(ws: Any, message: str | bytes) -> None:
            got.append((ws, message))

        a = await steadyws.aio.connect(steadyws_server.url, reconnect=False, on_message=handler)
        await async_wait_until(lambda: steadyws_server.counts()["live"] == 1, what="a registered")
        b = await steadyws.aio.connect(steadyws_server.url, reconnect=False, on_message=handler)
        await async_wait_until(lambda: steadyws_server.counts()["live"] == 2, what="b registered")
        first, second = steadyws_server.clients
        first.send("for a")
        second.send("for b")
        await async_wait_until(lambda: len(got) == 2, what="both messages handled")
        await a.close()
        await b.close()
        return a, b

    a, b = asyncio.run(asyncio.wait_for(main(), 30))
    by_message = {message: ws for ws, message in got}
    assert by_message["for a"] is a and by_message["for b"] is b
    assert isinstance(a, steadyws.aio.WebSocket)


# -- row 9: async def callbacks are awaited, in order ---------------------------------


def test_async_callbacks_are_awaited_in_order(steadyws_server: Server) -> None:
    """asyncio: `async def` callbacks (with awaits inside) are awaited one after the other -- the next
    event's callback starts only after the previous one returned --, they get the aio.WebSocket the
    user holds, and no "coroutine was never awaited" RuntimeWarning is left."""
    log: list[tuple[str, str]] = []
    holders: list[Any] = []

    def entered(name: str, ws: Any) -> None:
        log.append((name, "enter"))
        holders.append(ws)

    async def on_open(ws: Any) -> None:
        entered("open", ws)
        await asyncio.sleep(0.1)
        await ws.send("subscribe")
        log.append(("open", "exit"))

    async def on_disconnect(ws: Any, error: BaseException) -> None:
        entered("disconnect", ws)
        await asyncio.sleep(0.2)  # the reconnect's on_open must wait for this
        log.append(("disconnect", "exit"))

    async def on_reconnect_attempt(ws: Any, attempt: int, delay: float) -> None:
        entered("attempt", ws)
        await asyncio.sleep(0.05)
        log.append(("attempt", "exit"))

    async def on_close(ws: Any, code: int, reason: str) -> None:
        entered("close", ws)
        await asyncio.sleep(0.05)
        log.append(("close", "exit"))

    def exits(name: str) -> int:
        return log.count((name, "exit"))

    async def main() -> Any:
        ws = await steadyws.aio.connect(
            steadyws_server.url,
            reconnect=fast_reconnect(),
            on_open=on_open,
            on_disconnect=on_disconnect,
            on_reconnect_attempt=on_reconnect_attempt,
            on_close=on_close,
        )
        try:
            await async_wait_until(lambda: exits("open") == 1, what="the first on_open awaited to its end")
            await asyncio.to_thread(steadyws_server.expect, lambda m: m == "subscribe")
            await asyncio.to_thread(steadyws_server.reset)
            await async_wait_until(lambda: exits("open") == 2, what="on_open awaited after the reconnect")
            await asyncio.to_thread(steadyws_server.expect, lambda m: m == "subscribe")
        finally:
            await ws.close()
        await async_wait_until(lambda: exits("close") == 1, timeout=5, what="on_close awaited")
        return ws

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ws = asyncio.run(asyncio.wait_for(main(), 30))
        gc.collect()
    never_awaited = [w for w in caught if issubclass(w.category, RuntimeWarning) and "never awaited" in str(w.message)]
    assert not never_awaited, [str(w.message) for w in never_awaited]
    pairs = [log[i : i + 2] for i in range(0, len(log), 2)]
    assert all(p == [(p[0][0], "enter"), (p[0][0], "exit")] for p in pairs), f"callbacks overlapped: {log}"
    order = [p[0][0] for p in pairs]
    assert order[:2] == ["open", "disconnect"] and order[-2:] == ["open", "close"], order
    assert set(order[2:-2]) == {"attempt"}, order
    assert all(holder is ws for holder in holders), "a callback got another object than the aio.WebSocket"
