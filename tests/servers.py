"""Real loopback test servers for the steadyws integration suite.

* ``EchoServer``: a well-behaved server built on ``websockets.sync.server``.
* ``MisbehavingServer``: a raw-socket server that breaks the protocol on purpose.

Both record what they observe from the client as ``Event`` objects, which the
tests wait for with ``wait_for`` / ``close_event``.
"""

from __future__ import annotations

import base64
import hashlib
import http
import json
import socket
import ssl
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from payloads import binary_payload, flood_message, payload, split_bytes
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve
from websockets.typing import Subprotocol

HOST = "127.0.0.1"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_REQUEST_BYTES = 64 * 1024
MAX_CLIENT_FRAME_BYTES = 64 * 1024 * 1024
IO_TIMEOUT = 10.0
SERVER_SUBPROTOCOLS = ("chat.v2", "chat.v1")
FRAGMENTED_WITH_PING_TEXT = "frag-1|héllo-€-wörld|frag-3 𝄞"
PING_PAYLOAD = b"hb"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Something a server observed. ``target`` is the request path with query."""

    kind: str  # "request" | "client_close" | "eof" | "pong" | "reset" | "fin"
    target: str
    code: int | None = None
    reason: str = ""
    payload: bytes = b""
    masked: bool = False
    at: float = field(default_factory=time.monotonic)
    headers: tuple[tuple[str, str], ...] = ()


class Recorder:
    """Thread-safe event log with a blocking ``wait_for``."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._cond = threading.Condition()

    @property
    def events(self) -> list[Event]:
        with self._cond:
            return list(self._events)

    def record(self, event: Event) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 5.0) -> Event:
        """Return the first recorded event matching ``predicate``; fail after ``timeout``."""

        def find() -> Event | None:
            return next((e for e in self._events if predicate(e)), None)

        with self._cond:
            found = self._cond.wait_for(find, timeout)
        if found is None:
            raise AssertionError(f"no matching server event within {timeout}s; saw {self.events}")
        return found

    def close_event(self, target: str, timeout: float = 5.0) -> Event:
        """How the client ended connection ``target``: a ``client_close`` (code set) or ``eof``."""
        return self.wait_for(lambda e: e.target == target and e.kind in ("client_close", "eof"), timeout)


def tagged(path: str) -> str:
    """``path`` with a unique ``tag`` query parameter, so its events can't be confused."""
    separator = "&" if "?" in path else "?"
    return f"{path}{separator}tag={uuid.uuid4().hex}"


def parse_target(target: str) -> tuple[str, dict[str, str]]:
    """Split a request target into (path, query dict)."""
    parts = urlsplit(target)
    return parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))


def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1((key + WS_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def fragments_for(kind: str, count: int, size: int) -> list[bytes]:
    """The /fragments message, encoded and split into ``count`` byte pieces."""
    message = payload(kind, size)
    data = message.encode() if isinstance(message, str) else message
    return split_bytes(data, count)


# --------------------------------------------------------------------------
# EchoServer: websockets.sync based, well-behaved
# --------------------------------------------------------------------------

Handler = Callable[[ServerConnection, dict[str, str]], None]


class Ticker:
    """A venue's stream: messages {"seq": n}, n from 0 to count - 1, at ``rate`` a second, each sent
    to every connection subscribed at that moment (a connection joins where the feed stands). It
    starts with its first subscriber."""

    def __init__(self, count: int, rate: int) -> None:
        self._count, self._rate = count, rate
        self._lock = threading.Lock()
        self._subscribers: list[ServerConnection] = []
        self._thread: threading.Thread | None = None

    def serve(self, ws: ServerConnection) -> None:
        with self._lock:
            self._subscribers.append(ws)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)
                self._thread.start()
        try:
            for _ in ws:  # until the client closes
                pass
        finally:
            with self._lock:
                self._subscribers.remove(ws)

    def _run(self) -> None:
        start = time.perf_counter()
        for seq in range(self._count):
            if (wait := start + seq / self._rate - time.perf_counter()) > 0:
                time.sleep(wait)
            with self._lock:
                subscribers = list(self._subscribers)
            message = f'{{"seq": {seq}}}'
            for ws in subscribers:
                try:
                    ws.send(message)
                except ConnectionClosed:
                    pass


class EchoServer(Recorder):
    """A websockets server in a daemon thread on 127.0.0.1:<random port>.

    Paths: /echo, /shout (echo, upper-cased), /fragments?n=&size=&kind=, /ping,
    /close?code=&reason=, /headers, /flood?n=&size=,
    /record-close (echo, then record how the client closed),
    /ticker?feed=&n=&rate= (one sequenced feed shared by every connection to it, see Ticker),
    /count (records each message it reads, with its arrival time).
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        subprotocols: Sequence[str] = SERVER_SUBPROTOCOLS,
        compression: str | None = None,
    ) -> None:
        super().__init__()
        self.scheme = "wss" if ssl_context is not None else "ws"
        self._subprotocols = [Subprotocol(s) for s in subprotocols]
        self._routes: dict[str, Handler] = {
            "/echo": lambda ws, q: self._echo(ws),
            "/shout": lambda ws, q: self._shout(ws),
            "/fragments": self._fragments,
            "/ping": self._ping,
            "/close": self._close,
            "/headers": lambda ws, q: self._headers(ws),
            "/flood": self._flood,
            "/record-close": lambda ws, q: self._record_close(ws),
            "/ticker": self._ticker,
            "/count": lambda ws, q: self._count(ws),
        }
        self._tickers: dict[str, Ticker] = {}
        self._tickers_lock = threading.Lock()
        self._server = serve(
            self._handle,
            HOST,
            0,
            ssl=ssl_context,
            max_size=None,
            compression=compression,
            ping_interval=None,
            close_timeout=5,
            select_subprotocol=self._select_subprotocol,
        )
        self.port: int = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="echo-server", daemon=True)
        self._thread.start()

    def url(self, path: str, host: str = HOST) -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(10)

    def _select_subprotocol(self, ws: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        """Server preference order; no subprotocol (rather than a 400) when none is shared."""
        return next((s for s in self._subprotocols if s in offered), None)

    def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        path, query = parse_target(ws.request.path)
        route = self._routes.get(path)
        try:
            if route is None:
                ws.close(4404, "no such path")
            else:
                route(ws, query)
        except ConnectionClosed:
            pass

    @staticmethod
    def _echo(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    @staticmethod
    def _shout(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message.upper())

    @staticmethod
    def _wait_for_client_close(ws: ServerConnection) -> None:
        for _ in ws:
            pass

    def _fragments(self, ws: ServerConnection, query: dict[str, str]) -> None:
        kind = query.get("kind", "binary")
        pieces = fragments_for(kind, int(query.get("n", "3")), int(query.get("size", "100")))
        ws.send(pieces, text=(kind == "text"))
        self._wait_for_client_close(ws)

    def _ping(self, ws: ServerConnection, query: dict[str, str]) -> None:
        pong_received = ws.ping()
        ws.send("pong-ok" if pong_received.wait(5) else "pong-missing")
        self._echo(ws)

    @staticmethod
    def _close(ws: ServerConnection, query: dict[str, str]) -> None:
        ws.close(int(query.get("code", "1000")), query.get("reason", ""))

    def _headers(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        headers = ws.request.headers
        report = {
            "headers": {name.lower(): ", ".join(headers.get_all(name)) for name in headers},
            "subprotocol": ws.subprotocol,
        }
        ws.send(json.dumps(report))
        self._echo(ws)

    @staticmethod
    def _flood(ws: ServerConnection, query: dict[str, str]) -> None:
        size = int(query.get("size", "50"))
        if query.get("start") == "on_request":  # flood only once the client says so
            ws.recv()
        for index in range(int(query.get("n", "100"))):
            ws.send(flood_message(index, size))
        if query.get("then") == "echo":  # stay: answer pings, echo messages
            EchoServer._echo(ws)
        else:
            ws.close(1000)

    def _count(self, ws: ServerConnection) -> None:
        """Record each message as it is read (Event "message", with its arrival time)."""
        assert ws.request is not None
        for message in ws:
            data = message.encode() if isinstance(message, str) else message
            self.record(Event("message", ws.request.path, payload=data))

    def _ticker(self, ws: ServerConnection, query: dict[str, str]) -> None:
        name = query.get("feed", "default")
        with self._tickers_lock:
            ticker = self._tickers.get(name)
            if ticker is None:
                ticker = self._tickers[name] = Ticker(int(query.get("n", "1000")), int(query.get("rate", "1000")))
        ticker.serve(ws)

    def _record_close(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        try:
            self._echo(ws)
        finally:
            received = ws.protocol.close_rcvd
            if received is None:
                self.record(Event("eof", ws.request.path))
            else:
                self.record(Event("client_close", ws.request.path, received.code, received.reason))


# --------------------------------------------------------------------------
# MisbehavingServer: raw sockets, breaks the protocol on purpose
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]

    def int_param(self, name: str, default: int) -> int:
        return int(self.query.get(name, default))


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes
    masked: bool


def encode_frame(opcode: int, data: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """An unmasked (server-to-client) frame."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(data)
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + data


def http_response(status: int, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()) -> bytes:
    phrase = http.HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {phrase}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def switching_protocols(accept: str) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode("latin-1")


class RawConnection:
    """A server-side TCP connection with a read buffer, an HTTP reader and a frame reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("client closed the connection")
        self._buffer += chunk

    def _take(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._fill()
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def read_request(self) -> Request:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_REQUEST_BYTES:
                raise ValueError("request head too large")
            self._fill()
        head = self._take(end + 4).decode("latin-1")
        request_line, *header_lines = head.split("\r\n")[:-2]
        target = request_line.split(" ")[1]
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        path, query = parse_target(target)
        return Request(target, path, query, headers)

    def read_frame(self) -> Frame:
        first, second = self._take(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._take(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._take(8))
        if length > MAX_CLIENT_FRAME_BYTES:
            raise ValueError(f"client frame of {length} bytes")
        masked = bool(second & 0x80)
        mask = self._take(4) if masked else b"\0\0\0\0"
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(self._take(length)))
        return Frame(bool(first & 0x80), first & 0x0F, data, masked)

    def drain(self) -> None:
        """Discard input until the client closes (or the I/O timeout hits)."""
        while self.sock.recv(65536):
            pass


def _garbage_frame(kind: str) -> bytes:
    """One frame a client must reject with close code 1002."""
    frames = {
        "opcode": encode_frame(0x3, b"??"),  # reserved non-control opcode
        "rsv1": encode_frame(OP_TEXT, b"hi", rsv1=True),  # RSV1 without a negotiated extension
        "ctl-fragmented": encode_frame(OP_PING, b"x", fin=False),  # control frames can't be fragmented
        "ctl-too-long": encode_frame(OP_PING, b"p" * 126),  # control payload > 125 bytes
        "orphan-continuation": encode_frame(OP_CONT, b"lost"),  # continuation with nothing to continue
    }
    return frames[kind]


GARBAGE_FRAME_KINDS = ("opcode", "rsv1", "ctl-fragmented", "ctl-too-long", "orphan-continuation")

Route = Callable[[RawConnection, Request], None]


class MisbehavingServer(Recorder):
    """A raw-socket server on 127.0.0.1:<random port>; each path misbehaves differently.

    Every request is recorded as Event("request", target). Paths that complete
    the handshake then record how the client ended the connection
    (``client_close`` with its code, or ``eof``) and any pong it sent.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self._tls = ssl_context
        self.scheme = "wss" if ssl_context is not None else "ws"
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self._routes: dict[str, Route] = {
            "/status": self._status,
            "/plain-http": self._plain_http,
            "/garbage-response": self._garbage_response,
            "/bad-accept": self._bad_accept,
            "/early-frames": self._early_frames,
            "/reset-after": self._reset_after,
            "/close-mid-frame": self._close_mid_frame,
            "/garbage-frames": self._garbage_frames,
            "/invalid-utf8": self._invalid_utf8,
            "/too-big": self._too_big,
            "/silent": lambda conn, request: conn.drain(),
            "/fragmented-with-ping": self._fragmented_with_ping,
            "/accept-then": self._accept_then,
            "/deflate-bomb": self._deflate_bomb,
            "/huge-length": self._huge_length,
            "/endless-continuation": self._endless_continuation,
            "/huge-header": self._huge_header,
            "/trickle": self._trickle,
        }
        self._acceptor = threading.Thread(target=self._accept_loop, name="misbehaving-server", daemon=True)
        self._acceptor.start()

    def url(self, path: str) -> str:
        return f"{self.scheme}://{HOST}:{self.port}{path}"

    def close(self) -> None:
        self._stopping.set()
        self._acceptor.join(5)
        self._listener.close()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            workers = list(self._workers)
        for worker in workers:
            worker.join(5)

    # -- plumbing ----------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            with self._lock:
                self._open.add(sock)
                self._workers = [w for w in self._workers if w.is_alive()] + [worker]
            worker.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(IO_TIMEOUT)
        try:
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True)
            conn = RawConnection(sock)
            with sock:
                request = conn.read_request()
                self.record(Event("request", request.target, headers=tuple(request.headers.items())))
                route = self._routes.get("/" + request.path.split("/")[1], self._not_found)
                route(conn, request)
        except (OSError, EOFError, ValueError):
            pass
        finally:
            with self._lock:
                self._open.discard(sock)

    def _until_client_close(self, conn: RawConnection, target: str) -> None:
        """Answer pings, record pongs, and record the client's close frame (then echo it)."""
        while True:
            try:
                frame = conn.read_frame()
            except EOFError:
                self.record(Event("eof", target))
                return
            if frame.opcode == OP_PING:
                conn.send(encode_frame(OP_PONG, frame.payload))
            elif frame.opcode == OP_PONG:
                self.record(Event("pong", target, payload=frame.payload, masked=frame.masked))
            elif frame.opcode == OP_CLOSE:
                code = struct.unpack("!H", frame.payload[:2])[0] if len(frame.payload) >= 2 else None
                reason = frame.payload[2:].decode("utf-8", "replace")
                self.record(Event("client_close", target, code, reason, masked=frame.masked))
                conn.send(encode_frame(OP_CLOSE, frame.payload[:2]))
                return

    def _upgrade_then(self, conn: RawConnection, request: Request, frames: bytes) -> None:
        """Valid 101 with ``frames`` in the same write, then wait for the client's close."""
        conn.send(switching_protocols(accept_key(request.headers.get("sec-websocket-key", ""))) + frames)
        self._until_client_close(conn, request.target)

    @staticmethod
    def _reply_and_finish(conn: RawConnection, data: bytes) -> None:
        """Send ``data``, half-close (FIN), and wait for the client to go away."""
        conn.send(data)
        conn.sock.shutdown(socket.SHUT_WR)
        conn.drain()

    # -- routes ------------------------------------------------------------

    def _not_found(self, conn: RawConnection, request: Request) -> None:
        self._reply_and_finish(conn, http_response(404, b"no such test path\n"))

    def _status(self, conn: RawConnection, request: Request) -> None:
        status, query = int(request.path.split("/")[2]), request.query
        self._status_reply(conn, status, query.get("retry_after"), query.get("location"))

    def _status_reply(
        self, conn: RawConnection, status: int, retry_after: str | None, location: str | None = None
    ) -> None:
        headers = [("Content-Type", "text/plain")]
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
        if location is not None:
            headers.append(("Location", location))
        body = f"status {status} from the misbehaving server\n".encode()
        self._reply_and_finish(conn, http_response(status, body, headers))

    def _plain_http(self, conn: RawConnection, request: Request) -> None:
        body = b"<!doctype html><html><body><h1>Not a WebSocket endpoint</h1></body></html>\n"
        self._reply_and_finish(conn, http_response(200, body, [("Content-Type", "text/html")]))

    def _garbage_response(self, conn: RawConnection, request: Request) -> None:
        self._reply_and_finish(conn, b"\x16\x03\x01\x00\xffTHIS IS NOT HTTP\x00\x13\x37\r\n\r\n")

    def _bad_accept(self, conn: RawConnection, request: Request) -> None:
        self._reply_and_finish(conn, switching_protocols(accept_key("not-the-client-key")))

    def requests(self, target: str) -> list[Event]:
        """The handshake requests received for ``target``, in order."""
        return [e for e in self.events if e.kind == "request" and e.target == target]

    def _accept_then(self, conn: RawConnection, request: Request) -> None:
        """The first ``accepts`` connections to this target are accepted and
        dropped at once (FIN, no close frame); later ones get ``then``: an
        HTTP status (with ``retry_after``), "silent" (no answer), or "drop"."""
        seen = len(self.requests(request.target))
        then = request.query.get("then", "drop")
        if seen <= request.int_param("accepts", 1) or then == "drop":
            conn.send(switching_protocols(accept_key(request.headers.get("sec-websocket-key", ""))))
            conn.sock.shutdown(socket.SHUT_WR)
            conn.drain()
        elif then == "silent":
            conn.drain()
        else:
            self._status_reply(conn, int(then), request.query.get("retry_after"))

    def _huge_length(self, conn: RawConnection, request: Request) -> None:
        """A binary frame header declaring 2^63 bytes (MSB set: RFC 6455 5.2
        forbids it) or 2^63-1 bytes, and a few bytes of payload."""
        length = (1 << 63) if request.query.get("msb") == "1" else (1 << 63) - 1
        self._upgrade_then(conn, request, struct.pack("!BBQ", 0x80 | OP_BINARY, 127, length) + b"x" * 16)

    def _endless_continuation(self, conn: RawConnection, request: Request) -> None:
        """A text message whose continuation frames never end (until the client gives up)."""
        conn.send(switching_protocols(accept_key(request.headers.get("sec-websocket-key", ""))))
        conn.send(encode_frame(OP_TEXT, b"x" * 1000, fin=False))
        chunk = encode_frame(OP_CONT, b"x" * 1000, fin=False) * 64
        try:
            while True:
                conn.send(chunk)
        except OSError:
            self.record(Event("eof", request.target))

    def _huge_header(self, conn: RawConnection, request: Request) -> None:
        """A 101 whose headers go on for ``mb`` MiB."""
        accept = accept_key(request.headers.get("sec-websocket-key", ""))
        head = switching_protocols(accept)[:-2]  # keep the header block open
        line = b"X-Padding: " + b"p" * 1000 + b"\r\n"
        try:
            conn.send(head)
            for _ in range(request.int_param("mb", 10) * 1024):
                conn.send(line)
        except OSError:
            self.record(Event("eof", request.target))

    def _trickle(self, conn: RawConnection, request: Request) -> None:
        """One byte every ``ms`` milliseconds: of the handshake response
        (``what=handshake``) or, after a normal 101, of a frame."""
        accept = accept_key(request.headers.get("sec-websocket-key", ""))
        data = switching_protocols(accept)
        if request.query.get("what") == "frame":
            conn.send(data)
            data = encode_frame(OP_TEXT, b"slow " * 100)
        pause = request.int_param("ms", 1000) / 1000
        try:
            for i in range(len(data)):
                conn.send(data[i : i + 1])
                time.sleep(pause)
        except OSError:
            self.record(Event("eof", request.target))

    def _deflate_bomb(self, conn: RawConnection, request: Request) -> None:
        """Accept permessage-deflate, then send one compressed binary message
        that inflates to ``mib`` MiB of zeros (RFC 7692 7.2.1: raw deflate,
        the 00 00 ff ff tail removed)."""
        inflated = b"\0" * (request.int_param("mib", 16) << 20)
        deflater = zlib.compressobj(wbits=-15)
        payload = (deflater.compress(inflated) + deflater.flush(zlib.Z_SYNC_FLUSH))[:-4]
        head = bytearray(encode_frame(OP_BINARY, payload))
        head[0] |= 0x40  # RSV1: compressed
        accept = accept_key(request.headers.get("sec-websocket-key", ""))
        extension = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        header = f"\r\nSec-WebSocket-Extensions: {extension}\r\n\r\n".encode()
        response = switching_protocols(accept).replace(b"\r\n\r\n", header, 1)
        conn.send(response + bytes(head))
        self._until_client_close(conn, request.target)

    def _early_frames(self, conn: RawConnection, request: Request) -> None:
        count = request.int_param("n", 3)
        frames = b"".join(encode_frame(OP_TEXT, f"early-{i}".encode()) for i in range(count))
        self._upgrade_then(conn, request, frames)

    def _reset_after(self, conn: RawConnection, request: Request) -> None:
        conn.send(switching_protocols(accept_key(request.headers.get("sec-websocket-key", ""))))
        deadline = time.monotonic() + request.int_param("ms", 300) / 1000
        while (left := deadline - time.monotonic()) > 0:
            conn.sock.settimeout(left)
            try:
                if not conn.sock.recv(65536):
                    return
            except TimeoutError:
                break
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.record(Event("reset", request.target))
        # Leaving _serve's `with sock` closes the socket: with SO_LINGER (1, 0) that is an RST.

    def _close_mid_frame(self, conn: RawConnection, request: Request) -> None:
        header = struct.pack("!BBH", 0x80 | OP_TEXT, 126, 1000)
        accept = accept_key(request.headers.get("sec-websocket-key", ""))
        self.record(Event("fin", request.target))
        self._reply_and_finish(conn, switching_protocols(accept) + header + b"0123456789")

    def _garbage_frames(self, conn: RawConnection, request: Request) -> None:
        self._upgrade_then(conn, request, _garbage_frame(request.query.get("kind", "opcode")))

    def _invalid_utf8(self, conn: RawConnection, request: Request) -> None:
        self._upgrade_then(conn, request, encode_frame(OP_TEXT, b"ok \xff\xfe"))

    def _too_big(self, conn: RawConnection, request: Request) -> None:
        size = request.int_param("size", 2000)
        self._upgrade_then(conn, request, encode_frame(OP_BINARY, binary_payload(size)))

    def _fragmented_with_ping(self, conn: RawConnection, request: Request) -> None:
        first, second, third = split_bytes(FRAGMENTED_WITH_PING_TEXT.encode(), 3)
        frames = (
            encode_frame(OP_TEXT, first, fin=False)
            + encode_frame(OP_PING, PING_PAYLOAD)
            + encode_frame(OP_CONT, second, fin=False)
            + encode_frame(OP_CONT, third)
        )
        self._upgrade_then(conn, request, frames)
