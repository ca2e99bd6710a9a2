"""Real servers and processes for the tests: beanstalkd, HTTP, workers.

Everything listens on 127.0.0.1 and every wait loop is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobrunner.testing import free_port, wait_for_port

__all__ = ["answer_lifespan", "free_port", "wait_for_port"]  # re-exported for tests

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


async def answer_lifespan(receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
    """Answer an ASGI ``lifespan`` scope for the tests' small ASGI apps: nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class _EventList(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        event = dict(record.msg) if isinstance(record.msg, dict) else {"event": record.msg}
        event.setdefault("log_level", record.levelname.lower())
        self.events.append(event)


@contextlib.contextmanager
def capture_events(logger: str = "jobrunner") -> Iterator[list[dict[str, Any]]]:
    """Collect the events jobrunner logs inside the block (as dicts, every level)."""
    handler = _EventList()
    target = logging.getLogger(logger)
    level = target.level
    target.addHandler(handler)
    target.setLevel(logging.DEBUG)
    try:
        yield handler.events
    finally:
        target.removeHandler(handler)
        target.setLevel(level)


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def asgi_request(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Send one request to an ASGI app in-process, through httpx."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://results.test") as c:
            return await c.request(method, path, **kwargs)

    return asyncio.run(go())


def require_binary(name: str) -> str:
    """Path of a system binary; skip locally when missing, fail under CI."""
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None
    )
    if path is None:
        message = (
            f"{name} is not installed: run the README's test command "
            f"(scripts/test.sh), which installs it with apt-get"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


#: Flags for Debian's headless Chromium in the browser tests.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # running as root (CI containers) needs it
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # No network beyond loopback here: keep Chromium from trying.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1100,900",
)


def require_module(name: str, extra: str) -> None:
    """Skip locally when module ``name`` is missing, fail under CI."""
    import importlib.util

    if importlib.util.find_spec(name) is None:
        message = f"{name} is not installed: {extra} (scripts/test.sh installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@contextlib.contextmanager
def headless_chromium(prefix: str = "chromium-") -> Iterator[Any]:
    """Headless Debian Chromium through chromedriver (never a downloaded browser)."""
    import tempfile

    chromium = require_binary("chromium")
    chromedriver = require_binary("chromedriver")
    require_module("selenium", "pip install selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    with tempfile.TemporaryDirectory(prefix=prefix) as profile:
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        driver.set_page_load_timeout(20)
        try:
            yield driver
        finally:
            driver.quit()


class Beanstalkd:
    """A real beanstalkd on a free loopback port, optionally with a binlog."""

    def __init__(self, binlog_dir: Path | None = None, max_job_size: int | None = None) -> None:
        self.binary = require_binary("beanstalkd")
        self.port = free_port()
        self.binlog_dir = binlog_dir
        self.max_job_size = max_job_size
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Beanstalkd:
        cmd = [self.binary, "-l", "127.0.0.1", "-p", str(self.port)]
        if self.binlog_dir is not None:
            self.binlog_dir.mkdir(parents=True, exist_ok=True)
            cmd += ["-b", str(self.binlog_dir)]
        if self.max_job_size is not None:
            cmd += ["-z", str(self.max_job_size)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port)
        return self

    def stop(self, sig: int = 15) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def command(self, line: str) -> bytes:
        """Send one raw protocol line and return the first reply chunk."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(line.encode() + b"\r\n")
            return sock.recv(65536)

    def tube_stats(self, tube: str = "default") -> dict[str, int]:
        """stats-tube of a tube as a dict (empty when the tube does not exist)."""
        from jobrunner.errors import JobNotFound
        from jobrunner.queue import Connection

        conn = Connection(self.address)
        try:
            return {k: v for k, v in conn.stats_tube(tube).items() if isinstance(v, int)}
        except JobNotFound:
            return {}
        finally:
            conn.close()


def put_raw(
    port: int,
    body: bytes,
    tube: str = "default",
    priority: int = 100,
    delay: int = 0,
    ttr: int = 60,
) -> int:
    """Put a job over a raw socket, as a PHP or JavaScript client would; return its id."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        sock.sendall(f"use {tube}\r\n".encode())
        assert reader.readline().startswith(b"USING")
        sock.sendall(f"put {priority} {delay} {ttr} {len(body)}\r\n".encode() + body + b"\r\n")
        reply = reader.readline()
        assert reply.startswith(b"INSERTED"), reply
        return int(reply.split()[1])


class LoggedProcess:
    """A child process whose JSON-lines stderr is collected as events."""

    #: Every one started; the ``_no_leftover_processes`` fixture stops those a test left.
    started: list[LoggedProcess] = []

    def __init__(
        self, cmd: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        full_env = {**os.environ, **(env or {})}
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=cwd
        )
        LoggedProcess.started.append(self)
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._lock:
                self.lines.append(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    self.events.append(event)

    def find(self, event: str, **match: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [
                e
                for e in self.events
                if e.get("event") == event and all(e.get(k) == v for k, v in match.items())
            ]

    def wait_event(
        self, event: str, timeout: float = 30.0, count: int = 1, **match: Any
    ) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]] | None:
            hits = self.find(event, **match)
            return hits if len(hits) >= count else None

        try:
            result: list[dict[str, Any]] = wait_for(found, timeout, what=f"event {event}")
        except AssertionError:
            raise AssertionError(
                f"no {event} event; log tail:\n" + "\n".join(self.lines[-30:])
            ) from None
        return result

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class RsyncDaemon:
    """A real ``rsync --daemon`` on a free loopback port, module ``results`` → ``path``.

    ``root`` holds its configuration and logs; ``path`` (default ``root/peer-daemon``)
    is the directory the module writes to.
    """

    def __init__(self, root: Path, path: Path | None = None, port: int | None = None) -> None:
        binary = require_binary("rsync")
        self.port = port or free_port()
        self.path = path or root / "peer-daemon"
        self.path.mkdir(parents=True, exist_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        conf = root / "rsyncd.conf"
        lines = [
            f"pid file = {root / 'rsyncd.pid'}",
            f"lock file = {root / 'rsyncd.lock'}",
            f"log file = {root / 'rsyncd.log'}",
            "use chroot = no",
            "[results]",
            f"    path = {self.path}",
            "    read only = no",
        ]
        if os.geteuid() == 0:  # as root the daemon would switch to nobody by default
            lines += [f"    uid = {os.getuid()}", f"    gid = {os.getgid()}"]
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [
                binary,
                "--daemon",
                "--no-detach",
                f"--config={conf}",
                f"--port={self.port}",
                "--address=127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    @property
    def url(self) -> str:
        return f"rsync://127.0.0.1:{self.port}/results/"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


VARNISH_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "varnish" / "jobrunner.vcl"


def varnish_vcl(ports: Sequence[int]) -> str:
    """examples/varnish/jobrunner.vcl with one backend per port on 127.0.0.1.

    The example's three ``backend nodeN`` blocks, its ``add_backend`` lines and
    its retry limits (nodes - 1) are rewritten; everything else is used as shipped.
    """
    vcl = VARNISH_EXAMPLE.read_text()
    blocks = re.findall(r"(?ms)^backend node\d+ \{.*?^\}\n\n", vcl)
    adds = re.findall(r"(?m)^\s*results\.add_backend\(node\d+\);.*\n", vcl)
    assert len(blocks) == 3 and len(adds) == 3, "jobrunner.vcl no longer has three nodes"
    template, add_template = blocks[0], adds[0]
    new_blocks, new_adds = [], []
    for index, port in enumerate(ports, 1):
        block = re.sub(r"node1\b", f"node{index}", template)
        block = re.sub(r'\.host = "[^"]*";', '.host = "127.0.0.1";', block)
        new_blocks.append(re.sub(r'\.port = "\d+";', f'.port = "{port}";', block))
        new_adds.append(re.sub(r"node1\b", f"node{index}", add_template))
    vcl = vcl.replace(blocks[0], "".join(new_blocks))
    for block in blocks[1:]:
        vcl = vcl.replace(block, "")
    vcl = vcl.replace(adds[0], "".join(new_adds))
    for add in adds[1:]:
        vcl = vcl.replace(add, "")
    vcl, retries = re.subn(r"bereq\.retries < 2\b", f"bereq.retries < {len(ports) - 1}", vcl)
    assert retries == 3, "jobrunner.vcl no longer limits its retries to nodes - 1 thrice"
    return vcl


class Varnish:
    """A real ``varnishd`` in the foreground on a free loopback port.

    Its working directory (``-n``) lives in ``root``, so it never touches a
    system Varnish; ``vcl`` is written to ``root/jobrunner.vcl``.
    """

    def __init__(self, root: Path, vcl: str, *params: str) -> None:
        binary = require_binary("varnishd")
        root.mkdir(parents=True, exist_ok=True)
        self.name = str(root / "varnish")
        self.vcl = root / "jobrunner.vcl"
        self.vcl.write_text(vcl)
        self.port = free_port()
        self.log = root / "varnishd.log"
        # As root, varnishd would read the VCL and run its cache process as its
        # own unprivileged user, who cannot enter the tests' private temp dirs.
        jail = ["-j", "none"] if os.geteuid() == 0 else []
        cmd = [
            binary,
            *jail,
            "-F",
            "-a",
            f"127.0.0.1:{self.port}",
            "-T",
            f"127.0.0.1:{free_port()}",
            "-n",
            self.name,
            "-f",
            str(self.vcl),
            "-s",
            "malloc,64m",
            # A small thread pool: the tests send a handful of requests at a time.
            "-p",
            "thread_pools=1",
            "-p",
            "thread_pool_min=8",
            *params,
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"varnishd exited: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                return False
            return True

        try:
            wait_for(listening, timeout=30, what="varnishd listening")
        except BaseException:
            self.stop()
            raise

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counters(self) -> dict[str, int]:
        """Varnish's statistics (``varnishstat -j``) by counter name."""
        out = subprocess.run(
            [require_binary("varnishstat"), "-n", self.name, "-j"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        raw = json.loads(out)
        counters = raw.get("counters", raw)  # the layout of varnishstat 6.5 and later
        return {
            name: value["value"]
            for name, value in counters.items()
            if isinstance(value, dict) and "value" in value
        }

    def backend_health(self) -> dict[str, str]:
        """Health of each backend (``varnishadm backend.list``): name → healthy/sick."""
        out = subprocess.run(
            [require_binary("varnishadm"), "-n", self.name, "backend.list"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        health = {}
        for line in out.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 4:
                health[fields[0].rpartition(".")[2]] = fields[3]
        return health

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def jobrunner_cmd(*args: str) -> list[str]:
    """The command line of ``python -m jobrunner ARGS``."""
    return [sys.executable, "-m", "jobrunner", *args]


class ResultsServer:
    """``jobrunner serve`` on a free port (or ``port``), as a subprocess."""

    def __init__(
        self,
        results_dir: Path,
        *extra: str,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.results_dir = results_dir
        results_dir.mkdir(parents=True, exist_ok=True)
        self.process = LoggedProcess(
            jobrunner_cmd(
                "serve", "--results-dir", str(results_dir), "--port", str(self.port), *extra
            ),
            env=env,
        )
        wait_for_port(self.port, timeout=20)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def get_json(self, path: str) -> Any:
        response = httpx.get(self.base_url + path, timeout=5)
        if response.status_code != 200:
            return None
        return response.json()

    def stop(self) -> None:
        self.process.stop()


class Node:
    """One worker node: results directory, rsync daemon, results server, worker.

    ``serve_args`` go to its ``jobrunner serve``; :meth:`start_worker` starts
    ``jobrunner work`` on tubes ``common`` and the node's name, publishing with
    the file publisher and replicating to ``peers`` with the rsync publisher.
    """

    def __init__(
        self,
        root: Path,
        name: str,
        *serve_args: str,
        serve_env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.results = root / name / "results"
        self.results.mkdir(parents=True)
        self.rsyncd = RsyncDaemon(root / name / "rsyncd", path=self.results)
        self.serve = ResultsServer(self.results, *serve_args, env=serve_env)
        self.worker: Worker | None = None

    def start_worker(
        self,
        servers: list[str],
        peers: list[Node],
        jobs: Path,
        inputs: Path,
        base_url: str,
        concurrency: int = 2,
    ) -> None:
        args = [
            "--tube",
            "common",
            "--tube",
            self.name,
            "--publisher",
            "file",
            "--publisher",
            "rsync",
            "--allow-file-inputs",
            str(inputs),
            "--worker-name",
            self.name,
        ]
        for peer in peers:
            args += ["--rsync-peer", peer.rsyncd.url]
        env = {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(jobs), os.environ.get("PYTHONPATH")])),
            "JOBRUNNER_RSYNC_TIMEOUT": "5",
        }
        self.worker = Worker(
            servers, self.results, base_url, *args, concurrency=concurrency, env=env
        )

    def get(self, rel: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.serve.port}/{rel}", timeout=5)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop(timeout=60)
        self.serve.stop()
        self.rsyncd.stop()


def worker_env(**overrides: str) -> dict[str, str]:
    """Environment for a test worker: JSON logs, small retry delays."""
    env = {
        "JOBRUNNER_LOG_LEVEL": "info",
        "JOBRUNNER_RETRY_BASE": "1",
        "JOBRUNNER_RETRY_MAX": "2",
        "JOBRUNNER_FSYNC": "true",
    }
    env.update(overrides)
    return env


class Worker(LoggedProcess):
    """``jobrunner work`` as a subprocess, waiting until its slots have started."""

    def __init__(
        self,
        beanstalk: str | list[str],
        results_dir: Path,
        base_url: str,
        *extra: str,
        concurrency: int = 1,
        env: Mapping[str, str] | None = None,
        wait_ready: bool = True,
    ) -> None:
        servers = [beanstalk] if isinstance(beanstalk, str) else beanstalk
        args = [
            "work",
            "--results-dir",
            str(results_dir),
            "--base-url",
            base_url,
            "--concurrency",
            str(concurrency),
            "--allow-host",
            "127.0.0.1",
            "--allow-host",
            "localhost",
        ]
        for server in servers:
            args += ["--beanstalk", server]
        super().__init__(jobrunner_cmd(*args, *extra), env=worker_env(**dict(env or {})))
        if wait_ready:
            try:
                self.wait_event("worker_started", timeout=20)
            except BaseException:
                self.stop()  # a worker that did not start must not outlive the test
                raise


def read_json(path: Path) -> Any:
    """The JSON document at ``path``, or None while it does not exist."""
    try:
        return json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def wait_for_status(
    path: Path, statuses: tuple[str, ...] = ("done", "failed"), timeout: float = 30.0
) -> dict[str, Any]:
    """Wait until the result document at ``path`` has one of ``statuses``."""

    def ready() -> dict[str, Any] | None:
        doc = read_json(path)
        return doc if isinstance(doc, dict) and doc.get("status") in statuses else None

    result: dict[str, Any] = wait_for(ready, timeout, what=f"{path} in {statuses}")
    return result


def install_fake_plugin(
    directory: Path,
    module: str,
    code: str,
    entry_points: Mapping[str, Mapping[str, str]],
    version: str = "1.0",
) -> Path:
    """Install a plugin distribution the way pip would make it visible, without pip.

    Writes ``<directory>/<module>.py`` and ``<directory>/<module>-<version>.dist-info``
    with ``METADATA`` and ``entry_points.txt``; importlib.metadata (and so
    stevedore) finds it once ``directory`` is on ``sys.path`` — put it on a
    worker's ``PYTHONPATH``. ``entry_points`` maps group → {name: "module:attr"}.
    Returns ``directory``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{module}.py").write_text(code)
    info = directory / f"{module}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: {version}\n")
    lines = []
    for group, names in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in names.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return directory


def pythonpath_env(*directories: Path) -> dict[str, str]:
    """Environment entries putting ``directories`` first on a subprocess's PYTHONPATH."""
    parts = [str(d) for d in directories]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return {"PYTHONPATH": os.pathsep.join(parts)}


# -- test job types and helpers for the lifecycle tests and bench/chaos.py -------------

#: Source of the ``jrtestjobs`` module: job types that misbehave on purpose.
TEST_JOBS_SOURCE = '''\
"""Job types for jobrunner's lifecycle tests: they sleep, crash, hang, hog memory."""

import ctypes
import os
import signal
import time

import jobrunner

_HOG = []


def _mark(ctx, what, pid=None):
    """Append ``JOB_ID PID ATTEMPT WHAT`` to params.runs_file (O_APPEND: one write per line)."""
    path = ctx.params.get("runs_file")
    if path:
        line = f"{ctx.job.id} {pid or os.getpid()} {ctx.attempt} {what}\\n".encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def sleep(ctx):
    """Sleep params.seconds with progress; mark start and end in params.runs_file."""
    _mark(ctx, "start")
    seconds = float(ctx.params.get("seconds", 1))
    steps = max(1, int(seconds * 4))
    for step in range(steps):
        time.sleep(seconds / steps)
        ctx.progress((step + 1) / steps)
    _mark(ctx, "end")
    return {"slept": seconds, "pid": os.getpid(), "attempt": ctx.attempt}


def segfault(ctx):
    """Dereference NULL: the child dies of SIGSEGV."""
    _mark(ctx, "start")
    ctypes.string_at(0)


def exit3(ctx):
    """Leave the child at once with exit code 3."""
    _mark(ctx, "start")
    os._exit(3)


def oom(ctx):
    """Die of SIGKILL, as the kernel's OOM killer does it."""
    _mark(ctx, "start")
    os.kill(os.getpid(), signal.SIGKILL)


def fail(ctx):
    """Raise ValueError: a plugin bug."""
    raise ValueError("bad value in test job")


def hang(ctx):
    """Never return; params.ignore_term: ignore SIGTERM; params.spawn: start a helper."""
    if ctx.params.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _mark(ctx, "start")
    if ctx.params.get("spawn"):  # a helper program, as a simulation binary would be
        import subprocess
        import sys

        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        _mark(ctx, "spawned", helper.pid)
    while True:
        time.sleep(0.05)


def retry_once(ctx):
    """Ask for a retry on attempt 1 (params.delay seconds, if given); succeed after."""
    _mark(ctx, "start")
    if ctx.attempt == 1:
        raise jobrunner.Retry("not ready on the first attempt", delay=ctx.params.get("delay"))
    return {"attempt": ctx.attempt}


def always_retry(ctx):
    """Ask for a retry every time."""
    _mark(ctx, "start")
    raise jobrunner.Retry("upstream still not ready")


def memory_hog(ctx):
    """Allocate params.mib MiB, keep it in the process, return the pid."""
    block = bytearray(int(ctx.params.get("mib", 200)) * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    _HOG.append(block)
    return {"pid": os.getpid()}


def count_runs(ctx):
    """Sleep params.seconds (default 0), then append the job id to params.runs_file."""
    time.sleep(float(ctx.params.get("seconds", 0)))
    _mark(ctx, "end")
    return {"pid": os.getpid(), "attempt": ctx.attempt}


def pid(ctx):
    """Return the child's pid."""
    return {"pid": os.getpid()}


_HELPER = """
import os, sys, time
runs, job, mode = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "double-fork":
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
fd = os.open(runs, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, f"{job} {os.getpid()} 0 helper-{mode}\\\\n".encode())
os.close(fd)
time.sleep(120)
"""


def helpers(ctx):
    """Start a setsid helper and a double-forking daemon, then end as params.then says:
    "return", "raise", "hang", "exit" (os._exit) or "sleep" (params.seconds)."""
    import subprocess
    import sys

    runs = ctx.params["runs_file"]
    subprocess.Popen([sys.executable, "-c", _HELPER, runs, ctx.job.id, "setsid"],
                     start_new_session=True)
    subprocess.run([sys.executable, "-c", _HELPER, runs, ctx.job.id, "double-fork"], check=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # both helpers are up and have written their line
        try:
            with open(runs) as fh:
                if sum(line.startswith(f"{ctx.job.id} ") and "helper-" in line for line in fh) >= 2:
                    break
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    _mark(ctx, "start")
    then = ctx.params.get("then", "return")
    if then == "raise":
        raise ValueError("failing after starting helpers")
    if then == "exit":
        os._exit(5)
    if then in ("hang", "sleep"):
        end = time.monotonic() + float(ctx.params.get("seconds", 3600))
        while time.monotonic() < end:
            time.sleep(0.05)
    return {"pid": os.getpid()}


def messy(ctx):
    """Print, then break the process's streams, directory and environment as asked."""
    import sys

    print("hello from", ctx.job.id)
    print("to stderr", file=sys.stderr)
    sys.stdout.write("no newline at the end")
    os.environ["JR_LEFT_BEHIND"] = "1"
    os.chdir("/")
    how = ctx.params.get("how", "")
    if how == "close-fds":
        sys.stdout.flush()
        os.close(1)
        os.close(2)
        os.close(0)
    elif how == "close-streams":
        sys.stdout.close()
        sys.stderr.close()
    elif how == "replace":
        sys.stdout = open(os.devnull, "w")
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    return {"ok": True}


def clean(ctx):
    """Report what this job finds: directory, environment, working streams."""
    import sys

    print("clean job prints", ctx.job.id)
    print("and to stderr", file=sys.stderr)
    return {
        "cwd": os.getcwd(),
        "left": os.environ.get("JR_LEFT_BEHIND"),
        "stdin": sys.stdin.read(),
    }
'''

TEST_JOB_TYPES = (
    "sleep",
    "segfault",
    "exit3",
    "oom",
    "fail",
    "hang",
    "retry_once",
    "always_retry",
    "memory_hog",
    "count_runs",
    "pid",
    "helpers",
    "messy",
    "clean",
)


def write_test_jobs(directory: Path) -> Path:
    """Write ``jrtestjobs`` plus a fake installed distribution into ``directory``.

    ``<dir>/jrtestjobs.py``, ``<dir>/jrtestjobs_broken.py`` (fails to import) and
    ``<dir>/jrtestjobs-1.0.dist-info/{METADATA,entry_points.txt}``: with ``directory``
    on PYTHONPATH, importlib.metadata (and so stevedore) finds the job types exactly
    as if they were pip-installed. Returns ``directory``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "jrtestjobs.py").write_text(TEST_JOBS_SOURCE)
    (directory / "jrtestjobs_broken.py").write_text(
        "import jrtestjobs_no_such_dependency  # noqa: F401\n"
    )
    info = directory / "jrtestjobs-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: jrtestjobs\nVersion: 1.0\n")
    lines = [f"test_{name} = jrtestjobs:{name}" for name in TEST_JOB_TYPES]
    lines.append("test_broken = jrtestjobs_broken:run")
    (info / "entry_points.txt").write_text("[jobrunner.job_types]\n" + "\n".join(lines) + "\n")
    return directory


def job_body(
    job_type: str,
    result_url: str,
    input_url: str,
    *,
    job_id: str | None = None,
    params: Mapping[str, Any] | None = None,
    **fields: Any,
) -> bytes:
    """A valid version-1 job document (``fields`` adds timeout, max_attempts, expires, ...)."""
    import uuid

    doc: dict[str, Any] = {
        "v": 1,
        "id": job_id or uuid.uuid4().hex,
        "type": job_type,
        "input": input_url,
        "result": result_url,
        "params": dict(params or {}),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    doc.update(fields)
    return json.dumps(doc).encode()


class Lab:
    """A test bench for the job lifecycle: test job types, an input file, results, runs.

    Jobs read ``file://<root>/inputs/in.json`` (``--allow-file-inputs``), publish into
    ``<root>/results`` under ``base_url``, and the misbehaving job types record their
    runs in ``runs_file``.
    """

    def __init__(self, root: Path, base_url: str = "http://results.test/") -> None:
        self.root = root
        self.jobs_dir = write_test_jobs(root / "testjobs")
        self.inputs_dir = root / "inputs"
        self.inputs_dir.mkdir(parents=True, exist_ok=True)
        (self.inputs_dir / "in.json").write_text('{"x": 1}')
        self.input_url = (self.inputs_dir / "in.json").as_uri()
        self.results_dir = root / "results"
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.base_url = base_url
        self.runs_file = root / "runs.txt"

    def env(self, **overrides: str) -> dict[str, str]:
        """Worker environment: the test job types on PYTHONPATH, short retries."""
        path = os.pathsep.join(
            p for p in (str(self.jobs_dir), os.environ.get("PYTHONPATH", "")) if p
        )
        return {"PYTHONPATH": path, **overrides}

    def body(
        self,
        job_type: str,
        name: str,
        params: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> bytes:
        """A job of ``test_<job_type>`` whose result is ``<name>.json`` (job id ``name``)."""
        merged = {"runs_file": str(self.runs_file), **dict(params or {})}
        return job_body(
            f"test_{job_type}",
            self.base_url + f"{name}.json",
            self.input_url,
            job_id=name,
            params=merged,
            **fields,
        )

    def result(self, name: str) -> Path:
        """Where the result document of job ``name`` is written."""
        return self.results_dir / f"{name}.json"

    def runs(self, what: str | None = None) -> list[list[str]]:
        """The lines of the runs file (``JOB_ID PID ATTEMPT WHAT``), optionally filtered."""
        try:
            text = self.runs_file.read_text()
        except FileNotFoundError:
            return []
        rows = [line.split() for line in text.splitlines() if line.strip()]
        return [row for row in rows if what is None or row[3] == what]

    def worker(self, beanstalk: str | list[str], *extra: str, **kwargs: Any) -> Worker:
        """``jobrunner work`` on this lab's results and inputs, with the test job types."""
        env = self.env(**dict(kwargs.pop("env", None) or {}))
        return Worker(
            beanstalk,
            self.results_dir,
            self.base_url,
            "--allow-file-inputs",
            str(self.inputs_dir),
            *extra,
            env=env,
            **kwargs,
        )


def pid_alive(pid: int) -> bool:
    """True while a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != b"Z"


#: Serves one connection of a :class:`RawServer`.
RawHandler = Callable[["RawServer", socket.socket], None]


class RawServer:
    """A TCP server on 127.0.0.1; each connection is handed to ``handler`` in a thread.

    For answers no HTTP framework would send (exact bytes: not HTTP, bodies cut
    short, heads without end). Records the number of connections and every
    request head read with :meth:`read_request`. Handlers must bound their
    loops (the connection has a 5 s time-out; :attr:`stopping` is set on stop).
    """

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def url(self, path: str = "/in.json") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                self.handler(self, conn)
            except OSError:
                pass

    def read_request(self, conn: socket.socket) -> bytes | None:
        """Read one request head; None when the client closed the connection."""
        data = b""
        while b"\r\n\r\n" not in data:
            if self.stopping.is_set() or len(data) > 65536:
                return None
            try:
                more = conn.recv(65536)
            except OSError:
                return None
            if not more:
                return None
            data += more
        head = data.split(b"\r\n\r\n", 1)[0]
        self.requests.append(head)
        return head

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        self.thread.join(timeout=5)
        for thread in self.threads:
            thread.join(timeout=6)
