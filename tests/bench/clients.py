"""One measurement of one client library, run in its own process.

    python clients.py flood   CLIENT URL N      -> messages/s delivered to Python, CPU us per message
    python clients.py echo    CLIENT URL N      -> latencies of N round trips (us)
    python clients.py stall   CLIENT URL SECS   -> peak RSS (MiB) of a consumer that never reads
    python clients.py fanin   CLIENT URL CONNS SECS -> messages/s, CPU % and CPU us per message over many connections
    python clients.py idle    CLIENT URL CONNS SECS -> RSS (MiB) and CPU % with CONNS idle Group members

Each prints one JSON object. Every client consumes messages as Python
objects: str for text (bytes for the binary flood), the way a strategy would.
CPU is the process's own accounting (user + sys, every thread).

"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

Result = dict[str, Any]


def rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU of the whole process (every thread), in seconds."""
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


class Flood:
    """A flood's rate and CPU per message, counted from its first message."""

    def __init__(self) -> None:
        self.start = 0.0
        self.cpu = 0.0

    def first(self) -> None:
        if not self.start:
            self.start, self.cpu = time.perf_counter(), cpu_seconds()

    def result(self, n: int) -> Result:
        wall, cpu = time.perf_counter() - self.start, cpu_seconds() - self.cpu
        return {"msgs_per_s": (n - 1) / wall, "cpu_us_per_msg": 1e6 * cpu / (n - 1)}


# -- steadyws -----------------------------------------------------------------


def steadyws_flood(url: str, n: int, **options: Any) -> Result:
    import steadyws

    with steadyws.connect(url, reconnect=False, **options) as ws:
        got, clock = 0, Flood()
        while got < n:
            batch = ws.recv_batch(100_000)
            clock.first()
            got += len(batch)
        return clock.result(n)


def steadyws_echo(url: str, n: int, **options: Any) -> list[float]:
    import steadyws

    payload = "x" * 64
    out = []
    with steadyws.connect(url, reconnect=False, **options) as ws:
        for _ in range(n):
            t = time.perf_counter()
            ws.send(payload)
            ws.recv()
            out.append(time.perf_counter() - t)
    return out


async def steadyws_aio_echo(url: str, n: int) -> list[float]:
    import steadyws.aio

    payload = "x" * 64
    out = []
    async with steadyws.aio.connect(url, reconnect=False) as ws:
        for _ in range(n):
            t = time.perf_counter()
            await ws.send(payload)
            await ws.recv()
            out.append(time.perf_counter() - t)
    return out


def steadyws_stall(url: str, secs: float) -> None:
    import steadyws

    ws = steadyws.connect(url, reconnect=False)  # default queue settings
    time.sleep(secs)
    ws.close()


def steadyws_group_many(urls: list[str], fan: Fan) -> None:
    import steadyws

    with steadyws.Group() as group:
        for u in urls:
            group.connect(u, reconnect=False)
        fan.ready.set()
        while not fan.stop.is_set():
            fan.count += len(group.recv_batch(10_000, timeout=0.1))


async def steadyws_aio_group_many(urls: list[str], fan: Fan) -> None:
    import steadyws.aio

    async with steadyws.aio.Group() as group:
        for u in urls:
            await group.connect(u, reconnect=False)
        fan.ready.set()
        while not fan.stop.is_set():
            fan.count += len(await group.recv_batch(10_000, timeout=0.1))


async def steadyws_aio_many(urls: list[str], fan: Fan) -> None:
    import steadyws.aio

    conns = [await steadyws.aio.connect(u, reconnect=False) for u in urls]

    async def consume(ws: Any) -> None:
        while True:
            batch = await ws.recv_batch(1000)  # not `fan.count += await ...`: that reads count first
            fan.count += len(batch)

    await _run_tasks([consume(ws) for ws in conns], fan)
    for ws in conns:
        await ws.close()


# -- websockets ---------------------------------------------------------------


async def _rate(stream: Any, n: int) -> Result:
    """Rate and CPU over the first n messages of an async stream, from its first."""
    got, clock = 0, Flood()
    async for _ in stream:
        clock.first()
        got += 1
        if got == n:
            break
    return clock.result(n)


async def websockets_flood_async(url: str, n: int) -> Result:
    import websockets

    async with websockets.connect(url, max_size=None, compression=None) as ws:
        return await _rate(ws, n)


async def websockets_echo_async(url: str, n: int) -> list[float]:
    import websockets

    payload, out = "x" * 64, []
    async with websockets.connect(url, compression=None) as ws:
        for _ in range(n):
            t = time.perf_counter()
            await ws.send(payload)
            await ws.recv()
            out.append(time.perf_counter() - t)
    return out


async def websockets_stall_async(url: str, secs: float) -> None:
    import websockets

    async with websockets.connect(url, compression=None):
        await asyncio.sleep(secs)


async def websockets_many(urls: list[str], fan: Fan) -> None:
    import websockets

    conns = [await websockets.connect(u, compression=None) for u in urls]

    async def consume(ws: Any) -> None:
        async for _ in ws:
            fan.count += 1

    await _run_tasks([consume(ws) for ws in conns], fan)


# -- aiohttp ------------------------------------------------------------------


async def aiohttp_flood(url: str, n: int) -> Result:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
        return await _rate(ws, n)


async def aiohttp_echo(url: str, n: int) -> list[float]:
    import aiohttp

    payload, out = "x" * 64, []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        for _ in range(n):
            t = time.perf_counter()
            await ws.send_str(payload)
            await ws.receive()
            out.append(time.perf_counter() - t)
    return out


async def aiohttp_stall(url: str, secs: float) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.ws_connect(url):
        await asyncio.sleep(secs)


# -- websocket-client ---------------------------------------------------------


def wsclient_flood(url: str, n: int) -> Result:
    import websocket

    ws = websocket.create_connection(url)
    clock = Flood()
    for _ in range(n):
        ws.recv()
        clock.first()
    ws.close()
    return clock.result(n)


def wsclient_echo(url: str, n: int) -> list[float]:
    import websocket

    payload, out = "x" * 64, []
    ws = websocket.create_connection(url)
    for _ in range(n):
        t = time.perf_counter()
        ws.send(payload)
        ws.recv()
        out.append(time.perf_counter() - t)
    ws.close()
    return out


def wsclient_stall(url: str, secs: float) -> None:
    import websocket

    ws = websocket.create_connection(url)
    time.sleep(secs)
    ws.close()


# -- picows (callbacks on the event loop) --------------------------------------


async def picows_flood(url: str, n: int) -> Result:
    from picows import WSListener, WSMsgType, ws_connect

    done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()

    class Listener(WSListener):  # type: ignore[misc]
        got, clock = 0, Flood()

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                frame.get_payload_as_utf8_text()  # a str, like every other client
                self.clock.first()
                self.got += 1
                if self.got == n and not done.done():
                    done.set_result(self.clock.result(n))

    transport, _ = await ws_connect(Listener, url, max_frame_size=1 << 30)
    result = await done
    transport.disconnect()
    return result


async def picows_echo(url: str, n: int) -> list[float]:
    from picows import WSListener, WSMsgType, ws_connect

    loop = asyncio.get_running_loop()
    out: list[float] = []
    state: dict[str, Any] = {}

    class Listener(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                frame.get_payload_as_utf8_text()
                state["fut"].set_result(None)

    transport, _ = await ws_connect(Listener, url)
    payload = b"x" * 64
    for _ in range(n):
        state["fut"] = loop.create_future()
        t = time.perf_counter()
        transport.send(WSMsgType.TEXT, payload)
        await state["fut"]
        out.append(time.perf_counter() - t)
    transport.disconnect()
    return out


async def picows_many(urls: list[str], fan: Fan) -> None:
    from picows import WSListener, WSMsgType, ws_connect

    class Listener(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                frame.get_payload_as_utf8_text()
                fan.count += 1

    transports = [(await ws_connect(Listener, u))[0] for u in urls]
    fan.ready.set()
    while not fan.stop.is_set():
        await asyncio.sleep(0.05)
    for t in transports:
        t.disconnect()


# -- fan-in ---------------------------------------------------------------------


class Fan:
    """A fan-in client's counter and its start and stop signals."""

    def __init__(self) -> None:
        self.count = 0
        self.ready = threading.Event()  # every connection is open
        self.stop = threading.Event()


async def _run_tasks(consumers: list[Any], fan: Fan) -> None:
    tasks = [asyncio.ensure_future(c) for c in consumers]
    fan.ready.set()
    while not fan.stop.is_set():
        await asyncio.sleep(0.05)
    for t in tasks:
        t.cancel()


def fanin(client: str, urls: list[str], secs: float) -> Result:
    """Run a fan-in client on its own thread; measure messages and the
    process's CPU over ``secs`` once every connection is open and settled."""
    fan = Fan()
    run = MANY[client]
    target = (lambda: run(urls, fan)) if client == "steadyws.Group" else (lambda: run_async(run(urls, fan), "uvloop"))
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    if not fan.ready.wait(300):
        raise RuntimeError("the connections did not open")
    time.sleep(2)  # settle
    c0, n0, t0 = cpu_seconds(), fan.count, time.perf_counter()
    time.sleep(secs)
    dt, cpu, got = time.perf_counter() - t0, cpu_seconds() - c0, fan.count - n0
    fan.stop.set()
    thread.join(30)
    return {"msgs_per_s": got / dt, "cpu_pct": 100 * cpu / dt, "cpu_us_per_msg": 1e6 * cpu / max(got, 1)}


# -- dispatch -------------------------------------------------------------------


def run_async(coro: Any, loop: str) -> Any:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


FLOOD: dict[str, Callable[[str, int], Result]] = {
    "steadyws": steadyws_flood,
    "steadyws (bytes)": steadyws_flood,
    "steadyws (text as bytes)": lambda url, n: steadyws_flood(url, n, decode_text=False),
    "picows+uvloop": lambda u, n: run_async(picows_flood(u, n), "uvloop"),
    "websockets": lambda u, n: run_async(websockets_flood_async(u, n), "asyncio"),
    "websockets+uvloop": lambda u, n: run_async(websockets_flood_async(u, n), "uvloop"),
    "aiohttp+uvloop": lambda u, n: run_async(aiohttp_flood(u, n), "uvloop"),
    "websocket-client": wsclient_flood,
}

BUSY_POLL = 0.001  # seconds: the busy-poll of the echo that trades a core for latency

ECHO: dict[str, Callable[[str, int], list[float]]] = {
    "steadyws": steadyws_echo,
    f"steadyws busy_poll={BUSY_POLL * 1000:g}ms": lambda u, n: steadyws_echo(u, n, busy_poll=BUSY_POLL),
    "steadyws.aio+uvloop": lambda u, n: run_async(steadyws_aio_echo(u, n), "uvloop"),
    "picows+uvloop": lambda u, n: run_async(picows_echo(u, n), "uvloop"),
    "websockets+uvloop": lambda u, n: run_async(websockets_echo_async(u, n), "uvloop"),
    "aiohttp+uvloop": lambda u, n: run_async(aiohttp_echo(u, n), "uvloop"),
    "websocket-client": wsclient_echo,
}

STALL: dict[str, Callable[[str, float], None]] = {
    "steadyws": steadyws_stall,
    "websockets": lambda u, s: run_async(websockets_stall_async(u, s), "asyncio"),
    "aiohttp": lambda u, s: run_async(aiohttp_stall(u, s), "asyncio"),
    "websocket-client": wsclient_stall,
}

MANY: dict[str, Callable[[list[str], Fan], Any]] = {
    "steadyws.Group": steadyws_group_many,
    "steadyws.aio.Group+uvloop": steadyws_aio_group_many,
    "steadyws.aio+uvloop": steadyws_aio_many,
    "picows+uvloop": picows_many,
    "websockets+uvloop": websockets_many,
}


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main() -> None:
    kind, client, url = sys.argv[1:4]
    args = sys.argv[4:]
    result: Result = {"client": client}
    if kind == "flood":
        result.update(FLOOD[client](url, int(args[0])))
    elif kind == "echo":
        lat = [x * 1e6 for x in ECHO[client](url, int(args[0]))][100:]  # the first 100 warm up
        result.update(p50=percentile(lat, 50), p99=percentile(lat, 99), p999=percentile(lat, 99.9))
    elif kind == "stall":
        STALL[client](url, float(args[0]))
        result["peak_rss_mib"] = rss_peak_mib()
    elif kind in ("fanin", "idle"):
        conns, secs = int(args[0]), float(args[1])
        resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
        result.update(idle(url, conns, secs) if kind == "idle" else fanin(client, [url] * conns, secs))
    print(json.dumps(result))


IDLE_PING = 20.0  # seconds: the default heartbeat


def idle(url: str, conns: int, secs: float) -> Result:
    """steadyws only: CONNS idle members of one Group with heartbeats on
    (every IDLE_PING seconds, the default; the window is longer, so every
    member pings), the group's consumer waiting in recv_batch."""
    import steadyws

    with steadyws.Group() as group:
        for _ in range(conns):
            group.connect(url, reconnect=False, ping_interval=IDLE_PING, ping_timeout=IDLE_PING)
        time.sleep(2)
        c0, t0 = cpu_seconds(), time.perf_counter()
        while time.perf_counter() - t0 < secs:
            group.recv_batch(timeout=secs)
        cpu = 100 * (cpu_seconds() - c0) / (time.perf_counter() - t0)
        rss = psutil.Process().memory_info().rss / (1 << 20)
        members = group.members
        pings = sum(ws.stats()["pings_sent"] for ws in members)
        goroutines = steadyws.runtime_stats()["goroutines"]
        threads = psutil.Process().num_threads()
    return {
        "connections": len(members), "rss_mib": rss, "cpu_pct": cpu, "goroutines": goroutines,
        "threads": threads, "pings": pings,
    }  # fmt: skip


if __name__ == "__main__":
    main()
