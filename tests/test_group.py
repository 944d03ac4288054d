"""steadyws.Group and steadyws.aio.Group: many connections, one event stream.

Every test runs real servers on loopback (steadyws.testing.Server, one per member, or the benchmark's
flood server in its own process) and real member connections: no mocks. The fairness bound comes
from the code: a hub poll hands out at most PER_MEMBER events of one member, and a member gets no
more until the group has delivered them, so a message that arrived is held up by at most the batch
the group already holds plus one more batch of another member.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import steadyws
from group_support import (
    LOOPS,
    Pairs,
    agather,
    count_in,
    first_gap,
    gather,
    group_members,
    lifecycle_of,
    messages_of,
    queued,
    run_on,
    seq_of,
    servers,
)
from helpers import (
    SLACK,
    Stopwatch,
    ThreadCounts,
    excess_after_settling,
    fork_problem,
    in_child,
    outcome_of,
    resources,
    steady,
)
from promise_support import Ticker, async_wait_until, rss_bytes, wait_until
from steadyws import Closed, ConnectionClosedOK, Disconnected, Opened, QueueWarning, Reconnecting
from steadyws._hub import PER_MEMBER

BOUND = 2 * PER_MEMBER  # items that may come out before a message that arrived: the held batch + one batch
FLOOD = 20_000  # numbered messages per flooded member
TICK = 60  # bytes per flooded message
FAST_RETRY = steadyws.Backoff(min=0.05, max=0.1)


@pytest.fixture(params=sorted(LOOPS))
def loop_name(request: pytest.FixtureRequest) -> str:
    """The event loop an asyncio test runs on: asyncio's own and uvloop."""
    return str(request.param)


# -- ordering ------------------------------------------------------------------------------


def test_every_members_messages_come_once_in_its_order_and_iteration_ends() -> None:
    """Three members each flooded with 20,000 numbered messages, read by `for ws, message in feeds`: every
    message of every member comes out exactly once, each member's in its order, paired with the object
    connect() returned; once every server has closed, the loop ends quietly and no member is left."""
    with servers(3) as srvs, steadyws.Group() as feeds:
        members = [feeds.connect(s.url, reconnect=False) for s in srvs]
        index = {id(ws): i for i, ws in enumerate(members)}
        failures: list[BaseException] = []

        def close_when_read() -> None:  # the servers close once their member has read the whole flood
            try:
                wait_until(lambda: all(count_in(ws) == FLOOD for ws in members), timeout=30, what="floods read")
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                failures.append(exc)
            finally:
                for s in srvs:
                    s.close()

        for s in srvs:
            s.flood(FLOOD, TICK)
        closer = threading.Thread(target=close_when_read)
        closer.start()
        seen: list[list[int]] = [[] for _ in members]
        for ws, message in feeds:
            seen[index[id(ws)]].append(seq_of(message))
        closer.join()
        assert not failures, failures
        for i, seqs in enumerate(seen):
            assert seqs == list(range(FLOOD)), f"member {i}: {len(seqs)} messages, first wrong at {first_gap(seqs)}"
        assert feeds.members == []


def test_messages_of_different_members_come_in_arrival_order() -> None:
    """Messages of three members that arrived one after the other (each in its member's queue before the
    next was sent, while the group consumer was busy elsewhere) come out of the group in that order,
    round after round and whatever the order of the members."""
    with servers(3) as srvs, steadyws.Group() as feeds:
        members = [feeds.connect(s.url, reconnect=False) for s in srvs]
        rounds = [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]]
        got: list[list[str]] = []
        for r, order in enumerate(rounds):
            for i in order:
                before = queued(members[i])
                srvs[i].send(f"r{r}-m{i}")
                wait_until(lambda i=i, n=before: queued(members[i]) > n, what=f"message of member {i} queued")
            got.append([str(feeds.recv(timeout=5)[1]) for _ in order])
        assert got == [[f"r{r}-m{i}" for i in order] for r, order in enumerate(rounds)]


def test_recv_batch_and_recv_events_keep_to_their_limits_and_the_order() -> None:
    """With 500+ messages of a flood waiting, recv_batch(max_messages=7) returns exactly 7 pairs and
    recv_events(max_events=3) exactly 3; mixing them with recv and bigger batches reads the whole flood of
    2,000 once, in order."""
    n = 2000
    with servers(1) as (s,), steadyws.Group() as feeds:
        ws = feeds.connect(s.url, reconnect=False)
        s.flood(n, TICK)
        wait_until(lambda: count_in(ws) >= 500, what="500 messages read")
        first = feeds.recv_batch(max_messages=7, timeout=5)
        events = feeds.recv_events(max_events=3, timeout=5)
        assert len(first) == 7 and len(events) == 3
        got = [m for _, m in first + events]
        got.append(feeds.recv(timeout=5)[1])
        while len(got) < n:
            batch = feeds.recv_batch(max_messages=300, timeout=5)
            assert 1 <= len(batch) <= 300 and all(who is ws for who, _ in batch)
            got += [m for _, m in batch]
        assert [seq_of(m) for m in got] == list(range(n))


TOTAL_SHARED = 3 * 15_000
CONSUMERS = 4


def test_threads_sharing_a_group_see_each_message_once() -> None:
    """Four threads (recv, recv_batch and recv_events mixed) consume one group of three members flooded with
    15,000 numbered messages each: every message is seen exactly once overall, each thread sees each
    member's messages in order, and no call raises."""
    per_member = TOTAL_SHARED // 3
    with servers(3) as srvs, steadyws.Group() as feeds:
        members = [feeds.connect(s.url, reconnect=False) for s in srvs]
        index = {id(ws): i for i, ws in enumerate(members)}
        seen: list[list[tuple[int, int]]] = [[] for _ in range(CONSUMERS)]
        errors: list[BaseException] = []
        lock = threading.Lock()
        progress = {"total": 0, "last": time.monotonic()}
        deadline = time.monotonic() + 40

        def finished() -> bool:
            with lock:
                quiet = time.monotonic() - progress["last"] > 3.0
                return progress["total"] >= TOTAL_SHARED or bool(errors) or quiet or time.monotonic() > deadline

        def consumer(k: int) -> None:
            mine = seen[k]
            try:
                while not finished():
                    got: list[tuple[Any, object]]
                    if k % 3 == 0:
                        try:
                            got = [feeds.recv(timeout=0.2)]
                        except TimeoutError:
                            got = []
                    elif k % 3 == 1:
                        got = feeds.recv_batch(max_messages=37 * k, timeout=0.2)
                    else:
                        got = [(ws, ev) for ws, ev in feeds.recv_events(max_events=101, timeout=0.2)]
                    pairs = [(index[id(ws)], seq_of(ev)) for ws, ev in got if isinstance(ev, str)]
                    mine.extend(pairs)
                    if pairs:
                        with lock:
                            progress["total"] += len(pairs)
                            progress["last"] = time.monotonic()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                with lock:
                    errors.append(exc)

        threads = [threading.Thread(target=consumer, args=(k,)) for k in range(CONSUMERS)]
        for t in threads:
            t.start()
        for s in srvs:
            s.flood(per_member, TICK)
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    counts = Counter(pair for mine in seen for pair in mine)
    assert len(counts) == TOTAL_SHARED and set(counts.values()) == {1}, (
        f"{len(counts)} distinct of {TOTAL_SHARED}; seen twice: {[p for p, n in counts.items() if n > 1][:5]}"
    )
    for k, mine in enumerate(seen):
        for m in range(3):
            seqs = [s for member, s in mine if member == m]
            assert seqs == sorted(seqs), f"thread {k} saw member {m} out of order"
    assert all(seen), f"a thread got nothing: {[len(mine) for mine in seen]}"


# -- fairness ------------------------------------------------------------------------------


def test_a_flooding_member_holds_up_a_quiet_one_by_one_batch_at_most() -> None:
    """A member with a backlog of thousands of messages (its server floods) and a quiet member: each time
    the quiet member's message has arrived, at most 2 * PER_MEMBER items of the flooder (the batch the
    group holds, and one more) come out of the group before it -- not the flooder's backlog."""
    with servers(2) as (flooding, quiet_server), steadyws.Group() as feeds:
        flooder = feeds.connect(flooding.url, max_queue=20_000, reconnect=False)
        quiet = feeds.connect(quiet_server.url, reconnect=False)
        flooding.flood(200_000, TICK)
        assert feeds.recv(timeout=5)[0] is flooder  # the flood is on
        for r in range(4):
            # the consumer is busy elsewhere: the flooder's backlog grows past what the bound allows
            wait_until(lambda: flooder.stats()["queue_depth"] > 3 * BOUND, what="a backlog of the flooder")
            quiet_server.send(f"quiet-{r}")
            wait_until(lambda r=r: count_in(quiet) == r + 1, what="the quiet message read")
            backlog = flooder.stats()["queue_depth"]
            ahead = 0
            while True:
                ws, message = feeds.recv(timeout=5)
                if ws is quiet:
                    assert message == f"quiet-{r}"
                    break
                ahead += 1
            assert backlog > 3 * BOUND  # the flooder could have held it up by more
            assert ahead <= BOUND, f"round {r}: {ahead} messages of the flooder came first (bound {BOUND})"


# -- members that reconnect or close alone ------------------------------------------------------


def test_a_member_reconnects_alone_while_the_others_flow() -> None:
    """The server resets one member's connection and refuses it for a while: recv_events shows for that
    member only Disconnected, Reconnecting attempts and Opened(connection=2), while the other member's
    messages keep coming -- during the outage too -- and it sees no lifecycle event at all; after the
    reconnect the member's messages flow again, tagged with the same object."""
    with servers(2) as (sa, sb), steadyws.Group() as feeds:
        a = feeds.connect(sa.url, reconnect=FAST_RETRY)
        b = feeds.connect(sb.url, reconnect=False)
        events: Pairs = []
        sa.refuse(503)  # a's reconnect attempts fail until accept()
        sa.clients[0].reset()
        gather(feeds, events, lambda: sum(isinstance(ev, Reconnecting) for ev in lifecycle_of(events, a)) >= 2)
        for i in range(3):
            sb.send(f"b-{i}")
        gather(feeds, events, lambda: len(messages_of(events, b)) == 3)
        assert a.state in ("reconnecting", "connecting")  # b's messages came while a was down
        sa.accept()
        gather(feeds, events, lambda: any(isinstance(ev, Opened) for ev in lifecycle_of(events, a)))
        wait_until(lambda: sa.counts()["live"] == 1, what="a's new connection at its server")
        sa.send("a-again")
        sb.send("b-after")
        gather(feeds, events, lambda: "a-again" in messages_of(events, a) and "b-after" in messages_of(events, b))
        life = lifecycle_of(events, a)
        assert isinstance(life[0], Disconnected) and life[-1] == Opened(None, 2), life
        assert all(isinstance(ev, Reconnecting) for ev in life[1:-1]) and len(life) >= 4, life
        assert lifecycle_of(events, b) == []
        assert messages_of(events, b) == ["b-0", "b-1", "b-2", "b-after"]
        assert a.state == b.state == "open" and b.stats()["reconnects"] == 0


def test_a_member_closes_alone_and_the_group_ends_with_its_last_member() -> None:
    """member.close() and a member whose server closes (reconnect off): each one's end (Closed) appears once
    in recv_events, it leaves `members` once its end was delivered, and the other member keeps delivering;
    once no member is left, recv, recv_batch and recv_events raise ConnectionClosedOK."""
    with servers(3) as (sa, sb, sc), steadyws.Group() as feeds:
        a, b, c = (feeds.connect(s.url, reconnect=False) for s in (sa, sb, sc))
        a.close()
        assert a.state == "closed"
        sb.close(4000, "bye")
        sc.send("c-1")
        events: Pairs = []
        ended = [a, b]
        gather(feeds, events, lambda: sum(isinstance(ev, Closed) for w in ended for ev in lifecycle_of(events, w)) == 2)
        gather(feeds, events, lambda: messages_of(events, c) == ["c-1"])
        sc.send("c-2")
        gather(feeds, events, lambda: messages_of(events, c) == ["c-1", "c-2"])
        events.extend(feeds.recv_events(timeout=0.3))  # nothing more may come for a or b
        assert lifecycle_of(events, a) == [Closed(1000, "", 0, closed_by="client")]
        # the server's close loses b's connection (Disconnected), and with reconnect off, b ends (Closed)
        life_b = [(type(ev).__name__, ev.code, ev.reason, ev.closed_by) for ev in lifecycle_of(events, b)]
        assert life_b == [("Disconnected", 4000, "bye", "server"), ("Closed", 4000, "bye", "server")]
        assert messages_of(events, a) == messages_of(events, b) == []
        assert feeds.members == [c] and lifecycle_of(events, c) == []
        c.close()
        for call in (feeds.recv, feeds.recv_batch, feeds.recv_events):
            with pytest.raises(ConnectionClosedOK):
                call(timeout=5)


def test_a_closed_member_leaves_members_when_close_returns() -> None:
    """Once member.close() has returned (the member is "closed"), the group's `members` no longer lists it."""
    with servers(2) as (sa, sb), steadyws.Group() as feeds:
        a = feeds.connect(sa.url, reconnect=False)
        b = feeds.connect(sb.url, reconnect=False)
        a.close()
        assert a.state == "closed"
        assert feeds.members == [b]


def test_members_join_and_leave_while_a_thread_iterates() -> None:
    """A thread iterates the group while the main thread connects a second member, closes the first, then
    the second: the new member's messages reach the iterating thread, and its loop ends quietly within
    a second or two of the last member's close."""
    with servers(2) as (sa, sb), steadyws.Group() as feeds:
        a = feeds.connect(sa.url, reconnect=False)
        got: list[tuple[Any, object]] = []
        ended: list[object] = []

        def iterate() -> None:
            try:
                for pair in feeds:
                    got.append(pair)
                ended.append("quietly")
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                ended.append(exc)

        consumer = threading.Thread(target=iterate)
        consumer.start()
        sa.send("a-1")
        wait_until(lambda: len(got) == 1, what="a's message in the iterating thread")
        b = feeds.connect(sb.url, reconnect=False)
        sb.send("b-1")
        wait_until(lambda: len(got) == 2, what="the new member's message in the iterating thread")
        a.close()
        sb.send("b-2")
        wait_until(lambda: len(got) == 3, what="b's message after a left")
        with Stopwatch() as watch:
            b.close()
            consumer.join(10)
        assert not consumer.is_alive() and ended == ["quietly"], ended
        assert watch.elapsed < 3.0
        assert got == [(a, "a-1"), (b, "b-1"), (b, "b-2")]


# -- bounds per member ---------------------------------------------------------------------------


def test_each_member_keeps_its_own_bounds_and_overflow_policy() -> None:
    """Two members with max_queue=16, one overflow="drop_oldest" and one "block", both flooded with 3,000
    messages while the group consumer is stalled: each queue stays within 16; the dropper reads its whole
    flood, keeps the newest and drops the rest (a QueueWarning "drops" says so), the blocking member's
    server waits instead; then the consumer drains: the blocking member lost nothing and kept its order."""
    n = 3000
    with servers(2) as (sd, sk), steadyws.Group() as feeds:
        dropper = feeds.connect(sd.url, max_queue=16, overflow="drop_oldest", reconnect=False)
        keeper = feeds.connect(sk.url, max_queue=16, reconnect=False)
        sd.flood(n, TICK)
        sk.flood(n, TICK)
        wait_until(lambda: count_in(dropper) == n, what="the dropper read its whole flood")
        wait_until(lambda: keeper.stats()["queue_depth"] == 16, what="the blocking member's queue full")
        stalled = {"dropper": dropper.stats(), "keeper": keeper.stats()}
        events: Pairs = []
        gather(feeds, events, lambda: len(messages_of(events, keeper)) == n, timeout=20)
        events.extend(feeds.recv_events(timeout=0.3))
        final = {"dropper": dropper.stats(), "keeper": keeper.stats()}
    assert stalled["dropper"]["queue_depth"] <= 16 and stalled["keeper"]["queue_depth"] <= 16, stalled
    assert stalled["keeper"]["messages_in"] < n  # it waited for the consumer instead of dropping
    kept = [seq_of(m) for m in messages_of(events, keeper)]
    assert kept == list(range(n)) and final["keeper"]["dropped"] == 0
    dropped_to = [seq_of(m) for m in messages_of(events, dropper)]
    assert 1 <= len(dropped_to) <= 17 and dropped_to == list(range(n - len(dropped_to), n)), dropped_to
    assert final["dropper"]["dropped"] == n - len(dropped_to)
    warnings = [(who is dropper, ev.kind) for who, ev in events if isinstance(ev, QueueWarning)]
    assert (True, "drops") in warnings and (False, "drops") not in warnings, warnings


MiB = 1 << 20
BIG = 200_000  # bytes per message of the memory test
STALL = 2.0


def test_memory_stays_bounded_with_a_stalled_group_consumer(external_echo: str) -> None:
    """Two members (max_queue_bytes=1 MiB each) of a flood of 200 KB messages from another process; the group
    consumer reads one message and stalls for 2 s: each member's queue stays within its bound and the
    process grows by at most the two bounds plus a message each (+ 24 MiB of runtime noise)."""
    url = external_echo.rsplit("/", 1)[0] + f"/stall?bytes={64 * MiB}&size={BIG}"
    options: dict[str, Any] = {"max_queue": 64, "max_queue_bytes": MiB, "reconnect": False, "close_timeout": 1}
    with steadyws.Group() as feeds:
        before = rss_bytes()
        members = [feeds.connect(url, **options) for _ in range(2)]
        assert len(feeds.recv(timeout=10)[1]) == BIG  # the floods are on; from here nobody reads
        time.sleep(STALL)  # the stall being measured, not a synchronisation
        grown = rss_bytes() - before
        stats = [ws.stats() for ws in members]
    for s in stats:
        assert s["bytes_in"] >= MiB, f"the flood never filled the queue: {s}"
        assert s["queue_bytes"] <= MiB + BIG, s
    assert grown <= 2 * (MiB + BIG) + 24 * MiB, f"RSS grew {grown / MiB:.1f} MiB"


# -- callbacks ------------------------------------------------------------------------------------


def test_member_callbacks_run_with_the_member_object() -> None:
    """on_open (again after a reset: the resubscribe reaches the new connection), on_disconnect and on_close
    run for each member on the callback thread, with the object connect() returned -- while nobody reads
    the group -- and close() of a member and of the group return after on_close ran."""
    calls: list[tuple[str, Any]] = []

    def on_open(ws: steadyws.WebSocket) -> None:
        calls.append(("open", ws))
        ws.send("subscribe")

    callbacks: dict[str, Any] = {
        "on_open": on_open,
        "on_disconnect": lambda ws, exc: calls.append(("disconnect", ws)),
        "on_close": lambda ws, code, reason: calls.append((f"close {code}", ws)),
        "reconnect": FAST_RETRY,
    }
    with servers(2) as (sa, sb):
        with steadyws.Group() as feeds:
            a = feeds.connect(sa.url, **callbacks)
            b = feeds.connect(sb.url, **callbacks)
            sa.expect(lambda m: m == "subscribe")
            sb.expect(lambda m: m == "subscribe")
            sa.clients[0].reset()
            wait_until(lambda: calls.count(("open", a)) == 2, what="a's on_open after the reset")
            sa.expect(lambda m: m == "subscribe")  # the resubscribe, on the new connection
            assert sa.counts()["handshakes"] == 2
            sa.send("after")
            assert feeds.recv(timeout=5) == (a, "after")
            b.close()
            assert ("close 1000", b) in calls
        assert ("close 1000", a) in calls
    assert [name for name, ws in calls if ws is a] == ["open", "disconnect", "open", "close 1000"]
    assert [name for name, ws in calls if ws is b] == ["open", "close 1000"]
    assert all(ws is a or ws is b for _, ws in calls)


def test_on_message_is_refused_and_a_members_own_receive_calls_raise() -> None:
    """connect(on_message=...) raises TypeError naming on_message, with no connection made; a member's own
    recv (also with timeout=0), recv_batch, recv_events and iteration raise RuntimeError naming the Group,
    and take nothing: the message waiting for the group still comes out of the group."""
    with servers(1) as (s,), steadyws.Group() as feeds:
        with pytest.raises(TypeError, match="on_message"):
            feeds.connect(s.url, on_message=lambda ws, m: None)
        assert feeds.members == [] and s.counts()["handshakes"] == 0
        ws = feeds.connect(s.url, reconnect=False)
        s.send("for the group")
        wait_until(lambda: count_in(ws) == 1, what="the message read")
        own: list[Callable[[], object]] = [
            ws.recv,
            lambda: ws.recv(timeout=0),
            ws.recv_batch,
            ws.recv_events,
            lambda: next(iter(ws)),
        ]
        for call in own:
            with pytest.raises(RuntimeError, match="Group"):
                call()
        assert feeds.recv(timeout=5) == (ws, "for the group")


# -- bad input ------------------------------------------------------------------------------------

BAD_COUNTS: list[tuple[object, type[Exception]]] = [
    (0, ValueError),
    (-1, ValueError),
    ("x", TypeError),
    (True, TypeError),
    (2.0, TypeError),
]
BAD_TIMEOUTS: list[tuple[object, type[Exception]]] = [
    (-1, ValueError),
    (-0.001, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    ("1", TypeError),
    (True, TypeError),
]
BAD_OPTIONS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"max_queue": 0}, ValueError, "max_queue"),
    ({"max_queue": "16"}, TypeError, "max_queue"),
    ({"max_queue_bytes": -1}, ValueError, "max_queue_bytes"),
    ({"overflow": "sometimes"}, ValueError, "overflow"),
    ({"ping_interval": math.nan}, ValueError, "ping_interval"),
    ({"no_such_option": 1}, TypeError, "no_such_option"),
    ({"on_open": 5}, TypeError, "on_open"),
]


def bad_calls(feeds: Any) -> list[tuple[str, Callable[[], object], type[Exception], str]]:
    """(label, call, exception, parameter name) for every bad argument of the group's receive calls."""
    out: list[tuple[str, Callable[[], object], type[Exception], str]] = []
    for value, exc in BAD_COUNTS:
        out.append((f"recv_batch(max_messages={value!r})", lambda v=value: feeds.recv_batch(max_messages=v), exc,
                    "max_messages"))  # fmt: skip
        out.append((f"recv_events(max_events={value!r})", lambda v=value: feeds.recv_events(max_events=v), exc,
                    "max_events"))  # fmt: skip
    for value, exc in BAD_TIMEOUTS:
        for name in ("recv", "recv_batch", "recv_events"):
            out.append((f"{name}(timeout={value!r})", lambda n=name, v=value: getattr(feeds, n)(timeout=v), exc,
                        "timeout"))  # fmt: skip
    return out


def test_bad_receive_arguments_raise_errors_naming_the_parameter() -> None:
    """recv_batch(max_messages=0 / -1 / "x" / True / 2.0), recv_events(max_events=...) and timeouts that are
    negative, NaN, infinite, a str or a bool raise ValueError or TypeError naming the parameter -- also
    while a message is waiting, which none of them takes."""
    with servers(1) as (s,), steadyws.Group() as feeds:
        ws = feeds.connect(s.url, reconnect=False)
        s.send("waiting")
        wait_until(lambda: count_in(ws) == 1, what="the message read")
        wrong = {}
        for label, call, exc, name in bad_calls(feeds):
            outcome = outcome_of(call)
            if not (type(outcome) is exc and name in str(outcome)):
                wrong[label] = outcome
        assert wrong == {}
        assert feeds.recv(timeout=5) == (ws, "waiting")


def test_connect_with_a_bad_option_raises_before_any_io_and_leaves_no_member() -> None:
    """Each bad option of Group.connect raises TypeError or ValueError naming it, at once, before the server
    sees a handshake, and leaves `members` as it was; the group works on."""
    with servers(2) as (good, untouched), steadyws.Group() as feeds:
        a = feeds.connect(good.url, reconnect=False)
        for options, exc, name in BAD_OPTIONS:
            with Stopwatch() as watch, pytest.raises(exc, match=name):
                feeds.connect(untouched.url, **options)
            assert watch.elapsed < 1.0, (options, watch.elapsed)
            assert feeds.members == [a], options
        assert untouched.counts()["handshakes"] == 0
        good.send("still working")
        assert feeds.recv(timeout=5) == (a, "still working")
        b = feeds.connect(untouched.url, reconnect=False)
        assert feeds.members == [a, b]


def test_a_connect_that_fails_leaves_no_member_and_the_group_still_ends() -> None:
    """A member whose handshake is refused (404) raises HandshakeError from connect and is not a member;
    the group works on, and once its one real member closes, recv raises ConnectionClosedOK."""
    with servers(2) as (good, refusing), steadyws.Group() as feeds:
        a = feeds.connect(good.url, reconnect=False)
        refusing.refuse(404)
        with pytest.raises(steadyws.HandshakeError):
            feeds.connect(refusing.url)
        assert feeds.members == [a]
        good.send("still working")
        assert feeds.recv(timeout=5) == (a, "still working")
        a.close()
        assert type(outcome_of(lambda: feeds.recv(timeout=3))) is ConnectionClosedOK


# -- closing and resources ----------------------------------------------------------------------------


def test_leaving_the_block_closes_every_member_and_close_is_idempotent() -> None:
    """Leaving `with steadyws.Group()` closes every member: each is "closed", its on_close ran once with 1000,
    its server sees it go; close() again does nothing; leaving by an exception closes too, and the
    exception propagates."""
    closes: list[tuple[Any, int]] = []
    with servers(3) as srvs:
        with steadyws.Group() as feeds:
            members = [feeds.connect(s.url, on_close=lambda ws, code, reason: closes.append((ws, code))) for s in srvs]
            assert all(s.counts()["live"] == 1 for s in srvs)
        assert [ws.state for ws in members] == ["closed"] * 3
        assert sorted(id(ws) for ws, _ in closes) == sorted(map(id, members))
        assert [code for _, code in closes] == [1000] * 3
        for s in srvs:
            wait_until(lambda s=s: s.counts()["live"] == 0, what="the server sees the member go")
        feeds.close()
        feeds.close()
        assert len(closes) == 3
        with pytest.raises(KeyError):
            with steadyws.Group() as failing:
                ws = failing.connect(srvs[0].url)
                raise KeyError("the strategy failed")
        assert ws.state == "closed"


def test_a_closed_group_has_no_members_and_its_receive_calls_end() -> None:
    """After the group closed (its block left), `members` is empty and recv, recv_batch, recv_events and
    iteration end with ConnectionClosedOK at once instead of waiting for members that are gone."""
    with servers(2) as srvs:
        with steadyws.Group() as feeds:
            for s in srvs:
                feeds.connect(s.url, reconnect=False)
        with Stopwatch() as watch:
            outcomes = {
                "members": feeds.members,
                "recv": type(outcome_of(lambda: feeds.recv(timeout=1))).__name__,
                "recv_batch": type(outcome_of(lambda: feeds.recv_batch(timeout=1))).__name__,
                "recv_events": type(outcome_of(lambda: feeds.recv_events(timeout=1))).__name__,
            }
        assert outcomes == {
            "members": [],
            "recv": "ConnectionClosedOK",
            "recv_batch": "ConnectionClosedOK",
            "recv_events": "ConnectionClosedOK",
        }
        assert watch.elapsed < 1.0


def clear_error(outcome: object) -> bool:
    """Whether ``outcome`` is an exception a user can act on: a builtin or public steadyws type, with a message
    that says the group is closed."""
    public = type(outcome).__module__ == "builtins" or type(outcome).__name__ in steadyws.__all__
    return isinstance(outcome, Exception) and public and "closed" in str(outcome).lower()


def test_connect_on_a_closed_group_raises_a_clear_error() -> None:
    """connect() on a closed steadyws.Group or steadyws.aio.Group raises an error saying the group is closed (a
    builtin or public steadyws exception), and makes no connection."""

    async def aio_connect(url: str) -> object:
        afeeds = steadyws.aio.Group()
        await afeeds.close()
        try:
            return await afeeds.connect(url)
        except Exception as exc:  # noqa: BLE001 - checked below
            return exc

    with servers(1) as (s,):
        feeds = steadyws.Group()
        feeds.close()
        outcomes = {
            "Group": outcome_of(lambda: feeds.connect(s.url)),
            "aio.Group": run_on("asyncio", aio_connect(s.url)),
        }
        assert s.counts()["handshakes"] == 0
    assert {k: clear_error(v) for k, v in outcomes.items()} == {"Group": True, "aio.Group": True}, outcomes


def test_closing_the_last_member_wakes_a_blocked_recv() -> None:
    """A thread blocked in group.recv() (no timeout) raises ConnectionClosedOK soon after the last member is
    closed from another thread."""
    with servers(1) as (s,), steadyws.Group() as feeds:
        ws = feeds.connect(s.url, reconnect=False)
        outcome: list[object] = []
        waiter = threading.Thread(target=lambda: outcome.append(outcome_of(feeds.recv)))
        waiter.start()
        time.sleep(0.2)  # let it block (the test holds without it, only proving less)
        with Stopwatch() as watch:
            ws.close()
            waiter.join(10)
        assert not waiter.is_alive() and type(outcome[0]) is ConnectionClosedOK, outcome
        assert watch.elapsed < 3.0


def group_cycle(srvs: list[Any]) -> None:
    """A group's life: three members, a message each, one member reset and reconnected, one closed alone."""
    with steadyws.Group() as feeds:
        members = [feeds.connect(s.url, reconnect=FAST_RETRY) for s in srvs]
        for s in srvs:
            s.send("tick")
        assert len([feeds.recv(timeout=5) for _ in srvs]) == 3
        srvs[0].clients[0].reset()
        events: Pairs = []
        gather(feeds, events, lambda: Opened(None, 2) in lifecycle_of(events, members[0]))
        members[1].close()


async def aio_group_cycle(srvs: list[Any]) -> None:
    """An asyncio group's life, on a loop that ends with it: three members, a message each, one closed alone."""
    async with steadyws.aio.Group() as feeds:
        members = [await feeds.connect(s.url, reconnect=False) for s in srvs]
        for s in srvs:
            s.send("tick")
        assert len([await feeds.recv(timeout=5) for _ in srvs]) == 3
        await members[1].close()


def leak_check(
    cycle: Callable[[], None], cycles: int, fd_count: Callable[[], int], thread_count: Callable[[], ThreadCounts]
) -> dict[str, tuple[int, int]]:
    """What is left above the baseline (+ SLACK) after ``cycles`` more runs of ``cycle``: fds, Python and OS
    threads, goroutines and engine handles."""

    def measure() -> dict[str, int]:
        return {**resources(fd_count, lambda: thread_count().os), "python_threads": thread_count().python}

    for _ in range(2):  # warm-up: the callback thread, the Go runtime's threads
        cycle()
    baseline = steady(measure)
    for _ in range(cycles):
        cycle()
    excess = excess_after_settling(measure, baseline)
    now = measure()
    if now["python_threads"] != baseline["python_threads"]:
        excess["python_threads"] = (baseline["python_threads"], now["python_threads"])
    assert set(SLACK) <= set(baseline)
    return excess


def test_threaded_groups_leak_no_fd_thread_goroutine_or_handle(
    fd_count: Callable[[], int], thread_count: Callable[[], ThreadCounts]
) -> None:
    """Twenty threaded group lives (members connected, reset and reconnected, closed alone and by the group)
    return fds, Python and OS threads, goroutines and engine handles to their baseline."""
    with servers(3) as srvs:
        assert leak_check(lambda: group_cycle(srvs), 20, fd_count, thread_count) == {}


def test_aio_groups_leak_no_fd_thread_goroutine_or_handle(
    fd_count: Callable[[], int], thread_count: Callable[[], ThreadCounts]
) -> None:
    """A hundred asyncio group lives, each on a fresh loop that ends when its `async with` block is left,
    return fds, Python and OS threads, goroutines and engine handles to their baseline."""
    with servers(3) as srvs:
        assert leak_check(lambda: run_on("asyncio", aio_group_cycle(srvs)), 100, fd_count, thread_count) == {}


# -- fork -------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python 3.12+ warns about fork() with threads
def test_group_methods_refuse_in_a_forked_child() -> None:
    """With a live steadyws.Group and a live steadyws.aio.Group (one member each), every public method and
    property of both (found with dir()), and the Group constructors, raise RuntimeError mentioning fork
    within a second in a forked child; repr() does not raise; the parent's groups work on."""
    with servers(1) as (s,):
        feeds = steadyws.Group()
        ws = feeds.connect(s.url, reconnect=False)
        loop = asyncio.new_event_loop()
        afeeds = steadyws.aio.Group()
        aws = loop.run_until_complete(asyncio.wait_for(afeeds.connect(s.url, reconnect=False), 10))
        failures: dict[str, str] = {}
        walked: list[str] = []
        try:
            for label, obj in (("Group", feeds), ("aio.Group", afeeds)):
                for name, call in group_members(type(obj), s.url).items():
                    walked.append(f"{label}.{name}")
                    problem = fork_problem(in_child(lambda c=call, o=obj: c(o)))
                    if problem:
                        failures[f"{label}.{name}"] = problem
                report = in_child(lambda o=obj: repr(o))
                if report["raised"] is not None:
                    failures[f"repr({label})"] = f"{report['raised']}: {report['message']}"
            for label, make in (("steadyws.Group()", steadyws.Group), ("steadyws.aio.Group()", steadyws.aio.Group)):
                walked.append(label)
                problem = fork_problem(in_child(make))
                if problem:
                    failures[label] = problem
            s.send("to the parent")
            parent = [feeds.recv(timeout=5)]
            parent.append(loop.run_until_complete(asyncio.wait_for(afeeds.recv(timeout=5), 10)))
        finally:
            feeds.close()
            loop.run_until_complete(asyncio.wait_for(afeeds.close(), 10))
            loop.close()
    assert not failures, "in a forked child:\n" + "\n".join(f"  {k}: {v}" for k, v in failures.items())
    assert parent == [(ws, "to the parent"), (aws, "to the parent")]
    for needed in ("Group.recv", "Group.members", "Group.connect", "Group.__iter__", "aio.Group.recv_batch"):
        assert needed in walked, walked


# -- asyncio ------------------------------------------------------------------------------------------------


def test_aio_every_members_messages_come_once_in_its_order(loop_name: str) -> None:
    """asyncio: three members each flooded with 20,000 numbered messages, read with `async for`: every message
    exactly once, each member's in its order, paired with the object connect() returned; then nothing more."""

    async def main() -> None:
        with servers(3) as srvs:
            async with steadyws.aio.Group() as feeds:
                members = [await feeds.connect(s.url, reconnect=False) for s in srvs]
                index = {id(ws): i for i, ws in enumerate(members)}
                for s in srvs:
                    s.flood(FLOOD, TICK)
                seen: list[list[int]] = [[] for _ in members]
                total = 0
                async for ws, message in feeds:
                    seen[index[id(ws)]].append(seq_of(message))
                    total += 1
                    if total == 3 * FLOOD:
                        break
                for i, seqs in enumerate(seen):
                    assert seqs == list(range(FLOOD)), f"member {i}: first wrong at {first_gap(seqs)}"
                assert await feeds.recv_batch(timeout=0.2) == []

    run_on(loop_name, main())


def test_aio_a_flooding_member_holds_up_a_quiet_one_by_one_batch_at_most() -> None:
    """asyncio: the flooder and the quiet member of the threaded test; each quiet message that arrived comes
    out of the group after at most 2 * PER_MEMBER items of the flooder's backlog."""

    async def main() -> None:
        with servers(2) as (flooding, quiet_server):
            async with steadyws.aio.Group() as feeds:
                flooder = await feeds.connect(flooding.url, max_queue=20_000, reconnect=False)
                quiet = await feeds.connect(quiet_server.url, reconnect=False)
                flooding.flood(200_000, TICK)
                assert (await feeds.recv(timeout=5))[0] is flooder
                for r in range(4):
                    await async_wait_until(lambda: flooder.stats()["queue_depth"] > 3 * BOUND, what="a backlog")
                    quiet_server.send(f"quiet-{r}")
                    await async_wait_until(lambda r=r: count_in(quiet) == r + 1, what="the quiet message read")
                    backlog = flooder.stats()["queue_depth"]
                    ahead = 0
                    while True:
                        ws, message = await feeds.recv(timeout=5)
                        if ws is quiet:
                            assert message == f"quiet-{r}"
                            break
                        ahead += 1
                    assert backlog > 3 * BOUND
            assert ahead <= BOUND, f"round {r}: {ahead} messages of the flooder came first (bound {BOUND})"

    run_on("asyncio", main())


def test_aio_a_member_closes_alone_and_iteration_ends_quietly(loop_name: str) -> None:
    """asyncio: after `await a.close()` a's Closed appears once in recv_events and a leaves `members` while b
    keeps delivering; `async for` over the group ends quietly once b closes; then recv raises
    ConnectionClosedOK."""

    async def main() -> None:
        with servers(2) as (sa, sb):
            async with steadyws.aio.Group() as feeds:
                a = await feeds.connect(sa.url, reconnect=False)
                b = await feeds.connect(sb.url, reconnect=False)
                await a.close()
                assert a.state == "closed"
                sb.send("b-1")
                events: Pairs = []
                await agather(feeds, events, lambda: lifecycle_of(events, a) and messages_of(events, b))
                events.extend(await feeds.recv_events(timeout=0.3))
                assert lifecycle_of(events, a) == [Closed(1000, "", 0, closed_by="client")]
                assert messages_of(events, b) == ["b-1"] and feeds.members == [b]
                got: list[tuple[Any, object]] = []

                async def iterate() -> str:
                    async for pair in feeds:
                        got.append(pair)
                    return "quietly"

                task = asyncio.ensure_future(iterate())
                sb.send("b-2")
                await async_wait_until(lambda: len(got) == 1, what="b's message in the loop")
                await b.close()
                assert await asyncio.wait_for(task, 5) == "quietly"
                assert got == [(b, "b-2")]
                with pytest.raises(ConnectionClosedOK):
                    await feeds.recv(timeout=5)

    run_on(loop_name, main())


def test_aio_recv_timeouts(loop_name: str) -> None:
    """asyncio: recv(timeout=0.3) raises TimeoutError after about 0.3 s, recv(timeout=0) at once;
    recv_batch and recv_events return [] when their timeout passes with nothing."""

    async def main() -> None:
        with servers(1) as (s,):
            async with steadyws.aio.Group() as feeds:
                await feeds.connect(s.url, reconnect=False)
                with Stopwatch() as watch, pytest.raises(TimeoutError):
                    await feeds.recv(timeout=0.3)
                assert 0.25 <= watch.elapsed < 2.0, watch.elapsed
                with Stopwatch() as watch, pytest.raises(TimeoutError):
                    await feeds.recv(timeout=0)
                assert watch.elapsed < 0.5
                assert await feeds.recv_batch(timeout=0.1) == []
                assert await feeds.recv_events(timeout=0) == []

    run_on(loop_name, main())


def test_aio_the_loop_runs_while_the_group_waits(loop_name: str) -> None:
    """asyncio: a ticker task waking every 10 ms keeps running -- no gap of 250 ms -- while the group waits in
    recv (until its timeout, and until a message sent 0.5 s later), recv_batch and recv_events."""

    async def main() -> Ticker:
        with servers(1) as (s,):
            async with steadyws.aio.Group() as feeds:
                ws = await feeds.connect(s.url, reconnect=False)
                ticker = Ticker().start()
                with pytest.raises(TimeoutError):
                    await feeds.recv(timeout=0.5)
                asyncio.get_running_loop().call_later(0.5, s.send, "late")
                assert await feeds.recv(timeout=5) == (ws, "late")
                assert await feeds.recv_batch(timeout=0.5) == []
                asyncio.get_running_loop().call_later(0.3, s.send, "later")
                assert await feeds.recv_events(timeout=5) == [(ws, "later")]
                await ticker.stop()
                return ticker

    ticker = run_on(loop_name, main())
    assert ticker.largest_gap < 0.25, f"the loop stalled for {ticker.largest_gap:.3f} s"
    assert ticker.ticks >= 30, ticker.ticks


def test_aio_a_member_reconnects_alone_and_resubscribes(loop_name: str) -> None:
    """asyncio: a member's server resets it: its async on_open runs again with the aio.WebSocket connect()
    returned and resubscribes on the new connection; recv_events shows Disconnected ... Opened(connection=2)
    for that member only, and the other member's messages keep coming."""

    async def main() -> None:
        opens: list[Any] = []

        async def on_open(ws: steadyws.aio.WebSocket) -> None:
            opens.append(ws)
            await ws.send("subscribe")

        with servers(2) as (sa, sb):
            async with steadyws.aio.Group() as feeds:
                a = await feeds.connect(sa.url, on_open=on_open, reconnect=FAST_RETRY)
                b = await feeds.connect(sb.url, reconnect=False)
                events: Pairs = []
                sa.clients[0].reset()
                await agather(feeds, events, lambda: lifecycle_of(events, a))
                sb.send("b-during")
                await agather(feeds, events, lambda: Opened(None, 2) in lifecycle_of(events, a))
                await agather(feeds, events, lambda: messages_of(events, b) == ["b-during"])
                for _ in range(2):  # the first subscribe, then the one on the new connection
                    await asyncio.to_thread(sa.expect, lambda m: m == "subscribe")
                assert sa.counts()["handshakes"] == 2
                assert opens == [a, a] and all(ws is a for ws in opens)
                life = lifecycle_of(events, a)
                assert isinstance(life[0], Disconnected) and life[-1] == Opened(None, 2), life
                assert all(isinstance(ev, Reconnecting) for ev in life[1:-1]), life
                assert lifecycle_of(events, b) == []

    run_on(loop_name, main())


def test_aio_callbacks_bad_input_and_a_members_own_receive_calls() -> None:
    """asyncio: on_message is refused with TypeError naming it; bad options raise before any handshake and
    leave no member; bad max_messages/max_events/timeouts raise errors naming the parameter; a member's
    own recv, recv_batch, recv_events and iteration raise RuntimeError; the waiting message stays the group's."""

    async def main() -> None:
        with servers(2) as (s, untouched):
            async with steadyws.aio.Group() as feeds:
                with pytest.raises(TypeError, match="on_message"):
                    await feeds.connect(untouched.url, on_message=lambda ws, m: None)
                for options, exc, name in BAD_OPTIONS:
                    with pytest.raises(exc, match=name):
                        await feeds.connect(untouched.url, **options)
                assert feeds.members == [] and untouched.counts()["handshakes"] == 0
                ws = await feeds.connect(s.url, reconnect=False)
                s.send("waiting")
                await async_wait_until(lambda: count_in(ws) == 1, what="the message read")
                wrong = {}
                for label, call, exc, name in bad_calls(feeds):
                    try:
                        await call()  # type: ignore[misc]
                        wrong[label] = "no error"
                    except Exception as error:  # noqa: BLE001 - checked below
                        if not (type(error) is exc and name in str(error)):
                            wrong[label] = repr(error)
                own = [ws.recv(), ws.recv(timeout=0), ws.recv_batch(), ws.recv_events(), ws.__aiter__().__anext__()]
                for coro in own:
                    with pytest.raises(RuntimeError, match="Group"):
                        await coro
                assert wrong == {}
                assert await feeds.recv(timeout=5) == (ws, "waiting")

    run_on("asyncio", main())


def test_aio_a_connect_that_fails_leaves_no_member_and_the_group_still_ends() -> None:
    """asyncio: a member whose handshake is refused (404) raises HandshakeError from connect and is not a
    member; once the one real member closes, recv raises ConnectionClosedOK (not TimeoutError)."""

    async def main() -> dict[str, object]:
        with servers(2) as (good, refusing):
            async with steadyws.aio.Group() as feeds:
                a = await feeds.connect(good.url, reconnect=False)
                refusing.refuse(404)
                with pytest.raises(steadyws.HandshakeError):
                    await feeds.connect(refusing.url)
                members = feeds.members
                await a.close()
                try:
                    ended: object = await feeds.recv(timeout=2)
                except Exception as exc:  # noqa: BLE001 - checked below
                    ended = type(exc).__name__
                return {"members": [ws is a for ws in members], "recv": ended}

    assert run_on("asyncio", main()) == {"members": [True], "recv": "ConnectionClosedOK"}


def test_aio_leaving_the_block_closes_every_member_then_receive_calls_end(loop_name: str) -> None:
    """asyncio: leaving `async with` closes every member (each "closed", its on_close ran, its server sees it
    go); close() again does nothing; afterwards `members` is empty and recv raises ConnectionClosedOK."""

    async def main() -> dict[str, object]:
        closes: list[Any] = []
        with servers(2) as srvs:
            async with steadyws.aio.Group() as feeds:
                members = [
                    await feeds.connect(s.url, on_close=lambda ws, code, reason: closes.append((ws, code)))
                    for s in srvs
                ]
            assert [ws.state for ws in members] == ["closed", "closed"]
            assert sorted(map(id, (ws for ws, _ in closes))) == sorted(map(id, members))
            for s in srvs:
                await async_wait_until(lambda s=s: s.counts()["live"] == 0, what="the server sees it go")
            await feeds.close()
            try:
                after: object = await feeds.recv(timeout=2)
            except Exception as exc:  # noqa: BLE001 - checked below
                after = type(exc).__name__
            return {"members": feeds.members, "recv": after, "codes": [code for _, code in closes]}

    assert run_on(loop_name, main()) == {"members": [], "recv": "ConnectionClosedOK", "codes": [1000, 1000]}
