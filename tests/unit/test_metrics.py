"""Prometheus exposition and the health endpoint, scraped over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from jobrunner.metrics import Counter, Histogram, MetricsServer, Registry, WorkerMetrics


def test_text_format_of_counters_gauges_histograms() -> None:
    """Metrics render in the Prometheus text format with escaped labels and buckets."""
    metrics = WorkerMetrics()
    metrics.jobs.inc(type="echo", outcome="done")
    metrics.jobs.inc(2, type='we"ird', outcome="timeout")
    metrics.duration.observe(0.02, type="echo")
    metrics.duration.observe(7.0, type="echo")
    metrics.in_flight.set(1)
    text = metrics.registry.render()
    assert "# TYPE jobrunner_jobs_total counter" in text
    assert 'jobrunner_jobs_total{type="echo",outcome="done"} 1' in text
    assert 'jobrunner_jobs_total{type="we\\"ird",outcome="timeout"} 2' in text
    assert 'jobrunner_job_duration_seconds_bucket{type="echo",le="0.025"} 1' in text
    assert 'jobrunner_job_duration_seconds_bucket{type="echo",le="10"} 2' in text
    assert 'jobrunner_job_duration_seconds_bucket{type="echo",le="+Inf"} 2' in text
    assert 'jobrunner_job_duration_seconds_count{type="echo"} 2' in text
    assert "jobrunner_jobs_in_flight 1" in text


def test_wrong_labels_are_refused() -> None:
    """Updating a metric with the wrong label names is a programming error."""
    with pytest.raises(ValueError):
        Counter("c", "h", ["a"]).inc(b="x")
    with pytest.raises(ValueError):
        Histogram("h", "h", ["a"]).observe(1.0)


def test_collector_failure_does_not_break_scrape() -> None:
    """A gauge whose collector raises is reported as a comment, the rest still renders."""

    def broken() -> list[tuple[tuple[str, ...], float]]:
        raise ConnectionError("down")

    metrics = WorkerMetrics(queue=broken)
    metrics.jobs.inc(type="echo", outcome="done")
    text = metrics.registry.render()
    assert "jobrunner_queue_jobs not collected" in text
    assert 'jobrunner_jobs_total{type="echo",outcome="done"} 1' in text


def test_metrics_and_health_over_http() -> None:
    """/metrics and /health answer a real HTTP GET; health turns 503 when unhealthy."""
    registry = Registry()
    counter = registry.add(Counter("x_total", "x"))
    counter.inc()
    state = {"ok": True}
    server = MetricsServer(registry, lambda: (state["ok"], {"servers_up": 1}), port=0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        response = httpx.get(base + "/metrics", timeout=5)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "x_total 1" in response.text
        assert httpx.get(base + "/health", timeout=5).json()["status"] == "ok"
        state["ok"] = False
        unhealthy = httpx.get(base + "/health", timeout=5)
        assert unhealthy.status_code == 503
        assert unhealthy.json() == {"status": "unhealthy", "servers_up": 1}
        assert httpx.get(base + "/nope", timeout=5).status_code == 404
    finally:
        server.stop()
