"""Opening a connection fails fast, with the right exception class, for each failure mode."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
import steadyws
from helpers import Stopwatch
from servers import EchoServer, MisbehavingServer, tagged, unused_port

QUICK = 5.0  # seconds: every failure here must be reported well within this
DNS_QUICK = 15.0  # the machine's resolver is outside the library's control

HIERARCHY = [
    (steadyws.ConnectionClosed, (steadyws.WebSocketError,)),
    (steadyws.ConnectionClosedOK, (steadyws.ConnectionClosed,)),
    (steadyws.ConnectionClosedError, (steadyws.ConnectionClosed, ConnectionError)),
    (steadyws.ProtocolError, (steadyws.ConnectionClosedError,)),
    (steadyws.MessageTooBig, (steadyws.ConnectionClosedError,)),
    (steadyws.HandshakeError, (steadyws.WebSocketError,)),
    (steadyws.NotConnected, (steadyws.WebSocketError,)),
    (steadyws.QueueFull, (steadyws.WebSocketError,)),
    (steadyws.InternalError, (steadyws.WebSocketError,)),
    (steadyws.OpenTimeout, (steadyws.WebSocketError, TimeoutError)),
    (steadyws.NetworkError, (steadyws.WebSocketError, ConnectionError)),
    (steadyws.DNSError, (steadyws.NetworkError,)),
    (steadyws.ConnectionRefused, (steadyws.NetworkError, ConnectionRefusedError)),
    (steadyws.ConnectionReset, (steadyws.NetworkError, ConnectionResetError)),
    (steadyws.TLSError, (steadyws.NetworkError,)),
    (steadyws.ProxyError, (steadyws.NetworkError,)),
]


def connect_failure(expected: type[BaseException], url: str, limit: float = QUICK, **options: Any) -> BaseException:
    """Assert connect(url) raises ``expected`` within ``limit`` seconds; return the exception."""
    with Stopwatch() as clock, pytest.raises(expected) as info:
        steadyws.connect(url, **options)
    assert clock.elapsed < limit, f"took {clock.elapsed:.2f}s to fail"
    assert str(info.value).strip(), "exception has an empty message"
    return info.value


@pytest.mark.parametrize(("cls", "bases"), HIERARCHY, ids=[c.__name__ for c, _ in HIERARCHY])
def test_exception_hierarchy(cls: type, bases: tuple[type, ...]) -> None:
    """Each exception class derives from the documented parents."""
    for base in bases:
        assert issubclass(cls, base), f"{cls.__name__} is not a {base.__name__}"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/status/403", 403),
        ("/status/404", 404),
        ("/status/500", 500),
        ("/status/503?retry_after=2", 503),
        ("/plain-http", 200),
    ],
)
def test_http_status_instead_of_101(bad_server: MisbehavingServer, path: str, status: int) -> None:
    """A non-101 HTTP answer raises HandshakeError carrying that status, named in the message."""
    error = connect_failure(steadyws.HandshakeError, bad_server.url(path))
    assert isinstance(error, steadyws.HandshakeError)
    assert error.status == status
    assert str(status) in str(error)


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/garbage-response", ("http", "response", "handshake", "malformed", "invalid")),
        ("/bad-accept", ("accept", "handshake")),
    ],
)
def test_broken_upgrade_response(bad_server: MisbehavingServer, path: str, words: tuple[str, ...]) -> None:
    """Garbage instead of HTTP, or a wrong Sec-WebSocket-Accept, raises HandshakeError with a telling message."""
    message = str(connect_failure(steadyws.HandshakeError, bad_server.url(path))).lower()
    assert any(word in message for word in words), message


def test_connection_refused() -> None:
    """Nothing listening raises ConnectionRefused, which is also ConnectionRefusedError / ConnectionError."""
    error = connect_failure(steadyws.ConnectionRefused, f"ws://127.0.0.1:{unused_port()}/echo")
    assert isinstance(error, ConnectionRefusedError)
    assert isinstance(error, ConnectionError)


def test_unknown_host() -> None:
    """An unresolvable host raises DNSError, which is also a ConnectionError."""
    error = connect_failure(steadyws.DNSError, "ws://nosuchhost.invalid/echo", limit=DNS_QUICK)
    assert isinstance(error, ConnectionError)


def test_tls_untrusted_certificate(wss_server: EchoServer) -> None:
    """A certificate from a CA the client wasn't given raises TLSError."""
    connect_failure(steadyws.TLSError, wss_server.url("/echo"))


def test_redirect_is_not_followed(bad_server: MisbehavingServer, ws_server: EchoServer) -> None:
    """A 302 to a working endpoint is still a HandshakeError: credentials never follow a redirect elsewhere."""
    path = tagged("/echo")
    target = urllib.parse.quote(ws_server.url(path), safe="")
    error = connect_failure(steadyws.HandshakeError, bad_server.url(f"/status/302?location={target}"))
    assert isinstance(error, steadyws.HandshakeError) and error.status == 302
    assert not [e for e in ws_server.events if e.target == path]


def test_tls_wrong_hostname(wss_server: EchoServer, ca_file: str) -> None:
    """A trusted certificate that doesn't match server_hostname raises TLSError."""
    connect_failure(steadyws.TLSError, wss_server.url("/echo"), ca_file=ca_file, server_hostname="wrong.example")


def test_open_timeout(bad_server: MisbehavingServer) -> None:
    """A server that never answers the upgrade raises OpenTimeout (a TimeoutError) after open_timeout."""
    with Stopwatch() as clock, pytest.raises(steadyws.OpenTimeout) as info:
        steadyws.connect(bad_server.url("/silent"), open_timeout=0.5)
    assert isinstance(info.value, TimeoutError)
    assert 0.45 <= clock.elapsed < 3
