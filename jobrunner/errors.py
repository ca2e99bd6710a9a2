"""The whole exception tree of jobrunner.

Every failure that reaches a result document carries a stable, snake_case
error ``code`` and a ``retryable`` flag; the README's error table documents
each code. Library exceptions (greenstalk, httpx, OSError, ...) are
translated into these at the module that talks to the library.

::

    JobRunnerError
    ├── ConfigError (ValueError)            bad settings, flags, TOML, env
    ├── PluginLoadError (ImportError)       a plugin distribution failed to load
    ├── QueueError (ConnectionError)        beanstalkd unreachable or refused a command
    │   └── JobNotFound (LookupError)       no such job (deleted, or reservation lost)
    ├── ResultUnavailable                   a result document cannot be read (status, --wait)
    │   └── WaitTimeout (TimeoutError)      no final document within --wait-timeout
    ├── Retry                               a job type asks for a later attempt (a verb)
    └── JobFailure                          why one job did not produce a result
        ├── InvalidJob (ValueError)         invalid_job        the job document is malformed
        ├── UnknownType (LookupError)       unknown_type       no job type of that name
        ├── PluginUnavailable               plugin_unavailable the job type failed to load
        ├── InvalidParams (ValueError)      invalid_params     params rejected by the job type
        ├── InputRefused                    input_refused      URL policy refuses an input URL
        ├── InputUnavailable                input_unavailable  input server answered 4xx
        ├── InputFailed                     input_failed       5xx, time-out, connection (retryable)
        ├── InputTooLarge                   input_too_large    body over the size limit
        ├── InputInvalid (ValueError)       input_invalid      body cannot be decoded or used
        ├── PluginError                     plugin_error       the job type raised
        ├── RetryRequested                  retry_requested    the job type raised Retry (retryable)
        ├── JobTimeout (TimeoutError)       timeout            the job ran past its time-out
        ├── WorkerCrash                     worker_crash       the child process died mid-job
        ├── RetriesExhausted                retries_exhausted  retryable failures past max_attempts
        ├── JobExpired                      expired            reserved after its ``expires`` time
        ├── JobCancelled                    cancelled          cancelled by a client (``cancel``)
        ├── ResultRefused                   result_refused     result URL outside what we publish
        ├── ResultBlocked                   result_blocked     a file or directory is in the way
        ├── ResultTooLarge                  result_too_large   result document over the size limit
        └── PublishFailed                   publish_failed     a publisher could not write it
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ConfigError",
    "InputFailed",
    "InputInvalid",
    "InputRefused",
    "InputTooLarge",
    "InputUnavailable",
    "InvalidJob",
    "InvalidParams",
    "JobCancelled",
    "JobExpired",
    "JobFailure",
    "JobNotFound",
    "JobRunnerError",
    "JobTimeout",
    "PluginError",
    "PluginLoadError",
    "PluginUnavailable",
    "PublishFailed",
    "QueueError",
    "ResultBlocked",
    "ResultRefused",
    "ResultTooLarge",
    "ResultUnavailable",
    "RetriesExhausted",
    "Retry",
    "RetryRequested",
    "UnknownType",
    "WaitTimeout",
    "WorkerCrash",
    "failure_for_code",
]


class JobRunnerError(Exception):
    """Base of every exception jobrunner raises on purpose."""


class ConfigError(JobRunnerError, ValueError):
    """Raised when a setting (flag, environment variable, TOML file) is invalid."""


class PluginLoadError(JobRunnerError, ImportError):
    """Raised when a plugin's entry point cannot be imported or is not usable."""


class QueueError(JobRunnerError, ConnectionError):
    """Raised when beanstalkd cannot be reached or answers with an error."""


class JobNotFound(QueueError, LookupError):
    """Raised when beanstalkd does not know the job (deleted, or reservation lost)."""


class ResultUnavailable(JobRunnerError):
    """Raised when the result document cannot be read: refused, not found, not JSON.

    ``status`` is the HTTP status of the answer, None for a network error or a
    body that is not a result document.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class WaitTimeout(ResultUnavailable, TimeoutError):
    """Raised when no final document appeared in time (``jobrunner submit --wait``)."""


class Retry(JobRunnerError):
    """Raise from a job type to ask for a later attempt of this job.

    Args:
        reason: why; it appears in the log and, once attempts run out, in the
            ``retries_exhausted`` error message.
        delay: seconds to wait before the next attempt; the worker's
            exponential back-off is used when ``None``.
    """

    def __init__(self, reason: str = "retry requested", delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class JobFailure(JobRunnerError):
    """Base of the failures that end in a ``failed`` result document.

    ``code`` is the stable error code written into the document; ``retryable``
    says whether another attempt might succeed.
    """

    code: ClassVar[str] = "failed"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidJob(JobFailure, ValueError):
    """Raised when a job document is not valid JSON or breaks the job schema."""

    code = "invalid_job"

    def __init__(
        self, message: str, problems: list[str] | None = None, document: object = None
    ) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]
        #: The document as parsed, when it was JSON: its result URL may still be usable.
        self.document = document


class UnknownType(JobFailure, LookupError):
    """Raised when no job type is installed under the job's ``type``."""

    code = "unknown_type"


class PluginUnavailable(JobFailure):
    """Raised when the job's type is installed but failed to load."""

    code = "plugin_unavailable"


class InvalidParams(JobFailure, ValueError):
    """Raised when the job type rejects the job's ``params``.

    Raise it from a job type (or from a ``Params`` validator or converter)
    with a message that names the field and says what was wrong.
    """

    code = "invalid_params"


class InputRefused(JobFailure):
    """Raised when the input URL policy refuses an input URL (scheme, host, address)."""

    code = "input_refused"


class InputUnavailable(JobFailure):
    """Raised on a 4xx answer (not 408/429), too many redirects, or a missing ``file:`` input."""

    code = "input_unavailable"


class InputFailed(JobFailure):
    """Raised on a 5xx, 408 or 429 answer, a time-out, a DNS or connection error."""

    code = "input_failed"
    retryable = True


class InputTooLarge(JobFailure):
    """Raised when an input body exceeds the configured size limit."""

    code = "input_too_large"


class InputInvalid(JobFailure, ValueError):
    """Raised when an input body cannot be decoded or is not what the job type takes."""

    code = "input_invalid"


class PluginError(JobFailure):
    """Raised (by the runner) when the job type raised an unexpected exception."""

    code = "plugin_error"


class RetryRequested(JobFailure):
    """Raised (by the runner) when the job type raised :class:`Retry`."""

    code = "retry_requested"
    retryable = True


class JobTimeout(JobFailure, TimeoutError):
    """Raised when a job runs longer than its time-out and is stopped."""

    code = "timeout"


class WorkerCrash(JobFailure):
    """Raised when the child process running the job died (signal, exit, OOM)."""

    code = "worker_crash"


class RetriesExhausted(JobFailure):
    """Raised when a retryable failure happens on the last allowed attempt."""

    code = "retries_exhausted"


class JobExpired(JobFailure):
    """Raised when a job is reserved after its ``expires`` time: it is not run."""

    code = "expired"


class JobCancelled(JobFailure):
    """Raised when a client cancelled the job (``Client.cancel``, ``jobrunner cancel``)."""

    code = "cancelled"


class ResultRefused(JobFailure):
    """Raised when a result URL does not map inside what the publishers may write."""

    code = "result_refused"


class ResultBlocked(JobFailure):
    """Raised when a file or directory on disk stands where the result document must go.

    A directory at the document's place, or a file where one of its parent
    directories is needed: no retry can write it, so the job fails at once.
    """

    code = "result_blocked"


class ResultTooLarge(JobFailure):
    """Raised when the result document exceeds the configured size limit."""

    code = "result_too_large"


class PublishFailed(JobFailure):
    """Raised when a publisher could not write the result document.

    Retryable by default (a full disk or an unreachable peer may recover);
    pass ``retryable=False`` when another attempt cannot help (HTTP 4xx).
    """

    code = "publish_failed"
    retryable = True

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable  # type: ignore[misc]


_FAILURES: dict[str, type[JobFailure]] = {
    cls.code: cls
    for cls in (
        InvalidJob,
        UnknownType,
        PluginUnavailable,
        InvalidParams,
        InputRefused,
        InputUnavailable,
        InputFailed,
        InputTooLarge,
        InputInvalid,
        PluginError,
        RetryRequested,
        JobTimeout,
        WorkerCrash,
        RetriesExhausted,
        JobExpired,
        JobCancelled,
        ResultRefused,
        ResultBlocked,
        ResultTooLarge,
        PublishFailed,
    )
}

#: Every stable error code, in the order of the README's table.
ERROR_CODES: tuple[str, ...] = tuple(_FAILURES)


def failure_for_code(code: str, message: str) -> JobFailure:
    """Rebuild the failure for an error ``code`` (used across the process boundary)."""
    cls = _FAILURES.get(code, PluginError)
    return cls(message)
