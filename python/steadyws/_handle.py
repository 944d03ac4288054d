"""Engine handles: opening one, freeing it exactly once, and the C
callbacks that must live as long as it."""

from __future__ import annotations

import ctypes
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from . import _ffi
from ._errors import ErrorCode, connect_error
from ._options import HeadersLike, check_headers

logger = logging.getLogger("steadyws")

_IMMORTAL: list[object] = []  # callbacks of handles whose goroutines outlived sws_free


def open_handle(config: dict[str, Any]) -> int:
    raw = json.dumps(config).encode("utf-8")
    handle = ctypes.c_int64()
    err = ctypes.create_string_buffer(1024)
    rc = _ffi.lib.sws_connect(raw, len(raw), ctypes.byref(handle), err, len(err))
    if rc == ErrorCode.INVALID_ARGUMENT:
        raise ValueError(err.value.decode("utf-8", "replace"))
    if rc != ErrorCode.OK:
        raise connect_error(rc, err.value.decode("utf-8", "replace"))
    return handle.value


def header_provider(fn: Callable[[], HeadersLike]) -> Any:
    """A C header provider calling ``fn`` (on an engine thread, once per attempt)."""

    def provide(handle: int, user: Any, buf: Any, cap: int, out_len: Any) -> int:
        try:
            raw = json.dumps(check_headers(fn())).encode("utf-8")
        except Exception:
            logger.exception("the headers callable raised: this reconnect attempt fails")
            return int(ErrorCode.INVALID_ARGUMENT)
        out_len[0] = len(raw)
        if len(raw) > cap:
            return int(ErrorCode.BUFFER_TOO_SMALL)
        ctypes.memmove(buf, raw, len(raw))
        return 0

    return _ffi.HeaderFn(provide)


class Handle:
    """One engine handle, freed exactly once (explicitly or by the GC), and
    the C callbacks that must live as long as it."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.freed = False
        self.keep: list[object] = []
        self._lock = threading.Lock()

    def free(self) -> None:
        with self._lock:
            if self.freed:
                return
            self.freed = True
        if _ffi._forked:
            return
        if _ffi.lib.sws_free(self.value) == ErrorCode.TIMEOUT and self.keep:
            _IMMORTAL.append(self.keep)  # its goroutines may still call them
