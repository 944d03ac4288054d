"""Issue 9, ends: one end gives one exception everywhere (with who closed first), a close
without a code is normal, a send on a dropped connection is an immediate NotConnected, an
asyncio send never blocks the loop, close() finishes after a cancel or Ctrl-C, and TLS
failures are TLSError."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import steadyws
import trustme
from conftest import server_tls_context
from helpers import Stopwatch, outcome_of
from promise_support import PromiseServer, Ticker, async_wait_until, wait_until
from servers import EchoServer, MisbehavingServer, tagged
from steadyws.testing import Server

SEND_BOUND = 0.5  # seconds: "at once" for a send, with room for a loaded machine (0.1.0 blocked ~1 s)
LOOP_BOUND = 0.5  # seconds: the largest gap a 10 ms ticker may see (0.1.0 stalled the loop >= 1 s)


@pytest.fixture(scope="module")
def promise_server() -> Iterator[PromiseServer]:
    server = PromiseServer()
    yield server
    server.close()


def fast_reconnect() -> steadyws.Backoff:
    return steadyws.Backoff(min=0.05, max=0.1, jitter=False)


# -- row 14: one end, one exception ---------------------------------------------------


def described(error: object) -> tuple[object, ...]:
    """(class, code, reason, closed_by) of a ConnectionClosed; the repr of anything else."""
    if not isinstance(error, steadyws.ConnectionClosed):
        return (repr(error),)
    return type(error), error.code, error.reason, getattr(error, "closed_by", "<no closed_by>")


@pytest.mark.parametrize("how", ["server-close", "protocol-violation", "reset"])
def test_one_end_one_exception(steadyws_server: Server, bad_server: MisbehavingServer, how: str) -> None:
    """After a server close 1000 "bye", a protocol violation (we close with 1002) or a TCP reset (1006),
    send(), recv(), recv_batch() and iteration raise the same class with the same code, reason and
    closed_by ("server", "client", None), which match ws.close_code and ws.close_reason."""
    expected: dict[str, tuple[type[steadyws.ConnectionClosed], int, str | None, str | None]] = {
        "server-close": (steadyws.ConnectionClosedOK, 1000, "bye", "server"),
        "protocol-violation": (steadyws.ProtocolError, 1002, None, "client"),
        "reset": (steadyws.ConnectionClosedError, 1006, "", None),
    }
    url = bad_server.url(tagged("/garbage-frames?kind=opcode")) if how == "protocol-violation" else steadyws_server.url
    ws = steadyws.connect(url, reconnect=False)
    try:
        if how == "server-close":
            steadyws_server.close(1000, "bye")
        elif how == "reset":
            steadyws_server.reset()
        wait_until(lambda: ws.state == "closed", what="the end of the connection")
        outcomes = {
            "send": outcome_of(lambda: ws.send("after the end")),
            "recv": outcome_of(lambda: ws.recv(timeout=5)),
            "recv_batch": outcome_of(lambda: ws.recv_batch(timeout=5)),
            "send again": outcome_of(lambda: ws.send("after the end")),
            "recv again": outcome_of(lambda: ws.recv(timeout=5)),
            "next(iter(ws))": outcome_of(lambda: next(iter(ws))),
        }
        close_code, close_reason = ws.close_code, ws.close_reason
    finally:
        ws.close()
    seen = {call: described(error) for call, error in outcomes.items()}
    kind, code, reason, closed_by = expected[how]
    if how == "server-close":  # a normal close ends iteration quietly
        assert isinstance(outcomes.pop("next(iter(ws))"), StopIteration), seen
        seen.pop("next(iter(ws))")
    first = next(iter(seen.values()))
    assert all(d == first for d in seen.values()), f"different exceptions for one end: {seen}"
    assert isinstance(first[0], type) and issubclass(first[0], kind) and first[1] == code, seen
    if reason is not None:
        assert first[2] == reason, seen
    assert first[3] == closed_by, f"closed_by: {seen}"
    assert (close_code, close_reason) == (first[1], first[2])


# -- row 13: a close frame without a code is a normal close ----------------------------


def test_empty_close_frame_is_a_normal_close(promise_server: PromiseServer, caplog: pytest.LogCaptureFixture) -> None:
    """A server close frame without a body (1005): recv raises ConnectionClosedOK with code 1005 and
    closed_by "server", and the "steadyws" logger says nothing above INFO."""
    caplog.set_level(logging.DEBUG, logger="steadyws")
    target = tagged("/empty-close")
    ws = steadyws.connect(promise_server.url(target), reconnect=False)
    try:
        error = outcome_of(lambda: ws.recv(timeout=5))
        close_code = ws.close_code
    finally:
        ws.close()
    assert isinstance(error, steadyws.ConnectionClosedOK), repr(error)
    assert error.code == 1005 and getattr(error, "closed_by", None) == "server", described(error)
    assert close_code == 1005
    loud = [r for r in caplog.records if r.name.startswith("steadyws") and r.levelno > logging.INFO]
    assert not loud, [f"{r.levelname}: {r.getMessage()}" for r in loud]


# -- row 4: a send on a connection that just dropped -----------------------------------


RESETS = 20


def test_send_on_a_just_dropped_connection_is_not_connected(steadyws_server: Server) -> None:
    """A thread sends in a loop while the server resets the connection 20 times (reconnect on): every
    send that does not go out raises NotConnected, and no send blocks (0.1.0: ~1 s, then
    ConnectionClosedError 1006)."""
    stop = threading.Event()
    outcomes: dict[str, int] = {}
    wrong: list[str] = []
    slowest = 0.0
    ws = steadyws.connect(steadyws_server.url, reconnect=fast_reconnect())

    def sender() -> None:
        nonlocal slowest
        while not stop.is_set():
            with Stopwatch() as clock:
                error = outcome_of(lambda: ws.send("x" * 100))
            slowest = max(slowest, clock.elapsed)
            kind = "ok" if error is None else type(error).__name__
            outcomes[kind] = outcomes.get(kind, 0) + 1
            if error is not None and not isinstance(error, steadyws.NotConnected):
                wrong.append(repr(error))
            if clock.elapsed > SEND_BOUND:
                wrong.append(f"a send took {clock.elapsed:.2f} s ({kind})")

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    try:
        for reset in range(RESETS):
            went_out = outcomes.get("ok", 0)
            wait_until(lambda n=went_out: outcomes.get("ok", 0) > n or bool(wrong), what="sends going out")
            time.sleep(0.05)  # sends going out on this connection when it drops
            steadyws_server.reset()
            wait_until(lambda n=reset + 2: ws.stats()["connects"] >= n or bool(wrong), what="connected again")
            if wrong:
                break
    finally:
        stop.set()
        thread.join(10)
        ws.close()
    assert not wrong, f"{wrong[:3]}; outcomes {outcomes}"
    assert slowest <= SEND_BOUND
    assert outcomes.get("NotConnected", 0) > 0, f"no send was refused during 20 reconnects: {outcomes}"


def test_aio_send_on_a_just_dropped_connection_is_not_connected(steadyws_server: Server) -> None:
    """asyncio: the same, and the loop is never stalled (a 10 ms ticker's largest gap stays small)."""

    async def main() -> tuple[dict[str, int], list[str], float]:
        ws = await steadyws.aio.connect(steadyws_server.url, reconnect=fast_reconnect())
        ticker = Ticker().start()
        outcomes: dict[str, int] = {}
        wrong: list[str] = []
        stop = asyncio.Event()

        async def sender() -> None:
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                started = loop.time()
                try:
                    await ws.send("x" * 100)
                    kind = "ok"
                except steadyws.NotConnected:
                    kind = "NotConnected"
                except Exception as exc:  # noqa: BLE001 - reported below
                    kind = type(exc).__name__
                    wrong.append(repr(exc))
                elapsed = loop.time() - started
                outcomes[kind] = outcomes.get(kind, 0) + 1
                if elapsed > SEND_BOUND:
                    wrong.append(f"a send took {elapsed:.2f} s ({kind})")
                await asyncio.sleep(0)

        task = asyncio.ensure_future(sender())
        try:
            for reset in range(RESETS):
                went_out = outcomes.get("ok", 0)
                await async_wait_until(
                    lambda n=went_out: outcomes.get("ok", 0) > n or bool(wrong), what="sends going out"
                )
                await asyncio.sleep(0.05)
                await asyncio.to_thread(steadyws_server.reset)
                await async_wait_until(
                    lambda n=reset + 2: ws.stats()["connects"] >= n or bool(wrong), what="connected again"
                )
                if wrong:
                    break
        finally:
            stop.set()
            await task
            await ticker.stop()
            await ws.close()
        return outcomes, wrong, ticker.largest_gap

    outcomes, wrong, gap = asyncio.run(asyncio.wait_for(main(), 120))
    assert not wrong, f"{wrong[:3]}; outcomes {outcomes}"
    assert gap < LOOP_BOUND, f"the event loop stalled for {gap:.2f} s"
    assert outcomes.get("NotConnected", 0) > 0, f"no send was refused during 20 reconnects: {outcomes}"


# -- row 5: an asyncio send to a peer that stopped reading -------------------------------


def test_aio_send_to_a_peer_that_stopped_reading_never_blocks_the_loop(promise_server: PromiseServer) -> None:
    """asyncio, write_timeout=1, a server that never reads: while big sends wait for room the loop keeps
    running (a ticker's largest gap stays small), and once write_timeout passes send raises
    ConnectionClosed (or NotConnected) within a generous bound."""
    big = b"\x00" * (1 << 20)

    async def main() -> tuple[BaseException | None, float, float, float, int]:
        ws = await steadyws.aio.connect(
            promise_server.url(tagged("/no-read?ms=30000")), write_timeout=1, reconnect=False, close_timeout=1
        )
        ticker = Ticker().start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        error: BaseException | None = None
        longest, sent = 0.0, 0
        try:
            while loop.time() - started < 20:
                before = loop.time()
                try:
                    await ws.send(big)
                    sent += 1
                except (steadyws.ConnectionClosed, steadyws.NotConnected) as exc:
                    error = exc
                    break
                finally:
                    longest = max(longest, loop.time() - before)
        finally:
            await ticker.stop()
            await ws.close()
        return error, ticker.largest_gap, longest, loop.time() - started, sent

    error, gap, longest, total, sent = asyncio.run(asyncio.wait_for(main(), 60))
    assert gap < LOOP_BOUND, f"the event loop stalled for {gap:.2f} s while a send waited ({sent} MiB sent)"
    assert error is not None, f"{sent} MiB sent in {total:.1f} s to a server that reads nothing"
    assert longest < 1 + 5, f"one send waited {longest:.2f} s with write_timeout=1"


# -- row 12: close() after a cancel or Ctrl-C finishes the job ---------------------------


def test_cancelled_aio_close_then_close_again(promise_server: PromiseServer) -> None:
    """A cancelled `await ws.close()` (the server delays its close answer), then a second `await ws.close()`:
    it completes, the state is "closed", and on_close ran exactly once."""
    target = tagged("/close-late?ms=1500")
    closes: list[int] = []

    async def main() -> None:
        ws = await steadyws.aio.connect(
            promise_server.url(target), reconnect=False, on_close=lambda ws, code, reason: closes.append(code)
        )
        first = asyncio.ensure_future(ws.close())
        await asyncio.to_thread(promise_server.wait_for, lambda e: e.target == target and e.kind == "client_close")
        assert not first.done(), "close() returned before the server answered"
        first.cancel()
        await asyncio.wait([first])
        await asyncio.wait_for(ws.close(), 15)
        assert ws.state == "closed", f"the second close() returned in state {ws.state!r}"
        await async_wait_until(lambda: len(closes) >= 1, timeout=5, what="on_close")
        await asyncio.sleep(0.2)  # a second on_close (the bug) would show by now

    asyncio.run(asyncio.wait_for(main(), 30))
    assert closes == [1000], f"on_close calls: {closes}"


# Python leaves SIGINT ignored if it started that way (a background job of a
# non-interactive shell does): the script installs the usual handler itself.
CTRL_C_SCRIPT = textwrap.dedent(
    """
    import json, signal, sys, time
    import steadyws
    signal.signal(signal.SIGINT, signal.default_int_handler)
    closes = []
    ws = steadyws.connect(sys.argv[1], reconnect=False, on_close=lambda ws, code, reason: closes.append(code))
    print("ready", flush=True)
    try:
        ws.close()
        print("close returned", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    ws.close()
    state = ws.state
    after_close = len(closes)
    time.sleep(0.3)
    print(json.dumps({"state": state, "on_close_after_close": after_close, "on_close": closes}), flush=True)
    """
)


def test_ctrl_c_inside_close_then_close_again(promise_server: PromiseServer, tmp_path: Path) -> None:
    """Threaded: Ctrl-C (SIGINT) while close() waits for the server, then close() again: it finishes
    (state "closed") and on_close ran exactly once, before close() returned."""
    target = tagged("/close-late?ms=3000")
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT, promise_server.url(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        promise_server.wait_for(lambda e: e.target == target and e.kind == "client_close", timeout=10)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = out.splitlines()
    assert lines and lines[0] == "interrupted", f"stdout {out!r}, stderr {err[-2000:]!r}"
    result = json.loads(lines[-1])
    assert result["state"] == "closed", result
    assert result["on_close"] == [1000] and result["on_close_after_close"] == 1, result
    assert proc.returncode == 0, err[-2000:]


# -- row 17: TLS failures are TLSError ---------------------------------------------------


@pytest.fixture(scope="module")
def mtls_server(tls_ca: trustme.CA) -> Iterator[EchoServer]:
    """A wss echo server that requires a client certificate issued by the test CA."""
    context = server_tls_context(tls_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    tls_ca.configure_trust(context)
    server = EchoServer(ssl_context=context)
    yield server
    server.close()


CONNECTS: dict[str, Callable[..., Any]] = {
    "threaded": lambda url, **options: steadyws.connect(url, **options).close(),
    "asyncio": lambda url, **options: asyncio.run(_aio_open_close(url, **options)),
}


async def _aio_open_close(url: str, **options: Any) -> None:
    ws = await asyncio.wait_for(steadyws.aio.connect(url, **options), 30)
    await ws.close()


@pytest.mark.parametrize("api", sorted(CONNECTS))
def test_wss_to_a_plain_tcp_port_is_a_tls_error(ws_server: EchoServer, api: str) -> None:
    """wss:// to a port that speaks plain WebSocket (no TLS) raises TLSError saying TLS failed."""
    url = ws_server.url("/echo").replace("ws://", "wss://", 1)
    with pytest.raises(steadyws.TLSError, match="(?i)tls"):
        CONNECTS[api](url, reconnect=False, open_timeout=5)


@pytest.mark.parametrize("api", sorted(CONNECTS))
def test_mutual_tls_without_a_client_certificate_is_a_tls_error(
    mtls_server: EchoServer, ca_file: str, api: str
) -> None:
    """A server that requires a client certificate, none given: TLSError saying TLS failed."""
    with pytest.raises(steadyws.TLSError, match="(?i)tls"):
        CONNECTS[api](mtls_server.url("/echo"), ca_file=ca_file, reconnect=False, open_timeout=5)
