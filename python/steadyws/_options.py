"""The options of connect(): their types, and turning them into the engine's
JSON config.

The engine validates every option (its table in core/optable.go has each
option's type, range, default and what None means); this module only
converts Python values into JSON that keeps their Python type visible, so
that a wrong type or value fails with a TypeError or ValueError naming the
option, from the engine, before any I/O. ``Options`` is the one typed list
that both connect functions take (with their own callback types).
"""

from __future__ import annotations

import json
import math
import os
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Union

from . import _lib
from ._abi import BACKOFF_FACTOR, BACKOFF_JITTER, BACKOFF_MAX, BACKOFF_MIN, OPTIONS
from ._callbacks import Callbacks
from ._ratelimit import RateLimit

HeadersLike = Union[Mapping[str, str], Iterable[tuple[str, str]]]
HeadersArg = Union[HeadersLike, Callable[[], HeadersLike], None]
Overflow = Literal["block", "drop_oldest", "drop_newest", "close"]


class Options(TypedDict, total=False):
    """The engine's options, as connect() and steadyws.aio.connect() take
    them; the README documents each with its default."""

    headers: HeadersArg
    subprotocols: Sequence[str] | None
    open_timeout: float | None
    close_timeout: float | None
    write_timeout: float | None
    max_message_size: int
    max_queue: int
    max_queue_bytes: int
    overflow: Overflow
    decode_text: bool
    busy_poll: float
    max_handshake_size: int
    compression: Literal["deflate"] | None
    ca_file: str | os.PathLike[str] | None
    cert_file: str | os.PathLike[str] | None
    key_file: str | os.PathLike[str] | None
    server_hostname: str | None
    insecure_skip_verify: bool
    pin_sha256: Iterable[str] | None
    proxy: str | bool | None
    reconnect: Backoff | bool | None
    fatal_statuses: Iterable[int]
    healthy_after: float
    ping_interval: float | None
    ping_timeout: float | None
    max_silence: float | None
    max_connection_age: float | None
    send_rate: RateLimit | None
    connect_rate: RateLimit | None


@dataclass(frozen=True)
class Backoff:
    """The reconnect policy: delays grow from ``min`` by ``factor`` up to
    ``max`` seconds, each spread at random between ``min`` and its value when
    ``jitter`` is on; ``max_attempts`` consecutive failures end the client
    (None: retry forever). The first retry after a connection that stayed
    healthy happens at once. ``min`` is at least 0.05 s: no policy makes a
    tight reconnect loop. The engine checks the values when it is made."""

    min: float = BACKOFF_MIN
    max: float = BACKOFF_MAX
    factor: float = BACKOFF_FACTOR
    jitter: bool = BACKOFF_JITTER
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        _lib.validate({"reconnect": self.config()})

    def config(self) -> dict[str, Any]:
        """The policy as the engine reads it."""
        return {name: to_json(getattr(self, name)) for name in ("min", "max", "factor", "jitter", "max_attempts")}


def to_json(value: object) -> Any:
    """``value`` as JSON that keeps what JSON cannot say -- a non-finite
    float, a mapping, any other Python type -- so the engine can name it."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, (Backoff, RateLimit)):
        return value.config()
    if isinstance(value, os.PathLike):
        return to_json(os.fspath(value))
    if isinstance(value, Mapping):
        return {"$type": "dict", "$items": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple, set, frozenset, Iterator)):
        return [to_json(item) for item in value]
    return {"$type": type(value).__name__}


def build(
    url: object, options: Mapping[str, object]
) -> tuple[dict[str, Any], Callbacks, Callable[[], HeadersLike] | None]:
    """The engine's config for ``url`` and ``options``, the callbacks, and
    the headers callable (called here for the first attempt, and by the
    callback runner before every reconnect)."""
    rest = dict(options)
    callbacks = Callbacks.take(rest)
    config: dict[str, Any] = {"url": to_json(url)}
    for name, value in rest.items():
        if name not in OPTIONS or OPTIONS[name].internal:
            raise TypeError(f"connect() got an unexpected option {name!r}")
        config[name] = to_json(value)
    header_fn = rest.get("headers")
    if callable(header_fn):
        config["headers"] = to_json(header_fn())
        config["_header_requests"] = True
    else:
        header_fn = None
    if rest.get("proxy", True) is True:
        env = _proxy_env(os.environ)
        if env:
            config["_proxy_env"] = env
    if callbacks.on_open is not None:
        config["_open_gate"] = True
    return config, callbacks, header_fn


def send_pacing(options: Mapping[str, object]) -> float:
    """How long a send that must not block (an event loop's) may wait, in
    its own sleeps, for its send_rate to have room: write_timeout for a
    RateLimit(wait=True), 0 (raise RateLimited at once) otherwise. The
    engine validated the options already."""
    limit = options.get("send_rate")
    if not isinstance(limit, RateLimit) or not limit.wait:
        return 0.0
    timeout = options.get("write_timeout", float(OPTIONS["write_timeout"].default))
    if timeout is None:
        return math.inf
    return float(timeout)  # type: ignore[arg-type]


def encode(config: dict[str, Any]) -> bytes:
    return json.dumps(config, allow_nan=False).encode("utf-8")


def _proxy_env(environ: Mapping[str, str]) -> dict[str, str]:
    """HTTP_PROXY, HTTPS_PROXY and NO_PROXY (upper or lower case), as curl
    and requests read them."""
    names = ("http_proxy", "https_proxy", "no_proxy")
    env = {n: environ.get(n.upper()) or environ.get(n) or "" for n in names}
    return env if any(env.values()) else {}


def headers_json(headers: object) -> bytes:
    """What a headers callable returned, for the engine to check."""
    return json.dumps(to_json(headers), allow_nan=False).encode("utf-8")


def redact_url(url: object) -> str:
    """``url`` with its password and query values replaced by ``***``: URLs
    of exchanges often carry keys."""
    if not isinstance(url, str):
        return "<invalid url>"
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


def encode_message(message: object, name: str = "message") -> tuple[bytes, int]:
    """A message's bytes and whether it is text: ``str`` is sent as UTF-8
    text, bytes-like as binary."""
    if isinstance(message, str):
        return message.encode("utf-8"), 1
    if isinstance(message, bytes):
        return message, 0
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message), 0
    raise TypeError(f"{name} must be str or bytes-like, not {type(message).__name__}")


def encode_batch(messages: object) -> tuple[bytes, list[int]]:
    """A batch's payloads back to back and its meta words (length, text)."""
    if isinstance(messages, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"messages must be an iterable of messages, not one {type(messages).__name__}")
    if not isinstance(messages, Iterable):
        raise TypeError(f"messages must be an iterable of messages, not {type(messages).__name__}")
    payloads: list[bytes] = []
    words: list[int] = []
    for message in messages:
        data, text = encode_message(message, "messages")
        payloads.append(data)
        words += (len(data), text)
    return b"".join(payloads), words


def check_close(code: object, reason: object) -> bytes:
    """The close code and reason, checked by the engine (RFC 6455 7.4)."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"code must be an int, not {type(code).__name__}")
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a str, not {type(reason).__name__}")
    raw = reason.encode("utf-8")
    if not -(2**31) <= code < 2**31:
        raise ValueError(f"code: {code} may not be sent (use 1000-1003, 1007-1014 or 3000-4999)")
    _lib.call(_lib.lib.sws_check_close, code, raw, len(raw))
    return raw


def check_timeout(name: str, value: object) -> float | None:
    """A receive timeout in seconds (None: wait forever; 0: only check)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative number or None, got {value}")
    return float(value)


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {type(value).__name__}")
    return value


def check_count(name: str, value: object, maximum: int = 1 << 30) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 1 <= value <= maximum:
        raise ValueError(f"{name} must be between 1 and {maximum}, got {value}")
    return value
