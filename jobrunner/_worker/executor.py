"""Running one job in the child process: resolve → fetch → run → publish ``done``.

:class:`JobExecutor` lives in a child process and is reused for many jobs:
it keeps one :class:`~jobrunner.fetch.Fetcher` (one HTTP connection pool),
the loaded job types and the publishers. It takes the job as the worker
decoded it (:class:`~jobrunner._worker.protocol.RunJob`), publishes the
``running`` and ``done`` documents, and answers with a
:class:`~jobrunner._worker.protocol.Finished`: done, or the failure it met.
What follows a failure (retry, bury, the ``failed`` document) is the
worker's decision.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from jobrunner import codec
from jobrunner._log import get_logger, job_context
from jobrunner._worker.documents import ResultBuilder, error_of, publish_document
from jobrunner._worker.progress import ProgressReporter, Scheduler
from jobrunner._worker.protocol import Finished, Publishing, Replicate, RunJob
from jobrunner._worker.slate import Slate
from jobrunner.config import Config
from jobrunner.context import Context
from jobrunner.errors import InputInvalid, InvalidParams, JobFailure, PluginError, Retry
from jobrunner.job import ErrorInfo, Job
from jobrunner.plugins import JobTypeRegistry, LoadedJobType
from jobrunner.publish.base import PublisherChain, build_publishers

__all__ = ["JobExecutor"]

log = get_logger(__name__)
_PUBLISHING = Publishing()


class _Rss:
    """This process's resident memory, read from a kept-open ``/proc/self/statm``."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # pragma: no cover - not Linux
            self._fd = None
        self._page = os.sysconf("SC_PAGE_SIZE")

    def bytes(self) -> int:
        """Resident bytes now (0 where unknown)."""
        if self._fd is None:  # pragma: no cover - not Linux
            return 0
        try:
            return int(os.pread(self._fd, 128, 0).split()[1]) * self._page
        except (OSError, ValueError, IndexError):  # pragma: no cover
            return 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class JobExecutor:
    """Runs jobs in this process; one per child process, reused across jobs."""

    def __init__(
        self,
        config: Config,
        *,
        publishers: PublisherChain | None = None,
        notify: Callable[[Replicate | Publishing], None] | None = None,
        slate: Slate | None = None,
    ) -> None:
        from jobrunner.fetch import Fetcher  # imported here: httpx is a child-only cost

        self.config = config
        self.registry = JobTypeRegistry()
        self.scheduler = Scheduler()
        self.publishers = publishers if publishers is not None else build_publishers(config)
        self.fetcher = Fetcher(config)
        self._notify = notify
        self._slate = slate
        self._written: list[str] = []  # final documents to replicate, sent with Finished
        self._rss = _Rss()
        for publisher in self.publishers.publishers:
            # Replication (rsync) outlives this process: the worker pushes what we wrote.
            forward_to = getattr(publisher, "forward_to", None)
            if forward_to is not None:
                forward_to(self._forward)

    def _forward(self, rel: str, final: bool) -> None:
        if final:
            self._written.append(rel)
        elif self._notify is not None:
            self._notify(Replicate((rel,), final=False))

    def close(self) -> None:
        """Release the HTTP connections and publishers."""
        self.fetcher.close()
        self.publishers.close()
        self._rss.close()

    def execute(self, request: RunJob) -> Finished:
        """Run one job and publish its ``done`` document; never raises for a job's failure."""
        job = request.job
        bound = log.bind(tube=request.tube, attempt=request.attempt)
        builder = ResultBuilder.for_job(
            job, worker=self.config.worker_name, attempt=request.attempt
        )
        timings: dict[str, float] = {}
        # The job's id and type go with every record logged while it runs, the
        # plugin's and its libraries' stdlib records included.
        with job_context(job_id=job.id, job_type=job.type):
            try:
                self._run(job, builder, bound, request.attempt, timings)
            except JobFailure as failure:
                return self._finished(builder, timings, error_of(failure))
            except Retry as retry:
                error = ErrorInfo(code="retry_requested", message=retry.reason, retryable=True)
                return self._finished(builder, timings, error, retry_delay=retry.delay)
            finally:
                self._clean_up(bound)
        return self._finished(builder, timings, None)

    def _clean_up(self, bound: Any) -> None:
        """Undo what the job did to this process (streams, directory, environment, programs)."""
        if self._slate is None:
            return
        leftovers = self._slate.restore()
        if leftovers:
            bound.warning("job_leftovers_killed", processes=leftovers)

    def _finished(
        self,
        builder: ResultBuilder,
        timings: dict[str, float],
        error: ErrorInfo | None,
        retry_delay: float | None = None,
    ) -> Finished:
        written, self._written = tuple(self._written), []
        # The worker reads when the job started and its provenance only to build a
        # failure document: a job that is done sends neither (less to pickle, per job).
        return Finished(
            replicate=written,
            error=error,
            retry_delay=retry_delay,
            started=builder.started if error is not None else None,
            provenance=builder.provenance if error is not None else None,
            fetch_s=timings.get("fetch_s"),
            run_s=timings.get("run_s"),
            rss=self._rss.bytes(),
        )

    # -- the steps ---------------------------------------------------------

    def _run(
        self,
        job: Job,
        builder: ResultBuilder,
        bound: Any,
        attempt: int,
        timings: dict[str, float],
    ) -> None:
        t0 = time.perf_counter()
        job_type = self.registry.get(job.type)
        params = self._params(job, job_type)
        assert builder.provenance is not None  # set by ResultBuilder.for_job
        builder.provenance = attrs.evolve(
            builder.provenance, plugin=job_type.distribution, plugin_version=job_type.version
        )
        progress = ProgressReporter(
            lambda doc: self._publish_running(job, doc, bound),
            builder,
            self.config.progress_interval,
            self.scheduler,
        )
        try:
            progress.announce(self.config.running_delay)
            inputs = self.fetcher.fetch_all(job.input_urls)
            t_fetched = time.perf_counter()
            timings["fetch_s"] = round(t_fetched - t0, 4)
            builder.provenance = attrs.evolve(
                builder.provenance,
                inputs=[fetched.provenance(name) for name, fetched in inputs.items()],
            )
            bound.debug("job_fetched", inputs=len(inputs), fetch_s=timings["fetch_s"])
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
            try:
                data = self._call(job, job_type, bound, value, params, attempt, progress)
            finally:
                timings["run_s"] = round(time.perf_counter() - t_fetched, 4)
        finally:
            progress.close()
        if self._notify is not None:
            self._notify(_PUBLISHING)  # the worker takes its next job meanwhile
        publish_document(
            self.publishers, job.result, builder.done(data), self.config.max_result_bytes
        )
        bound.debug("job_published", status="done")

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
        bound.debug("job_started")
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

    def _publish_running(self, job: Job, doc: Any, bound: Any) -> None:
        try:
            publish_document(self.publishers, job.result, doc, self.config.max_result_bytes)
        except JobFailure as failure:
            # A lost status document is not worth failing the job for.
            bound.warning("status_publish_failed", status=doc.status, error=failure.message)
            return
        bound.debug("job_progress", progress=doc.progress, message=doc.message)
