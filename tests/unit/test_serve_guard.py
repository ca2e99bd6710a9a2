"""Unit tests of the results server's defences: the connection guard's bookkeeping, the
log rate limit and the connection budget (the real thing is tested through a running
``jobrunner serve`` in tests/integration/test_bad_inputs.py)."""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

import pytest

from jobrunner.errors import ConfigError
from jobrunner.serve import _logs
from jobrunner.serve._guard import ConnectionGuard
from jobrunner.serve._logs import RateLimit
from jobrunner.serve._run import connection_budget
from tests.support import capture_events


class FakeTransport:
    """Records whether the guard aborted the connection."""

    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class FakeConn:
    """What the guard needs of a connection: its transport."""

    def __init__(self) -> None:
        self.transport = FakeTransport()


def run(coro: Any) -> Any:
    """Run a coroutine: the guard schedules its sweep on the running loop."""
    return asyncio.run(coro)


def test_full_guard_evicts_the_longest_waiting_connection() -> None:
    """At the limit, a new connection closes the one that has waited longest, not a busy one."""

    async def go() -> None:
        guard = ConnectionGuard(max_connections=3, idle_timeout=10)
        a, b, c, d = FakeConn(), FakeConn(), FakeConn(), FakeConn()
        for conn in (a, b, c):
            assert guard.admit(conn)  # type: ignore[arg-type]
        guard.busy(a)  # type: ignore[arg-type]
        guard.wait(b)  # type: ignore[arg-type]  # b answered a request: waits anew
        assert guard.admit(d)  # type: ignore[arg-type]
        assert c.transport.aborted and not a.transport.aborted and not b.transport.aborted
        assert guard.evicted == 1 and len(guard.open) == 3
        guard.stop()

    run(go())


def test_guard_refuses_when_every_connection_is_busy() -> None:
    """When all open connections have a request in progress, a new one is refused."""

    async def go() -> None:
        guard = ConnectionGuard(max_connections=2, idle_timeout=10)
        a, b = FakeConn(), FakeConn()
        for conn in (a, b):
            guard.admit(conn)  # type: ignore[arg-type]
            guard.busy(conn)  # type: ignore[arg-type]
        assert not guard.admit(FakeConn())  # type: ignore[arg-type]
        assert guard.refused == 1 and not a.transport.aborted
        guard.forget(a)  # type: ignore[arg-type]
        assert guard.admit(FakeConn())  # type: ignore[arg-type]
        guard.stop()

    run(go())


def test_sweep_closes_only_connections_waiting_too_long() -> None:
    """The sweep closes connections that waited past the time-out, never busy ones."""

    async def go() -> None:
        guard = ConnectionGuard(max_connections=10, idle_timeout=0.05)
        old, busy = FakeConn(), FakeConn()
        guard.admit(old)  # type: ignore[arg-type]
        guard.admit(busy)  # type: ignore[arg-type]
        guard.busy(busy)  # type: ignore[arg-type]
        await asyncio.sleep(0.1)
        young = FakeConn()
        guard.admit(young)  # type: ignore[arg-type]
        guard.sweep()
        assert old.transport.aborted
        assert not busy.transport.aborted and not young.transport.aborted
        assert guard.timed_out == 1
        guard.stop()

    run(go())


def test_rate_limit_counts_what_it_drops() -> None:
    """Past the burst, events are dropped; the next one let through says how many were."""
    limit = RateLimit(burst=3, window=0.05)
    assert [limit.allow("e")[0] for _ in range(5)] == [True, True, True, False, False]
    assert limit.allow("other") == (True, 0)
    time.sleep(0.06)
    assert limit.allow("e") == (True, 2)
    assert limit.allow("e") == (True, 0)


def test_connection_budget_fits_the_descriptor_limit() -> None:
    """The default is half the descriptors left after a reserve; more than fits is refused."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    fits = connection_budget(0)
    soft_after, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft_after >= soft
    assert 0 < fits < soft_after // 2
    assert connection_budget(fits) == fits
    with pytest.raises(ConfigError, match="max_connections"):
        connection_budget(fits + 1)


def test_library_records_are_bridged_and_rate_limited() -> None:
    """A flood of asyncio or uvicorn error records becomes a few server events, the first
    after the burst saying how many were suppressed."""
    limit = RateLimit(burst=5, window=0.2)
    bridge = _logs.StdlibBridge()
    saved = _logs.log
    _logs.log = _logs.ServeLog("jobrunner.serve", limit)
    try:
        with capture_events() as events:
            for _ in range(100):
                record = logging.LogRecord(
                    "asyncio",
                    logging.ERROR,
                    __file__,
                    1,
                    "socket.accept() out of system resource",
                    None,
                    None,
                )
                bridge.handle(record)
            time.sleep(0.25)
            bridge.handle(record)
    finally:
        _logs.log = saved
    errors = [e for e in events if e["event"] == "asyncio_error"]
    assert len(errors) == 6
    assert errors[-1]["suppressed"] == 95
    assert "out of system resource" in errors[0]["message"]
