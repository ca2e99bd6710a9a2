"""The deployment examples are valid: systemd units pass ``systemd-analyze verify``, the
worker's TOML file is a configuration jobrunner accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobrunner.config import load_config
from tests.support import require_binary

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "examples" / "systemd"

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "unit", ["jobrunner-worker.service", "jobrunner-serve.service", "jobrunner-schedule.service"]
)
def test_systemd_units_verify(unit: str, tmp_path: Path) -> None:
    """systemd accepts every directive of the example units (no warning, no error)."""
    analyze = require_binary("systemd-analyze")
    jobrunner = Path(sys.executable).parent / "jobrunner"
    text = (
        (SYSTEMD / unit).read_text().replace("/opt/jobrunner/.venv/bin/jobrunner", str(jobrunner))
    )
    (tmp_path / unit).write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


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
