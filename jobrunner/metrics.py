"""Prometheus metrics and the health endpoint of ``jobrunner work --metrics-port P``.

The worker's only module importing ``prometheus_client``, and only when
metrics are exported. The worker counts through the narrow interface of
:class:`WorkerMetrics` (a job started, a job finished, a child restarted) in
plain numbers; everything Prometheus-shaped stays here.
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
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from jobrunner import __version__
from jobrunner._log import get_logger

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

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


class _Histogram:
    """Counts per bucket of :data:`DURATION_BUCKETS` (not cumulative), their sum and count."""

    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)  # the last: above every bound
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.buckets[bisect_left(DURATION_BUCKETS, value)] += 1
        self.sum += value
        self.count += 1


class WorkerMetrics:
    """The worker's metrics behind a narrow interface; thread-safe.

    The worker counts here in plain numbers; :attr:`registry`, built when
    first asked for (by the metrics server, a test, :meth:`render`), turns
    them into Prometheus metrics at scrape time. So prometheus_client — and
    the HTTP, e-mail and ``ssl`` modules it imports, 3 MB — is loaded only by
    a worker that exports metrics.

    Args:
        job_types: the job types installed on this worker; other ``type``
            values are counted as ``other``. None: the names of the installed
            entry points (read without importing them, at the first job).
        reconnects: reads reconnections per server at scrape time.
        servers_up: reads how many servers are reachable at scrape time.
        queue: reads the watched tubes' job counts at scrape time; None (the
            default) leaves ``jobrunner_queue_jobs`` out.
        children: reads the pid of each slot's child process (slot -> pid) at
            scrape time, for ``jobrunner_child_resident_memory_bytes``.
        process: add prometheus_client's process and platform collectors
            (False in unit tests that build many registries).
        export: build :attr:`registry` now (the worker's ``--metrics-port``),
            so that the metrics server answers as soon as it listens.
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
        export: bool = False,
    ) -> None:
        self._types = frozenset(job_types) if job_types is not None else None
        self._reconnects = reconnects
        self._servers_up = servers_up
        self._queue = queue
        self._children = children
        self._process = process
        self._lock = threading.Lock()
        self._registry: CollectorRegistry | None = None
        self._jobs: dict[tuple[str, str], int] = {}  # (type, outcome) -> count
        self._durations: dict[str, _Histogram] = {}
        self._in_flight = 0
        self._retries: dict[str, int] = {}
        self._child_restarts: dict[str, int] = {}
        self._publish_failures = 0
        if export:
            self._registry = _build_registry(self)

    # -- what the worker reports -------------------------------------------------

    def type_label(self, job_type: str | None) -> str:
        """The ``type`` label for a job type name: itself when installed, else ``other``."""
        if self._types is None:
            from jobrunner.plugins import JOB_TYPES, metadata_names

            self._types = frozenset(metadata_names(JOB_TYPES))
        return job_type if job_type in self._types else OTHER_TYPE

    def job_started(self) -> None:
        """A slot began handling a job."""
        with self._lock:
            self._in_flight += 1

    def job_ended(self) -> None:
        """A slot finished handling a job (whatever came of it)."""
        with self._lock:
            self._in_flight -= 1

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
        else:
            outcome = code or ("done" if action == "delete" else "buried")
        with self._lock:
            if action == "release" and code:
                self._retries[label] = self._retries.get(label, 0) + 1
            self._jobs[label, outcome] = self._jobs.get((label, outcome), 0) + 1
            histogram = self._durations.get(label)
            if histogram is None:
                histogram = self._durations[label] = _Histogram()
            histogram.observe(seconds)
            if code in _PUBLISH_CODES:
                self._publish_failures += 1
            elif code is None and action == "delete":
                self._publish_failures = 0

    def child_restarted(self, reason: str) -> None:
        """A child process was replaced (``recycle``, ``crash``, ``timeout``, ``lost``)."""
        with self._lock:
            self._child_restarts[reason] = self._child_restarts.get(reason, 0) + 1

    # -- what health and tests read ------------------------------------------------

    def publishing_ok(self) -> bool:
        """False once :data:`PUBLISH_FAILURES_UNHEALTHY` jobs in a row failed to publish."""
        with self._lock:
            return self._publish_failures < PUBLISH_FAILURES_UNHEALTHY

    @property
    def registry(self) -> CollectorRegistry:
        """The Prometheus registry of these metrics (prometheus_client is imported here)."""
        with self._lock:
            if self._registry is None:
                self._registry = _build_registry(self)
            return self._registry

    def value(self, name: str, **labels: str) -> float | None:
        """The current value of one sample (e.g. ``jobrunner_jobs_total``), or None."""
        return self.registry.get_sample_value(name, labels)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def _collect(self) -> Iterator[Metric]:
        """The metrics as Prometheus metric families, at scrape time."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        with self._lock:
            jobs = sorted(self._jobs.items())
            durations = {
                label: (list(h.buckets), h.sum) for label, h in sorted(self._durations.items())
            }
            in_flight = self._in_flight
            retries = sorted(self._retries.items())
            restarts = sorted(self._child_restarts.items())
            publish_failures = self._publish_failures
        counted = CounterMetricFamily(
            "jobrunner_jobs",
            "Jobs handled, by type and outcome (done, released, or the error code).",
            labels=["type", "outcome"],
        )
        for (label, outcome), count in jobs:
            counted.add_metric([label, outcome], count)
        yield counted
        histogram = HistogramMetricFamily(
            "jobrunner_job_duration_seconds",
            "Time from reserve to delete/release/bury.",
            labels=["type"],
        )
        bounds = [repr(float(bound)) for bound in DURATION_BUCKETS] + ["+Inf"]  # as Go prints them
        for label, (buckets, total) in durations.items():
            cumulative, running = [], 0
            for bound, count in zip(bounds, buckets, strict=True):
                running += count
                cumulative.append((bound, running))
            histogram.add_metric([label], cumulative, total)
        yield histogram
        yield GaugeMetricFamily("jobrunner_jobs_in_flight", "Jobs running now.", value=in_flight)
        retried = CounterMetricFamily(
            "jobrunner_retries", "Jobs released for a retry.", labels=["type"]
        )
        for label, count in retries:
            retried.add_metric([label], count)
        yield retried
        restarted = CounterMetricFamily(
            "jobrunner_child_restarts", "Child processes replaced, by reason.", labels=["reason"]
        )
        for reason, count in restarts:
            restarted.add_metric([reason], count)
        yield restarted
        yield GaugeMetricFamily(
            "jobrunner_publish_failures_in_row",
            "Jobs in a row whose result could not be published (0 after a success).",
            value=publish_failures,
        )
        yield from self._sampled()

    def _sampled(self) -> Iterator[Metric]:
        """Metrics read at scrape time from callables (reconnects, servers up, queue depth)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

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


class _Collector:
    """Hands a :class:`WorkerMetrics`' numbers to prometheus_client at scrape time."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics._collect()

    def describe(self) -> Iterable[Metric]:
        return []  # collected at scrape time only: nothing to check at registration


def _build_registry(metrics: WorkerMetrics) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
    from prometheus_client.core import InfoMetricFamily

    registry = CollectorRegistry(auto_describe=True)
    if metrics._process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)

    class _BuildInfo:
        def collect(self) -> Iterator[Metric]:
            yield InfoMetricFamily(
                "jobrunner_build",
                "The jobrunner release this worker runs.",
                value={"version": __version__, "python": platform.python_version()},
            )

    registry.register(_BuildInfo())  # type: ignore[arg-type]  # a duck-typed Collector
    registry.register(_Collector(metrics))  # type: ignore[arg-type]
    return registry


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
        # Imported here: a worker without --metrics-port does not pay for them.
        from http.server import ThreadingHTTPServer

        from prometheus_client.exposition import MetricsHandler

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
