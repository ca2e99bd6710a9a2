"""The deployment examples are valid: systemd units pass ``systemd-analyze verify``, the
worker's TOML file is a configuration jobrunner accepts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from jobrunner.config import load_config
from tests.support import require_binary

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "examples" / "systemd"

pytestmark = pytest.mark.integration


UNITS = [
    "jobrunner-worker.service",
    "jobrunner-worker@.service",
    "jobrunner-serve.service",
    "jobrunner-schedule.service",
]
#: The units that must score at most 3.0 ("OK") in ``systemd-analyze security``.
HARDENED = [
    "jobrunner-worker.service",
    "jobrunner-worker@.service",
    "jobrunner-serve.service",
    "jobrunner-schedule.service",
]


def installed_unit(unit: str, directory: Path) -> Path:
    """The example unit with this virtualenv's jobrunner, as a file systemd can load
    (a template as one of its instances)."""
    jobrunner = Path(sys.executable).parent / "jobrunner"
    text = (
        (SYSTEMD / unit).read_text().replace("/opt/jobrunner/.venv/bin/jobrunner", str(jobrunner))
    )
    path = directory / unit.replace("@.", "@main.")
    path.write_text(text)
    return path


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_units_verify(unit: str, tmp_path: Path) -> None:
    """systemd accepts every directive of the example units (no warning, no error)."""
    analyze = require_binary("systemd-analyze")
    path = installed_unit(unit, tmp_path)
    result = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("unit", HARDENED)
def test_systemd_units_are_sandboxed(unit: str, tmp_path: Path) -> None:
    """The worker and results-server units score at most 3.0 in systemd-analyze security."""
    analyze = require_binary("systemd-analyze")
    path = installed_unit(unit, tmp_path)
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found is not None, result.stdout + result.stderr
    assert float(found.group(1)) <= 3.0, result.stdout


def service_lines(unit: str) -> list[str]:
    """The [Service] settings of a unit, comments left out."""
    text = (SYSTEMD / unit).read_text().split("[Service]", 1)[1].split("[Install]", 1)[0]
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_worker_template_matches_the_worker_unit() -> None:
    """jobrunner-worker@.service differs from jobrunner-worker.service only in its
    per-instance environment: same command, stop handling and sandbox."""
    single = service_lines("jobrunner-worker.service")
    template = service_lines("jobrunner-worker@.service")
    assert [line for line in template if "%i" not in line] == single
    assert "EnvironmentFile=/etc/jobrunner/worker-%i.env" in template
    assert "Environment=JOBRUNNER_WORKER_NAME=%H-%i" in template


def test_worker_units_stop_gracefully() -> None:
    """The worker unit sends SIGTERM to the worker only and waits longer than its grace."""
    text = (SYSTEMD / "jobrunner-worker.service").read_text()
    assert "KillMode=mixed" in text
    stop = int(text.split("TimeoutStopSec=")[1].split()[0])
    grace = load_config(config_file=SYSTEMD / "worker.toml", env={}).grace
    assert stop > grace


def test_example_worker_toml_is_valid() -> None:
    """examples/systemd/worker.toml loads with every key recognised and its values typed."""
    config = load_config(config_file=SYSTEMD / "worker.toml", env={})
    assert config.publisher == ("file", "rsync")
    assert config.sources["rsync_peer"] == "file"
    assert config.metrics_port == 9464


def test_example_schedule_toml_is_valid() -> None:
    """examples/systemd/schedule.toml loads: its settings, its scheduler group and both
    schedules, each job document valid."""
    from jobrunner.schedule import load_schedules

    config = load_config(config_file=SYSTEMD / "schedule.toml", env={})
    assert config.beanstalk == ("127.0.0.1:11300",)
    settings, schedules = load_schedules(SYSTEMD / "schedule.toml")
    assert settings.group == "default"
    assert [s.name for s in schedules] == ["forecast-meter-17", "grid-refresh"]


def test_varnish_drop_in_verifies(tmp_path: Path) -> None:
    """examples/varnish/jobrunner.conf on top of Debian's varnish.service passes
    systemd-analyze verify, and starts varnishd with the jobrunner VCL."""
    analyze = require_binary("systemd-analyze")
    require_binary("varnishd")
    base = next(
        (
            path
            for path in (
                Path("/lib/systemd/system/varnish.service"),
                Path("/usr/lib/systemd/system/varnish.service"),
            )
            if path.exists()
        ),
        None,
    )
    if base is None:
        pytest.skip("Debian's varnish package (varnish.service) is not installed")
    drop_in = (ROOT / "examples" / "varnish" / "jobrunner.conf").read_text()
    assert "-f /etc/varnish/jobrunner.vcl" in drop_in
    # A drop-in's settings come after the unit's: appending them is what systemd reads.
    (tmp_path / "varnish.service").write_text(base.read_text() + "\n" + drop_in)
    # --man=no: Debian's unit names man pages, absent on a minimal system (no man-db).
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / "varnish.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
