"""Proxies: HTTP CONNECT and SOCKS5, explicit or from the environment, and their credentials kept secret."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import steadyws
from proxies import ConnectProxy, SocksProxy
from servers import EchoServer


@pytest.fixture
def connect_proxy(ws_server: EchoServer) -> Iterator[ConnectProxy]:
    """A CONNECT proxy that wants alice:p@ss and routes feed.test to the echo server."""
    port = ws_server.url("/").split(":")[2].split("/")[0]
    proxy = ConnectProxy(user="alice", password="p@ss", route={"feed.test": f"127.0.0.1:{port}"})
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def socks_proxy() -> Iterator[SocksProxy]:
    proxy = SocksProxy("bob", "s0cks-pw")
    yield proxy
    proxy.close()


def echo_once(ws: steadyws.WebSocket, text: str) -> str:
    ws.send(text)
    return str(ws.recv(timeout=5))


def test_http_connect_proxy_with_credentials(connect_proxy: ConnectProxy) -> None:
    """proxy="http://user:pass@host:port" tunnels with CONNECT and sends Basic credentials to the proxy."""
    with steadyws.connect("ws://feed.test:80/echo", proxy=connect_proxy.url("alice:p%40ss")) as ws:
        assert echo_once(ws, "via CONNECT") == "via CONNECT"
        seen = repr(ws) + ws.url + str(ws.stats())
    assert "p%40ss" not in seen and "p@ss" not in seen and "127.0.0.1" not in seen
    assert connect_proxy.requests == [("feed.test:80", "Basic YWxpY2U6cEBzcw==")]


def test_wss_through_connect_proxy_stays_end_to_end(wss_server: EchoServer, ca_file: str) -> None:
    """Through a proxy, wss:// is still TLS to the server: the proxy tunnels ciphertext for the named host."""
    proxy = ConnectProxy()
    try:
        with steadyws.connect(wss_server.url("/echo"), ca_file=ca_file, proxy=proxy.url()) as ws:
            assert echo_once(ws, "tls inside") == "tls inside"
        assert [target for target, _ in proxy.requests] == [wss_server.url("").split("//")[1]]
    finally:
        proxy.close()


def test_proxy_auth_refused_is_a_proxy_error(connect_proxy: ConnectProxy, caplog: pytest.LogCaptureFixture) -> None:
    """A 407 raises ProxyError with the status; the wrong password appears nowhere."""
    caplog.set_level(logging.DEBUG, logger="steadyws")
    with pytest.raises(steadyws.ProxyError) as err:
        steadyws.connect("ws://feed.test:80/echo", proxy=connect_proxy.url("alice:wrong-pw"))
    assert err.value.status == 407 and "407" in str(err.value)
    assert isinstance(err.value, steadyws.NetworkError)
    assert "wrong-pw" not in str(err.value) + repr(err.value) + caplog.text


def test_proxy_from_environment(connect_proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    """By default HTTP_PROXY (ws://) and HTTPS_PROXY (wss://) apply, NO_PROXY exempts, proxy=None ignores them."""
    monkeypatch.setenv("HTTP_PROXY", connect_proxy.url("alice:p%40ss"))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")  # not for ws://
    with steadyws.connect("ws://feed.test:80/echo") as ws:
        assert echo_once(ws, "from the environment") == "from the environment"
    assert [target for target, _ in connect_proxy.requests] == ["feed.test:80"]
    # feed.test exists only behind the proxy: going direct fails to resolve it.
    with pytest.raises(steadyws.DNSError):
        steadyws.connect("ws://feed.test:80/echo", proxy=None, open_timeout=5)
    monkeypatch.setenv("NO_PROXY", "feed.test")
    with pytest.raises(steadyws.DNSError):
        steadyws.connect("ws://feed.test:80/echo", open_timeout=5)
    assert len(connect_proxy.requests) == 1


def test_lowercase_environment_and_loopback(ws_server: EchoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """http_proxy works too; loopback targets never use an environment proxy (as in curl and Go)."""
    proxy = ConnectProxy()
    try:
        monkeypatch.delenv("HTTP_PROXY", raising=False)
        monkeypatch.setenv("http_proxy", proxy.url())
        with steadyws.connect(ws_server.url("/echo")) as ws:
            assert echo_once(ws, "direct") == "direct"
        assert proxy.requests == []
        with steadyws.connect(ws_server.url("/echo"), proxy=proxy.url()) as ws:  # explicit: loopback too
            assert echo_once(ws, "proxied") == "proxied"
        assert len(proxy.requests) == 1
    finally:
        proxy.close()


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_socks5_proxy(socks_proxy: SocksProxy, ws_server: EchoServer, scheme: str) -> None:
    """socks5:// (and socks5h://) with username and password, through pproxy."""
    with steadyws.connect(ws_server.url("/echo"), proxy=socks_proxy.url(scheme=scheme)) as ws:
        assert echo_once(ws, f"via {scheme}") == f"via {scheme}"


def test_socks5_wss(socks_proxy: SocksProxy, wss_server: EchoServer, ca_file: str) -> None:
    with steadyws.connect(wss_server.url("/echo"), ca_file=ca_file, proxy=socks_proxy.url()) as ws:
        assert echo_once(ws, "tls via socks") == "tls via socks"


def test_socks5_bad_credentials(socks_proxy: SocksProxy, ws_server: EchoServer) -> None:
    """A SOCKS5 proxy that refuses the password raises ProxyError without quoting it."""
    with pytest.raises(steadyws.ProxyError) as err:
        steadyws.connect(ws_server.url("/echo"), proxy=socks_proxy.url(password="not-the-pw"), open_timeout=5)
    assert "not-the-pw" not in str(err.value)


def test_proxy_down_is_refused(ws_server: EchoServer) -> None:
    """No proxy listening: ConnectionRefused, saying it was the proxy."""
    with pytest.raises(steadyws.ConnectionRefused, match="proxy"):
        steadyws.connect(ws_server.url("/echo"), proxy="http://127.0.0.1:1")


@pytest.mark.parametrize(
    ("proxy", "error", "message"),
    [
        (8080, TypeError, "proxy.*must be a proxy URL, True or False, not int"),
        ("ftp://u:hunter2@host:21", ValueError, "proxy.*scheme must be http, socks5 or socks5h"),
        ("u:hunter2@host:3128", ValueError, "proxy.*scheme must be"),
        ("http://u:hunter2@host:0", ValueError, "proxy.*port must be 1-65535"),
        ("http://u:hunter2@:3128", ValueError, "proxy.*no host"),
        ("http://u:hunter2@host:3128/path?x=1", ValueError, "proxy.*host\\[:port\\] only"),
    ],
)
def test_bad_proxy_is_refused_before_io(proxy: object, error: type[Exception], message: str) -> None:
    """A bad proxy argument names the parameter and never echoes the password."""
    with pytest.raises(error, match=message) as err:
        steadyws.connect("ws://127.0.0.1:1/", proxy=proxy)  # type: ignore[arg-type]
    assert "hunter2" not in str(err.value)


def test_bad_environment_proxy_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "ftp://u:hunter2@host:21")
    with pytest.raises(ValueError, match="proxy") as err:
        steadyws.connect("wss://feed.test/")
    assert "hunter2" not in str(err.value)
