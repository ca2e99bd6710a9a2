"""Real servers and processes for the tests: beanstalkd, HTTP, workers.

Everything listens on 127.0.0.1 and every wait loop is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
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


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""

    def accepting() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_for(accepting, timeout, what=f"port {port}")


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

    def __init__(
        self, cmd: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        full_env = {**os.environ, **(env or {})}
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=cwd
        )
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
        self, event: str, timeout: float = 15.0, count: int = 1, **match: Any
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


def jobrunner_cmd(*args: str) -> list[str]:
    """The command line of ``python -m jobrunner ARGS``."""
    return [sys.executable, "-m", "jobrunner", *args]


class ResultsServer:
    """``jobrunner serve`` on a free port, as a subprocess."""

    def __init__(
        self, results_dir: Path, *extra: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.port = free_port()
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
            self.wait_event("worker_started", timeout=20)


def read_json(path: Path) -> Any:
    """The JSON document at ``path``, or None while it does not exist."""
    try:
        return json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def wait_for_status(
    path: Path, statuses: tuple[str, ...] = ("done", "failed"), timeout: float = 20.0
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
