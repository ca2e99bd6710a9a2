"""Start-up checks and honest exits of the real ``jobrunner`` command.

What cannot work is refused at start-up with one line on stderr and exit
code 2 (never a traceback); a reader that goes away (``| head``) ends any
command quietly; ``JOBRUNNER_*`` variables nothing reads are warned about,
except the ones Kubernetes injects for a Service.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Beanstalkd, jobrunner_cmd

pytestmark = pytest.mark.integration


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("JOBRUNNER_")}
    full_env.update(env or {})
    return subprocess.run(
        jobrunner_cmd(*args), capture_output=True, text=True, timeout=60, env=full_env
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def assert_one_line_usage_error(out: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def _sysfs_writable(directory: Path) -> bool:
    try:
        (directory / "jobrunner-check").touch()
    except OSError:
        return False
    return True


def test_read_only_results_dir_stops_the_worker(tmp_path: Path, beanstalkd: Beanstalkd) -> None:
    """A results directory the worker cannot write to is a start-up error (exit 2), not a
    worker whose every job is retried and buried."""
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o555)
    try:
        if os.access(results, os.W_OK):  # root writes anyway: take a directory of sysfs
            results = Path("/sys/kernel")
            assert not os.access(results, os.W_OK) or not _sysfs_writable(results)
        out = run("work", "--beanstalk", beanstalkd.address, "--results-dir", str(results))
    finally:
        (tmp_path / "results").chmod(0o755)
    assert_one_line_usage_error(out, "results_dir", str(results), "not a writable directory")


def test_results_dir_that_is_a_file_stops_the_worker(
    tmp_path: Path, beanstalkd: Beanstalkd
) -> None:
    """A results "directory" that is a file is a start-up error (exit 2)."""
    blocker = tmp_path / "results"
    blocker.write_text("a file")
    out = run("work", "--beanstalk", beanstalkd.address, "--results-dir", str(blocker))
    assert_one_line_usage_error(out, "results_dir", "not a writable directory")


def test_busy_metrics_port_stops_the_worker(
    tmp_path: Path, beanstalkd: Beanstalkd, busy_port: int
) -> None:
    """A metrics port another program holds is a one-line start-up error, no traceback."""
    out = run(
        "work",
        "--beanstalk",
        beanstalkd.address,
        "--results-dir",
        str(tmp_path),
        "--metrics-port",
        str(busy_port),
    )
    assert_one_line_usage_error(out, "metrics_port", str(busy_port), "in use")


def test_busy_port_stops_the_results_server(tmp_path: Path, busy_port: int) -> None:
    """`jobrunner serve` on a port in use is a one-line start-up error, no traceback."""
    out = run("serve", "--results-dir", str(tmp_path), "--port", str(busy_port))
    assert_one_line_usage_error(out, "port", str(busy_port), "in use")


@pytest.mark.parametrize(
    ("flags", "phrase"),
    [
        (["--beanstalk", "a..b.example:11300"], "not a valid host name"),
        (["--beanstalk", "127.0.0.1:99999"], "port 1-65535"),
        (["--metrics-port", "70000"], "metrics_port must be 0-65535"),
        (["--concurrency", "0"], "concurrency must be at least 1"),
        (["--concurrency", "many"], "invalid value 'many' for concurrency"),
    ],
)
def test_invalid_settings_are_one_line_errors(
    tmp_path: Path, flags: list[str], phrase: str
) -> None:
    """An invalid setting stops the worker with one line naming it and exit 2."""
    out = run("work", "--results-dir", str(tmp_path), *flags)
    assert_one_line_usage_error(out, phrase)


def test_unknown_environment_variable_is_warned_about() -> None:
    """A mistyped JOBRUNNER_* variable is warned about (by name), the command still runs."""
    out = run("config", "--json", env={"JOBRUNNER_CONCURENCY": "4"})
    assert out.returncode == 0, out.stderr
    assert "unknown_environment_variable" in out.stderr
    assert "JOBRUNNER_CONCURENCY" in out.stderr


def test_kubernetes_service_links_are_ignored() -> None:
    """The variables Kubernetes injects for a Service named "jobrunner" neither stop a
    command nor are warned about, and JOBRUNNER_PORT=tcp://... does not set the port."""
    links = {
        "JOBRUNNER_PORT": "tcp://10.0.0.11:8080",
        "JOBRUNNER_PORT_8080_TCP": "tcp://10.0.0.11:8080",
        "JOBRUNNER_PORT_8080_TCP_PROTO": "tcp",
        "JOBRUNNER_PORT_8080_TCP_PORT": "8080",
        "JOBRUNNER_PORT_8080_TCP_ADDR": "10.0.0.11",
        "JOBRUNNER_SERVICE_HOST": "10.0.0.11",
        "JOBRUNNER_SERVICE_PORT": "8080",
        "JOBRUNNER_SERVICE_PORT_HTTP": "8080",
        "JOBRUNNER_METRICS_PORT": "tcp://10.0.0.12:9464",  # a Service "jobrunner-metrics"
    }
    out = run("config", "--json", env=links)
    assert out.returncode == 0, out.stderr
    assert "unknown_environment_variable" not in out.stderr
    shown = json.loads(out.stdout)
    assert shown["port"] == {"value": 8080, "source": "default"}
    assert shown["metrics_port"]["value"] is None


@pytest.mark.parametrize(
    "command",
    [
        ["plugins"],
        ["plugins", "--json"],
        ["config"],
        ["--help"],
        ["work", "--help"],
        ["stats", "--beanstalk", "{bsd}"],
        ["buried", "--beanstalk", "{bsd}"],
    ],
)
def test_closed_pipe_is_quiet(command: list[str], beanstalkd: Beanstalkd) -> None:
    """Any command whose reader has gone (`jobrunner plugins | head`) ends quietly: no
    BrokenPipeError traceback, the exit code of a tool stopped by SIGPIPE."""
    args = [a.replace("{bsd}", beanstalkd.address) for a in command]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte
    # Output buffered as by default (this machine's PYTHONUNBUFFERED=1 would let
    # argparse's own write fail, and ignore it, before anything is buffered).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    try:
        proc = subprocess.run(
            jobrunner_cmd(*args),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=env,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


def test_dashboard_refuses_other_addresses_without_a_token(busy_port: int) -> None:
    """The dashboard listens beyond loopback only with a token; a busy port is a one-line
    error too."""
    exposed = run("dashboard", "--dashboard-host", "0.0.0.0", "--dashboard-port", "0")
    assert_one_line_usage_error(exposed, "not a loopback address", "--dashboard-token")
    busy = run("dashboard", "--dashboard-port", str(busy_port))
    assert_one_line_usage_error(busy, "dashboard_port", "in use")
