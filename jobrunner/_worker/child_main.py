"""The child process's main loop: ``python -m jobrunner._worker.child_main IN OUT PARENT``.

Runs in the child. It reads messages (:mod:`jobrunner._worker.protocol`)
from the worker on fd ``IN`` and answers on fd ``OUT`` (stdout stays free
for plugins that print): first :class:`Start` with the settings, answered
with :class:`Ready`; then one :class:`RunJob` at a time, answered with
:class:`Finished`; an empty frame or a closed pipe ends it. The child dies
with its parent (``PR_SET_PDEATHSIG``), so a worker killed with SIGKILL
leaves no orphan computing or publishing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from multiprocessing.connection import Connection

from jobrunner._worker import protocol

__all__ = ["main"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """Serve jobs from the worker until it closes the pipe or sends the stop frame."""
    args = sys.argv[1:] if argv is None else argv
    in_fd, out_fd, parent_pid = (int(a) for a in args[:3])
    _die_with_parent(parent_pid)
    # Ctrl-C on the terminal is for the worker, which decides when the child stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox, outbox = Connection(in_fd, writable=False), Connection(out_fd, readable=False)

    from jobrunner._log import use_process_job_context
    from jobrunner._worker.executor import JobExecutor
    from jobrunner.logging import configure_logging

    start = protocol.recv(inbox)
    if not isinstance(start, protocol.Start):
        return 2
    configure_logging(start.config.log_level, format=start.config.log_format)
    use_process_job_context()  # one job at a time: plugin threads' records get its id too
    executor = JobExecutor(start.config)
    protocol.send(outbox, protocol.Ready(os.getpid()))
    try:
        while True:
            try:
                message = protocol.recv(inbox)
            except EOFError:
                break
            if not isinstance(message, protocol.RunJob):
                break
            protocol.send(outbox, executor.execute(message))
    finally:
        executor.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
