"""Test helpers: run a job type without a queue or a worker; a Client double for web apps.

>>> from jobrunner.testing import run_job
>>> run = run_job(MyType, input=[[0, 1.0], [900, 2.0]], params={"horizon": "1h"})
>>> run.data, run.progress, run.logs

:func:`run_job` does what the worker's child process does around a job
type — instantiates a class, structures ``params`` into its ``Params``
class (raising :class:`~jobrunner.errors.InvalidParams` exactly like the
worker), gives it a :class:`~jobrunner.context.Context`, and checks that
the returned data is strict JSON — and records progress and log events.
"""

from __future__ import annotations

import inspect
import json
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from jobrunner import codec
from jobrunner._worker.documents import ResultBuilder
from jobrunner.context import Context
from jobrunner.errors import (
    InputUnavailable,
    InvalidJob,
    InvalidParams,
    JobCancelled,
    JobFailure,
    PluginError,
    ResultRefused,
    RetriesExhausted,
    Retry,
    UnknownType,
)
from jobrunner.job import Job, utcnow

__all__ = [
    "InlineClient",
    "JobRun",
    "RecordingLogger",
    "free_port",
    "make_job",
    "run_job",
    "wait_for_port",
]


class RecordingLogger:
    """A structlog-like logger that records events as dicts in ``events``."""

    def __init__(
        self, events: list[dict[str, Any]] | None = None, context: dict[str, Any] | None = None
    ) -> None:
        self.events = events if events is not None else []
        self._context = dict(context or {})

    def bind(self, **values: Any) -> RecordingLogger:
        """Return a logger with more context bound (sharing the event list)."""
        return RecordingLogger(self.events, {**self._context, **values})

    def _log(self, level: str, event: str, **values: Any) -> None:
        self.events.append({**self._context, **values, "event": event, "log_level": level})

    def debug(self, event: str, **values: Any) -> None:
        """Record a debug event."""
        self._log("debug", event, **values)

    def info(self, event: str, **values: Any) -> None:
        """Record an info event."""
        self._log("info", event, **values)

    def warning(self, event: str, **values: Any) -> None:
        """Record a warning event."""
        self._log("warning", event, **values)

    def error(self, event: str, **values: Any) -> None:
        """Record an error event."""
        self._log("error", event, **values)

    def exception(self, event: str, **values: Any) -> None:
        """Record an error event (without a traceback)."""
        self._log("error", event, **values)


@attrs.frozen(kw_only=True)
class JobRun:
    """What :func:`run_job` observed."""

    data: Any
    progress: list[tuple[float, str | None]]
    logs: list[dict[str, Any]]
    job: Job


def make_job(
    job_type: str = "test",
    *,
    input: str | dict[str, str] = "https://inputs.test/in",
    params: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Job:
    """Build a valid :class:`~jobrunner.job.Job` for tests."""
    return Job(
        id=fields.pop("id", str(uuid.uuid4())),
        type=job_type,
        input=input,
        result=fields.pop("result", "https://results.test/r.json"),
        params=dict(params or {}),
        created=fields.pop("created", utcnow()),
        **fields,
    )


def run_job(
    job_type: Any,
    *,
    input: Any = None,
    params: Mapping[str, Any] | None = None,
    job: Job | None = None,
    fetch: Mapping[str, Any] | Callable[[str], Any] | None = None,
) -> JobRun:
    """Run a job type (class or function) on a decoded input, as a worker would.

    Args:
        job_type: the object your entry point names.
        input: the decoded input the job type receives as ``ctx.input``.
        params: the job's params, structured into the job type's ``Params``.
        job: the job document to expose as ``ctx.job`` (one is made up otherwise).
        fetch: what ``ctx.fetch(url)`` returns: a mapping of URL to decoded value,
            or a function; unknown URLs fail with ``input_unavailable``.

    Raises:
        InvalidParams: params that the worker would refuse.
        AssertionError: the returned data is not strict JSON.
        Exception: whatever the job type raises (e.g. :class:`jobrunner.Retry`).
    """
    params = dict(params or {})
    job = job or make_job(getattr(job_type, "__name__", "test").lower(), params=params)
    params_cls = getattr(job_type, "Params", None)
    value: Any = params
    if params_cls is not None:
        try:
            value = codec.structure_params(params, params_cls)
        except InvalidParams:
            raise
        except Exception as exc:
            raise InvalidParams(f"params: {type(exc).__name__}: {exc}") from None
    runner: Callable[[Context], Any] = job_type() if inspect.isclass(job_type) else job_type  # type: ignore[assignment]
    progress: list[tuple[float, str | None]] = []
    logger = RecordingLogger().bind(job_id=job.id, job_type=job.type)

    def do_fetch(url: str) -> Any:
        if callable(fetch):
            return fetch(url)
        if fetch is not None and url in fetch:
            return fetch[url]
        raise InputUnavailable(f"run_job: no test input for {url!r} (pass fetch={{url: value}})")

    workdir = Path(tempfile.mkdtemp(prefix="jobrunner-test-"))
    try:
        ctx = Context(
            job=job,
            input=input,
            params=value,
            log=logger,
            workdir_factory=lambda: workdir,
            progress_callback=lambda f, m: progress.append((f, m)),
            fetch_callback=do_fetch,
        )
        data = runner(ctx)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    try:
        data = json.loads(json.dumps(data, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"the job type returned data that is not strict JSON: {exc}") from None
    return JobRun(data=data, progress=progress, logs=logger.events, job=job)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` (loopback by default) that nobody listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    """Wait until a server accepts connections on ``host:port``.

    Raises:
        TimeoutError: nothing accepted within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on {host}:{port} after {timeout:g} s"
                ) from None
            time.sleep(0.02)


# -- a Client double for web applications' own tests ------------------------------------


class InlineClient:
    """A stand-in for :class:`jobrunner.Client` in a web app's test suite: no beanstalkd.

    It validates jobs exactly like the real client, runs each job's type in
    this process (as :func:`run_job` does) and publishes the result document
    into ``results_dir`` at the path the result URL has below ``base_url`` —
    so the app's own code that builds result URLs and reads documents is
    tested for real. :meth:`submit`, :meth:`submit_many`, :meth:`status` and
    :meth:`cancel` answer like :class:`~jobrunner.client.Client`'s, with
    tickets that the real client would refuse (server ``inline``).

    Args:
        job_types: job type name → the object its entry point names; types not
            given are looked up among the installed plugins.
        results_dir: where documents are written (a temporary directory by default).
        base_url: the URL ``results_dir`` stands for.
        inputs: what each input URL decodes to: a mapping of URL → value, or a
            function; ``file:`` URLs of JSON files are read when not given.
        run: ``"inline"`` runs each job in :meth:`submit`; ``"manual"`` keeps jobs
            queued until :meth:`run_pending` (to test queued states and cancel).
        worker: the ``worker`` name written into documents.

    >>> client = InlineClient({"echo": echo}, base_url="https://results.test/")
    >>> job = client.submit("echo", "https://in.test/x", "https://results.test/a.json")
    >>> client.status(job.ticket).document["data"]
    """

    def __init__(
        self,
        job_types: Mapping[str, Any] | None = None,
        *,
        results_dir: Path | str | None = None,
        base_url: str = "https://results.test/",
        inputs: Mapping[str, Any] | Callable[[str], Any] | None = None,
        run: str = "inline",
        worker: str = "inline",
    ) -> None:
        if run not in ("inline", "manual"):
            raise ValueError(f"run must be 'inline' or 'manual', got {run!r}")
        self.job_types = dict(job_types or {})
        self._own_dir = results_dir is None
        self.results_dir = Path(results_dir or tempfile.mkdtemp(prefix="jobrunner-results-"))
        self.base_url = base_url
        self.inputs = inputs
        self.mode = run
        self.worker = worker
        self.tube = "default"
        self._next_id = 1
        self._jobs: dict[int, tuple[Job, bytes]] = {}
        self._queued: list[int] = []
        self._lock = threading.RLock()

    def __enter__(self) -> InlineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the results directory if this client made it."""
        if self._own_dir:
            shutil.rmtree(self.results_dir, ignore_errors=True)

    # -- the Client's methods ------------------------------------------------------

    def submit(self, type: str, input: Any, result: str, params: Any = None, **kwargs: Any) -> Any:
        """Like :meth:`jobrunner.client.Client.submit`; runs the job now in ``inline`` mode."""
        from jobrunner.client import job_document

        queue_args = {k: kwargs.pop(k) for k in ("tube", "priority", "delay", "ttr") if k in kwargs}
        doc = job_document(type, input, result, params, **kwargs)
        return self.put_document(doc, **queue_args)

    def put_document(self, doc: Mapping[str, Any], **queue_args: Any) -> Any:
        """Like :meth:`jobrunner.client.Client.put_document`."""
        from jobrunner.client import Submitted, check_queue_arguments, encode_document

        job, body = encode_document(doc)  # the real client's checks
        check_queue_arguments(
            queue_args.get("priority"), queue_args.get("delay"), queue_args.get("ttr")
        )
        with self._lock:
            beanstalk_id = self._next_id
            self._next_id += 1
            self._jobs[beanstalk_id] = (job, body)
            self._queued.append(beanstalk_id)
        if self.mode == "inline":
            self.run_pending()
        return Submitted.make(job.id, "inline", beanstalk_id, job.result)

    def submit_many(self, jobs: Iterable[Mapping[str, Any]], **queue_args: Any) -> list[Any]:
        """Like :meth:`jobrunner.client.Client.submit_many` (all validated before any runs)."""
        from jobrunner.client import encode_document, job_document

        docs = []
        for index, spec in enumerate(jobs):
            try:
                docs.append(job_document(**spec))
                encode_document(docs[-1])
            except (TypeError, InvalidJob) as exc:
                raise InvalidJob(f"job {index}: {exc}") from None
        return [self.put_document(doc, **queue_args) for doc in docs]

    def status(self, ticket: Any) -> Any:
        """Like :meth:`jobrunner.client.Client.status`, from this client's own records."""
        from jobrunner.client import JobStatus, Ticket, _from_document

        t = Ticket.parse(ticket)
        with self._lock:
            queued = t.beanstalk_id in self._queued
        if queued:
            return JobStatus(state="queued", job_id=t.job_id, result=t.result, tube=self.tube)
        doc = self.document(t.result)
        if doc is not None and doc.get("id") == t.job_id:
            return _from_document(t, doc, cancel_requested=False)
        return JobStatus(state="unknown", job_id=t.job_id, result=t.result)

    def cancel(self, ticket: Any, *, wait: float = 0.0) -> Any:
        """Like :meth:`jobrunner.client.Client.cancel`: a queued job is cancelled, a
        finished one left alone (jobs never stay running here)."""
        from jobrunner.client import Cancellation, Ticket

        t = Ticket.parse(ticket)
        with self._lock:
            queued = t.beanstalk_id in self._queued
            if queued:
                self._queued.remove(t.beanstalk_id)
        if not queued:
            before = self.status(t)
            outcome = "unknown" if before.state == "unknown" else "finished"
            return Cancellation(
                outcome=outcome,
                status=before,
                message=f"job {t.job_id} is {before.state}; left alone",
            )
        job, _ = self._jobs[t.beanstalk_id]
        builder = ResultBuilder.for_job(job, worker=self.worker, attempt=None)
        self._publish(job.result, builder.failed(JobCancelled("cancelled by a client")))
        return Cancellation(
            outcome="cancelled", status=self.status(t), message=f"job {t.job_id} is cancelled"
        )

    # -- test helpers --------------------------------------------------------------

    def run_pending(self) -> int:
        """Run every queued job, in order; return how many ran."""
        count = 0
        while True:
            with self._lock:
                if not self._queued:
                    return count
                beanstalk_id = self._queued.pop(0)
                job, _ = self._jobs[beanstalk_id]
            self._run(job)
            count += 1

    def path(self, result_url: str) -> Path:
        """The file a result URL is published to (below ``results_dir``)."""
        from jobrunner.resultsdir import ResultsDir, UnsafePath, relative_result_path

        rel = relative_result_path(result_url, self.base_url)
        try:
            return ResultsDir(self.results_dir, create=True).target(rel)
        except UnsafePath as exc:
            raise ResultRefused(f"result URL {result_url!r}: {exc}") from None

    def document(self, result_url: str) -> dict[str, Any] | None:
        """The document published at ``result_url``, or None."""
        try:
            doc: dict[str, Any] = json.loads(self.path(result_url).read_bytes())
        except (FileNotFoundError, ResultRefused):
            return None
        return doc

    # -- running -------------------------------------------------------------------

    def _job_type(self, name: str) -> Any:
        if name in self.job_types:
            return self.job_types[name]
        from jobrunner.plugins import JOB_TYPES, _load_named

        try:
            return _load_named(JOB_TYPES, name)[0]
        except LookupError:
            raise UnknownType(f"no job type {name!r}: pass it in job_types") from None

    def _input(self, url: str) -> Any:
        if callable(self.inputs):
            return self.inputs(url)
        if self.inputs is not None and url in self.inputs:
            return self.inputs[url]
        if url.startswith("file:"):
            from urllib.parse import unquote, urlsplit

            raw = Path(unquote(urlsplit(url).path)).read_bytes()
            try:
                return json.loads(raw)
            except ValueError:
                return raw
        raise InputUnavailable(
            f"InlineClient: no test input for {url!r} (pass inputs={{url: value}})"
        )

    def _run(self, job: Job) -> None:
        attempts = job.max_attempts or 3
        for attempt in range(1, attempts + 1):
            builder = ResultBuilder.for_job(job, worker=self.worker, attempt=attempt)
            try:
                job_type = self._job_type(job.type)
                urls = job.input_urls
                decoded = (
                    self._input(urls[None])
                    if None in urls
                    else {name: self._input(url) for name, url in urls.items()}
                )
                outcome = run_job(
                    job_type, input=decoded, params=job.params, job=job, fetch=self.inputs
                )
            except Retry as exc:
                if attempt < attempts:
                    continue
                failure: JobFailure = RetriesExhausted(
                    f"retry_requested on the last attempt ({attempt}): {exc}"
                )
            except JobFailure as exc:
                failure = exc
            except Exception as exc:  # the job type's own error, as a worker reports it
                failure = PluginError(f"{type(exc).__name__}: {exc}")
            else:
                self._publish(job.result, builder.done(outcome.data))
                return
            self._publish(job.result, builder.failed(failure))
            return

    def _publish(self, url: str, doc: Any) -> None:
        from jobrunner.resultsdir import write_atomic

        write_atomic(self.path(url), codec.encode_result(doc), fsync=False)
