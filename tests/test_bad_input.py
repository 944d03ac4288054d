"""Invalid arguments are refused up front with an error that names the parameter.

Connect-time checks use a URL where nothing listens: a library that did any
network I/O before validating would raise ConnectionRefused instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import steadyws
from servers import EchoServer, unused_port


@pytest.fixture(scope="module")
def refused_url() -> str:
    return f"ws://127.0.0.1:{unused_port()}/echo"


@pytest.fixture
def echo_ws(ws_server: EchoServer) -> Iterator[Any]:
    with steadyws.connect(ws_server.url("/echo")) as ws:
        yield ws


def assert_still_usable(ws: Any) -> None:
    assert ws.state == "open"
    ws.send("still usable")
    assert ws.recv(timeout=5) == "still usable"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://x", ValueError),
        ("ftp://", ValueError),
        ("", ValueError),
        (123, TypeError),
        (None, TypeError),
        (b"ws://127.0.0.1/", TypeError),
        ("ws://127.0.0.1:0/", ValueError),
        ("ws://127.0.0.1:65536/", ValueError),
        ("ws://127.0.0.1:port/", ValueError),
        ("ws:///no-host", ValueError),
    ],
)
def test_bad_url(url: Any, error: type[Exception]) -> None:
    """A non-ws(s) or non-str URL is refused with an error naming "url"."""
    with pytest.raises(error, match="(?i)url"):
        steadyws.connect(url)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("headers", {"X-Bad": "a\r\nInjected: 1"}),
        ("headers", {"X-Bad": "carriage\rreturn"}),
        ("headers", {"X-Bad\n": "v"}),
        ("headers", [("X-Bad", "line\nbreak")]),
        ("headers", {"X-Bad": "nul\x00byte"}),
        ("headers", {"": "empty name"}),
        ("open_timeout", float("nan")),
        ("ping_interval", float("nan")),
        ("ping_interval", 0),
        ("write_timeout", -0.5),
        ("overflow", "drop_all"),
        ("max_queue_bytes", 0),
        ("open_timeout", -1),
        ("close_timeout", -1),
        ("max_message_size", 0),
        ("max_message_size", -5),
        ("max_queue", 0),
        ("subprotocols", ["a b"]),
        ("subprotocols", [""]),
    ],
)
def test_bad_option(refused_url: str, name: str, value: Any) -> None:
    """An invalid connect option raises ValueError naming the option, before any network I/O."""
    with pytest.raises(ValueError, match=name):
        steadyws.connect(refused_url, **{name: value})


@pytest.mark.parametrize("message", [123, None, ["x"], {"a": 1}, 1.5], ids=repr)
def test_send_rejects_non_messages(echo_ws: Any, message: Any) -> None:
    """send() of anything but str or bytes-like raises TypeError and sends nothing."""
    with pytest.raises(TypeError):
        echo_ws.send(message)
    assert_still_usable(echo_ws)


@pytest.mark.parametrize("code", [999, 1005, 1006, 5000])
def test_close_rejects_invalid_code(echo_ws: Any, code: int) -> None:
    """close() with a code that may not be sent raises ValueError naming "code" and keeps the connection."""
    with pytest.raises(ValueError, match="code"):
        echo_ws.close(code=code)
    assert_still_usable(echo_ws)


@pytest.mark.parametrize("reason", ["x" * 200, "é" * 62], ids=["200-ascii", "124-utf8-bytes"])
def test_close_rejects_long_reason(echo_ws: Any, reason: str) -> None:
    """close() with a reason over 123 UTF-8 bytes raises ValueError naming "reason"."""
    with pytest.raises(ValueError, match="reason"):
        echo_ws.close(reason=reason)
    assert_still_usable(echo_ws)


def test_recv_rejects_negative_timeout(echo_ws: Any) -> None:
    """recv(timeout=-1) raises ValueError naming "timeout"."""
    with pytest.raises(ValueError, match="timeout"):
        echo_ws.recv(timeout=-1)
    assert_still_usable(echo_ws)


def test_recv_batch_rejects_zero_max_messages(echo_ws: Any) -> None:
    """recv_batch(max_messages=0) raises ValueError naming "max_messages"."""
    with pytest.raises(ValueError, match="max_messages"):
        echo_ws.recv_batch(max_messages=0)
    assert_still_usable(echo_ws)
