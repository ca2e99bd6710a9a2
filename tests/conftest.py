"""Fixtures: a real beanstalkd per test, results directories, servers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.support import Beanstalkd, Lab, LoggedProcess, ResultsServer


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Each test ends with the logging it started with (a CLI test may configure it)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in ("httpx", "httpcore"):  # configure_logging quietens them at info
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.captureWarnings(False)


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    """A test that fails half-way leaves no ``jobrunner`` process running after it."""
    # Processes of module-scoped fixtures were started before this point and stay.
    mark = len(LoggedProcess.started)
    yield
    for leftover in LoggedProcess.started[mark:]:
        leftover.stop(timeout=5)
    del LoggedProcess.started[mark:]


@pytest.fixture
def beanstalkd() -> Iterator[Beanstalkd]:
    """A real beanstalkd on a free loopback port, without binlog."""
    server = Beanstalkd().start()
    yield server
    server.stop()


@pytest.fixture
def beanstalkd_binlog(tmp_path: Path) -> Iterator[Beanstalkd]:
    """A real beanstalkd with a binlog in the test's directory (survives restarts)."""
    server = Beanstalkd(binlog_dir=tmp_path / "binlog").start()
    yield server
    server.stop()


@pytest.fixture
def results_server(tmp_path: Path) -> Iterator[ResultsServer]:
    """``jobrunner serve`` over a fresh results directory, CORS open to any origin."""
    server = ResultsServer(tmp_path / "results", "--cors-origin", "*")
    yield server
    server.stop()


@pytest.fixture
def inputs_server(tmp_path: Path) -> Iterator[ResultsServer]:
    """A real HTTP server for job inputs: ``jobrunner serve`` over an inputs directory."""
    server = ResultsServer(tmp_path / "inputs")
    yield server
    server.stop()


@pytest.fixture
def bsd(beanstalkd_binlog: Beanstalkd) -> Beanstalkd:
    """The lifecycle tests' name for a real beanstalkd with a binlog."""
    return beanstalkd_binlog


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    """Test job types, an input file and a results directory."""
    return Lab(tmp_path)
