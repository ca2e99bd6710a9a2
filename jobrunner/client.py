"""The web server's side of jobrunner: :class:`Client` and :class:`AsyncClient`.

>>> client = Client("127.0.0.1:11300")
>>> job = client.submit("prediction", "https://data.example/meter/17.json",
...                     "https://results.example/r/17.json", {"horizon": "24h"})
>>> ticket = job.ticket                      # store it: session, database row
>>> client.status(ticket).state              # 'queued', 'running', 'done', ...
>>> client.cancel(ticket).outcome            # 'cancelled', 'stopping', 'finished'

A job is validated before it is put, so a bad job is refused here, at the
web server, with a clear :class:`~jobrunner.errors.InvalidJob` — not buried
later on a worker. With several beanstalkd servers a job's home server is
chosen by its id (stable), and the client fails over to the next server
when that one is down. A broken connection (beanstalkd restarted) is
retried with back-off for up to ``retry_for`` seconds before
:class:`~jobrunner.errors.QueueError` is raised.

Status combines what beanstalkd knows (``stats-job`` of the ticket's
beanstalkd id, checked to still be the same job) with the document at the
result URL:

=========== ==========================================================
state       meaning
=========== ==========================================================
queued      ready in its tube, waiting for a worker
delayed     put with a delay, or released for a retry with back-off
running     reserved by a worker (``document``: its ``running`` document)
done        the ``done`` document is published
failed      a ``failed`` document is published (the job is buried or gone)
buried      in the dead-letter list without a document: an operator's case
cancelled   cancelled; ``document`` is the ``cancelled`` failure once a
            worker has published it
unknown     neither beanstalkd nor the result URL knows the job
=========== ==========================================================

Cancellation leaves a *marker* for the job on its beanstalkd server (a job in
the tube :func:`~jobrunner.queue.cancel_tube` names), which every worker
checks when it reserves the job and about once a second while it runs it. A
waiting job is deleted and put again as a cancellation notice at the top
priority: the worker that reserves it sees the marker, publishes the
``failed`` document with code ``cancelled`` through its own publishers and
deletes it — so the web server needs no write access to the results. A
running job is stopped by its worker within about a second, with its whole
process group, and the same document is published.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from jobrunner import codec
from jobrunner._log import get_logger
from jobrunner.errors import InvalidJob, JobNotFound, QueueError
from jobrunner.job import Job, utcnow
from jobrunner.queue import DEFAULT_PRIORITY, DEFAULT_TTR, Connection, PutManyError

if TYPE_CHECKING:
    from jobrunner.follow import ResultReader

__all__ = [
    "STATES",
    "AsyncClient",
    "Cancellation",
    "Client",
    "JobStatus",
    "Submitted",
    "Ticket",
]

log = get_logger(__name__)

T = TypeVar("T")

QUEUED, DELAYED, RUNNING, DONE, FAILED, BURIED, CANCELLED, UNKNOWN = (
    "queued",
    "delayed",
    "running",
    "done",
    "failed",
    "buried",
    "cancelled",
    "unknown",
)
#: Every state :meth:`Client.status` answers.
STATES = (QUEUED, DELAYED, RUNNING, DONE, FAILED, BURIED, CANCELLED, UNKNOWN)
#: States that do not change any more (unless an operator kicks a buried job).
FINAL_STATES = (DONE, FAILED, CANCELLED)
#: Jobs per pipelined write in :meth:`Client.submit_many`.
BATCH = 500

_TICKET_PREFIX = "jr1."


# -- tickets -------------------------------------------------------------------------


@attrs.frozen
class Ticket:
    """Where a submitted job went: enough to ask for its status or cancel it.

    ``str(ticket)`` is the string to store (URL-safe, ``jr1.`` and base64url);
    :meth:`parse` reads it back.
    """

    server: str
    beanstalk_id: int
    job_id: str
    result: str

    def __str__(self) -> str:
        raw = json.dumps(
            [self.server, self.beanstalk_id, self.job_id, self.result], separators=(",", ":")
        )
        return _TICKET_PREFIX + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def parse(cls, text: str | Ticket) -> Ticket:
        """Read a ticket string (a :class:`Ticket` is returned as it is).

        Raises:
            ValueError: not a ticket.
        """
        if isinstance(text, Ticket):
            return text
        if not isinstance(text, str) or not text.startswith(_TICKET_PREFIX):
            raise ValueError(f"not a jobrunner ticket: {str(text)[:60]!r}")
        data = text[len(_TICKET_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
            server, beanstalk_id, job_id, result = json.loads(raw)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a jobrunner ticket (damaged): {text[:60]!r}") from exc
        if not (
            isinstance(server, str)
            and isinstance(beanstalk_id, int)
            and isinstance(job_id, str)
            and isinstance(result, str)
        ):
            raise ValueError(f"not a jobrunner ticket (damaged): {text[:60]!r}")
        return cls(server, beanstalk_id, job_id, result)

    @staticmethod
    def looks_like(text: str) -> bool:
        """True when ``text`` has the form of a ticket string."""
        return text.startswith(_TICKET_PREFIX)


class Submitted(str):
    """What :meth:`Client.submit` returns: the job id (it is a ``str``), and its ticket.

    ``ticket`` is the string a web app stores to ask :meth:`Client.status`
    and :meth:`Client.cancel` later; ``server``, ``beanstalk_id`` and
    ``result`` tell where the job went.
    """

    server: str
    beanstalk_id: int
    result: str

    @property
    def job_id(self) -> str:
        """The job id (the string itself)."""
        return str(self)

    @property
    def ticket(self) -> str:
        """The ticket string: server, beanstalkd id, job id and result URL."""
        return str(Ticket(self.server, self.beanstalk_id, str(self), self.result))

    @classmethod
    def make(cls, job_id: str, server: str, beanstalk_id: int, result: str) -> Submitted:
        """Build one (the client and the test doubles do)."""
        submitted = cls(job_id)
        submitted.server, submitted.beanstalk_id, submitted.result = server, beanstalk_id, result
        return submitted


@attrs.frozen(kw_only=True)
class JobStatus:
    """What :meth:`Client.status` found out about a job.

    ``document`` is the job's result document when there is one (``running``,
    ``done`` or ``failed``); ``error`` its ``error`` member for failed and
    cancelled jobs; ``cancel_requested`` is True once a cancellation is on
    its way (a running job keeps ``running`` until its worker stopped it).
    """

    state: str
    job_id: str
    result: str
    document: dict[str, Any] | None = None
    cancel_requested: bool = False
    tube: str | None = None

    @property
    def final(self) -> bool:
        """True for ``done``, ``failed`` and ``cancelled``."""
        return self.state in FINAL_STATES

    @property
    def error(self) -> dict[str, Any] | None:
        """The document's ``error`` (code, message, retryable), if any."""
        error = (self.document or {}).get("error")
        return error if isinstance(error, dict) else None

    @property
    def progress(self) -> float | None:
        """The running document's progress (0..1), if any."""
        value = (self.document or {}).get("progress")
        return float(value) if isinstance(value, (int, float)) else None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for a web app's status endpoint)."""
        return {
            "state": self.state,
            "final": self.final,
            "job_id": self.job_id,
            "result": self.result,
            "progress": self.progress,
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "document": self.document,
        }


@attrs.frozen(kw_only=True)
class Cancellation:
    """What :meth:`Client.cancel` did.

    ``outcome`` is ``cancelled`` (the job was waiting: it will never run),
    ``stopping`` (it is running: its worker stops it and publishes the
    ``cancelled`` document; ``cancel(wait=...)`` waits for that and then says
    ``cancelled``), ``finished`` (it had already finished: left alone) or
    ``unknown`` (neither beanstalkd nor the result URL knows it).
    ``status`` is the status the decision was based on, ``message`` says it
    in words.
    """

    outcome: str
    status: JobStatus
    message: str


# -- the client ----------------------------------------------------------------------


class Client:
    """Submits jobs to beanstalkd, and tells their status and cancels them.

    Args:
        beanstalk: ``HOST:PORT`` or a list of them.
        tube: default tube for :meth:`submit`.
        priority: default beanstalkd priority (0 is most urgent).
        ttr: default time-to-run in seconds (workers keep it alive while a job runs).
        max_job_bytes: largest job document accepted (beanstalkd's ``-z``, 65 535 by default).
        retry_for: seconds a call retries a lost connection (beanstalkd restarted)
            before raising :class:`~jobrunner.errors.QueueError`; 0 tries once.
        read_timeout: seconds one read of a result URL may take (:meth:`status`).

    Safe to share between threads (each server's connection has its own lock).
    """

    def __init__(
        self,
        beanstalk: str | Sequence[str] = "127.0.0.1:11300",
        *,
        tube: str = "default",
        priority: int = DEFAULT_PRIORITY,
        ttr: int = DEFAULT_TTR,
        max_job_bytes: int = codec.MAX_JOB_BYTES,
        retry_for: float = 5.0,
        read_timeout: float = 10.0,
    ) -> None:
        addresses = [beanstalk] if isinstance(beanstalk, str) else list(beanstalk)
        if not addresses:
            raise ValueError("Client needs at least one beanstalkd address")
        self.connections = [Connection(address, use=tube) for address in addresses]
        self.tube = tube
        self.priority = priority
        self.ttr = ttr
        self.max_job_bytes = max_job_bytes
        self.retry_for = retry_for
        self.read_timeout = read_timeout
        self._locks = {conn.address: threading.Lock() for conn in self.connections}
        self._by_address = {conn.address: conn for conn in self.connections}
        self._extra_lock = threading.Lock()
        self._reader: ResultReader | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        for conn in list(self._by_address.values()):
            with self._locks[conn.address]:
                conn.close()
        if self._reader is not None:
            self._reader.close()

    # -- connections -----------------------------------------------------------------

    def _conn(self, address: str) -> Connection:
        """The connection to ``address`` (a ticket may name a server not configured)."""
        with self._extra_lock:
            conn = self._by_address.get(address)
            if conn is None:
                conn = Connection(address, use=self.tube)
                self._by_address[address] = conn
                self._locks[address] = threading.Lock()
            return conn

    def _call(self, conn: Connection, action: Callable[[Connection], T]) -> T:
        """Run ``action`` on ``conn`` under its lock, retrying lost connections.

        A refusal (beanstalkd answered) and an unknown job are raised at once;
        a broken or refused connection is retried with back-off until
        ``retry_for`` seconds have passed.
        """
        deadline = time.monotonic() + self.retry_for
        failures = 0
        while True:
            with self._locks[conn.address]:
                try:
                    return action(conn)
                except JobNotFound:
                    raise
                except QueueError as exc:
                    if not conn.down:
                        raise
                    failures += 1
                    error = exc
            pause = max(conn.retry_in, min(1.0, 0.05 * 2**failures))
            if time.monotonic() + pause > deadline:
                raise error
            log.debug("queue_retry", server=conn.address, failures=failures, error=str(error))
            time.sleep(pause)

    def _reader_for_status(self) -> ResultReader:
        if self._reader is None:
            try:
                from jobrunner.follow import ResultReader
            except ModuleNotFoundError as exc:
                if exc.name != "httpx":
                    raise
                raise ModuleNotFoundError(
                    "Client.status and Client.cancel read result documents over HTTP with "
                    "httpx: pip install 'beanstalk-jobrunner[status]'",
                    name="httpx",
                ) from None

            with self._extra_lock:
                if self._reader is None:
                    self._reader = ResultReader(timeout=self.read_timeout)
        return self._reader

    # -- submitting ------------------------------------------------------------------

    def submit(
        self,
        type: str,
        input: str | Mapping[str, str],
        result: str,
        params: Mapping[str, Any] | None = None,
        *,
        tube: str | None = None,
        priority: int | None = None,
        delay: int = 0,
        ttr: int | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        expires: dt.datetime | None = None,
        meta: Mapping[str, Any] | None = None,
        id: str | None = None,
    ) -> Submitted:
        """Validate and put a job; return its id with its ticket.

        Args:
            type: the job type (an entry point name in ``jobrunner.job_types``).
            input: fully qualified input URL, or a mapping of input name to URL.
            result: fully qualified URL where the result document will appear.
            params: the job type's parameters.
            tube, priority, delay, ttr: beanstalkd ``put`` arguments.
            timeout: seconds the computation may take (capped by the worker).
            max_attempts: attempts for retryable failures.
            expires: after this time the job is not run any more.
            meta: free-form data copied into the result document.
            id: the job id; a UUID4 by default.

        Raises:
            InvalidJob: the job document is invalid (every problem listed).
            QueueError: no beanstalkd server accepted the job.
        """
        doc = job_document(
            type,
            input,
            result,
            params,
            timeout=timeout,
            max_attempts=max_attempts,
            expires=expires,
            meta=meta,
            id=id,
        )
        return self.put_document(doc, tube=tube, priority=priority, delay=delay, ttr=ttr)

    def _encode(self, doc: Mapping[str, Any]) -> tuple[Job, bytes]:
        return encode_document(doc, self.max_job_bytes)

    def _put_args(
        self, tube: str | None, priority: int | None, delay: int, ttr: int | None
    ) -> tuple[str, int, int, int]:
        check_queue_arguments(priority, delay, ttr)
        return (
            tube or self.tube,
            self.priority if priority is None else priority,
            delay,
            self.ttr if ttr is None else ttr,
        )

    def put_document(
        self,
        doc: Mapping[str, Any],
        *,
        tube: str | None = None,
        priority: int | None = None,
        delay: int = 0,
        ttr: int | None = None,
    ) -> Submitted:
        """Validate and put a complete job document (a dict); return its id with its ticket.

        Raises:
            InvalidJob: the document is invalid.
            QueueError: no server accepted it.
        """
        job, body = self._encode(doc)
        args = self._put_args(tube, priority, delay, ttr)
        return self._put(job, body, *args)

    def _order(self, job_id: str) -> list[Connection]:
        # A job's home server is chosen from its id, so retries of a submit land alike.
        import hashlib  # here: the worker imports this module, and hashlib loads OpenSSL

        n = len(self.connections)
        home = int.from_bytes(hashlib.sha1(job_id.encode()).digest()[:4], "big") % n
        return [self.connections[(home + step) % n] for step in range(n)]

    def _put(
        self, job: Job, body: bytes, tube: str, priority: int, delay: int, ttr: int
    ) -> Submitted:
        # Each round tries every server once (fail over at once); only when none took
        # the job and one of them lost its connection is the round repeated, with
        # back-off, for up to retry_for seconds (a beanstalkd restarting).
        order = self._order(job.id)
        deadline = time.monotonic() + self.retry_for
        rounds = 0
        while True:
            errors = []
            for step, conn in enumerate(order):
                try:
                    with self._locks[conn.address]:
                        beanstalk_id = conn.put(
                            body, tube=tube, priority=priority, delay=delay, ttr=ttr
                        )
                except QueueError as exc:
                    errors.append(str(exc))
                    continue
                log.debug(
                    "job_submitted",
                    job_id=job.id,
                    server=conn.address,
                    tube=tube,
                    beanstalk_id=beanstalk_id,
                    failed_over=step > 0,
                    rounds=rounds,
                )
                return Submitted.make(job.id, conn.address, beanstalk_id, job.result)
            rounds += 1
            down = [conn for conn in order if conn.down]
            pause = max(min((c.retry_in for c in down), default=0.0), 0.05 * 2**rounds)
            pause = min(pause, 1.0)
            if not down or time.monotonic() + pause > deadline:
                raise QueueError("no beanstalkd server accepted the job: " + "; ".join(errors))
            time.sleep(pause)

    def submit_many(
        self,
        jobs: Iterable[Mapping[str, Any]],
        *,
        tube: str | None = None,
        priority: int | None = None,
        delay: int = 0,
        ttr: int | None = None,
    ) -> list[Submitted]:
        """Validate every job, then put them pipelined; return them in order.

        Each job is a mapping of :meth:`submit`'s arguments (``type``,
        ``input``, ``result``, and optionally ``params``, ``timeout``,
        ``max_attempts``, ``expires``, ``meta``, ``id``); the queue arguments
        apply to all. Nothing is put unless every job is valid. Jobs are
        written in batches of :data:`BATCH` per server. After a lost
        connection the unanswered part of a batch is put again (a job may
        then exist twice; running it twice publishes the same result).

        Raises:
            InvalidJob: a job is invalid (the message names its index).
            QueueError: a server refused jobs, or stayed unreachable; its
                ``submitted`` attribute lists the jobs that were put.
        """
        args = self._put_args(tube, priority, delay, ttr)
        encoded: list[tuple[Job, bytes]] = []
        for index, spec in enumerate(jobs):
            try:
                unknown = set(spec) - _SUBMIT_FIELDS
                if unknown:
                    raise InvalidJob(f"unknown field(s): {', '.join(sorted(unknown))}")
                encoded.append(self._encode(job_document(**spec)))
            except TypeError as exc:
                raise InvalidJob(f"job {index}: {exc}") from None
            except InvalidJob as exc:
                raise InvalidJob(f"job {index}: {exc}", exc.problems) from None
        by_conn: dict[str, list[int]] = {}
        for index, (job, _) in enumerate(encoded):
            by_conn.setdefault(self._order(job.id)[0].address, []).append(index)
        out: list[Submitted | None] = [None] * len(encoded)
        for address, indexes in by_conn.items():
            for start in range(0, len(indexes), BATCH):
                self._put_batch(
                    self._by_address[address], encoded, indexes[start : start + BATCH], args, out
                )
        return [s for s in out if s is not None]

    def _put_batch(
        self,
        conn: Connection,
        encoded: list[tuple[Job, bytes]],
        indexes: list[int],
        args: tuple[str, int, int, int],
        out: list[Submitted | None],
    ) -> None:
        tube, priority, delay, ttr = args
        todo = list(indexes)
        deadline = time.monotonic() + self.retry_for
        failures = 0
        while todo:
            bodies = [encoded[i][1] for i in todo]
            try:
                with self._locks[conn.address]:
                    ids: list[int | None] = list(
                        conn.put_many(bodies, tube=tube, priority=priority, delay=delay, ttr=ttr)
                    )
                error: PutManyError | None = None
            except PutManyError as exc:
                ids, error = exc.ids, exc
            left = []
            for index, beanstalk_id in zip(todo, ids, strict=True):
                if beanstalk_id is None:
                    left.append(index)
                else:
                    job = encoded[index][0]
                    out[index] = Submitted.make(job.id, conn.address, beanstalk_id, job.result)
            todo = left
            if error is None:
                continue
            failures += 1
            pause = max(conn.retry_in, min(1.0, 0.05 * 2**failures))
            if not conn.down or time.monotonic() + pause > deadline:
                failed = QueueError(f"{error}; {len(todo)} job(s) not put")
                failed.submitted = [s for s in out if s is not None]  # type: ignore[attr-defined]
                raise failed
            time.sleep(pause)

    # -- status ----------------------------------------------------------------------

    def status(self, ticket: str | Ticket) -> JobStatus:
        """The job's state, with its result document when there is one.

        Raises:
            ValueError: ``ticket`` is not a ticket.
            QueueError: the job's beanstalkd server cannot be reached and the
                result URL has no final document.
            ResultUnavailable: the result URL answers with an error (not 404).
        """
        t = Ticket.parse(ticket)
        conn = self._conn(t.server)
        try:
            stats, marked = self._call(conn, lambda c: _look_up(c, t))
        except QueueError:
            doc = self._read(t)
            if doc is not None and doc.get("status") in ("done", "failed"):
                return _from_document(t, doc, cancel_requested=False)
            raise
        return self._combine(t, stats, marked)

    def _read(self, t: Ticket) -> dict[str, Any] | None:
        doc = self._reader_for_status().read(t.result)
        if doc is not None and doc.get("id") != t.job_id:
            return None  # an older job's document at the same URL
        return doc

    def _combine(self, t: Ticket, stats: dict[str, Any] | None, marked: bool) -> JobStatus:
        tube = str(stats["tube"]) if stats else None
        state = str(stats["state"]) if stats else None
        if state in ("ready", "delayed"):
            if marked:  # a cancellation notice waiting for a worker
                return JobStatus(
                    state=CANCELLED,
                    job_id=t.job_id,
                    result=t.result,
                    cancel_requested=True,
                    tube=tube,
                )
            return JobStatus(
                state=QUEUED if state == "ready" else DELAYED,
                job_id=t.job_id,
                result=t.result,
                tube=tube,
            )
        doc = self._read(t)
        final = doc is not None and doc.get("status") in ("done", "failed")
        if state == "reserved" and not final:
            return JobStatus(
                state=RUNNING,
                job_id=t.job_id,
                result=t.result,
                document=doc,
                cancel_requested=marked,
                tube=tube,
            )
        if doc is not None and final:
            if marked and state is None:
                # The job finished before its worker saw the marker: nobody else clears it.
                conn = self._conn(t.server)
                self._call(conn, lambda c: c.clear_cancel(t.job_id))
                marked = False
            return _from_document(t, doc, cancel_requested=marked, tube=tube)
        if state == "buried":
            return JobStatus(
                state=BURIED, job_id=t.job_id, result=t.result, document=doc, tube=tube
            )
        if marked:
            return JobStatus(
                state=CANCELLED, job_id=t.job_id, result=t.result, cancel_requested=True
            )
        return JobStatus(state=UNKNOWN, job_id=t.job_id, result=t.result, document=doc)

    # -- cancelling ------------------------------------------------------------------

    def cancel(self, ticket: str | Ticket, *, wait: float = 0.0) -> Cancellation:
        """Cancel a job: delete it while it waits, stop it while it runs.

        Args:
            ticket: the job's ticket.
            wait: seconds to wait for the ``cancelled`` document of a running
                job (0: return at once with outcome ``stopping``).

        Raises:
            ValueError: ``ticket`` is not a ticket.
            QueueError: the job's beanstalkd server cannot be reached.
        """
        t = Ticket.parse(ticket)
        before = self.status(t)
        if before.state in FINAL_STATES or before.state == BURIED:
            return Cancellation(
                outcome="finished",
                status=before,
                message=f"job {t.job_id} has already finished ({before.state}); left alone",
            )
        if before.state == UNKNOWN:
            return Cancellation(
                outcome="unknown",
                status=before,
                message=f"job {t.job_id} is unknown to beanstalkd {t.server} and at its "
                "result URL; nothing to cancel",
            )
        conn = self._conn(t.server)
        # The marker goes first: from now on no worker runs the job without seeing it.
        self._call(conn, lambda c: c.request_cancel(t.job_id))
        outcome = self._call(conn, lambda c: _withdraw(c, t))
        log.info("job_cancel_requested", job_id=t.job_id, server=t.server, outcome=outcome)
        if outcome == "finished":
            self._call(conn, lambda c: c.clear_cancel(t.job_id))
            after = self.status(t)
            return Cancellation(
                outcome="finished",
                status=after,
                message=f"job {t.job_id} finished before it could be cancelled ({after.state}); "
                "left alone",
            )
        if outcome == "stopping" and wait > 0:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                now = self.status(t)
                if now.final:
                    return Cancellation(
                        outcome="cancelled" if now.state == CANCELLED else "finished",
                        status=now,
                        message=f"job {t.job_id} was stopped and cancelled"
                        if now.state == CANCELLED
                        else f"job {t.job_id} finished before it could be stopped ({now.state})",
                    )
                time.sleep(0.2)
        after = self.status(t)
        if outcome == "cancelled":
            message = (
                f"job {t.job_id} was waiting and is cancelled; it will not run, and a worker "
                "publishes the cancelled document at its result URL"
            )
        else:
            message = f"job {t.job_id} is running; its worker stops it within seconds"
        return Cancellation(outcome=outcome, status=after, message=message)


_SUBMIT_FIELDS = frozenset(
    ("type", "input", "result", "params", "timeout", "max_attempts", "expires", "meta", "id")
)


def job_document(
    type: str,
    input: str | Mapping[str, str],
    result: str,
    params: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = None,
    max_attempts: int | None = None,
    expires: dt.datetime | None = None,
    meta: Mapping[str, Any] | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """The job document (a dict) :meth:`Client.submit` puts, not yet validated."""
    doc: dict[str, Any] = {
        "v": 1,
        "id": id or str(uuid.uuid4()),
        "type": type,
        "input": input if isinstance(input, str) else dict(input),
        "result": result,
        "params": dict(params or {}),
        "created": codec.format_time(utcnow()),
    }
    optional = {
        "timeout": timeout,
        "max_attempts": max_attempts,
        "meta": meta,
        "expires": codec.format_time(expires) if expires else None,
    }
    doc.update(
        {
            k: (dict(v) if isinstance(v, Mapping) else v)
            for k, v in optional.items()
            if v is not None
        }
    )
    return doc


def encode_document(
    doc: Mapping[str, Any], max_job_bytes: int = codec.MAX_JOB_BYTES
) -> tuple[Job, bytes]:
    """Validate a job document and encode it as a beanstalkd job body.

    Raises:
        InvalidJob: every problem listed, or a body over ``max_job_bytes``.
    """
    problems = codec.validate_job(dict(doc))
    if problems:
        raise InvalidJob("invalid job document: " + "; ".join(problems), problems)
    job: Job = codec.converter.structure(dict(doc), Job)
    body = codec.encode_job(job)
    if len(body) > max_job_bytes:
        raise InvalidJob(
            f"job document is {len(body)} bytes, beanstalkd takes at most "
            f"{max_job_bytes}; pass large data by URL in 'input', not in 'params'"
        )
    return job, body


def check_queue_arguments(priority: int | None, delay: int | None, ttr: int | None) -> None:
    """Check beanstalkd ``put`` arguments.

    Raises:
        InvalidJob: a value beanstalkd would refuse.
    """
    for field, value, low, high in (
        ("priority", priority, 0, 2**32 - 1),
        ("delay", delay, 0, 2**32 - 1),
        ("ttr", ttr, 1, 2**32 - 1),
    ):
        if value is not None and not low <= value <= high:
            raise InvalidJob(f"{field}: must be from {low} to {high}, got {value}")


def _same_job(conn: Connection, t: Ticket) -> bool:
    """True when the ticket's beanstalkd id still names the ticket's job.

    A beanstalkd restarted without a binlog counts ids from 1 again.
    """
    try:
        body = conn.peek(t.beanstalk_id).body
        doc = json.loads(body)
    except JobNotFound:
        return False
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("id") == t.job_id


def _look_up(conn: Connection, t: Ticket) -> tuple[dict[str, Any] | None, bool]:
    """``stats-job`` of the ticket's job (None when gone) and whether a cancel is pending."""
    try:
        stats: dict[str, Any] | None = conn.stats_job(t.beanstalk_id)
    except JobNotFound:
        stats = None
    if stats is not None and not _same_job(conn, t):
        stats = None
    return stats, conn.cancel_requested(t.job_id)


def _withdraw(conn: Connection, t: Ticket) -> str:
    """Delete a waiting job and put it back as a cancellation notice; else say why not.

    Returns ``cancelled`` (it was waiting), ``stopping`` (a worker holds it)
    or ``finished`` (it is buried or gone).
    """
    stats, _ = _look_up(conn, t)
    if stats is None or stats["state"] == "buried":
        return "finished"
    if stats["state"] == "reserved":
        return "stopping"
    body = conn.peek(t.beanstalk_id).body
    try:
        conn.delete(t.beanstalk_id)
    except JobNotFound:  # reserved (or finished) between the look and the delete
        again, _ = _look_up(conn, t)
        return "stopping" if again is not None and again["state"] == "reserved" else "finished"
    # The notice: the same body, most urgent, so a worker picks it up at once,
    # sees the marker, publishes the cancelled document and deletes it unrun.
    conn.put(body, tube=str(stats["tube"]), priority=0, delay=0, ttr=int(stats["ttr"]))
    return "cancelled"


def _from_document(
    t: Ticket, doc: dict[str, Any], *, cancel_requested: bool, tube: str | None = None
) -> JobStatus:
    error = doc.get("error")
    if doc.get("status") == "done":
        state = DONE
    elif isinstance(error, dict) and error.get("code") == "cancelled":
        state = CANCELLED
    else:
        state = FAILED
    return JobStatus(
        state=state,
        job_id=t.job_id,
        result=t.result,
        document=doc,
        cancel_requested=cancel_requested,
        tube=tube,
    )


# -- asyncio -------------------------------------------------------------------------


async def _to_thread(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    # asyncio is imported here, not at the top: the worker process imports this
    # module and never runs an event loop (asyncio and ssl are ~8 MB per process).
    import asyncio

    return await asyncio.to_thread(func, *args, **kwargs)


class AsyncClient:
    """:class:`Client` for asyncio applications (FastAPI, aiohttp, ...): the same methods.

    Each call runs the blocking client in a worker thread
    (:func:`asyncio.to_thread`): beanstalkd answers within a fraction of a
    millisecond on a LAN, so the event loop never waits on the network.
    Takes the same arguments as :class:`Client`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sync: Any = Client(*args, **kwargs)

    @classmethod
    def wrap(cls, client: Any) -> AsyncClient:
        """An AsyncClient over an existing client — a :class:`Client`, or a test double
        with the same methods such as :class:`jobrunner.testing.InlineClient`."""
        wrapped = cls.__new__(cls)
        wrapped.sync = client
        return wrapped

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        await _to_thread(self.sync.close)

    async def submit(self, *args: Any, **kwargs: Any) -> Submitted:
        """:meth:`Client.submit`."""
        return await _to_thread(self.sync.submit, *args, **kwargs)

    async def put_document(self, doc: Mapping[str, Any], **kwargs: Any) -> Submitted:
        """:meth:`Client.put_document`."""
        return await _to_thread(self.sync.put_document, doc, **kwargs)

    async def submit_many(
        self, jobs: Iterable[Mapping[str, Any]], **kwargs: Any
    ) -> list[Submitted]:
        """:meth:`Client.submit_many`."""
        return await _to_thread(self.sync.submit_many, list(jobs), **kwargs)

    async def status(self, ticket: str | Ticket) -> JobStatus:
        """:meth:`Client.status`."""
        return await _to_thread(self.sync.status, ticket)

    async def cancel(self, ticket: str | Ticket, *, wait: float = 0.0) -> Cancellation:
        """:meth:`Client.cancel`."""
        return await _to_thread(self.sync.cancel, ticket, wait=wait)
