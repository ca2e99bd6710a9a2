"""jobrunner: a pluggable job runner on beanstalkd.

Web servers submit self-contained JSON jobs with :class:`Client`; workers
(``jobrunner work``) run each job's type — a plugin found through the entry
point group ``jobrunner.job_types`` — in a reused child process and publish
a JSON result document at the job's result URL.
"""

from __future__ import annotations

__version__ = "0.1.0"


import logging as _logging

from jobrunner.client import AsyncClient, Client, Ticket
from jobrunner.codec import decode_result
from jobrunner.context import Context
from jobrunner.errors import (
    InputInvalid,
    InvalidJob,
    InvalidParams,
    JobFailure,
    JobRunnerError,
    Retry,
)
from jobrunner.job import Job, ResultDocument
from jobrunner.jobtype import JobType

# A library is quiet: nothing is printed unless the application configures logging.
_logging.getLogger("jobrunner").addHandler(_logging.NullHandler())

__all__ = [
    "AsyncClient",
    "Client",
    "Context",
    "InputInvalid",
    "InvalidJob",
    "InvalidParams",
    "Job",
    "JobFailure",
    "JobRunnerError",
    "JobType",
    "ResultDocument",
    "Retry",
    "Ticket",
    "__version__",
    "decode_result",
]
