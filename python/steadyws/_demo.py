"""python -m steadyws demo: a feed surviving a bad day, on loopback.

The embedded test server (steadyws.testing) streams market-data-like ticks
while, every few seconds, it does something a real feed does: resets the
TCP connection, goes silent for longer than the ping timeout, bursts faster
than the consumer, refuses with 503 and Retry-After, closes normally. The
client rides it out, and one status line shows how.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from ._connection import WebSocket, connect
from ._events import Disconnected, Opened
from ._options import Backoff
from .testing import Server

PING_INTERVAL = 0.5
PING_TIMEOUT = 0.5
FEED_RATE = 2000  # ticks per second in calm weather
CONSUMER_COST = 15e-6  # seconds of "strategy" per message: bursts outrun it


@dataclass
class Fault:
    at: float
    name: str
    act: Callable[[Server], None]
    started: float = 0.0
    lost_after: float | None = None  # seconds until the client noticed
    back_after: float | None = None  # seconds until it was open again


def _faults() -> list[Fault]:
    def refuse_then_reset(srv: Server) -> None:
        srv.refuse(503, retry_after=1, times=1)
        srv.reset()

    return [
        Fault(2, "TCP reset", lambda srv: srv.reset()),
        Fault(5, "blackhole 3 s (ping timeout 0.5 s)", lambda srv: srv.blackhole(3)),
        Fault(9, "burst of 50,000 ticks", lambda srv: srv.flood(50_000, 200)),
        Fault(12, "503 with Retry-After: 1", refuse_then_reset),
        Fault(15, "close 1001, then reopen", lambda srv: srv.close(1001, "going away")),
    ]


@dataclass
class _Feed:
    """Ticks to every connected client at FEED_RATE until stopped."""

    srv: Server
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        seq, start = 0, time.monotonic()
        while not self.stop.wait(0.005):
            due = int((time.monotonic() - start) * FEED_RATE)
            seq = max(seq, due - FEED_RATE // 20)  # after a stall, skip ahead: no catch-up burst
            while seq < due:
                seq += 1
                self.srv.send(f'{{"e":"trade","s":"BTCUSDT","seq":{seq},"p":"{60000 + seq % 100}.5"}}')


class _Status:
    """One line, rewritten in place on a terminal, printed once a second otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.tty = out, out.isatty()
        self.last_plain = 0.0

    def show(self, t: float, ws: WebSocket, rate: float, note: str) -> None:
        s = ws.stats()
        line = (
            f"{t:5.1f}s  {ws.state:<12} {rate:>9,.0f} msg/s  queue {s['queue_depth']:>5,} "
            f"(high {s['queue_high_water']:,})  reconnects {s['reconnects']}  "
            f"rtt {s['last_rtt_us'] / 1000:.2f} ms  {note}"
        )
        if self.tty:
            self.out.write("\r\x1b[K" + line)
            self.out.flush()
        elif t - self.last_plain >= 1:
            self.last_plain = t
            print(line, file=self.out, flush=True)

    def event(self, t: float, text: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[K")
        print(f"{t:5.1f}s  {text}", file=self.out, flush=True)


def run(seconds: float, out: TextIO) -> int:
    """Run the demo for ``seconds``; print a summary; return the exit code."""
    # The status line tells what happens; the library's warnings would repeat it.
    logging.getLogger("steadyws").addHandler(logging.NullHandler())
    faults = [f for f in _faults() if f.at < seconds]
    status = _Status(out)
    with Server() as srv:
        feed = _Feed(srv)
        feeder = threading.Thread(target=feed.run, name="steadyws-demo-feed", daemon=True)
        ws = connect(
            srv.url,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            reconnect=Backoff(min=0.1, max=1.0),
            max_queue=2000,
            on_open=lambda ws: ws.send('{"op":"subscribe","channel":"trades"}'),
        )
        feeder.start()
        start = time.monotonic()
        received = _consume(ws, srv, faults, start, seconds, status)
        feed.stop.set()
        feeder.join(5)
        stats = ws.stats()
        ws.close()
    if status.tty:
        out.write("\r\x1b[K")
    _summary(out, faults, received, stats)
    return 0


def _consume(ws: WebSocket, srv: Server, faults: list[Fault], start: float, seconds: float, status: _Status) -> int:
    """The strategy: take messages and events until time is up."""
    pending = list(faults)
    current: Fault | None = None
    received = window = 0
    window_start = start
    rate = 0.0
    while (now := time.monotonic()) - start < seconds:
        t = now - start
        if pending and t >= pending[0].at:
            current = pending.pop(0)
            current.started = now
            status.event(t, f"server: {current.name}")
            current.act(srv)
        items = ws.recv_events(max_events=500, timeout=0.05)
        messages = sum(1 for item in items if isinstance(item, (str, bytes)))
        received, window = received + messages, window + messages
        time.sleep(messages * CONSUMER_COST)
        for item in items:
            if isinstance(item, Disconnected):
                if current is not None and current.lost_after is None:
                    current.lost_after = time.monotonic() - current.started
                status.event(time.monotonic() - start, f"client: connection lost ({item.detail or item.code})")
            elif isinstance(item, Opened):
                if current is not None and current.lost_after is not None and current.back_after is None:
                    current.back_after = time.monotonic() - current.started
                status.event(time.monotonic() - start, "client: open again")
        if now - window_start >= 0.5:
            rate, window, window_start = window / (now - window_start), 0, now
        status.show(t, ws, rate, f"| {current.name}" if current else "")
    return received


def _summary(out: TextIO, faults: list[Fault], received: int, stats: dict[str, int]) -> None:
    def secs(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f} s"

    print("\nwhat the server did                  noticed after   open again after", file=out)
    for f in faults:
        print(f"{f.name:<36} {secs(f.lost_after):>13}   {secs(f.back_after):>16}", file=out)
    print(
        f"\n{received:,} messages received, {stats['reconnects']} reconnects, "
        f"queue high-water {stats['queue_high_water']:,}, no crash, no hang.",
        file=out,
        flush=True,
    )
