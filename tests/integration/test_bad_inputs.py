"""The bad-input table: one real worker, real servers, and a row for each way a job can be bad.

Job documents are untrusted. Each row submits one bad job (with
:class:`jobrunner.Client` when its shape is valid, over a raw socket when it
is not; the rows the Client must refuse never reach the queue) and checks
that:

* the job ends buried, with the expected error code in the worker's log
  and, where the result URL is usable, in the ``failed`` document served at
  that URL (and no file at all where it is not);
* the error message names the intended reason (a loopback address is
  refused as loopback, not as a connection error);
* nothing appeared, changed or vanished outside the results directory, and
  no refused input URL ever reached the inputs server;
* the very same worker process is alive and then runs a good job.

Traffic goes to loopback only. The worker allows ``--allow-host localhost``
(and ``*.example.test``, which no resolver answers, for the malformed host
names), so the inputs server is reached by that name while every literal
loopback form (``127.0.0.1``, ``127.0.0.2``, ``[::1]``, ``2130706433``, ...)
is a refused address; the policy for private, link-local and public
addresses is unit-tested without connecting (``tests/unit/test_policy.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import importlib.util
import json
import math
import os
import re
import resource
import socket
import stat
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from jobrunner import Client
from jobrunner.errors import ERROR_CODES, InvalidJob, JobNotFound, failure_for_code
from jobrunner.queue import Connection
from tests.support import (
    IN_CI,
    Beanstalkd,
    LoggedProcess,
    RawServer,
    ResultsServer,
    answer_lifespan,
    free_port,
    jobrunner_cmd,
    pid_alive,
    put_raw,
    wait_for,
    wait_for_port,
    wait_for_status,
    worker_env,
)

pytestmark = pytest.mark.integration

MAX_INPUT_BYTES = 250_000  # room for the 100 000-deep JSON (200 000 bytes) to be judged on depth
FETCH_TIMEOUT = 3
DEEP = 100_000
GOOD_INPUT = {"ok": True}


# -- weather inputs of the simulation job type: a day of hours, good and bad ------------------

WEATHER_START = 1_687_305_600  # 2023-06-21 00:00 UTC
WEATHER_HEADER = "time,ghi,dni,dhi,temp_air,wind_speed"


def weather_rows() -> list[list[Any]]:
    """A clear day, hourly: ``[unix_ts, ghi, dni, dhi, temp_air, wind_speed]`` per row."""
    rows: list[list[Any]] = []
    for hour in range(24):
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 12))
        rows.append([WEATHER_START + 3600 * hour, 800 * sun, 700 * sun, 100 * sun, 20.0, 2.0])
    return rows


def weather_csv(rows: list[list[Any]], header: str = WEATHER_HEADER) -> bytes:
    return (header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)).encode()


def _weather_with(row: int, column: int, value: Any) -> bytes:
    rows = weather_rows()
    rows[row][column] = value
    return weather_csv(rows)


def _weather_swapped(first: int) -> bytes:
    rows = weather_rows()
    rows[first], rows[first + 1] = rows[first + 1], rows[first]
    return weather_csv(rows)


#: What the inputs server serves for the simulation rows (paths below /sim/).
SIMULATION_INPUTS: dict[str, tuple[str, bytes]] = {
    "load.json": (
        "application/json",
        json.dumps(
            {"unit": "W", "readings": [[WEATHER_START + 3600 * h, 500.0] for h in range(24)]}
        ).encode(),
    ),
    "weather.csv": ("text/csv", weather_csv(weather_rows())),
    "weather-no-dhi.csv": (
        "text/csv",
        weather_csv([r[:3] + r[4:] for r in weather_rows()], WEATHER_HEADER.replace(",dhi", "")),
    ),
    "weather-nan-ghi.csv": ("text/csv", _weather_with(2, 1, "NaN")),
    "weather-out-of-order.csv": ("text/csv", _weather_swapped(4)),
    "weather-ghi-1e9.csv": ("text/csv", _weather_with(12, 1, "1e9")),
}

#: The simulation plugin runs in the worker's child; it brings pvlib. Missing locally: the
#: rows are skipped; under CI they run (and fail with unknown_type).
NEEDS_SIMULATION = pytest.mark.skipif(
    importlib.util.find_spec("jobrunner_simulation") is None and not IN_CI,
    reason="the simulation plugin is not installed: pip install -e plugins/jobrunner-simulation",
)


# -- the inputs server: a small ASGI app on uvicorn, in a thread ------------------------------


class InputsApp:
    """Serves good and bad inputs; records every request line (path and query)."""

    def __init__(self, files_dir: Path) -> None:
        self.files_dir = files_dir
        self.seen: list[str] = []
        self.held = threading.Event()  # lets /held.json answer
        deep = b"[" * DEEP + b"]" * DEEP
        self.fixed: dict[str, tuple[int, dict[str, str], bytes]] = {
            "/good.json": (
                200,
                {"content-type": "application/json"},
                json.dumps(GOOD_INPUT).encode(),
            ),
            "/404": (404, {"content-type": "text/plain"}, b"no such input"),
            "/500": (500, {"content-type": "text/plain"}, b"upstream broke"),
            "/429": (429, {"content-type": "text/plain", "retry-after": "1"}, b"slow down"),
            "/redirect-private": (302, {"location": "http://10.0.0.1/meters.json"}, b""),
            "/redirect-file": (302, {"location": "file:///etc/passwd"}, b""),
            "/redirect-allowed-file": (
                302,
                {"location": (files_dir / "good.json").as_uri()},
                b"",
            ),
            "/loop": (302, {"location": "/loop"}, b""),
            "/redirect-bad-name": (302, {"location": "http://a..b.example.test/x.json"}, b""),
            "/redirect-unparsable": (302, {"location": "http:\\\\][::1]~\u00df/:99999/"}, b""),
            "/redirect-bad-punycode": (
                302,
                {"location": "http://xn--ls8h.example.test/x.json"},
                b"",
            ),
            "/redirect-long-label": (
                302,
                {"location": "http://" + "a" * 64 + ".example.test/x.json"},
                b"",
            ),
            "/huge": (200, {"content-type": "application/json"}, b" " * 300_000 + b"{}"),
            "/bomb": (
                200,
                {"content-type": "application/json", "content-encoding": "gzip"},
                gzip.compress(b" " * (20 * 1024 * 1024) + b"{}"),
            ),
            "/bomb-deflate": (
                200,
                {"content-type": "application/json", "content-encoding": "deflate"},
                zlib.compress(b" " * (20 * 1024 * 1024) + b"{}"),
            ),
            "/brotli": (
                200,
                {"content-type": "application/json", "content-encoding": "br"},
                b"\x0b\x01\x80{}\x03",  # brotli for "{}": never decoded, refused by name
            ),
            "/stacked": (
                200,
                {"content-type": "application/json", "content-encoding": "gzip, gzip"},
                gzip.compress(gzip.compress(b"{}")),
            ),
            "/corrupt-gzip": (
                200,
                {"content-type": "application/json", "content-encoding": "gzip"},
                b"this is not gzip data at all",
            ),
            "/invalid.json": (200, {"content-type": "application/json"}, b'{"meters": [1, 2'),
            "/nan.json": (200, {"content-type": "application/json"}, b'{"kwh": NaN}'),
            "/deep.json": (200, {"content-type": "application/json"}, deep),
            "/deep65.json": (200, {"content-type": "application/json"}, b"[" * 65 + b"]" * 65),
            "/latin1.json": (200, {"content-type": "application/json"}, b'{"name": "M\xfcller"}'),
            "/overflow.json": (200, {"content-type": "application/json"}, b'{"kwh": 1e400}'),
        }
        for name, (content_type, body) in SIMULATION_INPUTS.items():
            self.fixed[f"/sim/{name}"] = (200, {"content-type": content_type}, body)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        path = scope["path"]
        query = scope["query_string"].decode("latin-1")
        self.seen.append(path + ("?" + query if query else ""))

        async def start(status: int, headers: dict[str, str]) -> None:
            raw = [(k.encode(), v.encode()) for k, v in headers.items()]
            await send({"type": "http.response.start", "status": status, "headers": raw})

        if path in self.fixed:
            status, headers, body = self.fixed[path]
            await start(status, {**headers, "content-length": str(len(body))})
            await send({"type": "http.response.body", "body": body})
        elif path == "/redirect-loopback":
            port = scope["server"][1]
            location = f"http://127.0.0.2:{port}/good.json?via=redirect-loopback"
            await start(302, {"location": location, "content-length": "0"})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/huge-chunked":  # no Content-Length: only counting the body stops it
            await start(200, {"content-type": "application/octet-stream"})
            for _ in range(20):
                await send({"type": "http.response.body", "body": b"x" * 16384, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/sim/weather-endless.csv":  # valid rows without end (1 MiB at most)
            await start(200, {"content-type": "text/csv"})
            await send(
                {
                    "type": "http.response.body",
                    "body": b"time,ghi,dni,dhi,temp_air,wind_speed\n",
                    "more_body": True,
                }
            )
            hour = WEATHER_START
            for _ in range(64):
                chunk = bytearray()
                while len(chunk) < 16384:
                    chunk += f"{hour},0,0,0,15.5,1.0\n".encode()
                    hour += 3600
                await send({"type": "http.response.body", "body": bytes(chunk), "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/drip":  # a byte every 0.2 s: never idle long enough for a read time-out
            await self._drip(start, receive, send)
        elif path == "/held.json":  # the good input, once the test lets it go (20 s at most)
            for _ in range(400):
                if self.held.is_set():
                    break
                await asyncio.sleep(0.05)
            body = json.dumps(GOOD_INPUT).encode()
            await start(200, {"content-type": "application/json", "content-length": str(len(body))})
            await send({"type": "http.response.body", "body": body})
        else:
            await start(404, {"content-length": "0"})
            await send({"type": "http.response.body", "body": b""})

    async def _drip(self, start: Any, receive: Any, send: Any) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        await start(200, {"content-type": "application/octet-stream"})
        for _ in range(50):  # at most 10 s; the worker gives up after FETCH_TIMEOUT and hangs up
            await asyncio.sleep(0.2)
            if gone.is_set():
                return
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        watcher.cancel()
        await send({"type": "http.response.body", "body": b""})


class InputsServer:
    """uvicorn serving :class:`InputsApp` on 127.0.0.1, in a daemon thread."""

    def __init__(self, files_dir: Path) -> None:
        self.app = InputsApp(files_dir)
        self.port = free_port()
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> InputsServer:
        self.thread.start()
        wait_for(lambda: self.server.started or not self.thread.is_alive(), 15, what="uvicorn")
        assert self.thread.is_alive(), "the inputs server did not start"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


RAW_JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
#: What the raw inputs server answers by path: what no HTTP framework would send.
RAW_ANSWERS = {
    b"/not-http": b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    b"/cut-short": RAW_JSON + b'Content-Length: 100\r\n\r\n{"meters": [1, 2',
    b"/transfer-encoding-gzip": RAW_JSON + b"Transfer-Encoding: gzip\r\n\r\n",
    b"/bad-chunk": RAW_JSON + b"Transfer-Encoding: chunked\r\n\r\n-5\r\n{}\r\n0\r\n\r\n",
}


def answer_raw(server: RawServer, conn: socket.socket) -> None:
    """Answer one request of the raw inputs server by its path, then shut the connection."""
    head = server.read_request(conn)
    if head is None:
        return
    path = head.split(b" ", 2)[1].split(b"?", 1)[0]
    if path == b"/endless-head":
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for i in range(1000):  # bounded; the worker hangs up after 64 KiB
            if server.stopping.is_set():
                return
            conn.sendall(b"X-Filler-%d: %s\r\n" % (i, b"f" * 200))
    elif path == b"/endless-chunk":
        conn.sendall(RAW_JSON + b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\n")
        for _ in range(1000):  # 16 MiB at most; the worker stops at its limit
            if server.stopping.is_set():
                return
            conn.sendall(b" " * 16384)
    else:
        conn.sendall(RAW_ANSWERS.get(path, b"HTTP/1.1 404 Not Found\r\n\r\n"))
    conn.shutdown(socket.SHUT_WR)


# -- the bench: one beanstalkd, three HTTP servers (one raw), one worker for the whole table -------


@dataclasses.dataclass
class Bench:
    sandbox: Path  # everything the worker could reach on disk; only results/ may change
    results_dir: Path
    files_dir: Path
    beanstalkd: Beanstalkd
    results: ResultsServer
    inputs: InputsServer
    raw_inputs: RawServer
    worker: LoggedProcess
    worker_pid: int
    queue: Connection
    client: Client
    values: dict[str, str]
    buried: int = 0

    def fill(self, value: Any, name: str) -> Any:
        """Replace the ``{in}``, ``{raw}``, ``{res}``, ``{files}``, ``{name}`` placeholders."""
        values = {**self.values, "{name}": name}
        if isinstance(value, str):
            for key, text in values.items():
                value = value.replace(key, text)
            return value
        if isinstance(value, bytes):
            for key, text in values.items():
                value = value.replace(key.encode(), text.encode())
            return value
        if isinstance(value, dict):
            return {self.fill(k, name): self.fill(v, name) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v, name) for v in value]
        return value


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    """One worker (``--allow-host localhost``) with its beanstalkd and servers."""
    root = tmp_path_factory.mktemp("bad-inputs")
    sandbox = root / "sandbox"
    outside = sandbox / "outside"
    outside.mkdir(parents=True)
    (sandbox / "secret.json").write_text('{"secret": "must not be read"}')
    files_dir = sandbox / "inputs"
    (files_dir / "dir").mkdir(parents=True)
    (files_dir / "good.json").write_text(json.dumps(GOOD_INPUT))
    (files_dir / "big.json").write_bytes(b" " * 300_000 + b"{}")
    (files_dir / "escape.json").symlink_to("../secret.json")
    results_dir = sandbox / "www" / "results"
    results_dir.mkdir(parents=True)
    (results_dir / "escape").symlink_to(outside)
    (results_dir / "linked.json").symlink_to(outside / "linked.json")
    (results_dir / "blocked-by-dir.json").mkdir()  # a directory where a result must go
    (results_dir / "blocked-by-file").write_text("a file where a directory must go")
    (results_dir / "loop").symlink_to("loop")  # a symlink loop where a directory must go

    # A larger max-job-size than the Client's, so an oversized raw document reaches the worker.
    beanstalkd = Beanstalkd(binlog_dir=root / "binlog", max_job_size=1_000_000).start()
    results = ResultsServer(results_dir)
    inputs = InputsServer(files_dir).start()
    raw_inputs = RawServer(answer_raw)
    worker = LoggedProcess(
        jobrunner_cmd(
            "work",
            "--beanstalk",
            beanstalkd.address,
            "--concurrency",
            "1",
            "--results-dir",
            str(results_dir),
            "--base-url",
            results.base_url,
            "--allow-host",
            "localhost",
            # A wildcard, so that host names only the resolver can refuse reach it.
            "--allow-host",
            "*.example.test",
            "--allow-file-inputs",
            str(files_dir),
            "--max-input-bytes",
            str(MAX_INPUT_BYTES),
            "--connect-timeout",
            "2",
            "--read-timeout",
            "2",
            "--fetch-timeout",
            str(FETCH_TIMEOUT),
            "--max-attempts",
            "2",
            "--retry-base",
            "1",
            "--retry-max",
            "1",
        ),
        env=worker_env(),
    )
    queue = Connection(beanstalkd.address)
    client = Client(beanstalkd.address)
    try:
        worker.wait_event("worker_started", timeout=30)
        bench = Bench(
            sandbox=sandbox,
            results_dir=results_dir,
            files_dir=files_dir,
            beanstalkd=beanstalkd,
            results=results,
            inputs=inputs,
            raw_inputs=raw_inputs,
            worker=worker,
            worker_pid=worker.pid,
            queue=queue,
            client=client,
            values={
                "{in}": f"http://localhost:{inputs.port}/",
                "{raw}": f"http://localhost:{raw_inputs.port}/",
                "{port}": str(inputs.port),
                "{port+65536}": str(inputs.port + 65536),
                "{res}": results.base_url,
                "{files}": str(files_dir),
            },
        )
        yield bench
    finally:
        client.close()
        queue.close()
        worker.stop()
        inputs.stop()
        raw_inputs.stop()
        results.stop()
        beanstalkd.stop()


# -- helpers -------------------------------------------------------------------------------------


def tree(top: Path, skip: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below ``top`` but inside ``skip``: type, and size and mtime for non-dirs."""
    out: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != skip]
        for name in dirnames + filenames:
            info = (here / name).lstat()
            kind = stat.S_IFMT(info.st_mode)
            sized = (0, 0) if stat.S_ISDIR(info.st_mode) else (info.st_size, info.st_mtime_ns)
            out[str((here / name).relative_to(top))] = (kind, *sized)
    return out


def listing(directory: Path) -> set[str]:
    """Every path below ``directory`` (dot-named temp files too), symlinks not followed."""
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


def safe_name(test_id: str) -> str:
    """The row's id as a job id and result file name."""
    return re.sub(r"[^A-Za-z0-9]+", "-", test_id).strip("-")[:100]


def wait_buried(bench: Bench, beanstalk_id: int, slot_errors: int, timeout: float = 30.0) -> None:
    """Wait until beanstalkd says the job is buried; fail at once if it was deleted or the
    worker's slot choked on it (``slot_error``: the job stays reserved and comes back)."""

    def state() -> str | None:
        errors = bench.worker.find("slot_error")
        if len(errors) > slot_errors:
            raise AssertionError(f"the worker's slot failed on the job: {errors[-1]}")
        try:
            found = bench.queue.stats_job(beanstalk_id)["state"]
        except JobNotFound:
            raise AssertionError(
                f"job {beanstalk_id} was deleted, not buried; log tail:\n"
                + "\n".join(bench.worker.lines[-15:])
            ) from None
        return "buried" if found == "buried" else None

    wait_for(state, timeout, interval=0.05, what=f"job {beanstalk_id} buried")


def remove_unburied(bench: Bench, beanstalk_id: int) -> None:
    """Delete a job that a failed row left behind, so it cannot disturb the rows after it.

    A job the worker still holds cannot be deleted from another connection: pause the
    tube so the worker cannot take it again, wait for its TTR to run out, delete it.
    """
    try:
        state = bench.queue.stats_job(beanstalk_id)["state"]
    except JobNotFound:
        return
    if state == "buried":
        return
    if state == "reserved":
        assert bench.beanstalkd.command("pause-tube default 60").startswith(b"PAUSED")
        try:

            def released() -> bool:
                try:
                    return bool(bench.queue.stats_job(beanstalk_id)["state"] != "reserved")
                except JobNotFound:
                    return True

            wait_for(released, 30, what=f"job {beanstalk_id} released")
            with contextlib.suppress(JobNotFound):
                bench.queue.delete(beanstalk_id)
        finally:
            bench.beanstalkd.command("pause-tube default 0")
        return
    with contextlib.suppress(JobNotFound):
        bench.queue.delete(beanstalk_id)


def assert_worker_alive(bench: Bench) -> None:
    assert bench.worker.pid == bench.worker_pid
    assert bench.worker.proc.poll() is None, "the worker process exited"
    assert pid_alive(bench.worker_pid)


def run_good_job(bench: Bench, name: str) -> None:
    """The same worker runs a good job to completion."""
    with_input = bench.fill("{in}good.json", name)
    bench.client.submit("echo", with_input, bench.results.base_url + f"good-{name}.json")
    doc = wait_for_status(bench.results_dir / f"good-{name}.json", timeout=30)
    assert doc["status"] == "done", doc
    assert doc["data"]["input"] == GOOD_INPUT
    # The final marker follows the document: wait for it too, or it lands in the next
    # row's listing of what that row added.
    marker = bench.results_dir / ".final" / f"good-{name}.json"
    wait_for(marker.exists, 30, what=f"the final marker of good-{name}.json")


# -- the table -------------------------------------------------------------------------------------

DROP = object()
CREATED = "2026-01-01T00:00:00Z"


def job(**changes: Any) -> dict[str, Any]:
    """A valid job document template; ``field=DROP`` removes a field."""
    doc: dict[str, Any] = {
        "v": 1,
        "id": "{name}",
        "type": "echo",
        "input": "{in}good.json",
        "result": "{res}{name}.json",
        "created": CREATED,
    }
    for key, value in changes.items():
        if value is DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def raw_job(**changes: Any) -> bytes:
    """A job document template as bytes (it may hold NaN: json.dumps writes it)."""
    return json.dumps(job(**changes)).encode()


@dataclasses.dataclass(frozen=True)
class Bad:
    """One bad input.

    Attributes:
        code: the error code the job must fail with.
        says: a phrase the error message must hold: the job failed for the intended reason.
        doc: the job document template (dict) or raw body template (bytes).
        via: ``client`` (jobrunner.Client puts it), ``raw`` (put over a bare socket) or
            ``refused`` (the Client must refuse it: nothing reaches the queue).
        published: a ``failed`` document appears at the result URL.
        attempts: the attempt the failed document reports.
        ttr: beanstalkd time-to-run (short for rows a known bug leaves reserved).
    """

    code: str
    says: str
    doc: dict[str, Any] | bytes = dataclasses.field(default_factory=job)
    via: str = "client"
    published: bool = True
    attempts: int = 1
    ttr: int = 60


def row(test_id: str, bad: Bad, *marks: Any) -> Any:
    return pytest.param(bad, id=test_id, marks=marks)


def refused(test_id: str, phrase: str, *marks: Any, **changes: Any) -> Any:
    """A row the Client refuses before anything is put."""
    bad = Bad("invalid_job", phrase, job(**changes), via="refused", published=False)
    return row(test_id, bad, *marks)


def bad_input(test_id: str, url: Any, code: str, says: str, *marks: Any, **more: Any) -> Any:
    """A row whose input URL (or what it serves) is bad."""
    attempts = more.pop("attempts", 1)
    return row(test_id, Bad(code, says, job(input=url, **more), attempts=attempts), *marks)


def bad_result(test_id: str, url: str, says: str, *marks: Any, ttr: int = 60) -> Any:
    """A row whose result URL must be refused: no document anywhere."""
    bad = Bad("result_refused", says, job(result=url), published=False, ttr=ttr)
    return row(test_id, bad, *marks)


def simulation_weather(test_id: str, weather: str, code: str, says: str, **more_inputs: str) -> Any:
    """A ``simulation`` job (PV modelled from weather) whose weather input is bad."""
    inputs = {"load": "{in}sim/load.json", "weather": "{in}sim/" + weather, **more_inputs}
    params = {"pv_kwp": 4.0, "latitude": 36.1, "longitude": -79.9, "battery_kwh": 5.0}
    bad = Bad(code, says, job(type="simulation", input=inputs, params=params))
    return row(test_id, bad, NEEDS_SIMULATION)


OVERFLOWING_TIME = "0001-01-01T00:00:00+23:59"  # a valid RFC 3339 form, but year 0 in UTC

DEEP_DOC = (
    raw_job()[:-1] + b', "meta": {"deep": ' + b"[" * 30_000 + b"]" * 30_000 + b"}}"
)  # 60 000 bytes, under beanstalkd's default job size: refused for its depth

TABLE = [
    # -- the job document itself (put raw, as any client in any language could) --
    row(
        "body-not-json",
        Bad("invalid_job", "not valid JSON", b"hello, beanstalk", via="raw", published=False),
    ),
    row(
        "body-not-utf8",
        Bad("invalid_job", "UTF-8", b'{"id": "\xff\xfe"}', via="raw", published=False),
    ),
    row(
        "body-json-array",
        Bad(
            "invalid_job",
            "must be a JSON object",
            b'[{"type": "echo"}]',
            via="raw",
            published=False,
        ),
    ),
    row(
        "body-json-string",
        Bad("invalid_job", "must be a JSON object", b'"echo"', via="raw", published=False),
    ),
    row(
        "missing-created",
        Bad("invalid_job", "created: required field missing", raw_job(created=DROP), via="raw"),
    ),
    row(
        "missing-type",
        Bad("invalid_job", "type: required field missing", raw_job(type=DROP), via="raw"),
    ),
    row(
        "unknown-field-tpye",
        Bad("invalid_job", "tpye: unknown field", raw_job(tpye="echo"), via="raw"),
    ),
    row(
        "unsupported-version-2", Bad("invalid_job", "unsupported version", raw_job(v=2), via="raw")
    ),
    row(
        "params-not-an-object",
        Bad("invalid_job", "params: must be a JSON object", raw_job(params=[1, 2]), via="raw"),
    ),
    row(
        "timeout-negative",
        Bad("invalid_job", "timeout: must be a number above 0", raw_job(timeout=-5), via="raw"),
    ),
    row(
        "id-with-path-traversal",
        Bad("invalid_job", "id: must be", raw_job(id="../../etc/passwd"), via="raw"),
    ),
    row(
        "id-trailing-newline",
        Bad("invalid_job", "id: must be", raw_job(id="{name}\n"), via="raw"),
    ),
    row(
        "type-trailing-newline",
        Bad("invalid_job", "type: must be a job type name", raw_job(type="echo\n"), via="raw"),
    ),
    row(
        "input-name-trailing-newline",
        Bad(
            "invalid_job",
            "invalid input name",
            raw_job(input={"load\n": "{in}good.json"}),
            via="raw",
        ),
    ),
    row(
        "type-with-path",
        Bad("invalid_job", "type: must be a job type name", raw_job(type="../evil"), via="raw"),
    ),
    row(
        "input-relative-url-raw",
        Bad("invalid_job", "fully qualified URL", raw_job(input="good.json"), via="raw"),
    ),
    row(
        "nan-in-params",
        Bad(
            "invalid_job",
            "NaN is not valid JSON",
            raw_job(params={"x": float("nan")}),
            via="raw",
        ),
    ),
    row(
        "document-nested-30000-deep",
        Bad("invalid_job", "nests deeper than 64", DEEP_DOC, via="raw", published=False),
    ),
    row(
        "document-over-65535-bytes-raw",
        Bad("invalid_job", "the limit is 65535", raw_job(params={"pad": "x" * 100_000}), via="raw"),
    ),
    row(
        "created-overflows-in-utc",
        Bad(
            "invalid_job",
            "created:",
            raw_job(created=OVERFLOWING_TIME),
            via="raw",
            ttr=2,
        ),
    ),
    row(
        "meta-number-overflows-1e400",
        Bad(
            "invalid_job",
            "not valid JSON",
            raw_job()[:-1] + b', "meta": {"kwh": 1e400}}',
            via="raw",
        ),
    ),
    row(
        "id-lone-surrogate",
        Bad("invalid_job", "unpaired surrogate", raw_job(id="\ud800"), via="raw"),
    ),
    row(
        "input-lone-surrogate-raw",
        Bad("invalid_job", "unpaired surrogate", raw_job(input="{in}good\ud800.json"), via="raw"),
    ),
    row(
        "invalid-job-with-escaping-result",
        Bad(
            "invalid_job",
            "created: required field missing",
            raw_job(created=DROP, result="{res}a/../../{name}.json"),
            via="raw",
            published=False,
        ),
    ),
    # -- refused at the client: nothing reaches the queue --
    refused("client-relative-input-url", "fully qualified URL", input="/good.json"),
    refused("client-javascript-input-url", "fully qualified URL", input="javascript:alert(1)"),
    refused("client-relative-result-url", "fully qualified URL", result="{name}.json"),
    refused("client-unknown-field", "priority: unknown field", priority=5),
    refused("client-missing-input", "input: required field missing", input=DROP),
    refused("client-id-trailing-newline", "id: must be", id="{name}\n"),
    refused("client-input-trailing-newline", "fully qualified URL", input="{in}good.json\n"),
    refused("client-created-trailing-newline", "created:", created=CREATED + "\n"),
    refused(
        "client-oversized-document", "beanstalkd takes at most 65535", params={"pad": "x" * 70_000}
    ),
    refused("client-created-overflows-in-utc", "created:", created=OVERFLOWING_TIME),
    # -- job type --
    row("unknown-type", Bad("unknown_type", "no_such_type", job(type="no_such_type"))),
    # -- input URL policy (loopback forms only: the worker allows the name localhost alone) --
    bad_input("input-scheme-ftp", "ftp://localhost/good.json", "input_refused", "scheme 'ftp'"),
    bad_input("input-no-host", "http:///good.json", "input_refused", "names no host"),
    bad_input(
        "input-with-credentials",
        "http://user:secret@localhost:{port}/good.json?row={name}",
        "input_refused",
        "credentials",
    ),
    bad_input(
        "input-host-not-on-allow-list",
        "http://inputs.example.invalid/good.json",
        "input_refused",
        "not on the allow-list",
    ),
    bad_input(
        "input-127.0.0.1-not-allowed",
        "http://127.0.0.1:{port}/good.json?row={name}",
        "input_refused",
        "loopback",
    ),
    bad_input(
        "input-127.0.0.2",
        "http://127.0.0.2:{port}/good.json?row={name}",
        "input_refused",
        "loopback",
    ),
    bad_input(
        "input-ipv6-loopback-[::1]",
        "http://[::1]:{port}/good.json?row={name}",
        "input_refused",
        "loopback",
    ),
    bad_input(
        "input-decimal-2130706433",
        "http://2130706433:{port}/good.json?row={name}",
        "input_refused",
        "127.0.0.1",
    ),
    bad_input(
        "input-hex-0x7f.1", "http://0x7f.1:{port}/good.json?row={name}", "input_refused", "loopback"
    ),
    bad_input(
        "input-ipv4-mapped-[::ffff:127.0.0.1]",
        "http://[::ffff:127.0.0.1]:{port}/good.json?row={name}",
        "input_refused",
        "IPv4-mapped",
    ),
    bad_input(
        "input-unspecified-0.0.0.0",
        "http://0.0.0.0:{port}/good.json?row={name}",
        "input_refused",
        "unspecified",
    ),
    bad_input(
        "input-unspecified-short-0",
        "http://0:{port}/good.json?row={name}",
        "input_refused",
        "unspecified",
    ),
    bad_input(
        "input-ipv6-unspecified-[::]",
        "http://[::]:{port}/good.json?row={name}",
        "input_refused",
        "unspecified",
    ),
    bad_input("input-nul-in-url", "{in}good.json\x00", "input_refused", "not a valid URL"),
    refused("client-lone-surrogate-in-input", "unpaired surrogate", input="{in}good\ud800.json"),
    bad_input(
        "input-port-beyond-65535",
        "http://localhost:{port+65536}/good.json?row={name}",
        "input_refused",
        "not a valid URL",
    ),
    bad_input(
        "input-one-of-several-refused",
        {"good": "{in}good.json", "bad": "http://127.0.0.2:{port}/good.json?row={name}"},
        "input_refused",
        "input 'bad'",
    ),
    bad_input(
        "redirect-to-private-10.0.0.1",
        "{in}redirect-private",
        "input_refused",
        "redirects to a refused URL",
    ),
    bad_input("redirect-to-127.0.0.2", "{in}redirect-loopback", "input_refused", "loopback"),
    bad_input("redirect-to-file-etc-passwd", "{in}redirect-file", "input_refused", "scheme 'file'"),
    bad_input(
        "redirect-to-allowed-file", "{in}redirect-allowed-file", "input_refused", "scheme 'file'"
    ),
    bad_input("redirect-loop", "{in}loop", "input_unavailable", "more than 5 redirects"),
    bad_input(
        "input-host-empty-label-a..b",
        "http://a..b.example.test/x.json",
        "input_refused",
        "not a valid host name",
    ),
    bad_input(
        "input-host-leading-dot",
        "http://.x.example.test/x.json",
        "input_refused",
        "not a valid host name",
    ),
    bad_input(
        "input-host-64-char-label",
        "http://" + "a" * 64 + ".example.test/x.json",
        "input_refused",
        "more than DNS allows (63)",
    ),
    bad_input(
        "input-host-malformed-punycode",
        "http://xn--.example.test/x.json",
        "input_refused",
        "not a valid URL",
    ),
    bad_input(
        "redirect-to-malformed-punycode-host",
        "{in}redirect-bad-punycode",
        "input_refused",
        "not a valid host name",
    ),
    bad_input(
        "redirect-to-unparsable-location",
        "{in}redirect-unparsable",
        "input_unavailable",
        "redirect to an invalid URL",
    ),
    bad_input(
        "redirect-to-empty-label-host",
        "{in}redirect-bad-name",
        "input_refused",
        "not a valid host name",
    ),
    bad_input(
        "redirect-to-64-char-label-host",
        "{in}redirect-long-label",
        "input_refused",
        "more than DNS allows (63)",
    ),
    # -- what the input server answers --
    bad_input("input-404", "{in}404", "input_unavailable", "HTTP 404"),
    bad_input(
        "input-500-until-retries-run-out",
        "{in}500",
        "retries_exhausted",
        "input_failed",
        attempts=2,
    ),
    bad_input("input-429-last-attempt", "{in}429", "retries_exhausted", "HTTP 429", max_attempts=1),
    bad_input(
        "input-connection-refused",
        "http://localhost:1/good.json",
        "retries_exhausted",
        "input_failed",
        max_attempts=1,
    ),
    bad_input(
        "input-drips-past-deadline", "{in}drip", "retries_exhausted", "deadline", max_attempts=1
    ),
    # -- answers that are not valid HTTP/1.1 (a raw socket server): retryable, named --
    bad_input(
        "input-answer-not-http",
        "{raw}not-http",
        "retries_exhausted",
        "not an HTTP/1.x status line",
        max_attempts=1,
    ),
    bad_input(
        "input-body-cut-short",
        "{raw}cut-short",
        "retries_exhausted",
        "before the body ended",
        max_attempts=1,
    ),
    bad_input(
        "input-head-without-end",
        "{raw}endless-head",
        "retries_exhausted",
        "longer than 65536 bytes",
        max_attempts=1,
    ),
    bad_input(
        "input-transfer-encoding-gzip",
        "{raw}transfer-encoding-gzip",
        "retries_exhausted",
        "unsupported Transfer-Encoding",
        max_attempts=1,
    ),
    bad_input(
        "input-negative-chunk-size",
        "{raw}bad-chunk",
        "retries_exhausted",
        "invalid chunk size",
        max_attempts=1,
    ),
    bad_input("input-endless-chunk", "{raw}endless-chunk", "input_too_large", "after decoding"),
    bad_input("input-over-size-limit", "{in}huge", "input_too_large", "announces"),
    bad_input(
        "input-over-size-limit-chunked", "{in}huge-chunked", "input_too_large", "after decoding"
    ),
    bad_input("input-gzip-bomb", "{in}bomb", "input_too_large", "after decoding"),
    bad_input("input-deflate-bomb", "{in}bomb-deflate", "input_too_large", "after decoding"),
    bad_input("input-brotli-encoded", "{in}brotli", "input_invalid", "Content-Encoding"),
    bad_input("input-stacked-gzip", "{in}stacked", "input_invalid", "Content-Encoding"),
    bad_input("input-corrupt-gzip", "{in}corrupt-gzip", "input_invalid", "cannot be decoded"),
    bad_input("input-invalid-json", "{in}invalid.json", "input_invalid", "not valid JSON"),
    bad_input("input-json-nan", "{in}nan.json", "input_invalid", "NaN"),
    bad_input(
        "input-json-nested-100000-deep", "{in}deep.json", "input_invalid", "nests deeper than 64"
    ),
    bad_input(
        "input-json-nested-65-deep", "{in}deep65.json", "input_invalid", "nests deeper than 64"
    ),
    bad_input("input-json-not-utf8", "{in}latin1.json", "input_invalid", "UTF-8"),
    bad_input(
        "input-json-number-overflows-1e400",
        "{in}overflow.json",
        "input_invalid",
        "not valid JSON",
    ),
    # -- the simulation job type's weather input: checked in the child, the job fails alone --
    simulation_weather(
        "weather-missing-column-dhi", "weather-no-dhi.csv", "input_invalid", "missing column dhi"
    ),
    simulation_weather(
        "weather-nan-cell", "weather-nan-ghi.csv", "input_invalid", "row 3: ghi is missing"
    ),
    simulation_weather(
        "weather-times-out-of-order",
        "weather-out-of-order.csv",
        "input_invalid",
        "row 6: time does not increase",
    ),
    simulation_weather(
        "weather-ghi-1e9-w-per-m2",
        "weather-ghi-1e9.csv",
        "input_invalid",
        "row 13: ghi = 1e+09 is outside [-50, 1500]; irradiance must be in W/m²",
    ),
    simulation_weather(
        "weather-endless-body", "weather-endless.csv", "input_too_large", "after decoding"
    ),
    simulation_weather(
        "weather-and-pv-both-given",
        "weather.csv",
        "input_invalid",
        "give either a measured 'pv' series or 'weather'",
        pv="{in}sim/load.json",
    ),
    # -- file: inputs (allowed below --allow-file-inputs only) --
    bad_input(
        "file-outside-directory",
        "file:///etc/passwd",
        "input_refused",
        "outside the allowed directory",
    ),
    bad_input(
        "file-dotdot-out-of-directory",
        "file://{files}/../secret.json",
        "input_refused",
        "outside the allowed directory",
    ),
    bad_input(
        "file-symlink-escape",
        "file://{files}/escape.json",
        "input_refused",
        "outside the allowed directory",
    ),
    bad_input(
        "file-remote-host", "file://otherhost{files}/good.json", "input_refused", "local path"
    ),
    bad_input("file-missing", "file://{files}/missing.json", "input_unavailable", "no such file"),
    bad_input(
        "file-is-a-directory", "file://{files}/dir", "input_unavailable", "not a regular file"
    ),
    bad_input("file-over-size-limit", "file://{files}/big.json", "input_too_large", "300002 bytes"),
    refused(
        "client-lone-surrogate-in-file", "unpaired surrogate", input="file://{files}/\ud800.json"
    ),
    # -- result URLs: they must map inside the results directory --
    bad_result(
        "result-other-origin", "http://127.0.0.1:1/{name}.json", "not under the results base URL"
    ),
    bad_result("result-dotdot", "{res}a/../../{name}.json", "'..'"),
    bad_result("result-%2e%2e", "{res}%2e%2e/%2E%2e/{name}.json", "'..'"),
    bad_result("result-encoded-slash", "{res}a%2f..%2f..%2f{name}.json", "encoded '/' (%2F)"),
    bad_result("result-backslash", "{res}..\\..\\{name}.json", "backslashes"),
    bad_result("result-encoded-backslash", "{res}..%5c..%5c{name}.json", "backslashes"),
    bad_result("result-symlinked-dir-escape", "{res}escape/{name}.json", "symlink"),
    bad_result("result-symlinked-file-escape", "{res}linked.json", "symlink"),
    bad_result("result-symlink-loop", "{res}loop/{name}.json", "symlink"),
    bad_result("result-unbalanced-bracket-host", "http://[{name}/x.json", "not a valid URL"),
    bad_result("result-dot-named", "{res}.{name}.json", "must not start with a dot"),
    bad_result(
        "result-absolute-path", "{res}/tmp/{name}.json", "empty, '.' and '..' path segments"
    ),
    bad_result("result-query", "{res}{name}.json?x=1", "query"),
    bad_result("result-nul", "{res}a%00{name}.json", "control characters"),
    bad_result("result-directory", "{res}", "must name a file"),
    row(
        "result-blocked-by-directory",
        Bad(
            "result_blocked",
            "a directory stands at",
            job(result="{res}blocked-by-dir.json"),
            published=False,
        ),
    ),
    row(
        "result-blocked-by-file",
        Bad(
            "result_blocked",
            "stands where a directory is needed",
            job(result="{res}blocked-by-file/{name}.json"),
            published=False,
        ),
    ),
    row(
        "result-blocked-by-file-further-up",
        Bad(
            "result_blocked",
            "blocked-by-file stands where a directory is needed",
            job(result="{res}blocked-by-file/a/b/{name}.json"),
            published=False,
        ),
    ),
    refused(
        "client-lone-surrogate-in-result", "unpaired surrogate", result="{res}\ud800{name}.json"
    ),
    # -- the prediction job type's holiday and time-zone params --
    *(
        row(
            f"prediction-{name}",
            Bad("invalid_params", says, job(type="prediction", params={"horizon": "1d", **p})),
            pytest.mark.skipif(
                importlib.util.find_spec("jobrunner_prediction") is None and not IN_CI,
                reason="the prediction plugin is not installed",
            ),
        )
        for name, says, p in (
            ("unknown-country", "params.holidays", {"holidays": {"country": "ZZ"}}),
            (
                "unknown-subdivision",
                "params.holidays",
                {"holidays": {"country": "AU", "subdivision": "../../etc"}},
            ),
            ("holidays-not-an-object", "holidays", {"holidays": ["AU"] * 10_000}),
            ("unknown-timezone", "params.timezone", {"timezone": "../../../etc/passwd"}),
            ("timezone-not-a-string", "timezone", {"timezone": {"utc": 1}}),
        )
    ),
]


@pytest.mark.parametrize("bad", TABLE)
def test_bad_input(bench: Bench, bad: Bad, request: pytest.FixtureRequest) -> None:
    """A bad job fails with its error code and is buried (or refused at the client), writes
    nothing outside the results directory, and the same worker then runs a good job."""
    name = safe_name(request.node.callspec.id)
    doc = bench.fill(bad.doc, name)
    skip = bench.results_dir
    before, results_before = tree(bench.sandbox, skip), listing(bench.results_dir)
    seen_before = len(bench.inputs.app.seen)
    total_before = bench.beanstalkd.tube_stats().get("total-jobs", 0)

    if bad.via == "refused":
        with pytest.raises(InvalidJob) as caught:
            bench.client.put_document(doc)
        assert bad.says in caught.value.message
        assert bench.beanstalkd.tube_stats().get("total-jobs", 0) == total_before
        assert tree(bench.sandbox, skip) == before
        assert listing(bench.results_dir) == results_before
        return

    slot_errors = len(bench.worker.find("slot_error"))
    if bad.via == "raw":
        assert isinstance(doc, bytes)
        beanstalk_id = put_raw(bench.beanstalkd.port, doc, ttr=bad.ttr)
    else:
        beanstalk_id = bench.client.put_document(doc, ttr=bad.ttr).beanstalk_id
    try:
        wait_buried(bench, beanstalk_id, slot_errors)
        bench.buried += 1
    finally:  # a row that went wrong must not leave its job to the rows after it
        remove_unburied(bench, beanstalk_id)

    buried = bench.worker.wait_event("job_buried", beanstalk_id=beanstalk_id)[0]
    assert buried["code"] == bad.code
    result_file = bench.results_dir / f"{name}.json"
    if bad.published:
        served = httpx.get(bench.results.base_url + f"{name}.json", timeout=5)
        assert served.status_code == 200, served.text
        failed = served.json()
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == bad.code
        assert failed["error"]["retryable"] is False
        assert bad.says in failed["error"]["message"]
        if failed.get("attempt") is not None:
            assert failed["attempt"] == bad.attempts
        # The document, and the final marker the file publisher keeps beside it for nginx.
        added = listing(bench.results_dir) - results_before
        assert added - {".final"} == {f"{name}.json", f".final/{name}.json"}
    else:
        assert not result_file.exists()
        assert listing(bench.results_dir) == results_before
        events = bench.worker.find("job_buried", beanstalk_id=beanstalk_id)
        assert events, "no job_buried event"
        assert bad.says in events[-1]["error"]
    assert tree(bench.sandbox, skip) == before, "something changed outside the results directory"
    if bad.code == "input_refused":
        marker = f"row={name}"
        assert not [s for s in bench.inputs.app.seen[seen_before:] if marker in s], (
            "a refused input URL reached the inputs server"
        )

    assert_worker_alive(bench)
    run_good_job(bench, name)
    assert_worker_alive(bench)


@pytest.mark.parametrize(
    ("swap", "code", "says"),
    [
        pytest.param("symlink-leading-out", "result_refused", "symlink", id="symlink"),
        pytest.param("file", "result_blocked", "stands where a directory is needed", id="file"),
    ],
)
def test_result_directory_swapped_while_the_job_runs(
    bench: Bench, swap: str, code: str, says: str
) -> None:
    """A result's directory that passed the worker's check and is replaced while the job
    runs — by a symlink leading out of the results directory, or by a file — is refused by
    the child's write: nothing is written outside or left behind, the job is buried with
    the code, and the worker goes on."""
    name = f"swapped-{swap}"
    folder = bench.results_dir / name
    folder.mkdir()
    outside = bench.sandbox / "outside"
    before = tree(bench.sandbox, bench.results_dir)
    bench.inputs.app.held.clear()
    slot_errors = len(bench.worker.find("slot_error"))
    doc = job(input=f"{{in}}held.json?row={name}", result=f"{{res}}{name}/r.json")
    beanstalk_id = bench.client.put_document(bench.fill(doc, name)).beanstalk_id
    try:
        wait_for(
            lambda: f"/held.json?row={name}" in bench.inputs.app.seen,
            30,
            what="the job fetching its input (past the worker's check)",
        )
        folder.rmdir()
        if swap == "file":
            folder.write_text("in the way")
        else:
            folder.symlink_to(outside, target_is_directory=True)
        bench.inputs.app.held.set()
        wait_buried(bench, beanstalk_id, slot_errors)
        bench.buried += 1
    finally:
        bench.inputs.app.held.set()
        remove_unburied(bench, beanstalk_id)
    buried = bench.worker.wait_event("job_buried", beanstalk_id=beanstalk_id)[-1]
    assert buried["code"] == code
    assert says in buried["error"]
    assert tree(bench.sandbox, bench.results_dir) == before, "something was written outside"
    assert not [p for p in bench.results_dir.rglob(".jr*")], "a temp file was left"
    if swap == "file":
        assert folder.read_text() == "in the way"
    assert_worker_alive(bench)
    run_good_job(bench, name)


@NEEDS_SIMULATION
def test_simulation_with_the_good_weather_is_done(bench: Bench) -> None:
    """The weather the simulation rows spoil, unspoilt, runs to a ``done`` document on the same
    worker: each row fails for its one defect."""
    inputs = {"load": "{in}sim/load.json", "weather": "{in}sim/weather.csv"}
    params = {"pv_kwp": 4.0, "latitude": 36.1, "longitude": -79.9, "battery_kwh": 5.0}
    bench.client.put_document(
        bench.fill(job(type="simulation", input=inputs, params=params), "simulation-good")
    )
    doc = wait_for_status(bench.results_dir / "simulation-good.json", timeout=60)
    assert doc["status"] == "done", doc
    assert doc["data"]["pv"]["source"] == "weather"
    assert doc["data"]["pv"]["weather"]["rows"] == 24
    assert doc["data"]["totals"]["pv"] > 0
    assert_worker_alive(bench)


def test_worker_survives_the_whole_table(bench: Bench) -> None:
    """After the table, the worker that started it is still running, every bad job it took is
    buried, nothing is left ready or reserved, and it still runs a good job."""
    assert_worker_alive(bench)
    run_good_job(bench, "after-the-table")
    stats = bench.beanstalkd.tube_stats()
    assert stats.get("current-jobs-buried", 0) == bench.buried
    wait_for(
        lambda: bench.beanstalkd.tube_stats().get("current-jobs-reserved") == 0,
        what="the good job deleted",
    )
    assert bench.beanstalkd.tube_stats().get("current-jobs-ready", 0) == 0
    assert_worker_alive(bench)


def test_docs_error_table_lists_every_code() -> None:
    """The docs' error-code table names every error code, in order, with the right "retried?"
    flag, and every code this table expects is among them."""
    page = Path(__file__).parents[2] / "docs" / "reference" / "error-codes.rst"
    section = page.read_text("utf-8")
    rows = re.findall(r"^``([a-z_]+)``\s+(yes|no)\s", section, re.M)
    assert [code for code, _ in rows] == list(ERROR_CODES)
    for code, retried in rows:
        assert failure_for_code(code, "").retryable == (retried == "yes"), code
    assert {bad.code for bad in (p.values[0] for p in TABLE)} <= set(ERROR_CODES)


# -- hostile clients of the results server (jobrunner serve) -----------------------------------
#
# The results server faces the internet. Each row is one way a client can misbehave, tried
# against a real ``jobrunner serve`` process; after each row the server must still answer a
# normal GET. Everything is loopback and every loop is bounded.

HOSTILE_IDLE_TIMEOUT = 2.0
HOSTILE_TOKEN = "hostile-token"
HOSTILE_DOC = json.dumps(
    {"v": 1, "id": "j", "type": "echo", "status": "done", "timestamp": "2026-01-01T00:00:00Z"}
).encode()


@dataclasses.dataclass
class HostileServer:
    """A running ``jobrunner serve``: its port, results directory and log file."""

    port: int
    results: Path
    log: Path
    process: subprocess.Popen[bytes]

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text("utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") == name:
                    found.append(event)
        return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_hostile_server(tmp: Path, *extra: str, nofile: int | None = None) -> HostileServer:
    """Start ``jobrunner serve`` (PUT enabled, short idle time-out), optionally under ulimit -n."""
    results = tmp / "results"
    (results / "run").mkdir(parents=True)
    (results / "run" / "r.json").write_bytes(HOSTILE_DOC)
    (results / "dir.json").mkdir()
    (results / "file").write_bytes(b"{}")
    port = free_port()
    log = tmp / "serve.log"

    def limit_files() -> None:  # runs in the child, before exec
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    cmd = jobrunner_cmd(
        "serve",
        "--results-dir",
        str(results),
        "--port",
        str(port),
        "--put-token",
        HOSTILE_TOKEN,
        "--idle-timeout",
        str(HOSTILE_IDLE_TIMEOUT),
        "--body-timeout",
        "3",
        "--log-format",
        "json",
        *extra,
    )
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=out, preexec_fn=limit_files)
    server = HostileServer(port, results, log, process)
    try:
        wait_for_port(port, timeout=20)
    except BaseException:
        server.stop()
        raise
    return server


def assert_serves(server: HostileServer) -> None:
    """A normal GET is answered, within one second."""
    r = httpx.get(f"http://127.0.0.1:{server.port}/run/r.json", timeout=1.0)
    assert r.status_code == 200 and r.content == HOSTILE_DOC


def closed_by_server(sock: socket.socket, timeout: float, trickle: bytes = b"") -> bytes:
    """Wait until the server closes ``sock`` (sending ``trickle`` now and then); return what
    it sent. Fails when the connection is still open after ``timeout`` seconds."""
    sock.settimeout(0.25)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if trickle:
                sock.sendall(trickle)
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset, or broken pipe while trickling
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"connection still open after {timeout} s; got {received[:200]!r}")


def http_status(answer: bytes) -> int:
    """The status code of a raw HTTP answer."""
    return int(answer.split(b" ", 2)[1])


def hostile_idle(server: HostileServer) -> None:
    """A connection that never sends anything is closed after the idle time-out."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        assert closed_by_server(sock, HOSTILE_IDLE_TIMEOUT + 5) == b""


def hostile_slow_headers(server: HostileServer) -> None:
    """Headers sent one byte at a time never complete: closed after the idle time-out."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /run/r.json HTTP/1.1\r\nHost: x\r\n")
        assert closed_by_server(sock, HOSTILE_IDLE_TIMEOUT + 5, trickle=b"X") == b""


def hostile_idle_after_request(server: HostileServer) -> None:
    """A kept-alive connection that goes quiet after one answer is closed after the time-out."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /run/r.json HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = closed_by_server(sock, HOSTILE_IDLE_TIMEOUT + 5)
        assert http_status(answer) == 200 and answer.endswith(HOSTILE_DOC)


def hostile_huge_head(server: HostileServer) -> None:
    """A request head over 16 KiB is a 400 and the connection is closed."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /run/r.json HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000)
        answer = closed_by_server(sock, 5)
    assert http_status(answer) == 400


def hostile_garbage(server: HostileServer) -> None:
    """Bytes that are not HTTP are a 400 and the connection is closed."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 100 + b"\r\n\r\n")
        answer = closed_by_server(sock, 5)
    assert http_status(answer) == 400


def hostile_slow_body(server: HostileServer) -> None:
    """A PUT (with the token) whose body never completes is a 408 once the body time-out
    passes, or is closed; nothing is written."""
    head = (
        b"PUT /slow.json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + HOSTILE_TOKEN.encode()
        + b"\r\nContent-Length: 100000\r\n\r\n{"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head)
        answer = closed_by_server(sock, 15, trickle=b" ")
    assert http_status(answer) == 408
    assert not (server.results / "slow.json").exists()


def hostile_endless_body(server: HostileServer) -> None:
    """An endless chunked PUT body is refused with 413 once over the limit; nothing is written."""

    def endless() -> Iterator[bytes]:
        for _ in range(100):  # 100 MiB at most, far over the 16 MiB limit
            yield b" " * (1024 * 1024)

    r = httpx.put(
        f"http://127.0.0.1:{server.port}/endless.json",
        content=endless(),
        headers={"Authorization": f"Bearer {HOSTILE_TOKEN}"},
        timeout=30,
    )
    assert r.status_code == 413
    assert not (server.results / "endless.json").exists()


def hostile_put_conflicts(server: HostileServer) -> None:
    """PUT onto a directory, or below a file, is a 409 (not a 500 the publisher would retry)."""
    auth = {"Authorization": f"Bearer {HOSTILE_TOKEN}"}
    for path in ("/dir.json", "/file/x.json"):
        r = httpx.put(f"http://127.0.0.1:{server.port}{path}", content=HOSTILE_DOC, headers=auth)
        assert r.status_code == 409, path
        assert "error" in r.json()
    assert (server.results / "dir.json").is_dir()
    assert (server.results / "file").read_bytes() == b"{}"


def hostile_token_guessing(server: HostileServer) -> None:
    """Hundreds of PUTs with wrong tokens are all 401s, and the log does not grow with them."""
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
        for n in range(300):
            r = client.put(
                "/x.json", content=HOSTILE_DOC, headers={"Authorization": f"Bearer guess-{n}"}
            )
            assert r.status_code == 401
    assert len(server.events("put_refused")) <= 25
    assert not (server.results / "x.json").exists()


def hostile_odd_documents(server: HostileServer) -> None:
    """Documents built to fool the cache headers get the safe ones: a "status" nested in
    data or meta, duplicate keys, nesting too deep to parse, a huge array, invalid UTF-8."""
    done = {"v": 1, "id": "j", "type": "t", "timestamp": "2026-01-01T00:00:00Z"}
    odd = {
        "nested.json": (
            json.dumps({**done, "status": "running", "data": {"status": "done"}}).encode(),
            "public, max-age=1",
        ),
        "meta.json": (
            json.dumps({**done, "meta": {"status": "done"}, "status": "running"}).encode(),
            "public, max-age=1",
        ),
        # json.loads keeps the last of duplicate keys, as browsers' JSON.parse does.
        "duplicate.json": (b'{"status": "done", "status": "running"}', "public, max-age=1"),
        "deep.json": (b'{"status": "done", "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", None),
        "huge.json": (b"[" + b"1," * 2_000_000 + b"1]", None),
        "latin1.json": (b'{"status": "done", "x": "\xff"}', None),
    }
    for name, (body, _) in odd.items():
        (server.results / "run" / name).write_bytes(body)
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
        for name, (body, expected) in odd.items():
            r = client.get(f"/run/{name}")
            assert r.status_code == 200 and r.content == body, name
            assert r.headers["cache-control"] == (expected or "no-cache"), name


def hostile_health_probes(server: HostileServer) -> None:
    """Only GET and HEAD of /health itself answer health: with a query string too; other
    methods are 405 and look-alike paths plain 404s, none cached for long."""
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
        for path in ("/health", "/health?probe=1", "/%68ealth"):
            r = client.get(path)
            assert (r.status_code, r.json()) == (200, {"status": "ok"}), path
            assert r.headers["cache-control"] == "no-store"
        assert client.head("/health").status_code == 200
        for method in ("POST", "DELETE"):
            assert client.request(method, "/health").status_code == 405, method
        for path in ("/health/", "/HEALTH", "/health.json", "/health%00", "/run/health"):
            r = client.get(path)
            assert r.status_code in (400, 404), path
            assert r.headers["cache-control"] in ("no-store", "public, max-age=2"), path


HOSTILE_ROWS = [
    pytest.param(hostile_idle, id="idle-connection"),
    pytest.param(hostile_slow_headers, id="slow-headers"),
    pytest.param(hostile_idle_after_request, id="idle-after-request"),
    pytest.param(hostile_huge_head, id="huge-request-head"),
    pytest.param(hostile_garbage, id="not-http"),
    pytest.param(hostile_slow_body, id="slow-put-body"),
    pytest.param(hostile_endless_body, id="endless-put-body"),
    pytest.param(hostile_put_conflicts, id="put-conflicts"),
    pytest.param(hostile_token_guessing, id="token-guessing"),
    pytest.param(hostile_odd_documents, id="odd-documents-cache-headers"),
    pytest.param(hostile_health_probes, id="health-probes"),
]


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileServer]:
    """One ``jobrunner serve`` for the hostile rows."""
    server = start_hostile_server(tmp_path_factory.mktemp("hostile"))
    yield server
    assert server.stop() == 0


@pytest.mark.parametrize("attack", HOSTILE_ROWS)
def test_hostile_client(hostile_server: HostileServer, attack: Any) -> None:
    """Each hostile client gets a clear refusal or a closed connection, and the server goes on."""
    attack(hostile_server)
    assert_serves(hostile_server)
    assert hostile_server.process.poll() is None


def test_serve_survives_connection_flood(tmp_path: Path) -> None:
    """Under ulimit -n 1024, 1,100 idle and 100 slow-header connections neither exhaust the
    descriptors nor keep a normal GET from being answered within 1 s, and every attacking
    connection is closed by the server; the log stays short."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1400:  # this test process holds the 1,200 attacking sockets itself
        if hard != resource.RLIM_INFINITY and hard < 1400:
            pytest.fail(f"the test needs 1,400 open files, the hard limit is {hard} (ulimit -Hn)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1400, hard))
    server = start_hostile_server(tmp_path, nofile=1024)
    attackers: list[socket.socket] = []
    try:
        for _ in range(1200):
            sock = socket.socket()
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", server.port))
            attackers.append(sock)
        time.sleep(0.5)
        slow = attackers[1100:]
        for sock in slow:
            with contextlib.suppress(OSError):
                sock.send(b"GET /run/r.json HTTP/1.1\r\nHost: x\r\n")
        descriptors = len(os.listdir(f"/proc/{server.process.pid}/fd"))
        assert descriptors < 1024
        assert_serves(server)
        # Every attacking connection ends: closed, reset or refused by the server.
        open_ = set(range(len(attackers)))
        deadline = time.monotonic() + HOSTILE_IDLE_TIMEOUT + 20
        while open_ and time.monotonic() < deadline:
            for n in list(open_):
                try:
                    if n >= 1100:
                        attackers[n].send(b"X")
                    data = attackers[n].recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    open_.discard(n)
                    continue
                if data == b"" or data.startswith(b"HTTP/1.1 503"):
                    open_.discard(n)
            time.sleep(0.2)
        assert not open_, f"{len(open_)} attacking connections still open"
        assert_serves(server)
    finally:
        for sock in attackers:
            sock.close()
        code = server.stop()
    assert code == 0
    lines = server.log.read_text("utf-8", errors="replace").splitlines()
    assert len(lines) < 100, lines[:5]
    assert not [line for line in lines if "Too many open files" in line]
    (stopped,) = server.events("serve_stopped")
    assert stopped["connections_evicted"] + stopped["connections_timed_out"] >= 1100


def test_serve_refuses_connections_when_all_are_busy(tmp_path: Path) -> None:
    """With every connection busy with a request (--max-connections 2, two PUT bodies still
    arriving), one more connection gets a 503 at once; an idle one would have made room."""
    server = start_hostile_server(tmp_path, "--max-connections", "2")
    head = (
        b"PUT /busy.json HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + HOSTILE_TOKEN.encode()
        + b"\r\nContent-Length: 1000\r\n\r\n{"
    )
    try:
        busy = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
        for sock in busy:
            sock.sendall(head)
        time.sleep(0.5)  # both requests are in the application, reading their bodies
        with socket.create_connection(("127.0.0.1", server.port)) as extra:
            answer = closed_by_server(extra, 5)
        assert http_status(answer) == 503
        assert b"too many connections" in answer
        for sock in busy:
            sock.close()

        def served() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                url = f"http://127.0.0.1:{server.port}/run/r.json"
                return httpx.get(url, timeout=1).status_code == 200
            return False

        wait_for(served, timeout=10, what="a GET once the busy clients left")
    finally:
        code = server.stop()
    assert code == 0
    (stopped,) = server.events("serve_stopped")
    assert stopped["connections_refused"] >= 1
