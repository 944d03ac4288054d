"""Broken peers, protocol violations, closes and misuse end in clean exceptions, never a crash."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import steadyws
from helpers import Stopwatch, outcome_of
from payloads import binary_payload
from servers import GARBAGE_FRAME_KINDS, EchoServer, MisbehavingServer, tagged

# These tests are about one connection: when the server ends it, it stays ended.
connect_once = functools.partial(steadyws.connect, reconnect=False)

SEND_DEADLINE = 10.0  # seconds a send loop may run before we call it stuck


def send_until_failure(ws: Any) -> BaseException:
    """Send 100-byte messages in a tight loop until send raises; return what it raised."""
    deadline = time.monotonic() + SEND_DEADLINE
    while time.monotonic() < deadline:
        try:
            ws.send("x" * 100)
        except steadyws.QueueFull:
            time.sleep(0.01)  # back-pressure is not the failure we are waiting for
        except Exception as exc:  # noqa: BLE001 - the class is asserted by the caller
            return exc
    pytest.fail(f"send never failed within {SEND_DEADLINE}s of the server resetting")


# -- peer resets / truncates the connection ------------------------------------


def test_send_after_peer_reset(bad_server: MisbehavingServer) -> None:
    """A TCP reset mid-stream surfaces as a WebSocketError; later sends raise ConnectionClosed."""
    with connect_once(bad_server.url(tagged("/reset-after?ms=300"))) as ws:
        error = send_until_failure(ws)
        assert isinstance(error, steadyws.WebSocketError), repr(error)
        with pytest.raises(steadyws.ConnectionClosed):
            ws.send("after the reset")
        assert ws.state in ("closing", "closed")  # the end is decided; the engine may still be finishing
        assert ws.wait_closed(timeout=10)
        assert ws.state == "closed"


SIGPIPE_SCRIPT = textwrap.dedent(
    """
    import signal, sys, time
    import steadyws
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    ws = steadyws.connect(sys.argv[1], ca_file=sys.argv[2] or None, reconnect=False)
    if sys.argv[3] == "recv":
        try:
            ws.recv(timeout=10)
            sys.exit("recv returned a message")
        except steadyws.ConnectionClosedError:
            pass
    deadline = time.monotonic() + 10
    while True:
        if time.monotonic() > deadline:
            sys.exit("send never failed")
        try:
            ws.send("x" * 100)
        except steadyws.QueueFull:
            time.sleep(0.01)
        except steadyws.WebSocketError:
            break
    try:
        ws.send("after the reset")
    except steadyws.ConnectionClosed:
        print("survived")
    else:
        sys.exit("send after the reset did not raise ConnectionClosed")
    """
)


@pytest.mark.parametrize("tls,mode", [(False, "send"), (True, "send"), (True, "recv")])
def test_reset_with_default_sigpipe_does_not_kill_process(
    bad_server: MisbehavingServer, bad_tls_server: MisbehavingServer, ca_file: str, tls: bool, mode: str, tmp_path: Path
) -> None:
    """Writing to a reset socket with SIGPIPE at SIG_DFL raises instead of killing the process.

    In the wss/recv case the reader sees the reset first, and closing the dead
    TLS connection writes a close_notify alert to the reset socket: EPIPE every
    time, so this case fails deterministically without MSG_NOSIGNAL. The plain
    write path is proven deterministically in core's Go tests.
    """
    server = bad_tls_server if tls else bad_server
    url = server.url(tagged("/reset-after?ms=300"))
    result = subprocess.run(
        [sys.executable, "-c", SIGPIPE_SCRIPT, url, ca_file if tls else "", mode],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode not in (-signal.SIGPIPE, 128 + signal.SIGPIPE), "killed by SIGPIPE"
    assert result.returncode == 0, result.stderr
    assert "survived" in result.stdout


def test_eof_in_the_middle_of_a_frame(bad_server: MisbehavingServer) -> None:
    """The server closing TCP mid-frame raises ConnectionClosedError with code 1006."""
    with connect_once(bad_server.url(tagged("/close-mid-frame"))) as ws:
        with pytest.raises(steadyws.ConnectionClosedError) as info:
            ws.recv(timeout=5)
    assert info.value.code == 1006


# -- protocol violations from the server ----------------------------------------


def recv_violation(
    server: MisbehavingServer, target: str, expected: type[steadyws.ConnectionClosed], code: int, **options: Any
) -> None:
    """recv on ``target`` raises ``expected`` with ``code``, and the server got a masked close ``code``."""
    with connect_once(server.url(target), **options) as ws:
        with pytest.raises(expected) as info:
            ws.recv(timeout=5)
    assert info.value.code == code
    event = server.close_event(target)
    assert (event.kind, event.code, event.masked) == ("client_close", code, True)


@pytest.mark.parametrize("kind", GARBAGE_FRAME_KINDS)
def test_invalid_frame(bad_server: MisbehavingServer, kind: str) -> None:
    """An invalid frame (reserved opcode, stray RSV1, bad control frame...) raises ProtocolError; close 1002."""
    recv_violation(bad_server, tagged(f"/garbage-frames?kind={kind}"), steadyws.ProtocolError, 1002)


def test_invalid_utf8_text(bad_server: MisbehavingServer) -> None:
    """A text message that is not UTF-8 raises ProtocolError; the client closes with 1007."""
    recv_violation(bad_server, tagged("/invalid-utf8"), steadyws.ProtocolError, 1007)


def test_message_over_max_size(bad_server: MisbehavingServer) -> None:
    """A 2000-byte message with max_message_size=1000 raises MessageTooBig; the client closes with 1009."""
    recv_violation(bad_server, tagged("/too-big?size=2000"), steadyws.MessageTooBig, 1009, max_message_size=1000)


def test_message_at_max_size_is_accepted(bad_server: MisbehavingServer) -> None:
    """A message of exactly max_message_size bytes is delivered."""
    with connect_once(bad_server.url(tagged("/too-big?size=1000")), max_message_size=1000) as ws:
        assert ws.recv(timeout=5) == binary_payload(1000)


def test_max_size_applies_to_whole_fragmented_message(ws_server: EchoServer) -> None:
    """Fragments each under the limit but over it together raise MessageTooBig."""
    with connect_once(ws_server.url("/fragments?n=4&size=2000&kind=binary"), max_message_size=1000) as ws:
        with pytest.raises(steadyws.MessageTooBig):
            ws.recv(timeout=5)


# -- close codes from the server ------------------------------------------------


def test_server_close_with_application_code(ws_server: EchoServer) -> None:
    """A server close 4001 "bye" raises ConnectionClosedError carrying that code and reason."""
    with connect_once(ws_server.url("/close?code=4001&reason=bye")) as ws:
        with pytest.raises(steadyws.ConnectionClosedError) as info:
            ws.recv(timeout=5)
        assert (ws.close_code, ws.close_reason) == (4001, "bye")
    assert (info.value.code, info.value.reason) == (4001, "bye")


def test_iteration_raises_on_error_close(ws_server: EchoServer) -> None:
    """`for m in ws` raises ConnectionClosedError when the server closes with a non-normal code."""
    with connect_once(ws_server.url("/close?code=4001&reason=bye")) as ws:
        with pytest.raises(steadyws.ConnectionClosedError):
            for _ in ws:
                pass


@pytest.mark.parametrize("code", [1000, 1001])
def test_normal_server_close(ws_server: EchoServer, code: int) -> None:
    """A server close 1000/1001 raises ConnectionClosedOK from recv and ends iteration quietly."""
    url = ws_server.url(f"/close?code={code}")
    with connect_once(url) as ws:
        with pytest.raises(steadyws.ConnectionClosedOK) as info:
            ws.recv(timeout=5)
    assert info.value.code == code
    with connect_once(url) as ws:
        assert list(ws) == []
        assert ws.close_code == code


# -- close() semantics ------------------------------------------------------------


def test_close_is_idempotent(ws_server: EchoServer) -> None:
    """close() twice raises nothing; afterwards the state is closed and send raises ConnectionClosed."""
    ws = connect_once(ws_server.url("/echo"))
    ws.close()
    ws.close()
    assert ws.state == "closed"
    with pytest.raises(steadyws.ConnectionClosed):
        ws.send("too late")


def test_concurrent_close(ws_server: EchoServer) -> None:
    """close() from 8 threads at once raises nothing anywhere and leaves the connection closed."""
    ws = connect_once(ws_server.url("/echo"))
    start = threading.Barrier(8)
    outcomes: list[object] = []

    def closer() -> None:
        start.wait()
        outcomes.append(outcome_of(ws.close))

    threads = [threading.Thread(target=closer, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads), "a close() call hung"
    assert outcomes == [None] * 8
    assert ws.state == "closed"


def test_close_wakes_blocked_recv(ws_server: EchoServer) -> None:
    """close() from one thread makes a recv() blocked in another raise ConnectionClosedOK promptly."""
    ws = connect_once(ws_server.url("/echo"))
    outcomes: list[object] = []
    reader = threading.Thread(target=lambda: outcomes.append(outcome_of(ws.recv)), daemon=True)
    reader.start()
    time.sleep(0.3)
    assert reader.is_alive(), f"recv returned early: {outcomes}"
    with Stopwatch() as clock:
        ws.close()
        reader.join(10)
    assert not reader.is_alive(), "recv still blocked after close()"
    assert clock.elapsed < 2
    assert isinstance(outcomes[0], steadyws.ConnectionClosedOK), repr(outcomes[0])


def test_with_block_closes_normally(ws_server: EchoServer) -> None:
    """Leaving a `with` block closes the connection with code 1000."""
    target = tagged("/record-close")
    with connect_once(ws_server.url(target)) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
    assert ws.state == "closed"
    assert ws_server.close_event(target).code == 1000


def test_with_block_closes_with_1011_on_exception(ws_server: EchoServer) -> None:
    """An exception escaping a `with` block closes with 1011 and still propagates."""

    class Boom(Exception):
        pass

    target = tagged("/record-close")
    with pytest.raises(Boom):
        with connect_once(ws_server.url(target)):
            raise Boom
    assert ws_server.close_event(target).code == 1011


# -- fork ----------------------------------------------------------------------------


def child_exit_code(action: Callable[[], object]) -> int:
    """0: RuntimeError mentioning fork; 1: no error; 2: other RuntimeError; 3: other exception."""
    try:
        action()
    except RuntimeError as exc:
        return 0 if "fork" in str(exc).lower() else 2
    except BaseException:  # noqa: BLE001 - reported through the exit code
        return 3
    return 1


def run_in_fork(action: Callable[[], object], timeout: float = 10.0) -> int:
    """Run ``action`` in a forked child; return the child's exit code (it is killed if it hangs)."""
    pid = os.fork()
    if pid == 0:
        code = 4
        try:
            code = child_exit_code(action)
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"forked child hung for {timeout}s")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python 3.12+ warns about fork with threads
@pytest.mark.parametrize("use", ["send", "connect"])
def test_use_after_fork_is_refused(ws_server: EchoServer, use: str) -> None:
    """In a forked child, using steadyws raises RuntimeError about fork; the parent's connection still works."""
    url = ws_server.url("/echo")
    with connect_once(url) as ws:
        actions: dict[str, Callable[[], object]] = {
            "send": lambda: ws.send("from child"),
            "connect": lambda: connect_once(url),
        }
        assert run_in_fork(actions[use]) == 0
        ws.send("from parent")
        assert ws.recv(timeout=5) == "from parent"
