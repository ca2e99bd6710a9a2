"""The worker's safety net: a failure in jobrunner's own handling buries the job."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.config import load_config
from jobrunner.worker import Worker
from tests.support import Beanstalkd, job_body, put_raw, wait_for


def test_a_bug_while_handling_buries_the_job_instead_of_leaving_it_reserved(
    beanstalkd: Beanstalkd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception in the worker's own code buries the job (no poison job that
    returns after every TTR) and the slot goes on."""
    config = load_config(
        env={},
        flags={
            "beanstalk": [beanstalkd.address],
            "results_dir": str(tmp_path / "results"),
            "base_url": "http://r.test/",
            "concurrency": 1,
        },
    )
    node = Worker(config)
    slot = node.slots[0]

    def broken(body: bytes) -> None:
        raise RuntimeError("a bug in decoding")

    monkeypatch.setattr("jobrunner.worker.codec.decode_job", broken)
    put_raw(beanstalkd.port, job_body("echo", "http://r.test/x.json", "http://in.test/x"), ttr=2)
    try:
        wait_for(
            lambda: slot._step() or beanstalkd.tube_stats().get("current-jobs-buried"),
            timeout=30,
            what="the job buried",
        )
        assert node.counters.get("jobs_unhandled") == 1
        assert beanstalkd.tube_stats().get("current-jobs-reserved") == 0
    finally:
        slot.child.stop()
        for conn in slot.connections:
            conn.close()
