"""User callbacks and how lifecycle events reach them.

Callbacks run in the thread that receives (recv, recv_batch, recv_events,
iteration), when the event is reached in the stream: in order with the
messages, never on an engine thread. An exception in a callback is logged
with its traceback and passed to ``on_callback_error``; it never ends the
connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._batch import (
    Closed,
    Disconnected,
    Lifecycle,
    Message,
    Opened,
    QueueWarning,
    Reconnecting,
)

if TYPE_CHECKING:
    from ._connection import WebSocket

logger = logging.getLogger("steadyws")

OnOpen = Callable[["WebSocket"], Any]
OnDisconnect = Callable[["WebSocket", BaseException], Any]
OnReconnectAttempt = Callable[["WebSocket", int, float], Any]
OnClose = Callable[["WebSocket", int, str], Any]
OnCallbackError = Callable[["WebSocket", BaseException], Any]
OnMessage = Callable[[Message], Any]


@dataclass(frozen=True)
class Callbacks:
    on_open: OnOpen | None = None
    on_disconnect: OnDisconnect | None = None
    on_reconnect_attempt: OnReconnectAttempt | None = None
    on_close: OnClose | None = None
    on_callback_error: OnCallbackError | None = None
    on_message: OnMessage | None = None

    def message(self, ws: WebSocket, message: Message) -> None:
        """Deliver one message to on_message."""
        self._call(ws, self.on_message, message)

    def run(self, ws: WebSocket, event: Lifecycle) -> None:
        """Log ``event`` once at the level it deserves and call its callback."""
        if isinstance(event, Opened):
            self._call(ws, self.on_open, ws)
        elif isinstance(event, Disconnected):
            error = ws._exception_for(event)
            if event.error == 0 and event.code in (1000, 1001):
                logger.info("%s: the server closed the connection: %s", ws.url, error)
            else:
                logger.warning("%s: connection lost: %s", ws.url, error)
            self._call(ws, self.on_disconnect, ws, error)
        elif isinstance(event, Reconnecting):
            logger.info("%s: reconnect attempt %d in %.3f s", ws.url, event.attempt, event.delay)
            self._call(ws, self.on_reconnect_attempt, ws, event.attempt, event.delay)
        elif isinstance(event, Closed):
            self._call(ws, self.on_close, ws, event.code, event.reason)
        elif isinstance(event, QueueWarning):
            # Drops lose data; a queue above its high-water mark under the
            # block policy is backpressure doing its job.
            level = logging.WARNING if event.kind == "drops" else logging.INFO
            logger.log(level, "%s: %s", ws.url, event.message)

    def _call(self, ws: WebSocket, fn: Callable[..., Any] | None, *args: Any) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception as exc:
            logger.exception("%s: callback %s raised", ws.url, getattr(fn, "__name__", fn))
            if self.on_callback_error is not None:
                try:
                    self.on_callback_error(ws, exc)
                except Exception:
                    logger.exception("%s: on_callback_error raised", ws.url)
