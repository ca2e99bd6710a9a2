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

import os
import signal
import subprocess
import sys
import time
from multiprocessing.connection import Connection

from jobrunner._log import get_logger
from jobrunner._worker import protocol
from jobrunner._worker.protocol import Finished, RunJob
from jobrunner.config import Config

__all__ = ["ChildDied", "ChildHandle", "describe_exit"]

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

    def __init__(self, config: Config, slot: int) -> None:
        self.config = config
        self.slot = slot
        self.jobs_done = 0
        self.rss = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._inbox: Connection | None = None  # child → worker
        self._outbox: Connection | None = None  # worker → child

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

        Call it from the slot thread that owns the child: the child's
        ``PR_SET_PDEATHSIG`` fires when the *thread* that forked it ends, and
        the slot thread lives exactly as long as the worker needs the child.

        Raises:
            ChildDied: it exited or did not become ready within START_TIMEOUT.
        """
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jobrunner._worker.child_main",
                    str(to_child_r),
                    str(from_child_w),
                    str(os.getpid()),
                ],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._outbox = Connection(to_child_w, readable=False)
        self._inbox = Connection(from_child_r, writable=False)
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

    def wait(self, timeout: float) -> Finished | None:
        """Wait up to ``timeout`` seconds for the end of the job; ``None`` if not yet.

        Raises:
            ChildDied: the child exited or was killed.
        """
        message = self._receive(timeout)
        if isinstance(message, Finished):
            self.rss = message.rss
            self.jobs_done += 1
            return message
        return None

    def _receive(self, timeout: float) -> protocol.Message | None:
        assert self._inbox is not None
        try:
            if not self._inbox.poll(max(0.0, timeout)):
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

    def needs_recycling(self) -> str | None:
        """Why the child should be replaced before its next job, or ``None``."""
        if self.jobs_done >= self.config.max_jobs_per_child:
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

        By default the child gets 5 s, plus the rsync time-out when rsync peers
        are configured: on exit it gives pending pushes to peers a last try.
        """
        if self.proc is None:
            return
        if timeout is None:
            timeout = 5.0
            if "rsync" in self.config.publisher:
                timeout += self.config.rsync_timeout
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
        """Stop the child now: SIGTERM, then SIGKILL after ``grace`` seconds.

        The signals go to the child's whole process group (it leads its own
        session), so programs a job type started die with it.
        """
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.poll() is None:
                log.warning("child_killed", slot=self.slot, pid=proc.pid, grace=grace)
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        # Whatever the job type left running in the group goes too.
        _signal_group(proc, signal.SIGKILL)
        for conn in (self._inbox, self._outbox):
            if conn is not None:
                conn.close()
        self._inbox = self._outbox = None
        self.proc = None


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the process group the child leads (to the child alone if that fails)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass  # the group is empty: everyone is gone already
    except PermissionError:  # pragma: no cover - pid reused by someone else's group
        if proc.poll() is None:
            proc.send_signal(sig)
