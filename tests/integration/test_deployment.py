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


@pytest.mark.parametrize("unit", ["jobrunner-worker.service", "jobrunner-serve.service"])
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
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "varnish.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
