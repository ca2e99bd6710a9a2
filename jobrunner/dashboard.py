"""``jobrunner dashboard``: a read-only web page for operators (Starlette on uvicorn).

One page shows, refreshed every ``--dashboard-interval`` seconds:

* the queue depth of every tube on every beanstalkd server, now and over
  time (the last :data:`HISTORY` polls, kept in memory);
* the workers named by ``--dashboard-worker URL`` (their ``--metrics-port``
  endpoints): health, slots, the jobs running now, memory and job counts;
* the buried jobs with the reason from their ``failed`` document (read from
  ``--results-dir``, or fetched when below ``--base-url``; a result URL
  elsewhere is never followed), each with a kick button when the dashboard
  has a token;
* the most recent result documents below ``--results-dir``.

Access: it listens on loopback unless told otherwise, and on any other
address only with ``--dashboard-token``. With a token every request must
carry it (``?token=`` once, which sets a ``SameSite=Strict`` cookie, or an
``Authorization: Bearer`` header), and only then is kicking allowed; kicks
are JSON ``POST`` requests, which other sites' pages cannot send.

``GET /metrics`` exports the queue depth (``jobrunner_queue_jobs``) once for
all workers, so that Prometheus can scrape it here instead of from every
worker. ``GET /api/state`` is the JSON the page draws.

Polling runs in one background thread; requests only read its last snapshot.
"""

from __future__ import annotations

import collections
import hmac
import ipaddress
import json
import os
import platform
import signal
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

import attrs
import httpx
from prometheus_client import CollectorRegistry, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from jobrunner import __version__
from jobrunner._log import get_logger
from jobrunner.admin import Servers, buried_jobs, failure_reason, tube_table
from jobrunner.config import Config
from jobrunner.errors import ConfigError, JobNotFound, QueueError
from jobrunner.queue import Connection

__all__ = ["HISTORY", "Poller", "create_app", "run_dashboard"]

log = get_logger(__name__)

#: Polls kept for the queue-depth chart (at 5 s: the last half hour).
HISTORY = 360
#: Buried jobs listed per tube and server.
BURIED_LIMIT = 50
#: Recent result documents listed.
RECENT_LIMIT = 20
_RECENT_SCAN = 5000  # files looked at to find the most recent ones
_RECENT_BYTES = 1 << 20  # larger documents are listed without their content
_COOKIE = "jobrunner_dashboard"
_MAX_KICK_BYTES = 4096  # a kick request is {"server": ..., "id": ...}
_STATES = ("ready", "reserved", "delayed", "buried")


# -- polling -------------------------------------------------------------------------------


@attrs.define
class _Snapshot:
    time: float = 0.0
    servers: list[dict[str, Any]] = attrs.Factory(list)
    tubes: list[dict[str, Any]] = attrs.Factory(list)
    workers: list[dict[str, Any]] = attrs.Factory(list)
    buried: list[dict[str, Any]] = attrs.Factory(list)
    recent: list[dict[str, Any]] = attrs.Factory(list)


class Poller:
    """Polls the queue, the workers and the results directory; keeps the last snapshot.

    Args:
        config: servers, tubes, worker URLs, results directory and base URL.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._conns = [Connection(address) for address in config.beanstalk]
        self._http = httpx.Client(timeout=min(5.0, config.dashboard_interval), trust_env=False)
        self._lock = threading.Lock()
        # One poll at a time: a kick polls from a request thread while the background
        # thread polls, and a beanstalkd connection carries one exchange at a time.
        self._poll_lock = threading.Lock()
        self._snapshot = _Snapshot()
        self._history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY)
        self._reasons: dict[tuple[str, int], str | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-poll", daemon=True)

    # -- life cycle ------------------------------------------------------------

    def start(self) -> Poller:
        """Poll once now, then every ``dashboard_interval`` seconds in the background."""
        self.poll()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and close the connections."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for conn in self._conns:
            conn.close()
        self._http.close()

    def _run(self) -> None:
        while not self._stop.wait(self.config.dashboard_interval):
            try:
                self.poll()
            except Exception:  # one failed poll must not end the dashboard
                log.exception("dashboard_poll_failed")

    # -- one poll ------------------------------------------------------------------

    def poll(self) -> None:
        """Take one snapshot of the queue, the workers and the results (thread-safe)."""
        with self._poll_lock:
            self._poll()

    def _poll(self) -> None:
        snapshot = _Snapshot(time=time.time())
        tubes_by_server: dict[str, list[str]] = {}
        for conn in self._conns:
            try:
                stats = conn.stats()
                rows = tube_table(conn, None)
            except QueueError as exc:
                snapshot.servers.append({"server": conn.address, "up": False, "error": str(exc)})
                continue
            snapshot.servers.append(
                {
                    "server": conn.address,
                    "up": True,
                    "version": stats.get("version"),
                    "connections": stats.get("current-connections"),
                    "total_jobs": stats.get("total-jobs"),
                }
            )
            snapshot.tubes += rows
            tubes_by_server[conn.address] = [row["tube"] for row in rows]
        snapshot.buried = self._buried(tubes_by_server)
        snapshot.workers = [self._worker(url) for url in self.config.dashboard_worker]
        snapshot.recent = self._recent()
        point = {
            "time": snapshot.time,
            "depth": {
                f"{row['server']} {row['tube']}": {state: row[state] for state in _STATES}
                for row in snapshot.tubes
            },
        }
        with self._lock:
            self._snapshot = snapshot
            self._history.append(point)

    def _buried(self, tubes_by_server: dict[str, list[str]]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        conns = {conn.address: conn for conn in self._conns}
        for address, tubes in tubes_by_server.items():
            wanted = (
                [t for t in tubes if t in self.config.tube]
                if _only_configured(self.config)
                else tubes
            )
            if not wanted:
                continue
            config = attrs.evolve(self.config, beanstalk=(address,), tube=tuple(wanted))
            servers = Servers(config, conns=[conns[address]])
            found = buried_jobs(config, BURIED_LIMIT, servers=servers, reasons=False)
            for row in found:
                del row["located"]
                key = (row["server"], int(row["id"]))
                if key not in self._reasons:
                    self._reasons[key] = row["reason"] or failure_reason(row["result"], self.config)
                row["reason"] = self._reasons[key]
                rows.append(row)
        current = {(row["server"], int(row["id"])) for row in rows}
        self._reasons = {k: v for k, v in self._reasons.items() if k in current}
        return rows

    def _worker(self, url: str) -> dict[str, Any]:
        base = url.rstrip("/")
        worker: dict[str, Any] = {"url": base, "up": False}
        try:
            health = self._http.get(base + "/health")
            worker["health"] = health.json()
            worker["up"] = True
            worker["healthy"] = health.status_code == 200
            metrics = self._http.get(base + "/metrics")
            worker.update(_worker_numbers(metrics.text))
        except (httpx.HTTPError, ValueError) as exc:
            worker["error"] = f"{type(exc).__name__}: {exc}"
        return worker

    def _recent(self) -> list[dict[str, Any]]:
        root = self.config.results_dir
        if root is None or not root.is_dir():
            return []
        found: list[tuple[float, Path]] = []
        seen = 0
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if not name.endswith(".json") or name.startswith("."):
                    continue
                seen += 1
                if seen > _RECENT_SCAN:
                    break
                path = Path(dirpath) / name
                try:
                    found.append((path.stat().st_mtime, path))
                except OSError:
                    continue
        found.sort(reverse=True)
        rows = []
        for mtime, path in found[:RECENT_LIMIT]:
            rel = path.relative_to(root).as_posix()
            row: dict[str, Any] = {"path": rel, "modified": mtime}
            if self.config.base_url:
                row["url"] = self.config.base_url.rstrip("/") + "/" + rel
            try:
                if path.stat().st_size <= _RECENT_BYTES:
                    doc = json.loads(path.read_bytes())
                    if isinstance(doc, dict):
                        error = doc.get("error")
                        if not isinstance(error, dict):
                            error = {}
                        row.update(
                            id=doc.get("id"),
                            type=doc.get("type"),
                            status=doc.get("status"),
                            timestamp=doc.get("timestamp"),
                            code=error.get("code"),
                        )
            except (OSError, ValueError):
                row["status"] = "unreadable"
            rows.append(row)
        return rows

    # -- what requests read ------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The last snapshot and the depth history, as JSON values."""
        with self._lock:
            snapshot, history = self._snapshot, list(self._history)
        return {
            "time": snapshot.time,
            "interval": self.config.dashboard_interval,
            "servers": snapshot.servers,
            "tubes": snapshot.tubes,
            "history": history,
            "workers": snapshot.workers,
            "buried": snapshot.buried,
            "recent": snapshot.recent,
        }

    def tube_rows(self) -> list[dict[str, Any]]:
        """The tube table of the last snapshot."""
        with self._lock:
            return list(self._snapshot.tubes)


def _only_configured(config: Config) -> bool:
    """Buried jobs of the configured tubes only when tubes were given, else of all tubes."""
    return config.sources.get("tube", "default") != "default"


def _worker_numbers(text: str) -> dict[str, Any]:
    """The few numbers the page shows, read from a worker's Prometheus exposition."""
    out: dict[str, Any] = {"jobs": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "jobrunner_jobs_total":
                outcome = sample.labels.get("outcome", "?")
                out["jobs"][outcome] = out["jobs"].get(outcome, 0) + int(sample.value)
            elif sample.name == "jobrunner_jobs_in_flight":
                out["in_flight"] = int(sample.value)
            elif sample.name == "process_resident_memory_bytes":
                out["memory_bytes"] = int(sample.value)
            elif sample.name == "jobrunner_build_info":
                out["version"] = sample.labels.get("version")
    return out


class _QueueCollector(Collector):
    """``jobrunner_queue_jobs`` from the poller's last snapshot: queue depth, exported once."""

    def __init__(self, poller: Poller) -> None:
        self._poller = poller

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "jobrunner_queue_jobs",
            "Jobs in each tube, by server, tube and state.",
            labels=["server", "tube", "state"],
        )
        for row in self._poller.tube_rows():
            for state in _STATES:
                depth.add_metric([row["server"], row["tube"], state], row[state])
        yield depth

    def describe(self) -> Iterator[Metric]:
        return iter(())


# -- the web app -----------------------------------------------------------------------------


def create_app(poller: Poller, *, token: str | None) -> Starlette:
    """The dashboard's Starlette app over a (started) :class:`Poller`."""
    registry = CollectorRegistry(auto_describe=True)
    Info("jobrunner_build", "The jobrunner release.", registry=registry).info(
        {"version": __version__, "python": platform.python_version()}
    )
    registry.register(_QueueCollector(poller))
    page = resources.files("jobrunner").joinpath("dashboard.html").read_text("utf-8")

    def authorised(request: Request) -> bool:
        if token is None:
            return True
        given = request.cookies.get(_COOKIE) or ""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        return hmac.compare_digest(given.encode(), token.encode())

    def refused() -> Response:
        return JSONResponse(
            {"error": "this dashboard needs its token: open it once as /?token=TOKEN"},
            status_code=401,
        )

    async def index(request: Request) -> Response:
        query_token = request.query_params.get("token")
        if token is not None and query_token is not None:
            if not hmac.compare_digest(query_token.encode(), token.encode()):
                return refused()
            response = RedirectResponse("/", status_code=303)  # the token leaves the URL
            response.set_cookie(_COOKIE, token, httponly=True, samesite="strict")
            return response
        if not authorised(request):
            return HTMLResponse(
                "<!doctype html><title>jobrunner dashboard</title>"
                "<p>This dashboard needs its token: open it once as <code>/?token=TOKEN</code>.",
                status_code=401,
            )
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    async def state(request: Request) -> Response:
        if not authorised(request):
            return refused()
        body = poller.state()
        body["can_kick"] = token is not None
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def kick(request: Request, payload: Any) -> Response:
        if token is None:
            return JSONResponse(
                {"error": "read-only: start the dashboard with --dashboard-token to kick jobs"},
                status_code=403,
            )
        if not isinstance(payload, dict):
            return JSONResponse({"error": 'expected {"server": ..., "id": ...}'}, 400)
        server, number = payload.get("server"), payload.get("id")
        if server not in poller.config.beanstalk or not isinstance(number, int):
            return JSONResponse({"error": "unknown server or job id"}, status_code=400)
        conn = Connection(server)
        try:
            stats = conn.stats_job(number)
            if stats.get("state") != "buried":
                return JSONResponse(
                    {"error": f"job {server}/{number} is {stats.get('state')}, not buried"},
                    status_code=409,
                )
            conn.kick_job(number)
        except JobNotFound:
            return JSONResponse({"error": f"no job {server}/{number}"}, status_code=404)
        except QueueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=502)
        finally:
            conn.close()
        log.info("dashboard_kicked", server=server, beanstalk_id=number, tube=stats.get("tube"))
        poller.poll()
        return JSONResponse({"kicked": f"{server}/{number}", "tube": stats.get("tube")})

    async def kick_endpoint(request: Request) -> Response:
        if not authorised(request):
            return refused()
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"error": "send JSON"}, status_code=415)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_KICK_BYTES:
                return JSONResponse({"error": "request too large"}, status_code=413)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "not valid JSON"}, status_code=400)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(kick, request, payload)

    async def metrics(request: Request) -> Response:
        if not authorised(request):
            return refused()
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/state", state),
            Route("/api/kick", kick_endpoint, methods=["POST"]),
            Route("/metrics", metrics),
        ]
    )


_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # Everything the page needs is inline; nothing is loaded from elsewhere.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_dashboard(config: Config) -> int:
    """Serve the dashboard until SIGINT/SIGTERM; return the exit code.

    Raises:
        ConfigError: a non-loopback address without ``--dashboard-token``.
    """
    import uvicorn

    if not _is_loopback(config.dashboard_host) and not config.dashboard_token:
        raise ConfigError(
            f"dashboard_host {config.dashboard_host} is not a loopback address: "
            "set --dashboard-token (or JOBRUNNER_DASHBOARD_TOKEN) to open it to others"
        )
    poller = Poller(config).start()
    app = create_app(poller, token=config.dashboard_token)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.dashboard_host,
            port=config.dashboard_port,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            server_header=False,
            timeout_graceful_shutdown=2,
        )
    )
    received: list[int] = []

    def note_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, note_signal)
    log.info(
        "dashboard_started",
        host=config.dashboard_host,
        port=config.dashboard_port,
        servers=list(config.beanstalk),
        workers=list(config.dashboard_worker),
        token=config.dashboard_token is not None,
    )
    code = 0
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot start
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        poller.stop()
    log.info("dashboard_stopped")
    return code
