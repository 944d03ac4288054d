"""Real proxies on loopback for the proxy tests.

ConnectProxy is a small HTTP CONNECT proxy (RFC 9110 9.3.6) written here, so a
test can see each request, demand credentials and route made-up host names.
SocksProxy runs pproxy (a maintained proxy server from PyPI) as a SOCKS5
server with username/password authentication (RFC 1928, RFC 1929).
"""

from __future__ import annotations

import base64
import contextlib
import socket
import subprocess
import sys
import threading
import time

from servers import unused_port


class ConnectProxy:
    """Tunnels CONNECT requests; ``route`` maps host names to real host:port."""

    def __init__(self, *, user: str = "", password: str = "", route: dict[str, str] | None = None) -> None:
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user else ""
        self.route = route or {}
        self.requests: list[tuple[str, str]] = []  # (target, Proxy-Authorization)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._tunnel, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _tunnel(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
            target = lines[0].split(" ")[1]
            headers = dict(line.split(": ", 1) for line in lines[1:])
            self.requests.append((target, headers.get("Proxy-Authorization", "")))
            if self.auth and headers.get("Proxy-Authorization") != self.auth:
                conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n")
                return
            host, port = target.rsplit(":", 1)
            try:
                upstream = socket.create_connection(tuple(self.route.get(host, target).rsplit(":", 1)))  # type: ignore[arg-type]
            except OSError:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with upstream:
                pipe = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
                pipe.start()
                _pipe(conn, upstream)
                pipe.join(5)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone does not
        self._sock.close()
        self._accept.join(5)
        for t in self._threads:
            t.join(5)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


# pproxy runs on uvloop when it can import it, and its startup fails with the
# uvloop release our asyncio tests pin; its own asyncio loop is what we want.
# "--auth 0" makes it check credentials on every connection: by default it
# trusts an address that authenticated once for 30 days.
_RUN_PPROXY = "import sys, runpy; sys.modules['uvloop'] = None; runpy.run_module('pproxy', run_name='__main__')"


class SocksProxy:
    """pproxy serving SOCKS5 on loopback, requiring ``user:password``."""

    def __init__(self, user: str, password: str) -> None:
        self.port = unused_port()
        self.user, self.password = user, password
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _RUN_PPROXY,
                "-l",
                f"socks5://127.0.0.1:{self.port}#{user}:{password}",
                "--auth",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.05)
        self.close()
        raise RuntimeError("pproxy did not start")

    def url(self, user: str | None = None, password: str | None = None, scheme: str = "socks5") -> str:
        return f"{scheme}://{user or self.user}:{password or self.password}@127.0.0.1:{self.port}"

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(10)
