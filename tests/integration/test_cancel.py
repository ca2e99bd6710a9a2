"""Cancelling jobs against a real beanstalkd, results server and worker: a queued, a
delayed, a running (with its process tree) and a finished job."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.client import Client
from tests.integration.test_client_web import _busy, _submit, _tubes
from tests.support import Beanstalkd, Lab, ResultsServer, pid_alive, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def web_lab(tmp_path: Path, results_server: ResultsServer) -> Lab:
    """A lab whose results directory is served over real HTTP (for Client.status)."""
    return Lab(tmp_path, base_url=results_server.base_url)


def test_cancel_a_queued_job_never_runs_it_and_publishes_cancelled(
    beanstalkd: Beanstalkd, web_lab: Lab
) -> None:
    """Cancelling a queued job: it says cancelled at once, a worker never runs it, the
    result URL gets a failed document with code cancelled, and the queue is left empty."""
    with Client(beanstalkd.address) as client:
        job = _submit(client, web_lab, "sleep", "q1", params={"seconds": 0})
        # An id with characters a tube name may not have: the marker's tube is a hash.
        later = _submit(client, web_lab, "sleep", "d1@x+y", params={"seconds": 0}, delay=3600)
        first = client.cancel(job.ticket)
        assert first.outcome == "cancelled" and first.status.state == "cancelled"
        assert client.cancel(later.ticket).outcome == "cancelled"
        worker = web_lab.worker(beanstalkd.address)
        try:
            for ticket in (job.ticket, later.ticket):
                doc = wait_for(lambda t=ticket: client.status(t).document, what="cancelled doc")
                assert doc["status"] == "failed" and doc["error"]["code"] == "cancelled"
                assert client.status(ticket).state == "cancelled"
            wait_for(lambda: not _busy(beanstalkd), what="an empty queue")
        finally:
            worker.stop()
        assert web_lab.runs("start") == []
        again = client.cancel(job.ticket)
        assert again.outcome == "finished" and "left alone" in again.message
    assert not [t for t in _tubes(beanstalkd) if t.startswith("jobrunner.cancel.")]


def test_cancel_a_running_job_stops_its_process_tree(beanstalkd: Beanstalkd, web_lab: Lab) -> None:
    """Cancelling a running job that spawned a helper: within seconds the child and the
    helper are gone, the document says cancelled, the job is deleted (not buried), and
    the same worker runs the next job."""
    with Client(beanstalkd.address) as client:
        worker = web_lab.worker(beanstalkd.address)
        try:
            job = _submit(client, web_lab, "hang", "h1", params={"spawn": True})
            wait_for(lambda: web_lab.runs("spawned"), what="the helper")
            pids = [int(row[1]) for row in web_lab.runs()]
            assert client.status(job.ticket).state == "running"
            done = client.cancel(job.ticket, wait=15)
            assert done.outcome == "cancelled", done.message
            assert done.status.error["code"] == "cancelled"
            wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=10, what="tree gone")
            wait_for(lambda: not _busy(beanstalkd), what="job deleted")
            assert beanstalkd.tube_stats()["current-jobs-buried"] == 0
            follow = _submit(client, web_lab, "sleep", "next", params={"seconds": 0})
            wait_for(lambda: client.status(follow.ticket).state == "done", what="next job")
        finally:
            worker.stop()


def test_cancel_a_finished_job_leaves_it_alone(beanstalkd: Beanstalkd, web_lab: Lab) -> None:
    """Cancelling a done job changes nothing and says so; no marker is left behind."""
    with Client(beanstalkd.address) as client:
        worker = web_lab.worker(beanstalkd.address)
        try:
            job = _submit(client, web_lab, "sleep", "fin", params={"seconds": 0})
            wait_for(lambda: client.status(job.ticket).state == "done", what="done")
        finally:
            worker.stop()
        answer = client.cancel(job.ticket)
        assert answer.outcome == "finished" and "already finished (done)" in answer.message
        assert client.status(job.ticket).document["status"] == "done"
        # A marker left by a cancel that came a moment too late is cleared by status.
        from jobrunner.queue import Connection

        conn = Connection(beanstalkd.address)
        conn.request_cancel(str(job))
        conn.close()
        late = client.status(job.ticket)
        assert late.state == "done" and not late.cancel_requested
    assert not [t for t in _tubes(beanstalkd) if t.startswith("jobrunner.cancel.")]
