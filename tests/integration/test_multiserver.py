"""Several beanstalkd servers: the client spreads and fails over, workers reserve from all."""

from __future__ import annotations

import json

import pytest

from jobrunner import Client
from jobrunner.errors import QueueError
from tests.support import Beanstalkd, ResultsServer, Worker, wait_for, wait_for_status

pytestmark = pytest.mark.integration


@pytest.fixture
def two_servers() -> list[Beanstalkd]:
    servers = [Beanstalkd().start(), Beanstalkd().start()]
    yield servers
    for server in servers:
        server.stop()


def _ready(server: Beanstalkd, tube: str = "default") -> int:
    return server.tube_stats(tube).get("current-jobs-ready", 0)


def test_client_spreads_jobs_by_id_and_fails_over(two_servers: list[Beanstalkd]) -> None:
    """Jobs are spread over both servers (stable by id); with one killed, submits go on."""
    a, b = two_servers
    client = Client([a.address, b.address])
    homes = {}
    for n in range(40):
        submitted = client.submit(
            "echo", "http://in.test/x", "http://out.test/r.json", id=f"job-{n}"
        )
        homes[f"job-{n}"] = submitted.server
    assert _ready(a) + _ready(b) == 40
    assert _ready(a) > 5 and _ready(b) > 5  # spread, not all on one server
    # The same id goes to the same server again (a retried submit lands alike).
    again = client.submit("echo", "http://in.test/x", "http://out.test/r.json", id="job-3")
    assert again.server == homes["job-3"]
    a.stop()
    for n in range(40, 60):
        submitted = client.submit(
            "echo", "http://in.test/x", "http://out.test/r.json", id=f"job-{n}"
        )
        assert submitted.server == b.address
    assert _ready(b) == sum(1 for s in homes.values() if s == b.address) + 1 + 20
    b.stop()
    with pytest.raises(QueueError, match="no beanstalkd server accepted"):
        client.submit("echo", "http://in.test/x", "http://out.test/r.json")
    client.close()


def test_worker_reserves_from_every_server_and_survives_one_down(
    two_servers: list[Beanstalkd], results_server: ResultsServer
) -> None:
    """A worker configured with two servers runs jobs from both, and goes on when one dies."""
    a, b = two_servers
    (results_server.results_dir / "in.json").write_text(json.dumps({"n": 1}))
    input_url = results_server.base_url + "in.json"
    worker = Worker(
        [a.address, b.address], results_server.results_dir, results_server.base_url, concurrency=2
    )
    try:
        with Client([a.address, b.address]) as client:
            ids = [
                client.submit("echo", input_url, results_server.base_url + f"r{n}.json")
                for n in range(10)
            ]
            assert {i.server for i in ids} == {a.address, b.address}
            for n in range(10):
                assert (
                    wait_for_status(results_server.results_dir / f"r{n}.json")["status"] == "done"
                )
            a.stop()
            later = [
                client.submit("echo", input_url, results_server.base_url + f"s{n}.json")
                for n in range(5)
            ]
            assert {i.server for i in later} == {b.address}
            for n in range(5):
                assert (
                    wait_for_status(results_server.results_dir / f"s{n}.json")["status"] == "done"
                )
            worker.wait_event("queue_disconnected", server=a.address)
            # The server comes back (same port): the worker reconnects and takes its jobs.
            a.start()
            client_a = Client(a.address)
            client_a.submit("echo", input_url, results_server.base_url + "back.json")
            client_a.close()
            assert (
                wait_for_status(results_server.results_dir / "back.json", timeout=40)["status"]
                == "done"
            )
            wait_for(
                lambda: worker.find("queue_reconnected", server=a.address), what="reconnect logged"
            )
        # One event per state change, not one per attempt.
        assert len(worker.find("queue_disconnected", server=a.address)) <= 2 * 2
    finally:
        assert worker.stop() == 0
