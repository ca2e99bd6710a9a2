"""Queue inspection across servers: stats (table and JSON), peek, delete."""

from __future__ import annotations

import json
import subprocess

import pytest

from jobrunner import Client
from tests.support import Beanstalkd, jobrunner_cmd

pytestmark = pytest.mark.integration


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(jobrunner_cmd(*args), capture_output=True, text=True, timeout=30)


@pytest.fixture
def two_servers() -> list[Beanstalkd]:
    servers = [Beanstalkd().start(), Beanstalkd().start()]
    yield servers
    for server in servers:
        server.stop()


def test_stats_shows_per_tube_table_across_servers(two_servers: list[Beanstalkd]) -> None:
    """`jobrunner stats` has one row per server and tube with ready/delayed counts."""
    a, b = two_servers
    with Client([a.address, b.address]) as client:
        for n in range(12):
            client.submit(
                "echo", "http://in.test/x", "http://out.test/r.json", tube="t1", id=f"j{n}"
            )
        client.submit("echo", "http://in.test/x", "http://out.test/r.json", tube="t2", delay=100)
    flags = ["--beanstalk", a.address, "--beanstalk", b.address, "--tube", "t1", "--tube", "t2"]
    out = run("stats", "--json", *flags)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [s["server"] for s in report["servers"]] == [a.address, b.address]
    rows = {(r["server"], r["tube"]): r for r in report["tubes"]}
    assert len(rows) == 4
    assert sum(rows[(s, "t1")]["ready"] for s in (a.address, b.address)) == 12
    assert sum(rows[(s, "t2")]["delayed"] for s in (a.address, b.address)) == 1
    table = run("stats", *flags)
    assert table.returncode == 0
    header = next(line for line in table.stdout.splitlines() if line.startswith("server"))
    for column in ("tube", "ready", "reserved", "delayed", "buried", "watching"):
        assert column in header
    assert sum(1 for line in table.stdout.splitlines() if " t1 " in f" {line} ") == 2


def test_stats_reports_a_down_server(two_servers: list[Beanstalkd]) -> None:
    """With one server down, stats still answers for the other and marks the dead one."""
    a, b = two_servers
    b.stop()
    out = run("stats", "--json", "--beanstalk", a.address, "--beanstalk", b.address)
    assert out.returncode == 0
    servers = {s["server"]: s for s in json.loads(out.stdout)["servers"]}
    assert servers[a.address]["up"] is True
    assert servers[b.address]["up"] is False


def test_peek_and_delete(beanstalkd: Beanstalkd) -> None:
    """peek pretty-prints a job by id; delete refuses a ready job unless --force."""
    with Client(beanstalkd.address) as client:
        submitted = client.submit(
            "echo", "http://in.test/x", "http://out.test/r.json", meta={"who": "peek"}
        )
    peeked = run("peek", str(submitted.beanstalk_id), "--beanstalk", beanstalkd.address)
    assert peeked.returncode == 0, peeked.stderr
    shown = json.loads(peeked.stdout)
    assert shown["body"]["id"] == submitted
    assert shown["body"]["meta"] == {"who": "peek"}
    assert shown["stats"]["state"] == "ready"
    ready = run("peek", "ready", "--beanstalk", beanstalkd.address)
    assert json.loads(ready.stdout)["id"] == submitted.beanstalk_id
    refused = run("delete", str(submitted.beanstalk_id), "--beanstalk", beanstalkd.address)
    assert refused.returncode == 1
    assert "not buried" in refused.stderr
    forced = run(
        "delete", str(submitted.beanstalk_id), "--force", "--beanstalk", beanstalkd.address
    )
    assert forced.returncode == 0
    assert beanstalkd.tube_stats().get("current-jobs-ready") == 0


def test_stats_watch_refreshes_until_interrupted(beanstalkd: Beanstalkd) -> None:
    """`stats --watch` redraws the table like top until Ctrl-C, then exits cleanly."""
    import signal
    import time

    proc = subprocess.Popen(
        jobrunner_cmd("stats", "--watch", "0.2", "--beanstalk", beanstalkd.address),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from an interactive shell, whatever this test run inherited: a suite
        # started in the background (``cmd &``) has SIGINT ignored, and a child
        # inherits that, so Ctrl-C would never arrive.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(4.0)  # start-up, then a redraw every 0.2 s
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert out.count("\x1b[H\x1b[2J") >= 2  # the screen was redrawn
    assert out.count(beanstalkd.address + ":") >= 2
