"""Every message between the worker and its child processes, and how they travel.

Shared by both sides. One typed message per purpose and direction::

    worker → child   Start(config)          once, first: the settings, as the worker holds them
                     RunJob(job, ...)       a job, decoded and validated by the worker
                     (empty frame)          exit after the current job
    child → worker   Ready(pid)             once, after Start: plugins and publishers built
                     Replicate(paths)       documents written while a job runs, for the peers
                     Publishing()           the result is computed; ``done`` is being published
                     Finished(...)          the job's end: done, or the failure it met

Framing: each message is one length-prefixed frame
(:class:`multiprocessing.connection.Connection`) holding the pickled attrs
object. Both ends are our own processes on private pipes, so the objects
cross as they are: the child gets the structured :class:`~jobrunner.job.Job`
the worker validated and trusts it, with no second decoding.
"""

from __future__ import annotations

import datetime as dt
import enum
import pickle
from multiprocessing.connection import Connection

import attrs

from jobrunner.config import Config
from jobrunner.job import ErrorInfo, Job, Provenance

__all__ = [
    "Action",
    "Finished",
    "Message",
    "Publishing",
    "Ready",
    "Replicate",
    "RunJob",
    "Start",
    "recv",
    "send",
    "send_stop",
]


class Action(enum.Enum):
    """What the worker does with a job's queue entry."""

    DELETE = "delete"
    RELEASE = "release"
    BURY = "bury"


@attrs.frozen
class Start:
    """The child's settings: the worker's own :class:`Config`, not re-read or re-validated."""

    config: Config


@attrs.frozen(kw_only=True)
class RunJob:
    """Run one job: the job as the worker decoded it, and which attempt this is."""

    job: Job
    attempt: int
    tube: str
    beanstalk_id: int


@attrs.frozen
class Ready:
    """The child has started and waits for jobs."""

    pid: int


@attrs.frozen
class Replicate:
    """Result files the child wrote (paths relative to the results directory).

    The worker pushes them to the rsync peers: replication outlives the child.
    ``final`` is False for ``running`` documents (superseded soon; not retried).
    """

    paths: tuple[str, ...]
    final: bool


@attrs.frozen
class Publishing:
    """The job type has returned; the child now publishes the ``done`` document.

    The worker takes its next job meanwhile (what remains of this one is
    bounded I/O, not computation).
    """


@attrs.frozen(kw_only=True)
class Finished:
    """The end of one job in the child.

    ``error`` is None when the ``done`` document is published. Otherwise the
    child published nothing final: the worker decides (retry, bury, ...) and
    publishes the failure document itself.

    Attributes:
        error: the failure, or None.
        retry_delay: the delay a job type asked for with ``Retry(delay=...)``.
        started: when the child started the job (for the failure document; None when done).
        provenance: what the child learned (plugin, versions, inputs' fingerprints), for
            the failure document; None when done.
        fetch_s, run_s: seconds spent fetching inputs and in the job type.
        rss: the child's resident memory after the job, in bytes (recycling).
        replicate: final documents written, for the rsync peers (see :class:`Replicate`).
    """

    error: ErrorInfo | None = None
    retry_delay: float | None = None
    started: dt.datetime | None = None
    provenance: Provenance | None = None
    fetch_s: float | None = None
    run_s: float | None = None
    rss: int = 0
    replicate: tuple[str, ...] = ()


Message = Start | RunJob | Ready | Replicate | Publishing | Finished


def send(conn: Connection, message: Message) -> None:
    """Send one message as one frame.

    Raises:
        OSError: the pipe is closed (the other side is gone).
    """
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def send_stop(conn: Connection) -> None:
    """Ask the child to exit (an empty frame).

    Raises:
        OSError: the pipe is closed.
    """
    conn.send_bytes(b"")


def recv(conn: Connection) -> Message | None:
    """Receive one message; None for the stop frame.

    Raises:
        EOFError: the other side closed the pipe.
        OSError: the pipe broke.
    """
    frame = conn.recv_bytes()
    if not frame:
        return None
    message: Message = pickle.loads(frame)
    return message
