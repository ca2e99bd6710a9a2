"""pytest fixtures for web applications that submit jobs (entry point ``pytest11``).

Installed with jobrunner, this plugin only defines fixtures: nothing starts
unless a test asks for one (disable it altogether with ``-p no:jobrunner``).

``jobrunner_inline``
    a :class:`jobrunner.testing.InlineClient` over a temporary results
    directory: no beanstalkd, jobs run inside the test process.

``jobrunner_stack``
    the real thing on loopback: a ``beanstalkd`` on a free port, a
    ``jobrunner work`` worker (the job types installed in the test's
    environment, inputs from 127.0.0.1 and localhost allowed) and a
    ``jobrunner serve`` results server over a temporary directory — a
    :class:`JobrunnerStack` with a ready :class:`~jobrunner.Client`. Needs the
    ``beanstalkd`` program (``apt-get install beanstalkd``); the test is
    skipped with a message when it is missing, or fails when the
    environment variable ``CI`` is set.

Extra worker flags go into the ini option ``jobrunner_worker_args`` (for
example ``--concurrency 2 --allow-host data.test``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["JobrunnerStack"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ini option ``jobrunner_worker_args``."""
    parser.addini(
        "jobrunner_worker_args",
        "extra flags for the worker of the jobrunner_stack fixture",
        default="",
    )


class JobrunnerStack:
    """beanstalkd, a worker and a results server for one test (see ``jobrunner_stack``)."""

    def __init__(self, root: Path, worker_args: list[str]) -> None:
        from jobrunner.testing import free_port, wait_for_port

        binary = shutil.which("beanstalkd") or (
            "/usr/sbin/beanstalkd" if os.path.exists("/usr/sbin/beanstalkd") else None
        )
        if binary is None:
            message = "jobrunner_stack needs beanstalkd (apt-get install beanstalkd)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        self.root = root
        self.results_dir = root / "results"
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.logs = root / "logs"
        self.logs.mkdir(exist_ok=True)
        self._procs: list[subprocess.Popen[bytes]] = []
        bs_port, http_port = free_port(), free_port()
        #: ``HOST:PORT`` of the beanstalkd.
        self.beanstalk = f"127.0.0.1:{bs_port}"
        #: The URL the results directory is served under (ends in ``/``).
        self.base_url = f"http://127.0.0.1:{http_port}/"
        self._start("beanstalkd", [binary, "-l", "127.0.0.1", "-p", str(bs_port)])
        wait_for_port(bs_port)
        results = ["--results-dir", str(self.results_dir)]
        self._start("serve", self._jobrunner("serve", *results, "--port", str(http_port)))
        self._start(
            "worker",
            self._jobrunner(
                "work",
                *results,
                "--base-url",
                self.base_url,
                "--beanstalk",
                self.beanstalk,
                "--concurrency",
                "1",
                "--allow-host",
                "127.0.0.1",
                "--allow-host",
                "localhost",
                *worker_args,
            ),
        )
        wait_for_port(http_port)
        self._client: Any = None

    @staticmethod
    def _jobrunner(*args: str) -> list[str]:
        return [sys.executable, "-m", "jobrunner", *args]

    def _start(self, name: str, cmd: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self._procs.append(subprocess.Popen(cmd, stdout=log, stderr=log))
        log.close()

    @property
    def client(self) -> Any:
        """A :class:`jobrunner.Client` for this stack's beanstalkd (closed at the end)."""
        if self._client is None:
            from jobrunner.client import Client

            self._client = Client(self.beanstalk)
        return self._client

    def result_url(self, name: str) -> str:
        """A result URL under this stack's results server, e.g. ``result_url("a.json")``."""
        return self.base_url + name.lstrip("/")

    def log(self, name: str = "worker") -> str:
        """What ``beanstalkd``, ``serve`` or ``worker`` wrote so far (for failing tests)."""
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        """Stop the worker, the server and beanstalkd (in that order)."""
        if self._client is not None:
            self._client.close()
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def jobrunner_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[JobrunnerStack]:
    """A real beanstalkd, worker and results server on loopback for this test."""
    args = shlex.split(str(request.config.getini("jobrunner_worker_args") or ""))
    stack = JobrunnerStack(tmp_path / "jobrunner", args)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def jobrunner_inline(tmp_path: Path) -> Iterator[Any]:
    """A :class:`jobrunner.testing.InlineClient` publishing under ``tmp_path/results``."""
    from jobrunner.testing import InlineClient

    client = InlineClient(results_dir=tmp_path / "results", base_url="https://results.test/")
    yield client
    client.close()
