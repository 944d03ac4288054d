"""The feed features: text as bytes (decode_text=False)."""

from __future__ import annotations

import asyncio
import queue
from typing import Any

import pytest
import steadyws
import steadyws.aio
from payloads import payload
from servers import EchoServer, MisbehavingServer, tagged

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
