"""A budget of messages or dial attempts, shared by every connection given it."""

from __future__ import annotations

import ctypes
import math

from . import _lib
from ._handle import Handle

_CONTROL_FRAMES, _WAIT = 1, 2  # the flags of sws_ratelimit_new


class RateLimit:
    """At most ``rate`` messages within any ``per`` seconds, shared by every
    connection given it -- as ``send_rate`` (what send and send_batch write)
    or ``connect_rate`` (dial attempts, on top of the backoff schedule)::

        feed_budget = steadyws.RateLimit(5, per=1.0)     # Binance: 5 messages a second
        dial_budget = steadyws.RateLimit(300, per=300.0) # 300 connections per 5 minutes

    The window is exact (a venue counting in any window of ``per`` sees no
    more than ``rate``, with 5% of ``per`` kept as a margin for the
    network's jitter), not a token bucket, which lets almost twice the rate
    through at the edges of a window. ``burst`` (default None: up to
    ``rate`` back to back) smooths further: at most ``burst`` within any
    ``per * burst / rate``. With ``control_frames=True`` our pings and pongs
    take grants too; a pong then takes the next grant the budget allows,
    ahead of any data send that waits. ``wait=True`` (the default) makes a
    send wait for room, up to ``write_timeout``; ``wait=False`` raises
    :class:`RateLimited` at once. Either way RateLimited has ``retry_after``.
    The engine checks the values; one object serves one process.
    """

    def __init__(
        self,
        rate: int,
        per: float = 1.0,
        *,
        burst: int | None = None,
        control_frames: bool = False,
        wait: bool = True,
    ) -> None:
        _lib.check_fork()
        for name, number in (("rate", rate), ("burst", burst)):
            if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
                raise TypeError(f"{name} must be an int, not {type(number).__name__}")
        if isinstance(per, bool) or not isinstance(per, (int, float)):
            raise TypeError(f"per must be a number of seconds, not {type(per).__name__}")
        for name, flag in (("control_frames", control_frames), ("wait", wait)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, not {type(flag).__name__}")
        per_us = round(per * 1e6) if math.isfinite(per) and abs(per) < 2**40 else -1
        flags = (_CONTROL_FRAMES if control_frames else 0) | (_WAIT if wait else 0)
        value = ctypes.c_int64()
        _lib.call(
            _lib.lib.sws_ratelimit_new, min(rate, 2**62), per_us, 0 if burst is None else min(burst, 2**62), flags,
            ctypes.byref(value),
        )  # fmt: skip
        self.rate, self.per, self.burst = rate, float(per), burst
        self.control_frames, self.wait = control_frames, wait
        self._handle = Handle(value.value)

    def __repr__(self) -> str:
        burst = "" if self.burst is None else f", burst={self.burst}"
        return f"RateLimit({self.rate}, per={self.per}{burst}, control_frames={self.control_frames}, wait={self.wait})"

    def config(self) -> dict[str, int]:
        """The limit as sws_connect's options name it (the engine keeps it
        for the connection's lifetime, whatever happens to this object)."""
        h = self._handle.acquire()
        self._handle.release()
        return {"$ratelimit": h}
