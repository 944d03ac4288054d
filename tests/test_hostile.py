"""A server that attacks: absurd lengths, endless messages, endless headers,
one byte at a time. Memory stays bounded, the error is clear, and it comes
within the configured timeouts."""

from __future__ import annotations

import resource
import time

import pytest
import steadyws
from servers import MisbehavingServer, tagged


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize(
    ("msb", "error", "code"),
    [("1", steadyws.ProtocolError, 1002), ("0", steadyws.MessageTooBig, 1009)],
    ids=["2^63 (MSB set)", "2^63-1"],
)
def test_absurd_frame_length(bad_server: MisbehavingServer, msb: str, error: type[Exception], code: int) -> None:
    """A frame declaring 2^63 bytes is a protocol error (RFC 6455 5.2); 2^63-1 is too big: nothing is allocated."""
    before = peak_rss_mib()
    target = tagged(f"/huge-length?msb={msb}")
    with steadyws.connect(bad_server.url(target), reconnect=False) as ws:
        with pytest.raises(error):
            ws.recv(timeout=5)
    assert bad_server.close_event(target).code == code
    assert peak_rss_mib() - before < 50


def test_endless_continuation_frames(bad_server: MisbehavingServer) -> None:
    """A message that never ends is cut at max_message_size (1009), with bounded memory."""
    before = peak_rss_mib()
    with steadyws.connect(
        bad_server.url(tagged("/endless-continuation")), max_message_size=1 << 20, reconnect=False
    ) as ws:
        with pytest.raises(steadyws.MessageTooBig):
            ws.recv(timeout=10)
    assert peak_rss_mib() - before < 50


def test_endless_handshake_header(bad_server: MisbehavingServer) -> None:
    """A 101 with 10 MiB of headers fails as a HandshakeError once 64 KiB were read, quickly."""
    before, start = peak_rss_mib(), time.monotonic()
    with pytest.raises(steadyws.HandshakeError, match="max_handshake_size"):
        steadyws.connect(bad_server.url(tagged("/huge-header?mb=10")), open_timeout=10)
    assert time.monotonic() - start < 5
    assert peak_rss_mib() - before < 50


def test_trickled_handshake_hits_open_timeout(bad_server: MisbehavingServer) -> None:
    """A handshake answered one byte a second ends in OpenTimeout after open_timeout."""
    start = time.monotonic()
    with pytest.raises(steadyws.OpenTimeout):
        steadyws.connect(bad_server.url(tagged("/trickle?what=handshake&ms=100")), open_timeout=1)
    assert 0.8 < time.monotonic() - start < 4


def test_trickled_frame_hits_the_heartbeat(bad_server: MisbehavingServer) -> None:
    """A frame sent one byte at a time never completes: the heartbeat ends the connection."""
    start = time.monotonic()
    with steadyws.connect(
        bad_server.url(tagged("/trickle?what=frame&ms=1000")), ping_interval=0.5, ping_timeout=0.5, reconnect=False
    ) as ws:
        with pytest.raises(steadyws.ConnectionClosedError, match="ping timeout"):
            ws.recv(timeout=10)
    assert time.monotonic() - start < 1.0 * 1.1 + 1.5
