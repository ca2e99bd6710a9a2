"""What a job leaves behind does not outlive it: programs it started, broken streams, a
changed directory or environment, temp files of a killed publication. Real worker, real
children, real beanstalkd."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support import (
    Beanstalkd,
    Lab,
    ResultsServer,
    RsyncDaemon,
    free_port,
    pid_alive,
    put_raw,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.integration


def _helpers(lab: Lab, job_id: str) -> list[int]:
    """The pids of the setsid and the double-forked helper a job started."""
    rows = [r for r in lab.runs() if r[0] == job_id and r[3].startswith("helper-")]
    assert sorted(r[3] for r in rows) == ["helper-double-fork", "helper-setsid"], rows
    return [int(r[1]) for r in rows]


def _all_gone(pids: list[int], what: str, timeout: float = 15) -> None:
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout, what=what)


@pytest.mark.parametrize(
    ("then", "status", "code"),
    [
        ("return", "done", None),
        ("raise", "failed", "plugin_error"),
        ("hang", "failed", "timeout"),
        ("exit", "failed", "worker_crash"),
    ],
)
def test_programs_a_job_started_end_with_the_job(
    bsd: Beanstalkd, lab: Lab, then: str, status: str, code: str | None
) -> None:
    """A setsid helper and a double-forked daemon started by a job are gone once the job
    is done, failed, timed out, or its child crashed; the worker goes on."""
    worker = lab.worker(bsd.address)
    try:
        put_raw(bsd.port, lab.body("helpers", "h", {"then": then}, timeout=15))
        try:
            doc = wait_for_status(lab.result("h"), (status,), timeout=60)
        except AssertionError:
            raise AssertionError("\n".join(worker.lines[-40:])) from None
        assert (doc.get("error") or {}).get("code") == code, doc
        try:
            pids = _helpers(lab, "h")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n" + "\n".join(worker.lines[-40:])) from None
        _all_gone(pids, f"helpers of a job that ended with {then}")
        put_raw(bsd.port, lab.body("pid", "after"))
        assert wait_for_status(lab.result("after"), timeout=30)["status"] == "done"
    finally:
        assert worker.stop() == 0


def test_graceful_stop_ends_what_running_jobs_started(bsd: Beanstalkd, lab: Lab) -> None:
    """SIGTERM with a job still running past the grace: the job is released and its child,
    setsid helper and double-forked daemon are gone when the worker has exited."""
    worker = lab.worker(bsd.address, "--grace", "1")
    put_raw(bsd.port, lab.body("helpers", "g", {"then": "sleep", "seconds": 60}))
    wait_for(lambda: lab.runs("start"), 30, what="the job started")
    child = int(lab.runs("start")[0][1])
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    _all_gone([child, *_helpers(lab, "g")], "child and helpers after the stop", timeout=5)
    assert bsd.tube_stats()["current-jobs-ready"] == 1


def test_sigkill_of_the_worker_ends_what_its_jobs_started(bsd: Beanstalkd, lab: Lab) -> None:
    """kill -9 of the worker while a job runs: its child, the setsid helper and the
    double-forked daemon end too (the job runs again elsewhere, alone)."""
    worker = lab.worker(bsd.address)
    put_raw(bsd.port, lab.body("helpers", "k", {"then": "sleep", "seconds": 60}))
    wait_for(lambda: lab.runs("start"), 30, what="the job started")
    child = int(lab.runs("start")[0][1])
    worker.signal(signal.SIGKILL)
    worker.wait(timeout=10)
    _all_gone([child, *_helpers(lab, "k")], "child and helpers after kill -9")


@pytest.mark.parametrize("how", ["close-fds", "close-streams", "replace"])
def test_a_job_breaking_streams_directory_or_environment_leaves_a_clean_slate(
    bsd: Beanstalkd, lab: Lab, how: str
) -> None:
    """A job that closes or replaces stdin/stdout/stderr, changes directory and sets an
    environment variable keeps its done document; the next job in the same child sees
    the directory and environment it started with and working streams; what both print
    is logged as job_output with their job ids."""
    worker = lab.worker(bsd.address)
    try:
        put_raw(bsd.port, lab.body("messy", "messy", {"how": how}))
        put_raw(bsd.port, lab.body("clean", "clean"))
        messy = wait_for_status(lab.result("messy"), timeout=30)
        clean = wait_for_status(lab.result("clean"), timeout=30)
        time.sleep(0.5)  # a late failure would overwrite a document: none may come
        assert wait_for_status(lab.result("messy"), timeout=5) == messy
        assert messy["status"] == "done", messy
        assert clean["status"] == "done", clean
        assert clean["data"]["cwd"] == str(Path.cwd())
        assert clean["data"]["left"] is None and clean["data"]["stdin"] == ""
        printed = {(e.get("job_id"), e["stream"], e["line"]) for e in worker.find("job_output")}
        assert ("messy", "stdout", "hello from messy") in printed
        assert ("messy", "stderr", "to stderr") in printed
        assert ("messy", "stdout", "no newline at the end") in printed
        assert ("clean", "stdout", "clean job prints clean") in printed
        assert ("clean", "stderr", "and to stderr") in printed
        assert len(worker.find("child_started")) == 1  # the same child ran both
    finally:
        assert worker.stop() == 0


def test_temp_files_of_killed_publications_are_removed_at_start_and_never_served(
    bsd: Beanstalkd, lab: Lab, tmp_path: Path
) -> None:
    """Temp files an interrupted publication left (the atomic writer's and rsync's) are
    never served, and the next worker removes them and logs how many; a temp file young
    enough to be another worker's write in progress, results and other files stay."""
    sub = lab.results_dir / "a" / "b"
    sub.mkdir(parents=True)
    old = [lab.results_dir / ".k3j_9x2a.tmp", sub / ".r.json.Ab12Cd", sub / ".tmpz1q8.tmp"]
    for path in old:
        path.write_bytes(b'{"partial": ')
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    young = sub / ".w7q2m4k1.tmp"
    young.write_bytes(b"{")
    keep = [sub / "r.json", lab.results_dir / ".htaccess", sub / "notes.tmp"]
    for path in keep:
        path.write_bytes(b"{}")
    server = ResultsServer(lab.results_dir)
    try:
        for path in old:
            rel = path.relative_to(lab.results_dir).as_posix()
            assert httpx.get(server.base_url + rel, timeout=5).status_code == 404
        worker = lab.worker(bsd.address)
        try:
            removed = worker.wait_event("results_litter_removed")[0]
            assert removed["count"] == 3
            assert not any(p.exists() for p in old)
            assert young.exists() and all(p.exists() for p in keep)
        finally:
            worker.stop()
    finally:
        server.stop()


def _same_everywhere(results: Path, *peers: Path) -> bool:
    """Every result file (not the dot-named) is on every peer with the same bytes."""
    files = [p for p in results.rglob("*.json") if not p.name.startswith(".")]
    for path in files:
        rel = path.relative_to(results)
        for peer in peers:
            try:
                if (peer / rel).read_bytes() != path.read_bytes():
                    return False
            except FileNotFoundError:
                return False
    return bool(files)


def test_results_waiting_for_a_peer_survive_killed_children_and_a_killed_worker(
    bsd: Beanstalkd, lab: Lab, tmp_path: Path
) -> None:
    """Results whose push waits for a peer that is down reach it once it is back, though
    the children that wrote them were killed meanwhile; and results a worker killed with
    SIGKILL had not pushed yet are pushed by the next worker: every result on every live
    peer, byte-identical."""
    port = free_port()
    daemon_root, daemon_dir, local_peer = tmp_path / "rsyncd", tmp_path / "peer", tmp_path / "p2"
    args = [
        "--publisher",
        "file",
        "--publisher",
        "rsync",
        "--rsync-peer",
        f"rsync://127.0.0.1:{port}/results/",
        "--rsync-peer",
        str(local_peer),
        "--rsync-timeout",
        "2",
        "--rsync-retries",
        "1000",
    ]
    worker = lab.worker(bsd.address, *args, concurrency=2)
    daemon: RsyncDaemon | None = None
    try:
        for n in range(4):
            put_raw(bsd.port, lab.body("pid", f"a{n}"))
        for n in range(4):
            wait_for_status(lab.result(f"a{n}"), ("done",), timeout=30)
        worker.wait_event("rsync_push_failed", timeout=30)
        for event in worker.find("child_started"):
            os.kill(event["pid"], signal.SIGKILL)
        daemon = RsyncDaemon(daemon_root, daemon_dir, port=port)
        wait_for(
            lambda: _same_everywhere(lab.results_dir, daemon_dir, local_peer),
            60,
            what="results of killed children on both peers",
        )
        daemon.stop()
        for n in range(4):
            put_raw(bsd.port, lab.body("pid", f"b{n}"))
        for n in range(4):
            wait_for_status(lab.result(f"b{n}"), ("done",), timeout=30)
        worker.signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert not (daemon_dir / "b0.json").exists()
        daemon = RsyncDaemon(daemon_root, daemon_dir, port=port)
        worker = lab.worker(bsd.address, *args, concurrency=2)
        worker.wait_event("rsync_caught_up", timeout=60)
        wait_for(
            lambda: _same_everywhere(lab.results_dir, daemon_dir, local_peer),
            60,
            what="results of a killed worker on both peers",
        )
    finally:
        worker.stop()
        if daemon is not None:
            daemon.stop()
