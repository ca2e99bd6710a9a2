"""Planning periodic runs: cron in a time zone, intervals, ids, templates, bad files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from jobrunner.errors import ConfigError
from jobrunner.schedule import Schedule, load_schedules

UTC = dt.timezone.utc
JOB = {
    "type": "echo",
    "input": "https://in.test/x",
    "result": "https://r.test/{name}/{run:%Y%m%d}.json",
}


def test_cron_in_a_time_zone_across_the_spring_change() -> None:
    """02:30 Berlin time does not exist on the night clocks go forward: that run is at
    03:00 local; the runs around it are at 02:30 local (00:30/01:30 UTC)."""
    nightly = Schedule(name="n", cron="30 2 * * *", timezone="Europe/Berlin", job=JOB)
    runs = nightly.runs_after(dt.datetime(2026, 3, 28, 12, tzinfo=UTC))
    got = [next(runs) for _ in range(3)]
    assert got == [
        dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
        dt.datetime(2026, 3, 31, 0, 30, tzinfo=UTC),
    ]


def test_intervals_are_anchored_at_the_epoch() -> None:
    """Every 15 minutes means :00, :15, :30, :45 whenever the scheduler starts, so every
    node plans the same instants and ids."""
    quarter = Schedule(name="q", every=900, job=JOB)
    runs = quarter.runs_after(dt.datetime(2026, 5, 1, 10, 7, 12, tzinfo=UTC))
    assert [next(runs) for _ in range(2)] == [
        dt.datetime(2026, 5, 1, 10, 15, tzinfo=UTC),
        dt.datetime(2026, 5, 1, 10, 30, tzinfo=UTC),
    ]
    assert quarter.job_id(dt.datetime(2026, 5, 1, 10, 15, tzinfo=UTC)) == "q.20260501T101500Z"


def test_document_fills_templates_in_the_schedules_time_zone() -> None:
    """{name}, {id} and {run:FORMAT} are filled in the result URL and params; the run is
    formatted in local time; expires_after sets expires."""
    nightly = Schedule(
        name="meter-17",
        cron="30 0 * * *",
        timezone="Europe/Berlin",
        job={**JOB, "params": {"day": "{run:%Y-%m-%d}", "n": 3}, "expires_after": 3600},
    )
    run = dt.datetime(2026, 6, 30, 22, 30, tzinfo=UTC)  # 00:30 on 1 July in Berlin
    doc = nightly.document(run)
    assert doc["id"] == "meter-17.20260630T223000Z"
    assert doc["result"] == "https://r.test/meter-17/20260701.json"
    assert doc["params"] == {"day": "2026-07-01", "n": 3}
    assert doc["expires"].startswith("2026-06-30T23:30:00")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "no \\[\\[schedule\\]\\] tables"),
        ('[[schedule]]\nname = "a"\ntype = "echo"\n', "either 'cron' or 'every'"),
        (
            '[[schedule]]\nname = "a"\ncron = "61 * * * *"\ntype="echo"\ninput="https://i.t/"\nresult="https://r.t/a"\n',
            "cron",
        ),
        ('[[schedule]]\nname = "a"\nevery = "soon"\n', "not a duration"),
        ('[[schedule]]\nname = "a b"\nevery = 5\n', "'name' is required"),
        (
            '[[schedule]]\nname = "a"\nevery = 5\ntype="echo"\ninput="nope"\nresult="https://r.t/a"\n',
            "the job is invalid",
        ),
        ('[[schedule]]\nname = "a"\nevery = 5\ntimezone = "Mars/Olympus"\n', "unknown time zone"),
        ('[[schedule]]\nname = "a"\nevery = 5\nmissed = "maybe"\n', "missed must be"),
        ('[[schedule]]\nname = "a"\nevery = 5\nhorizon = 3\n', "unknown key"),
    ],
)
def test_bad_schedule_files_fail_at_start_up(tmp_path: Path, body: str, message: str) -> None:
    """Each mistake in a schedule file is a ConfigError naming it, before anything runs."""
    path = tmp_path / "s.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_schedules(path)
