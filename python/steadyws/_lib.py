"""Loading libsteadyws.so, and the one choke point for calls into it.

The library ships inside the package, beside this file; only one copy of
the Go runtime may live in a process, so it is loaded once, at import. The
ctypes declarations come from the generated _abi.SIGNATURES, so they cannot
drift from the exports. Every call goes through :func:`call`, which refuses
to run in a forked child, passes the calling thread's own ``sws_error``, and
turns a failure into the exception for that call's own error.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Collection
from ctypes import c_char, c_int32, c_int64, c_void_p
from pathlib import Path
from typing import Any

from . import _abi
from ._errors import error_from

LIBRARY_PATH = Path(__file__).with_name("libsteadyws.so")


class CError(ctypes.Structure):
    """struct sws_error: the error of one call."""

    _fields_ = [
        ("code", c_int32),
        ("close_code", c_int32),
        ("end_code", c_int32),
        ("status", c_int32),
        ("closed_by", c_int32),
        ("dialing", c_int32),
        ("text_len", c_int64),
        ("retry_after_us", c_int64),
        ("reason", c_char * _abi.ERROR_REASON),
        ("text", c_char * _abi.ERROR_TEXT),
    ]


_TYPES: dict[str, Any] = {"i64": c_int64, "i32": c_int32, "ptr": c_void_p}


def _load() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(LIBRARY_PATH))
    for name, params in _abi.SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = [_TYPES[p] for p in params]
        fn.restype = c_int32
    version = lib.sws_abi_version()
    if version != _abi.ABI_VERSION:
        raise ImportError(f"{LIBRARY_PATH} has ABI version {version}, this package needs {_abi.ABI_VERSION}")
    return lib


lib = _load()

# NotifyFn is the C type of callbacks for sws_set_callback.
NotifyFn = ctypes.CFUNCTYPE(None, c_int64, c_void_p)

_forked = False


def _after_fork_in_child() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def check_fork() -> None:
    """Refuse to run in a forked child: the Go runtime's threads did not
    survive the fork, and a call into it would hang."""
    if _forked:
        raise RuntimeError(
            "steadyws cannot be used in a process forked after it was imported: "
            "the Go runtime does not survive fork(). Use the 'spawn' or 'forkserver' "
            "multiprocessing start method, or import steadyws only in the child."
        )


def forked() -> bool:
    """Whether this is a child forked after the import."""
    return _forked


_local = threading.local()


def _thread_error() -> tuple[CError, Any]:
    """The calling thread's sws_error and a pointer to it."""
    pair: tuple[CError, Any] | None = getattr(_local, "error", None)
    if pair is None:
        err = CError()
        pair = _local.error = (err, ctypes.byref(err))
    return pair


def call(fn: Callable[..., int], *args: Any, allow: Collection[int] = ()) -> int:
    """Call an export with ``args`` and this thread's sws_error; return its
    code if it is OK or in ``allow``, else raise the call's own error."""
    if _forked:
        check_fork()
    err, ref = _thread_error()
    rc = fn(*args, ref)
    if rc == 0 or rc in allow:
        return rc
    raise exception(rc, err)


def exception(rc: int, err: CError) -> Exception:
    """The exception for a failed call and its sws_error."""
    text = err.text.decode("utf-8", "replace")
    return error_from(
        rc,
        text,
        close_code=err.close_code,
        reason=err.reason.decode("utf-8", "replace"),
        end_code=err.end_code,
        status=err.status,
        closed_by=err.closed_by,
        dialing=bool(err.dialing),
        retry_after=err.retry_after_us / 1e6,
    )


def read_string(fn: Callable[..., int], *args: Any, initial: int = 256) -> str:
    """A string from ``fn(*args, buf, cap, out_len)``, through call, growing
    the buffer until it fits."""
    size = initial
    while True:
        buf = ctypes.create_string_buffer(size)
        n = c_int64()
        rc = call(fn, *args, buf, size, ctypes.byref(n), allow=(_abi.ErrorCode.BUFFER_TOO_SMALL,))
        if rc == _abi.ErrorCode.BUFFER_TOO_SMALL and n.value + 1 > size:
            size = n.value + 1
            continue
        return buf.raw[: min(n.value, size - 1)].decode("utf-8", "replace")


def int64s(fn: Callable[..., int], *args: Any, count: int) -> list[int]:
    """Counters from ``fn(*args, out, cap, out_n)``, through call."""
    out = (c_int64 * count)()
    n = c_int32()
    call(fn, *args, out, count, ctypes.byref(n), allow=(_abi.ErrorCode.BUFFER_TOO_SMALL,))
    return list(out[: min(n.value, count)])


def runtime_stats() -> dict[str, int]:
    """Process-wide engine counters: live goroutines and live handles."""
    goroutines, handles = int64s(lib.sws_runtime_stats, count=2)[:2]
    return {"goroutines": goroutines, "handles": handles}


def validate(options: dict[str, Any]) -> None:
    """Check options (a subset, no URL) as connect() would: TypeError or
    ValueError naming the first bad one."""
    import json

    raw = json.dumps(options).encode("utf-8")
    call(lib.sws_validate, raw, len(raw))
