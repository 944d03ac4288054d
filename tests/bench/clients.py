"""One measurement of one client library, run in its own process.

    python clients.py flood   CLIENT URL N      -> messages/s delivered to Python
    python clients.py echo    CLIENT URL N      -> latencies of N round trips (us)
    python clients.py stall   CLIENT URL SECS   -> peak RSS (MiB) of a consumer that never reads
    python clients.py fanin   CLIENT URL CONNS SECS -> messages/s and CPU % over many connections
    python clients.py idle    CLIENT URL CONNS SECS -> RSS (MiB) and CPU % with CONNS idle connections

Each prints one JSON object. Every client consumes messages as Python
objects: str for text (bytes for the binary flood), the way a strategy would.
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
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


# -- steadyws -----------------------------------------------------------------


def steadyws_flood(url: str, n: int) -> float:
    import steadyws

    with steadyws.connect(url, reconnect=False) as ws:
        got, start = 0, 0.0
        while got < n:
            batch = ws.recv_batch(100_000)
            if not start:
                start = time.perf_counter()
            got += len(batch)
        return (n - 1) / (time.perf_counter() - start) if n > 1 else 0.0


def steadyws_echo(url: str, n: int) -> list[float]:
    import steadyws

    payload = "x" * 64
    out = []
    with steadyws.connect(url, reconnect=False) as ws:
        for _ in range(n):
            t = time.perf_counter()
            ws.send(payload)
            ws.recv()
            out.append(time.perf_counter() - t)
    return out


def steadyws_stall(url: str, secs: float) -> None:
    import steadyws

    ws = steadyws.connect(url, reconnect=False)  # default queue settings
    time.sleep(secs)
    ws.close()


async def steadyws_aio_many(urls: list[str], secs: float, count: list[int]) -> None:
    import steadyws

    conns = [await steadyws.aio.connect(u, reconnect=False) for u in urls]

    async def consume(ws: Any) -> None:
        while True:
            batch = await ws.recv_batch(1000)  # not `count[0] += await ...`: that reads count[0] first
            count[0] += len(batch)

    tasks = [asyncio.ensure_future(consume(ws)) for ws in conns]
    await asyncio.sleep(secs)
    for t in tasks:
        t.cancel()


# -- websockets ---------------------------------------------------------------


async def _rate(stream: Any, n: int) -> float:
    """Messages per second over the first n of an async stream, from its first message."""
    got, start = 0, 0.0
    async for _ in stream:
        if not start:
            start = time.perf_counter()
        got += 1
        if got == n:
            break
    return (n - 1) / (time.perf_counter() - start)


async def websockets_flood_async(url: str, n: int) -> float:
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


async def websockets_many(urls: list[str], secs: float, count: list[int]) -> None:
    import websockets

    conns = [await websockets.connect(u, compression=None) for u in urls]

    async def consume(ws: Any) -> None:
        async for _ in ws:
            count[0] += 1

    tasks = [asyncio.ensure_future(consume(ws)) for ws in conns]
    await asyncio.sleep(secs)
    for t in tasks:
        t.cancel()


# -- aiohttp ------------------------------------------------------------------


async def aiohttp_flood(url: str, n: int) -> float:
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


def wsclient_flood(url: str, n: int) -> float:
    import websocket

    ws = websocket.create_connection(url)
    start = 0.0
    for i in range(n):
        ws.recv()
        if i == 0:
            start = time.perf_counter()
    ws.close()
    return (n - 1) / (time.perf_counter() - start)


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


async def picows_flood(url: str, n: int) -> float:
    from picows import WSListener, WSMsgType, ws_connect

    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    class Listener(WSListener):  # type: ignore[misc]
        got, start = 0, 0.0

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                frame.get_payload_as_utf8_text()  # a str, like every other client
                if not self.start:
                    self.start = time.perf_counter()
                self.got += 1
                if self.got == n and not done.done():
                    done.set_result((n - 1) / (time.perf_counter() - self.start))

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


async def picows_many(urls: list[str], secs: float, count: list[int]) -> None:
    from picows import WSListener, WSMsgType, ws_connect

    class Listener(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                frame.get_payload_as_utf8_text()
                count[0] += 1

    transports = [(await ws_connect(Listener, u))[0] for u in urls]
    await asyncio.sleep(secs)
    for t in transports:
        t.disconnect()


# -- dispatch -------------------------------------------------------------------


def run_async(coro: Any, loop: str) -> Any:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


FLOOD: dict[str, Callable[[str, int], float]] = {
    "steadyws": steadyws_flood,
    "steadyws (bytes)": steadyws_flood,
    "picows+uvloop": lambda u, n: run_async(picows_flood(u, n), "uvloop"),
    "websockets": lambda u, n: run_async(websockets_flood_async(u, n), "asyncio"),
    "websockets+uvloop": lambda u, n: run_async(websockets_flood_async(u, n), "uvloop"),
    "aiohttp+uvloop": lambda u, n: run_async(aiohttp_flood(u, n), "uvloop"),
    "websocket-client": wsclient_flood,
}

ECHO: dict[str, Callable[[str, int], list[float]]] = {
    "steadyws": steadyws_echo,
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

MANY: dict[str, Callable[[list[str], float, list[int]], Any]] = {
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
        result["msgs_per_s"] = FLOOD[client](url, int(args[0]))
    elif kind == "echo":
        lat = [x * 1e6 for x in ECHO[client](url, int(args[0]))][100:]  # the first 100 warm up
        result.update(p50=percentile(lat, 50), p99=percentile(lat, 99), p999=percentile(lat, 99.9))
    elif kind == "stall":
        STALL[client](url, float(args[0]))
        result["peak_rss_mib"] = rss_peak_mib()
    elif kind in ("fanin", "idle"):
        conns, secs = int(args[0]), float(args[1])
        resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
        count = [0]
        if kind == "idle":
            result.update(idle(url, conns, secs))
        else:

            async def measured() -> Result:
                task = asyncio.ensure_future(MANY[client]([url] * conns, secs + 2, count))
                await asyncio.sleep(2)  # connections open and settle
                c0, n0, t0 = cpu_seconds(), count[0], time.perf_counter()
                await asyncio.sleep(secs)
                dt = time.perf_counter() - t0
                out = {"msgs_per_s": (count[0] - n0) / dt, "cpu_pct": 100 * (cpu_seconds() - c0) / dt}
                await task
                return out

            result.update(run_async(measured(), "uvloop"))
    print(json.dumps(result))


IDLE_PING = 20.0  # seconds: the default heartbeat


def idle(url: str, conns: int, secs: float) -> Result:
    """steadyws only: CONNS idle connections with heartbeats on (every
    IDLE_PING seconds, the default; the window is longer, so every connection pings)."""
    import steadyws

    opened: list[Any] = []
    lock = threading.Lock()

    def opener(k: int) -> None:
        for _ in range(k):
            ws = steadyws.connect(url, reconnect=False, ping_interval=IDLE_PING, ping_timeout=IDLE_PING)
            with lock:
                opened.append(ws)

    workers = [threading.Thread(target=opener, args=(conns // 8,)) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    time.sleep(2)
    c0, t0 = cpu_seconds(), time.perf_counter()
    time.sleep(secs)
    cpu = 100 * (cpu_seconds() - c0) / (time.perf_counter() - t0)
    rss = psutil.Process().memory_info().rss / (1 << 20)
    pings = sum(ws.stats()["pings_sent"] for ws in opened)
    goroutines = steadyws.runtime_stats()["goroutines"]
    for ws in opened:
        ws.close()
    return {"connections": len(opened), "rss_mib": rss, "cpu_pct": cpu, "goroutines": goroutines, "pings": pings}


if __name__ == "__main__":
    main()
