"""Issue 9, bounds: a stalled consumer costs at most max_queue_bytes plus one message under the
threaded API and asyncio alike, and several threads consuming one connection see every
message exactly once."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import pytest
import steadyws
from promise_support import rss_bytes
from steadyws.testing import Server

MiB = 1 << 20
MESSAGE = 200_000  # bytes per flooded message
MAX_QUEUE_BYTES = 1 * MiB
SLACK = 24 * MiB  # runtime noise: Go's heap and threads, Python's allocator
STALL = 3.0  # seconds the consumer stalls while the server floods
OPTIONS = {"max_queue": 16, "max_queue_bytes": MAX_QUEUE_BYTES, "reconnect": False, "close_timeout": 1}


def stall_url(external_echo: str) -> str:
    """The benchmark's flood server (its own process, so its memory is not ours): 128 MiB of
    200 KB text messages, as fast as TCP takes them."""
    return external_echo.rsplit("/", 1)[0] + f"/stall?bytes={128 * MiB}&size={MESSAGE}"


def check_bounds(grown: int, stats: dict[str, int]) -> None:
    assert stats["bytes_in"] >= MAX_QUEUE_BYTES, f"the flood never filled the queue: {stats}"
    assert stats["queue_bytes"] <= MAX_QUEUE_BYTES + MESSAGE, stats
    assert grown <= MAX_QUEUE_BYTES + MESSAGE + SLACK, (
        f"RSS grew {grown / MiB:.1f} MiB with max_queue_bytes=1 MiB and a stalled consumer"
    )


def test_threaded_stalled_consumer_stays_within_max_queue_bytes(external_echo: str) -> None:
    """Threaded: a consumer that read one message and stalls for 3 s of a flood of 200 KB messages grows the
    process by at most max_queue_bytes + one message (+ slack); stats()["queue_bytes"] stays in bounds."""
    before = rss_bytes()
    ws = steadyws.connect(stall_url(external_echo), **OPTIONS)  # type: ignore[arg-type]
    try:
        assert len(ws.recv(timeout=10)) == MESSAGE  # the flood is on; from here nobody reads
        time.sleep(STALL)  # the stall being measured, not a synchronisation
        grown, stats = rss_bytes() - before, ws.stats()
    finally:
        ws.close()
    check_bounds(grown, stats)


def test_aio_stalled_consumer_stays_within_max_queue_bytes(external_echo: str) -> None:
    """asyncio: the same stalled consumer (the loop runs, nobody awaits recv) stays within the same bounds
    (0.1.0 drained the engine into Python: hundreds of MiB)."""

    async def main() -> tuple[int, dict[str, int]]:
        before = rss_bytes()
        ws = await steadyws.aio.connect(stall_url(external_echo), **OPTIONS)  # type: ignore[arg-type]
        try:
            assert len(await ws.recv(timeout=10)) == MESSAGE
            await asyncio.sleep(STALL)  # the loop keeps running; the consumer is busy elsewhere
            return rss_bytes() - before, ws.stats()
        finally:
            await ws.close()

    grown, stats = asyncio.run(asyncio.wait_for(main(), 60))
    check_bounds(grown, stats)


# -- row 10: several threads consuming one connection -------------------------------------

TOTAL = 100_000
CONSUMERS = 8
QUIET = 3.0  # seconds without any message after which the consumers give up


def seq_of(message: object) -> int:
    """The "seq" field of a testing.Server flood tick, without a JSON parse."""
    text = str(message)
    start = text.index('"seq":') + 6
    return int(text[start : text.index(",", start)])


@pytest.mark.parametrize("switch_interval", [None, 1e-6], ids=["default-switch", "switch-1us"])
def test_many_threads_consuming_one_connection_see_each_message_once(
    steadyws_server: Server, switch_interval: float | None
) -> None:
    """8 threads (recv, recv_batch and recv_events mixed) consume a flood of 100,000 numbered messages from one
    connection: every message is seen exactly once overall, in order within each thread, with no exception
    -- also with sys.setswitchinterval(1e-6)."""
    old_interval = sys.getswitchinterval()
    seen: list[list[int]] = [[] for _ in range(CONSUMERS)]
    errors: list[str] = []
    lock = threading.Lock()
    progress = {"total": 0, "last": time.monotonic()}
    deadline = time.monotonic() + 60

    ws = steadyws.connect(steadyws_server.url, reconnect=False)

    def finished() -> bool:
        with lock:
            return (
                progress["total"] >= TOTAL
                or bool(errors)
                or time.monotonic() - progress["last"] > QUIET
                or time.monotonic() > deadline
            )

    def consumer(k: int) -> None:
        mine = seen[k]
        try:
            while not finished():
                if k % 3 == 0:
                    try:
                        got: list[object] = [ws.recv(timeout=0.2)]
                    except TimeoutError:
                        got = []
                elif k % 3 == 1:
                    got = list(ws.recv_batch(timeout=0.2))
                else:
                    got = [e for e in ws.recv_events(timeout=0.2) if isinstance(e, str)]
                mine.extend(seq_of(m) for m in got)
                if got:
                    with lock:
                        progress["total"] += len(got)
                        progress["last"] = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(f"consumer {k}: {exc!r}")

    threads = [threading.Thread(target=consumer, args=(k,), daemon=True) for k in range(CONSUMERS)]
    try:
        if switch_interval is not None:
            sys.setswitchinterval(switch_interval)
        for thread in threads:
            thread.start()
        steadyws_server.flood(n=TOTAL, size=80)
        for thread in threads:
            thread.join(90)
    finally:
        sys.setswitchinterval(old_interval)
        ws.close()
    assert not any(thread.is_alive() for thread in threads), "a consumer hung"
    assert not errors, errors[:5]
    everything = sorted(n for mine in seen for n in mine)
    duplicates = len(everything) - len(set(everything))
    missing = TOTAL - len(set(everything))
    assert everything == list(range(TOTAL)), f"{duplicates} duplicates, {missing} missing of {TOTAL}"
    for k, mine in enumerate(seen):
        assert mine == sorted(mine), f"consumer {k} got messages out of order"
