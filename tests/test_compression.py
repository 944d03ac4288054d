"""permessage-deflate (RFC 7692): negotiated with a real server, inflated
size capped by max_message_size, off by default."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import steadyws
from payloads import text_payload
from servers import EchoServer, MisbehavingServer, tagged


@pytest.fixture(scope="module")
def deflate_server() -> Iterator[EchoServer]:
    """The websockets server with permessage-deflate on (it compresses what it sends)."""
    server = EchoServer(compression="deflate")
    yield server
    server.close()


def test_compressed_messages_arrive_exact(deflate_server: EchoServer) -> None:
    """With compression="deflate", the server compresses and steadyws inflates, byte-exact."""
    text = text_payload(100_000)
    with steadyws.connect(deflate_server.url("/echo"), compression="deflate", reconnect=False) as ws:
        for message in (text, text.encode("utf-8"), "short"):
            ws.send(message)
            assert ws.recv(timeout=5) == message
        assert ws.stats()["compressed_in"] >= 2


def test_compression_is_off_by_default(deflate_server: EchoServer) -> None:
    """Without the option, nothing is offered: the server sends plain frames."""
    with steadyws.connect(deflate_server.url("/headers"), reconnect=False) as ws:
        report = json.loads(str(ws.recv(timeout=5)))
        assert "sec-websocket-extensions" not in report["headers"]
        assert ws.stats()["compressed_in"] == 0


def test_decompression_bomb_ends_in_1009(bad_server: MisbehavingServer) -> None:
    """16 MiB of zeros in a few KiB of deflate: MessageTooBig (1009) at max_message_size, not an OOM."""
    target = tagged("/deflate-bomb?mib=16")
    with steadyws.connect(
        bad_server.url(target), compression="deflate", max_message_size=1 << 20, reconnect=False
    ) as ws:
        with pytest.raises(steadyws.MessageTooBig) as err:
            ws.recv(timeout=5)
    assert err.value.code == 1009
    assert bad_server.close_event(target).code == 1009


def test_bad_compression_value() -> None:
    """compression takes None or "deflate" only."""
    with pytest.raises(ValueError, match="compression"):
        steadyws.connect("ws://127.0.0.1:1/", compression="gzip")
