"""Issue 9, fork: in a child forked after `import steadyws`, every public method and property of
steadyws.WebSocket, steadyws.aio.WebSocket and steadyws.testing.Server, and the connect
functions, raise RuntimeError mentioning fork within a second -- none hangs, none answers
with the parent's stale data -- and repr() does not raise.

The members are enumerated with dir() and inspect, so a member added later is walked too.
Each call runs in its own forked child (one hang cannot hide the others); the child reports
through a pipe and the parent kills it if it hangs."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

import pytest
import steadyws
from helpers import fork_problem, in_child, outcome_of
from steadyws.testing import Server

DUNDERS = ("__enter__", "__exit__", "__aenter__", "__aexit__", "__iter__", "__aiter__")

# How to call the members we know; any other member is called with arguments guessed from its signature.
KNOWN: dict[str, Callable[[Any], Any]] = {
    "send": lambda o: o.send("from the child"),
    "send_batch": lambda o: o.send_batch(["from", "the child"]),
    "recv": lambda o: o.recv(timeout=0.2),
    "recv_batch": lambda o: o.recv_batch(timeout=0.2),
    "recv_events": lambda o: o.recv_events(timeout=0.2),
    "close": lambda o: o.close(),
    "wait_closed": lambda o: o.wait_closed(timeout=0.2),
    "set_reconnect": lambda o: o.set_reconnect(steadyws.Backoff()),
    "stats": lambda o: o.stats(),
    "flood": lambda o: o.flood(1, 10),
    "reset": lambda o: o.reset(),
    "blackhole": lambda o: o.blackhole(0.1),
    "refuse": lambda o: o.refuse(503, times=1),
    "accept": lambda o: o.accept(),
    "expect": lambda o: o.expect(lambda m: True, timeout=0.2),
    "counts": lambda o: o.counts(),
    "stop": lambda o: o.stop(),
    "__enter__": lambda o: o.__enter__(),
    "__exit__": lambda o: o.__exit__(None, None, None),
    "__aenter__": lambda o: o.__aenter__(),
    "__aexit__": lambda o: o.__aexit__(None, None, None),
    "__iter__": lambda o: next(iter(o)),
    "__aiter__": lambda o: o.__aiter__().__anext__(),
}
GUESSES: dict[str, object] = {
    "message": "from the child",
    "messages": ["from the child"],
    "timeout": 0.2,
    "code": 1000,
    "reason": "",
    "backoff": steadyws.Backoff(),
    "predicate": lambda m: True,
    "n": 1,
    "size": 10,
    "seconds": 0.1,
    "status": 503,
}


def guessed_call(name: str) -> Callable[[Any], Any]:
    """Call method ``name`` with a plausible value for each required parameter (guessed by its name)."""

    def call(obj: Any) -> Any:
        method = getattr(obj, name)
        parameters = inspect.signature(method).parameters.values()
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        args = [GUESSES.get(p.name) for p in parameters if p.default is p.empty and p.kind in positional]
        kwargs = {p.name: GUESSES.get(p.name) for p in parameters if p.default is p.empty and p.kind is p.KEYWORD_ONLY}
        return method(*args, **kwargs)

    return call


def public_members(cls: type) -> dict[str, tuple[str, Callable[[Any], Any]]]:
    """name -> (kind, call) for every public property and method of ``cls`` (and its context-manager and
    iteration dunders). Plain data attributes are skipped: they cannot raise."""
    out: dict[str, tuple[str, Callable[[Any], Any]]] = {}
    for name in sorted(dir(cls)):
        if name.startswith("_") and name not in DUNDERS:
            continue
        static = inspect.getattr_static(cls, name)
        if isinstance(static, (property, functools.cached_property)):
            out[name] = ("property", functools.partial(lambda n, o: getattr(o, n), name))
        elif callable(static) or isinstance(static, (staticmethod, classmethod)):
            out[name] = ("method", KNOWN.get(name) or guessed_call(name))
    return out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python 3.12+ warns about fork() with threads
def test_every_public_member_refuses_in_a_forked_child(steadyws_server: Server) -> None:
    """With a live WebSocket, a live aio.WebSocket (made on the parent's loop) and a live testing.Server,
    each public method and property of the three, steadyws.connect, steadyws.aio.connect and Server()
    raise RuntimeError mentioning fork within 1 s in a forked child; repr() of each does not raise; the
    parent's connections still work afterwards."""
    url = steadyws_server.url
    ws = steadyws.connect(url)  # reconnect on: set_reconnect() is a valid call in the parent
    loop = asyncio.new_event_loop()
    aws = loop.run_until_complete(asyncio.wait_for(steadyws.aio.connect(url), 30))
    targets: dict[str, Any] = {"WebSocket": ws, "aio.WebSocket": aws, "testing.Server": steadyws_server}
    failures: dict[str, str] = {}
    walked: list[str] = []
    try:
        for label, obj in targets.items():
            members = public_members(type(obj))
            assert members, f"no public members found on {label}"
            for name, (kind, call) in members.items():
                key = f"{label}.{name}" + ("" if kind == "property" else "()")
                walked.append(key)
                problem = fork_problem(in_child(functools.partial(call, obj)))
                if problem:
                    failures[key] = problem
            report = in_child(functools.partial(repr, obj))
            if report["raised"] is not None:
                failures[f"repr({label})"] = f"{report['raised']}: {report['message']}"
        functions: dict[str, Callable[[], Any]] = {
            "steadyws.connect()": lambda: steadyws.connect(url, reconnect=False),
            "steadyws.aio.connect()": lambda: steadyws.aio.connect(url, reconnect=False),
            "steadyws.testing.Server()": Server,
        }
        for key, function in functions.items():
            walked.append(key)
            problem = fork_problem(in_child(function))
            if problem:
                failures[key] = problem
        # The parent is untouched by its children (0.1.0's children even wrote to the parent's sockets).
        steadyws_server.send("to the parent")
        parent_got = [outcome_of(lambda: ws.recv(timeout=5))]
        parent_got.append(outcome_of(lambda: loop.run_until_complete(asyncio.wait_for(aws.recv(timeout=5), 10))))
    finally:
        ws.close()
        loop.run_until_complete(asyncio.wait_for(aws.close(), 30))
        loop.close()
    assert not failures, "in a forked child:\n" + "\n".join(f"  {key}: {problem}" for key, problem in failures.items())
    assert parent_got == ["to the parent"] * 2, f"the parent's connections after the children: {parent_got}"
    for needed in ("WebSocket.send()", "WebSocket.state", "aio.WebSocket.recv()", "testing.Server.stop()"):
        assert needed in walked, f"{needed} was not walked: {walked}"
