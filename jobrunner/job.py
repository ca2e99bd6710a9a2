"""The job and result documents (wire format version 1) as attrs models.

A :class:`Job` is the body of a beanstalkd job; a :class:`ResultDocument`
is what the job's result URL serves. Both are plain values: encoding,
decoding and validation live in :mod:`jobrunner.codec`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

__all__ = [
    "DONE",
    "FAILED",
    "FINAL_STATUSES",
    "RUNNING",
    "ErrorInfo",
    "InputProvenance",
    "Job",
    "Provenance",
    "ResultDocument",
    "utcnow",
]

#: Wire format version written by this release.
VERSION = 1

RUNNING = "running"
DONE = "done"
FAILED = "failed"
STATUSES = (RUNNING, DONE, FAILED)
FINAL_STATUSES = (DONE, FAILED)


def utcnow() -> dt.datetime:
    """Return the current time as an aware UTC datetime."""
    return dt.datetime.now(dt.timezone.utc)


@attrs.frozen(kw_only=True)
class Job:
    """A job document, version 1 (the documentation's "Wire formats" reference).

    ``input`` is one fully qualified URL, or a mapping of input name to URL.
    """

    id: str
    type: str
    input: str | dict[str, str]
    result: str
    created: dt.datetime
    params: dict[str, Any] = attrs.field(factory=dict)
    v: int = VERSION
    timeout: float | None = None
    max_attempts: int | None = None
    expires: dt.datetime | None = None
    meta: dict[str, Any] | None = None

    @property
    def input_urls(self) -> dict[str | None, str]:
        """Input URLs by name; a single URL is keyed by ``None``."""
        if isinstance(self.input, str):
            return {None: self.input}
        return {name: url for name, url in self.input.items()}


@attrs.frozen(kw_only=True)
class ErrorInfo:
    """The ``error`` member of a failed result document."""

    code: str
    message: str
    retryable: bool = False


@attrs.frozen(kw_only=True)
class InputProvenance:
    """Where one input came from and a fingerprint of the bytes received."""

    url: str
    sha256: str
    name: str | None = None
    etag: str | None = None
    last_modified: str | None = None


@attrs.frozen(kw_only=True)
class Provenance:
    """What produced a result: plugin, versions and the inputs' fingerprints."""

    job_type: str
    plugin: str | None = None
    plugin_version: str | None = None
    jobrunner_version: str
    inputs: list[InputProvenance] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class ResultDocument:
    """A result document, version 1: what a job's result URL serves.

    ``timestamp`` is the time this document was published and is always set.
    """

    id: str
    type: str
    status: str
    timestamp: dt.datetime
    v: int = VERSION
    progress: float | None = None
    message: str | None = None
    started: dt.datetime | None = None
    finished: dt.datetime | None = None
    attempt: int | None = None
    worker: str | None = None
    provenance: Provenance | None = None
    data: Any = None
    error: ErrorInfo | None = None
    meta: dict[str, Any] | None = None

    @property
    def is_final(self) -> bool:
        """True for ``done`` and ``failed``: the document will not change again."""
        return self.status in FINAL_STATUSES
