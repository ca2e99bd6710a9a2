"""An example web portal: the web server's side of jobrunner, standard library only.

It plays the interactive web server of the design. It lists the sensors,
takes a forecast request (sensor, horizon, method), submits a ``prediction``
job with :class:`jobrunner.Client` and answers at once — it never waits for
the job. The page it answers with follows the job in the browser:
``static/follow.js`` polls the result document straight from the worker's
results server (another origin, read through CORS), shows a progress bar
while the job runs, then draws the history and the forecast with its
prediction interval as an SVG chart (``static/chart.js``), or shows the
error code when the job failed.

Routes:

``GET /``                    sensor list and the forecast form
``POST /forecast``           submit a job; 303 to the job's page
``GET /jobs/<id>?sensor=S``  the page following job ``id``
``GET /jobs/<id>/state``     the job's state as JSON (queued, running, cancelled, ...)
``POST /jobs/<id>/cancel``   cancel the job (the page's Cancel button)
``GET /simulate``            the PV and battery simulation form (``simulations.py``)
``POST /simulate``           submit a simulation; 303 to ``GET /simulations/<id>``
``GET /static/<file>``       the page's scripts and style sheet

Run ``python portal.py --help``; ``run.sh`` starts it with everything else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import re
import signal
import sys
import threading
import uuid
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import simulations
from households import find_household
from sensors import SENSORS, Sensor, find

from jobrunner import Client, InvalidJob
from jobrunner.errors import QueueError

STATIC = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
METHODS = ("auto", "holt_winters", "seasonal_naive_day", "seasonal_naive_week")
HORIZONS = ("6h", "12h", "24h", "48h")
UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
JOB_PATH = re.compile(f"/jobs/({UUID4})")
JOB_ACTION_PATH = re.compile(f"/jobs/({UUID4})/(state|cancel)")
SIMULATION_PATH = re.compile(f"/simulations/({UUID4})")
MAX_FORM_BYTES = 4096
# The worker stops a forecast that takes longer than this (the plugin needs well under a second).
JOB_TIMEOUT = 300


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL (what CORS and CSP compare)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Portal:
    """What the request handlers share: the job client and the URLs of the other services.

    Args:
        client: submits the jobs.
        inputs_url: base URL of the sensors' input files, as workers and browsers see it.
        results_url: base URL of the results server: the worker's ``--base-url``.
    """

    def __init__(self, client: Client, inputs_url: str, results_url: str) -> None:
        self.client = client
        self.inputs_url = inputs_url.rstrip("/") + "/"
        self.results_url = results_url.rstrip("/") + "/"
        # Job id -> ticket of the forecasts submitted here. A real portal keeps the
        # tickets with its users' data (a database row); this example keeps them in memory.
        self.tickets: dict[str, str] = {}
        self._lock = threading.Lock()

    def state(self, job_id: str) -> dict[str, Any] | None:
        """The job's state as the page wants it, or None for a job not submitted here."""
        with self._lock:
            ticket = self.tickets.get(job_id)
        if ticket is None:
            return None
        answer = self.client.status(ticket).as_dict()
        answer.pop("document")  # the page reads the document from the results server
        return answer

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Cancel a job submitted here; None for another job."""
        with self._lock:
            ticket = self.tickets.get(job_id)
        if ticket is None:
            return None
        done = self.client.cancel(ticket)
        return {"outcome": done.outcome, "message": done.message, "state": done.status.state}

    def input_url(self, sensor: Sensor) -> str:
        return self.inputs_url + sensor.file_name

    def result_url(self, job_id: str) -> str:
        return f"{self.results_url}portal/{job_id}.json"

    def submit(self, sensor: Sensor, horizon: str, method: str) -> str:
        """Put a ``prediction`` job for ``sensor``; return its id.

        Raises:
            InvalidJob: the job document is invalid.
            QueueError: beanstalkd did not take the job.
        """
        job_id = str(uuid.uuid4())
        job = self.client.submit(
            "prediction",
            self.input_url(sensor),
            self.result_url(job_id),
            {"horizon": horizon, "method": method, "level": 0.9},
            id=job_id,
            timeout=JOB_TIMEOUT,
            meta={"sensor": sensor.id, "portal": "example"},
        )
        with self._lock:
            self.tickets[job_id] = job.ticket
        return job_id

    def csp(self) -> str:
        """The pages' Content-Security-Policy: scripts from here, data from here (the job's
        state) and from the two servers."""
        connect = " ".join(["'self'", *sorted({origin(self.inputs_url), origin(self.results_url)})])
        return (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )


# -- pages -------------------------------------------------------------------------------


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def day(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%a %d %b %Y")


def page(title: str, body: str, scripts: Sequence[str] = ()) -> str:
    tags = "".join(f'<script src="/static/{esc(name)}" defer></script>' for name in scripts)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)} · jobrunner portal</title>"
        f'<link rel="stylesheet" href="/static/portal.css">{tags}</head>'
        f'<body><header><a href="/">jobrunner portal</a></header><main>{body}</main></body></html>'
    )


def index_page(portal: Portal) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{esc(sensor.name)}</td><td><code>{esc(sensor.id)}</code></td>"
        f"<td>{day(sensor.start)} &ndash; {day(sensor.end)}</td>"
        f"<td>{'offline' if sensor.offline else f'{sensor.weeks * 7 * 48} half-hours'}</td>"
        f'<td><a href="{esc(portal.input_url(sensor))}">JSON</a></td>'
        "</tr>"
        for sensor in SENSORS
    )
    sensor_options = "".join(
        f'<option value="{esc(sensor.id)}">{esc(sensor.name)}</option>' for sensor in SENSORS
    )
    method_options = "".join(
        f'<option value="{esc(m)}">{esc(m.replace("_", " "))}</option>' for m in METHODS
    )
    horizons = "".join(f'<option value="{esc(h)}">' for h in HORIZONS)
    body = f"""
<h1>Load forecasts</h1>
<p>Each sensor serves four weeks of half-hourly electricity demand (MW): slices of the
England &amp; Wales demand of June&ndash;August 2000 (Taylor, 2003).</p>
<table id="sensors">
<thead><tr><th>Sensor</th><th>Id</th><th>Period (UTC)</th><th>Readings</th><th>Input</th>
</tr></thead>
<tbody>{rows}</tbody>
</table>
<h2>Request a forecast</h2>
<form id="forecast-form" method="post" action="/forecast">
<label>Sensor <select name="sensor" id="sensor">{sensor_options}</select></label>
<label>Horizon <input name="horizon" id="horizon" value="24h" list="horizons" required
 maxlength="32" size="8"></label>
<datalist id="horizons">{horizons}</datalist>
<label>Method <select name="method" id="method">{method_options}</select></label>
<button type="submit" id="submit">Forecast</button>
</form>
<p class="note">The forecast runs on a worker; the next page follows it there.</p>
<p><a id="simulate-link" href="/simulate">PV and battery simulation</a> for a household.</p>
"""
    return page("Load forecasts", body)


def job_page(portal: Portal, job_id: str, sensor: Sensor) -> str:
    result_url = portal.result_url(job_id)
    body = f"""
<h1>Forecast for {esc(sensor.name)}</h1>
<div id="job" data-job-id="{esc(job_id)}" data-result-url="{esc(result_url)}"
 data-history-url="{esc(portal.input_url(sensor))}" data-status="submitted"
 data-state-url="/jobs/{esc(job_id)}/state" data-cancel-url="/jobs/{esc(job_id)}/cancel">
<p>Job <code>{esc(job_id)}</code> · result document
 <a id="result-link" href="{esc(result_url)}">{esc(result_url)}</a></p>
<div id="state">
<p id="status-text">Submitted; waiting for a worker…</p>
<progress id="progress" max="1"></progress>
<p><button type="button" id="cancel">Cancel</button></p>
</div>
<div id="error" role="alert" hidden>
<p><strong>The forecast failed:</strong> <code id="error-code"></code></p>
<p id="error-message"></p>
</div>
<figure id="chart-box" hidden>
<div id="chart"></div>
<figcaption id="summary"></figcaption>
</figure>
<p id="history-note" class="note" hidden></p>
</div>
<p><a href="/">Another forecast</a></p>
"""
    return page(f"Forecast for {sensor.name}", body, ["chart.js", "follow.js"])


def message_page(title: str, text: str) -> str:
    body = f'<h1>{esc(title)}</h1><p id="message">{esc(text)}</p><p><a href="/">Back</a></p>'
    return page(title, body)


# -- HTTP --------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """One request. HTTP/1.0: one request per connection, so no thread idles on keep-alive."""

    server: PortalServer
    server_version = "jobrunner-portal"

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/":
            self.send_html(HTTPStatus.OK, index_page(self.server.portal))
        elif path.startswith("/static/"):
            self.send_static(path.removeprefix("/static/"))
        elif path == "/simulate":
            self.send_html(HTTPStatus.OK, page("PV and battery", simulations.form_page(esc)))
        elif match := SIMULATION_PATH.fullmatch(path):
            household = find_household(parse_qs(query).get("household", [""])[0])
            if household is None:
                self.send_message(HTTPStatus.NOT_FOUND, "Unknown household", "No such household.")
                return
            portal = self.server.portal
            body = simulations.simulation_page(
                esc, match[1], portal.result_url(match[1]), household
            )
            scripts = ["simulation.js", "follow.js"]
            self.send_html(HTTPStatus.OK, page(f"Simulation for {household.name}", body, scripts))
        elif (match := JOB_ACTION_PATH.fullmatch(path)) and match[2] == "state":
            self.send_job_json(self.server.portal.state, match[1])
        elif match := JOB_PATH.fullmatch(path):
            sensor = find(parse_qs(query).get("sensor", [""])[0])
            if sensor is None:
                self.send_message(HTTPStatus.NOT_FOUND, "Unknown sensor", "No such sensor.")
            else:
                self.send_html(HTTPStatus.OK, job_page(self.server.portal, match[1], sensor))
        else:
            self.send_message(HTTPStatus.NOT_FOUND, "Not found", f"Nothing at {path}.")

    def do_POST(self) -> None:
        if (match := JOB_ACTION_PATH.fullmatch(self.path)) and match[2] == "cancel":
            self.send_job_json(self.server.portal.cancel, match[1])
            return
        if self.path not in ("/forecast", "/simulate"):
            self.send_message(HTTPStatus.NOT_FOUND, "Not found", f"Nothing at {self.path}.")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_FORM_BYTES:
            self.send_message(HTTPStatus.BAD_REQUEST, "Bad request", "Empty or oversized form.")
            return
        form = parse_qs(self.rfile.read(length).decode("utf-8", errors="replace"))
        if self.path == "/simulate":
            self.submit_simulation(form)
            return
        sensor = find(form.get("sensor", [""])[0])
        horizon = form.get("horizon", [""])[0].strip()
        method = form.get("method", ["auto"])[0]
        if sensor is None or method not in METHODS or not 0 < len(horizon) <= 32:
            self.send_message(
                HTTPStatus.BAD_REQUEST, "Bad request", "Choose a sensor, a method and a horizon."
            )
            return
        # The horizon is passed on as typed: the job type validates its params, and
        # a bad one comes back as an invalid_params failure on the job's page.
        try:
            job_id = self.server.portal.submit(sensor, horizon, method)
        except (InvalidJob, QueueError) as exc:
            self.log_message("submit failed: %s", exc)
            self.send_message(
                HTTPStatus.SERVICE_UNAVAILABLE, "Not submitted", f"The job was not queued: {exc}"
            )
            return
        self.log_message("submitted job %s for %s", job_id, sensor.id)
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", f"/jobs/{job_id}?sensor={quote(sensor.id)}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def submit_simulation(self, form: dict[str, list[str]]) -> None:
        household = find_household(form.get("household", [""])[0])
        if household is None:
            self.send_message(HTTPStatus.BAD_REQUEST, "Bad request", "Choose a household.")
            return
        try:
            job_id = simulations.submit(self.server.portal, household, form)
        except (InvalidJob, QueueError) as exc:
            self.log_message("submit failed: %s", exc)
            self.send_message(
                HTTPStatus.SERVICE_UNAVAILABLE, "Not submitted", f"The job was not queued: {exc}"
            )
            return
        self.log_message("submitted simulation %s for %s", job_id, household.id)
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", f"/simulations/{job_id}?household={quote(household.id)}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send_job_json(self, action: Any, job_id: str) -> None:
        """Answer ``action(job_id)`` as JSON: 404 for a job not submitted here, 503
        when beanstalkd cannot be reached."""
        try:
            answer = action(job_id)
        except QueueError as exc:
            status, answer = HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)}
        else:
            status = HTTPStatus.OK if answer is not None else HTTPStatus.NOT_FOUND
        body = json.dumps(answer or {"error": "no such job here"}).encode()
        self.send_body(status, body, "application/json", [("Cache-Control", "no-store")])

    def send_html(self, status: HTTPStatus, text: str) -> None:
        self.send_body(
            status,
            text.encode(),
            "text/html; charset=utf-8",
            [("Content-Security-Policy", self.server.portal.csp()), ("Cache-Control", "no-store")],
        )

    def send_message(self, status: HTTPStatus, title: str, text: str) -> None:
        self.send_html(status, message_page(title, text))

    def send_static(self, name: str) -> None:
        path = STATIC / name
        kind = STATIC_TYPES.get(path.suffix)
        if "/" in name or name.startswith(".") or kind is None or not path.is_file():
            self.send_message(HTTPStatus.NOT_FOUND, "Not found", "No such file.")
            return
        self.send_body(HTTPStatus.OK, path.read_bytes(), kind, [("Cache-Control", "no-cache")])

    def send_body(
        self, status: HTTPStatus, body: bytes, kind: str, headers: Sequence[tuple[str, str]]
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"portal: {self.address_string()} {format % args}\n")


class PortalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], portal: Portal) -> None:
        super().__init__(address, Handler)
        self.portal = portal


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The example portal (see README.rst).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--beanstalk", action="append", help="HOST:PORT, repeatable (default 127.0.0.1:11300)"
    )
    parser.add_argument("--tube", default="default")
    parser.add_argument("--inputs-url", required=True, help="base URL of the sensors' inputs")
    parser.add_argument(
        "--results-url", required=True, help="base URL of the results (the worker's --base-url)"
    )
    args = parser.parse_args(argv)
    client = Client(args.beanstalk or ["127.0.0.1:11300"], tube=args.tube)
    portal = Portal(client, args.inputs_url, args.results_url)
    # SIGTERM (run.sh, the tests) stops the server like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with PortalServer((args.host, args.port), portal) as server:
        host, port = server.server_address[:2]
        print(f"portal: listening on http://{host}:{port}/", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except (KeyboardInterrupt, SystemExit):
            pass
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
