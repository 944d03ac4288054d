"""Loading libsteadyws.so and calling it.

The library ships inside the package, beside this file. Every function gets
its argtypes and restype here; nothing else in the package touches ctypes
declarations. Only one copy of the Go runtime may live in a process, so the
library is loaded once, at import.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import POINTER, c_int32, c_int64, c_void_p
from pathlib import Path
from typing import Any

from ._errors import ErrorCode

LIBRARY_PATH = Path(__file__).with_name("libsteadyws.so")
ABI_VERSION = 1
META_WORDS = 4  # uint32 words per event in a polled batch

EVENT_TEXT = 1
EVENT_BINARY = 2
EVENT_OPEN = 3
EVENT_CLOSED = 4
EVENT_DISCONNECTED = 5
EVENT_RECONNECTING = 6
EVENT_WARNING = 7

STATES = ("connecting", "open", "reconnecting", "closing", "closed")

_I64P = POINTER(c_int64)
_I32P = POINTER(c_int32)

_SIGNATURES: dict[str, list[Any]] = {
    "sws_abi_version": [],
    "sws_connect": [c_void_p, c_int64, _I64P, c_void_p, c_int64],
    "sws_send": [c_int64, c_void_p, c_int64, c_int32],
    "sws_send_batch": [c_int64, c_void_p, c_int64, c_void_p, c_int32],
    "sws_poll": [c_int64, c_void_p, c_int32, c_void_p, c_int64, c_int32, _I32P, _I64P],
    "sws_close": [c_int64, c_int32, c_void_p, c_int64],
    "sws_wait": [c_int64, c_int32],
    "sws_free": [c_int64],
    "sws_state": [c_int64, _I32P],
    "sws_stats": [c_int64, c_void_p, c_int32, _I32P],
    "sws_runtime_stats": [c_void_p, c_int32, _I32P],
    "sws_stat_name": [c_int32, c_void_p, c_int64, _I64P],
    "sws_code_name": [c_int32, c_void_p, c_int64, _I64P],
    "sws_last_error": [c_int64, c_void_p, c_int64, _I64P],
    "sws_wakeup_fd": [c_int64, _I32P],
    "sws_set_callback": [c_int64, c_void_p, c_void_p],
    "sws_set_backoff": [c_int64, c_void_p, c_int64],
    "sws_set_header_provider": [c_int64, c_void_p, c_void_p],
    "sws_server_start": [c_int64, c_int32, c_int32, _I64P],
    "sws_server_url": [c_int64, c_void_p, c_int64, _I64P],
    "sws_server_send": [c_int64, c_int64, c_void_p, c_int64, c_int32],
    "sws_server_recv": [c_int64, c_int32, c_void_p, c_int64, _I64P, _I32P, _I64P],
    "sws_server_clients": [c_int64, c_void_p, c_int32, _I32P],
    "sws_server_reset": [c_int64, c_int64],
    "sws_server_close": [c_int64, c_int64, c_int32, c_void_p, c_int64],
    "sws_server_blackhole": [c_int64, c_int64],
    "sws_server_refuse": [c_int64, c_int32, c_int32, c_int32],
    "sws_server_accept": [c_int64],
    "sws_server_flood": [c_int64, c_int64, c_int64, c_int32],
    "sws_server_counts": [c_int64, c_void_p, c_int32],
}


def _load() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(LIBRARY_PATH))
    for name, argtypes in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = c_int32
    version = lib.sws_abi_version()
    if version != ABI_VERSION:
        raise ImportError(f"{LIBRARY_PATH} has ABI version {version}, this package needs {ABI_VERSION}")
    return lib


lib = _load()

# NotifyFn is the C type of callbacks for sws_set_callback.
NotifyFn = ctypes.CFUNCTYPE(None, c_int64, c_void_p)
# HeaderFn is the C type of header providers for sws_set_header_provider.
HeaderFn = ctypes.CFUNCTYPE(c_int32, c_int64, c_void_p, c_void_p, c_int64, _I64P)

_forked = False


def _after_fork_in_child() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def check_fork() -> None:
    """Refuse to call Go in a forked child: its runtime threads did not survive
    the fork, and the call would hang."""
    if _forked:
        raise RuntimeError(
            "steadyws cannot be used in a process forked after it was imported: "
            "the Go runtime does not survive fork(). Use the 'spawn' or 'forkserver' "
            "multiprocessing start method, or import steadyws only in the child."
        )


def read_string(fill: Any, initial: int = 256) -> str | None:
    """Calls ``fill(buf, cap, out_len)`` and grows the buffer until the string
    fits; None if the call failed otherwise."""
    size = initial
    while True:
        buf = ctypes.create_string_buffer(size)
        n = c_int64()
        rc = fill(buf, size, ctypes.byref(n))
        if rc == ErrorCode.BUFFER_TOO_SMALL and n.value + 1 > size:
            size = n.value + 1
            continue
        if rc != ErrorCode.OK:
            return None
        return buf.raw[: min(n.value, size - 1)].decode("utf-8", "replace")


def last_error(handle: int) -> str:
    """The message of the last failed call on ``handle`` (0: calls without one)."""
    return read_string(lambda buf, cap, out: lib.sws_last_error(handle, buf, cap, out)) or ""


def int64s(fill: Any, count: int) -> list[int] | None:
    """Calls ``fill(out, cap, out_n)`` for an array of int64 counters; None if
    the call failed (a freed handle)."""
    out = (c_int64 * count)()
    n = c_int32()
    rc = fill(out, count, ctypes.byref(n))
    if rc not in (ErrorCode.OK, ErrorCode.BUFFER_TOO_SMALL):
        return None
    return list(out[: min(n.value, count)])


def _stat_names() -> tuple[str, ...]:
    names: list[str] = []
    while (name := stat_name(len(names))) is not None:
        names.append(name)
    return tuple(names)


def stat_name(i: int) -> str | None:
    """The name of counter ``i``, None past the last."""
    return read_string(lambda buf, cap, out: lib.sws_stat_name(i, buf, cap, out), 64)


STAT_NAMES = _stat_names()


def code_name(code: int) -> str | None:
    """The engine's own name for an error code, None if it has none."""
    return read_string(lambda buf, cap, out: lib.sws_code_name(code, buf, cap, out), 64)


def runtime_stats() -> dict[str, int]:
    """Process-wide engine counters: live goroutines and live handles."""
    check_fork()
    values = int64s(lib.sws_runtime_stats, 2)
    if values is None:
        raise RuntimeError("steadyws: reading the runtime counters failed")
    goroutines, handles = values[:2]
    return {"goroutines": goroutines, "handles": handles}
