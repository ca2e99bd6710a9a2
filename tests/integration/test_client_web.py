"""The web server's side against a real beanstalkd, results server and worker:
tickets, status, cancellation, reconnects, bulk submission, asyncio."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from pathlib import Path

import pytest

from jobrunner.client import AsyncClient, Client, Ticket
from jobrunner.errors import InvalidJob, QueueError
from tests.support import Beanstalkd, Lab, ResultsServer, jobrunner_cmd, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def web_lab(tmp_path: Path, results_server: ResultsServer) -> Lab:
    """A lab whose results directory is served over real HTTP (for Client.status)."""
    return Lab(tmp_path, base_url=results_server.base_url)


def _submit(client: Client, lab: Lab, job_type: str, name: str, **kwargs: object):  # type: ignore[no-untyped-def]
    params = {"runs_file": str(lab.runs_file), **dict(kwargs.pop("params", {}) or {})}  # type: ignore[call-overload]
    return client.submit(
        f"test_{job_type}", lab.input_url, lab.base_url + f"{name}.json", params, id=name, **kwargs
    )


def test_ticket_round_trips_and_refuses_garbage() -> None:
    """A ticket string parses back to the same server, ids and result URL; junk is refused."""
    ticket = Ticket("[::1]:11300", 42, "job:17@a", "https://r.example/x~y.json?q=1")
    text = str(ticket)
    assert text.startswith("jr1.") and all(c.isalnum() or c in "-_." for c in text)
    assert Ticket.parse(text) == ticket
    for bad in ("jr1.", "jr1.!!!", "jr1.e30", "job-17", "jr1." + "A" * 30):
        with pytest.raises(ValueError):
            Ticket.parse(bad)


def test_status_follows_a_job_from_queued_to_done(beanstalkd: Beanstalkd, web_lab: Lab) -> None:
    """A ticket's status is queued before a worker runs, running (with progress) while it
    runs, done with the document after; a delayed job says delayed."""
    with Client(beanstalkd.address) as client:
        job = _submit(client, web_lab, "sleep", "s1", params={"seconds": 3})
        assert job == "s1" and job.job_id == "s1"
        assert Ticket.parse(job.ticket).beanstalk_id == job.beanstalk_id
        assert client.status(job.ticket).state == "queued"
        later = _submit(client, web_lab, "sleep", "s2", params={"seconds": 0}, delay=3600)
        assert client.status(later.ticket).state == "delayed"
        worker = web_lab.worker(beanstalkd.address)
        try:
            running = wait_for(
                lambda: (s := client.status(job.ticket)).state == "running" and s, what="running"
            )
            assert running.tube == "default" and not running.final
            wait_for(lambda: client.status(job.ticket).progress, what="a progress document")
            done = wait_for(lambda: (s := client.status(job.ticket)).final and s, what="done")
            assert done.state == "done" and done.document["data"]["slept"] == 3.0
        finally:
            worker.stop()


def test_status_failed_buried_and_unknown(beanstalkd: Beanstalkd, web_lab: Lab) -> None:
    """A plugin error is failed (with its code) although the job lies buried; a job buried
    without a document is buried; a ticket nobody knows is unknown."""
    with Client(beanstalkd.address) as client:
        worker = web_lab.worker(beanstalkd.address)
        try:
            bad = _submit(client, web_lab, "fail", "f1")
            failed = wait_for(lambda: (s := client.status(bad.ticket)).final and s, what="failed")
            assert failed.state == "failed" and failed.error["code"] == "plugin_error"
            assert failed.tube == "default"  # still buried: the operator can kick it
        finally:
            worker.stop()
        # Buried by hand, no document: nobody can tell what happened but beanstalkd.
        lost = _submit(client, web_lab, "sleep", "b1")
        from jobrunner.queue import Connection

        conn = Connection(beanstalkd.address, watch=["default"])
        reserved = conn.reserve(5)
        assert reserved is not None and reserved.id == lost.beanstalk_id
        conn.bury(reserved.id, 0)
        conn.close()
        assert client.status(lost.ticket).state == "buried"
        ghost = Ticket(beanstalkd.address, 9999, "ghost", web_lab.base_url + "ghost.json")
        assert client.status(ghost).state == "unknown"
        # The same beanstalkd id naming another job (a restart without binlog) is not it.
        other = Ticket(beanstalkd.address, lost.beanstalk_id, "other", web_lab.base_url + "o.json")
        assert client.status(other).state == "unknown"


def test_submit_survives_a_beanstalkd_restart_between_two_submits(bsd: Beanstalkd) -> None:
    """One client, one process: submit, restart beanstalkd, submit again — the second put
    succeeds (reconnect with back-off) and both jobs are there."""
    with Client(bsd.address) as client:
        first = client.submit("echo", "http://in.test/a", "http://out.test/a.json")
        bsd.restart()
        second = client.submit("echo", "http://in.test/b", "http://out.test/b.json")
        assert second.server == bsd.address and second.beanstalk_id > first.beanstalk_id
    assert bsd.tube_stats()["current-jobs-ready"] == 2


def test_client_gives_up_with_queue_error_when_beanstalkd_stays_down(bsd: Beanstalkd) -> None:
    """With beanstalkd gone for good, submit retries for retry_for seconds, then raises
    QueueError saying the connection failed."""
    with Client(bsd.address, retry_for=1.0) as client:
        client.submit("echo", "http://in.test/a", "http://out.test/a.json")
        bsd.stop()
        with pytest.raises(QueueError, match="no beanstalkd server accepted"):
            client.submit("echo", "http://in.test/b", "http://out.test/b.json")


def test_one_client_shared_by_threads_across_a_restart(bsd: Beanstalkd) -> None:
    """Eight threads share one client and submit 50 jobs each while beanstalkd restarts:
    every submit returns a distinct job, all 400 are in the tube."""
    errors: list[BaseException] = []
    got: list[str] = []
    lock = threading.Lock()
    with Client(bsd.address, retry_for=15.0) as client:

        def run() -> None:
            try:
                for _ in range(50):
                    job = client.submit("echo", "http://in.test/a", "http://out.test/a.json")
                    with lock:
                        got.append(job.ticket)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(8)]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(got) >= 100, what="a quarter of the jobs")
        bsd.restart()
        for thread in threads:
            thread.join(60)
    assert not errors
    assert len(set(got)) == 400
    # A put sent just before the restart may have been stored and its answer lost:
    # then it is put again (at least once, never lost).
    assert 400 <= bsd.tube_stats()["current-jobs-ready"] <= 408


def test_submit_many_puts_every_job_in_order(beanstalkd: Beanstalkd) -> None:
    """submit_many validates all jobs first, puts 1,200 pipelined, and returns them in
    order with distinct beanstalkd ids and working tickets."""
    specs = [
        {
            "type": "echo",
            "input": f"http://in.test/{i}",
            "result": f"http://out.test/{i}.json",
            "params": {"i": i},
            "id": f"bulk-{i}",
        }
        for i in range(1200)
    ]
    with Client(beanstalkd.address) as client:
        with pytest.raises(InvalidJob, match="job 2:"):
            client.submit_many([specs[0], specs[1], {**specs[2], "input": "not a url"}])
        assert beanstalkd.tube_stats().get("total-jobs", 0) == 0  # nothing was put
        jobs = client.submit_many(specs, tube="bulk", priority=5)
        assert [str(j) for j in jobs] == [f"bulk-{i}" for i in range(1200)]
        assert len({j.beanstalk_id for j in jobs}) == 1200
        assert client.status(jobs[-1].ticket).state == "queued"
    stats = beanstalkd.tube_stats("bulk")
    assert stats["current-jobs-ready"] == 1200


def test_submit_many_across_a_restart_loses_nothing(bsd: Beanstalkd) -> None:
    """A submit_many after a beanstalkd restart reconnects and puts every job."""
    specs = [
        {"type": "echo", "input": "http://in.test/", "result": f"http://o.test/{i}.json"}
        for i in range(300)
    ]
    with Client(bsd.address) as client:
        client.submit_many(specs[:10])
        bsd.restart()
        client.submit_many(specs)
    assert bsd.tube_stats()["current-jobs-ready"] == 310


def test_async_client_has_the_same_methods(beanstalkd: Beanstalkd, web_lab: Lab) -> None:
    """AsyncClient submits, bulk-submits, tells status and cancels from an event loop."""

    async def scenario() -> tuple[str, str, int, str]:
        async with AsyncClient(beanstalkd.address) as client:
            job = await client.submit("echo", web_lab.input_url, web_lab.base_url + "a.json")
            many = await client.submit_many(
                [
                    {
                        "type": "echo",
                        "input": web_lab.input_url,
                        "result": web_lab.base_url + "b.json",
                    }
                ]
            )
            state = (await client.status(job.ticket)).state
            cancelled = await client.cancel(many[0].ticket)
            return job, state, len(many), cancelled.outcome

    _, state, count, outcome = asyncio.run(scenario())
    assert state == "queued" and count == 1 and outcome == "cancelled"


def _busy(beanstalkd: Beanstalkd) -> int:
    stats = beanstalkd.tube_stats()
    return sum(stats.get(f"current-jobs-{s}", 0) for s in ("ready", "reserved", "delayed"))


def _tubes(beanstalkd: Beanstalkd) -> list[str]:
    from jobrunner.queue import Connection

    conn = Connection(beanstalkd.address)
    try:
        return conn.tubes()
    finally:
        conn.close()


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        jobrunner_cmd(*args), capture_output=True, text=True, timeout=timeout, check=False
    )


def test_cli_status_and_cancel_take_the_ticket_submit_prints(
    beanstalkd: Beanstalkd, web_lab: Lab
) -> None:
    """``submit`` prints the ticket; ``status TICKET`` says queued (JSON too); ``cancel
    TICKET`` cancels (exit 0) and a second cancel says it is left alone (exit 1)."""
    submitted = _cli(
        "submit",
        "--beanstalk",
        beanstalkd.address,
        "--type",
        "echo",
        "--input",
        web_lab.input_url,
        "--result",
        web_lab.base_url + "cli.json",
        "--delay",
        "600",
    )
    assert submitted.returncode == 0, submitted.stderr
    ticket = submitted.stderr.split("ticket ", 1)[1].split()[0]
    assert Ticket.parse(ticket).job_id == submitted.stdout.strip()
    shown = _cli("status", ticket)
    assert shown.returncode == 0 and shown.stdout.startswith("delayed: job ")
    assert json.loads(_cli("status", ticket, "--json").stdout)["state"] == "delayed"
    cancelled = _cli("cancel", ticket)
    assert cancelled.returncode == 0 and "is cancelled" in cancelled.stdout
    assert json.loads(_cli("status", ticket, "--json").stdout)["state"] == "cancelled"


@pytest.mark.parametrize(
    "ticket",
    ["jr1.", "jr1.!!!", "jr1.bm90IGpzb24", "jr1.WzEsMiwzXQ", "jr1." + "A" * 5000],
)
def test_cli_refuses_damaged_tickets(ticket: str) -> None:
    """A damaged ticket is bad usage (exit 2) with a message, for status and cancel."""
    for command in ("status", "cancel"):
        done = _cli(command, ticket)
        assert done.returncode == 2, done.stderr
        assert "not a jobrunner ticket" in done.stderr


def test_status_of_a_ticket_whose_server_is_gone(bsd: Beanstalkd, web_lab: Lab) -> None:
    """A ticket naming a beanstalkd that is down: status fails with a clear message
    (exit 1) after the bounded retries, and cancel likewise; nothing hangs."""
    with Client(bsd.address) as client:
        job = _submit(client, web_lab, "sleep", "gone")
    bsd.stop()
    for command in ("status", "cancel"):
        done = _cli(command, job.ticket, timeout=30)
        assert done.returncode == 1
        assert bsd.address in done.stderr and "beanstalkd" in done.stderr
