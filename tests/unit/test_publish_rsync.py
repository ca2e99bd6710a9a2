"""Unit tests of the rsync publisher (jobrunner.publish.rsync): commands, queue, retries.

Most tests inject a fake runner; one pushes with the real rsync to a local directory.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from jobrunner.config import Config
from jobrunner.errors import ConfigError, PublishFailed
from jobrunner.publish.file import FilePublisher
from jobrunner.publish.rsync import RsyncPublisher, rsync_options
from tests.support import capture_events, wait_for

BASE = "http://w1.test/results/"
URL = BASE + "u1/j1.json"
BODY = b'{"status": "done"}\n'


def config(tmp_path: Path, *peers: str, **settings: Any) -> Config:
    values: dict[str, Any] = {
        "results_dir": tmp_path / "results",
        "base_url": BASE,
        "publisher": ("file", "rsync"),
        "rsync_peer": peers or ("rsync://127.0.0.1:1/results",),
        "retry_base": 0.01,
        "retry_max": 0.05,
        "rsync_timeout": 5.0,
        # One transfer per push: the marker transfers are pinned by the tests that turn it on.
        "final_markers": False,
    }
    values.update(settings)
    return Config(**values)


class FakeRsync:
    """Records commands; answers with the exit codes given, in turn (the last one repeats)."""

    def __init__(self, *codes: int | None, block: threading.Event | None = None) -> None:
        self.codes = list(codes) or [0]
        self.commands: list[list[str]] = []
        self.block = block
        self.lock = threading.Lock()

    def __call__(self, command: Sequence[str], timeout: float) -> tuple[int | None, str]:
        if self.block is not None:
            self.block.wait(10)
        with self.lock:
            self.commands.append(list(command))
            code = self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]
        return code, "rsync: some error\nrsync error: last line" if code else ""

    @property
    def calls(self) -> int:
        with self.lock:
            return len(self.commands)


def test_command_is_atomic_on_the_peer(tmp_path: Path) -> None:
    """The push uses --relative from results_dir/./REL, --ignore-times, --fsync, never
    --inplace or --temp-dir; daemon peers get a connect time-out, ssh peers batch-mode ssh."""
    publisher = RsyncPublisher(config(tmp_path), run=FakeRsync())
    results = str(Path(tmp_path / "results").resolve())
    daemon = publisher.command("rsync://127.0.0.1:873/results/", "u1/j1.json")
    assert daemon[-2:] == [f"{results}/./u1/j1.json", "rsync://127.0.0.1:873/results/"]
    for option in ("--relative", "--ignore-times", "--fsync", "--times", "--contimeout=5"):
        assert option in daemon
    assert not any(o.startswith(("--inplace", "--temp-dir", "-T", "--partial")) for o in daemon)
    ssh = publisher.command("peer.example:/srv/results/", "a.json")
    assert "--rsh" in ssh
    assert "--contimeout=5" not in ssh
    local = publisher.command("/mnt/peer/", "a.json")
    assert "--rsh" not in local
    assert "--contimeout=5" not in local


def test_fsync_is_only_used_when_enabled(tmp_path: Path) -> None:
    """With --no-fsync the push does not ask the peer to fsync either."""
    publisher = RsyncPublisher(config(tmp_path, fsync=False), run=FakeRsync())
    assert "--fsync" not in publisher.command("/mnt/peer/", "a.json")


def test_installed_rsync_supports_fsync_and_relative() -> None:
    """The rsync on this machine is probed for its options (3.2.4+ knows --fsync)."""
    binary = shutil.which("rsync")
    if binary is None:
        pytest.skip("rsync is not installed")
    options = rsync_options(binary)
    assert "--relative" in options
    assert "--ignore-times" in options


def test_real_push_to_local_directories(tmp_path: Path) -> None:
    """With the real rsync, file + rsync leaves the same bytes in every peer directory,
    missing directories created, no temp files left behind."""
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed")
    peers = (str(tmp_path / "peer1"), str(tmp_path / "peer2" / "deep") + "/")
    (tmp_path / "peer2").mkdir()
    cfg = config(tmp_path, *peers)
    files = FilePublisher(cfg)
    publisher = RsyncPublisher(cfg)
    for body in (b'{"status": "running"}', BODY):
        files.publish(URL, body)
        publisher.publish(URL, body)
    publisher.close()
    for peer in (tmp_path / "peer1", tmp_path / "peer2" / "deep"):
        assert (peer / "u1" / "j1.json").read_bytes() == BODY
        assert [p.name for p in (peer / "u1").iterdir()] == ["j1.json"]
        assert oct((peer / "u1" / "j1.json").stat().st_mode & 0o777) == "0o644"


def test_publish_does_not_wait_for_a_failing_peer(tmp_path: Path) -> None:
    """Without --rsync-required a failing peer never fails publish; the final document is
    retried in the background up to --rsync-retries times, then abandoned with an error."""
    fake = FakeRsync(23)
    publisher = RsyncPublisher(config(tmp_path, rsync_retries=3), run=fake)
    with capture_events() as logs:
        publisher.publish(URL, BODY)  # returns at once
        wait_for(lambda: any(e["event"] == "rsync_push_abandoned" for e in logs), timeout=10)
        publisher.close()
    assert fake.calls == 3
    failed = [e for e in logs if e["event"] == "rsync_push_failed"]
    assert len(failed) == 2
    assert "exit 23, partial transfer" in failed[0]["error"]
    assert failed[0]["retry_in"] > 0
    assert "rsync error: last line" in failed[0]["error"]


def test_retry_succeeds_after_transient_failure(tmp_path: Path) -> None:
    """A peer that fails once gets the document on the background retry."""
    fake = FakeRsync(10, 0)
    publisher = RsyncPublisher(config(tmp_path), run=fake)
    with capture_events() as logs:
        publisher.publish(URL, BODY)
        wait_for(lambda: fake.calls == 2, timeout=10)
        publisher.close()
    assert not [e for e in logs if e["event"] == "rsync_push_abandoned"]


def test_failed_status_document_is_dropped_not_retried(tmp_path: Path) -> None:
    """A failed push of a running document is not retried: the next document supersedes it."""
    fake = FakeRsync(24)
    publisher = RsyncPublisher(config(tmp_path), run=fake)
    with capture_events() as logs:
        publisher.publish(URL, BODY, final=False)
        wait_for(lambda: any(e["event"] == "rsync_push_failed" for e in logs), timeout=10)
        publisher.close()
    assert fake.calls == 1


def test_required_peer_failure_fails_the_publication(tmp_path: Path) -> None:
    """With --rsync-required a failing peer makes publish of a final document raise a
    retryable publish_failed naming the peer; running documents still never raise."""
    fake = FakeRsync(23)
    peers = ("rsync://127.0.0.1:1/a", "/tmp/never-used-peer")
    publisher = RsyncPublisher(config(tmp_path, *peers, rsync_required=True), run=fake)
    publisher.publish(URL, BODY, final=False)
    with pytest.raises(PublishFailed) as info:
        publisher.publish(URL, BODY)
    assert info.value.retryable
    assert "2 of 2 rsync peer(s) failed" in info.value.message
    assert "rsync://127.0.0.1:1/a/" in info.value.message
    publisher.close()


def test_required_peers_succeeding_return_normally(tmp_path: Path) -> None:
    """With --rsync-required, publish returns once every peer has the document."""
    fake = FakeRsync(0)
    peers = ("/tmp/p1", "/tmp/p2")
    publisher = RsyncPublisher(config(tmp_path, *peers, rsync_required=True), run=fake)
    publisher.publish(URL, BODY)
    assert fake.calls == 2  # both pushed before publish returned
    publisher.close()


def test_timeout_is_a_failure(tmp_path: Path) -> None:
    """A push killed at --rsync-timeout is a failure that says so."""
    publisher = RsyncPublisher(config(tmp_path, rsync_required=True), run=FakeRsync(None))
    with pytest.raises(PublishFailed, match="timed out after 5 s"):
        publisher.publish(URL, BODY)
    publisher.close()


def test_pending_pushes_of_one_document_are_coalesced(tmp_path: Path) -> None:
    """While a push is running, newer documents at the same URL wait as one push."""
    release = threading.Event()
    fake = FakeRsync(0, block=release)
    publisher = RsyncPublisher(config(tmp_path), run=fake)
    publisher.publish(URL, BODY, final=False)
    time.sleep(0.1)  # let the first push start and block
    for _ in range(20):
        publisher.publish(URL, BODY, final=False)
    publisher.publish(URL, BODY)
    release.set()
    publisher.close()
    assert fake.calls == 2


def test_close_pushes_what_is_pending_without_back_off(tmp_path: Path) -> None:
    """close() gives a final document waiting for its retry one immediate last attempt."""
    fake = FakeRsync(10, 0)
    publisher = RsyncPublisher(config(tmp_path, retry_base=300.0, retry_max=300.0), run=fake)
    publisher.publish(URL, BODY)
    wait_for(lambda: fake.calls == 1, timeout=10)
    started = time.monotonic()
    publisher.close()
    assert fake.calls == 2
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"rsync_peer": ()}, "--rsync-peer"),
        ({"publisher": ("rsync",)}, "--publisher file --publisher rsync"),
        ({"publisher": ("rsync", "file")}, "in this order"),
        ({"base_url": None}, "--base-url"),
    ],
)
def test_invalid_settings_are_config_errors(
    tmp_path: Path, settings: dict[str, Any], needle: str
) -> None:
    """The rsync publisher refuses settings it cannot work with, saying what to use."""
    with pytest.raises(ConfigError, match=needle):
        RsyncPublisher(config(tmp_path, **settings), run=FakeRsync())


def test_check_follows_the_base_url(tmp_path: Path) -> None:
    """check() refuses result URLs outside the base URL, as the file publisher does."""
    from jobrunner.errors import ResultRefused

    publisher = RsyncPublisher(config(tmp_path), run=FakeRsync())
    publisher.check(URL)
    with pytest.raises(ResultRefused):
        publisher.check("http://elsewhere.test/r.json")


def _sources(fake: FakeRsync) -> list[str]:
    """The source path (relative to the results directory) of each recorded rsync command."""
    return [command[-2].split("/./", 1)[1] for command in fake.commands]


def test_final_marker_is_pushed_after_its_document(tmp_path: Path) -> None:
    """A final document goes first, its marker in a second transfer; a new running path
    deletes the peer's marker first, once; a re-run (running after final) deletes it again."""
    fake = FakeRsync()
    cfg = config(tmp_path, final_markers=True)
    files = FilePublisher(cfg)
    publisher = RsyncPublisher(cfg, run=fake)
    for body, final in ((b'{"status":"running"}', False), (b'{"status":"running"}', False)):
        files.publish(URL, body, final=final)
        publisher.replicate("u1/j1.json", final)
        wait_for(lambda: not publisher.peers[0]._pending, timeout=10)
    files.publish(URL, BODY)
    publisher.replicate("u1/j1.json", True)
    wait_for(lambda: fake.calls == 5, timeout=10)
    files.publish(URL, b'{"status":"running"}', final=False)  # kicked: a re-run
    publisher.replicate("u1/j1.json", False)
    wait_for(lambda: fake.calls == 7, timeout=10)
    publisher.close()
    assert _sources(fake) == [
        ".final/u1/j1.json",  # the peer's marker goes before the first running document
        "u1/j1.json",
        "u1/j1.json",  # the second running document: no marker transfer
        "u1/j1.json",  # done: the document first
        ".final/u1/j1.json",  # then its marker
        ".final/u1/j1.json",  # the re-run: marker deleted before the running document
        "u1/j1.json",
    ]
    for command in fake.commands:
        is_marker = command[-2].split("/./", 1)[1].startswith(".final/")
        assert ("--delete-missing-args" in command) == is_marker


def test_catch_up_sends_markers_after_documents(tmp_path: Path) -> None:
    """A catch-up transfers the documents (no dot names), then the .final markers."""
    fake = FakeRsync()
    cfg = config(tmp_path, final_markers=True)
    FilePublisher(cfg).publish(URL, BODY)
    publisher = RsyncPublisher(cfg, run=fake)
    publisher.catch_up()
    wait_for(lambda: fake.calls == 2, timeout=10)
    publisher.close()
    first, second = fake.commands
    assert "--exclude=.*" in first and first[-2].endswith("/./")
    assert "--exclude=.*" not in second and second[-2].endswith("/./.final/")


def test_markers_off_means_one_transfer_per_push(tmp_path: Path) -> None:
    """With final_markers off, each push is exactly one rsync and no marker is sent."""
    fake = FakeRsync()
    cfg = config(tmp_path, final_markers=False)
    FilePublisher(cfg).publish(URL, BODY)
    assert not (tmp_path / "results" / ".final").exists()
    publisher = RsyncPublisher(cfg, run=fake)
    publisher.publish(URL, BODY)
    wait_for(lambda: fake.calls == 1, timeout=10)
    publisher.close()
    assert _sources(fake) == ["u1/j1.json"]


def test_real_push_replicates_and_withdraws_markers(tmp_path: Path) -> None:
    """With the real rsync, a peer directory gets the marker after a done document and
    loses it when a re-run's running document is pushed."""
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed")
    peer = tmp_path / "peer"
    cfg = config(tmp_path, str(peer), final_markers=True)
    files = FilePublisher(cfg)
    publisher = RsyncPublisher(cfg)
    marker = peer / ".final" / "u1" / "j1.json"

    def push(body: bytes, final: bool) -> None:
        files.publish(URL, body, final=final)
        publisher.replicate("u1/j1.json", final)
        wait_for(lambda: not publisher.peers[0]._pending, timeout=20)
        time.sleep(0.05)  # the push itself may still run: wait for the file
        wait_for(
            lambda: (
                (peer / "u1" / "j1.json").exists()
                and (peer / "u1" / "j1.json").read_bytes() == body
            ),
            timeout=20,
        )

    push(b'{"status":"running"}', False)
    assert not marker.exists()
    push(BODY, True)
    wait_for(marker.exists, timeout=20)
    push(b'{"status":"running"}', False)
    assert not marker.exists()
    publisher.close()
