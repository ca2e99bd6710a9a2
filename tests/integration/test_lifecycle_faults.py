"""Jobs that crash, raise, hang, retry or expire: real worker, real children, real beanstalkd."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support import (
    Beanstalkd,
    Lab,
    jobrunner_cmd,
    pid_alive,
    put_raw,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.integration


def test_crashing_raising_and_hanging_jobs_fail_and_the_worker_goes_on(
    bsd: Beanstalkd, lab: Lab
) -> None:
    """Segfault, os._exit, OOM kill, exception and hang (SIGTERM ignored or not) each end in a
    failed document with the right code and a buried job; a job on the other slot finishes,
    and the same worker then runs a good job."""
    worker = lab.worker(bsd.address, concurrency=2)
    try:
        put_raw(bsd.port, lab.body("sleep", "long", {"seconds": 4}), priority=1)
        wait_for(lambda: lab.runs("start"), 30, what="the long job started")
        cases = {
            "segv": ("segfault", {}, "worker_crash", "SIGSEGV"),
            "exit": ("exit3", {}, "worker_crash", "exit code 3"),
            "oom": ("oom", {}, "worker_crash", "out of memory"),
            "raise": ("fail", {}, "plugin_error", "ValueError: bad value in test job"),
            "hang": ("hang", {}, "timeout", "time-out of 1 s"),
            "stubborn": (
                "hang",
                {"ignore_term": True, "spawn": True},
                "timeout",
                "time-out of 1 s",
            ),
        }
        for name, (job_type, params, _, _) in cases.items():
            put_raw(bsd.port, lab.body(job_type, name, params, timeout=1))
        for name, (_, _, code, text) in cases.items():
            doc = wait_for_status(lab.result(name), ("failed",), timeout=60)
            assert doc["error"]["code"] == code, doc
            assert text in doc["error"]["message"], doc
            assert doc["error"]["retryable"] is False
        long_doc = wait_for_status(lab.result("long"), timeout=60)
        assert long_doc["status"] == "done"
        wait_for(lambda: bsd.tube_stats().get("current-jobs-buried") == 6, 30, what="6 buried")
        for name, (_, _, code, _) in cases.items():
            worker.wait_event("job_buried", job_id=name, code=code)
        assert worker.proc.poll() is None
        # The hung children are gone, and so is the program one of them started.
        assert [row[0] for row in lab.runs("spawned")] == ["stubborn"]
        for row in lab.runs("start") + lab.runs("spawned"):
            if row[0] in ("hang", "stubborn"):
                wait_for(lambda pid=int(row[1]): not pid_alive(pid), 10, what="hung child gone")
        put_raw(bsd.port, lab.body("pid", "after"))
        assert wait_for_status(lab.result("after"), timeout=30)["status"] == "done"
        assert worker.find("child_killed")  # the stubborn one needed SIGKILL
    finally:
        assert worker.stop() == 0


def test_retry_once_succeeds_on_the_second_attempt(bsd: Beanstalkd, lab: Lab) -> None:
    """A job raising Retry on attempt 1 is released with back-off and done on attempt 2;
    Retry(delay=...) overrides the back-off; attempts past max_attempts are exhausted."""
    worker = lab.worker(bsd.address, concurrency=2)
    try:
        put_raw(bsd.port, lab.body("retry_once", "backoff"))
        put_raw(bsd.port, lab.body("retry_once", "own-delay", {"delay": 3}))
        put_raw(bsd.port, lab.body("always_retry", "exhausted", max_attempts=2))
        doc = wait_for_status(lab.result("backoff"), ("done",), timeout=30)
        assert doc["attempt"] == 2
        assert doc["data"] == {"attempt": 2}
        released = worker.wait_event("job_released", job_id="backoff")[0]
        assert 1 <= released["delay"] <= 2  # --retry-base 1, --retry-max 2
        assert released["code"] == "retry_requested"
        assert released["attempt"] == 1 and released["tube"] == "default"
        assert wait_for_status(lab.result("own-delay"), ("done",), timeout=30)["attempt"] == 2
        assert worker.wait_event("job_released", job_id="own-delay")[0]["delay"] == 3
        failed = wait_for_status(lab.result("exhausted"), ("failed",), timeout=30)
        assert failed["error"]["code"] == "retries_exhausted"
        assert "retry_requested: upstream still not ready" in failed["error"]["message"]
        assert failed["attempt"] == 2
        worker.wait_event("job_buried", job_id="exhausted", code="retries_exhausted")
        assert [row[2] for row in lab.runs("start") if row[0] == "exhausted"] == ["1", "2"]
    finally:
        assert worker.stop() == 0


def test_expired_job_is_not_run_and_deleted(bsd: Beanstalkd, lab: Lab) -> None:
    """A job reserved after its expires time publishes failed/expired and is deleted, not
    buried, and its job type never runs."""
    worker = lab.worker(bsd.address)
    try:
        put_raw(bsd.port, lab.body("sleep", "stale", expires="2020-01-01T00:00:00Z"))
        doc = wait_for_status(lab.result("stale"), ("failed",), timeout=30)
        assert doc["error"]["code"] == "expired"
        worker.wait_event("job_deleted", job_id="stale", code="expired")
        stats = bsd.tube_stats()
        assert stats["current-jobs-buried"] == 0 and stats["current-jobs-ready"] == 0
        assert lab.runs() == []
    finally:
        worker.stop()


def test_plugin_that_fails_to_import(bsd: Beanstalkd, lab: Lab) -> None:
    """A job type whose module fails to import fails its jobs with plugin_unavailable, and
    `jobrunner plugins` lists it with the import error."""
    env = {**os.environ, **lab.env()}
    listing = subprocess.run(
        jobrunner_cmd("plugins"), capture_output=True, text=True, timeout=60, env=env
    )
    line = next(x for x in listing.stdout.splitlines() if "test_broken" in x)
    assert "FAILED TO LOAD" in line and "jrtestjobs_no_such_dependency" in line
    assert "jrtestjobs 1.0" in next(x for x in listing.stdout.splitlines() if "test_sleep" in x)
    worker = lab.worker(bsd.address)
    try:
        put_raw(bsd.port, lab.body("broken", "broken"))
        doc = wait_for_status(lab.result("broken"), ("failed",), timeout=30)
        assert doc["error"]["code"] == "plugin_unavailable"
        assert "jrtestjobs_no_such_dependency" in doc["error"]["message"]
        worker.wait_event("job_buried", job_id="broken", code="plugin_unavailable")
    finally:
        worker.stop()


def test_children_are_reused_and_recycled(bsd: Beanstalkd, lab: Lab) -> None:
    """A child runs several jobs, is replaced after --max-jobs-per-child jobs and when its
    memory grew past --max-memory-per-child."""
    worker = lab.worker(bsd.address, "--max-jobs-per-child", "3", "--max-memory-per-child", "100")
    try:
        pids = []
        for n in range(4):
            put_raw(bsd.port, lab.body("pid", f"p{n}"))
            pids.append(wait_for_status(lab.result(f"p{n}"), ("done",), timeout=30)["data"]["pid"])
        assert pids[0] == pids[1] == pids[2] != pids[3]
        assert "--max-jobs-per-child" in worker.wait_event("child_recycled")[0]["reason"]
        put_raw(bsd.port, lab.body("memory_hog", "hog", {"mib": 160}))
        hog = wait_for_status(lab.result("hog"), ("done",), timeout=30)["data"]["pid"]
        assert hog == pids[3]
        put_raw(bsd.port, lab.body("pid", "fresh"))
        fresh = wait_for_status(lab.result("fresh"), ("done",), timeout=30)["data"]["pid"]
        assert fresh != hog
        recycled = worker.wait_event("child_recycled", count=2)[1]
        assert "--max-memory-per-child 100" in recycled["reason"]
        wait_for(lambda: not pid_alive(hog), 10, what="old child gone")
    finally:
        worker.stop()


def test_log_events_carry_job_tube_attempt_and_durations(bsd: Beanstalkd, lab: Lab) -> None:
    """At info a job done is one JSON event, job_deleted, with job id, type, tube, attempt,
    beanstalkd id and its durations; the steps (reserved, fetched, started, published) are
    debug events of the same job."""
    worker = lab.worker(bsd.address)
    debug = lab.worker(bsd.address, "--log-level", "debug", "--tube", "debug")
    try:
        put_raw(bsd.port, lab.body("sleep", "logged", {"seconds": 0.2}))
        put_raw(bsd.port, lab.body("sleep", "stepped", {"seconds": 0.2}), tube="debug")
        wait_for_status(lab.result("logged"), ("done",), timeout=30)
        event = worker.wait_event("job_deleted", job_id="logged")[0]
        assert [e["event"] for e in worker.events if e.get("job_id") == "logged"] == ["job_deleted"]
        assert event["job_type"] == "test_sleep", event
        assert event["tube"] == "default" and event["attempt"] == 1, event
        assert event["beanstalk_id"] >= 1 and event["level"] == "info", event
        assert event["fetch_s"] >= 0 and event["run_s"] >= 0.2, event
        assert event["duration_s"] >= 0.2, event
        debug.wait_event("job_deleted", job_id="stepped")
        steps = [
            e
            for e in debug.events
            if e.get("job_id") == "stepped"
            and e["event"].startswith("job_")  # (libraries' debug records carry the id too)
            and e["event"] not in ("job_progress", "job_type_loaded")
        ]
        assert [e["event"] for e in steps] == [
            "job_reserved",
            "job_fetched",
            "job_started",
            "job_published",
            "job_deleted",
        ]
        for step in steps[:-1]:
            assert step["level"] == "debug", step
            assert step["job_type"] == "test_sleep" and step["tube"] == "debug", step
            assert step["attempt"] == 1, step
    finally:
        worker.stop()
        debug.stop()
