"""How long HTTP caches may keep what the results server answers.

A finished result document (``done`` or ``failed``) does not change any more:
a re-run publishes an equivalent document. A ``running`` document is replaced
every few seconds while its job runs, and a 404 means "not published yet".
:func:`cache_control` turns that into a ``Cache-Control`` header, so that an
HTTP cache in front of the workers (Varnish, nginx's proxy cache, a CDN, the
browser itself) can absorb almost every read:

=====================  =========================================================
answer                 ``Cache-Control``
=====================  =========================================================
``done``, ``failed``   ``public, max-age=F, stale-while-revalidate=F,
                       stale-if-error=F`` (F: :attr:`CachePolicy.finished`)
``running``            ``public, max-age=1`` (:data:`RUNNING_MAX_AGE`)
404                    ``public, max-age=N`` (:attr:`CachePolicy.not_found`)
anything else          ``no-cache``: a cache keeps a copy but revalidates it
                       (the server answers ``If-None-Match`` with a 304)
=====================  =========================================================

The ``stale-*`` directives (RFC 5861) let a cache go on serving a finished
document for another F seconds after its lifetime ran out, while it fetches
a fresh copy or while no worker answers (Varnish calls it grace); a running
document and a 404 are never served stale. A duration of 0 means
``no-cache`` for documents (revalidate every time, the behaviour before
caching was allowed) and ``no-store`` for 404s.

The functions here are pure: the results server passes the status of the
document it is about to send and gets the header value back.
"""

from __future__ import annotations

import json
from collections import OrderedDict

import attrs

__all__ = [
    "DEFAULT_FINISHED_MAX_AGE",
    "DEFAULT_NOT_FOUND_MAX_AGE",
    "RUNNING_MAX_AGE",
    "CachePolicy",
    "StatusMemo",
    "cache_control",
    "document_status",
]

#: Seconds a ``done`` or ``failed`` document may be cached unless configured (a day).
DEFAULT_FINISHED_MAX_AGE = 86400
#: Seconds a 404 may be cached unless configured.
DEFAULT_NOT_FOUND_MAX_AGE = 2
#: Seconds a ``running`` document may be cached: its progress changes every few
#: seconds and its final state must show promptly, so at most one second.
RUNNING_MAX_AGE = 1

_FINISHED = frozenset({"done", "failed"})
_LARGEST_AGE = 10 * 365 * 86400  # ten years: beyond that a max-age means nothing more


def _non_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name} must be an int of seconds, got {value!r}")
    if not 0 <= value <= _LARGEST_AGE:
        raise ValueError(f"{attribute.name} must be 0 to {_LARGEST_AGE} seconds, got {value}")


@attrs.frozen
class CachePolicy:
    """How long caches may keep finished documents and 404s, in seconds.

    Attributes:
        finished: ``max-age`` of ``done`` and ``failed`` documents; 0 makes
            caches revalidate them on every read.
        not_found: ``max-age`` of 404 answers; 0 forbids storing them.
    """

    finished: int = attrs.field(default=DEFAULT_FINISHED_MAX_AGE, validator=_non_negative)
    not_found: int = attrs.field(default=DEFAULT_NOT_FOUND_MAX_AGE, validator=_non_negative)


def cache_control(policy: CachePolicy, http_status: int, document_status: str | None) -> str:
    """The ``Cache-Control`` value for one answer of the results server.

    Args:
        policy: the configured durations.
        http_status: the HTTP status of the answer (200, 304, 404, ...).
        document_status: the ``status`` member of the result document being
            served (:func:`document_status`), or None when the file is not a
            result document.

    Returns:
        The header value. Answers other than 200, 304 and 404 get ``no-store``.
    """
    if http_status == 404:
        return f"public, max-age={policy.not_found}" if policy.not_found else "no-store"
    if http_status not in (200, 304):
        return "no-store"
    if document_status in _FINISHED:
        if not policy.finished:
            return "no-cache"
        age = policy.finished
        return f"public, max-age={age}, stale-while-revalidate={age}, stale-if-error={age}"
    if document_status == "running":
        return f"public, max-age={RUNNING_MAX_AGE}"
    return "no-cache"


def document_status(body: bytes) -> str | None:
    """The top-level ``status`` of a result document, None for any other file.

    The whole body is parsed (not searched), so that a ``"status"`` inside the
    job's ``data`` or ``meta`` is never mistaken for the document's own.
    """
    if body.lstrip()[:1] != b"{":
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    status = document.get("status") if isinstance(document, dict) else None
    return status if isinstance(status, str) else None


class StatusMemo:
    """A bounded memory of :func:`document_status` by ETag.

    The server hashes every document it sends for its ETag anyway; keying on
    that hash, each distinct document is parsed once, however often it is read.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._known: OrderedDict[str, str | None] = OrderedDict()

    def get(self, etag: str) -> tuple[bool, str | None]:
        """Return ``(known, status)`` for ``etag``."""
        if etag not in self._known:
            return False, None
        self._known.move_to_end(etag)
        return True, self._known[etag]

    def put(self, etag: str, status: str | None) -> None:
        """Remember ``status`` for ``etag``, forgetting the least recently used beyond the size."""
        self._known[etag] = status
        self._known.move_to_end(etag)
        while len(self._known) > self._size:
            self._known.popitem(last=False)
