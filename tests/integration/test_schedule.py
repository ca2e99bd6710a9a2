"""``jobrunner schedule`` against a real beanstalkd: one leader among two schedulers,
takeover when it is killed, each planned run submitted exactly once, missed runs."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import signal
import time
from pathlib import Path

import pytest

from jobrunner.queue import Connection
from tests.support import Beanstalkd, LoggedProcess, jobrunner_cmd

pytestmark = pytest.mark.integration


def _write(path: Path, beanstalk: str, missed: str = "skip", grace: str = "60") -> Path:
    path.write_text(
        f"""
beanstalk = ["{beanstalk}"]
tube = ["periodic"]
log_level = "info"

[scheduler]
group = "t"
lease_ttr = 3

[[schedule]]
name = "tick"
every = 1
missed = "{missed}"
grace = {grace}
type = "echo"
input = "https://data.example/in.json"
result = "https://results.example/tick/{{id}}.json"
params = {{ planned = "{{run:%H:%M:%S}}" }}
"""
    )
    return path


def _scheduler(config: Path) -> LoggedProcess:
    return LoggedProcess(jobrunner_cmd("schedule", "--config", str(config)))


def _submitted(address: str) -> list[dict[str, object]]:
    """Every job document in the tube, read with reserve and deleted."""
    conn = Connection(address, watch=["periodic"])
    docs = []
    try:
        while (job := conn.reserve(timeout=0)) is not None:
            docs.append(json.loads(job.body))
            conn.delete(job.id)
    finally:
        conn.close()
    return docs


def _run_times(docs: list[dict[str, object]]) -> list[dt.datetime]:
    return [dt.datetime.strptime(str(d["id"]).split(".", 1)[1], "%Y%m%dT%H%M%SZ") for d in docs]


def test_two_schedulers_leader_killed_every_run_exactly_once(
    beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    """Two schedulers of one group: only one submits; killed with SIGKILL, the other takes
    over within the lease TTR, and every second from the first run to the last is
    submitted exactly once, with its deterministic id and templated fields."""
    config = _write(tmp_path / "s.toml", beanstalkd.address)
    first = _scheduler(config)
    first.wait_event("schedule_leading", timeout=20)
    second = _scheduler(config)
    try:
        second.wait_event("scheduler_started", timeout=20)
        first.wait_event("schedule_run_submitted", count=3, timeout=20)
        assert not second.find("schedule_leading")
        first.signal(signal.SIGKILL)
        first.wait(10)
        killed_at = time.monotonic()
        second.wait_event("schedule_leading", timeout=10)
        assert time.monotonic() - killed_at < 4  # the lease TTR bounds it (here: at once)
        second.wait_event("schedule_run_submitted", count=3, timeout=20)
    finally:
        assert second.stop() == 0
        first.stop()
    docs = _submitted(beanstalkd.address)
    runs = _run_times(docs)
    assert len(runs) >= 6
    assert len(runs) == len(set(runs)), "a run was submitted twice"
    ordered = sorted(runs)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ordered)]
    assert gaps == [1.0] * len(gaps), f"a run is missing: {ordered}"
    sample = docs[0]
    assert sample["result"] == f"https://results.example/tick/{sample['id']}.json"
    stamp = str(sample["id"]).split(".", 1)[1]  # 20261201T170000Z
    assert sample["params"] == {"planned": f"{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}"}


@pytest.mark.parametrize("missed", ["skip", "catch_up"])
def test_missed_runs_are_skipped_or_caught_up(
    beanstalkd: Beanstalkd, tmp_path: Path, missed: str
) -> None:
    """With no scheduler running for a few seconds, the next leader skips the runs
    planned more than grace ago (missed = skip) or submits each of them (catch_up)."""
    config = _write(tmp_path / "s.toml", beanstalkd.address, missed=missed, grace="0.5")
    first = _scheduler(config)
    first.wait_event("schedule_run_submitted", count=2, timeout=20)
    assert first.stop() == 0
    time.sleep(4)
    second = _scheduler(config)
    try:
        second.wait_event("schedule_run_submitted", count=2, timeout=20)
    finally:
        assert second.stop() == 0
    runs = sorted(_run_times(_submitted(beanstalkd.address)))
    assert len(runs) == len(set(runs))
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(runs)]
    if missed == "catch_up":
        assert gaps == [1.0] * len(gaps), runs
        assert second.find("schedule_run_skipped") == []
    else:
        assert max(gaps) >= 3, runs
        assert second.find("schedule_run_skipped")


def test_a_hung_leader_is_replaced_within_the_lease_ttr(
    beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    """A leader frozen with SIGSTOP keeps its connection open: the other scheduler leads
    once the lease's TTR (3 s) runs out; the old one, thawed, steps down without
    submitting, and every run is still submitted exactly once."""
    config = _write(tmp_path / "s.toml", beanstalkd.address, missed="catch_up")
    first = _scheduler(config)
    first.wait_event("schedule_leading", timeout=20)
    second = _scheduler(config)
    try:
        second.wait_event("scheduler_started", timeout=20)
        first.wait_event("schedule_run_submitted", count=2, timeout=20)
        first.signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        second.wait_event("schedule_leading", timeout=15)
        assert time.monotonic() - frozen_at < 3 + 3  # TTR, plus beanstalkd's 1 s tick
        submitted_before = len(first.find("schedule_run_submitted"))
        first.signal(signal.SIGCONT)
        first.wait_event("schedule_leadership_ended", timeout=10)
        second.wait_event("schedule_run_submitted", count=3, timeout=20)
        assert len(first.find("schedule_run_submitted")) == submitted_before
    finally:
        first.signal(signal.SIGCONT)
        assert second.stop() == 0
        first.stop()
    runs = sorted(_run_times(_submitted(beanstalkd.address)))
    assert len(runs) == len(set(runs)), "a run was submitted twice"
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(runs)]
    assert gaps == [1.0] * len(gaps), f"a run is missing: {runs}"
