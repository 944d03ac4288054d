"""Survive the network: real faults injected by toxiproxy and by our own server.

Intervals are short (tenths of a second) so the suite stays quick; every time
bound asserted is behaviour (detection, spacing, close), with margins for a
loaded machine, never speed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import steadyws
from helpers import ThreadCounts
from servers import EchoServer, MisbehavingServer, tagged
from toxiproxy import Proxy, Toxiproxy

FAST = steadyws.Backoff(min=0.05, max=0.2, factor=2.0, jitter=False)
SLACK = 0.35  # seconds of scheduling noise allowed on a loaded 2-core machine


@pytest.fixture(scope="module")
def toxi() -> Iterator[Toxiproxy]:
    server = Toxiproxy()
    yield server
    server.close()


@pytest.fixture
def proxy(toxi: Toxiproxy, ws_server: EchoServer) -> Iterator[Proxy]:
    upstream = ws_server.url("/").split("//")[1].split("/")[0]
    p = toxi.proxy(uuid.uuid4().hex, upstream)
    yield p
    p.delete()


Stamped = tuple[float, Any]


def watch(ws: steadyws.WebSocket, until: Callable[[Any], bool], timeout: float) -> list[Stamped]:
    """Read the event stream until an item matches ``until``; return every
    item with the time it was read. Fails after ``timeout``."""
    seen: list[Stamped] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in ws.recv_events(timeout=0.05):
            seen.append((time.monotonic(), item))
            if until(item):
                return seen
    raise AssertionError(f"not seen within {timeout} s; saw {[i for _, i in seen]}")


def of(kind: type) -> Callable[[Any], bool]:
    return lambda item: isinstance(item, kind)


def echo_works(ws: steadyws.WebSocket, text: str = "still here") -> None:
    ws.send(text)
    watch(ws, lambda item: item == text, 5)


def test_reset_while_sending_then_recover(proxy: Proxy) -> None:
    """reset_peer mid-stream while sending in a loop: an exception, the interpreter lives, reconnect, echo works."""
    with steadyws.connect(proxy.url("/echo"), reconnect=FAST) as ws:
        proxy.add("reset_peer", timeout=0)
        error: Exception | None = None
        deadline = time.monotonic() + 5
        while error is None and time.monotonic() < deadline:
            try:
                ws.send("x" * 100)
                ws.recv_events(timeout=0)
            except (steadyws.NotConnected, steadyws.ConnectionClosedError) as exc:
                error = exc
        assert error is not None, "sending into a reset connection never failed"
        proxy.remove("reset_peer_downstream")
        watch(ws, of(steadyws.Opened), 10)
        echo_works(ws)


def test_blackhole_is_detected_by_the_heartbeat(proxy: Proxy) -> None:
    """Nothing passes, no FIN, no RST: the dead peer is found within ping_interval + ping_timeout (+10%)."""
    interval = timeout = 0.5
    with steadyws.connect(
        proxy.url("/echo"), reconnect=FAST, ping_interval=interval, ping_timeout=timeout, open_timeout=1
    ) as ws:
        echo_works(ws)
        start = time.monotonic()
        proxy.add("timeout", stream="downstream", timeout=0)
        seen = watch(ws, of(steadyws.Disconnected), 10)
        detected, event = seen[-1]
        assert "ping timeout" in event.detail
        assert detected - start <= 1.1 * (interval + timeout) + SLACK
        proxy.remove("timeout_downstream")
        watch(ws, of(steadyws.Opened), 10)
        echo_works(ws)
        assert ws.stats()["pings_after_death"] == 0


def test_latency_above_ping_timeout_then_normal(proxy: Proxy) -> None:
    """Latency beyond ping_timeout gets the connection declared dead; once it is gone, the client recovers."""
    with steadyws.connect(proxy.url("/echo"), reconnect=FAST, ping_interval=0.3, ping_timeout=0.3) as ws:
        echo_works(ws)
        proxy.add("latency", stream="downstream", latency=1500)
        seen = watch(ws, of(steadyws.Disconnected), 10)
        assert "ping timeout" in seen[-1][1].detail
        proxy.remove("latency_downstream")
        watch(ws, of(steadyws.Opened), 10)
        echo_works(ws)


def test_server_down_for_ten_seconds(proxy: Proxy) -> None:
    """Server down 10 s: attempts follow the schedule (with jitter), then it reconnects within max of the return."""
    policy = steadyws.Backoff(min=0.2, max=2.0, factor=2.0, jitter=True)
    with steadyws.connect(proxy.url("/echo"), reconnect=policy, healthy_after=1.0) as ws:
        echo_works(ws)
        time.sleep(1.2)  # healthy: the first retry will be immediate
        proxy.enabled(False)
        down_at = time.monotonic()
        seen = watch(ws, lambda item: time.monotonic() - down_at > 10, 12)
        proxy.enabled(True)
        back_at = time.monotonic()
        seen += watch(ws, of(steadyws.Opened), policy.max + 5)
    attempts = [(t, e) for t, e in seen if isinstance(e, steadyws.Reconnecting) and t < back_at]
    assert [e.attempt for _, e in attempts] == list(range(1, len(attempts) + 1))
    assert attempts[0][1].delay == 0, "the first retry after a healthy connection is immediate"
    for n, (_, e) in enumerate(attempts[1:]):
        assert policy.min <= e.delay <= min(policy.max, policy.min * policy.factor**n) + 1e-3
    for (t0, e0), (t1, _) in zip(attempts, attempts[1:], strict=False):
        assert t1 - t0 >= e0.delay - 0.05, "an attempt came before its delay"
    assert 5 <= len(attempts) <= 15, "attempts not spaced per the schedule"
    assert seen[-1][0] - back_at <= policy.max + SLACK + 1.0


def test_accept_then_drop_forever_is_no_tight_loop(bad_server: MisbehavingServer) -> None:
    """A server that accepts and drops at once, forever: attempts stay spaced per the schedule."""
    target = tagged("/accept-then?then=drop")
    with steadyws.connect(bad_server.url(target), reconnect=FAST) as ws:
        seen = watch(ws, lambda item: isinstance(item, steadyws.Reconnecting) and item.attempt == 6, 10)
    delays = [e.delay for _, e in seen if isinstance(e, steadyws.Reconnecting)]
    assert delays == [0.05, 0.1, 0.2, 0.2, 0.2, 0.2]
    stamps = [e.at for e in bad_server.requests(target)]
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert all(g >= d - 0.02 for g, d in zip(gaps, delays, strict=False)), (gaps, delays)


def test_handshake_403_is_fatal(bad_server: MisbehavingServer) -> None:
    """After a connection is lost, a 403 on reconnect ends the client: HandshakeError(403), no retry."""
    target = tagged("/accept-then?accepts=1&then=403")
    ws = steadyws.connect(bad_server.url(target), reconnect=FAST)
    with pytest.raises(steadyws.HandshakeError) as err:
        while True:
            ws.recv(timeout=5)
    assert err.value.status == 403
    assert ws.state == "closed"
    time.sleep(0.3)
    assert len(bad_server.requests(target)) == 2


def test_handshake_503_with_retry_after(bad_server: MisbehavingServer) -> None:
    """A 503 with Retry-After: 2 makes the next attempt wait at least 2 s."""
    target = tagged("/accept-then?accepts=1&then=503&retry_after=2")
    with steadyws.connect(bad_server.url(target), reconnect=FAST) as ws:
        seen = watch(ws, lambda item: isinstance(item, steadyws.Reconnecting) and item.attempt == 3, 10)
    assert [e.delay for _, e in seen if isinstance(e, steadyws.Reconnecting)][1:] == [2.0, 2.0]
    stamps = [e.at for e in bad_server.requests(target)]
    assert stamps[2] - stamps[1] >= 2.0


def test_slow_handshake_beyond_open_timeout(bad_server: MisbehavingServer) -> None:
    """A handshake slower than open_timeout fails as a timeout, and the retries follow the schedule."""
    target = tagged("/accept-then?accepts=1&then=silent")
    with steadyws.connect(bad_server.url(target), reconnect=FAST, open_timeout=0.3) as ws:
        seen = watch(ws, lambda item: isinstance(item, steadyws.Reconnecting) and item.attempt == 3, 10)
    attempts = [e for _, e in seen if isinstance(e, steadyws.Reconnecting)]
    assert [e.delay for e in attempts] == [0.05, 0.1, 0.2]
    assert all("timeout" in e.detail or "deadline" in e.detail for e in attempts[1:]), attempts


def test_close_during_a_long_reconnect_wait(bad_server: MisbehavingServer) -> None:
    """close() while a 30 s reconnect wait is pending returns at once, and nothing is dialled afterwards."""
    target = tagged("/accept-then?then=drop")
    ws = steadyws.connect(bad_server.url(target), reconnect=steadyws.Backoff(min=30, max=30))
    watch(ws, of(steadyws.Reconnecting), 5)
    start = time.monotonic()
    ws.close()
    took = time.monotonic() - start
    assert took < 5, took  # at once, not after the 30 s wait; wide for this VM's clock jumps
    assert ws.state == "closed"
    time.sleep(0.5)
    assert len(bad_server.requests(target)) == 1


def test_send_while_reconnecting_raises_not_connected(bad_server: MisbehavingServer) -> None:
    """While reconnecting, send raises NotConnected at once: an order is never queued for later."""
    target = tagged("/accept-then?then=drop")
    with steadyws.connect(bad_server.url(target), reconnect=steadyws.Backoff(min=30, max=30)) as ws:
        watch(ws, of(steadyws.Reconnecting), 5)
        assert ws.state == "reconnecting"
        start = time.monotonic()
        with pytest.raises(steadyws.NotConnected):
            ws.send("buy 1 BTC")
        assert time.monotonic() - start < 0.5


def test_max_attempts_raises_the_last_error(proxy: Proxy) -> None:
    """After max_attempts failed attempts the client is closed and the last error reaches the reader."""
    policy = steadyws.Backoff(min=0.05, max=0.05, max_attempts=3)
    ws = steadyws.connect(proxy.url("/echo"), reconnect=policy)
    proxy.enabled(False)
    with pytest.raises(steadyws.ConnectionRefused):
        while True:
            ws.recv(timeout=5)
    assert ws.state == "closed"
    assert ws.stats()["attempt"] == 3


def test_events_and_callbacks_arrive_in_order(bad_server: MisbehavingServer) -> None:
    """Disconnected, attempt n with its delay, and Opened reach the callbacks and the stream in the same order."""
    calls: list[tuple[Any, ...]] = []
    target = tagged("/accept-then?then=drop")
    with steadyws.connect(
        bad_server.url(target),
        reconnect=FAST,
        on_open=lambda ws: calls.append(("open",)),
        on_disconnect=lambda ws, err: calls.append(("disconnect", type(err).__name__)),
        on_reconnect_attempt=lambda ws, n, delay: calls.append(("attempt", n, delay)),
        on_close=lambda ws, code, reason: calls.append(("close", code)),
    ) as ws:
        seen = watch(ws, lambda item: isinstance(item, steadyws.Reconnecting) and item.attempt == 2, 5)
    stream = [type(e).__name__ for _, e in seen]
    assert stream == ["Disconnected", "Reconnecting", "Opened", "Disconnected", "Reconnecting"]
    assert calls == [
        ("open",),
        ("disconnect", "ConnectionClosedError"),
        ("attempt", 1, 0.05),
        ("open",),
        ("disconnect", "ConnectionClosedError"),
        ("attempt", 2, 0.1),
        ("close", 1000),
    ]


def test_headers_callable_is_evaluated_before_every_attempt(bad_server: MisbehavingServer) -> None:
    """A headers callable gives fresh headers (auth signatures) to every attempt."""
    counter = iter(range(1, 1000))
    target = tagged("/accept-then?then=drop")
    with steadyws.connect(
        bad_server.url(target), headers=lambda: {"X-Signature": f"sig-{next(counter)}"}, reconnect=FAST
    ) as ws:
        watch(ws, lambda item: isinstance(item, steadyws.Reconnecting) and item.attempt == 3, 5)
        bad_server.wait_for(lambda e: len(bad_server.requests(target)) >= 4)
    sent = [dict(e.headers)["x-signature"] for e in bad_server.requests(target)]
    assert sent[:4] == ["sig-1", "sig-2", "sig-3", "sig-4"]


def test_backoff_can_change_on_a_live_client(bad_server: MisbehavingServer) -> None:
    """set_reconnect changes the schedule from the next attempt on."""
    target = tagged("/accept-then?then=drop")
    with steadyws.connect(bad_server.url(target), reconnect=FAST) as ws:
        watch(ws, of(steadyws.Reconnecting), 5)
        ws.set_reconnect(steadyws.Backoff(min=0.07, max=0.07, jitter=False))
        seen = watch(ws, of(steadyws.Reconnecting), 5)
        assert seen[-1][1].delay == 0.07
        with pytest.raises(ValueError):
            steadyws.Backoff(min=1, max=0.5)


RECONNECTS = 150


def test_many_forced_reconnects_leak_nothing(
    ws_server: EchoServer,
    fd_count: Callable[[], int],
    thread_count: Callable[[], ThreadCounts],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """150 reconnects at the fastest schedule allowed (the server closes with 1001 each time):
    goroutines, threads and fds return to baseline, no ping ever hits a dead connection, and no
    warning is logged for these benign closes."""
    caplog.set_level(logging.DEBUG, logger="steadyws")
    fast = steadyws.Backoff(min=0.05, max=0.05, jitter=False)

    def measure() -> tuple[int, int, int]:
        return steadyws.runtime_stats()["goroutines"], thread_count().os, fd_count()

    time.sleep(0.2)
    base = measure()
    opened = 0
    with steadyws.connect(ws_server.url("/close?code=1001"), reconnect=fast, ping_interval=0.01, ping_timeout=1) as ws:
        while opened < RECONNECTS:
            opened += sum(isinstance(e, steadyws.Opened) for e in ws.recv_events(timeout=1))
        stats = ws.stats()
    assert stats["reconnects"] >= RECONNECTS - 1
    assert stats["pings_after_death"] == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = measure()
        if now[0] <= base[0] + 2 and now[1] <= base[1] + 2 and now[2] <= base[2] + 2:
            break
        time.sleep(0.1)
    assert now[0] <= base[0] + 2 and now[1] <= base[1] + 2 and now[2] <= base[2] + 2, (base, now)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_close_from_inside_a_callback(bad_server: MisbehavingServer) -> None:
    """close() called from on_disconnect ends the client; the receiving loop ends quietly, no deadlock."""
    target = tagged("/accept-then?then=drop")
    ws = steadyws.connect(bad_server.url(target), reconnect=FAST, on_disconnect=lambda ws, err: ws.close())
    received = list(ws)  # ends with ConnectionClosedOK, swallowed by the iterator
    assert received == []
    # A close() from a callback does not wait (the callback thread cannot wait for itself); the
    # iteration ends once the queue refuses more, which can be a moment before the engine's end.
    assert ws.wait_closed(timeout=10)
    assert ws.state == "closed" and ws.close_code == 1000
    time.sleep(0.3)
    assert len(bad_server.requests(target)) == 1, "dialled again after close()"
