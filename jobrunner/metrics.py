"""Prometheus metrics and the health endpoint of ``jobrunner work --metrics-port P``.

The only module importing ``prometheus_client``. The worker counts through
the narrow interface of :class:`WorkerMetrics` (a job started, a job
finished, a child restarted); everything Prometheus-shaped stays here.
:class:`MetricsServer` serves ``GET /metrics`` (prometheus_client's own
exposition: text or OpenMetrics, gzip when asked) and ``GET /health``.

What each worker exports (names are a contract with dashboards and alerts):

* ``jobrunner_jobs_total{type, outcome}``, ``jobrunner_job_duration_seconds{type}``,
  ``jobrunner_jobs_in_flight``, ``jobrunner_retries_total{type}``,
  ``jobrunner_child_restarts_total{reason}``, ``jobrunner_reconnects_total{server}``,
  ``jobrunner_servers_up``, ``jobrunner_publish_failures_in_row``,
  ``jobrunner_child_resident_memory_bytes{slot}``;
* ``jobrunner_build_info{version, python}``, and prometheus_client's process
  (``process_resident_memory_bytes``, CPU, open files) and platform collectors;
* ``jobrunner_queue_jobs{server, tube, state}`` only with ``--metrics-queue``:
  the queue is one for all workers, so one exporter (one worker, or
  ``jobrunner dashboard``) should export it, or ``sum()`` over workers counts
  each job as many times as there are workers.

The ``type`` label comes from untrusted job documents: only job types
installed on the worker are label values, every other name is counted as
``other``, so a stream of made-up types cannot grow the series without bound.
"""

from __future__ import annotations

import json
import os
import platform
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import MetricsHandler
from prometheus_client.registry import Collector

from jobrunner import __version__
from jobrunner._log import get_logger

__all__ = [
    "DURATION_BUCKETS",
    "OTHER_TYPE",
    "PUBLISH_FAILURES_UNHEALTHY",
    "MetricsServer",
    "QueueDepth",
    "WorkerMetrics",
]

log = get_logger(__name__)
T = TypeVar("T")

#: Job durations: from a no-op (milliseconds) to a long simulation (hours).
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
    14400,
)
#: The ``type`` label of jobs whose type is not installed on this worker.
OTHER_TYPE = "other"
#: Publications failing this many jobs in a row make ``/health`` unhealthy.
PUBLISH_FAILURES_UNHEALTHY = 3
_PUBLISH_CODES = frozenset({"publish_failed"})
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

#: Reads queue depth at scrape time: ``(server, tube, state) -> jobs``.
QueueDepth = Callable[[], Iterable[tuple[tuple[str, str, str], float]]]


def _read(read: Callable[[], T], default: T) -> T:
    try:
        return read()
    except Exception as exc:  # a scrape must not fail for one reading
        log.warning("metrics_read_failed", error=f"{type(exc).__name__}: {exc}")
        return default


def _resident_bytes(pid: int) -> int | None:
    """Resident memory of a process from ``/proc`` (Linux), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


class _Sampled(Collector):
    """Metrics read at scrape time from callables (reconnects, servers up, queue depth)."""

    def __init__(
        self,
        reconnects: Callable[[], dict[str, int]],
        servers_up: Callable[[], int],
        queue: QueueDepth | None,
        children: Callable[[], dict[int, int]],
    ) -> None:
        self._reconnects = reconnects
        self._servers_up = servers_up
        self._queue = queue
        self._children = children

    def collect(self) -> Iterator[Metric]:
        # A failing read (a queue server gone mid-scrape) leaves its metric out of this
        # scrape; the rest of the scrape still answers.
        reconnects = CounterMetricFamily(
            "jobrunner_reconnects", "Reconnections to a beanstalkd server.", labels=["server"]
        )
        counts: dict[str, int] = _read(self._reconnects, {})
        for server, count in sorted(counts.items()):
            reconnects.add_metric([server], count)
        yield reconnects
        up = _read(self._servers_up, None)
        if up is not None:
            yield GaugeMetricFamily(
                "jobrunner_servers_up", "beanstalkd servers reachable.", value=up
            )
        pids: dict[int, int] = _read(self._children, {})
        if pids:
            memory = GaugeMetricFamily(
                "jobrunner_child_resident_memory_bytes",
                "Resident memory of each slot's child process (recycled above "
                "--max-memory-per-child).",
                labels=["slot"],
            )
            for slot, pid in sorted(pids.items()):
                rss = _resident_bytes(pid)
                if rss is not None:
                    memory.add_metric([str(slot)], rss)
            yield memory
        if self._queue is not None:
            queue = self._queue
            samples = _read(lambda: sorted(queue()), None)
            if samples is not None:
                depth = GaugeMetricFamily(
                    "jobrunner_queue_jobs",
                    "Jobs in the watched tubes, by server, tube and state.",
                    labels=["server", "tube", "state"],
                )
                for labels, value in samples:
                    depth.add_metric(list(labels), value)
                yield depth

    def describe(self) -> Iterable[Metric]:
        return []  # collected at scrape time only: nothing to check at registration


class WorkerMetrics:
    """The worker's metrics behind a narrow interface; thread-safe.

    Args:
        job_types: the job types installed on this worker; other ``type``
            values are counted as ``other``. None: the names of the installed
            entry points (read without importing them).
        reconnects: reads reconnections per server at scrape time.
        servers_up: reads how many servers are reachable at scrape time.
        queue: reads the watched tubes' job counts at scrape time; None (the
            default) leaves ``jobrunner_queue_jobs`` out.
        children: reads the pid of each slot's child process (slot -> pid) at
            scrape time, for ``jobrunner_child_resident_memory_bytes``.
        process: add prometheus_client's process and platform collectors
            (False in unit tests that build many registries).
    """

    def __init__(
        self,
        *,
        job_types: Collection[str] | None = None,
        reconnects: Callable[[], dict[str, int]] = dict,
        servers_up: Callable[[], int] = int,
        queue: QueueDepth | None = None,
        children: Callable[[], dict[int, int]] = dict,
        process: bool = True,
    ) -> None:
        if job_types is None:
            from jobrunner.plugins import JOB_TYPES, metadata_names

            job_types = metadata_names(JOB_TYPES)
        self._types = frozenset(job_types)
        self._lock = threading.Lock()
        self._publish_failures = 0
        self.registry = registry = CollectorRegistry(auto_describe=True)
        if process:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
        Info("jobrunner_build", "The jobrunner release this worker runs.", registry=registry).info(
            {"version": __version__, "python": platform.python_version()}
        )
        self._jobs = Counter(
            "jobrunner_jobs",
            "Jobs handled, by type and outcome (done, released, or the error code).",
            ["type", "outcome"],
            registry=registry,
        )
        self._duration = Histogram(
            "jobrunner_job_duration_seconds",
            "Time from reserve to delete/release/bury.",
            ["type"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._in_flight = Gauge("jobrunner_jobs_in_flight", "Jobs running now.", registry=registry)
        self._retries = Counter(
            "jobrunner_retries", "Jobs released for a retry.", ["type"], registry=registry
        )
        self._child_restarts = Counter(
            "jobrunner_child_restarts",
            "Child processes replaced, by reason.",
            ["reason"],
            registry=registry,
        )
        self._publish_gauge = Gauge(
            "jobrunner_publish_failures_in_row",
            "Jobs in a row whose result could not be published (0 after a success).",
            registry=registry,
        )
        registry.register(_Sampled(reconnects, servers_up, queue, children))

    # -- what the worker reports -------------------------------------------------

    def type_label(self, job_type: str | None) -> str:
        """The ``type`` label for a job type name: itself when installed, else ``other``."""
        return job_type if job_type in self._types else OTHER_TYPE

    def job_started(self) -> None:
        """A slot began handling a job."""
        self._in_flight.inc()

    def job_ended(self) -> None:
        """A slot finished handling a job (whatever came of it)."""
        self._in_flight.dec()

    def job_finished(
        self, job_type: str | None, action: str, code: str | None, seconds: float
    ) -> None:
        """Count one job's outcome.

        Args:
            job_type: the job's ``type`` (untrusted; uninstalled names count as ``other``).
            action: what happened to it in the queue: ``delete``, ``release`` or ``bury``.
            code: the error code of its failure, None when it succeeded.
            seconds: from reserve to the queue action.
        """
        label = self.type_label(job_type)
        if action == "release":
            outcome = "released"
            if code:
                self._retries.labels(type=label).inc()
        else:
            outcome = code or ("done" if action == "delete" else "buried")
        self._jobs.labels(type=label, outcome=outcome).inc()
        self._duration.labels(type=label).observe(seconds)
        with self._lock:
            if code in _PUBLISH_CODES:
                self._publish_failures += 1
            elif code is None and action == "delete":
                self._publish_failures = 0
            self._publish_gauge.set(self._publish_failures)

    def child_restarted(self, reason: str) -> None:
        """A child process was replaced (``recycle``, ``crash``, ``timeout``, ``lost``)."""
        self._child_restarts.labels(reason=reason).inc()

    # -- what health and tests read ------------------------------------------------

    def publishing_ok(self) -> bool:
        """False once :data:`PUBLISH_FAILURES_UNHEALTHY` jobs in a row failed to publish."""
        with self._lock:
            return self._publish_failures < PUBLISH_FAILURES_UNHEALTHY

    def value(self, name: str, **labels: str) -> float | None:
        """The current value of one sample (e.g. ``jobrunner_jobs_total``), or None."""
        return self.registry.get_sample_value(name, labels)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class MetricsServer:
    """Serves ``/metrics`` (Prometheus) and ``/health`` (JSON) in a daemon thread.

    Args:
        registry: what ``/metrics`` exposes.
        health: returns ``(healthy, details)``; ``/health`` answers 200 or 503.
        host, port: where to listen (port 0 picks a free one; see ``port``).

    Raises:
        OSError: the address cannot be listened on.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        # Imported here: a worker without --metrics-port does not pay for http.server.
        from http.server import ThreadingHTTPServer

        class Handler(MetricsHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    super().do_GET()
                elif path in ("/health", "/healthz"):
                    ok, details = health()
                    body = json.dumps({"status": "ok" if ok else "unhealthy", **details})
                    self._answer(200 if ok else 503, body.encode())
                else:
                    self._answer(404, b'{"error": "not found"}')

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.wfile.write(body)

        Handler.registry = registry
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        """Start serving in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
