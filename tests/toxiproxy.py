"""A real Shopify toxiproxy server between the client and a real server.

build.sh installs toxiproxy-server from the Go module proxy into build/bin
and names it in STEADYWS_TOXIPROXY. Faults are toxics added and removed
through its HTTP API: https://github.com/Shopify/toxiproxy#toxics
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def binary() -> str:
    path = os.environ.get("STEADYWS_TOXIPROXY") or str(Path(__file__).parent.parent / "build/bin/toxiproxy-server")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"toxiproxy-server not found at {path}: run ./build.sh test, which installs it")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Toxiproxy:
    """A toxiproxy-server process on a random loopback port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.api = f"http://{HOST}:{self.port}"
        self._proc = subprocess.Popen(
            [binary(), "-host", HOST, "-port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.call("GET", "/proxies")
                return
            except OSError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.close()
                    raise RuntimeError("toxiproxy-server did not start") from None
                time.sleep(0.05)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.api + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=5) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def proxy(self, name: str, upstream: str) -> Proxy:
        """A new proxy listening on a free port and forwarding to ``upstream``
        (host:port). The port is fixed so that it stays the same when the
        proxy is disabled and enabled again."""
        listen = f"{HOST}:{_free_port()}"
        info = self.call("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream})
        return Proxy(self, name, info["listen"])

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()


class Proxy:
    """One proxy: ``url(path)`` goes through it."""

    def __init__(self, server: Toxiproxy, name: str, listen: str) -> None:
        self.server, self.name, self.listen = server, name, listen

    def url(self, path: str) -> str:
        return f"ws://{self.listen}{path}"

    def add(self, kind: str, stream: str = "downstream", **attributes: int) -> str:
        """Add a toxic of ``kind`` (reset_peer, timeout, latency, ...); returns its name."""
        name = f"{kind}_{stream}"
        self.server.call(
            "POST",
            f"/proxies/{self.name}/toxics",
            {"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes},
        )
        return name

    def remove(self, toxic: str) -> None:
        self.server.call("DELETE", f"/proxies/{self.name}/toxics/{toxic}")

    def enabled(self, on: bool) -> None:
        """Disabled, the proxy closes its connections and refuses new ones: the server is down."""
        self.server.call("POST", f"/proxies/{self.name}", {"enabled": on})

    def delete(self) -> None:
        self.server.call("DELETE", f"/proxies/{self.name}")
