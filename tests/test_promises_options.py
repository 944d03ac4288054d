"""Issue 9, options: every option type-checked and range-checked before any I/O, floors
that rule out a tight reconnect loop, and "no limit" that means no limit."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import steadyws
from helpers import Stopwatch
from promise_support import PromiseServer
from servers import MisbehavingServer, tagged
from steadyws.testing import Server

API = ("threaded", "asyncio")


@pytest.fixture(scope="module")
def promise_server() -> Iterator[PromiseServer]:
    server = PromiseServer()
    yield server
    server.close()


def open_and_close(api: str, url: str, **options: Any) -> None:
    """Connect with ``options`` through ``api`` and, if that worked, close again at once.

    The option checks under test must raise before this returns; a connection that
    opens anyway is closed, so a failing check does not leak it into other tests.
    """
    if api == "threaded":
        steadyws.connect(url, **options).close()
        return

    async def main() -> None:
        ws = await steadyws.aio.connect(url, **options)
        await ws.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def starts_with(name: str) -> str:
    """A ``match`` pattern: the message starts with the option name (spec: "whose message starts with")."""
    return rf"^{re.escape(name)}\b"


def naming(*names: str) -> str:
    """A ``match`` pattern: the message names one of ``names`` somewhere."""
    return "|".join(rf"\b{re.escape(name)}\b" for name in names)


# -- row 2: no option value makes a tight reconnect loop ----------------------------


@pytest.mark.parametrize("api", API)
def test_healthy_after_none_is_refused(steadyws_server: Server, api: str) -> None:
    """healthy_after=None (which would make every connection count as healthy) is refused before any I/O."""
    with pytest.raises((TypeError, ValueError), match=naming("healthy_after")):
        open_and_close(api, steadyws_server.url, healthy_after=None)
    assert steadyws_server.counts()["handshakes"] == 0


@pytest.mark.parametrize("api", API)
@pytest.mark.parametrize("value", [0.5, 0.99, 0.001])
def test_healthy_after_below_its_floor_is_refused(steadyws_server: Server, api: str, value: float) -> None:
    """healthy_after below 1.0 s is a ValueError naming healthy_after, before any I/O."""
    with pytest.raises(ValueError, match=naming("healthy_after")):
        open_and_close(api, steadyws_server.url, healthy_after=value)
    assert steadyws_server.counts()["handshakes"] == 0


@pytest.mark.parametrize("value", [0.01, 0.049, 0.001])
def test_backoff_min_below_its_floor_is_refused(steadyws_server: Server, value: float) -> None:
    """Backoff(min=...) below 0.05 s is a ValueError naming reconnect/min, by Backoff() or at connect()."""
    with pytest.raises(ValueError, match=naming("reconnect", "min")):
        open_and_close("threaded", steadyws_server.url, reconnect=steadyws.Backoff(min=value, max=1.0))
    assert steadyws_server.counts()["handshakes"] == 0


def test_smallest_allowed_values_pace_an_accept_and_drop_server(bad_server: MisbehavingServer) -> None:
    """With the floors (Backoff min=max=0.05, factor 1, no jitter; healthy_after=1.0), a server that
    accepts and drops at once sees at most ~25 handshakes a second, never a tight loop."""
    target = tagged("/accept-then?then=drop")
    ws = steadyws.connect(
        bad_server.url(target),
        reconnect=steadyws.Backoff(min=0.05, max=0.05, factor=1, jitter=False),
        healthy_after=1.0,
    )
    try:
        start = len(bad_server.requests(target))
        began = time.monotonic()
        time.sleep(2.0)  # a measurement window, not a synchronisation
        elapsed = time.monotonic() - began
        seen = len(bad_server.requests(target)) - start
    finally:
        ws.close()
    assert seen <= 25 * elapsed + 1, f"{seen} handshakes in {elapsed:.2f} s"
    assert seen >= 3, f"only {seen} handshakes in {elapsed:.2f} s: the client stopped reconnecting"


# -- row 3: close_timeout=None waits; a finite close_timeout holds ------------------


@pytest.mark.parametrize("api", API)
def test_close_timeout_none_waits_for_the_servers_close_frame(promise_server: PromiseServer, api: str) -> None:
    """close_timeout=None: close() waits for a server that answers our close frame 1.5 s late
    (it does not abort at once), and the server got our close frame with 1000."""
    target = tagged("/close-late?ms=1500")
    url = promise_server.url(target)
    if api == "threaded":
        ws = steadyws.connect(url, close_timeout=None, reconnect=False)
        with Stopwatch() as clock:
            ws.close()
        state = ws.state
    else:

        async def main() -> str:
            aws = await steadyws.aio.connect(url, close_timeout=None, reconnect=False)
            await aws.close()
            return aws.state

        with Stopwatch() as clock:
            state = asyncio.run(asyncio.wait_for(main(), 30))
    assert clock.elapsed >= 1.2, f"close() returned after {clock.elapsed:.2f} s, before the server's close frame"
    event = promise_server.wait_for(lambda e: e.target == target and e.kind == "client_close")
    assert (event.code, event.masked) == (1000, True)
    assert state == "closed"
    promise_server.wait_for(lambda e: e.target == target and e.kind == "server_close")


def test_finite_close_timeout_bounds_close(promise_server: PromiseServer) -> None:
    """close_timeout=0.3 against a server that never answers the close frame: close() returns in well under 3 s."""
    target = tagged("/close-late?ms=60000")
    ws = steadyws.connect(promise_server.url(target), close_timeout=0.3, reconnect=False)
    with Stopwatch() as clock:
        ws.close()
    assert promise_server.wait_for(lambda e: e.target == target and e.kind == "client_close").code == 1000
    assert 0.2 <= clock.elapsed < 3, f"close() took {clock.elapsed:.2f} s with close_timeout=0.3"
    assert ws.state == "closed"


# -- row 15: every option is type-checked before any I/O ----------------------------


@pytest.mark.parametrize("api", API)
@pytest.mark.parametrize("value", ["false", "0", "no", 0.5, 0, 1], ids=repr)
def test_insecure_skip_verify_takes_only_a_bool(steadyws_server: Server, api: str, value: object) -> None:
    """insecure_skip_verify="false", "0", "no", 0.5, 0 or 1 is a TypeError naming it, before any I/O
    (0.1.0 took any truthy value as True: verification off)."""
    with pytest.raises(TypeError, match=starts_with("insecure_skip_verify")):
        open_and_close(api, steadyws_server.url, insecure_skip_verify=value)
    assert steadyws_server.counts()["handshakes"] == 0


# One wrong-typed value per option of the README's options table (and max_handshake_size, new in 0.2.0).
WRONG_TYPES: list[tuple[str, dict[str, Any]]] = [
    ("headers", {"headers": 42}),
    ("subprotocols", {"subprotocols": 42}),
    ("open_timeout", {"open_timeout": "10"}),
    ("close_timeout", {"close_timeout": True}),
    ("write_timeout", {"write_timeout": "1"}),
    ("max_message_size", {"max_message_size": 1.5}),
    ("max_queue", {"max_queue": True}),
    ("max_queue_bytes", {"max_queue_bytes": 1024.0}),
    ("max_handshake_size", {"max_handshake_size": "64k"}),
    ("overflow", {"overflow": 1}),
    ("decode_text", {"decode_text": "no"}),
    ("busy_poll", {"busy_poll": "1ms"}),
    ("ca_file", {"ca_file": 42}),
    ("cert_file", {"cert_file": 42, "key_file": "client.pem"}),
    ("key_file", {"cert_file": "client.pem", "key_file": 42}),
    ("server_hostname", {"server_hostname": 42}),
    ("insecure_skip_verify", {"insecure_skip_verify": "true"}),
    ("pin_sha256", {"pin_sha256": 42}),
    ("compression", {"compression": True}),
    ("proxy", {"proxy": 42}),
    ("reconnect", {"reconnect": 1}),
    ("fatal_statuses", {"fatal_statuses": 403}),
    ("healthy_after", {"healthy_after": "10"}),
    ("ping_interval", {"ping_interval": "20"}),
    ("ping_timeout", {"ping_timeout": True}),
    ("on_message", {"on_message": 42}),
    ("on_open", {"on_open": 42}),
    ("on_disconnect", {"on_disconnect": 42}),
    ("on_reconnect_attempt", {"on_reconnect_attempt": 42}),
    ("on_close", {"on_close": 42}),
    ("on_callback_error", {"on_callback_error": 42}),
]


@pytest.mark.parametrize("api", API)
@pytest.mark.parametrize(("name", "options"), WRONG_TYPES, ids=[name for name, _ in WRONG_TYPES])
def test_wrong_type_is_a_type_error_naming_the_option(
    steadyws_server: Server, api: str, name: str, options: dict[str, Any]
) -> None:
    """A value of the wrong type is a TypeError whose message starts with the option's name, before any I/O."""
    with pytest.raises(TypeError, match=starts_with(name)):
        open_and_close(api, steadyws_server.url, **options)
    assert steadyws_server.counts()["handshakes"] == 0


# -- row 16: values that cannot be meant, refused before any I/O ----------------------

NUMBERS = ("open_timeout", "close_timeout", "write_timeout", "ping_interval", "ping_timeout", "healthy_after")


@pytest.mark.parametrize("api", API)
@pytest.mark.parametrize("value", [math.inf, math.nan], ids=["inf", "nan"])
@pytest.mark.parametrize("name", NUMBERS)
def test_infinite_or_nan_seconds_are_refused(steadyws_server: Server, api: str, name: str, value: float) -> None:
    """float("inf") and NaN for a number of seconds are a ValueError naming the option (None is how to say
    "no limit"), before any I/O."""
    with pytest.raises(ValueError, match=starts_with(name)):
        open_and_close(api, steadyws_server.url, **{name: value})
    assert steadyws_server.counts()["handshakes"] == 0


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("min", lambda: steadyws.Backoff(min=math.nan)),
        ("max", lambda: steadyws.Backoff(max=math.inf)),
        ("factor", lambda: steadyws.Backoff(factor=math.inf)),
    ],
)
def test_infinite_or_nan_backoff_is_refused(steadyws_server: Server, field: str, make: Callable[[], Any]) -> None:
    """A Backoff with an infinite or NaN number is a ValueError naming the field, by Backoff() or at connect()."""
    with pytest.raises(ValueError, match=naming(field)):
        open_and_close("threaded", steadyws_server.url, reconnect=make())
    assert steadyws_server.counts()["handshakes"] == 0


@pytest.mark.parametrize("api", API)
@pytest.mark.parametrize("value", [42, "chat"], ids=repr)
def test_subprotocols_must_be_a_list_of_str(steadyws_server: Server, api: str, value: object) -> None:
    """subprotocols=42 or "chat" is a TypeError naming subprotocols, before any I/O."""
    with pytest.raises(TypeError, match=naming("subprotocols")):
        open_and_close(api, steadyws_server.url, subprotocols=value)
    assert steadyws_server.counts()["handshakes"] == 0


RESERVED = (
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Anything",
    "sec-websocket-key",
    "UPGRADE",
)


@pytest.mark.parametrize("api", API)
@pytest.mark.parametrize("name", RESERVED)
def test_reserved_handshake_headers_are_refused(steadyws_server: Server, api: str, name: str) -> None:
    """A reserved handshake header (any case) in headers is a ValueError naming headers, before any I/O."""
    value = "127.0.0.1" if name.lower() == "host" else "x"
    with pytest.raises(ValueError, match=naming("headers")):
        open_and_close(api, steadyws_server.url, headers={name: value})
    assert steadyws_server.counts()["handshakes"] == 0


@pytest.mark.parametrize("api", API)
@pytest.mark.parametrize("char", ["\x01", "\x1b", "\x7f", "\x1f", "\x08"], ids=lambda c: f"0x{ord(c):02x}")
def test_control_characters_in_header_values_are_refused(steadyws_server: Server, api: str, char: str) -> None:
    """A control character other than HTAB in a header value is a ValueError naming headers, before any I/O."""
    with pytest.raises(ValueError, match=naming("headers")):
        open_and_close(api, steadyws_server.url, headers=[("X-Token", f"abc{char}def")])
    assert steadyws_server.counts()["handshakes"] == 0


def test_tab_in_a_header_value_is_allowed(steadyws_server: Server) -> None:
    """HTAB is the one control character a header value may hold: that connection opens (the refusals above
    are about control characters, not about headers in general)."""
    with steadyws.connect(steadyws_server.url, headers={"X-Token": "abc\tdef"}, reconnect=False) as ws:
        assert ws.state == "open"
    assert steadyws_server.counts()["handshakes"] == 1


@pytest.mark.parametrize("batch", ["abc", b"abc"], ids=["str", "bytes"])
def test_send_batch_of_a_str_or_bytes_is_a_type_error(steadyws_server: Server, batch: str | bytes) -> None:
    """send_batch("abc") and send_batch(b"abc") are TypeErrors (one message is not a batch); nothing is sent."""
    with steadyws.connect(steadyws_server.url, reconnect=False) as ws:
        with pytest.raises(TypeError):
            ws.send_batch(batch)  # type: ignore[arg-type]
        ws.send("marker")
        steadyws_server.expect(lambda m: m == "marker")
        assert steadyws_server.received == ["marker"]


@pytest.mark.parametrize("batch", ["abc", b"abc"], ids=["str", "bytes"])
def test_aio_send_batch_of_a_str_or_bytes_is_a_type_error(steadyws_server: Server, batch: str | bytes) -> None:
    """The asyncio send_batch refuses a str or bytes the same way; nothing is sent."""

    async def main() -> None:
        async with steadyws.aio.connect(steadyws_server.url, reconnect=False) as ws:
            with pytest.raises(TypeError):
                await ws.send_batch(batch)  # type: ignore[arg-type]
            await ws.send("marker")
            await asyncio.to_thread(steadyws_server.expect, lambda m: m == "marker")

    asyncio.run(asyncio.wait_for(main(), 30))
    assert steadyws_server.received == ["marker"]
