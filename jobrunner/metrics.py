"""Prometheus metrics and a health endpoint for ``jobrunner work --metrics-port P``.

A small, dependency-free implementation of the Prometheus text exposition
format (version 0.0.4): counters, gauges and histograms with labels, safe
to update from the slot threads. (``prometheus_client`` would add ~12 MB to
every worker process for the same few metrics.) :class:`MetricsServer`
serves ``GET /metrics`` and ``GET /health`` from a background thread; a
scrape every few seconds needs no more than the standard library's server.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = [
    "Counter",
    "Gauge",
    "Histogram",
    "MetricsServer",
    "Registry",
    "WorkerMetrics",
]

LabelValues = tuple[str, ...]

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


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labels)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(
                f"{self.name}: expected labels {self.labelnames}, got {sorted(labels)}"
            )
        return tuple(str(labels[name]) for name in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError


class _Sampled(_Metric):
    """One number per label combination, kept here or read by ``collect`` at scrape time."""

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        collect: Callable[[], Iterable[tuple[LabelValues, float]]] | None = None,
    ) -> None:
        super().__init__(name, help, labels)
        self._values: dict[LabelValues, float] = {}
        self._collect = collect

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` to the value with these labels."""
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        """The current value (0 when never updated)."""
        return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        if self._collect is not None:
            items = sorted(self._collect())
        else:
            with self._lock:
                items = sorted(self._values.items())
        return self.header() + [
            f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in items
        ]


class Counter(_Sampled):
    """A monotonically increasing count (``inc`` with amounts >= 0)."""

    kind = "counter"


class Gauge(_Sampled):
    """A value that goes up and down (``inc`` with negative amounts, ``set``)."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        """Set the gauge."""
        key = self._key(labels)
        with self._lock:
            self._values[key] = value


class Histogram(_Metric):
    """Observations counted into cumulative buckets, with their sum and count."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DURATION_BUCKETS,
    ) -> None:
        super().__init__(name, help, labels)
        self.buckets = (*sorted(buckets), math.inf)
        self._series: dict[LabelValues, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        """Record one observation."""
        key = self._key(labels)
        with self._lock:
            counts, total = self._series.setdefault(key, ([0] * len(self.buckets), [0.0]))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[i] += 1
            total[0] += value

    def count(self, **labels: str) -> int:
        """How many observations were recorded."""
        series = self._series.get(self._key(labels))
        return series[0][-1] if series else 0

    def render(self) -> list[str]:
        lines = self.header()
        with self._lock:
            items = sorted((k, (list(c), t[0])) for k, (c, t) in self._series.items())
        for key, (counts, total) in items:
            for bound, count in zip(self.buckets, counts, strict=True):
                le = 'le="' + _number(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {count}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {counts[-1]}")
        return lines


class Registry:
    """The metrics of one process, rendered together."""

    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def add(self, metric: Any) -> Any:
        """Register a metric and return it."""
        self.metrics.append(metric)
        return metric

    def render(self) -> str:
        """The whole registry in the Prometheus text format."""
        lines: list[str] = []
        for metric in self.metrics:
            try:
                lines += metric.render()
            except Exception as exc:  # a failing collector must not break the scrape
                lines.append(f"# {metric.name} not collected: {type(exc).__name__}")
        return "\n".join(lines) + "\n"


Collector = Callable[[], Iterable[tuple[LabelValues, float]]]


def _nothing() -> list[tuple[LabelValues, float]]:
    return []


class WorkerMetrics:
    """The worker's metrics (names are part of the operator's contract).

    Args:
        reconnects: reads reconnections per server at scrape time.
        servers_up: reads how many servers are reachable at scrape time.
        queue: reads the watched tubes' job counts at scrape time.
    """

    def __init__(
        self,
        *,
        reconnects: Collector = _nothing,
        servers_up: Collector = _nothing,
        queue: Collector = _nothing,
    ) -> None:
        self.registry = Registry()
        add = self.registry.add
        self.jobs = add(
            Counter(
                "jobrunner_jobs_total",
                "Jobs handled, by type and outcome (done, released, or the error code).",
                ["type", "outcome"],
            )
        )
        self.duration = add(
            Histogram(
                "jobrunner_job_duration_seconds",
                "Time from reserve to delete/release/bury.",
                ["type"],
            )
        )
        self.in_flight = add(Gauge("jobrunner_jobs_in_flight", "Jobs running now."))
        self.retries = add(
            Counter("jobrunner_retries_total", "Jobs released for a retry.", ["type"])
        )
        self.child_restarts = add(
            Counter(
                "jobrunner_child_restarts_total", "Child processes replaced, by reason.", ["reason"]
            )
        )
        self.reconnects = add(
            Counter(
                "jobrunner_reconnects_total",
                "Reconnections to a beanstalkd server.",
                ["server"],
                collect=reconnects,
            )
        )
        self.servers_up = add(
            Gauge("jobrunner_servers_up", "beanstalkd servers reachable.", collect=servers_up)
        )
        self.queue = add(
            Gauge(
                "jobrunner_queue_jobs",
                "Jobs in the watched tubes, by server, tube and state.",
                ["server", "tube", "state"],
                collect=queue,
            )
        )

    # -- what the worker counts (the only place it counts) --------------------

    def job_started(self) -> None:
        """A slot took a job: one more in flight."""
        self.in_flight.inc()

    def job_left(self) -> None:
        """A slot is done with a job, however it ended: one fewer in flight."""
        self.in_flight.inc(-1)

    def job_finished(
        self, job_type: str, outcome: str, duration: float, *, retry: bool = False
    ) -> None:
        """Count a job's end: ``outcome`` is ``done``, ``released`` or an error code."""
        self.jobs.inc(type=job_type, outcome=outcome)
        self.duration.observe(duration, type=job_type)
        if retry:
            self.retries.inc(type=job_type)

    def child_restarted(self, reason: str) -> None:
        """Count a child process replaced (``crash``, ``timeout``, ``recycle``, ``lost``, ...)."""
        self.child_restarts.inc(reason=reason)

    def totals(self) -> dict[str, int]:
        """Jobs by outcome and child restarts by reason, summed (the worker's last log line)."""
        out: dict[str, int] = {}
        for (_, outcome), value in list(self.jobs._values.items()):
            key = f"jobs_{outcome}"
            out[key] = out.get(key, 0) + int(value)
        for (reason,), value in list(self.child_restarts._values.items()):
            out[f"child_restarts_{reason}"] = int(value)
        return out


class MetricsServer:
    """Serves ``/metrics`` (Prometheus) and ``/health`` (JSON) in a daemon thread.

    Args:
        registry: what ``/metrics`` renders.
        health: returns ``(healthy, details)``; ``/health`` answers 200 or 503.
        host, port: where to listen (port 0 picks a free one; see ``port``).
    """

    def __init__(
        self,
        registry: Registry,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        # Imported here: a worker without --metrics-port does not pay for http.server.
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        registry_ref, health_ref = registry, health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body = registry_ref.render().encode()
                    self._answer(200, "text/plain; version=0.0.4; charset=utf-8", body)
                elif path in ("/health", "/healthz"):
                    ok, details = health_ref()
                    body = json.dumps({"status": "ok" if ok else "unhealthy", **details}).encode()
                    self._answer(200 if ok else 503, "application/json", body)
                else:
                    self._answer(404, "application/json", b'{"error": "not found"}')

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes are not worth a log line each

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
