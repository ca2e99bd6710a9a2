"""A job's whole path: client or raw socket → beanstalkd → worker → child → file → HTTP."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from jobrunner import Client
from tests.support import (
    IN_CI,
    Beanstalkd,
    ResultsServer,
    Worker,
    jobrunner_cmd,
    put_raw,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.integration

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def _write_input(server: ResultsServer, name: str, doc: object) -> str:
    (server.results_dir / name).write_text(json.dumps(doc))
    return server.base_url + name


def test_job_from_client_is_published_and_served(
    beanstalkd: Beanstalkd, results_server: ResultsServer, inputs_server: ResultsServer
) -> None:
    """A job submitted with Client runs on a worker; its result is served with a UTC timestamp."""
    input_url = _write_input(inputs_server, "meter.json", {"readings": [[0, 1.5], [900, 2.5]]})
    worker = Worker(beanstalkd.address, results_server.results_dir, results_server.base_url)
    try:
        with Client(beanstalkd.address) as client:
            job_id = client.submit(
                "echo",
                input_url,
                results_server.base_url + "a/b/r1.json",
                {"x": 1},
                meta={"user": 7},
            )
        doc = wait_for_status(results_server.results_dir / "a" / "b" / "r1.json")
        assert doc["status"] == "done"
        assert doc["id"] == job_id
        assert doc["data"] == {"input": {"readings": [[0, 1.5], [900, 2.5]]}, "params": {"x": 1}}
        assert RFC3339_UTC.match(doc["timestamp"])
        assert doc["meta"] == {"user": 7}
        assert doc["attempt"] == 1
        assert doc["provenance"]["inputs"][0]["url"] == input_url
        assert len(doc["provenance"]["inputs"][0]["sha256"]) == 64
        served = httpx.get(results_server.base_url + "a/b/r1.json", timeout=5)
        assert served.status_code == 200
        assert served.headers["content-type"].startswith("application/json")
        assert served.json() == doc
        wait_for(
            lambda: beanstalkd.tube_stats().get("current-jobs-reserved") == 0, what="job deleted"
        )
        stats = beanstalkd.tube_stats()
        assert stats["current-jobs-ready"] == 0
        assert stats["current-jobs-buried"] == 0
        worker.wait_event("job_deleted", job_id=job_id)
    finally:
        assert worker.stop() == 0


def test_job_put_over_raw_socket_runs(
    beanstalkd: Beanstalkd, results_server: ResultsServer, inputs_server: ResultsServer
) -> None:
    """A job document put by a non-Python client over the bare protocol runs end to end."""
    input_url = _write_input(inputs_server, "in.json", [1, 2, 3])
    body = json.dumps(
        {
            "id": "php-client-1",
            "type": "echo",
            "input": input_url,
            "result": results_server.base_url + "raw.json",
            "created": "2026-11-28T12:00:00Z",
        }
    ).encode()
    worker = Worker(beanstalkd.address, results_server.results_dir, results_server.base_url)
    try:
        put_raw(beanstalkd.port, body)
        doc = wait_for_status(results_server.results_dir / "raw.json")
        assert doc["status"] == "done"
        assert doc["data"]["input"] == [1, 2, 3]
        worker.wait_event("job_deleted", job_id="php-client-1")
        assert beanstalkd.tube_stats().get("total-jobs") == 1
        assert beanstalkd.tube_stats().get("current-jobs-ready") == 0
    finally:
        worker.stop()


def test_several_named_inputs(
    beanstalkd: Beanstalkd, results_server: ResultsServer, inputs_server: ResultsServer
) -> None:
    """A job naming several inputs gets a dict of decoded inputs, CSV as bytes → text."""
    load = _write_input(inputs_server, "load.json", [[0, 1]])
    (inputs_server.results_dir / "pv.csv").write_text("ts,value\n0,2\n")
    worker = Worker(beanstalkd.address, results_server.results_dir, results_server.base_url)
    try:
        with Client(beanstalkd.address) as client:
            client.submit(
                "echo",
                {"load": load, "pv": inputs_server.base_url + "pv.csv"},
                results_server.base_url + "multi.json",
            )
        doc = wait_for_status(results_server.results_dir / "multi.json")
        assert doc["status"] == "done", doc
        assert doc["data"]["input"] == {"load": [[0, 1]], "pv": "ts,value\n0,2\n"}
        names = sorted(i["name"] for i in doc["provenance"]["inputs"])
        assert names == ["load", "pv"]
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("body", "code", "has_document"),
    [
        (b"\xff\xfe not utf-8", "invalid_job", False),
        (
            json.dumps(
                {
                    "id": "x1",
                    "type": "no_such_type",
                    "input": "http://127.0.0.1:1/in",
                    "result": "RESULT",
                    "created": "2026-01-01T00:00:00Z",
                }
            ).encode(),
            "unknown_type",
            True,
        ),
        (
            json.dumps(
                {
                    "id": "x2",
                    "tpye": "echo",
                    "input": "http://127.0.0.1:1/in",
                    "result": "RESULT",
                    "created": "2026-01-01T00:00:00Z",
                }
            ).encode(),
            "invalid_job",
            True,
        ),
    ],
)
def test_permanent_failure_publishes_failed_and_buries(
    beanstalkd: Beanstalkd,
    results_server: ResultsServer,
    body: bytes,
    code: str,
    has_document: bool,
) -> None:
    """A bad job ends in a failed document (where the URL is usable), is buried, and the
    worker goes on to run a good job."""
    result_url = results_server.base_url + "bad.json"
    body = body.replace(b"RESULT", result_url.encode())
    worker = Worker(beanstalkd.address, results_server.results_dir, results_server.base_url)
    try:
        put_raw(beanstalkd.port, body)
        wait_for(lambda: beanstalkd.tube_stats().get("current-jobs-buried") == 1, what="job buried")
        if has_document:  # the result URL is readable from the document
            doc = wait_for_status(results_server.results_dir / "bad.json")
            assert doc["status"] == "failed"
            assert doc["error"]["code"] == code
            assert doc["error"]["message"]
        worker.wait_event("job_buried")
        # The same worker still serves good jobs.
        (results_server.results_dir / "in.json").write_text("{}")
        with Client(beanstalkd.address) as client:
            client.submit(
                "echo", results_server.base_url + "in.json", results_server.base_url + "good.json"
            )
        assert wait_for_status(results_server.results_dir / "good.json")["status"] == "done"
    finally:
        worker.stop()


def test_result_url_outside_base_is_refused(
    beanstalkd: Beanstalkd, results_server: ResultsServer, tmp_path: Path
) -> None:
    """A result URL outside --base-url is refused: nothing written, the job buried."""
    (results_server.results_dir / "in.json").write_text("{}")
    worker = Worker(beanstalkd.address, results_server.results_dir, results_server.base_url)
    try:
        with Client(beanstalkd.address) as client:
            client.submit(
                "echo", results_server.base_url + "in.json", "http://elsewhere.test/r.json"
            )
        wait_for(lambda: beanstalkd.tube_stats().get("current-jobs-buried") == 1, what="job buried")
        worker.wait_event("job_buried", code="result_refused")
        assert sorted(p.name for p in results_server.results_dir.iterdir()) == ["in.json"]
    finally:
        worker.stop()


def test_cli_submit_and_plugins(beanstalkd: Beanstalkd, results_server: ResultsServer) -> None:
    """`jobrunner submit` puts a valid job and prints its id; `plugins` lists echo and file."""
    import subprocess

    (results_server.results_dir / "in.json").write_text('{"a": 1}')
    worker = Worker(beanstalkd.address, results_server.results_dir, results_server.base_url)
    try:
        out = subprocess.run(
            jobrunner_cmd(
                "submit",
                "--beanstalk",
                beanstalkd.address,
                "--type",
                "echo",
                "--input",
                results_server.base_url + "in.json",
                "--result",
                results_server.base_url + "cli.json",
                "--param",
                "n=3",
                "--param",
                "name=abc",
            ),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        job_id = out.stdout.strip()
        doc = wait_for_status(results_server.results_dir / "cli.json")
        assert doc["id"] == job_id
        assert doc["data"] == {"input": {"a": 1}, "params": {"n": 3, "name": "abc"}}
    finally:
        worker.stop()
    listing = subprocess.run(jobrunner_cmd("plugins"), capture_output=True, text=True, timeout=30)
    assert re.search(r"^\s+echo\s", listing.stdout, re.M), listing.stdout
    assert re.search(r"^\s+file\s", listing.stdout, re.M), listing.stdout
    # Third-party distributions installed with pip (plugins/, the template) appear too.
    import importlib.util

    for name, module in (
        ("prediction", "jobrunner_prediction"),
        ("simulation", "jobrunner_simulation"),
    ):
        if importlib.util.find_spec(module) is not None or IN_CI:
            assert re.search(rf"^\s+{name}\s+jobrunner-{name} ", listing.stdout, re.M), (
                listing.stdout
            )
