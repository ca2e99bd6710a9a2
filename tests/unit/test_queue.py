"""The queue adapter: addresses, back-off and once-per-state-change logging."""

from __future__ import annotations

import pytest

from jobrunner.errors import JobNotFound, QueueError
from jobrunner.queue import Connection, parse_address
from tests.support import Beanstalkd, capture_events, free_port


def test_parse_address() -> None:
    """HOST:PORT and [v6]:PORT split into host and port."""
    assert parse_address("127.0.0.1:11300") == ("127.0.0.1", 11300)
    assert parse_address("[::1]:11300") == ("::1", 11300)


def test_down_server_is_logged_once_and_retried_with_backoff() -> None:
    """Calls to a server that is down fail fast with QueueError; the outage is logged once."""
    conn = Connection(f"127.0.0.1:{free_port()}", watch=["default"])
    with capture_events() as logs:
        for _ in range(20):
            with pytest.raises(QueueError):
                conn.reserve(timeout=0)
    assert conn.down
    assert [e["event"] for e in logs] == ["queue_disconnected"]
    with pytest.raises(QueueError, match="next try in"):
        conn.stats()


@pytest.mark.integration
def test_reconnects_after_restart_and_logs_each_change_once() -> None:
    """After beanstalkd restarts, the connection comes back by itself, logged once."""
    server = Beanstalkd().start()
    conn = Connection(server.address, watch=["t"])
    try:
        job_id = conn.put(b"x", tube="t")
        reserved = conn.reserve(timeout=1)
        assert reserved is not None and reserved.id == job_id
        server.restart()
        with capture_events() as logs:
            with pytest.raises(QueueError):
                conn.touch(job_id)

            def call() -> bool:
                try:
                    conn.stats()
                except QueueError:
                    return False
                return True

            from tests.support import wait_for

            wait_for(call, 20, interval=0.1, what="reconnect")
        events = [e["event"] for e in logs]
        assert events == ["queue_disconnected", "queue_reconnected"]
        assert conn.reconnects == 1
        with pytest.raises(JobNotFound):  # the reservation died with the old server
            conn.delete(job_id)
    finally:
        conn.close()
        server.stop()
