"""Support for test_group.py: servers per member, draining a group, the
event loops, fork children, and resource counters."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import steadyws
import uvloop
from steadyws.testing import Server

Pairs = list[tuple[Any, object]]  # (member, event) as a group's recv_events returns them

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@contextmanager
def servers(n: int) -> Iterator[list[Server]]:
    """``n`` testing servers: one per member, so each server's clients are one member's connections."""
    with ExitStack() as stack:
        yield [stack.enter_context(Server()) for _ in range(n)]


def seq_of(message: object) -> int:
    """The "seq" field of a testing.Server flood tick, without a JSON parse."""
    text = str(message)
    start = text.index('"seq":') + 6
    return int(text[start : text.index(",", start)])


def run_on(loop_name: str, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
    """Run ``coro`` to completion on a fresh loop of kind ``loop_name``, within ``timeout`` seconds."""
    loop = LOOPS[loop_name]()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        loop.close()


def count_in(ws: Any) -> int:
    """Messages the member's engine has read from its socket so far."""
    return int(ws.stats()["messages_in"])


def gather(feeds: steadyws.Group, events: Pairs, done: Callable[[], object], timeout: float = 10.0) -> None:
    """recv_events into ``events`` until ``done()``; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s; got {events[-10:]!r}")
        events.extend(feeds.recv_events(timeout=0.2))


async def agather(feeds: steadyws.aio.Group, events: Pairs, done: Callable[[], object], timeout: float = 10.0) -> None:
    """``gather`` for an aio.Group."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s; got {events[-10:]!r}")
        events.extend(await feeds.recv_events(timeout=0.2))


def messages_of(events: Pairs, ws: object) -> list[object]:
    return [ev for who, ev in events if who is ws and isinstance(ev, (str, bytes))]


def queued(ws: Any) -> int:
    """What the member's engine queues for the group (and the group holds of it)."""
    return int(ws.stats()["queue_depth"])


def first_gap(seqs: list[int]) -> int | None:
    return next((i for i, s in enumerate(seqs) if s != i), None)


def lifecycle_of(events: Pairs, ws: Any) -> list[object]:
    """The lifecycle events (not messages) of member ``ws`` among ``(ws, event)`` pairs."""
    return [ev for who, ev in events if who is ws and not isinstance(ev, (str, bytes))]


DUNDERS = ("__enter__", "__exit__", "__aenter__", "__aexit__", "__iter__", "__aiter__")


def group_calls(url: str) -> dict[str, Callable[[Any], Any]]:
    """How to call the Group methods we know; ``connect`` connects to ``url``."""
    return {
        "connect": lambda g: g.connect(url),
        "recv": lambda g: g.recv(timeout=0.2),
        "recv_batch": lambda g: g.recv_batch(timeout=0.2),
        "recv_events": lambda g: g.recv_events(timeout=0.2),
        "close": lambda g: g.close(),
        "__enter__": lambda g: g.__enter__(),
        "__exit__": lambda g: g.__exit__(None, None, None),
        "__aenter__": lambda g: g.__aenter__(),
        "__aexit__": lambda g: g.__aexit__(None, None, None),
        "__iter__": lambda g: next(iter(g)),
        "__aiter__": lambda g: g.__aiter__().__anext__(),
    }


def group_members(cls: type, url: str) -> dict[str, Callable[[Any], Any]]:
    """name -> call for every public property and method of a Group class (and its dunders), found with
    dir(): a member added later is walked too. A method without a known call is called without arguments."""
    known = group_calls(url)
    out: dict[str, Callable[[Any], Any]] = {}
    for name in sorted(dir(cls)):
        if name.startswith("_") and name not in DUNDERS:
            continue
        static = inspect.getattr_static(cls, name)
        if isinstance(static, property):
            out[name] = lambda g, n=name: getattr(g, n)
        elif callable(static):
            out[name] = known.get(name) or (lambda g, n=name: getattr(g, n)())
    return out
