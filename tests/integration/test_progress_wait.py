"""Status documents while a job runs, ``submit --wait`` and ``status``, through a real
worker, beanstalkd and ``jobrunner serve``.

The job types live in a fake installed distribution (``jrprogress``) put on the
worker's PYTHONPATH, as a pip-installed plugin would be found.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobrunner import Client
from tests.support import (
    Beanstalkd,
    ResultsServer,
    Worker,
    install_fake_plugin,
    jobrunner_cmd,
    pythonpath_env,
    read_json,
    wait_for,
)

pytestmark = pytest.mark.integration

JOBS = '''\
"""Job types that take a while and say how far they are."""

import time

import jobrunner


def steps(ctx):
    """params.steps steps of params.step seconds, reporting progress after each."""
    n = int(ctx.params.get("steps", 6))
    for i in range(n):
        time.sleep(float(ctx.params.get("step", 0.5)))
        ctx.progress((i + 1) / n, f"step {i + 1} of {n}")
    return {"steps": n, "attempt": ctx.attempt}


def retry_then_steps(ctx):
    """Ask for a retry in 1 s on attempt 1; then run as ``steps``."""
    if ctx.attempt == 1:
        raise jobrunner.Retry("warming up", delay=1)
    return steps(ctx)


def boom(ctx):
    """Fail: a plugin bug."""
    raise ValueError("the model diverged")
'''


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    """The ``jrprogress`` job types, installed as a fake distribution."""
    return install_fake_plugin(
        tmp_path / "plugins",
        "jrprogress",
        JOBS,
        {
            "jobrunner.job_types": {
                "steps": "jrprogress:steps",
                "retry_then_steps": "jrprogress:retry_then_steps",
                "boom": "jrprogress:boom",
            }
        },
    )


@pytest.fixture
def input_url(tmp_path: Path) -> str:
    """A file: input URL (workers get --allow-file-inputs for its directory)."""
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "in.json").write_text("{}")
    return (tmp_path / "inputs" / "in.json").as_uri()


@pytest.fixture
def worker(
    beanstalkd: Beanstalkd, results_server: ResultsServer, plugin_dir: Path, tmp_path: Path
) -> Iterator[Worker]:
    """One worker with the jrprogress job types, publishing to the results server's directory."""
    process = Worker(
        beanstalkd.address,
        results_server.results_dir,
        results_server.base_url,
        "--allow-file-inputs",
        str(tmp_path / "inputs"),
        env=pythonpath_env(plugin_dir),
    )
    yield process
    process.stop()


def watch(path: Path, until: tuple[str, ...] = ("done", "failed")) -> list[dict[str, Any]]:
    """Every distinct document seen at ``path`` until one with a status in ``until``."""
    seen: list[dict[str, Any]] = []

    def poll() -> bool:
        doc = read_json(path)
        if isinstance(doc, dict) and (not seen or doc != seen[-1]):
            seen.append(doc)
        return bool(seen) and seen[-1].get("status") in until

    wait_for(poll, timeout=40, interval=0.02, what=f"{path} final")
    return seen


def _time(text: str) -> float:
    from jobrunner.codec import parse_time

    return parse_time(text).timestamp()


def test_running_documents_show_rising_progress(
    beanstalkd: Beanstalkd,
    results_server: ResultsServer,
    worker: Worker,
    input_url: str,
) -> None:
    """A long job shows `running` documents with rising progress, each with its timestamp and
    at most about one a second, before `done`; a retried job shows `running` with attempt 2."""
    base = results_server.base_url
    with Client(beanstalkd.address) as client:
        client.submit("steps", input_url, base + "long.json", {"steps": 8, "step": 0.4})
    docs = watch(results_server.results_dir / "long.json")
    assert docs[-1]["status"] == "done"
    assert docs[-1]["data"] == {"steps": 8, "attempt": 1}
    running = [d for d in docs if d["status"] == "running"]
    progress = [d["progress"] for d in running]
    assert len(set(progress)) >= 2, progress
    assert progress == sorted(progress)
    assert 0 < max(progress) <= 1
    assert all(d.get("timestamp") for d in docs)
    assert any(d.get("message", "").startswith("step ") for d in running)
    stamps = [_time(d["timestamp"]) for d in docs]
    assert stamps == sorted(stamps)
    # Rate limit: progress documents (after the one at start) come >= ~1 s apart.
    reported = [_time(d["timestamp"]) for d in running if d["progress"] > 0]
    assert all(b - a >= 0.7 for a, b in itertools.pairwise(reported)), reported

    with Client(beanstalkd.address) as client:
        client.submit(
            "retry_then_steps", input_url, base + "retried.json", {"steps": 4, "step": 0.5}
        )
    docs = watch(results_server.results_dir / "retried.json")
    assert docs[-1]["status"] == "done"
    assert docs[-1]["attempt"] == 2
    assert any(d["status"] == "running" and d["attempt"] == 2 for d in docs), docs
    first = [d for d in docs if d.get("attempt") == 1]
    assert all(d["status"] == "running" for d in first)


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        jobrunner_cmd(*args), capture_output=True, text=True, timeout=timeout, check=False
    )


def test_submit_wait_and_status(
    beanstalkd: Beanstalkd,
    results_server: ResultsServer,
    worker: Worker,
    input_url: str,
) -> None:
    """`submit --wait` prints progress lines and the done document (exit 0), or the error
    of a failed job (exit 1); `status` shows a document by URL or by ID with --base-url."""
    base = results_server.base_url
    submit = ("submit", "--beanstalk", beanstalkd.address, "--input", input_url)
    done = run_cli(
        *submit,
        "--type",
        "steps",
        "--result",
        base + "waited.json",
        "--params",
        '{"steps": 6, "step": 0.4}',
        "--id",
        "waited",
        "--wait",
        "--wait-timeout",
        "50",
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == "done"
    assert doc["id"] == "waited"
    lines = done.stderr.splitlines()
    assert any(line.startswith("running ") and "%" in line for line in lines), done.stderr
    assert "\r" not in done.stderr  # not a terminal: plain lines, no bar

    failed = run_cli(*submit, "--type", "boom", "--result", base + "boom.json", "--wait", "--quiet")
    assert failed.returncode == 1, failed.stderr
    assert failed.stdout.startswith("failed: job ")
    assert "plugin_error" in failed.stderr
    assert "the model diverged" in failed.stderr

    shown = run_cli("status", base + "waited.json")
    assert shown.returncode == 0, shown.stderr
    assert "status" in shown.stdout and "done" in shown.stdout
    by_id = run_cli("status", "waited", "--base-url", base, "--json")
    assert by_id.returncode == 0, by_id.stderr
    assert json.loads(by_id.stdout) == doc
    missing = run_cli("status", base + "nothing.json")
    assert missing.returncode == 1
    assert "no result document" in missing.stderr
    no_base = run_cli("status", "waited")
    assert no_base.returncode == 2
    assert "--base-url" in no_base.stderr


def test_submit_wait_times_out_clearly(
    beanstalkd: Beanstalkd, results_server: ResultsServer, input_url: str
) -> None:
    """With no worker, `submit --wait --wait-timeout` gives up with exit 3 and says why."""
    started = time.monotonic()
    out = run_cli(
        "submit",
        "--beanstalk",
        beanstalkd.address,
        "--type",
        "echo",
        "--input",
        input_url,
        "--result",
        results_server.base_url + "never.json",
        "--wait",
        "--wait-timeout",
        "1.5",
    )
    assert out.returncode == 3, out.stderr
    assert "no final result" in out.stderr
    assert "waiting in the queue" in out.stderr
    assert out.stdout == ""
    assert time.monotonic() - started < 30
