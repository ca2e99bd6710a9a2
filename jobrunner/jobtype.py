"""The optional base class for job types."""

from __future__ import annotations

from typing import Any, ClassVar

from jobrunner.context import Context

__all__ = ["JobType"]


class JobType:
    """Base class for a job type; a plain function ``run(ctx)`` works as well.

    Subclass it, set ``Params`` to an attrs class to have the job's
    ``params`` structured and validated (a mismatch fails the job with
    ``invalid_params``), and implement :meth:`__call__`. The worker creates
    one instance per child process and calls it once per job, so expensive
    set-up (loading a model) belongs in ``__init__``.

    Declare it in your distribution's ``setup.cfg``::

        [options.entry_points]
        jobrunner.job_types =
            mytype = mypackage.jobs:MyType
    """

    #: An attrs class for the params, or ``None`` to receive the plain dict.
    Params: ClassVar[type | None] = None

    #: Media types of inputs this job type takes (``"text/csv"``, ``"text/*"``,
    #: ``"*/*+json"``); an input of another type fails the job with
    #: ``input_invalid``. ``None`` takes anything.
    accepts: ClassVar[tuple[str, ...] | None] = None

    def __call__(self, ctx: Context) -> Any:
        """Run one job and return its result ``data`` (any JSON-serialisable value).

        Args:
            ctx: the job, its decoded input, its params, a logger, progress
                reporting, further fetches and a scratch directory.

        Raises:
            jobrunner.Retry: to ask for a later attempt.
            jobrunner.InvalidParams: params the ``Params`` class could not catch.
            Exception: any other exception fails the job with ``plugin_error``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(self, ctx)")
