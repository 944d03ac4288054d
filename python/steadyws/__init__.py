"""steadyws: a WebSocket client for trading code, with a Go engine.

    import steadyws

    with steadyws.connect("wss://stream.example.com/ws") as ws:
        ws.send('{"op": "subscribe", "args": ["trades.BTCUSD"]}')
        for message in ws:
            handle(message)

Everything a network can do wrong arrives as an exception from the tree in
:mod:`steadyws._errors`; nothing can crash the interpreter.
"""

from __future__ import annotations

from . import aio
from ._abi import ErrorCode
from ._connection import ConnectOptions, Group, WebSocket, connect
from ._errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ConnectionRefused,
    ConnectionReset,
    DNSError,
    HandshakeError,
    InternalError,
    MessageTooBig,
    NetworkError,
    NotConnected,
    OpenTimeout,
    ProtocolError,
    ProxyError,
    QueueFull,
    QueueOverflow,
    RateLimited,
    TLSError,
    WebSocketError,
)
from ._events import Closed, Disconnected, Ended, Opened, QueueWarning, Reconnecting, Rotated
from ._lib import runtime_stats
from ._options import Backoff, Options
from ._ratelimit import RateLimit

__version__ = "0.4.0"

__all__ = [
    "Backoff",
    "Closed",
    "ConnectOptions",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ConnectionRefused",
    "ConnectionReset",
    "DNSError",
    "Disconnected",
    "Ended",
    "ErrorCode",
    "Group",
    "HandshakeError",
    "InternalError",
    "MessageTooBig",
    "NetworkError",
    "NotConnected",
    "OpenTimeout",
    "Opened",
    "Options",
    "ProtocolError",
    "ProxyError",
    "QueueFull",
    "QueueOverflow",
    "QueueWarning",
    "RateLimit",
    "RateLimited",
    "Reconnecting",
    "Rotated",
    "TLSError",
    "WebSocket",
    "WebSocketError",
    "aio",
    "connect",
    "runtime_stats",
]
