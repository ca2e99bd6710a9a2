"""WorkerMetrics on prometheus_client: labels, bounded types, health input, exposition."""

from __future__ import annotations

import os
import platform
import subprocess

import httpx

from jobrunner import __version__
from jobrunner.metrics import PUBLISH_FAILURES_UNHEALTHY, MetricsServer, WorkerMetrics
from tests.support import require_binary


def make(**kwargs: object) -> WorkerMetrics:
    return WorkerMetrics(job_types={"echo", "predict"}, process=False, **kwargs)  # type: ignore[arg-type]


def test_jobs_are_counted_by_type_and_outcome() -> None:
    """A finished job counts once under its type and outcome (done, released, error code),
    its duration lands in the histogram, and a retry is counted as such."""
    metrics = make()
    metrics.job_finished("echo", "delete", None, 0.02)
    metrics.job_finished("echo", "bury", "timeout", 7.0)
    metrics.job_finished("echo", "release", "input_failed", 1.0)
    assert metrics.value("jobrunner_jobs_total", type="echo", outcome="done") == 1
    assert metrics.value("jobrunner_jobs_total", type="echo", outcome="timeout") == 1
    assert metrics.value("jobrunner_jobs_total", type="echo", outcome="released") == 1
    assert metrics.value("jobrunner_retries_total", type="echo") == 1
    assert metrics.value("jobrunner_job_duration_seconds_count", type="echo") == 3
    assert metrics.value("jobrunner_job_duration_seconds_bucket", type="echo", le="0.025") == 1


def test_uninstalled_job_types_are_counted_as_other() -> None:
    """Job types not installed on the worker (typos, made-up names from untrusted jobs) share
    the one label value 'other': the series cannot grow without bound."""
    metrics = make()
    for name in ("predicton", "x" * 100, 'we"ird', None):
        metrics.job_finished(name, "bury", "unknown_type", 0.001)
    assert metrics.value("jobrunner_jobs_total", type="other", outcome="unknown_type") == 4
    text = metrics.render().decode()
    assert "predicton" not in text and "we" not in text.split("jobrunner_jobs_total")[1][:40]
    assert metrics.type_label("predict") == "predict"


def test_in_flight_and_child_restarts() -> None:
    """job_started/job_ended move the in-flight gauge; restarts count by reason."""
    metrics = make()
    metrics.job_started()
    metrics.job_started()
    metrics.job_ended()
    metrics.child_restarted("crash")
    assert metrics.value("jobrunner_jobs_in_flight") == 1
    assert metrics.value("jobrunner_child_restarts_total", reason="crash") == 1


def test_publish_failures_in_a_row_make_publishing_unhealthy() -> None:
    """Publication failing for several jobs in a row turns publishing_ok False; one
    published job turns it back."""
    metrics = make()
    for _ in range(PUBLISH_FAILURES_UNHEALTHY - 1):
        metrics.job_finished("echo", "release", "publish_failed", 0.1)
    assert metrics.publishing_ok()
    metrics.job_finished("echo", "release", "publish_failed", 0.1)
    assert not metrics.publishing_ok()
    assert metrics.value("jobrunner_publish_failures_in_row") == PUBLISH_FAILURES_UNHEALTHY
    metrics.job_finished("echo", "bury", "plugin_error", 0.1)  # a job's own failure: no change
    assert not metrics.publishing_ok()
    metrics.job_finished("echo", "delete", None, 0.1)
    assert metrics.publishing_ok()


def test_build_info_and_process_metrics() -> None:
    """The build-info metric carries the version; the process collector is registered."""
    metrics = WorkerMetrics(job_types=(), process=True)
    python = platform.python_version()
    assert metrics.value("jobrunner_build_info", version=__version__, python=python) == 1
    text = metrics.render().decode()
    assert "process_resident_memory_bytes" in text
    assert "python_info" in text


def test_queue_depth_only_when_asked_and_failures_do_not_break_the_scrape() -> None:
    """jobrunner_queue_jobs is absent without a queue reader; a reader that raises leaves its
    metric out while the rest of the scrape still renders."""
    assert b"jobrunner_queue_jobs" not in make().render()
    metrics = make(queue=lambda: [(("127.0.0.1:11300", "default", "ready"), 4.0)])
    assert (
        metrics.value(
            "jobrunner_queue_jobs", server="127.0.0.1:11300", tube="default", state="ready"
        )
        == 4
    )

    def broken() -> list[tuple[tuple[str, str, str], float]]:
        raise ConnectionError("down")

    failing = make(queue=broken, servers_up=lambda: 1)
    failing.job_finished("echo", "delete", None, 0.1)
    text = failing.render().decode()
    assert "jobrunner_queue_jobs" not in text
    assert 'jobrunner_jobs_total{outcome="done",type="echo"} 1.0' in text
    assert "jobrunner_servers_up 1.0" in text


def test_promtool_accepts_the_metric_names() -> None:
    """`promtool check metrics` finds nothing to complain about in a worker's exposition
    (names, units, suffixes, help texts)."""
    promtool = require_binary("promtool")  # Debian package prometheus; skipped locally only
    metrics = WorkerMetrics(
        job_types={"echo"},
        reconnects=lambda: {"127.0.0.1:11300": 2},
        servers_up=lambda: 1,
        queue=lambda: [(("127.0.0.1:11300", "default", "ready"), 4.0)],
        children=lambda: {0: os.getpid()},
    )
    metrics.job_finished("echo", "delete", None, 0.5)
    metrics.job_finished("echo", "release", "publish_failed", 0.5)
    metrics.child_restarted("recycle")
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=metrics.render(),
        capture_output=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == b"" and checked.stderr.strip() == b""


def test_metrics_and_health_over_http() -> None:
    """/metrics (text format) and /health answer a real HTTP GET; health turns 503 when
    unhealthy; other paths are 404."""
    metrics = make()
    metrics.job_finished("echo", "delete", None, 0.1)
    state = {"ok": True}
    server = MetricsServer(
        metrics.registry, lambda: (state["ok"], {"servers_up": 1}), port=0
    ).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        response = httpx.get(base + "/metrics", timeout=5)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert 'jobrunner_jobs_total{outcome="done",type="echo"} 1.0' in response.text
        assert httpx.get(base + "/health", timeout=5).json()["status"] == "ok"
        state["ok"] = False
        unhealthy = httpx.get(base + "/health", timeout=5)
        assert unhealthy.status_code == 503
        assert unhealthy.json() == {"status": "unhealthy", "servers_up": 1}
        assert httpx.get(base + "/nope", timeout=5).status_code == 404
    finally:
        server.stop()


def test_child_memory_is_read_for_each_slot() -> None:
    """Each slot's child process memory is exported by slot; a child gone is left out."""
    metrics = make(children=lambda: {0: os.getpid(), 1: 2**22 + 12345})
    rss = metrics.value("jobrunner_child_resident_memory_bytes", slot="0")
    assert rss is not None and rss > 1_000_000
    assert metrics.value("jobrunner_child_resident_memory_bytes", slot="1") is None
