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
from ._batch import Closed, Disconnected, Opened, QueueWarning, Reconnecting
from ._connection import WebSocket, connect
from ._errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ConnectionRefused,
    ConnectionReset,
    DNSError,
    ErrorCode,
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
    TLSError,
    WebSocketError,
)
from ._ffi import runtime_stats
from ._options import Backoff

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "Closed",
    "Disconnected",
    "Opened",
    "QueueWarning",
    "Reconnecting",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ConnectionRefused",
    "ConnectionReset",
    "DNSError",
    "ErrorCode",
    "HandshakeError",
    "InternalError",
    "MessageTooBig",
    "NetworkError",
    "NotConnected",
    "OpenTimeout",
    "ProtocolError",
    "QueueFull",
    "QueueOverflow",
    "ProxyError",
    "TLSError",
    "WebSocket",
    "WebSocketError",
    "aio",
    "connect",
    "runtime_stats",
]
