"""What to do with a job once its run has ended: a pure function and its inputs.

The slot turns whatever ended a job into one :data:`Event` and asks
:func:`decide`, which returns a :class:`Decision`: the queue action, the
release delay, and the document to publish. Nothing here touches a process,
a socket or a clock, so every rule is tested by a table
(``tests/unit/test_decide.py``)::

    event                         stopping   attempts left   action    document
    Done                          any        any             delete    (done, by the child)
    Failed  retryable             any        yes             release   running, with a retry note
    Failed  retryable             any        no              bury      failed  retries_exhausted
    Failed  expired               any        any             delete    failed  expired
    Failed  cancelled             any        any             delete    failed  cancelled
    Failed  other permanent       any        any             bury      failed  <its code>
    Crashed                       no         any             bury      failed  worker_crash
    Crashed                       yes        any             release0  none (the stop killed it)
    TimedOut                      any        any             bury      failed  timeout
    Interrupted                   any        any             release0  none

A failure document that cannot be published (or whose result URL was
refused: :attr:`Decision.publishable`) turns a ``delete`` into a ``bury``
(:meth:`Decision.unpublished`): a job is never deleted before its result
is out.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

from jobrunner._worker.protocol import Action
from jobrunner.errors import JobFailure, JobTimeout, RetriesExhausted, WorkerCrash
from jobrunner.job import ErrorInfo

__all__ = [
    "Crashed",
    "Decision",
    "Done",
    "Event",
    "Failed",
    "Interrupted",
    "Retries",
    "TimedOut",
    "backoff_delay",
    "decide",
]


@attrs.frozen
class Done:
    """The child published the ``done`` document."""


@attrs.frozen
class Failed:
    """The job failed with ``error`` (in the child, or refused by the worker before it ran)."""

    error: ErrorInfo
    #: The job type's own ``Retry(delay=...)``, which wins over the back-off.
    delay: float | None = None


@attrs.frozen
class Crashed:
    """The child died while it ran the job (signal, exit, out of memory)."""

    description: str


@attrs.frozen
class TimedOut:
    """The job ran past its time-out and its child was killed."""

    timeout: float


@attrs.frozen
class Interrupted:
    """The job must be given back untouched (worker stopping, child lost before the job)."""

    reason: str


Event = Done | Failed | Crashed | TimedOut | Interrupted


def backoff_delay(attempt: int, base: float, maximum: float) -> int:
    """Exponential back-off with jitter: about ``base * 2**(attempt-1)``, capped.

    Half the delay is fixed and half random ("equal jitter"), so retries of
    many jobs failing together spread out but never come back too early.
    Returned in whole seconds, as beanstalkd takes them.
    """
    delay: float = min(maximum, base * 2.0 ** max(0, attempt - 1))
    return max(1, round(delay / 2 + random.uniform(0, delay / 2)))


@attrs.frozen(kw_only=True)
class Retries:
    """How often and how late retryable failures are tried again."""

    max_attempts: int
    base: float
    maximum: float
    #: ``backoff(attempt) -> seconds``; :func:`backoff_delay` with base and maximum by default.
    backoff: Callable[[int], int] | None = None

    def delay(self, attempt: int) -> int:
        """The release delay after failed attempt ``attempt``."""
        if self.backoff is not None:
            return self.backoff(attempt)
        return backoff_delay(attempt, self.base, self.maximum)


#: Permanent failures that delete the job (nothing for an operator to repair).
_DELETED = frozenset({"expired", "cancelled"})

#: Error codes that say no publisher takes the result URL. (``result_blocked`` is not
#: one: only the results directory is blocked, and other publishers — an HTTP PUT —
#: still get the failed document; see ``publish_failure``.)
_UNPUBLISHABLE = frozenset({"result_refused"})


@attrs.frozen(kw_only=True)
class Decision:
    """What the slot does: the queue action and the document to publish first.

    Attributes:
        action: delete, release or bury.
        delay: seconds before a released job is ready again.
        failure: publish a ``failed`` document with this error first.
        note: publish a ``running`` document with this message first (a retry).
        code: the error code behind the action (logs, metrics), None when done.
        reason: why a job is given back without a failure (``shutdown``, ...).
    """

    action: Action
    delay: int = 0
    failure: ErrorInfo | None = None
    note: str | None = None
    code: str | None = None
    reason: str | None = None

    @property
    def publishable(self) -> bool:
        """True when a ``failed`` document is due and its URL is one the publishers take.

        A result URL the publishers refused is not tried again for the failure.
        """
        return self.failure is not None and self.failure.code not in _UNPUBLISHABLE

    def unpublished(self) -> Decision:
        """The decision when its failure document could not be published: never delete."""
        if self.action is Action.DELETE:
            return attrs.evolve(self, action=Action.BURY)
        return self


def _error(failure: type[JobFailure], message: str) -> ErrorInfo:
    return ErrorInfo(code=failure.code, message=message, retryable=False)


def decide(event: Event, *, attempt: int, retries: Retries, stopping: bool = False) -> Decision:
    """Decide what happens to a job after ``event`` on attempt ``attempt``.

    Args:
        event: what ended the run.
        attempt: this attempt's number (beanstalkd's reserve count, from 1).
        retries: the job's attempt limit and the back-off.
        stopping: the worker is shutting down (a child killed by the stop did not crash).
    """
    if isinstance(event, Done):
        return Decision(action=Action.DELETE)
    if isinstance(event, Interrupted):
        return Decision(action=Action.RELEASE, reason=event.reason)
    if isinstance(event, Crashed):
        if stopping:
            # systemd's KillMode=control-group signals the children too: not a crash.
            return Decision(action=Action.RELEASE, reason="shutdown")
        error = _error(
            WorkerCrash,
            f"the process running the job died ({event.description}); "
            "the job type crashed or ran out of memory",
        )
        return Decision(action=Action.BURY, failure=error, code=error.code)
    if isinstance(event, TimedOut):
        error = _error(
            JobTimeout,
            f"the job ran longer than its time-out of {event.timeout:g} s and was stopped; "
            "raise 'timeout' in the job (up to --max-timeout) or make it faster",
        )
        return Decision(action=Action.BURY, failure=error, code=error.code)
    error = event.error
    if error.retryable and attempt < retries.max_attempts:
        # The job type's own delay wins over the back-off (it knows its upstream).
        delay = max(0, round(event.delay)) if event.delay is not None else retries.delay(attempt)
        note = (
            f"attempt {attempt} of {retries.max_attempts} failed ({error.code}: "
            f"{error.message}); retrying in {delay} s"
        )
        return Decision(action=Action.RELEASE, delay=delay, note=note, code=error.code)
    if error.retryable:
        error = _error(
            RetriesExhausted,
            f"gave up after {attempt} attempt(s); last error {error.code}: {error.message}",
        )
    # An expired or cancelled job has nothing to repair: delete it rather than bury it.
    action = Action.DELETE if error.code in _DELETED else Action.BURY
    return Decision(action=action, failure=error, code=error.code)
