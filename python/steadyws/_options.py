"""Checking connect() options before any I/O.

Each check raises TypeError or ValueError naming the parameter, so a typo
fails at once instead of as a network error later. The result is the JSON
config that sws_connect takes (keys are the parameter names).
"""

from __future__ import annotations

import math
import os
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from ._callbacks import (
    Callbacks,
    OnCallbackError,
    OnClose,
    OnDisconnect,
    OnMessage,
    OnOpen,
    OnReconnectAttempt,
)

HeadersLike = Union[Mapping[str, str], Iterable[tuple[str, str]]]

_TOKEN_FORBIDDEN = set('()<>@,;:\\"/[]?={} \t')


def check_url(url: object) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"url is invalid: {exc}") from None
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"url must start with ws:// or wss://, got {redact_url(url)!r}")
    if not parts.hostname:
        raise ValueError("url has no host")
    if port == 0:
        raise ValueError("url port must be 1-65535")
    if any(c in url for c in "\r\n\x00 "):
        raise ValueError("url must not contain whitespace, CR, LF or NUL")
    return url


def redact_url(url: str) -> str:
    """``url`` with its password and query values replaced by ``***``: URLs
    of exchanges often carry keys."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = "&".join(f"{k}=***" for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _is_token(s: str) -> bool:
    return bool(s) and all(" " < c < "\x7f" and c not in _TOKEN_FORBIDDEN for c in s)


def check_headers(headers: HeadersLike | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    try:
        pairs = [(name, value) for name, value in items]
    except (TypeError, ValueError):
        raise TypeError("headers must be a mapping or an iterable of (name, value) pairs") from None
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("headers names and values must be str")
        if not _is_token(name):
            raise ValueError(f"headers: invalid header name {name!r}")
        if any(c in value for c in "\r\n\x00"):
            raise ValueError(f"headers: the value of {name!r} contains CR, LF or NUL")
    return pairs


def check_subprotocols(subprotocols: Sequence[str] | None) -> list[str]:
    if subprotocols is None:
        return []
    if isinstance(subprotocols, str):
        raise TypeError("subprotocols must be a list of str, not a str")
    result = list(subprotocols)
    for p in result:
        if not isinstance(p, str):
            raise TypeError("subprotocols must be a list of str")
        if not _is_token(p):
            raise ValueError(f"subprotocols: {p!r} is not a valid token")
    return result


def check_timeout(name: str, value: float | None, *, positive: bool = False) -> float | None:
    """A duration in seconds, or None; ``positive`` refuses 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, not {type(value).__name__}")
    if math.isnan(value) or value < 0 or (positive and value == 0):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a {kind} number, got {value}")
    return float(value)


def check_positive_int(name: str, value: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 1 <= value <= maximum:
        raise ValueError(f"{name} must be between 1 and {maximum}, got {value}")
    return value


def check_path(name: str, value: str | os.PathLike[str] | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, not {type(value).__name__}")
    return os.fspath(value)


def encode_message(message: object, name: str = "message") -> tuple[bytes, int]:
    """A message's bytes and its kind: 1 for text (``str``, sent as UTF-8),
    0 for binary (bytes-like)."""
    if isinstance(message, str):
        return message.encode("utf-8"), 1
    if isinstance(message, bytes):
        return message, 0
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message), 0
    raise TypeError(f"{name} must be str or bytes-like, not {type(message).__name__}")


def check_close(code: int, reason: str) -> bytes:
    """RFC 6455 7.4: the codes a client may send; a reason of at most 123 bytes."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"code must be an int, not {type(code).__name__}")
    if not (code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        raise ValueError(f"code {code} may not be sent: use 1000-1003, 1007-1014 or 3000-4999")
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a str, not {type(reason).__name__}")
    raw = reason.encode("utf-8")
    if len(raw) > 123:
        raise ValueError(f"reason must be at most 123 bytes in UTF-8, got {len(raw)}")
    return raw


def seconds(value: float | None) -> Any:
    """A timeout for the JSON config: null is no limit; 0 is "at once", sent
    as the smallest positive duration Go accepts."""
    if value is None:
        return None
    return max(value, 1e-9)


@dataclass(frozen=True)
class Backoff:
    """The reconnect policy: delays grow from ``min`` by ``factor`` up to
    ``max`` seconds, each spread at random between ``min`` and its value when
    ``jitter`` is on; ``max_attempts`` consecutive failures end the client
    (None: retry forever). The first retry after a connection that stayed
    healthy happens at once."""

    min: float = 0.5
    max: float = 30.0
    factor: float = 2.0
    jitter: bool = True
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        for name in ("min", "max", "factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise TypeError(f"reconnect: {name} must be a number")
        if self.min <= 0:
            raise ValueError("reconnect: min must be positive")
        if self.max < self.min:
            raise ValueError("reconnect: max must be at least min")
        if self.factor < 1:
            raise ValueError("reconnect: factor must be at least 1")
        if self.max_attempts is not None:
            check_positive_int("reconnect: max_attempts", self.max_attempts, 1 << 30)

    def config(self) -> dict[str, Any]:
        return {
            "min": self.min,
            "max": self.max,
            "factor": self.factor,
            "jitter": self.jitter,
            "max_attempts": self.max_attempts or 0,
        }


def check_reconnect(value: Backoff | bool | None) -> dict[str, Any] | None:
    if value is True:
        return Backoff().config()
    if value is False or value is None:
        return None
    if isinstance(value, Backoff):
        return value.config()
    raise TypeError(f"reconnect must be a Backoff, True or False, not {type(value).__name__}")


def check_statuses(value: Iterable[int]) -> list[int]:
    statuses = list(value)
    for s in statuses:
        if isinstance(s, bool) or not isinstance(s, int) or not 100 <= s <= 599:
            raise ValueError(f"fatal_statuses: {s!r} is not an HTTP status")
    return statuses


OVERFLOW_POLICIES = ("block", "drop_oldest", "drop_newest", "close")


def check_overflow(value: str) -> str:
    if value not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}; got {value!r}")
    return value


MAX_MESSAGE_SIZE_LIMIT = 1 << 30
MAX_QUEUE_LIMIT = 1 << 24
HeadersArg = Union[HeadersLike, Callable[[], HeadersLike], None]


def build_config(
    url: str,
    *,
    headers: HeadersArg,
    subprotocols: list[str] | None,
    reconnect: Backoff | bool,
    fatal_statuses: Iterable[int],
    healthy_after: float | None,
    ping_interval: float | None,
    ping_timeout: float | None,
    open_timeout: float | None,
    close_timeout: float | None,
    write_timeout: float | None,
    max_message_size: int,
    max_queue: int,
    max_queue_bytes: int,
    overflow: str,
    compression: str | None,
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
    server_hostname: str | None,
    insecure_skip_verify: bool,
    pin_sha256: Iterable[str] | None,
    proxy: str | bool | None,
    on_message: OnMessage | None,
    on_open: OnOpen | None,
    on_disconnect: OnDisconnect | None,
    on_reconnect_attempt: OnReconnectAttempt | None,
    on_close: OnClose | None,
    on_callback_error: OnCallbackError | None,
) -> tuple[dict[str, Any], Callable[[], HeadersLike] | None, Callbacks]:
    """Check every option before any I/O; return the engine's JSON config,
    the headers callable (if any) and the callbacks."""
    header_fn = headers if callable(headers) else None
    initial: HeadersLike | None = header_fn() if header_fn is not None else headers  # type: ignore[assignment]
    config: dict[str, Any] = {
        "url": check_url(url),
        "headers": check_headers(initial),
        "subprotocols": check_subprotocols(subprotocols),
        "reconnect": check_reconnect(reconnect),
        "fatal_statuses": check_statuses(fatal_statuses),
        "ping_interval": seconds(check_timeout("ping_interval", ping_interval, positive=True)),
        "ping_timeout": seconds(check_timeout("ping_timeout", ping_timeout, positive=True)),
        "open_timeout": seconds(check_timeout("open_timeout", open_timeout)),
        "close_timeout": seconds(check_timeout("close_timeout", close_timeout)),
        "write_timeout": seconds(check_timeout("write_timeout", write_timeout)),
        "max_message_size": check_positive_int("max_message_size", max_message_size, MAX_MESSAGE_SIZE_LIMIT),
        "max_queue": check_positive_int("max_queue", max_queue, MAX_QUEUE_LIMIT),
        "max_queue_bytes": check_positive_int("max_queue_bytes", max_queue_bytes, 1 << 40),
        "overflow": check_overflow(overflow),
        "compression": check_compression(compression),
        "ca_file": check_path("ca_file", ca_file),
        "cert_file": check_path("cert_file", cert_file),
        "key_file": check_path("key_file", key_file),
        "server_hostname": server_hostname or "",
        "insecure_skip_verify": bool(insecure_skip_verify),
        "pin_sha256": check_pins(pin_sha256),
        **check_proxy(proxy, os.environ),
    }
    if healthy_after is not None:
        config["healthy_after"] = check_timeout("healthy_after", healthy_after, positive=True)
    for name, fn in (
        ("on_message", on_message),
        ("on_open", on_open),
        ("on_disconnect", on_disconnect),
        ("on_reconnect_attempt", on_reconnect_attempt),
        ("on_close", on_close),
        ("on_callback_error", on_callback_error),
    ):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be callable")
    callbacks = Callbacks(on_open, on_disconnect, on_reconnect_attempt, on_close, on_callback_error, on_message)
    return config, header_fn, callbacks


def check_compression(value: str | None) -> str | None:
    if value not in (None, "deflate"):
        raise ValueError(f'compression must be None or "deflate", got {value!r}')
    return value


_PROXY_SCHEMES = ("http", "socks5", "socks5h")


def check_proxy(value: str | bool | None, environ: Mapping[str, str]) -> dict[str, Any]:
    """The proxy part of the config: an explicit URL, the environment's
    HTTP_PROXY, HTTPS_PROXY and NO_PROXY (``True``), or nothing (``None``
    or ``False``). The engine checks the URL further; no message quotes it
    whole, since it may hold credentials."""
    if value is None or value is False:
        return {}
    if value is True:
        names = ("http_proxy", "https_proxy", "no_proxy")
        env = {n: environ.get(n.upper()) or environ.get(n) or "" for n in names}
        return {"proxy_env": env} if any(env.values()) else {}
    if not isinstance(value, str):
        raise TypeError(f"proxy must be a URL str, True (from the environment) or None, not {type(value).__name__}")
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in _PROXY_SCHEMES:
        got = f"scheme {scheme!r}" if scheme else "no scheme"
        raise ValueError(f"proxy must start with http://, socks5:// or socks5h://, got {got}")
    return {"proxy": value}


def check_pins(pins: Iterable[str] | None) -> list[str]:
    """SHA-256 certificate fingerprints: 64 hex digits, colons allowed."""
    if pins is None:
        return []
    if isinstance(pins, str):
        raise TypeError("pin_sha256 must be a list of fingerprints, not a str")
    out = list(pins)
    for pin in out:
        digits = pin.replace(":", "") if isinstance(pin, str) else ""
        if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError(f"pin_sha256: {pin!r} is not a SHA-256 fingerprint in hex")
    return out
