"""The one owner of library handles, for connections, hubs and test servers.

A handle is freed exactly once: explicitly, or by the garbage collector's
finalizer. It is never freed while another thread is inside a call on it --
including a wait on its wakeup fd, which sws_free closes -- because every
use goes through :meth:`Handle.acquire` and :meth:`Handle.release`, and a
free requested meanwhile happens when the last user releases it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from . import _lib
from ._abi import ErrorCode

_IMMORTAL: list[object] = []  # what must outlive a handle whose goroutines outlived sws_free


class HandleClosed(Exception):
    """The handle was freed (or is being freed): the object has ended."""


def _free(value: int, keep: list[object], before: list[Callable[[int], None]]) -> None:
    if _lib.forked():
        return  # the Go runtime is gone in a forked child: nothing to free
    for hook in before:
        hook(value)
    try:
        _lib.call(_lib.lib.sws_free, value, allow=(ErrorCode.TIMEOUT,))
    except Exception:  # noqa: BLE001 - freeing must not raise (it may run in a finalizer)
        return
    if keep:
        _IMMORTAL.append(keep)  # a C callback may still be called: keep it alive


class Handle:
    """One library handle: ``value`` while in use, freed exactly once."""

    def __init__(self, value: int) -> None:
        self._value = value
        self._lock = threading.Lock()
        self._users = 0
        self._freeing = False
        self._keep: list[object] = []  # C callbacks that must live as long as the handle
        self._before: list[Callable[[int], None]] = []  # run with the value just before sws_free
        self._finalizer = weakref.finalize(self, _free, value, self._keep, self._before)
        # Not at interpreter exit: a daemon thread may still be inside a call
        # on the handle then, and the process's end frees everything anyway.
        self._finalizer.atexit = False

    @property
    def freed(self) -> bool:
        """Whether a free was requested (it happens once no call is inside)."""
        return self._freeing

    def acquire(self) -> int:
        """The handle's value, for one call or wait; release it after. Raises
        HandleClosed once a free was requested."""
        with self._lock:
            if self._freeing:
                raise HandleClosed
            self._users += 1
        return self._value

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            now = self._freeing and self._users == 0
        if now:
            self._finalizer()

    def free(self) -> None:
        """Free the handle now, or as soon as no call is inside it. Idempotent."""
        with self._lock:
            if self._freeing:
                return
            self._freeing = True
            now = self._users == 0
        if now:
            self._finalizer()

    def keep(self, obj: object) -> None:
        """Keep ``obj`` (a C callback) alive as long as the handle."""
        self._keep.append(obj)

    def before_free(self, hook: Callable[[int], None]) -> None:
        """Run ``hook(value)`` just before the handle is freed, when it is
        still valid (and no other call is inside it)."""
        self._before.append(hook)
