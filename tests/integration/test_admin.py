"""Queue inspection across servers: stats (table and JSON), peek, delete."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from jobrunner import Client
from jobrunner.queue import Connection
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
    for column in ("tube", "ready", "reserved", "delayed", "buried", "watchers", "paused"):
        assert column in header
    assert sum(1 for line in table.stdout.splitlines() if " t1 " in f" {line} ") == 2


def test_stats_reports_a_down_server(two_servers: list[Beanstalkd]) -> None:
    """With one server down, stats still answers for the other, marks the dead one, and
    exits 1 so that a script notices."""
    a, b = two_servers
    b.stop()
    out = run("stats", "--json", "--beanstalk", a.address, "--beanstalk", b.address)
    assert out.returncode == 1
    assert b.address in out.stderr
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
    assert "is not buried" in refused.stderr
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


def _submit(address: str, job_id: str, tube: str = "default", **kwargs: Any) -> int:
    with Client(address) as client:
        return client.submit(
            "echo", "http://in.test/x", "http://out.test/r.json", tube=tube, id=job_id, **kwargs
        ).beanstalk_id


def _bury(beanstalkd: Beanstalkd, tube: str) -> int:
    """Reserve the next job of ``tube`` and bury it, as a worker would; return its id."""
    conn = Connection(beanstalkd.address, watch=[tube])
    try:
        job = conn.reserve(5)
        assert job is not None
        conn.bury(job.id, 100)
        return job.id
    finally:
        conn.close()


@pytest.mark.parametrize(
    "command",
    [
        ["stats"],
        ["stats", "--json"],
        ["peek", "ready"],
        ["buried"],
        ["buried", "--json"],
        ["kick"],
        ["kick", "--id", "7"],
        ["delete", "7"],
        ["purge", "--yes"],
        ["pause"],
        ["resume"],
    ],
)
def test_unreachable_server_is_a_non_zero_exit(command: list[str]) -> None:
    """Every queue command exits non-zero and says so when its server cannot be reached
    (no "no buried jobs" and exit 0 from a dead server)."""
    out = run(*command, "--beanstalk", "127.0.0.1:1")
    assert out.returncode != 0, out.stdout
    assert "127.0.0.1:1" in out.stderr
    assert "Traceback" not in out.stderr


def test_delete_and_kick_by_job_id_honour_the_tube(beanstalkd: Beanstalkd) -> None:
    """delete and kick take the job id (looked up among buried jobs) or the beanstalkd id,
    act only on the --tube given, and say which job, type and tube they acted on."""
    other = _submit(beanstalkd.address, "in-other-tube", tube="scale")
    _bury(beanstalkd, "scale")
    mine = _submit(beanstalkd.address, "job-to-kick")
    _bury(beanstalkd, "default")
    _submit(beanstalkd.address, "job-to-delete")
    doomed = _bury(beanstalkd, "default")
    flags = ["--beanstalk", beanstalkd.address]

    wrong_tube = run("delete", str(other), *flags)  # --tube default: job 1 is in scale
    assert wrong_tube.returncode == 1
    assert "'scale'" in wrong_tube.stderr and "--tube" in wrong_tube.stderr
    assert beanstalkd.tube_stats("scale")["current-jobs-buried"] == 1

    kicked = run("kick", "--id", "job-to-kick", *flags)
    assert kicked.returncode == 0, kicked.stderr
    assert "job job-to-kick (type echo, tube default" in kicked.stdout
    assert f"/{mine}" in kicked.stdout
    assert beanstalkd.tube_stats()["current-jobs-ready"] == 1

    deleted = run("delete", "job-to-delete", *flags)
    assert deleted.returncode == 0, deleted.stderr
    expected = f"deleted job job-to-delete (type echo, tube default, {beanstalkd.address}/{doomed}"
    assert expected in deleted.stdout
    assert beanstalkd.tube_stats()["current-jobs-buried"] == 0

    by_number = run("delete", str(other), "--tube", "scale", *flags)
    assert by_number.returncode == 0, by_number.stderr
    assert "job in-other-tube (type echo, tube scale" in by_number.stdout
    assert beanstalkd.tube_stats("scale").get("current-jobs-buried", 0) == 0

    missing = run("kick", "--id", "no-such-job", *flags)
    assert missing.returncode == 1
    assert "no job 'no-such-job'" in missing.stderr


def test_purge_asks_then_deletes_the_tubes_jobs(beanstalkd: Beanstalkd) -> None:
    """purge without --yes (and no terminal) refuses with exit 2 and deletes nothing; with
    --yes it deletes the ready, delayed and buried jobs of the given tube only."""
    for n in range(3):
        _submit(beanstalkd.address, f"ready-{n}", tube="doomed")
    _submit(beanstalkd.address, "later", tube="doomed", delay=600)
    _submit(beanstalkd.address, "dead", tube="doomed")
    _bury(beanstalkd, "doomed")
    _submit(beanstalkd.address, "kept", tube="kept")
    flags = ["--beanstalk", beanstalkd.address, "--tube", "doomed"]

    asked = run("purge", *flags)
    assert asked.returncode == 2
    assert "would delete 5 job(s)" in asked.stderr and "--yes" in asked.stderr
    assert beanstalkd.tube_stats("doomed")["current-jobs-ready"] == 3  # one of 4 is buried

    done = run("purge", "--yes", *flags)
    assert done.returncode == 0, done.stderr
    assert "deleted 5 job(s)" in done.stdout
    stats = beanstalkd.tube_stats("doomed")
    assert [stats.get(f"current-jobs-{s}", 0) for s in ("ready", "delayed", "buried")] == [0] * 3
    assert beanstalkd.tube_stats("kept")["current-jobs-ready"] == 1


def test_pause_stops_reservations_until_resume(beanstalkd: Beanstalkd) -> None:
    """pause keeps a tube's jobs from being reserved (beanstalkd pause-tube); resume ends
    it; stats shows the seconds left."""
    _submit(beanstalkd.address, "waiting")
    flags = ["--beanstalk", beanstalkd.address]
    paused = run("pause", "--seconds", "600", *flags)
    assert paused.returncode == 0, paused.stderr
    assert f"paused tube default on {beanstalkd.address} for 600 s" in paused.stdout
    report = json.loads(run("stats", "--json", *flags).stdout)
    assert report["tubes"][0]["paused"] > 500
    conn = Connection(beanstalkd.address)
    try:
        assert conn.reserve(1) is None
        resumed = run("resume", *flags)
        assert resumed.returncode == 0, resumed.stderr
        assert f"resumed tube default on {beanstalkd.address}" in resumed.stdout
        job = conn.reserve(5)
        assert job is not None
    finally:
        conn.close()


def test_stats_counts_watchers_without_itself(beanstalkd: Beanstalkd) -> None:
    """With nobody watching, stats shows 0 watchers of 'default' (its own connection is
    not counted); a connection watching the tube counts 1."""
    flags = ["--beanstalk", beanstalkd.address]
    _submit(beanstalkd.address, "x")
    assert json.loads(run("stats", "--json", *flags).stdout)["tubes"][0]["watchers"] == 0
    watcher = Connection(beanstalkd.address, watch=["default"])
    try:
        watcher.stats()  # connect
        assert json.loads(run("stats", "--json", *flags).stdout)["tubes"][0]["watchers"] == 1
    finally:
        watcher.close()


def test_buried_without_a_failed_document_says_where_the_reason_is(
    beanstalkd: Beanstalkd,
) -> None:
    """A buried job whose result URL serves no failed document (refused, blocked, or down)
    is listed with a pointer to the worker's log instead of "reason: None"."""
    _submit(beanstalkd.address, "no-document")
    _bury(beanstalkd, "default")
    out = run("buried", "--beanstalk", beanstalkd.address, "--base-url", "http://127.0.0.1:9/")
    assert out.returncode == 0, out.stderr
    assert "job=no-document" in out.stdout
    assert "reason: None" not in out.stdout
    assert "no failed document at its result URL" in out.stdout
    blind = run("buried", "--beanstalk", beanstalkd.address)
    assert "not looked up: give --base-url" in blind.stdout


def test_buried_reason_from_an_endless_result_url_is_bounded(beanstalkd: Beanstalkd) -> None:
    """A result URL below --base-url that answers an endless body costs `buried` at most
    a few seconds and a bounded read; the job is listed without a reason."""
    import http.server
    import threading

    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                for _ in range(100_000):  # bounded: ~800 MB at most, cut off long before
                    self.wfile.write(b'{"error":' * 1024)
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with Client(beanstalkd.address) as client:
            client.submit("echo", "http://in.test/x", base + "r.json", id="endless")
        _bury(beanstalkd, "default")
        out = run("buried", "--beanstalk", beanstalkd.address, "--base-url", base, "--json")
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert row["job_id"] == "endless" and row["reason"] is None
