"""Flow control against a real flooding server: overflow policies, bounds,
warnings, a slow consumer that must not look like a dead server, callbacks,
and many connections."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
import steadyws
from helpers import ThreadCounts
from servers import EchoServer

TOTAL, MAX = 500, 10


def index_of(message: object) -> int:
    return int(str(message).split(":")[0].split("-")[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def drain(ws: steadyws.WebSocket) -> list[object]:
    """Every item of the event stream until it is quiet for 0.3 s."""
    items: list[object] = []
    while more := ws.recv_events(timeout=0.3):
        items += more
    return items


def flood(ws_server: EchoServer, n: int = TOTAL, size: int = 50, then: str = "echo") -> str:
    """The flood starts when the client sends "go": connect() has returned by then."""
    return ws_server.url(f"/flood?n={n}&size={size}&then={then}&start=on_request")


def connect_flood(url: str, **options: object) -> steadyws.WebSocket:
    ws = steadyws.connect(url, reconnect=False, **options)  # type: ignore[arg-type]
    ws.send("go")
    return ws


@pytest.mark.parametrize(
    "policy,first",
    [("drop_oldest", TOTAL - MAX), ("drop_newest", 0)],
)
def test_drop_policies_keep_the_right_messages(ws_server: EchoServer, policy: str, first: int) -> None:
    """drop_oldest keeps the freshest messages, drop_newest the first ones; every drop is counted and warned of."""
    with connect_flood(flood(ws_server), max_queue=MAX, overflow=policy) as ws:
        wait_until(lambda: ws.stats()["messages_in"] >= TOTAL)
        events = drain(ws)
        stats = ws.stats()
    kept = [index_of(e) for e in events if isinstance(e, str)]
    assert kept == list(range(first, first + MAX))
    assert stats["dropped"] == TOTAL - MAX
    warnings = [e for e in events if isinstance(e, steadyws.QueueWarning)]
    assert any(w.kind == "drops" and w.count >= 1 for w in warnings)
    assert len(warnings) <= 3, "warnings are rate-limited"


def test_block_policy_loses_nothing(ws_server: EchoServer) -> None:
    """block (the default): the reader waits, TCP pushes back, every message arrives in order."""
    with connect_flood(flood(ws_server), max_queue=MAX) as ws:
        time.sleep(0.3)
        assert ws.stats()["queue_depth"] <= MAX
        got: list[int] = []
        while len(got) < TOTAL:
            got += [index_of(m) for m in ws.recv_batch(timeout=5)]
        stats = ws.stats()
    assert got == list(range(TOTAL))
    assert stats["dropped"] == 0 and stats["queue_high_water"] == MAX and stats["reader_blocked_ms"] > 0


def test_close_policy_fails_fast_and_reconnects(ws_server: EchoServer) -> None:
    """overflow="close": a full queue ends the connection with QueueOverflow (1008), then the reconnect policy runs."""
    with steadyws.connect(
        flood(ws_server), max_queue=MAX, overflow="close", reconnect=steadyws.Backoff(min=0.05, max=0.1)
    ) as ws:
        ws.send("go")
        time.sleep(0.3)
        deadline = time.monotonic() + 10
        seen: list[object] = []
        while not any(isinstance(e, steadyws.Reconnecting) for e in seen):
            assert time.monotonic() < deadline
            seen += ws.recv_events(timeout=0.1)
    lost = next(e for e in seen if isinstance(e, steadyws.Disconnected))
    assert lost.code == 1008 and lost.error == steadyws.ErrorCode.QUEUE_FULL


def test_close_policy_raises_queue_overflow(ws_server: EchoServer) -> None:
    """Without reconnect, the reader gets QueueOverflow once the queued messages are read."""
    with connect_flood(flood(ws_server), max_queue=MAX, overflow="close") as ws:
        time.sleep(0.3)
        with pytest.raises(steadyws.QueueOverflow) as err:
            while True:
                ws.recv(timeout=5)
    assert err.value.code == 1008


def test_queue_is_bounded_in_bytes_and_warns_at_high_water(ws_server: EchoServer) -> None:
    """max_queue_bytes bounds memory whatever the message count; passing 80% raises one warning."""
    with connect_flood(flood(ws_server, n=200, size=1000), max_queue=10_000, max_queue_bytes=20_000) as ws:
        time.sleep(0.3)
        stats = ws.stats()
        assert stats["queue_bytes"] <= 20_000 and stats["queue_depth"] <= 20
        events = drain(ws)
    warnings = [e for e in events if isinstance(e, steadyws.QueueWarning)]
    assert [w.kind for w in warnings] == ["high_water"]


def test_slow_consumer_is_not_a_dead_server(ws_server: EchoServer) -> None:
    """With the queue full and Python busy, heartbeats stay honest: no ping timeout, nothing lost."""
    with connect_flood(flood(ws_server, n=300), max_queue=1, ping_interval=0.1, ping_timeout=0.1) as ws:
        time.sleep(1.5)  # fifteen heartbeat periods without reading
        got: list[object] = []
        while len(got) < 300:
            got += [e for e in ws.recv_events(timeout=5)]
        assert not [e for e in got if isinstance(e, (steadyws.Disconnected, steadyws.Closed))]
        assert ws.state == "open"
        ws.send("still alive")
        assert ws.recv(timeout=5) == "still alive"


def test_close_does_not_hang_on_a_full_queue(ws_server: EchoServer) -> None:
    """close() with the reader blocked on a full queue completes within close_timeout."""
    ws = connect_flood(flood(ws_server, n=2000, size=1000), max_queue=2, close_timeout=1.0)
    time.sleep(0.3)
    start = time.monotonic()
    ws.close()
    assert time.monotonic() - start < 1.0 + 1.0
    assert ws.state == "closed"


def test_on_message_runs_in_order_on_one_thread(ws_server: EchoServer, caplog: pytest.LogCaptureFixture) -> None:
    """on_message gets every message in order on one dispatcher thread (never an engine thread);
    a raising callback is logged with its traceback and reported, and delivery goes on."""
    got: list[int] = []
    threads: set[str] = set()
    errors: list[BaseException] = []
    done = threading.Event()

    def on_message(ws: steadyws.WebSocket, message: str | bytes) -> None:
        threads.add(threading.current_thread().name)
        got.append(index_of(message))
        if len(got) == 3:
            raise ValueError("strategy bug")
        if len(got) == TOTAL:
            done.set()

    caplog.set_level(logging.ERROR, logger="steadyws")
    ws = connect_flood(flood(ws_server), on_message=on_message, on_callback_error=lambda ws, exc: errors.append(exc))
    try:
        assert done.wait(10)
        with pytest.raises(RuntimeError, match="on_message"):
            ws.recv(timeout=0)
    finally:
        ws.close()
    assert ws.wait_closed(5)
    assert got == list(range(TOTAL))
    assert threads == {"steadyws-callbacks"}
    assert [type(e) for e in errors] == [ValueError]
    assert "strategy bug" in caplog.text and "Traceback" in caplog.text


def test_send_batch_from_many_threads(ws_server: EchoServer) -> None:
    """send_batch from several threads at once: every message arrives whole, each batch in order."""
    with steadyws.connect(ws_server.url("/echo"), max_queue=2000, reconnect=False) as ws:

        def sender(t: int) -> None:
            for b in range(10):
                ws.send_batch([f"{t}:{b}:{i}" for i in range(20)] + [bytes([t, b])])

        workers = [threading.Thread(target=sender, args=(t,)) for t in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        got: list[str | bytes] = []
        while len(got) < 4 * 10 * 21:
            got += ws.recv_batch(timeout=5)
    texts = [m for m in got if isinstance(m, str)]
    assert len(texts) == 800 and sum(isinstance(m, bytes) for m in got) == 40
    for t in range(4):
        mine = [m for m in texts if m.startswith(f"{t}:")]
        assert mine == [f"{t}:{b}:{i}" for b in range(10) for i in range(20)]
    with pytest.raises(TypeError):
        ws.send_batch(["ok", 3])  # type: ignore[list-item]


def test_many_connections_cost_constant_goroutines_and_threads(
    external_echo: str, thread_count: Callable[[], ThreadCounts]
) -> None:
    """200 open connections with heartbeats: at most 2 goroutines each, and no thread per connection."""
    base_goroutines, base_threads = steadyws.runtime_stats()["goroutines"], thread_count().os
    conns = [steadyws.connect(external_echo, ping_interval=1, reconnect=False) for _ in range(200)]
    try:
        time.sleep(0.2)
        per_conn = (steadyws.runtime_stats()["goroutines"] - base_goroutines) / len(conns)
        grown = thread_count().os - base_threads
        conns[-1].send("hello")
        assert conns[-1].recv(timeout=5) == "hello"
    finally:
        for ws in conns:
            ws.close()
    assert per_conn <= 2.05, per_conn
    assert grown <= 16, f"{grown} more OS threads for 200 connections"
