"""steadyws.testing.Server, method by method, against the real client."""

from __future__ import annotations

import json
import threading
import time

import pytest
import steadyws
from helpers import Stopwatch
from steadyws.testing import Server


def fast(**options: object) -> dict[str, object]:
    """Client options that notice and recover from faults in well under a second."""
    base: dict[str, object] = {
        "reconnect": steadyws.Backoff(min=0.05, max=0.2, jitter=False),
        "ping_interval": 0.2,
        "ping_timeout": 0.3,
    }
    base.update(options)
    return base


def first_event(ws: steadyws.WebSocket, kind: type[object], timeout: float = 5.0) -> object:
    """The first lifecycle event of ``kind`` from ws.recv_events()."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in ws.recv_events(timeout=0.1):
            if isinstance(event, kind):
                return event
    raise AssertionError(f"no {kind.__name__} within {timeout}s")


def test_send_and_expect(steadyws_server: Server) -> None:
    """send() reaches every client; expect() finds what a client sent (here from on_open)."""
    subscribed = lambda ws: ws.send('{"op":"subscribe","channel":"trades"}')  # noqa: E731
    with (
        steadyws.connect(steadyws_server.url, on_open=subscribed) as ws,
        steadyws.connect(steadyws_server.url) as other,
    ):
        got = steadyws_server.expect(lambda m: "subscribe" in m, timeout=5)
        assert json.loads(got) == {"op": "subscribe", "channel": "trades"}
        steadyws_server.send('{"e":"trade","p":"101.5"}')
        steadyws_server.send(b"\x00\x01")
        assert ws.recv(timeout=5) == '{"e":"trade","p":"101.5"}' and ws.recv(timeout=5) == b"\x00\x01"
        assert other.recv(timeout=5) == '{"e":"trade","p":"101.5"}'
        ws.send(b"binary back")
        assert steadyws_server.expect(lambda m: m == b"binary back") == b"binary back"
        assert steadyws_server.received == ['{"op":"subscribe","channel":"trades"}', b"binary back"]


def test_expect_times_out_with_what_came(steadyws_server: Server) -> None:
    with steadyws.connect(steadyws_server.url) as ws:
        ws.send("hello")
        with Stopwatch() as clock, pytest.raises(AssertionError, match="hello"):
            steadyws_server.expect(lambda m: m == "never", timeout=0.3)
        assert 0.25 < clock.elapsed < 3


def test_clients_send_to_one(steadyws_server: Server) -> None:
    with steadyws.connect(steadyws_server.url) as a, steadyws.connect(steadyws_server.url) as b:
        first, second = steadyws_server.clients
        assert first.id < second.id
        second.send("only b")
        assert b.recv(timeout=5) == "only b"
        with pytest.raises(TimeoutError):
            a.recv(timeout=0.2)


def test_reset_makes_the_client_reconnect(steadyws_server: Server) -> None:
    with steadyws.connect(steadyws_server.url, **fast()) as ws:  # type: ignore[arg-type]
        steadyws_server.reset()
        lost = first_event(ws, steadyws.Disconnected)
        assert isinstance(lost, steadyws.Disconnected) and lost.error == steadyws.ErrorCode.RESET
        first_event(ws, steadyws.Opened)
        assert ws.stats()["reconnects"] == 1
        assert steadyws_server.counts()["handshakes"] == 2


def test_blackhole_is_detected_within_the_ping_timeout(steadyws_server: Server) -> None:
    """A silent server is declared dead after ping_interval + ping_timeout, then the client reconnects."""
    with steadyws.connect(steadyws_server.url, **fast()) as ws:  # type: ignore[arg-type]
        steadyws_server.blackhole(3.0)
        with Stopwatch() as clock:
            lost = first_event(ws, steadyws.Disconnected)
        assert isinstance(lost, steadyws.Disconnected) and lost.error == steadyws.ErrorCode.TIMEOUT
        assert 0.2 < clock.elapsed < 2.5  # due after 0.2 + 0.3 s; the margin is for a loaded machine
        first_event(ws, steadyws.Opened)  # once the black hole ends
        ws.send("after the black hole")
        assert steadyws_server.expect(lambda m: m == "after the black hole")


def test_refuse_then_accept(steadyws_server: Server) -> None:
    steadyws_server.refuse(503, retry_after=1, times=1)
    with pytest.raises(steadyws.HandshakeError) as err:
        steadyws.connect(steadyws_server.url)
    assert err.value.status == 503
    with steadyws.connect(steadyws_server.url) as ws:  # times=1: served again
        assert ws.state == "open"
    steadyws_server.refuse(403)
    for _ in range(2):
        with pytest.raises(steadyws.HandshakeError, match="403"):
            steadyws.connect(steadyws_server.url)
    steadyws_server.accept()
    with steadyws.connect(steadyws_server.url):
        pass
    assert steadyws_server.counts()["refused"] == 3


def test_refuse_with_retry_after_paces_the_reconnect(steadyws_server: Server) -> None:
    """A 503 with Retry-After: 1 holds the next attempt back about a second."""
    with steadyws.connect(steadyws_server.url, **fast()) as ws:  # type: ignore[arg-type]
        steadyws_server.refuse(503, retry_after=1, times=1)
        steadyws_server.reset()
        with Stopwatch() as clock:
            while ws.stats()["connects"] < 2 and clock.elapsed < 10:
                ws.recv_events(timeout=0.1)
        assert 0.9 < clock.elapsed < 5


def test_flood(steadyws_server: Server) -> None:
    with steadyws.connect(steadyws_server.url, max_queue=64) as ws:
        steadyws_server.flood(n=20_000, size=200)
        got = [ws.recv(timeout=5) for _ in range(20_000)]
        assert all(isinstance(m, str) and len(m) == 200 for m in got)
        assert [json.loads(m)["seq"] for m in got] == list(range(20_000))  # type: ignore[arg-type]
        assert ws.stats()["queue_high_water"] == 64


def test_close_with_code(steadyws_server: Server) -> None:
    with steadyws.connect(steadyws_server.url, reconnect=False) as ws:
        steadyws_server.close(code=1001, reason="going away")
        with pytest.raises(steadyws.ConnectionClosedOK) as err:
            ws.recv(timeout=5)
        assert (err.value.code, err.value.reason) == (1001, "going away")


def test_methods_are_safe_from_many_threads(steadyws_server: Server) -> None:
    with steadyws.connect(steadyws_server.url, **fast()) as ws:  # type: ignore[arg-type]
        errors: list[BaseException] = []

        def hammer() -> None:
            try:
                for i in range(50):
                    steadyws_server.send(f"m{i}")
                    steadyws_server.counts()
                    _ = steadyws_server.clients, steadyws_server.received
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not errors
        assert len([ws.recv(timeout=5) for _ in range(200)]) == 200


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: s.send(3), TypeError, "message must be str or bytes-like"),
        (lambda s: s.blackhole(-1), ValueError, "seconds"),
        (lambda s: s.blackhole("1"), TypeError, "seconds"),
        (lambda s: s.refuse(101), ValueError, "status"),
        (lambda s: s.refuse(503, retry_after=-1), ValueError, "retry_after"),
        (lambda s: s.refuse(503, times=0), ValueError, "times"),
        (lambda s: s.flood(-1), ValueError, "n must be"),
        (lambda s: s.close(1005), ValueError, "1005"),
        (lambda s: s.close(1000, "x" * 124), ValueError, "reason"),
    ],
)
def test_bad_arguments(steadyws_server: Server, call: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call(steadyws_server)  # type: ignore[operator]


def test_stop_never_hangs_and_leaks_nothing() -> None:
    """Stopping with clients connected, a flood running and a black hole holding a handshake returns at once."""
    before = steadyws.runtime_stats()["goroutines"]
    server = Server()
    ws = steadyws.connect(server.url, **fast())  # type: ignore[arg-type]
    server.flood(10**9, 100)
    server.blackhole(3600)
    with Stopwatch() as clock:
        server.stop()
        server.stop()  # idempotent
    assert clock.elapsed < 3
    with pytest.raises(RuntimeError, match="stopped"):
        server.send("late")
    ws.close()
    deadline = time.monotonic() + 5
    while steadyws.runtime_stats()["goroutines"] > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert steadyws.runtime_stats()["goroutines"] <= before
