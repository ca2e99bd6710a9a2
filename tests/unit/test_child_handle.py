"""The worker's handle on a child: how deaths are described, recycling, killing the group."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from jobrunner._worker.child_handle import ChildDied, ChildHandle, describe_exit
from jobrunner.config import load_config
from tests.support import pid_alive


def test_describe_exit() -> None:
    """Exit codes and signals are told apart; SIGKILL hints at the OOM killer."""
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-signal.SIGSEGV) == "signal SIGSEGV (11)"
    assert "out of memory" in describe_exit(-signal.SIGKILL)


def test_needs_recycling_after_jobs_and_memory(tmp_path: Path) -> None:
    """A child is recycled after max_jobs_per_child jobs or above max_memory_per_child MiB."""
    child = ChildHandle(
        load_config(flags={"max_jobs_per_child": 2, "max_memory_per_child": 10}, env={}), 0
    )
    assert child.needs_recycling() is None
    child.jobs_done = 2
    assert "--max-jobs-per-child" in (child.needs_recycling() or "")
    child.jobs_done, child.rss = 0, 11 * 1024 * 1024
    assert "11 MiB" in (child.needs_recycling() or "")


def test_a_dead_child_is_reported_with_its_signal(tmp_path: Path) -> None:
    """A child killed from outside raises ChildDied naming the signal; a new one starts."""
    config = load_config(flags={"results_dir": str(tmp_path), "base_url": "http://r.test/"}, env={})
    child = ChildHandle(config, 0)
    child.start()
    try:
        pid = child.pid
        assert child.alive and pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ChildDied, match="SIGKILL"):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                child.wait(0.1)
        child.kill()
        assert not pid_alive(pid) and not child.alive
        child.start()
        assert child.alive and child.pid != pid
    finally:
        child.kill()
