"""The exceptions steadyws raises.

Every failure of the engine arrives as a stable code (ErrorCode) with the
message and, for an ended connection, how it ended; this module turns that
into one exception, in one place (:func:`error_from` and :func:`end_error`).
The tree::

    WebSocketError
    ├── ConnectionClosed                 the connection ended; .code, .reason, .closed_by
    │   ├── ConnectionClosedOK           normal close: 1000, 1001, 1005, or our own close()
    │   └── ConnectionClosedError        anything else (also a ConnectionError)
    │       ├── ProtocolError            the server broke RFC 6455 (1002, 1007)
    │       ├── MessageTooBig            a message exceeded max_message_size (1009)
    │       └── QueueOverflow            the inbound queue overflowed with overflow="close" (1008)
    ├── HandshakeError                   the HTTP upgrade failed; .status
    ├── NotConnected                     send() while (re)connecting, or before on_open returned
    ├── RateLimited                      send_rate has no room (now, or within write_timeout); .retry_after
    ├── InternalError                    a bug in steadyws (a recovered panic)
    ├── OpenTimeout                      open_timeout passed (also a TimeoutError)
    └── NetworkError                     connecting failed (also a ConnectionError)
        ├── DNSError                     the host name did not resolve
        ├── ConnectionRefused            (also a ConnectionRefusedError)
        ├── ConnectionReset              (also a ConnectionResetError)
        ├── TLSError                     TLS handshake or certificate check failed
        └── ProxyError                   the proxy refused or failed; .status (407: credentials)

``recv(timeout=...)`` raises the builtin ``TimeoutError``; bad arguments raise
``TypeError`` (wrong type) or ``ValueError`` (wrong value) naming the
parameter, before any I/O.
"""

from __future__ import annotations

from typing import Literal

from ._abi import SIDES, ErrorCode

ClosedBy = Literal["client", "server"] | None


class WebSocketError(Exception):
    """Base class of every steadyws exception."""


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` say how.

    ``code`` is the close code received from the server, the one steadyws
    sent (our own close(), or 1002, 1007, 1008, 1009 when it closed because of
    an error), 1005 for a close frame without a code, or 1006 when the
    connection ended without a close frame. ``closed_by`` is who sent the
    first close frame: "server", "client", or None when nobody did (the
    connection was lost). ``detail`` is the engine's message for a failure.
    """

    def __init__(self, code: int, reason: str = "", detail: str = "", closed_by: ClosedBy = None) -> None:
        self.code = code
        self.reason = reason
        self.detail = detail
        self.closed_by: ClosedBy = closed_by
        text = f"connection closed: {code}"
        if reason:
            text += f" {reason}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)


class ConnectionClosedOK(ConnectionClosed):
    """The connection was closed normally: 1000, 1001, 1005 (no code), or by close()."""


class ConnectionClosedError(ConnectionClosed, ConnectionError):
    """The connection was closed abnormally."""


class ProtocolError(ConnectionClosedError):
    """The server broke the WebSocket protocol; steadyws closed with 1002 or 1007."""


class MessageTooBig(ConnectionClosedError):
    """The server sent a message larger than max_message_size; closed with 1009."""


class QueueOverflow(ConnectionClosedError):
    """The inbound queue overflowed under overflow="close"; steadyws closed with 1008."""


QueueFull = QueueOverflow  # the name of the error code (ErrorCode.QUEUE_FULL)


class HandshakeError(WebSocketError):
    """The opening handshake failed; ``status`` is the HTTP status, or 0."""

    def __init__(self, message: str, status: int = 0) -> None:
        self.status = status
        super().__init__(message)


class NotConnected(WebSocketError):
    """The connection is not open (yet): the message was not sent."""


class RateLimited(WebSocketError):
    """The connection's send_rate had no room for the message: at once
    (``RateLimit(wait=False)``) or within write_timeout. Nothing was sent;
    ``retry_after`` is how many seconds until the budget has room."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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


_CONNECT_ERRORS: dict[int, type[WebSocketError]] = {
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
    if code == ErrorCode.PROXY:
        return ProxyError(message, status)
    if code == ErrorCode.CLOSED:
        return ConnectionClosedError(1006, "", message)
    return _CONNECT_ERRORS.get(code, WebSocketError)(message)


def side_name(side: int) -> ClosedBy:
    """The closed_by of an engine side: "client", "server" or None."""
    name = SIDES[side] if 0 <= side < len(SIDES) else "none"
    return None if name == "none" else name  # type: ignore[return-value]


def end_error(
    code: int, reason: str, error: int, status: int = 0, detail: str = "", dialing: bool = False, side: int = 0
) -> WebSocketError:
    """The exception for how a connection ended, the one every way of
    asking raises: ``error`` is the engine's code for the end (OK after a
    clean close, or after our own close()), ``side`` who closed first."""
    closed_by = side_name(side)
    if dialing and error != ErrorCode.OK:
        return connect_error(error, detail or "connection failed", status)
    if error == ErrorCode.PROTOCOL:
        return ProtocolError(code, reason, detail, closed_by)
    if error == ErrorCode.MESSAGE_TOO_BIG:
        return MessageTooBig(code, reason, detail, closed_by)
    if error == ErrorCode.QUEUE_FULL:
        return QueueOverflow(code, reason, detail, closed_by)
    if error == ErrorCode.OK and (closed_by == "client" or code in (1000, 1001, 1005)):
        return ConnectionClosedOK(code, reason, detail, closed_by)
    return ConnectionClosedError(code, reason, detail, closed_by)


def error_from(code: int, text: str, *, close_code: int = 1006, reason: str = "", end_code: int = 0,
               status: int = 0, closed_by: int = 0, dialing: bool = False,
               retry_after: float = 0.0) -> Exception:  # fmt: skip
    """The exception for a call that failed with ``code``, from that call's
    own error: wrong types are TypeError, wrong values ValueError, an ended
    connection the exception of its end."""
    if code == ErrorCode.TYPE:
        return TypeError(text)
    if code == ErrorCode.INVALID_ARGUMENT:
        return ValueError(text)
    if code == ErrorCode.CLOSED:
        return end_error(close_code, reason, end_code, status, text, dialing, closed_by)
    if code == ErrorCode.NOT_CONNECTED:
        return NotConnected(text)
    if code == ErrorCode.RATE_LIMITED:
        return RateLimited(text, retry_after)
    if code == ErrorCode.TIMEOUT:
        return TimeoutError(text)
    if code in (ErrorCode.BAD_HANDLE, ErrorCode.INTERNAL, ErrorCode.BUFFER_TOO_SMALL, ErrorCode.WOULD_BLOCK):
        return InternalError(f"{ErrorCode(code).name}: {text}")
    return connect_error(code, text, status)
