"""A clean slate for every job in a reused child process (child side).

A job type runs in-process and may close or replace ``stdin``/``stdout``/
``stderr`` (``os.close(1)``, ``sys.stdout.close()``), change the working
directory or the environment, or leave programs running. None of that may
reach the next job or the child's own logging:

* the child logs to a private duplicate of the stderr it was started with,
  so a job closing fd 2 cannot silence or kill it;
* fd 0 reads ``/dev/null``; fds 1 and 2 are pipes the child reads: every
  line a job prints is logged as a ``job_output`` event with the job's id;
* after each job: fds 0-2 and ``sys.stdin``/``stdout``/``stderr`` are put
  back, the working directory and the environment restored, and whatever the
  job started and left running is killed (the child is a subreaper, so
  processes that double-forked or called ``setsid`` are still below it).
"""

from __future__ import annotations

import fcntl
import io
import os
import select
import sys
import termios
import threading
import time
from typing import Any

from jobrunner._log import get_logger
from jobrunner._worker import tree

__all__ = ["Slate"]

log = get_logger(__name__)

#: Longest line of job output logged as one event (the rest is cut).
MAX_LINE = 8192


class _Output(threading.Thread):
    """Reads one pipe that a job's fd 1 or 2 writes to; logs each line."""

    def __init__(self, name: str) -> None:
        super().__init__(name=f"job-{name}", daemon=True)
        self.stream = name
        self.read_fd, self.write_fd = os.pipe()  # both non-inheritable
        self._partial = b""
        self._lock = threading.Lock()

    def run(self) -> None:
        # Reads happen under the lock only, so drain() can take what is left itself.
        while True:
            try:
                select.select([self.read_fd], [], [])
            except (OSError, ValueError):
                return
            with self._lock:
                self._take()

    def _take(self) -> None:
        """Read and log what is in the pipe now (called with the lock held)."""
        while (count := self.pending()) > 0:
            chunk = os.read(self.read_fd, count)
            lines = (self._partial + chunk).split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                self._log(line)
            if len(self._partial) > MAX_LINE:
                self._log(self._partial)
                self._partial = b""

    def _log(self, line: bytes) -> None:
        text = line[:MAX_LINE].decode("utf-8", errors="replace").rstrip("\r")
        log.info("job_output", stream=self.stream, line=text)

    def pending(self) -> int:
        """Bytes written to the pipe and not read yet."""
        buf = bytearray(4)
        fcntl.ioctl(self.read_fd, termios.FIONREAD, buf)
        return int.from_bytes(buf, sys.byteorder)

    def drain(self) -> None:
        """Log what the job wrote and is not logged yet, an unfinished last line too."""
        with self._lock:
            self._take()
            if self._partial:
                self._log(self._partial)
                self._partial = b""


class Slate:
    """Sets up the child's standard streams once, and restores everything after each job."""

    def __init__(self) -> None:
        self.log_stream = open(  # noqa: SIM115 - lives as long as the process
            os.dup(2), "w", buffering=1, encoding="utf-8", errors="backslashreplace"
        )
        self._devnull = os.open(os.devnull, os.O_RDONLY)
        self._outputs = [_Output("stdout"), _Output("stderr")]
        self._cwd = os.getcwd()
        self._environ = _environ_snapshot()
        self._streams: tuple[Any, Any, Any] = (None, None, None)

    def start(self) -> None:
        """Point fds 0-2 at /dev/null and the output pipes; start reading them."""
        for output in self._outputs:
            output.start()
        self._restore_fds()
        tree.set_subreaper()

    def _restore_fds(self) -> None:
        os.dup2(self._devnull, 0)
        os.dup2(self._outputs[0].write_fd, 1)
        os.dup2(self._outputs[1].write_fd, 2)
        stdin, stdout, stderr = self._streams
        if stdin is None or stdin.closed or sys.stdin is not stdin:
            stdin = sys.stdin = io.TextIOWrapper(open(0, "rb", closefd=False))  # noqa: SIM115
        if stdout is None or stdout.closed or sys.stdout is not stdout:
            stdout = sys.stdout = _text(1)
        if stderr is None or stderr.closed or sys.stderr is not stderr:
            stderr = sys.stderr = _text(2)
        self._streams = (stdin, stdout, stderr)

    def restore(self) -> int:
        """After a job: streams, directory, environment back; leftovers killed.

        Returns how many processes the job left running (now killed).
        """
        for stream in (sys.stdout, sys.stderr, *self._streams[1:]):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass  # closed or broken by the job: replaced below
        for output in self._outputs:
            output.drain()
        self._restore_fds()
        if not _cwd_ok() or os.getcwd() != self._cwd:
            os.chdir(self._cwd)
        if _environ_snapshot() != self._environ:
            os.environ.clear()
            os.environ.update(
                (os.fsdecode(key), os.fsdecode(value)) for key, value in self._environ.items()
            )
        return _end_leftovers()


def _environ_snapshot() -> dict[Any, Any]:
    """The process environment as a plain dict, cheap to take and to compare.

    ``os.environ`` keeps its encoded items in ``_data``; comparing that dict is
    one C-level comparison instead of decoding every variable in Python (which
    cost about a tenth of a small job's whole time in the child).
    """
    data = getattr(os.environ, "_data", None)
    return dict(data) if isinstance(data, dict) else dict(os.environ)


def _cwd_ok() -> bool:
    try:
        os.getcwd()
    except OSError:  # the job removed the directory it moved to
        return False
    return True


def _text(fd: int) -> io.TextIOWrapper:
    """A line-buffered text stream on ``fd`` that does not close it."""
    return io.TextIOWrapper(
        open(fd, "wb", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def _end_leftovers() -> int:
    """Kill and reap whatever the job started and left running; how many there were.

    The child is a subreaper: every process the job started, also one that
    double-forked, is below it. With no child process at all, one system
    call says so.
    """
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return 0  # none: the common case
        if pid == 0:
            break  # some are still running
    killed = tree.kill_tree(os.getpid(), include_root=False)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.001)
    return killed
