"""A worker's Prometheus metrics and health endpoint, scraped over real HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from jobrunner import Client
from tests.support import Beanstalkd, ResultsServer, Worker, free_port, wait_for, wait_for_status

pytestmark = pytest.mark.integration


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None when absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        match = re.match(r"^([a-z_]+)(\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(3) or ""))
        if found == labels:
            return float(match.group(4))
    return None


def test_metrics_count_jobs_and_health_follows_the_queue(
    beanstalkd: Beanstalkd, results_server: ResultsServer
) -> None:
    """/metrics counts jobs by type and outcome (uninstalled types as 'other'), exports the
    process and build-info metrics and, with --metrics-queue, the queue depth; /health turns
    503 when beanstalkd goes away and 200 again when it is back."""
    port = free_port()
    (results_server.results_dir / "in.json").write_text("{}")
    worker = Worker(
        beanstalkd.address,
        results_server.results_dir,
        results_server.base_url,
        "--metrics-port",
        str(port),
        "--metrics-queue",
        concurrency=2,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with Client(beanstalkd.address) as client:
            for n in range(3):
                client.submit(
                    "echo",
                    results_server.base_url + "in.json",
                    results_server.base_url + f"ok{n}.json",
                )
            client.submit(
                "nope", results_server.base_url + "in.json", results_server.base_url + "bad.json"
            )
            client.submit(
                "echo",
                results_server.base_url + "in.json",
                results_server.base_url + "later.json",
                delay=3600,
            )
        for n in range(3):
            wait_for_status(results_server.results_dir / f"ok{n}.json")
        wait_for_status(results_server.results_dir / "bad.json")

        def scraped() -> str | None:
            text = httpx.get(base + "/metrics", timeout=5).text
            done = sample(text, "jobrunner_jobs_total", type="echo", outcome="done")
            failed = sample(text, "jobrunner_jobs_total", type="other", outcome="unknown_type")
            return text if done == 3 and failed == 1 else None

        text = wait_for(scraped, what="job counters")
        assert sample(text, "jobrunner_job_duration_seconds_count", type="echo") == 3
        assert sample(text, "jobrunner_jobs_in_flight") == 0
        assert sample(text, "jobrunner_servers_up") == 1
        tube = {"server": beanstalkd.address, "tube": "default"}
        assert sample(text, "jobrunner_queue_jobs", **tube, state="delayed") == 1
        assert sample(text, "jobrunner_queue_jobs", **tube, state="buried") == 1
        assert 'type="nope"' not in text  # untrusted names never become label values
        assert (sample(text, "process_resident_memory_bytes") or 0) > 10_000_000
        for slot in ("0", "1"):  # the children, recycled on memory, are measured too
            assert (sample(text, "jobrunner_child_resident_memory_bytes", slot=slot) or 0) > 5e6
        assert "jobrunner_build_info{" in text
        health = httpx.get(base + "/health", timeout=5)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"

        beanstalkd.stop()
        wait_for(
            lambda: httpx.get(base + "/health", timeout=5).status_code == 503,
            timeout=20,
            what="unhealthy without beanstalkd",
        )
        beanstalkd.start()
        wait_for(
            lambda: httpx.get(base + "/health", timeout=5).status_code == 200,
            timeout=30,
            what="healthy again",
        )
        text = httpx.get(base + "/metrics", timeout=5).text
        assert (sample(text, "jobrunner_reconnects_total", server=beanstalkd.address) or 0) >= 1
    finally:
        assert worker.stop() == 0


def test_health_is_unhealthy_when_a_slot_cannot_start_its_child(tmp_path: Path) -> None:
    """A slot whose child failed to start twice in a row makes /health report unhealthy."""
    from jobrunner._worker.node import Worker as WorkerNode
    from jobrunner.config import load_config

    config = load_config(
        env={},
        flags={"results_dir": str(tmp_path), "base_url": "http://r.test/", "concurrency": 2},
    )
    node = WorkerNode(config)
    ok, details = node.health()
    assert ok and details["broken_slots"] == []
    node.slots[1].child_failures = 2
    ok, details = node.health()
    assert not ok and details["broken_slots"] == [1]


def test_queue_depth_is_not_exported_by_default(
    beanstalkd: Beanstalkd, results_server: ResultsServer
) -> None:
    """Without --metrics-queue a worker does not export jobrunner_queue_jobs, so that
    sum() over many workers does not count each queued job once per worker."""
    port = free_port()
    worker = Worker(
        beanstalkd.address,
        results_server.results_dir,
        results_server.base_url,
        "--metrics-port",
        str(port),
    )
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "jobrunner_jobs_in_flight" in text
        assert "jobrunner_queue_jobs" not in text
    finally:
        assert worker.stop() == 0


def test_health_turns_unhealthy_when_publishing_keeps_failing(
    beanstalkd: Beanstalkd, results_server: ResultsServer
) -> None:
    """A worker whose publisher fails job after job (its results host is down) reports
    /health 503 with publishing false, instead of "ok" while every job is retried."""
    port = free_port()
    (results_server.results_dir / "in.json").write_text("{}")
    worker = Worker(
        beanstalkd.address,
        results_server.results_dir,
        results_server.base_url,
        "--metrics-port",
        str(port),
        "--publisher",
        "http",
        "--put-origin",
        "http://127.0.0.1:1",
        "--http-timeout",
        "2",
        env={"JOBRUNNER_HTTP_TOKEN": "secret"},
    )
    health_url = f"http://127.0.0.1:{port}/health"
    try:
        assert httpx.get(health_url, timeout=5).status_code == 200
        with Client(beanstalkd.address) as client:
            for n in range(3):
                client.submit(
                    "echo", results_server.base_url + "in.json", f"http://127.0.0.1:1/r{n}.json"
                )
        wait_for(
            lambda: httpx.get(health_url, timeout=5).status_code == 503,
            timeout=60,
            what="unhealthy after repeated publish failures",
        )
        answer = httpx.get(health_url, timeout=5).json()
        assert answer["status"] == "unhealthy" and answer["publishing"] is False
        assert answer["servers_up"] == 1
    finally:
        assert worker.stop() == 0
