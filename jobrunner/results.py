"""Building result documents for one attempt of one job."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from jobrunner import __version__
from jobrunner.errors import JobFailure
from jobrunner.job import DONE, FAILED, RUNNING, ErrorInfo, Job, Provenance, ResultDocument, utcnow

__all__ = ["ResultBuilder"]


@attrs.define(kw_only=True)
class ResultBuilder:
    """Makes the ``running``, ``done`` and ``failed`` documents of one attempt.

    Every document gets a fresh ``timestamp``; ``started``, ``attempt``,
    ``worker``, ``meta`` and (once known) ``provenance`` are carried along.
    """

    job_id: str
    job_type: str
    worker: str
    attempt: int | None = None
    meta: dict[str, Any] | None = None
    started: dt.datetime | None = None
    provenance: Provenance | None = None

    @classmethod
    def for_job(cls, job: Job, *, worker: str, attempt: int | None) -> ResultBuilder:
        """Start the documents of one attempt of ``job``."""
        return cls(
            job_id=job.id,
            job_type=job.type,
            worker=worker,
            attempt=attempt,
            meta=job.meta,
            started=utcnow(),
            provenance=Provenance(job_type=job.type, jobrunner_version=__version__),
        )

    def _doc(self, status: str, **fields: Any) -> ResultDocument:
        return ResultDocument(
            id=self.job_id,
            type=self.job_type,
            status=status,
            timestamp=utcnow(),
            started=self.started,
            attempt=self.attempt,
            worker=self.worker,
            provenance=self.provenance,
            meta=self.meta,
            **fields,
        )

    def running(self, progress: float | None = None, message: str | None = None) -> ResultDocument:
        """The document published while the job runs."""
        return self._doc(RUNNING, progress=progress, message=message)

    def done(self, data: Any) -> ResultDocument:
        """The document of a successful job."""
        return self._doc(DONE, finished=utcnow(), data=data, progress=1.0)

    def failed(self, failure: JobFailure) -> ResultDocument:
        """The document of a permanently failed job."""
        return self._doc(
            FAILED,
            finished=utcnow(),
            error=ErrorInfo(
                code=failure.code, message=failure.message, retryable=failure.retryable
            ),
        )
