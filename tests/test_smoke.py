"""The smoke test of an installed wheel: connect, send, receive, a reconnect,
close -- threaded, asyncio and a Group -- against steadyws.testing.Server.

It needs nothing but the wheel: ./build.sh test runs it with pytest on every
other CPython the machine has (the version matrix), and ./build.sh wheels
runs it as a plain script (``python test_smoke.py``) on an arm64 CPython
under qemu, where pytest is not installed. So: no pytest import, no fixtures.
"""

from __future__ import annotations

import asyncio
import platform
import sys
import time

import steadyws
import steadyws.aio
from steadyws.testing import Server

WAIT = 30.0  # seconds: generous, the arm64 run is emulated
FAST = steadyws.Backoff(min=0.05, max=0.2, jitter=False)


def test_threaded_send_receive_reconnect_close() -> None:
    with Server() as srv:
        ws = steadyws.connect(srv.url, reconnect=FAST)
        ws.send("hello")
        assert srv.expect(lambda m: m == "hello", timeout=WAIT) == "hello"
        srv.send("tick 1")
        assert ws.recv(timeout=WAIT) == "tick 1"
        srv.reset()  # the engine reconnects on its own
        deadline = time.monotonic() + WAIT
        while srv.counts()["handshakes"] < 2 or ws.state != "open":
            assert time.monotonic() < deadline, f"no reconnect within {WAIT} s (state {ws.state})"
            time.sleep(0.01)
        srv.send("tick 2")
        assert ws.recv(timeout=WAIT) == "tick 2"
        assert ws.stats()["reconnects"] == 1
        ws.close()
        assert ws.state == "closed"


def test_asyncio_send_receive_close() -> None:
    async def main() -> None:
        with Server() as srv:
            async with steadyws.aio.connect(srv.url, reconnect=False) as ws:
                await ws.send(b"\x00binary")
                assert srv.expect(lambda m: m == b"\x00binary", timeout=WAIT) == b"\x00binary"
                srv.send("tick")
                assert await ws.recv(timeout=WAIT) == "tick"
            assert ws.state == "closed"

    asyncio.run(main())


def test_group_of_two() -> None:
    with Server() as srv, steadyws.Group() as feeds:
        a = feeds.connect(srv.url, reconnect=False)
        b = feeds.connect(srv.url, reconnect=False)
        srv.send("to both")
        got = [feeds.recv(timeout=WAIT) for _ in range(2)]
        assert sorted(id(ws) for ws, _ in got) == sorted([id(a), id(b)])
        assert [message for _, message in got] == ["to both", "to both"]


if __name__ == "__main__":
    tests = [value for name, value in sorted(globals().items()) if name.startswith("test_")]
    for test in tests:
        started = time.monotonic()
        test()
        print(f"ok  {test.__name__} ({time.monotonic() - started:.1f} s)")
    print(
        f"{len(tests)} smoke tests passed: steadyws {steadyws.__version__}, Python {sys.version.split()[0]}, "
        f"{platform.machine()}"
    )
