"""Progress documents of a running job (child process): ``ctx.progress`` without waiting.

:class:`ProgressReporter` records the latest value and publishes it from
one shared :class:`Scheduler` thread, at most once per interval.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from jobrunner._log import get_logger
from jobrunner._worker.documents import ResultBuilder

__all__ = ["ProgressReporter", "Scheduler"]

log = get_logger(__name__)


class _Call:
    """A call scheduled by :class:`Scheduler`; :meth:`cancel` stops it if not yet run."""

    __slots__ = ("cancelled", "fn")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the call (if it has not started yet)."""
        self.cancelled = True


class Scheduler:
    """One daemon thread running delayed calls for every job of this process.

    A :class:`threading.Timer` per job would start a thread per job (about half
    a millisecond each here); progress documents only need a shared clock.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, _Call]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, fn: Callable[[], None]) -> _Call:
        """Run ``fn`` on the scheduler thread after ``delay`` seconds."""
        call = _Call(fn)
        with self._cond:
            entry = (time.monotonic() + delay, next(self._order), call)
            heapq.heappush(self._queue, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
                self._thread.start()
            # Wake the thread only when it must now wake sooner: with a job every few
            # milliseconds, each announcing a document 0.2 s later, it sleeps on.
            if self._queue[0] is entry:
                self._cond.notify()
        return call

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    # Calls cancelled meanwhile (most: jobs end before their first
                    # running document is due) are dropped without waiting for them.
                    while self._queue and self._queue[0][2].cancelled:
                        heapq.heappop(self._queue)
                    if self._queue and self._queue[0][0] <= time.monotonic():
                        break
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout)
                _, _, call = heapq.heappop(self._queue)
            if not call.cancelled:
                try:
                    call.fn()
                except Exception:  # a failing call must not stop the clock
                    log.exception("scheduled_call_failed")


class ProgressReporter:
    """Publishes ``running`` documents for ``ctx.progress``, at most once per interval.

    ``ctx.progress`` never waits for a publisher (an HTTP results host may be
    slow): it records the latest value, and a timer thread publishes it when
    the interval allows. The latest value always gets out, unless the end of
    the job supersedes it; :meth:`close` waits for a publication under way, so
    a ``running`` document never overtakes the final one.
    """

    def __init__(
        self,
        publish: Any,
        builder: ResultBuilder,
        interval: float,
        scheduler: Scheduler | None = None,
    ) -> None:
        self._scheduler = scheduler or Scheduler()
        self._publish = publish
        self._builder = builder
        self._interval = interval
        self._state = threading.Lock()  # guards the fields below; held briefly
        self._publishing = threading.Lock()  # held while a document is being published
        self._last = float("-inf")
        self._pending: tuple[float, str | None] | None = None
        self._timer: _Call | None = None
        self._closed = False

    def __call__(self, fraction: float, message: str | None = None) -> None:
        with self._state:
            if self._closed:
                return
            self._pending = (fraction, message)
            if self._timer is None:
                wait = max(0.0, self._last + self._interval - time.monotonic())
                self._schedule(wait)

    def announce(self, delay: float) -> None:
        """Publish the first ``running`` document after ``delay`` seconds (at once if 0).

        A job that ends sooner publishes only its final document: for short jobs the
        ``running`` document would be overwritten before anybody could read it.
        """
        if delay <= 0:
            self._pending = (0.0, None)
            self._flush()
            return
        with self._state:
            self._pending = (0.0, None)
            self._schedule(delay)

    def _schedule(self, wait: float) -> None:
        # Called with the state lock held.
        self._timer = self._scheduler.call_later(wait, self._flush)

    def _flush(self) -> None:
        with self._publishing:
            with self._state:
                self._timer = None
                if self._closed or self._pending is None:
                    return
                fraction, message = self._pending
                self._pending = None
                self._last = time.monotonic()
            self._publish(self._builder.running(progress=fraction, message=message))

    def close(self) -> None:
        """Stop publishing and wait for a publication under way: the final document is next."""
        with self._state:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        with self._publishing:
            pass
