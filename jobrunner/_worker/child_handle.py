"""The worker's handle on one child process: start, hand a job, wait, recycle, kill.

Runs in the worker. Each slot owns one :class:`ChildHandle`. Jobs run there, never in
the worker process, so a crash, a segfault, a runaway loop or a memory
blow-up of a plugin costs that job only. A child is reused across jobs (a
fresh interpreter per job would cost ~30 ms, a fork ~2.5 ms) and recycled
after ``max_jobs_per_child`` jobs or when its memory exceeds
``max_memory_per_child`` MiB.

Children are started with ``python -m jobrunner._worker.child_main`` in
their own session (a Ctrl-C on the terminal goes to the worker alone, which
decides when children stop) and talk over two private pipes
(:mod:`jobrunner._worker.protocol`).
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from jobrunner._log import get_logger
from jobrunner._worker import protocol, tree
from jobrunner._worker.protocol import Finished, Publishing, Replicate, RunJob
from jobrunner.config import Config

__all__ = ["ChildDied", "ChildHandle", "describe_exit", "sweep_strays"]

log = get_logger(__name__)

#: Seconds a child may take to start (import plugins' dependencies, etc.).
START_TIMEOUT = 60.0
#: Seconds between SIGTERM and SIGKILL when a child must stop.
KILL_GRACE = 2.0


class ChildDied(Exception):
    """Raised when the child process exited or was killed while it had work."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def describe_exit(returncode: int | None) -> str:
    """Say how a process ended: ``exit code 3`` or ``signal SIGSEGV (11)``."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        hint = " (killed: out of memory?)" if -returncode == signal.SIGKILL else ""
        return f"signal {name} ({-returncode}){hint}"
    return f"exit code {returncode}"


class ChildHandle:
    """One child process running jobs for one slot.

    Args:
        config: the worker's settings, sent to the child at start.
        slot: the slot number, for logs.
    """

    def __init__(
        self,
        config: Config,
        slot: int,
        on_replicate: Callable[[tuple[str, ...], bool], None] | None = None,
    ) -> None:
        self.config = config
        self.slot = slot
        self._on_replicate = on_replicate
        self.jobs_done = 0
        self.rss = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None  # the write end; closed, the child ends
        self._inbox: Connection | None = None  # child → worker
        self._outbox: Connection | None = None  # worker → child
        # Kept for the child's life: Connection.poll builds a selector on every call.
        self._readable: select.poll | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id, when started."""
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        """True while the child process runs."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the child and wait until it has loaded its settings.

        Raises:
            ChildDied: it exited or did not become ready within START_TIMEOUT.
        """
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        lifeline_r, self._lifeline = os.pipe()
        passed = (to_child_r, from_child_w, lifeline_r)
        try:
            with _SPAWNING:  # a stray sweep must not take a child being born for a stray
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "jobrunner._worker.child_main", *map(str, passed)],
                    pass_fds=passed,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                _CHILDREN.add(self.proc.pid)
        finally:
            for fd in passed:
                os.close(fd)
        self._outbox = Connection(to_child_w, readable=False)
        self._inbox = Connection(from_child_r, writable=False)
        self._readable = select.poll()
        self._readable.register(from_child_r, select.POLLIN)
        self.jobs_done = 0
        try:
            protocol.send(self._outbox, protocol.Start(self.config))
        except OSError as exc:
            raise ChildDied(self._death(f"pipe closed: {exc}")) from None
        if not isinstance(self._receive(START_TIMEOUT), protocol.Ready):
            self.kill()
            raise ChildDied(f"child did not start within {START_TIMEOUT:.0f} s")
        log.info("child_started", slot=self.slot, pid=self.pid)

    def run(self, request: RunJob) -> None:
        """Hand a job to the child.

        Raises:
            ChildDied: the pipe is closed (the child is gone).
        """
        assert self._outbox is not None
        try:
            protocol.send(self._outbox, request)
        except OSError as exc:
            raise ChildDied(self._death(f"pipe closed: {exc}")) from None

    def wait(self, timeout: float) -> Finished | Publishing | None:
        """Wait up to ``timeout`` seconds for the end of the job; ``None`` if not yet.

        :class:`Publishing` comes first when the job type returned a result.

        Raises:
            ChildDied: the child exited or was killed.
        """
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline - time.monotonic())
            if isinstance(message, Replicate):
                self._replicate(message.paths, message.final)
                continue
            if isinstance(message, Publishing):
                return message
            if isinstance(message, Finished):
                self.rss = message.rss
                self.jobs_done += 1
                self._replicate(message.replicate, True)
                return message
            return None

    def _replicate(self, paths: tuple[str, ...], final: bool) -> None:
        if paths and self._on_replicate is not None:
            self._on_replicate(paths, final)

    def _receive(self, timeout: float) -> protocol.Message | None:
        assert self._inbox is not None and self._readable is not None
        try:
            # The pipe end is never read ahead of a frame, so readiness is exact.
            if not self._readable.poll(math.ceil(max(0.0, timeout) * 1000)):
                return None
            message = protocol.recv(self._inbox)
        except (EOFError, OSError):
            raise ChildDied(self._death("pipe closed")) from None
        return message

    def _death(self, fallback: str) -> str:
        if self.proc is None:
            return fallback
        try:
            returncode = self.proc.wait(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            self.kill()
            return fallback
        return f"child process {self.proc.pid} died: {describe_exit(returncode)}"

    def needs_recycling(self, after: int = 0) -> str | None:
        """Why the child should be replaced before its next job, or ``None``.

        ``after``: jobs it still has to finish before that one (a job it publishes now).
        """
        if self.jobs_done + after >= self.config.max_jobs_per_child:
            return f"ran {self.jobs_done} jobs (--max-jobs-per-child)"
        limit = self.config.max_memory_per_child * 1024 * 1024
        if self.rss > limit:
            return (
                f"uses {self.rss // (1024 * 1024)} MiB "
                f"(--max-memory-per-child {self.config.max_memory_per_child})"
            )
        return None

    def stop(self, timeout: float | None = None) -> None:
        """Ask the child to exit after its current job; kill it if it does not.

        By default the child gets 5 s.
        """
        if self.proc is None:
            return
        if timeout is None:
            timeout = 5.0
        if self.alive and self._outbox is not None:
            try:
                protocol.send_stop(self._outbox)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self, grace: float = KILL_GRACE) -> None:
        """Stop the child and everything its jobs started: SIGTERM, SIGKILL after ``grace``.

        SIGTERM goes to the child's process group and to every process below
        the child (also those that left the group with ``setsid``); after
        ``grace`` seconds, or once the child is gone, every process still in
        the tree is stopped and killed. What the child's death handed up to
        the worker (it is their subreaper) is swept up last.
        """
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            below = tree.descendants(proc.pid)
            _signal_group(proc, signal.SIGTERM)
            for pid in below:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.poll() is None:
                log.warning("child_killed", slot=self.slot, pid=proc.pid, grace=grace)
                tree.kill_tree(proc.pid)
                proc.wait()
            for pid in below:  # handed up to the worker when the child died
                tree.kill_tree(pid)
        self._close()
        with _SPAWNING:
            _CHILDREN.discard(proc.pid)
        self.proc = None
        sweep_strays()

    def _close(self) -> None:
        for conn in (self._inbox, self._outbox):
            if conn is not None:
                conn.close()
        self._inbox = self._outbox = None
        self._readable = None
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None


#: Pids of the live children of this worker (guarded by _SPAWNING).
_CHILDREN: set[int] = set()
_SPAWNING = threading.Lock()


def sweep_strays() -> int:
    """Kill and reap what dead children left behind; return how many there were.

    The worker is a subreaper: when a child dies, what its jobs started and
    left running is handed up to the worker. Such a stray is a process of
    the worker that is neither a live child nor in the worker's own session
    (the rsync pushes are).
    """
    me, session = os.getpid(), os.getsid(0)
    with _SPAWNING:
        table = tree.parents()
        strays = [
            pid
            for pid, (ppid, sid) in table.items()
            if ppid == me and sid != session and pid not in _CHILDREN
        ]
    for pid in strays:
        tree.kill_tree(pid)
    for pid in strays:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.005)
    if strays:
        log.warning("job_processes_killed", count=len(strays), note="left by a dead child")
    return len(strays)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the process group the child leads (to the child alone if that fails)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass  # the group is empty: everyone is gone already
    except PermissionError:  # pragma: no cover - pid reused by someone else's group
        if proc.poll() is None:
            proc.send_signal(sig)
