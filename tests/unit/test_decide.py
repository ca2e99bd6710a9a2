"""The job-handling decision: every branch of decide(), as a table, without processes."""

from __future__ import annotations

import pytest

from jobrunner._worker.decide import (
    Crashed,
    Done,
    Event,
    Failed,
    Interrupted,
    Retries,
    TimedOut,
    backoff_delay,
    decide,
)
from jobrunner._worker.protocol import Action
from jobrunner.job import ErrorInfo

DELETE, RELEASE, BURY = Action.DELETE, Action.RELEASE, Action.BURY

#: Three attempts; the back-off after attempt n is 10 * n seconds (deterministic here).
RETRIES = Retries(max_attempts=3, base=10, maximum=3600, backoff=lambda attempt: 10 * attempt)


def _error(code: str, retryable: bool = False, message: str = "why") -> ErrorInfo:
    return ErrorInfo(code=code, message=message, retryable=retryable)


# event, attempt, stopping -> action, delay, failure code published, note?, code, reason
TABLE: list[tuple[str, Event, int, bool, Action, int, str | None, bool, str | None, str | None]] = [
    ("done", Done(), 1, False, DELETE, 0, None, False, None, None),
    ("done while stopping", Done(), 3, True, DELETE, 0, None, False, None, None),
    (
        "retryable, attempts left: back-off",
        Failed(_error("input_failed", True)),
        1,
        False,
        RELEASE,
        10,
        None,
        True,
        "input_failed",
        None,
    ),
    (
        "retryable, second attempt: longer back-off",
        Failed(_error("publish_failed", True)),
        2,
        False,
        RELEASE,
        20,
        None,
        True,
        "publish_failed",
        None,
    ),
    (
        "job type's own delay wins",
        Failed(_error("retry_requested", True), delay=90.4),
        1,
        False,
        RELEASE,
        90,
        None,
        True,
        "retry_requested",
        None,
    ),
    (
        "job type asks for no delay",
        Failed(_error("retry_requested", True), delay=0),
        1,
        False,
        RELEASE,
        0,
        None,
        True,
        "retry_requested",
        None,
    ),
    (
        "retryable on the last attempt: exhausted",
        Failed(_error("input_failed", True)),
        3,
        False,
        BURY,
        0,
        "retries_exhausted",
        False,
        "retries_exhausted",
        None,
    ),
    (
        "retryable past the last attempt (kicked): exhausted",
        Failed(_error("retry_requested", True)),
        5,
        False,
        BURY,
        0,
        "retries_exhausted",
        False,
        "retries_exhausted",
        None,
    ),
    (
        "permanent on the first attempt",
        Failed(_error("plugin_error")),
        1,
        False,
        BURY,
        0,
        "plugin_error",
        False,
        "plugin_error",
        None,
    ),
    (
        "invalid job",
        Failed(_error("invalid_job")),
        1,
        False,
        BURY,
        0,
        "invalid_job",
        False,
        "invalid_job",
        None,
    ),
    (
        "cancelled by a client: deleted, not buried",
        Failed(_error("cancelled")),
        1,
        False,
        DELETE,
        0,
        "cancelled",
        False,
        "cancelled",
        None,
    ),
    (
        "expired: deleted, not buried",
        Failed(_error("expired")),
        1,
        False,
        DELETE,
        0,
        "expired",
        False,
        "expired",
        None,
    ),
    (
        "crash",
        Crashed("signal SIGSEGV (11)"),
        1,
        False,
        BURY,
        0,
        "worker_crash",
        False,
        "worker_crash",
        None,
    ),
    (
        "crash in a shutdown: given back",
        Crashed("signal SIGTERM (15)"),
        1,
        True,
        RELEASE,
        0,
        None,
        False,
        None,
        "shutdown",
    ),
    ("time-out", TimedOut(1.5), 1, False, BURY, 0, "timeout", False, "timeout", None),
    ("time-out while stopping", TimedOut(1.5), 2, True, BURY, 0, "timeout", False, "timeout", None),
    (
        "interrupted by the stop",
        Interrupted("shutdown"),
        1,
        True,
        RELEASE,
        0,
        None,
        False,
        None,
        "shutdown",
    ),
    (
        "child lost before the job",
        Interrupted("child_lost"),
        2,
        False,
        RELEASE,
        0,
        None,
        False,
        None,
        "child_lost",
    ),
]


@pytest.mark.parametrize(
    ("event", "attempt", "stopping", "action", "delay", "failure", "note", "code", "reason"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_decide_table(
    event: Event,
    attempt: int,
    stopping: bool,
    action: Action,
    delay: int,
    failure: str | None,
    note: bool,
    code: str | None,
    reason: str | None,
) -> None:
    """Each way a run can end gives one queue action, delay, document and code."""
    decision = decide(event, attempt=attempt, retries=RETRIES, stopping=stopping)
    assert decision.action is action
    assert decision.delay == delay
    assert (decision.failure.code if decision.failure else None) == failure
    assert (decision.note is not None) is note
    assert decision.code == code
    assert decision.reason == reason
    if decision.failure is not None:
        assert decision.failure.retryable is False  # a failed document is final


def test_messages_say_what_happened_and_what_to_do() -> None:
    """The published messages carry the attempt count, the last error and the limits."""
    retry = decide(Failed(_error("input_failed", True, "HTTP 503")), attempt=1, retries=RETRIES)
    assert retry.note == "attempt 1 of 3 failed (input_failed: HTTP 503); retrying in 10 s"
    exhausted = decide(Failed(_error("input_failed", True, "HTTP 503")), attempt=3, retries=RETRIES)
    assert exhausted.failure is not None
    assert exhausted.failure.message == (
        "gave up after 3 attempt(s); last error input_failed: HTTP 503"
    )
    timeout = decide(TimedOut(2), attempt=1, retries=RETRIES)
    assert timeout.failure is not None and "time-out of 2 s" in timeout.failure.message
    crash = decide(Crashed("signal SIGKILL (9)"), attempt=1, retries=RETRIES)
    assert crash.failure is not None and "signal SIGKILL (9)" in crash.failure.message


def test_an_unpublished_failure_never_deletes() -> None:
    """A failure document that did not get out turns delete into bury; others stay."""
    expired = decide(Failed(_error("expired")), attempt=1, retries=RETRIES)
    assert expired.unpublished().action is BURY
    buried = decide(Failed(_error("plugin_error")), attempt=1, retries=RETRIES)
    assert buried.unpublished() == buried


def test_a_refused_result_url_is_not_published_to() -> None:
    """result_refused has a failure but is not publishable; other failures are."""
    refused = decide(Failed(_error("result_refused")), attempt=1, retries=RETRIES)
    assert refused.failure is not None and not refused.publishable
    assert decide(Failed(_error("plugin_error")), attempt=1, retries=RETRIES).publishable
    # A blocked results-directory path: the other publishers still take the document.
    assert decide(Failed(_error("result_blocked")), attempt=1, retries=RETRIES).publishable


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    """The delay is about base * 2**(attempt-1), between half and all of it, capped, >= 1 s."""
    for _ in range(200):
        assert 5 <= backoff_delay(1, 10, 3600) <= 10
        assert 20 <= backoff_delay(3, 10, 3600) <= 40
        assert 30 <= backoff_delay(12, 10, 60) <= 60
        assert backoff_delay(1, 0.1, 1) == 1
    default = Retries(max_attempts=3, base=10, maximum=3600)
    assert 5 <= default.delay(1) <= 10
