"""The C surface as Python sees it: enums agree, callbacks, the wakeup fd, Ctrl-C."""

from __future__ import annotations

import ctypes
import json
import re
import select
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import steadyws
from servers import EchoServer, MisbehavingServer, tagged
from steadyws import _abi, _lib


def test_declarations_match_the_installed_header() -> None:
    """The generated ctypes signatures declare exactly the functions of the wheel's libsteadyws.h, with
    matching parameter types; the header's enums have the values of the Python constants."""
    header = (Path(steadyws.__file__).parent / "libsteadyws.h").read_text()
    abi = (Path(steadyws.__file__).parent / "sws_abi.h").read_text()
    declared = dict(re.findall(r"extern GoInt32 (sws_\w+)\(([^)]*)\);", header))
    assert set(declared) == set(_abi.SIGNATURES)
    kinds = {"GoInt64": "i64", "GoInt32": "i32", "void*": "ptr"}
    for name, params in declared.items():
        types = [kinds[p.strip().rsplit(" ", 1)[0]] for p in params.split(",") if p.strip() not in ("", "void")]
        assert tuple(types) == _abi.SIGNATURES[name], name
    for code in steadyws.ErrorCode:
        prefix = "SWS_OK" if code.name == "OK" else f"SWS_ERR_{code.name}"
        assert re.search(rf"\b{prefix} = {code.value},", abi), code


def test_stat_names_come_from_the_library(ws_server: EchoServer) -> None:
    """stats() has one key per engine counter (and the Python-side held_*), and the counters move."""
    with steadyws.connect(ws_server.url("/echo")) as ws:
        ws.send("abc")
        assert ws.recv(timeout=5) == "abc"
        stats = ws.stats()
    assert tuple(stats) == (*_abi.STAT_NAMES, "held_messages", "held_bytes")
    assert stats["messages_out"] == 1 and stats["bytes_out"] == 3
    assert stats["messages_in"] == 1 and stats["connects"] == 1


def _raw_handle(url: str) -> int:
    """A handle opened through the C API directly, outside any hub."""
    raw = json.dumps({"url": url}).encode()
    h = ctypes.c_int64()
    _lib.call(_lib.lib.sws_connect, raw, len(raw), 0, 0, ctypes.byref(h), None, None)
    return h.value


def test_notify_callback_runs_when_events_arrive(ws_server: EchoServer) -> None:
    """A C callback registered with sws_set_callback is called (from a Go thread) when events queue up."""
    h = _raw_handle(ws_server.url("/echo"))
    called = threading.Event()
    seen: list[int] = []

    @_lib.NotifyFn
    def notify(handle: int, user: int | None) -> None:
        seen.append(handle)
        called.set()

    try:
        assert _lib.lib.sws_set_callback(h, notify, None, None) == 0
        assert called.wait(5), "callback not called for the OPEN event"
        assert seen[0] == h
    finally:
        _lib.lib.sws_set_callback(h, None, None, None)
        _lib.lib.sws_free(h, None)


def test_wakeup_fd_is_readable_exactly_while_events_wait(ws_server: EchoServer) -> None:
    """The eventfd is readable while events are queued and not readable once they are drained."""
    h = _raw_handle(ws_server.url("/echo"))
    fd = ctypes.c_int32()
    meta = (ctypes.c_uint32 * (4 * 16))()
    data = ctypes.create_string_buffer(4096)
    count, size = ctypes.c_int32(), ctypes.c_int64()
    try:
        assert _lib.lib.sws_wakeup_fd(h, ctypes.byref(fd), None) == 0
        readable, _, _ = select.select([fd.value], [], [], 5)
        assert readable, "not readable after the OPEN event"
        rc = _lib.lib.sws_poll(h, meta, 16, data, len(data), 0, 0, ctypes.byref(count), ctypes.byref(size), None, None)
        assert rc == 0 and count.value == 1
        readable, _, _ = select.select([fd.value], [], [], 0.2)
        assert not readable, "still readable with an empty queue"
        assert _lib.lib.sws_send(h, b"x", 1, 1, 0, None) == 0
        readable, _, _ = select.select([fd.value], [], [], 5)
        assert readable, "not readable after the echo arrived"
    finally:
        _lib.lib.sws_free(h, None)


# Python leaves SIGINT ignored if it started that way (a background job of a
# non-interactive shell does): the script installs the usual handler itself.
CTRL_C_SCRIPT = textwrap.dedent(
    """
    import signal, sys, time, steadyws
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ws = steadyws.connect(sys.argv[1])
    print("ready", flush=True)
    try:
        ws.recv()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    """
)


def test_ctrl_c_interrupts_a_blocked_recv(bad_server: MisbehavingServer) -> None:
    """SIGINT reaches a recv() blocked inside the library within a fraction of a second."""
    url = bad_server.url(tagged("/early-frames?n=0"))
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT, url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        threading.Event().wait(0.3)  # let recv block inside Go
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)  # 0.1 s slices; generous for a loaded machine
    finally:
        proc.kill()
    assert "interrupted" in out
