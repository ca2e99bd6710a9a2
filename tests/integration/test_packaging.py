"""The built distribution, as users install it: fresh virtualenvs on every supported Python."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import IN_CI, Beanstalkd, LoggedProcess, wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
# What a web server must not get with the base install.
SERVER_ONLY = {"uvicorn", "click", "h11", "httpx", "httpcore", "stevedore", "starlette", "numpy"}


def find_python(version: str) -> str | None:
    """An interpreter for ``version``: pyenv's newest patch release, else ``pythonX.Y`` on PATH."""
    if sys.version_info[:2] == tuple(int(n) for n in version.split(".")):
        return sys.executable
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(
        glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"),
        key=lambda p: [int(n) for n in Path(p).parts[-3].split(".") if n.isdigit()],
    )
    return found[-1] if found else shutil.which(f"python{version}")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would let the checkout leak into the venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run(
        cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The core wheel, built from this checkout as a release would be."""
    out = tmp_path_factory.mktemp("dist")
    run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(out), str(ROOT)],
        ROOT,
    )
    [built] = out.glob("beanstalk_jobrunner-*.whl")
    yield built


@pytest.mark.timeout(900)  # a fresh venv and pip installs, slow on a loaded machine
@pytest.mark.parametrize("version", SUPPORTED)
def test_wheel_and_plugin_run_a_job_in_a_fresh_virtualenv(
    version: str, wheel: Path, beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    """Fresh venv: the base wheel submits, server-free; with [worker] and a plugin it runs a job."""
    python = find_python(version)
    if python is None:
        message = f"Python {version} is not installed (pyenv install {version})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    venv = tmp_path / "venv"
    run([python, "-m", "venv", str(venv)], tmp_path)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]

    # The base install: what a web server gets. It submits with the command line.
    run([*pip, str(wheel)], tmp_path)
    installed = {
        d["name"].lower() for d in json.loads(run([*pip[:3], "list", "--format=json"], tmp_path))
    }
    assert not installed & SERVER_ONLY, installed & SERVER_ONLY
    assert "beanstalk-jobrunner" in installed
    jobrunner = str(venv / "bin" / "jobrunner")
    submit = [jobrunner, "submit", "--beanstalk", beanstalkd.address, "--tube", "web"]
    job = ["--type", "echo", "--input", "https://in.test/a", "--result", "https://r.test/a"]
    assert run([*submit, *job], tmp_path).strip()
    assert beanstalkd.tube_stats("web")["current-jobs-ready"] == 1
    missing = subprocess.run(
        [jobrunner, "work", "--beanstalk", beanstalkd.address],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "pip install 'beanstalk-jobrunner[worker]'" in missing.stderr

    # A worker: the [worker] extra and a plugin from its own folder.
    run([*pip, f"{wheel}[worker]", str(ROOT / "examples" / "plugin-template")], tmp_path)
    inputs, results = tmp_path / "inputs", tmp_path / "results"
    inputs.mkdir()
    (inputs / "series.json").write_text(json.dumps([[0, 1.5], [1800, 4.0], [3600, 2.5]]))
    jobrunner = str(venv / "bin" / "jobrunner")
    worker = LoggedProcess(
        [
            jobrunner,
            "work",
            "--beanstalk",
            beanstalkd.address,
            "--results-dir",
            str(results),
            "--base-url",
            "http://results.test/",
            "--allow-file-inputs",
            str(inputs),
            "--concurrency",
            "1",
        ],
        env=clean_env(),
        cwd=tmp_path,
    )
    try:
        submitted = run(
            [
                jobrunner,
                "submit",
                "--beanstalk",
                beanstalkd.address,
                "--type",
                "peaks",
                "--input",
                (inputs / "series.json").as_uri(),
                "--result",
                "http://results.test/peaks.json",
                "--param",
                "top=2",
            ],
            tmp_path,
        )
        assert submitted.strip()
        doc = wait_for_status(results / "peaks.json", timeout=60)
    finally:
        worker.stop()
    assert doc["status"] == "done", doc
    assert doc["data"]["peaks"] == [[1800, 4.0], [3600, 2.5]]
    provenance = doc["provenance"]
    assert provenance["plugin"] == "jobrunner-plugin-template"
    assert wheel.name.split("-")[1] == provenance["jobrunner_version"]
    ran_on = run([str(venv / "bin" / "python"), "-c", "import sys; print(sys.version)"], tmp_path)
    assert ran_on.startswith(version + ".")
