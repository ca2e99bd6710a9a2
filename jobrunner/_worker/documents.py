"""Result documents of one attempt: building them, and the one way to publish them.

Shared by both sides: the child publishes ``running`` and ``done``
documents, the worker every ``failed`` document and every retry note,
through :func:`publish_failure` and :func:`publish_note` — one set of rules
whichever process a failure was met in.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from jobrunner import __version__, codec
from jobrunner._log import get_logger
from jobrunner.errors import JobFailure, PluginError, ResultTooLarge
from jobrunner.job import DONE, FAILED, RUNNING, ErrorInfo, Job, Provenance, ResultDocument, utcnow
from jobrunner.publish.base import PublisherChain

__all__ = ["ResultBuilder", "error_of", "publish_document", "publish_failure", "publish_note"]

log = get_logger(__name__)


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
    def for_job(
        cls,
        job: Job,
        *,
        worker: str,
        attempt: int | None,
        started: dt.datetime | None = None,
        provenance: Provenance | None = None,
    ) -> ResultBuilder:
        """Start the documents of one attempt of ``job``."""
        return cls(
            job_id=job.id,
            job_type=job.type,
            worker=worker,
            attempt=attempt,
            meta=job.meta,
            started=started or utcnow(),
            provenance=provenance or Provenance(job_type=job.type, jobrunner_version=__version__),
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

    def failed(self, error: ErrorInfo | JobFailure) -> ResultDocument:
        """The document of a permanently failed job."""
        if isinstance(error, JobFailure):
            error = error_of(error)
        return self._doc(FAILED, finished=utcnow(), error=error)


def error_of(failure: JobFailure) -> ErrorInfo:
    """The ``error`` member of a failed document for ``failure``."""
    return ErrorInfo(code=failure.code, message=failure.message, retryable=failure.retryable)


def publish_document(
    publishers: PublisherChain, url: str, doc: ResultDocument, max_bytes: int
) -> None:
    """Encode and publish one result document.

    Raises:
        ResultTooLarge: the encoded document is larger than ``max_bytes``.
        PluginError: ``data`` is not strict JSON.
        PublishFailed: a publisher failed.
        ResultRefused: a publisher refused the URL.
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


def publish_failure(
    publishers: PublisherChain,
    url: str,
    builder: ResultBuilder,
    error: ErrorInfo,
    *,
    max_bytes: int,
    bound: Any = log,
) -> bool:
    """Publish the ``failed`` document of a job; True when it got out. Never raises.

    Unlike a ``done`` document, a failure is published wherever it can be:
    each publisher of the chain is tried on its own, so a result path blocked
    for one (``result_blocked`` in the results directory) still gets the
    document through the others (an HTTP PUT, say); a publisher that only
    passes on what those before it wrote (``follows_previous``, as rsync) is
    skipped after a failure. A publisher that cannot
    write it is logged (``failure_publish_failed``); True only when every one
    did — otherwise the caller keeps the job (buried) instead of deleting it.
    """
    out = True
    for publisher in publishers.publishers:
        if not out and getattr(publisher, "follows_previous", False):
            continue  # e.g. rsync: it would push what the failed publisher did not write
        single = PublisherChain([publisher])
        try:
            single.check(url)
            publish_document(single, url, builder.failed(error), max_bytes)
        except JobFailure as exc:
            bound.warning(
                "failure_publish_failed",
                publisher=type(publisher).__name__,
                code=exc.code,
                error=exc.message,
            )
            out = False
        except Exception as exc:  # a publisher's own bug must not leave the job reserved
            bound.exception(
                "failure_publish_failed",
                publisher=type(publisher).__name__,
                error=f"{type(exc).__name__}: {exc}",
            )
            out = False
    return out


def publish_note(
    publishers: PublisherChain,
    url: str,
    builder: ResultBuilder,
    message: str,
    *,
    max_bytes: int,
    bound: Any = log,
) -> bool:
    """Publish a ``running`` document with ``message`` (a retry is coming); never raises."""
    try:
        publish_document(publishers, url, builder.running(message=message), max_bytes)
    except JobFailure as exc:
        bound.warning("status_publish_failed", status=RUNNING, error=exc.message)
        return False
    except Exception as exc:
        bound.exception("status_publish_failed", error=f"{type(exc).__name__}: {exc}")
        return False
    return True
