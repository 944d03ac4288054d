"""The exceptions steadyws raises, and the error codes of the C API.

Every failure of the engine arrives as a stable integer code (ErrorCode); this
module maps each one to one exception class. The tree::

    WebSocketError
    ├── ConnectionClosed                 the connection ended; .code, .reason
    │   ├── ConnectionClosedOK           normal close, 1000 or 1001
    │   └── ConnectionClosedError        anything else (also a ConnectionError)
    │       ├── ProtocolError            the server broke RFC 6455 (1002, 1007)
    │       ├── MessageTooBig            a message exceeded max_message_size (1009)
    │       └── QueueOverflow            the inbound queue overflowed with overflow="close" (1008)
    ├── HandshakeError                   the HTTP upgrade failed; .status
    ├── NotConnected                     send() while (re)connecting
    ├── InternalError                    a bug in steadyws (a recovered panic)
    ├── OpenTimeout                      open_timeout passed (also a TimeoutError)
    └── NetworkError                     connecting failed (also a ConnectionError)
        ├── DNSError                     the host name did not resolve
        ├── ConnectionRefused            (also a ConnectionRefusedError)
        ├── ConnectionReset              (also a ConnectionResetError)
        ├── TLSError                     TLS handshake or certificate check failed
        └── ProxyError                   the proxy refused or failed; .status (407: credentials)

``recv(timeout=...)`` raises the builtin ``TimeoutError``; bad arguments raise
``ValueError`` or ``TypeError`` before any I/O.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    """Stable error codes of the C API (enum sws_code in libsteadyws.h)."""

    OK = 0
    INVALID_ARGUMENT = 1
    BAD_HANDLE = 2
    TIMEOUT = 3
    CLOSED = 4
    NOT_CONNECTED = 5
    HANDSHAKE = 6
    TLS = 7
    DNS = 8
    REFUSED = 9
    RESET = 10
    PROTOCOL = 11
    MESSAGE_TOO_BIG = 12
    QUEUE_FULL = 13
    BUFFER_TOO_SMALL = 14
    INTERNAL = 15
    NETWORK = 16
    PROXY = 17


class WebSocketError(Exception):
    """Base class of every steadyws exception."""


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` say how.

    ``code`` is the close code received from the server, the one steadyws sent
    when it closed because of an error (1002, 1007, 1009), or 1006 when the
    connection ended without a close frame.
    """

    def __init__(self, code: int, reason: str = "", detail: str = "") -> None:
        self.code = code
        self.reason = reason
        self.detail = detail
        text = f"connection closed: {code}"
        if reason:
            text += f" {reason}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)


class ConnectionClosedOK(ConnectionClosed):
    """The connection was closed normally (1000 or 1001)."""


class ConnectionClosedError(ConnectionClosed, ConnectionError):
    """The connection was closed abnormally."""


class ProtocolError(ConnectionClosedError):
    """The server broke the WebSocket protocol; steadyws closed with 1002 or 1007."""


class MessageTooBig(ConnectionClosedError):
    """The server sent a message larger than max_message_size; closed with 1009."""


class HandshakeError(WebSocketError):
    """The opening handshake failed; ``status`` is the HTTP status, or 0."""

    def __init__(self, message: str, status: int = 0) -> None:
        self.status = status
        super().__init__(message)


class NotConnected(WebSocketError):
    """The connection is not open (yet): the message was not sent."""


class QueueOverflow(ConnectionClosedError):
    """The inbound queue overflowed under overflow="close"; steadyws closed with 1008."""


QueueFull = QueueOverflow  # the name of the error code (ErrorCode.QUEUE_FULL)


class InternalError(WebSocketError):
    """A bug in steadyws: a recovered panic or a broken invariant."""


class OpenTimeout(WebSocketError, TimeoutError):
    """Connecting took longer than open_timeout."""


class NetworkError(WebSocketError, ConnectionError):
    """Connecting failed at the network level."""


class DNSError(NetworkError):
    """The host name could not be resolved."""


class ConnectionRefused(NetworkError, ConnectionRefusedError):
    """The server refused the TCP connection."""


class ConnectionReset(NetworkError, ConnectionResetError):
    """The connection was reset while connecting."""


class TLSError(NetworkError):
    """The TLS handshake or the certificate verification failed."""


class ProxyError(NetworkError):
    """The proxy refused the tunnel or failed; ``status`` is its HTTP
    status (407: it wants credentials), 0 for a SOCKS proxy."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


_CONNECT_ERRORS: dict[ErrorCode, type[WebSocketError]] = {
    ErrorCode.DNS: DNSError,
    ErrorCode.REFUSED: ConnectionRefused,
    ErrorCode.RESET: ConnectionReset,
    ErrorCode.TLS: TLSError,
    ErrorCode.TIMEOUT: OpenTimeout,
    ErrorCode.NETWORK: NetworkError,
    ErrorCode.NOT_CONNECTED: NotConnected,
    ErrorCode.INTERNAL: InternalError,
}


def connect_error(code: int, message: str, status: int = 0) -> WebSocketError:
    """The exception for a connection attempt that failed with ``code``."""
    if code == ErrorCode.HANDSHAKE:
        return HandshakeError(message, status)
    if code == ErrorCode.CLOSED:
        return ConnectionClosedError(1006, "", message)
    if code == ErrorCode.PROXY:
        return ProxyError(message, status)
    return _CONNECT_ERRORS.get(ErrorCode(code), WebSocketError)(message)


def closed_error(code: int, reason: str, error: int, detail: str = "") -> ConnectionClosed:
    """The exception for a connection that ended with close ``code``.

    ``error`` is the engine's error code for the end: OK after a clean close
    handshake.
    """
    if error == ErrorCode.PROTOCOL:
        return ProtocolError(code, reason, detail)
    if error == ErrorCode.MESSAGE_TOO_BIG:
        return MessageTooBig(code, reason, detail)
    if error == ErrorCode.QUEUE_FULL:
        return QueueOverflow(code, reason, detail)
    if error in (ErrorCode.OK, ErrorCode.CLOSED) and code in (1000, 1001):
        return ConnectionClosedOK(code, reason, detail)
    return ConnectionClosedError(code, reason, detail)
