"""Worker processes under signals, kill -9, short TTRs and a restarting beanstalkd."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support import (
    Beanstalkd,
    Lab,
    Worker,
    pid_alive,
    put_raw,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.integration


def _drained(bsd: Beanstalkd) -> bool:
    """Nothing ready, reserved or delayed (a done document comes just before its delete)."""
    stats = bsd.tube_stats()
    return all(stats.get(f"current-jobs-{s}", 0) == 0 for s in ("ready", "reserved", "delayed"))


def _job_events(worker: Worker, job_id: str) -> list[str]:
    """The events a worker logged about one job."""
    return [e["event"] for e in worker.events if e.get("job_id") == job_id]


def _started_pids(lab: Lab, *names: str) -> list[int]:
    return [int(row[1]) for row in lab.runs("start") if row[0] in names]


@pytest.mark.slow
def test_long_job_with_short_ttr_runs_exactly_once(bsd: Beanstalkd, lab: Lab) -> None:
    """A 10 s job with TTR 3 s is kept reserved by touches: with two workers watching it
    runs exactly once and is deleted."""
    first = lab.worker(bsd.address, "--log-level", "debug")
    second = lab.worker(bsd.address)
    try:
        put_raw(bsd.port, lab.body("sleep", "long", {"seconds": 10}), ttr=3)
        doc = wait_for_status(lab.result("long"), ("done",), timeout=60)
        assert doc["attempt"] == 1
        assert len(lab.runs("start")) == 1 and len(lab.runs("end")) == 1
        wait_for(
            lambda: (
                first.find("job_deleted", job_id="long")
                or second.find("job_deleted", job_id="long")
            ),
            30,
            what="the job deleted",
        )
        worker = first if first.find("job_deleted", job_id="long") else second
        # Every reservation ends in one event with the job id: only one worker has any.
        assert not (_job_events(first, "long") and _job_events(second, "long"))
        if worker is first:
            assert len(first.find("job_touched")) >= 3
        assert bsd.tube_stats()["total-jobs"] == 1
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


def test_sigterm_lets_running_jobs_finish_within_grace(bsd: Beanstalkd, lab: Lab) -> None:
    """SIGTERM during a job that ends within --grace: the worker stops reserving, the job
    is done and deleted, the worker exits 0, each step logged."""
    worker = lab.worker(bsd.address, "--grace", "30")
    put_raw(bsd.port, lab.body("sleep", "short", {"seconds": 2}))
    wait_for(lambda: lab.runs("start"), 30, what="the job started")
    worker.signal(signal.SIGTERM)
    put_raw(bsd.port, lab.body("sleep", "not-taken", {"seconds": 0}))
    assert worker.wait(timeout=60) == 0
    assert read_status(lab, "short") == "done"
    for event in ("signal_received", "worker_stopping", "job_deleted", "worker_stopped"):
        assert worker.find(event), event
    assert not lab.result("not-taken").exists()
    assert bsd.tube_stats()["current-jobs-ready"] == 1


@pytest.mark.slow
def test_sigterm_mid_stream_deletes_every_finished_job_exactly_once(
    bsd: Beanstalkd, lab: Lab
) -> None:
    """A stream of short jobs (a finished job's delete waits to go with the next job's
    reserve) stopped by SIGTERM: every job that ran is deleted once and logged once, none
    is left reserved or comes back; a second worker runs exactly the rest."""
    names = [f"s{i}" for i in range(300)]
    for name in names:
        put_raw(bsd.port, lab.body("count_runs", name))
    worker = lab.worker(bsd.address, concurrency=2)
    wait_for(lambda: len(lab.runs("end")) >= 60, 60, what="60 jobs run")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    ran = [row[0] for row in lab.runs("end")]
    assert len(ran) == len(set(ran)) and len(ran) < len(names)
    stats = bsd.tube_stats()
    assert stats.get("current-jobs-reserved", 0) == 0
    assert stats["current-jobs-ready"] == len(names) - len(ran)
    deleted = [e["job_id"] for e in worker.find("job_deleted")]
    assert sorted(deleted) == sorted(ran)
    assert not worker.find("job_ack_lost")
    second = lab.worker(bsd.address, concurrency=2)
    try:
        wait_for(lambda: _drained(bsd), 60, what="the rest run")
    finally:
        assert second.stop() == 0
    assert sorted(row[0] for row in lab.runs("end")) == sorted(names)  # each exactly once


def read_status(lab: Lab, name: str) -> str | None:
    doc = wait_for_status(lab.result(name), ("done", "failed"), timeout=5)
    return str(doc["status"])


def test_sigterm_releases_what_outlives_grace_and_second_signal_at_once(
    bsd: Beanstalkd, lab: Lab
) -> None:
    """Jobs still running after --grace are released with no delay and the worker exits 0;
    a second signal releases at once; another worker then finishes both jobs."""
    worker = lab.worker(bsd.address, "--grace", "1", concurrency=2)
    put_raw(bsd.port, lab.body("sleep", "a", {"seconds": 60}))
    put_raw(bsd.port, lab.body("sleep", "b", {"seconds": 60}))
    wait_for(lambda: len(lab.runs("start")) == 2, 30, what="both jobs started")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert len(worker.find("job_released", reason="shutdown", delay=0)) == 2
    assert len(worker.find("job_interrupted", reason="grace over")) == 2
    assert bsd.tube_stats()["current-jobs-ready"] == 2
    for pid in _started_pids(lab, "a", "b"):
        wait_for(lambda pid=pid: not pid_alive(pid), 10, what="children stopped")

    patient = lab.worker(bsd.address, "--grace", "600")
    wait_for(lambda: len(lab.runs("start")) == 3, 30, what="job taken again")
    patient.signal(signal.SIGTERM)
    patient.wait_event("worker_stopping")
    time.sleep(0.5)
    assert patient.proc.poll() is None  # still within its 600 s grace
    patient.signal(signal.SIGINT)
    assert patient.wait(timeout=30) == 0
    assert patient.find("worker_aborting")
    assert patient.find("job_interrupted", reason="second signal")
    assert patient.find("job_released", reason="shutdown", delay=0)
    assert bsd.tube_stats()["current-jobs-ready"] == 2

    # Released with no delay: the next worker takes both at once, on their next attempt.
    fast = lab.worker(bsd.address, "--grace", "0", concurrency=2)
    try:
        wait_for(lambda: len(lab.runs("start")) == 5, 30, what="both jobs running again")
        assert sorted(int(row[2]) for row in lab.runs("start")) == [1, 1, 2, 2, 3]
    finally:
        assert fast.stop() == 0


def test_sigterm_to_worker_and_children_together_releases_not_buries(
    bsd: Beanstalkd, lab: Lab
) -> None:
    """A stop that signals the children too (systemd's default KillMode=control-group)
    gives the job back instead of burying it as a crash."""
    worker = lab.worker(bsd.address, "--grace", "30")
    put_raw(bsd.port, lab.body("sleep", "job", {"seconds": 60}))
    wait_for(lambda: lab.runs("start"), 30, what="job started")
    child = _started_pids(lab, "job")[0]
    os.kill(child, signal.SIGTERM)
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert worker.find("job_released", job_id="job", reason="shutdown")
    assert not worker.find("job_buried")
    stats = bsd.tube_stats()
    assert stats["current-jobs-ready"] == 1 and stats["current-jobs-buried"] == 0


@pytest.mark.slow
def test_kill_9_worker_mid_job_second_worker_finishes_every_job(bsd: Beanstalkd, lab: Lab) -> None:
    """kill -9 of a worker mid-job kills its children (no orphan finishes or publishes) and
    a second worker finishes every job."""
    names = [f"j{n}" for n in range(6)]
    victim = lab.worker(bsd.address, concurrency=2)
    for name in names:
        put_raw(bsd.port, lab.body("sleep", name, {"seconds": 2}), ttr=60)
    wait_for(lambda: len(lab.runs("start")) == 2, 30, what="two jobs started")
    orphans = [int(row[1]) for row in lab.runs("start")]
    victim.signal(signal.SIGKILL)
    victim.wait(timeout=10)
    for pid in orphans:
        wait_for(lambda pid=pid: not pid_alive(pid), 10, what=f"child {pid} gone")
    # beanstalkd gave the reserved jobs back when the connections closed (not after TTR).
    wait_for(lambda: bsd.tube_stats()["current-jobs-reserved"] == 0, 10, what="released")
    rescuer = lab.worker(bsd.address, concurrency=3)
    try:
        for name in names:
            assert wait_for_status(lab.result(name), ("done",), timeout=60)["status"] == "done"
        assert not any(int(row[1]) in orphans for row in lab.runs("end"))
        wait_for(lambda: _drained(bsd), 30, what="queue drained")
    finally:
        assert rescuer.stop() == 0


@pytest.mark.slow
def test_beanstalkd_restart_on_binlog_loses_nothing(bsd: Beanstalkd, lab: Lab) -> None:
    """beanstalkd stopped mid-run and restarted on its binlog: the workers stay up, log one
    disconnect and one reconnect per connection, and every job is done — the delayed retry
    keeps its attempt count."""
    workers = [lab.worker(bsd.address, concurrency=2) for _ in range(2)]
    try:
        put_raw(bsd.port, lab.body("retry_once", "retry", {"delay": 4}))
        names = [f"j{n}" for n in range(12)]
        for name in names:
            put_raw(bsd.port, lab.body("sleep", name, {"seconds": 1}))
        wait_for(lambda: any(w.find("job_released", job_id="retry") for w in workers), 30)
        wait_for(lambda: len(lab.runs("end")) >= 2, 30, what="some jobs done")
        bsd.stop()
        time.sleep(2.0)
        assert all(w.proc.poll() is None for w in workers)
        bsd.start()
        for name in names:
            assert wait_for_status(lab.result(name), ("done",), timeout=90)["status"] == "done"
        doc = wait_for_status(lab.result("retry"), ("done",), timeout=60)
        assert doc["attempt"] == 2
        wait_for(lambda: _drained(bsd), 30, what="queue drained")
        for worker in workers:
            assert worker.proc.poll() is None
            # 2 slots, one connection each: at most one event per state change each.
            assert 1 <= len(worker.find("queue_disconnected")) <= 2
            assert 1 <= len(worker.find("queue_reconnected")) <= 2
        stats = bsd.tube_stats()
        assert stats["current-jobs-buried"] == 0 and stats["current-jobs-reserved"] == 0
    finally:
        for worker in workers:
            assert worker.stop() == 0


def test_worker_waits_for_beanstalkd_that_is_not_up_yet(lab: Lab, tmp_path: Path) -> None:
    """A worker started before beanstalkd keeps running, logs the outage once and runs jobs
    once the server comes up."""
    server = Beanstalkd(binlog_dir=tmp_path / "late-binlog")
    worker = lab.worker(server.address)
    try:
        worker.wait_event("queue_disconnected")
        time.sleep(2.0)
        assert len(worker.find("queue_disconnected")) == 1
        assert worker.proc.poll() is None
        server.start()
        put_raw(server.port, lab.body("pid", "late"))
        assert wait_for_status(lab.result("late"), ("done",), timeout=60)["status"] == "done"
        assert len(worker.find("queue_reconnected")) == 1
    finally:
        worker.stop()
        server.stop()


def test_delete_lost_with_the_connection_reruns_and_republishes(bsd: Beanstalkd, lab: Lab) -> None:
    """beanstalkd restarting while a job runs takes its reservation: the delete is lost,
    the job (restored from the binlog) runs again and publishes the same result."""
    worker = lab.worker(bsd.address)
    try:
        put_raw(bsd.port, lab.body("sleep", "again", {"seconds": 2}), ttr=60)
        wait_for(lambda: lab.runs("start"), 30, what="the job started")
        bsd.restart()
        worker.wait_event("job_ack_lost", job_id="again", action="delete", timeout=30)
        worker.wait_event("job_deleted", job_id="again", timeout=60)
        doc = wait_for_status(lab.result("again"), ("done",))
        assert doc["data"]["slept"] == 2
        assert [row[0] for row in lab.runs("end")] == ["again", "again"]
        wait_for(lambda: _drained(bsd), 30, what="queue drained")
        assert worker.proc.poll() is None
    finally:
        assert worker.stop() == 0


def test_two_signals_back_to_back_still_stop_the_worker(bsd: Beanstalkd, lab: Lab) -> None:
    """SIGINT then SIGTERM at once (Ctrl-C in a script that also terminates its children)
    stop the worker with exit 0: the handlers only record signals, so a second one can
    never interrupt the first mid-write and hang the worker."""
    for _ in range(3):
        worker = lab.worker(bsd.address, concurrency=2)
        worker.signal(signal.SIGINT)
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
        worker.wait_event("worker_stopped")
