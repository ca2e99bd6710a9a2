"""Dead letters: permanent failures are buried with a reason; `buried` lists, `kick` re-queues."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import (
    Beanstalkd,
    Lab,
    ResultsServer,
    jobrunner_cmd,
    put_raw,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.integration


def _cli(bsd: Beanstalkd, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        jobrunner_cmd(*args, "--beanstalk", bsd.address),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "JOBRUNNER_LOG_LEVEL": "warning"},
    )


def test_buried_lists_reasons_and_kick_requeues_all_n_or_one(
    bsd: Beanstalkd, results_server: ResultsServer, tmp_path: Path
) -> None:
    """Every permanent failure is buried and listed with id, type and the reason from its
    failed document (served over HTTP); kick re-queues N, one by id, then all — and never
    a delayed job."""
    lab = Lab(tmp_path, results_server.base_url)
    assert lab.results_dir == results_server.results_dir
    worker = lab.worker(bsd.address, concurrency=2)
    try:
        ids = {
            # Buried last, lowest id: `buried` must not start its walk at the first buried.
            "hang": put_raw(bsd.port, lab.body("hang", "hang", timeout=2)),
            "fail": put_raw(bsd.port, lab.body("fail", "fail")),
            "garbage": put_raw(bsd.port, b"{not json"),
            "segv": put_raw(bsd.port, lab.body("segfault", "segv")),
        }
        wait_for(lambda: bsd.tube_stats().get("current-jobs-buried") == 4, 60, what="4 buried")
        for name in ("hang", "fail", "segv"):
            assert wait_for_status(lab.result(name), ("failed",))["status"] == "failed"
    finally:
        assert worker.stop() == 0
    delayed = put_raw(bsd.port, lab.body("pid", "delayed"), delay=3600)

    # The reasons are read over HTTP below --base-url (no --results-dir given).
    served = ("--base-url", results_server.base_url)
    listing = _cli(bsd, "buried", "--json", *served)
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert [row["id"] for row in rows] == sorted(ids.values())
    by_id = {row["id"]: row for row in rows}
    assert by_id[ids["hang"]]["type"] == "test_hang"
    assert by_id[ids["hang"]]["reason"].startswith("timeout: the job ran longer")
    assert by_id[ids["fail"]]["reason"] == "plugin_error: ValueError: bad value in test job"
    assert by_id[ids["fail"]]["job_id"] == "fail"
    assert by_id[ids["garbage"]]["reason"] == "invalid job document"
    assert by_id[ids["segv"]]["reason"].startswith("worker_crash: ")
    assert all(row["tube"] == "default" for row in rows)
    text = _cli(bsd, "buried", *served).stdout
    assert f"{bsd.address}/{ids['fail']}" in text and "reason: plugin_error" in text
    from_disk = json.loads(
        _cli(bsd, "buried", "--json", *served, "--results-dir", str(lab.results_dir)).stdout
    )
    assert {row["id"]: row["reason"] for row in from_disk} == {
        row["id"]: row["reason"] for row in rows
    }
    # Without --base-url no result URL named by a job document is followed.
    blind = json.loads(_cli(bsd, "buried", "--json").stdout)
    assert {row["reason"] for row in blind} <= {None, "invalid job document"}

    assert "kicked 1 job(s)" in _cli(bsd, "kick", "1").stdout
    assert bsd.tube_stats()["current-jobs-buried"] == 3
    one = _cli(bsd, "kick", "--id", str(ids["segv"]))
    assert one.returncode == 0, one.stderr
    assert f"kicked job segv (type test_segfault, tube default, {bsd.address}/{ids['segv']}" in (
        one.stdout
    )
    assert bsd.tube_stats()["current-jobs-buried"] == 2
    assert "kicked 2 job(s)" in _cli(bsd, "kick").stdout
    assert "kicked 0 job(s)" in _cli(bsd, "kick").stdout
    stats = bsd.tube_stats()
    assert stats["current-jobs-buried"] == 0
    assert stats["current-jobs-ready"] == 4
    assert stats["current-jobs-delayed"] == 1  # the waiting job was not kicked
    assert "no buried jobs" in _cli(bsd, "buried").stdout
    missing = _cli(bsd, "kick", "--id", str(delayed + 100))
    assert missing.returncode == 1
