"""What a job type receives: the :class:`Context` of one job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from jobrunner._log import BoundLogger, as_structlog
from jobrunner.job import Job

__all__ = ["Context"]


@attrs.define(kw_only=True)
class Context:
    """Everything a job type needs to run one job, and nothing global.

    Attributes:
        job: the job document (id, type, input, result, params, meta, ...).
        input: the decoded input: parsed JSON for a JSON response, ``bytes``
            otherwise; a dict of name to decoded input when the job names
            several input URLs.
        params: the job's params, as an instance of the job type's ``Params``
            class when it has one, else the plain dict.
        log: a structlog logger (``structlog.stdlib.BoundLogger``) bound to
            the job (id, type, attempt): ``ctx.log.info("rows_read", rows=n)``;
            its records go through stdlib :mod:`logging`, like those of
            ``logging.getLogger(...)``. Made on first use.
        workdir: a scratch directory (created on first use), removed after the job.
        attempt: which attempt this is (1 for the first).
    """

    job: Job
    input: Any
    params: Any
    _log: Any = attrs.field(alias="log")
    _progress: Callable[[float, str | None], None] = attrs.field(alias="progress_callback")
    _fetch: Callable[[str], Any] = attrs.field(alias="fetch_callback")
    _workdir_factory: Callable[[], Path] = attrs.field(alias="workdir_factory")
    attempt: int = 1
    _workdir: Path | None = attrs.field(default=None, init=False)

    @property
    def log(self) -> Any:
        """The job's structlog logger (see the class docs), made on first use."""
        if isinstance(self._log, BoundLogger):
            self._log = as_structlog(self._log)
        return self._log

    @property
    def workdir(self) -> Path:
        """A scratch directory for this job, created on first use and removed after it."""
        if self._workdir is None:
            self._workdir = self._workdir_factory()
        return self._workdir

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress from 0 to 1, published as a ``running`` document.

        Publication is rate-limited (about once a second); the latest value
        is always published eventually. Values are clamped to [0, 1].
        """
        fraction = min(1.0, max(0.0, float(fraction)))
        self._progress(fraction, message)

    def fetch(self, url: str) -> Any:
        """Fetch and decode another URL under the same input policy as the job's input.

        Raises:
            jobrunner.errors.JobFailure: the same input errors as the job's input.
        """
        return self._fetch(url)
