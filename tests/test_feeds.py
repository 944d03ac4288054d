"""The feed features: staleness (max_silence), text as bytes (decode_text=False),
and the test server's rehearsals for them (silence, expire_after, max_per_second)."""

from __future__ import annotations

import asyncio
import queue
import time
from typing import Any

import pytest
import steadyws
import steadyws.aio
from helpers import Stopwatch
from payloads import payload
from promise_support import wait_until
from servers import EchoServer, MisbehavingServer, tagged
from steadyws.testing import Server

FAST = steadyws.Backoff(min=0.05, max=0.1, jitter=False)
SILENCE = 0.5  # max_silence in these tests
MARGIN = 1.0  # seconds a verdict may come late on a loaded machine

TEXT = "prix: 101,5 \u20ac"  # not ASCII: the bytes are its UTF-8


def test_decode_text_false_gives_text_as_bytes_threaded(ws_server: EchoServer) -> None:
    """recv, recv_batch and iteration give a text message as its UTF-8 bytes; binary stays bytes."""
    with steadyws.connect(ws_server.url("/echo"), decode_text=False, reconnect=False) as ws:
        ws.send(TEXT)
        assert ws.recv(timeout=10) == TEXT.encode()
        ws.send(b"\x00\xffbinary")
        assert ws.recv(timeout=10) == b"\x00\xffbinary"
        ws.send_batch([TEXT, "two"])
        got: list[Any] = []
        while len(got) < 2:
            got += ws.recv_batch(timeout=10)
        assert got == [TEXT.encode(), b"two"]


def test_decode_text_default_is_str(ws_server: EchoServer) -> None:
    with steadyws.connect(ws_server.url("/echo"), reconnect=False) as ws:
        ws.send(TEXT)
        assert ws.recv(timeout=10) == TEXT


def test_decode_text_false_asyncio(ws_server: EchoServer) -> None:
    async def main() -> list[Any]:
        async with steadyws.aio.connect(ws_server.url("/echo"), decode_text=False, reconnect=False) as ws:
            await ws.send(TEXT)
            first = await ws.recv(timeout=10)
            await ws.send_batch(["a", "b"])
            rest: list[Any] = []
            while len(rest) < 2:
                rest += await ws.recv_batch(timeout=10)
            return [first, *rest]

    assert asyncio.run(main()) == [TEXT.encode(), b"a", b"b"]


def test_decode_text_false_on_message(ws_server: EchoServer) -> None:
    got: queue.Queue[Any] = queue.Queue()
    with steadyws.connect(
        ws_server.url("/echo"), decode_text=False, reconnect=False, on_message=lambda ws, m: got.put(m)
    ) as ws:
        ws.send(TEXT)
        assert got.get(timeout=10) == TEXT.encode()


def test_decode_text_is_per_member_of_a_group(ws_server: EchoServer) -> None:
    with steadyws.Group() as feeds:
        raw = feeds.connect(ws_server.url("/echo"), decode_text=False, reconnect=False)
        text = feeds.connect(ws_server.url("/echo"), reconnect=False)
        raw.send(TEXT)
        text.send(TEXT)
        got = {id(ws): message for ws, message in (feeds.recv(timeout=10) for _ in range(2))}
    assert got == {id(raw): TEXT.encode(), id(text): TEXT}


def test_decode_text_false_fragmented_text(ws_server: EchoServer) -> None:
    """A text message in fragments (the reader goroutine's path, not the burst) arrives as bytes too."""
    url = ws_server.url("/fragments?n=4&size=3000&kind=text")
    with steadyws.connect(url, decode_text=False, reconnect=False) as ws:
        message = ws.recv(timeout=10)
    assert isinstance(message, bytes)
    assert message == str(payload("text", 3000)).encode()


@pytest.mark.parametrize("api", ["threaded", "asyncio"])
def test_decode_text_false_still_rejects_invalid_utf8(bad_server: MisbehavingServer, api: str) -> None:
    """A text message that is not UTF-8 is still a protocol error: ProtocolError, and our close frame says 1007."""
    target = tagged("/invalid-utf8")
    url = bad_server.url(target)
    if api == "threaded":
        with steadyws.connect(url, decode_text=False, reconnect=False) as ws:
            with pytest.raises(steadyws.ProtocolError) as info:
                ws.recv(timeout=10)
    else:

        async def main() -> None:
            async with steadyws.aio.connect(url, decode_text=False, reconnect=False) as ws:
                await ws.recv(timeout=10)

        with pytest.raises(steadyws.ProtocolError) as info:
            asyncio.run(main())
    assert info.value.code == 1007
    event = bad_server.close_event(target)
    assert (event.kind, event.code) == ("client_close", 1007)


# -- staleness: max_silence ------------------------------------------------------------


def test_a_silent_but_pinging_server_is_stale_and_reconnected(steadyws_server: Server) -> None:
    """The test server goes silent (pings answered, TCP open): within max_silence (+ margin) of the last
    data message the connection ends with a Disconnected whose detail says stale, and reconnects; the
    heartbeat stayed healthy all along (pongs came); once data flows again it is delivered."""
    srv = steadyws_server
    ws = steadyws.connect(srv.url, max_silence=SILENCE, ping_interval=0.1, ping_timeout=1.0, reconnect=FAST)
    try:
        srv.send("tick")
        assert ws.recv(timeout=10) == "tick"
        started = time.monotonic()
        srv.silence(SILENCE + 2 * MARGIN)
        lost = None
        while lost is None:
            left = started + SILENCE + MARGIN - time.monotonic()
            assert left > 0, f"no stale verdict within {SILENCE + MARGIN} s"
            lost = next((ev for ev in ws.recv_events(timeout=left) if isinstance(ev, steadyws.Disconnected)), None)
        took = time.monotonic() - started
        assert "stale" in lost.detail and "max_silence" in lost.detail, lost
        assert took >= SILENCE - 0.15, f"stale after {took:.2f} s, before max_silence"
        assert ws.stats()["pongs_received"] >= 2, "the heartbeat was not answered: not a silent-but-pinging server"
        wait_until(lambda: srv.counts()["handshakes"] >= 2, what="the reconnect")
        assert ws.stats()["stale"] >= 1
        time.sleep(max(0.0, started + SILENCE + 2 * MARGIN - time.monotonic()))  # the silence is over
        heard: list[Any] = []
        deadline = time.monotonic() + 10
        while "after" not in heard:  # the first send may meet a connection between two attempts
            assert time.monotonic() < deadline, "nothing delivered after the silence"
            srv.send("after")
            heard += ws.recv_batch(timeout=0.3)
    finally:
        ws.close()


def stale_end(url: str, api: str) -> tuple[BaseException, float, int]:
    """Connect with max_silence and reconnect off, receive until the end: the error, the time from the
    open, the pongs received."""
    options: dict[str, Any] = {"max_silence": SILENCE, "ping_interval": 0.1, "reconnect": False}
    if api == "threaded":
        ws = steadyws.connect(url, **options)
        started = time.monotonic()
        with pytest.raises(steadyws.ConnectionClosed) as info:
            ws.recv(timeout=SILENCE + 10)
        return info.value, time.monotonic() - started, ws.stats()["pongs_received"]

    async def main() -> tuple[BaseException, float, int]:
        ws = await steadyws.aio.connect(url, **options)
        started = time.monotonic()
        with pytest.raises(steadyws.ConnectionClosed) as info:
            await ws.recv(timeout=SILENCE + 10)
        return info.value, time.monotonic() - started, ws.stats()["pongs_received"]

    return asyncio.run(main())


@pytest.mark.parametrize("api", ["threaded", "asyncio"])
def test_an_independent_silent_server_is_stale(ws_server: EchoServer, api: str) -> None:
    """The websockets library's server (its /echo route sends nothing unless spoken to, and answers pings):
    stale within max_silence (+ margin) of the open; reconnect=False ends the client, the end says stale."""
    error, took, pongs = stale_end(ws_server.url("/echo"), api)
    assert "stale" in str(error), error
    assert SILENCE - 0.15 <= took <= SILENCE + MARGIN, f"stale after {took:.2f} s"
    assert pongs >= 1


def test_a_full_queue_is_not_silence(steadyws_server: Server) -> None:
    """A consumer that stops reading while the server floods fills the queue; the reader waits for room,
    so nothing arrives for 3 x max_silence -- and the connection is not declared stale. Once the consumer
    drains, every message arrives."""
    srv = steadyws_server
    ws = steadyws.connect(srv.url, max_silence=SILENCE, max_queue=16, reconnect=FAST)
    try:
        srv.flood(2000, 2000)
        wait_until(lambda: ws.stats()["reader_blocked_ms"] > 0 or ws.stats()["queue_depth"] >= 16, what="a full queue")
        time.sleep(3 * SILENCE)
        assert ws.stats()["stale"] == 0 and srv.counts()["handshakes"] == 1
        got = 0
        while got < 2000:
            got += len(ws.recv_batch(timeout=10))
        assert got == 2000 and ws.stats()["stale"] == 0
    finally:
        ws.close()


def test_max_silence_off_by_default_and_age_in_stats(steadyws_server: Server) -> None:
    """Without max_silence a silent server is left alone; stats show the age of the last data message
    (-1 before the first)."""
    srv = steadyws_server
    with steadyws.connect(srv.url, ping_interval=0.1, reconnect=False) as ws:
        assert ws.stats()["last_data_age_ms"] == -1
        srv.send("one")
        assert ws.recv(timeout=10) == "one"
        time.sleep(0.6)
        assert ws.state == "open" and ws.stats()["stale"] == 0
        assert 500 <= ws.stats()["last_data_age_ms"] < 10_000


@pytest.mark.parametrize(("value", "error"), [(-1.0, ValueError), (0.0, ValueError), ("30", TypeError)])
def test_max_silence_bad_values_name_the_option(steadyws_server: Server, value: Any, error: type) -> None:
    with pytest.raises(error, match="^max_silence"):
        steadyws.connect(steadyws_server.url, max_silence=value)
    assert steadyws_server.counts()["handshakes"] == 0


# -- the test server's rehearsals --------------------------------------------------------


def test_server_silence_answers_pings_and_sends_nothing(steadyws_server: Server) -> None:
    """silence(): the heartbeat stays healthy (ping_timeout 0.3 s passes many times), send() is eaten."""
    srv = steadyws_server
    with steadyws.connect(srv.url, ping_interval=0.05, ping_timeout=0.3, reconnect=False) as ws:
        srv.silence(1.0)
        srv.send("eaten")
        time.sleep(1.2)
        assert ws.state == "open" and ws.stats()["pongs_received"] >= 5
        assert ws.recv_batch(timeout=0) == []
        srv.send("heard")
        assert ws.recv(timeout=10) == "heard"


def test_server_expire_after_closes_old_connections_with_1001() -> None:
    with Server(expire_after=0.5) as srv:
        ws = steadyws.connect(srv.url, reconnect=False)
        with Stopwatch() as clock:
            with pytest.raises(steadyws.ConnectionClosedOK) as info:
                ws.recv(timeout=10)
        assert info.value.code == 1001
        assert 0.4 <= clock.elapsed <= 0.5 + MARGIN


@pytest.mark.parametrize(("value", "error"), [(-1, ValueError), ("1", TypeError)])
def test_server_expire_after_bad_values(value: Any, error: type) -> None:
    with pytest.raises(error, match="^expire_after"):
        Server(expire_after=value)


def test_server_counts_the_most_messages_a_client_sent_in_one_second(steadyws_server: Server) -> None:
    srv = steadyws_server
    with steadyws.connect(srv.url, reconnect=False) as ws:
        ws.send_batch([f"m{i}" for i in range(30)])
        srv.expect(lambda m: m == "m29")
        time.sleep(1.1)
        ws.send_batch(["a", "b"])
        srv.expect(lambda m: m == "b")
    counts = srv.counts()
    assert counts["max_per_second"] == 30
    assert counts["max_frames_per_second"] >= 30
