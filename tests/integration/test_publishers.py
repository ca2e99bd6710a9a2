"""Publishers through real pieces: file + rsync to a real rsync daemon and a directory,
http PUT to a real ``jobrunner serve --put-token`` results host."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobrunner import Client
from jobrunner.config import Config
from jobrunner.errors import PublishFailed, ResultBlocked
from jobrunner.publish.http import HttpPublisher
from tests.support import (
    Beanstalkd,
    ResultsServer,
    RsyncDaemon,
    Worker,
    free_port,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.integration

TOKEN = "integration-token"


@pytest.fixture
def rsync_daemon(tmp_path: Path) -> Iterator[RsyncDaemon]:
    """A real rsync daemon on loopback with one writable module."""
    daemon = RsyncDaemon(tmp_path / "rsyncd")
    yield daemon
    daemon.stop()


@pytest.fixture
def file_input(tmp_path: Path) -> tuple[Path, str]:
    """An input document as a file: URL (workers get --allow-file-inputs DIR)."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "in.json").write_text('{"readings": [[0, 1.5]]}')
    return inputs, (inputs / "in.json").as_uri()


def test_file_and_rsync_replicate_to_every_peer(
    beanstalkd: Beanstalkd,
    rsync_daemon: RsyncDaemon,
    file_input: tuple[Path, str],
    tmp_path: Path,
) -> None:
    """With file + rsync, the result is readable with the same bytes from every peer (a
    daemon and a directory), over HTTP too; a dead peer is logged and does not fail the job."""
    inputs, input_url = file_input
    results = tmp_path / "results"
    local_peer = tmp_path / "peer-dir"
    dead_peer = f"rsync://127.0.0.1:{free_port()}/results/"
    base_url = "http://worker1.test/results/"
    worker = Worker(
        beanstalkd.address,
        results,
        base_url,
        "--allow-file-inputs",
        str(inputs),
        "--publisher",
        "file",
        "--publisher",
        "rsync",
        "--rsync-peer",
        rsync_daemon.url,
        "--rsync-peer",
        str(local_peer),
        "--rsync-peer",
        dead_peer,
        "--rsync-timeout",
        "10",
    )
    peer_server = ResultsServer(rsync_daemon.path)
    try:
        with Client(beanstalkd.address) as client:
            job_id = client.submit("echo", input_url, base_url + "u7/j1.json", {"n": 1})
        doc = wait_for_status(results / "u7" / "j1.json")
        assert doc["status"] == "done", doc
        worker.wait_event("job_deleted", job_id=job_id)
        local = (results / "u7" / "j1.json").read_bytes()
        for peer in (rsync_daemon.path, local_peer):
            target = peer / "u7" / "j1.json"
            wait_for(
                lambda target=target: target.exists() and target.read_bytes() == local,
                timeout=20,
                what=f"{target} replicated",
            )
            assert sorted(p.name for p in target.parent.iterdir()) == ["j1.json"]
        served = httpx.get(peer_server.base_url + "u7/j1.json", timeout=5)
        assert served.status_code == 200
        assert served.content == local
        # rsync's temp files are dot-named: a results server never serves them.
        (rsync_daemon.path / "u7" / ".j1.json.Ab12Cd").write_bytes(local[:10])
        assert httpx.get(peer_server.base_url + "u7/.j1.json.Ab12Cd", timeout=5).status_code == 404
        failed = worker.wait_event("rsync_push_failed", timeout=20)
        assert any(dead_peer in e.get("peer", "") for e in failed)
        assert beanstalkd.tube_stats().get("current-jobs-buried", 0) == 0
    finally:
        peer_server.stop()
        worker.stop()


def test_rsync_required_fails_the_job_when_a_peer_fails(
    beanstalkd: Beanstalkd, file_input: tuple[Path, str], tmp_path: Path
) -> None:
    """With --rsync-required an unreachable peer fails the publication: the job is not
    deleted as done but, attempts used up, buried with a failed document written locally."""
    inputs, input_url = file_input
    results = tmp_path / "results"
    base_url = "http://worker1.test/results/"
    worker = Worker(
        beanstalkd.address,
        results,
        base_url,
        "--allow-file-inputs",
        str(inputs),
        "--publisher",
        "file",
        "--publisher",
        "rsync",
        "--rsync-peer",
        f"rsync://127.0.0.1:{free_port()}/results/",
        "--rsync-required",
        "--rsync-timeout",
        "5",
    )
    try:
        with Client(beanstalkd.address) as client:
            client.submit("echo", input_url, base_url + "req.json", max_attempts=1)
        wait_for(
            lambda: beanstalkd.tube_stats().get("current-jobs-buried") == 1,
            timeout=30,
            what="job buried",
        )
        doc = wait_for_status(results / "req.json", ("failed",))
        assert doc["error"]["code"] == "retries_exhausted"
        assert "publish_failed" in doc["error"]["message"]
        assert "rsync" in doc["error"]["message"]
    finally:
        worker.stop()


def test_http_publisher_puts_to_a_results_host(
    beanstalkd: Beanstalkd, file_input: tuple[Path, str], tmp_path: Path
) -> None:
    """With --publisher http the documents of two jobs land on a `jobrunner serve
    --put-token` host over one kept-alive connection; a URL on another origin is refused."""
    inputs, input_url = file_input
    host = ResultsServer(tmp_path / "host", "--put-token", TOKEN)
    worker = Worker(
        beanstalkd.address,
        tmp_path / "unused-results",
        "http://unused.test/",
        "--allow-file-inputs",
        str(inputs),
        "--publisher",
        "http",
        "--put-origin",
        host.base_url,
        env={"JOBRUNNER_HTTP_TOKEN": TOKEN},
    )
    try:
        with Client(beanstalkd.address) as client:
            job_id = client.submit("echo", input_url, host.base_url + "w1/r1.json", {"k": 2})
        doc = wait_for(
            lambda: (d := host.get_json("w1/r1.json")) and d.get("status") == "done" and d,
            timeout=20,
            what="done document on the results host",
        )
        assert doc["id"] == job_id
        assert doc["data"]["params"] == {"k": 2}
        worker.wait_event("job_deleted", job_id=job_id)
        assert json.loads((tmp_path / "host" / "w1" / "r1.json").read_bytes()) == doc
        with Client(beanstalkd.address) as client:
            second = client.submit("echo", input_url, host.base_url + "w1/r2.json")
        worker.wait_event("job_deleted", job_id=second)
        stored = host.process.wait_event("result_stored", path="w1/r2.json")
        stored = host.process.find("result_stored")
        assert {e["path"] for e in stored} == {"w1/r1.json", "w1/r2.json"}
        assert len({e["client"] for e in stored}) == 1  # one connection across both jobs
        assert not (tmp_path / "unused-results" / "w1").exists()

        other = f"http://127.0.0.1:{free_port()}/r2.json"
        with Client(beanstalkd.address) as client:
            client.submit("echo", input_url, other)
        worker.wait_event("job_buried", code="result_refused")
    finally:
        worker.stop()
        host.stop()


def test_results_host_refuses_puts_without_the_token(
    results_server: ResultsServer, tmp_path: Path
) -> None:
    """A results host refuses a publisher with the wrong token (401, permanent failure),
    a body that is not a result document (400), a path a directory stands at (409, the
    permanent result_blocked), and PUT altogether without --put-token (405)."""
    host = ResultsServer(tmp_path / "host", "--put-token", TOKEN)
    body = json.dumps(
        {
            "v": 1,
            "id": "j1",
            "type": "echo",
            "status": "done",
            "timestamp": "2026-11-28T12:00:00.000000Z",
        }
    ).encode()
    try:
        settings = {"put_origin": (host.base_url,), "http_token": "wrong"}
        publisher = HttpPublisher(Config(**settings))  # type: ignore[arg-type]
        with pytest.raises(PublishFailed) as info:
            publisher.publish(host.base_url + "r.json", body)
        publisher.close()
        assert not info.value.retryable
        assert "401" in info.value.message
        assert not (tmp_path / "host" / "r.json").exists()

        good = HttpPublisher(Config(put_origin=(host.base_url,), http_token=TOKEN))
        good.publish(host.base_url + "r.json", body)
        with pytest.raises(PublishFailed, match="400"):
            good.publish(host.base_url + "bad.json", b'{"status": "nonsense"}')
        (tmp_path / "host" / "taken.json").mkdir()
        with pytest.raises(ResultBlocked, match="409") as blocked:
            good.publish(host.base_url + "taken.json", body)
        assert not blocked.value.retryable
        good.close()
        assert (tmp_path / "host" / "r.json").read_bytes() == body

        answer = httpx.put(
            results_server.base_url + "r.json",
            content=body,
            headers={"authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        assert answer.status_code == 405
    finally:
        host.stop()


def test_blocked_result_path_still_gets_its_failed_document_through_other_publishers(
    beanstalkd: Beanstalkd, file_input: tuple[Path, str], tmp_path: Path
) -> None:
    """With --publisher file --publisher http, a result path blocked by a directory in the
    results directory fails the job as result_blocked (buried, never retried), and its
    failed document still reaches the HTTP results host."""
    inputs, input_url = file_input
    host = ResultsServer(tmp_path / "host", "--put-token", TOKEN)
    results = tmp_path / "results"
    (results / "w1" / "blocked.json").mkdir(parents=True)  # a directory where the file goes
    worker = Worker(
        beanstalkd.address,
        results,
        host.base_url,
        "--allow-file-inputs",
        str(inputs),
        "--publisher",
        "file",
        "--publisher",
        "http",
        "--put-origin",
        host.base_url,
        env={"JOBRUNNER_HTTP_TOKEN": TOKEN},
    )
    try:
        with Client(beanstalkd.address) as client:
            job_id = client.submit("echo", input_url, host.base_url + "w1/blocked.json")
        worker.wait_event("job_buried", job_id=job_id, code="result_blocked")
        doc = wait_for(
            lambda: (d := host.get_json("w1/blocked.json")) and d,
            timeout=20,
            what="failed document on the results host",
        )
        assert doc["status"] == "failed"
        assert doc["error"]["code"] == "result_blocked"
        assert doc["error"]["retryable"] is False
        assert (results / "w1" / "blocked.json").is_dir()  # left as it was
        assert beanstalkd.tube_stats()["current-jobs-buried"] == 1
    finally:
        worker.stop()
        host.stop()
