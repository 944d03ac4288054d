"""The feed features: staleness (max_silence), text as bytes (decode_text=False),
and the test server's rehearsals for them (silence, expire_after, max_per_second)."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import steadyws
import steadyws.aio
from group_support import first_gap
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


# -- rate limits: RateLimit, send_rate, connect_rate ---------------------------------------


def test_two_connections_sharing_a_rate_limit_never_exceed_it_together(steadyws_server: Server) -> None:
    """RateLimit(5, per=1.0) given to two connections, each sending as fast as it can (send waits):
    every message arrives, and the server never saw more than 5 in any one second, from both together."""
    srv = steadyws_server
    budget = steadyws.RateLimit(5, per=1.0)
    a = steadyws.connect(srv.url, send_rate=budget, reconnect=False)
    b = steadyws.connect(srv.url, send_rate=budget, reconnect=False)
    try:
        with Stopwatch() as clock:
            for i in range(16):
                (a if i % 2 else b).send(f"m{i}")
        srv.expect(lambda m: m == "m15", timeout=10)
        assert clock.elapsed >= 3.0, f"16 messages at 5/s went out in {clock.elapsed:.2f} s"
        counts = srv.counts()
        assert counts["received"] == 16
        assert counts["max_all_per_second"] == 5, counts
        waited = a.stats()["rate_waited"] + b.stats()["rate_waited"]
        assert 3 <= waited <= 11, waited  # at least the 6th, 11th and 16th (the first of each new window)
    finally:
        a.close()
        b.close()


def test_the_resubscribe_burst_after_a_reset_is_paced(steadyws_server: Server) -> None:
    """Each of two connections subscribes to 5 channels in on_open; after a TCP reset both reconnect and
    resubscribe at once. Sharing RateLimit(5, per=1.0), the server never sees more than 5 in a second --
    neither at the first open nor in the resubscribe burst -- and every subscription arrives each time."""
    srv = steadyws_server
    budget = steadyws.RateLimit(5, per=1.0)

    def subscribe(ws: Any) -> None:
        for channel in range(5):
            ws.send(f"subscribe {channel}")

    options: dict[str, Any] = {"send_rate": budget, "on_open": subscribe, "reconnect": FAST}
    feeds = [steadyws.connect(srv.url, **options) for _ in range(2)]
    try:
        wait_until(lambda: srv.counts()["received"] == 10, what="the first subscriptions")
        srv.reset()
        wait_until(lambda: srv.counts()["received"] == 20, timeout=15, what="the resubscriptions")
        counts = srv.counts()
        assert counts["handshakes"] == 4
        assert counts["max_all_per_second"] <= 5, counts
    finally:
        for ws in feeds:
            ws.close()


def test_wait_false_raises_rate_limited_at_once_and_sends_nothing(steadyws_server: Server) -> None:
    srv = steadyws_server
    with steadyws.connect(srv.url, send_rate=steadyws.RateLimit(1, per=5.0, wait=False), reconnect=False) as ws:
        ws.send("first")
        with Stopwatch() as clock:
            with pytest.raises(steadyws.RateLimited) as info:
                ws.send("second")
        assert clock.elapsed < 0.5
        assert 4.0 < info.value.retry_after <= 5.25  # per, and its 5% margin
        assert ws.stats()["rate_refused"] == 1
        srv.expect(lambda m: m == "first")
        time.sleep(0.2)
        assert srv.received == ["first"]


def test_a_wait_beyond_write_timeout_raises_rate_limited(steadyws_server: Server) -> None:
    """wait=True, but the next grant is 5 s away and write_timeout is 0.2 s: RateLimited at once."""
    budget = steadyws.RateLimit(1, per=5.0)
    with steadyws.connect(steadyws_server.url, send_rate=budget, write_timeout=0.2, reconnect=False) as ws:
        ws.send("first")
        with pytest.raises(steadyws.RateLimited) as info:
            ws.send("second")
        assert info.value.retry_after > 4.0


def test_asyncio_sends_wait_for_the_budget_without_blocking_the_loop(steadyws_server: Server) -> None:
    """Two steadyws.aio connections sharing RateLimit(3, per=1.0) send 9 messages: the sends await (another
    task keeps ticking), every message arrives, and no second at the server saw more than 3."""
    srv = steadyws_server

    async def main() -> int:
        budget = steadyws.RateLimit(3, per=1.0)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        task = asyncio.ensure_future(ticker())
        async with (
            steadyws.aio.connect(srv.url, send_rate=budget) as a,
            steadyws.aio.connect(srv.url, send_rate=budget) as b,
        ):
            for i in range(9):
                await (a if i % 2 else b).send(f"m{i}")
            await asyncio.to_thread(srv.expect, lambda m: m == "m8", 10)
        task.cancel()
        return ticks

    ticks = asyncio.run(main())
    assert ticks >= 20, f"the loop ticked {ticks} times in 2 s of paced sends"
    assert srv.counts()["max_all_per_second"] == 3


def test_control_frames_take_grants_too(steadyws_server: Server) -> None:
    """control_frames=True: pings every 0.05 s under RateLimit(4, per=1.0) go out at most 4 a second (with
    the data), and the connection stays healthy."""
    srv = steadyws_server
    budget = steadyws.RateLimit(4, per=1.0, control_frames=True)
    with steadyws.connect(srv.url, send_rate=budget, ping_interval=0.05, ping_timeout=5.0, reconnect=False) as ws:
        ws.send("data")
        time.sleep(2.0)
        assert ws.state == "open"
        sent = ws.stats()["pings_sent"]
        assert 4 <= sent <= 12, sent
    assert srv.counts()["max_frames_per_second"] <= 4


def test_connect_rate_paces_dials_and_shows_in_reconnecting(steadyws_server: Server) -> None:
    """connect_rate=RateLimit(2, per=1.0) shared by two clients: their first dials go at once; after a reset
    the reconnects wait for the window, and the Reconnecting events' delays say so (the backoff alone
    is 0.05-0.1 s)."""
    srv = steadyws_server
    dials = steadyws.RateLimit(2, per=1.0)
    started = time.monotonic()
    feeds = [steadyws.connect(srv.url, connect_rate=dials, reconnect=FAST) for _ in range(2)]
    try:
        assert time.monotonic() - started < 0.9
        srv.reset()
        wait_until(lambda: srv.counts()["handshakes"] == 4, what="the reconnects")
        assert time.monotonic() - started >= 1.0, "two more dials within the same second"
        delays = [ev.delay for ws in feeds for ev in ws.recv_events(timeout=0) if isinstance(ev, steadyws.Reconnecting)]
        assert delays and max(delays) > 0.2, delays
    finally:
        for ws in feeds:
            ws.close()


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "name"),
    [
        ((0,), {}, ValueError, "rate"),
        (("5",), {}, TypeError, "rate"),
        ((5,), {"per": 0}, ValueError, "per"),
        ((5,), {"per": "1"}, TypeError, "per"),
        ((5,), {"burst": 6}, ValueError, "burst"),
        ((5,), {"burst": 1.5}, TypeError, "burst"),
        ((5,), {"wait": 1}, TypeError, "wait"),
        ((5,), {"control_frames": None}, TypeError, "control_frames"),
    ],
)
def test_rate_limit_bad_values_name_the_parameter(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type, name: str
) -> None:
    with pytest.raises(error, match=f"^{name}"):
        steadyws.RateLimit(*args, **kwargs)


def test_send_rate_must_be_a_rate_limit_and_a_batch_must_fit(steadyws_server: Server) -> None:
    with pytest.raises(TypeError, match="^send_rate"):
        steadyws.connect(steadyws_server.url, send_rate=5)  # type: ignore[typeddict-item]
    with steadyws.connect(steadyws_server.url, send_rate=steadyws.RateLimit(2), reconnect=False) as ws:
        with pytest.raises(ValueError, match="^messages"):
            ws.send_batch(["a", "b", "c"])


# -- receive timestamps ----------------------------------------------------------------------

TRIALS = 5
HELD = 0.3  # seconds a message waits in the queue before recv_batch takes it


def test_recv_batch_timestamps_are_monotonic_and_taken_at_the_socket(steadyws_server: Server) -> None:
    """Each message's time is when it was read from the socket, not when recv_batch handed it out: a
    message read (stats' messages_in counts it) and then left HELD seconds in the queue carries a time
    from before the wait (after the server
    was told to send it, at least HELD before the reading taken after recv_batch); times never go back,
    across single messages and a flood's batches. (How close to the socket they are is a speed, which
    tests do not assert.)"""
    srv = steadyws_server
    with steadyws.connect(srv.url, reconnect=False) as ws:
        srv.send("warm-up")
        ws.recv(timeout=10)
        last = 0
        for i in range(TRIALS):
            read = ws.stats()["messages_in"]
            before = time.time_ns()
            srv.send(f"t{i}")
            wait_until(lambda read=read: ws.stats()["messages_in"] > read, what="the message read from the socket")
            time.sleep(HELD)
            messages, stamps = ws.recv_batch(timeout=10, timestamps=True)
            after = time.time_ns()
            assert messages == [f"t{i}"] and len(stamps) == 1
            assert before <= stamps[0] <= after - HELD * 1e9, (before, stamps[0], after)
            assert stamps[0] >= last
            last = stamps[0]
        srv.flood(500, 100)
        got: list[Any] = []
        times: list[int] = []
        while len(got) < 500:
            batch, stamps = ws.recv_batch(timeout=10, timestamps=True)
            got += batch
            times += stamps
        assert len(times) == 500 and times == sorted(times) and times[0] >= last
        assert ws.last_received_ns == times[-1]


def test_asyncio_recv_batch_timestamps(steadyws_server: Server) -> None:
    srv = steadyws_server

    async def main() -> tuple[list[Any], list[int], int, int, int]:
        async with steadyws.aio.connect(srv.url, reconnect=False) as ws:
            before = time.time_ns()
            for i in range(3):
                srv.send(f"a{i}")
            got: list[Any] = []
            stamps: list[int] = []
            while len(got) < 3:
                batch, times = await ws.recv_batch(timeout=10, timestamps=True)
                got += batch
                stamps += times
            plain = await ws.recv_batch(timeout=0)
            return got, stamps, before, time.time_ns(), len(plain) + ws.last_received_ns - stamps[-1]

    got, stamps, before, after, rest = asyncio.run(main())
    assert got == ["a0", "a1", "a2"]
    assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after
    assert rest == 0  # nothing more came, and last_received_ns is the last stamp


def test_last_received_ns_for_recv_and_on_message(steadyws_server: Server) -> None:
    srv = steadyws_server
    seen: queue.Queue[tuple[Any, int]] = queue.Queue()
    with steadyws.connect(srv.url, reconnect=False) as ws:
        assert ws.last_received_ns == 0
        before = time.time_ns()
        srv.send("one")
        assert ws.recv(timeout=10) == "one"
        assert before <= ws.last_received_ns <= time.time_ns()
    with steadyws.connect(srv.url, reconnect=False, on_message=lambda ws, m: seen.put((m, ws.last_received_ns))) as cb:
        before = time.time_ns()
        srv.send("two")
        message, at = seen.get(timeout=10)
        assert message == "two" and before <= at <= time.time_ns()
        assert cb.last_received_ns == at


def test_lifecycle_events_carry_their_time(steadyws_server: Server) -> None:
    """After a reset: Disconnected, Reconnecting and Opened carry time_ns in order, so the interval the
    reconnect left uncovered is [Disconnected.time_ns, Opened.time_ns]; messages before and after fall
    outside it."""
    srv = steadyws_server
    with steadyws.connect(srv.url, reconnect=FAST) as ws:
        srv.send("before")
        assert ws.recv(timeout=10) == "before"
        sent_before = ws.last_received_ns
        srv.reset()
        events: list[Any] = []
        while not any(isinstance(ev, steadyws.Opened) for ev in events):
            events += ws.recv_events(timeout=10)
        lost = next(ev for ev in events if isinstance(ev, steadyws.Disconnected))
        retry = next(ev for ev in events if isinstance(ev, steadyws.Reconnecting))
        opened = next(ev for ev in events if isinstance(ev, steadyws.Opened))
        assert sent_before <= lost.time_ns <= retry.time_ns <= opened.time_ns <= time.time_ns()
        srv.send("after")
        assert ws.recv(timeout=10) == "after"
        assert ws.last_received_ns >= opened.time_ns


@pytest.mark.parametrize("api", ["threaded", "asyncio"])
def test_group_recv_batch_timestamps(steadyws_server: Server, api: str) -> None:
    srv = steadyws_server
    if api == "threaded":
        with steadyws.Group() as feeds:
            a = feeds.connect(srv.url, reconnect=False)
            b = feeds.connect(srv.url, reconnect=False)
            before = time.time_ns()
            srv.send("both")
            pairs: list[Any] = []
            stamps: list[int] = []
            while len(pairs) < 2:
                got, times = feeds.recv_batch(timeout=10, timestamps=True)
                pairs += got
                stamps += times
            members = [a, b]
            last = max(a.last_received_ns, b.last_received_ns)
    else:

        async def main() -> tuple[list[Any], list[int], int, list[Any], int]:
            async with steadyws.aio.Group() as feeds:
                a = await feeds.connect(srv.url, reconnect=False)
                b = await feeds.connect(srv.url, reconnect=False)
                start = time.time_ns()
                srv.send("both")
                got_pairs: list[Any] = []
                got_stamps: list[int] = []
                while len(got_pairs) < 2:
                    got, times = await feeds.recv_batch(timeout=10, timestamps=True)
                    got_pairs += got
                    got_stamps += times
                return got_pairs, got_stamps, start, [a, b], max(a.last_received_ns, b.last_received_ns)

        pairs, stamps, before, members, last = asyncio.run(main())
    assert sorted(id(ws) for ws, _ in pairs) == sorted(id(ws) for ws in members)
    assert len(stamps) == 2 and all(before <= t <= time.time_ns() for t in stamps)
    assert last == stamps[-1]


def test_timestamps_must_be_a_bool(steadyws_server: Server) -> None:
    with steadyws.connect(steadyws_server.url, reconnect=False) as ws:
        with pytest.raises(TypeError, match="^timestamps"):
            ws.recv_batch(timeout=0, timestamps=1)  # type: ignore[call-overload]


# -- rotation, make-before-break -----------------------------------------------------------


class Feed:
    """A sequenced feed at ``rate`` messages a second to every client of the test server (one
    broadcast per message, as a venue's stream), in a thread; ``{"seq": n}`` from 0."""

    def __init__(self, srv: Server, count: int, rate: int = 2000) -> None:
        self._srv, self._count, self._rate = srv, count, rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Feed:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        start = time.perf_counter()
        for seq in range(self._count):
            while (due := start + seq / self._rate) > time.perf_counter():
                if self._stop.wait(min(due - time.perf_counter(), 0.001)):
                    return
            self._srv.send(f'{{"seq": {seq}}}')


def sequences(ws: Any, count: int, during: Callable[[int], None] = lambda got: None) -> tuple[list[int], list[Any]]:
    """Receive until ``count`` messages came (or 30 s passed): their seqs, and the lifecycle events;
    ``during(len(seqs))`` runs after each batch."""
    seqs: list[int] = []
    events: list[Any] = []
    deadline = time.monotonic() + 30
    while len(seqs) < count and time.monotonic() < deadline:
        for item in ws.recv_events(timeout=0.5):
            if isinstance(item, str):
                seqs.append(json.loads(item)["seq"])
            else:
                events.append(item)
        during(len(seqs))
    return seqs, events


def rotate_once_at(ws: Any, count: int) -> Callable[[int], None]:
    """A ``during`` for sequences(): rotate once, when ``count`` messages came."""
    done = []

    def during(got: int) -> None:
        if got >= count and not done:
            ws.rotate()
            done.append(got)

    return during


def test_rotation_under_a_sequenced_feed_delivers_every_sequence_once_in_order(steadyws_server: Server) -> None:
    """rotate() in the middle of a 2,000 msg/s feed: a second connection opens (Opened 2), runs on_open,
    takes over (Rotated 2), and the old one closes with 1000; every sequence number arrives exactly once,
    in order, and the overlap's duplicates are dropped."""
    srv = steadyws_server
    subscribed: list[int] = []
    ws = steadyws.connect(srv.url, reconnect=FAST, on_open=lambda ws: subscribed.append(len(subscribed)))
    try:
        with Feed(srv, 4000):
            seqs, events = sequences(ws, 4000, rotate_once_at(ws, 1000))
        assert seqs == list(range(4000)), f"gap or repeat at {first_gap(seqs)} of {len(seqs)}"
        kinds = [(type(ev).__name__, getattr(ev, "connection", None)) for ev in events]
        assert ("Opened", 2) in kinds and ("Rotated", 2) in kinds, kinds
        assert kinds.index(("Opened", 2)) < kinds.index(("Rotated", 2))
        assert not any(isinstance(ev, steadyws.Disconnected) for ev in events)
        assert subscribed == [0, 1]  # on_open ran on the new connection too
        stats = ws.stats()
        assert stats["rotations"] == 1 and stats["connects"] == 2
        wait_until(lambda: srv.counts()["live"] == 1, what="the old connection closed")
    finally:
        ws.close()


def test_max_connection_age_rotates_before_the_venue_expires_it() -> None:
    """The venue closes connections at 2 s of age (1001); with max_connection_age=0.7 the client rotates
    first, again and again: over 4 s no Disconnected, no lost or repeated sequence number."""
    with Server(expire_after=2.0) as srv:
        ws = steadyws.connect(srv.url, max_connection_age=0.7, reconnect=FAST)
        try:
            with Feed(srv, 8000):
                seqs, events = sequences(ws, 8000)
            assert seqs == list(range(8000)), f"gap or repeat at {first_gap(seqs)} of {len(seqs)}"
            assert not any(isinstance(ev, steadyws.Disconnected) for ev in events), events
            assert ws.stats()["rotations"] >= 3
        finally:
            ws.close()


def test_a_rotation_that_cannot_open_leaves_the_old_connection_serving(steadyws_server: Server) -> None:
    srv = steadyws_server
    with steadyws.connect(srv.url, reconnect=steadyws.Backoff(min=0.2, jitter=False)) as ws:
        srv.refuse(503)
        ws.rotate()
        wait_until(lambda: ws.stats()["rotation_failures"] >= 1, what="a failed rotation")
        srv.send("still here")
        assert ws.recv(timeout=10) == "still here"
        assert ws.state == "open" and ws.stats()["rotations"] == 0
        srv.accept()
        wait_until(lambda: ws.stats()["rotations"] == 1, what="the retried rotation")
        srv.send("rotated")
        assert ws.recv(timeout=10) == "rotated"


def test_connect_rate_paces_rotation_dials(steadyws_server: Server) -> None:
    """connect_rate=RateLimit(1, per=1.5): the first dial took the grant, so the rotation's dial waits."""
    srv = steadyws_server
    with steadyws.connect(srv.url, connect_rate=steadyws.RateLimit(1, per=1.5), reconnect=FAST) as ws:
        started = time.monotonic()
        ws.rotate()
        wait_until(lambda: ws.stats()["rotations"] == 1, what="the rotation")
        assert time.monotonic() - started >= 1.2


def test_rotate_needs_an_open_connection(steadyws_server: Server) -> None:
    ws = steadyws.connect(steadyws_server.url, reconnect=False)
    ws.close()
    with pytest.raises(steadyws.ConnectionClosed):
        ws.rotate()


def test_asyncio_rotation(steadyws_server: Server) -> None:
    srv = steadyws_server

    async def main() -> list[int]:
        async with steadyws.aio.connect(srv.url, reconnect=FAST) as ws:
            seqs: list[int] = []
            with Feed(srv, 3000):
                while len(seqs) < 3000:
                    for item in await ws.recv_batch(timeout=10):
                        seqs.append(json.loads(item)["seq"])
                    if len(seqs) >= 1000 and ws.stats()["rotations"] == 0 and ws.stats()["connects"] == 1:
                        ws.rotate()
            stats = ws.stats()
            assert stats["rotations"] == 1, stats
            return seqs

    assert asyncio.run(main()) == list(range(3000))


def test_rotation_against_an_independent_server(ws_server: EchoServer) -> None:
    """The websockets library's server, one 2,000 msg/s feed shared by its connections: a rotation in
    the middle delivers every sequence number once, in order."""
    url = ws_server.url(f"/ticker?feed={tagged('rot')}&n=4000&rate=2000")
    ws = steadyws.connect(url, reconnect=False)
    try:
        seqs, events = sequences(ws, 4000, rotate_once_at(ws, 1000))
        assert seqs == list(range(4000)), f"gap or repeat at {first_gap(seqs)} of {len(seqs)}"
        assert any(isinstance(ev, steadyws.Rotated) for ev in events)
        assert ws.stats()["rotations"] == 1
    finally:
        ws.close()


def test_a_shared_rate_limit_at_an_independent_server(ws_server: EchoServer) -> None:
    """The websockets library's server timestamps what it reads: two connections sharing
    RateLimit(5, per=1.0) never put more than 5 messages in any second there."""
    target = tagged("/count")
    budget = steadyws.RateLimit(5, per=1.0)
    feeds = [steadyws.connect(ws_server.url(target), send_rate=budget, reconnect=False) for _ in range(2)]
    try:
        for i in range(12):
            feeds[i % 2].send(f"m{i}")
        ws_server.wait_for(lambda e: e.target == target and e.payload == b"m11", timeout=10)
    finally:
        for ws in feeds:
            ws.close()
    arrivals = sorted(e.at for e in ws_server.events if e.target == target and e.kind == "message")
    assert len(arrivals) == 12
    most = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    assert most <= 5, f"{most} messages within one second at the server"


def test_timestamps_with_an_independent_server(ws_server: EchoServer) -> None:
    with steadyws.connect(ws_server.url("/echo"), reconnect=False) as ws:
        stamps: list[int] = []
        for i in range(10):
            before = time.time_ns()
            ws.send(f"e{i}")
            messages, times = ws.recv_batch(timeout=10, timestamps=True)
            assert messages == [f"e{i}"] and before <= times[0] <= time.time_ns()
            stamps += times
        assert stamps == sorted(stamps)
