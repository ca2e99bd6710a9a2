"""Hostile clients: a bounded number of connections, and no connection idles for long.

uvicorn closes a kept-alive connection that stays silent after a response,
but not a connection that never sends a request, nor one that sends its
headers a byte at a time; and it accepts connections until the process runs
out of file descriptors, after which nobody is served. :class:`ConnectionGuard`
adds what is missing, the way nginx does it:

* A connection *waits* from the moment it is accepted, and again from the
  end of each response, until the head of its next request is complete.
  A connection that waits longer than ``idle_timeout`` is closed — idle
  connections and slow headers alike.
* At most ``max_connections`` are open. When one more arrives, the
  connection that has waited longest is closed to make room (an idle
  connection is cheap to drop: its client reconnects); when every
  connection is busy with a request, the newcomer gets a ``503`` and is
  closed at once.

The guard is plugged into uvicorn as its HTTP protocol class
(:func:`protocol_class`), a subclass of uvicorn's h11 protocol that reports
when a connection starts and stops waiting.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ConnectionGuard", "protocol_class"]

_BUSY_BODY = b'{"error": "the server is busy: too many connections, try again"}'
#: What a connection refused for lack of room gets before it is closed.
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"content-length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)


class ConnectionGuard:
    """Counts the open connections, evicts and times out the waiting ones.

    Args:
        max_connections: most connections open at once.
        idle_timeout: seconds a connection may wait for a complete request head.
    """

    def __init__(self, max_connections: int, idle_timeout: float) -> None:
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.open: set[GuardedProtocol] = set()
        # Waiting connections and since when, oldest first (dicts keep insertion order).
        self.waiting: dict[GuardedProtocol, float] = {}
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0
        self._sweeper: asyncio.TimerHandle | None = None

    def admit(self, conn: GuardedProtocol) -> bool:
        """Make room for a new connection; False when it must be refused."""
        if self._sweeper is None:
            self._schedule()
        if len(self.open) >= self.max_connections:
            if not self.waiting:
                self.refused += 1
                return False
            oldest = next(iter(self.waiting))
            self.evicted += 1
            self.close(oldest)
        self.open.add(conn)
        self.wait(conn)
        return True

    def wait(self, conn: GuardedProtocol) -> None:
        """``conn`` starts waiting for a request head (now the newest waiter)."""
        self.waiting.pop(conn, None)
        self.waiting[conn] = time.monotonic()

    def busy(self, conn: GuardedProtocol) -> None:
        """``conn`` has a request in progress: it may take as long as it needs."""
        self.waiting.pop(conn, None)

    def forget(self, conn: GuardedProtocol) -> None:
        """``conn`` is closed."""
        self.open.discard(conn)
        self.waiting.pop(conn, None)

    def close(self, conn: GuardedProtocol) -> None:
        """Close ``conn`` now and stop counting it."""
        self.forget(conn)
        conn.transport.abort()

    def sweep(self) -> None:
        """Close every connection that has waited longer than ``idle_timeout``."""
        deadline = time.monotonic() - self.idle_timeout
        expired = []
        for conn, since in self.waiting.items():
            if since > deadline:
                break  # the rest waited less: the dict is ordered by waiting time
            expired.append(conn)
        for conn in expired:
            self.timed_out += 1
            self.close(conn)

    def _schedule(self) -> None:
        interval = min(1.0, self.idle_timeout / 4)
        self._sweeper = asyncio.get_running_loop().call_later(interval, self._tick)

    def _tick(self) -> None:
        self.sweep()
        self._schedule()

    def stop(self) -> None:
        """Stop the periodic sweep (at shutdown)."""
        if self._sweeper is not None:
            self._sweeper.cancel()


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol, reporting to a :class:`ConnectionGuard`."""

    guard: ConnectionGuard
    _refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.guard.admit(self):
            self._refused = True
            transport.write(REFUSAL)
            transport.close()
            return
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        self._report()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self.guard.wait(self)
        super().on_response_complete()
        self._report()  # a pipelined request may have started

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self.guard.forget(self)
        super().connection_lost(exc)

    def _report(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.guard.busy(self)


def protocol_class(guard: ConnectionGuard) -> type[GuardedProtocol]:
    """The protocol class to give uvicorn (``http=``) for connections under ``guard``."""
    attributes: dict[str, Any] = {"guard": guard}
    return type("GuardedH11Protocol", (GuardedProtocol,), attributes)
