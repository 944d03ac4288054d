"""Messages travel intact in both directions, over ws:// and wss://."""

from __future__ import annotations

import functools
import json
from typing import Any, NamedTuple

import pytest
import steadyws
from helpers import Stopwatch
from payloads import binary_payload, describe_mismatch, flood_message, payload, text_payload
from servers import FRAGMENTED_WITH_PING_TEXT, PING_PAYLOAD, EchoServer, MisbehavingServer, tagged

# These tests are about one connection: when the server ends it, it stays ended.
connect_once = functools.partial(steadyws.connect, reconnect=False)

SIZES = [0, 125, 126, 65535, 65536, 8 << 20]
BIG_LIMIT = 16 << 20
FLOOD = [flood_message(i, 50) for i in range(100)]


class Endpoint(NamedTuple):
    url: str
    options: dict[str, Any]


@pytest.fixture(params=["ws", "wss"])
def echo_endpoint(request: pytest.FixtureRequest) -> Endpoint:
    """The /echo URL of the plain or the TLS server, with the options to reach it."""
    if request.param == "ws":
        server: EchoServer = request.getfixturevalue("ws_server")
        return Endpoint(server.url("/echo"), {})
    server = request.getfixturevalue("wss_server")
    return Endpoint(server.url("/echo"), {"ca_file": request.getfixturevalue("ca_file")})


def test_imported_from_site_packages() -> None:
    """steadyws under test is the installed wheel, not a source tree on sys.path."""
    assert "site-packages" in steadyws.__file__


@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("size", SIZES)
def test_echo_is_byte_exact(echo_endpoint: Endpoint, kind: str, size: int) -> None:
    """A message of each boundary size comes back identical, with its type (str/bytes) kept."""
    message = payload(kind, size)
    with connect_once(echo_endpoint.url, max_message_size=BIG_LIMIT, **echo_endpoint.options) as ws:
        ws.send(message)
        assert describe_mismatch(ws.recv(timeout=30), message) is None


def test_wss_server_hostname_override_verifies(wss_server: EchoServer, ca_file: str) -> None:
    """server_hostname names the certificate identity to verify (here "localhost", in the cert)."""
    url = wss_server.url("/echo")
    with connect_once(url, ca_file=ca_file, server_hostname="localhost") as ws:
        ws.send("via localhost")
        assert ws.recv(timeout=5) == "via localhost"


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_bytes_like_messages_are_sent_as_binary(ws_server: EchoServer, wrap: type) -> None:
    """bytes, bytearray and memoryview all go out as binary frames and come back as bytes."""
    data = binary_payload(1000)
    with connect_once(ws_server.url("/echo")) as ws:
        ws.send(wrap(data))
        received = ws.recv(timeout=5)
    assert type(received) is bytes
    assert received == data


def test_mixed_messages_keep_order_and_type(ws_server: EchoServer) -> None:
    """200 interleaved text and binary messages come back in order, each with its own type."""
    messages = [text_payload(i) if i % 2 else binary_payload(i) for i in range(200)]
    with connect_once(ws_server.url("/echo")) as ws:
        for message in messages:
            ws.send(message)
        received = [ws.recv(timeout=5) for _ in messages]
    assert [type(m) for m in received] == [type(m) for m in messages]
    assert received == messages


@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize(("count", "size"), [(3, 10), (5, 3), (64, 300_000)])
def test_fragmented_message_arrives_whole(ws_server: EchoServer, kind: str, count: int, size: int) -> None:
    """A server message split into fragments (text split mid-character, some fragments empty) arrives whole."""
    with connect_once(ws_server.url(f"/fragments?n={count}&size={size}&kind={kind}")) as ws:
        assert describe_mismatch(ws.recv(timeout=10), payload(kind, size)) is None


def test_server_ping_is_answered(ws_server: EchoServer) -> None:
    """A ping from the server gets a pong (the server reports "pong-ok")."""
    with connect_once(ws_server.url("/ping")) as ws:
        assert ws.recv(timeout=10) == "pong-ok"


def test_ping_between_fragments_is_answered(bad_server: MisbehavingServer) -> None:
    """A ping interleaved in a fragmented message is ponged (masked, same payload) and the message stays whole."""
    target = tagged("/fragmented-with-ping")
    with connect_once(bad_server.url(target)) as ws:
        assert ws.recv(timeout=5) == FRAGMENTED_WITH_PING_TEXT
    pong = bad_server.wait_for(lambda e: e.target == target and e.kind == "pong")
    assert pong.payload == PING_PAYLOAD
    assert pong.masked


def test_frames_right_behind_the_101_are_not_lost(bad_server: MisbehavingServer) -> None:
    """Frames sent in the same TCP write as the 101 response are all received, in order."""
    target = tagged("/early-frames?n=20")
    with connect_once(bad_server.url(target)) as ws:
        assert [ws.recv(timeout=5) for _ in range(20)] == [f"early-{i}" for i in range(20)]
    assert bad_server.close_event(target).code == 1000


@pytest.mark.parametrize(
    "headers",
    [{"X-Test-Token": "abc123", "X-Trace": "t-1"}, [("X-Test-Token", "abc123"), ("X-Trace", "t-1")]],
    ids=["mapping", "pairs"],
)
def test_headers_and_subprotocols_reach_server(ws_server: EchoServer, headers: Any) -> None:
    """Extra headers and offered subprotocols are sent; ws.subprotocol is the one the server picked."""
    with connect_once(ws_server.url("/headers"), headers=headers, subprotocols=["chat.v1", "chat.v2"]) as ws:
        report = json.loads(ws.recv(timeout=5))
        assert ws.subprotocol == "chat.v2"  # the server's preference, not the client's first offer
    assert report["headers"]["x-test-token"] == "abc123"
    assert report["headers"]["x-trace"] == "t-1"
    offered = [p.strip() for p in report["headers"]["sec-websocket-protocol"].split(",")]
    assert offered == ["chat.v1", "chat.v2"]
    assert report["subprotocol"] == "chat.v2"


def test_no_subprotocol_when_none_offered(ws_server: EchoServer) -> None:
    """Without subprotocols none is requested and ws.subprotocol is None."""
    with connect_once(ws_server.url("/headers")) as ws:
        report = json.loads(ws.recv(timeout=5))
        assert ws.subprotocol is None
    assert "sec-websocket-protocol" not in report["headers"]
    assert report["subprotocol"] is None


def test_iteration_yields_all_then_ends_on_normal_close(ws_server: EchoServer) -> None:
    """`for m in ws` yields all 100 flood messages in order, then stops quietly on close 1000."""
    with connect_once(ws_server.url("/flood?n=100&size=50")) as ws:
        received = [message for message in ws]
        assert ws.close_code == 1000
    assert received == FLOOD


def test_recv_batch_returns_lists_in_order(ws_server: EchoServer) -> None:
    """recv_batch returns non-empty lists of at most max_messages, together all messages in order."""
    received: list[str | bytes] = []
    with connect_once(ws_server.url("/flood?n=100&size=50")) as ws:
        for _ in range(len(FLOOD) + 1):
            try:
                batch = ws.recv_batch(max_messages=7, timeout=5)
            except steadyws.ConnectionClosedOK:
                break
            assert isinstance(batch, list)
            assert 1 <= len(batch) <= 7
            received += batch
        else:
            pytest.fail("recv_batch never reported the close")
    assert received == FLOOD


def test_recv_batch_times_out_with_empty_list(ws_server: EchoServer) -> None:
    """recv_batch on an idle connection returns [] after its timeout."""
    with connect_once(ws_server.url("/echo")) as ws, Stopwatch() as clock:
        assert ws.recv_batch(timeout=0.2) == []
    assert 0.15 <= clock.elapsed < 2


def test_recv_timeout_on_idle_connection(ws_server: EchoServer) -> None:
    """recv(timeout=0.2) raises TimeoutError in time and leaves the connection usable."""
    with connect_once(ws_server.url("/echo")) as ws:
        with Stopwatch() as clock, pytest.raises(TimeoutError):
            ws.recv(timeout=0.2)
        assert 0.15 <= clock.elapsed < 2
        ws.send("still open")
        assert ws.recv(timeout=5) == "still open"
