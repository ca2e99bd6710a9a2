"""The child process's main loop: ``python -m jobrunner._worker.child_main IN OUT LIFELINE``.

Runs in the child. It reads messages (:mod:`jobrunner._worker.protocol`)
from the worker on fd ``IN`` and answers on fd ``OUT``: first
:class:`Start` with the settings, answered with :class:`Ready`; then one
:class:`RunJob` at a time, answered with :class:`Finished`; an empty frame
or a closed pipe ends it. Each job gets a clean slate
(:mod:`jobrunner._worker.slate`).

The child ends with its worker, and takes everything its jobs started with
it: fd ``LIFELINE`` is a pipe whose other end only the worker holds. When
the worker dies — even by SIGKILL — the pipe reports end-of-file, and a
watchdog thread kills every process below the child (it is their subreaper,
so none has escaped) and exits. (A job stuck inside a C call that holds the
GIL delays this until the call returns.)
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from multiprocessing.connection import Connection

from jobrunner._worker import protocol, tree

__all__ = ["main"]


def _watch_lifeline(fd: int) -> None:
    """Block until the worker is gone; then end every process below us, and us."""
    while True:
        try:
            if not os.read(fd, 1):
                break
        except InterruptedError:  # pragma: no cover - retried by Python already
            continue
        except OSError:
            break
    tree.kill_tree(os.getpid(), include_root=False)
    os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """Serve jobs from the worker until it closes the pipe or sends the stop frame."""
    args = sys.argv[1:] if argv is None else argv
    in_fd, out_fd, lifeline = (int(a) for a in args[:3])
    for fd in (in_fd, out_fd, lifeline):
        os.set_inheritable(fd, False)  # the job's programs get none of them
    threading.Thread(target=_watch_lifeline, args=(lifeline,), name="lifeline", daemon=True).start()
    # Ctrl-C on the terminal is for the worker, which decides when the child stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox, outbox = Connection(in_fd, writable=False), Connection(out_fd, readable=False)

    from jobrunner._log import use_process_job_context
    from jobrunner._worker.executor import JobExecutor
    from jobrunner._worker.slate import Slate
    from jobrunner.logging import configure_logging

    start = protocol.recv(inbox)
    if not isinstance(start, protocol.Start):
        return 2
    slate = Slate()
    configure_logging(
        start.config.log_level, format=start.config.log_format, stream=slate.log_stream
    )
    slate.start()
    use_process_job_context()  # one job at a time: plugin threads' records get its id too
    sending = threading.Lock()  # the job's thread and the progress thread both send

    def send(message: protocol.Message) -> None:
        with sending:
            protocol.send(outbox, message)

    executor = JobExecutor(start.config, notify=send, slate=slate)
    send(protocol.Ready(os.getpid()))
    try:
        while True:
            try:
                message = protocol.recv(inbox)
            except EOFError:
                break
            if not isinstance(message, protocol.RunJob):
                break
            send(executor.execute(message))
    finally:
        executor.close()
        tree.kill_tree(os.getpid(), include_root=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
