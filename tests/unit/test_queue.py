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


def test_delete_reserves_the_next_job_in_the_same_round_trip(beanstalkd: Beanstalkd) -> None:
    """delete(reserve_next=True) deletes the job and holds the next ready one for reserve(),
    counted by beanstalkd as reserved once; with nothing ready the next reserve waits as usual."""
    producer = Connection(beanstalkd.address)
    conn = Connection(beanstalkd.address, watch=["default"])
    try:
        first, second = producer.put(b"1", tube="default"), producer.put(b"2", tube="default")
        reserved = conn.reserve(timeout=1)
        assert reserved is not None and reserved.id == first
        conn.delete(first, reserve_next=True)
        stats = beanstalkd.tube_stats()
        assert stats["current-jobs-reserved"] == 1 and stats["current-jobs-ready"] == 0
        ahead = conn.reserve(timeout=1)
        assert ahead is not None and (ahead.id, ahead.body) == (second, b"2")
        assert conn.holds(ahead) and conn.stats_job(second)["reserves"] == 1
        conn.delete(second, reserve_next=True)
        assert conn.reserve(timeout=0) is None
        with pytest.raises(JobNotFound):
            conn.delete(second, reserve_next=True)
    finally:
        producer.close()
        conn.close()


def test_stats_of_a_job_and_a_tube_in_one_round_trip(beanstalkd: Beanstalkd) -> None:
    """stats_job_and_tube answers as stats_job and stats_tube do; a missing tube is empty,
    a missing job is JobNotFound, and the connection stays usable."""
    conn = Connection(beanstalkd.address, watch=["default"])
    try:
        job_id = conn.put(b"x", tube="default", priority=7)
        job, tube = conn.stats_job_and_tube(job_id, "default")
        assert job["pri"] == 7 and job["tube"] == "default" and job["id"] == job_id
        assert tube["name"] == "default" and tube["current-jobs-ready"] == 1
        assert conn.stats_job_and_tube(job_id, "no-such-tube")[1] == {}
        with pytest.raises(JobNotFound):
            conn.stats_job_and_tube(job_id + 100, "default")
        assert conn.stats_job(job_id)["pri"] == 7
    finally:
        conn.close()


def test_cancel_tube_name_is_the_sha256_of_the_job_id() -> None:
    """A job's cancellation tube is the prefix plus 40 hex digits of SHA-256 of its id,
    the name every client and worker derives on its own."""
    import hashlib

    from jobrunner.queue import CANCEL_TUBE_PREFIX, cancel_tube

    for job_id in ("a:b@c", "ü-1", "x" * 300):
        digest = hashlib.sha256(job_id.encode()).hexdigest()[:40]
        assert cancel_tube(job_id) == CANCEL_TUBE_PREFIX + digest
