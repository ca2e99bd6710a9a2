"""Running one job inside a child process: decode → resolve → fetch → run → publish.

:class:`JobExecutor` lives in a child process and is reused for many jobs:
it keeps one :class:`~jobrunner.fetch.Fetcher` (one HTTP connection pool),
the loaded job types and the publishers. For every job it publishes the
``running`` document, the ``done`` document or — for a permanent failure —
the ``failed`` document, and tells the worker what to do with the queue
entry as an :class:`Outcome`: delete, release (retry later) or bury.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from jobrunner import codec
from jobrunner._log import get_logger, job_context
from jobrunner.config import Config
from jobrunner.context import Context
from jobrunner.errors import (
    InputInvalid,
    InvalidParams,
    JobExpired,
    JobFailure,
    PluginError,
    PublishFailed,
    ResultTooLarge,
    RetriesExhausted,
    Retry,
    RetryRequested,
)
from jobrunner.job import Job, ResultDocument, utcnow
from jobrunner.plugins import JobTypeRegistry, LoadedJobType
from jobrunner.publish.base import PublisherChain, build_publishers
from jobrunner.results import ResultBuilder

__all__ = ["BURY", "DELETE", "RELEASE", "JobExecutor", "Outcome", "backoff_delay"]

DELETE = "delete"
RELEASE = "release"
BURY = "bury"

log = get_logger(__name__)


@attrs.frozen(kw_only=True)
class Outcome:
    """What the worker does with the queue entry once the child is done with a job."""

    action: str
    delay: int = 0
    code: str | None = None
    message: str | None = None
    published: bool = False

    def to_json(self) -> dict[str, Any]:
        """The outcome as a compact JSON-ready dict (sent over the child's pipe)."""
        return {k: v for k, v in attrs.asdict(self).items() if v is not None}


def backoff_delay(attempt: int, base: float, maximum: float) -> int:
    """Exponential back-off with jitter: about ``base * 2**(attempt-1)``, capped.

    Half the delay is fixed and half random ("equal jitter"), so retries of
    many jobs failing together spread out but never come back too early.
    Returned in whole seconds, as beanstalkd takes them.
    """
    delay: float = min(maximum, base * 2.0 ** max(0, attempt - 1))
    return max(1, round(delay / 2 + random.uniform(0, delay / 2)))


def publish_document(
    publishers: PublisherChain, url: str, doc: ResultDocument, max_bytes: int
) -> None:
    """Encode and publish one result document.

    Raises:
        ResultTooLarge: the encoded document is larger than ``max_bytes``.
        PluginError: ``data`` is not strict JSON.
        PublishFailed: a publisher failed.
    """
    try:
        body = codec.encode_result(doc)
    except (TypeError, ValueError) as exc:
        raise PluginError(
            f"the job type returned data that is not strict JSON: {exc} "
            "(return dicts, lists, strings, finite numbers, booleans and None)"
        ) from None
    if len(body) > max_bytes:
        raise ResultTooLarge(
            f"result document is {len(body)} bytes, the limit is {max_bytes} "
            "(--max-result-bytes); publish large data separately and link it from the result"
        )
    publishers.publish(url, body, final=doc.is_final)


class _Call:
    """A call scheduled by :class:`Scheduler`; :meth:`cancel` stops it if not yet run."""

    __slots__ = ("cancelled", "fn")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the call (if it has not started yet)."""
        self.cancelled = True


class Scheduler:
    """One daemon thread running delayed calls for every job of this process.

    A :class:`threading.Timer` per job would start a thread per job (about half
    a millisecond each here); progress documents only need a shared clock.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, _Call]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, fn: Callable[[], None]) -> _Call:
        """Run ``fn`` on the scheduler thread after ``delay`` seconds."""
        call = _Call(fn)
        with self._cond:
            heapq.heappush(self._queue, (time.monotonic() + delay, next(self._order), call))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
                self._thread.start()
            self._cond.notify()
        return call

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue or self._queue[0][0] > time.monotonic():
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout)
                _, _, call = heapq.heappop(self._queue)
            if not call.cancelled:
                try:
                    call.fn()
                except Exception:  # a failing call must not stop the clock
                    log.exception("scheduled_call_failed")


class ProgressReporter:
    """Publishes ``running`` documents for ``ctx.progress``, at most once per interval.

    ``ctx.progress`` never waits for a publisher (an HTTP results host may be
    slow): it records the latest value, and a timer thread publishes it when
    the interval allows. The latest value always gets out, unless the end of
    the job supersedes it; :meth:`close` waits for a publication under way, so
    a ``running`` document never overtakes the final one.
    """

    def __init__(
        self,
        publish: Any,
        builder: ResultBuilder,
        interval: float,
        scheduler: Scheduler | None = None,
    ) -> None:
        self._scheduler = scheduler or Scheduler()
        self._publish = publish
        self._builder = builder
        self._interval = interval
        self._state = threading.Lock()  # guards the fields below; held briefly
        self._publishing = threading.Lock()  # held while a document is being published
        self._last = float("-inf")
        self._pending: tuple[float, str | None] | None = None
        self._timer: _Call | None = None
        self._closed = False

    def __call__(self, fraction: float, message: str | None = None) -> None:
        with self._state:
            if self._closed:
                return
            self._pending = (fraction, message)
            if self._timer is None:
                wait = max(0.0, self._last + self._interval - time.monotonic())
                self._schedule(wait)

    def announce(self, delay: float) -> None:
        """Publish the first ``running`` document after ``delay`` seconds (at once if 0).

        A job that ends sooner publishes only its final document: for short jobs the
        ``running`` document would be overwritten before anybody could read it.
        """
        if delay <= 0:
            self._pending = (0.0, None)
            self._flush()
            return
        with self._state:
            self._pending = (0.0, None)
            self._schedule(delay)

    def _schedule(self, wait: float) -> None:
        # Called with the state lock held.
        self._timer = self._scheduler.call_later(wait, self._flush)

    def _flush(self) -> None:
        with self._publishing:
            with self._state:
                self._timer = None
                if self._closed or self._pending is None:
                    return
                fraction, message = self._pending
                self._pending = None
                self._last = time.monotonic()
            self._publish(self._builder.running(progress=fraction, message=message))

    def close(self) -> None:
        """Stop publishing and wait for a publication under way: the final document is next."""
        with self._state:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        with self._publishing:
            pass


class JobExecutor:
    """Runs jobs in this process; one per child process, reused across jobs."""

    def __init__(self, config: Config, *, publishers: PublisherChain | None = None) -> None:
        from jobrunner.fetch import Fetcher  # imported here: httpx is a child-only cost

        self.config = config
        self.registry = JobTypeRegistry()
        self.scheduler = Scheduler()
        self.publishers = publishers if publishers is not None else build_publishers(config)
        self.fetcher = Fetcher(config)

    def close(self) -> None:
        """Release the HTTP connections and publishers."""
        self.fetcher.close()
        self.publishers.close()

    def execute(
        self, body: bytes | str, *, attempt: int, max_attempts: int, tube: str | None = None
    ) -> Outcome:
        """Run one job and publish its documents; never raises for a job's failure.

        Args:
            body: the raw job document.
            attempt: which attempt this is (from beanstalkd's reserve count).
            max_attempts: the attempt after which a retryable failure is permanent.
            tube: the tube it came from, for the log.
        """
        try:
            job = codec.decode_job(body)
        except JobFailure as failure:
            log.warning("job_invalid", tube=tube, error=failure.message)
            return Outcome(action=BURY, code=failure.code, message=failure.message)
        bound = log.bind(tube=tube, attempt=attempt)
        builder = ResultBuilder.for_job(job, worker=self.config.worker_name, attempt=attempt)
        # The job's id and type go with every record logged while it runs, the
        # plugin's and its libraries' stdlib records included.
        with job_context(job_id=job.id, job_type=job.type):
            try:
                return self._run(job, builder, bound, attempt, max_attempts)
            except JobFailure as failure:
                return self._failed(job, builder, bound, failure, attempt, max_attempts)
            except Retry as request:
                return self._failed(
                    job,
                    builder,
                    bound,
                    RetryRequested(request.reason),
                    attempt,
                    max_attempts,
                    delay=request.delay,
                )

    # -- the steps ---------------------------------------------------------

    def _run(
        self, job: Job, builder: ResultBuilder, bound: Any, attempt: int, max_attempts: int
    ) -> Outcome:
        t0 = time.perf_counter()
        if job.expires is not None and job.expires <= utcnow():
            raise JobExpired(
                f"the job expired at {codec.format_time(job.expires)} "
                "before a worker reserved it; it was not run"
            )
        job_type = self.registry.get(job.type)
        self.publishers.check(job.result)
        params = self._params(job, job_type)
        assert builder.provenance is not None  # set by ResultBuilder.for_job
        builder.provenance = attrs.evolve(
            builder.provenance, plugin=job_type.distribution, plugin_version=job_type.version
        )
        progress = ProgressReporter(
            lambda doc: self._publish(job, doc, final=False, log=bound),
            builder,
            self.config.progress_interval,
            self.scheduler,
        )
        try:
            progress.announce(self.config.running_delay)
            inputs = self.fetcher.fetch_all(job.input_urls)
            t_fetched = time.perf_counter()
            builder.provenance = attrs.evolve(
                builder.provenance,  # type: ignore[misc]
                inputs=[fetched.provenance(name) for name, fetched in inputs.items()],
            )
            bound.info("job_fetched", inputs=len(inputs), fetch_s=round(t_fetched - t0, 4))
            for name, fetched in inputs.items():
                if not job_type.takes(fetched.content_type):
                    label = f"input {name!r}" if name else "input"
                    raise InputInvalid(
                        f"{label} {fetched.url}: content type {fetched.content_type!r} is not "
                        f"one job type {job.type!r} takes ({', '.join(job_type.accepts or ())}); "
                        "serve the input with one of those types"
                    )
            value = (
                inputs[None].value if None in inputs else {k: v.value for k, v in inputs.items()}
            )
            data = self._call(job, job_type, bound, value, params, attempt, progress)
        finally:
            progress.close()
        t_ran = time.perf_counter()
        self._publish(job, builder.done(data), final=True, log=bound)
        bound.info(
            "job_published",
            status="done",
            fetch_s=round(t_fetched - t0, 4),
            run_s=round(t_ran - t_fetched, 4),
            total_s=round(time.perf_counter() - t0, 4),
        )
        return Outcome(action=DELETE, published=True)

    def _params(self, job: Job, job_type: LoadedJobType) -> Any:
        if job_type.params_cls is None:
            return job.params
        try:
            return codec.structure_params(job.params, job_type.params_cls)
        except InvalidParams:
            raise
        except Exception as exc:  # a Params validator raising something else
            raise InvalidParams(f"params: {type(exc).__name__}: {exc}") from None

    def _call(
        self,
        job: Job,
        job_type: LoadedJobType,
        bound: Any,
        value: Any,
        params: Any,
        attempt: int,
        progress: ProgressReporter,
    ) -> Any:
        workdirs: list[Path] = []

        def make_workdir() -> Path:
            # Created on first use only: most job types never need one.
            workdirs.append(Path(tempfile.mkdtemp(prefix=f"jobrunner-{job.id[:40]}-")))
            return workdirs[0]

        ctx = Context(
            job=job,
            input=value,
            params=params,
            log=bound,
            workdir_factory=make_workdir,
            attempt=attempt,
            progress_callback=progress,
            fetch_callback=lambda url: self.fetcher.fetch(url).value,
        )
        bound.info("job_started")
        try:
            return job_type.run(ctx)
        except (JobFailure, Retry):
            raise
        except Exception as exc:
            bound.warning(
                "job_plugin_error",
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(limit=20),
            )
            raise PluginError(f"{type(exc).__name__}: {exc}") from None
        finally:
            for path in workdirs:
                shutil.rmtree(path, ignore_errors=True)

    def _publish(self, job: Job, doc: ResultDocument, *, final: bool, log: Any) -> None:
        try:
            publish_document(self.publishers, job.result, doc, self.config.max_result_bytes)
        except JobFailure as failure:
            if final:
                raise
            # A lost status document is not worth failing the job for.
            log.warning("status_publish_failed", status=doc.status, error=failure.message)
            return
        if doc.status == "running":
            log.debug("job_progress", progress=doc.progress, message=doc.message)

    def _failed(
        self,
        job: Job,
        builder: ResultBuilder,
        bound: Any,
        failure: JobFailure,
        attempt: int,
        max_attempts: int,
        delay: float | None = None,
    ) -> Outcome:
        if failure.retryable and attempt < max_attempts:
            # The job type's own delay wins over the back-off (it knows its upstream).
            wait = (
                max(0, round(delay))
                if delay is not None
                else backoff_delay(attempt, self.config.retry_base, self.config.retry_max)
            )
            bound.warning("job_retry", code=failure.code, error=failure.message, delay=wait)
            note = (
                f"attempt {attempt} of {max_attempts} failed ({failure.code}: "
                f"{failure.message}); retrying in {wait} s"
            )
            self._publish(job, builder.running(message=note), final=False, log=bound)
            return Outcome(action=RELEASE, delay=wait, code=failure.code, message=failure.message)
        if failure.retryable:
            failure = RetriesExhausted(
                f"gave up after {attempt} attempt(s); last error {failure.code}: {failure.message}"
            )
        expired = isinstance(failure, JobExpired)
        bound.warning(
            "job_expired" if expired else "job_failed", code=failure.code, error=failure.message
        )
        published = False
        try:
            self._publish(job, builder.failed(failure), final=True, log=bound)
            published = True
            bound.info("job_published", status="failed", code=failure.code)
        except JobFailure as exc:
            bound.warning("failure_publish_failed", code=exc.code, error=exc.message)
            if isinstance(exc, PublishFailed) and exc.retryable and attempt < max_attempts:
                wait = backoff_delay(attempt, self.config.retry_base, self.config.retry_max)
                return Outcome(action=RELEASE, delay=wait, code=exc.code, message=exc.message)
        # An expired job has nothing to repair: delete it rather than bury it.
        return Outcome(
            action=DELETE if expired else BURY,
            code=failure.code,
            message=failure.message,
            published=published,
        )


def outcome_from_json(text: bytes | str) -> Outcome:
    """Read an :class:`Outcome` sent by :meth:`Outcome.to_json`."""
    return Outcome(**json.loads(text))
