"""Logging for a server that faces the internet: no client can flood the log.

Every warning and error event is counted per event name; past a small burst
within a window, further events of that name are dropped and the next one
let through says how many were (``suppressed=N``). uvicorn's and asyncio's
own records (``Invalid HTTP request received.``, ``socket.accept() out
of system resource``) go through the same limit as the server's own.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from jobrunner._log import get_logger

__all__ = ["RateLimit", "ServeLog", "StdlibBridge"]

#: Events of one name let through per window before the rest are dropped.
BURST = 20
#: Seconds of a window.
WINDOW = 10.0


class RateLimit:
    """At most ``burst`` events per key in each ``window`` seconds."""

    def __init__(self, burst: int = BURST, window: float = WINDOW) -> None:
        self.burst = burst
        self.window = window
        self._state: dict[str, tuple[float, int, int]] = {}  # start, let through, dropped

    def allow(self, key: str) -> tuple[bool, int]:
        """Whether an event of ``key`` may be logged now, and how many were dropped before it."""
        now = time.monotonic()
        start, passed, dropped = self._state.get(key, (now, 0, 0))
        if now - start >= self.window:
            start, passed = now, 0
        if passed >= self.burst:
            self._state[key] = (start, passed, dropped + 1)
            return False, 0
        self._state[key] = (start, passed + 1, 0)
        return True, dropped


class ServeLog:
    """The server's logger: info passes, warnings and errors are rate-limited per event."""

    def __init__(self, name: str, limit: RateLimit) -> None:
        self._log = get_logger(name)
        self._limit = limit

    def info(self, event: str, **kw: Any) -> None:
        """Log an info event (never limited: one per state change, not per client error)."""
        self._log.info(event, **kw)

    def limited_info(self, event: str, **kw: Any) -> None:
        """Log an info event a client can cause at will (a disconnect), rate-limited."""
        self._emit("info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        """Log a warning, rate-limited per event name."""
        self._emit("warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        """Log an error, rate-limited per event name."""
        self._emit("error", event, kw)

    def exception(self, event: str, **kw: Any) -> None:
        """Log an error with the current traceback, rate-limited per event name."""
        self._emit("exception", event, kw)

    def _emit(self, level: str, event: str, kw: dict[str, Any]) -> None:
        allowed, dropped = self._limit.allow(event)
        if not allowed:
            return
        if dropped:
            kw["suppressed"] = dropped
        getattr(self._log, level)(event, **kw)


#: One limit for the whole server process.
LIMIT = RateLimit()
log = ServeLog("jobrunner.serve", LIMIT)


class StdlibBridge(logging.Handler):
    """Forwards uvicorn's and asyncio's records as jobrunner events, rate-limited.

    uvicorn's access records (``uvicorn.access``) become ``request_served``
    events with the client, method, path and status.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            if len(record.args) == 5:
                client, method, path, version, status = record.args
                log.info(
                    "request_served",
                    client=client,
                    method=method,
                    path=path,
                    http_version=version,
                    status=status,
                )
            return
        level = "error" if record.levelno >= logging.ERROR else "warning"
        prefix = record.name.split(".")[0]
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        getattr(log, level)(f"{prefix}_{level}", message=message, logger=record.name)
