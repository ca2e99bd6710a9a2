"""The child process that runs jobs: ``python -m jobrunner.child IN_FD OUT_FD PARENT_PID``.

It reads framed JSON messages from the worker on ``IN_FD`` and answers on
``OUT_FD`` (stdout stays free for plugins that print). The first message is
the configuration; each later one is a job, answered with its outcome; an
empty message asks the child to exit. The child dies with its parent
(``PR_SET_PDEATHSIG``), so a worker killed with SIGKILL leaves no orphan
computing or publishing.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from multiprocessing.connection import Connection

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


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 0


def main(argv: list[str] | None = None) -> int:
    """Serve jobs from the worker until it closes the pipe or sends the stop message."""
    args = sys.argv[1:] if argv is None else argv
    in_fd, out_fd, parent_pid = (int(a) for a in args[:3])
    _die_with_parent(parent_pid)
    # Ctrl-C on the terminal is for the worker, which decides when the child stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox, outbox = Connection(in_fd, writable=False), Connection(out_fd, readable=False)

    from jobrunner._log import use_process_job_context
    from jobrunner.config import load_config
    from jobrunner.logging import configure_logging
    from jobrunner.runner import JobExecutor

    settings = json.loads(inbox.recv_bytes())
    config = load_config(flags=settings, env={})
    configure_logging(config.log_level, format=config.log_format)
    use_process_job_context()  # one job at a time: plugin threads' records get its id too
    executor = JobExecutor(config)
    outbox.send_bytes(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    try:
        while True:
            try:
                message = inbox.recv_bytes()
            except EOFError:
                break
            if not message:
                break
            request = json.loads(message)
            outcome = executor.execute(
                request["body"],
                attempt=request["attempt"],
                max_attempts=request["max_attempts"],
                tube=request.get("tube"),
            )
            reply = outcome.to_json()
            reply["rss"] = _rss_bytes()
            outbox.send_bytes(json.dumps(reply, separators=(",", ":")).encode())
    finally:
        executor.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
