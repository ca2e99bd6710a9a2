"""The results server behind ``jobrunner serve``: result documents over HTTP.

Users' browsers load result documents straight from the workers, cross-origin,
and poll them while a job runs. :func:`create_app` builds the ASGI
application (Starlette routing and CORS); :func:`run_server` runs it under
uvicorn, hardened against hostile clients. nginx can do the same job
(``examples/nginx/``), with the same semantics:

What is served
    ``GET`` and ``HEAD`` of the regular files below the results directory,
    ``.json`` as ``application/json``. Nothing else: no directory listing
    (a directory is a 404: result URLs are capabilities handed to users, a
    listing would hand out everybody's), and no dot-named file or anything in
    a dot-named directory (404) — the atomic file writer and rsync keep their
    half-written temp files under dot names (``.xxx.tmp``, ``.name.XXXXXX``),
    and a reader must never see a partial document. A path that tries to
    leave the directory (``..``, also percent-encoded, an encoded ``/``,
    backslashes, NUL) is a 400; a symlink leading out of the directory is a
    404. Symlinks that stay inside are followed. (The path rules are
    :mod:`jobrunner.resultsdir`'s, shared with the publishers.)

Caching
    ``Cache-Control`` follows the document's status (:mod:`jobrunner.caching`):
    ``done`` and ``failed`` documents may be cached for long (a day unless
    configured, and served stale as long again while a cache refreshes them),
    ``running`` ones for one second, 404s for a few seconds, so that an HTTP
    cache in front of the workers (``examples/varnish/``) absorbs the
    polling. Revalidation is cheap: the strong ``ETag`` is a hash of the
    content — identical on every replica of a document, whichever worker
    behind a load balancer answers — and ``If-None-Match`` (or, without it,
    ``If-Modified-Since``, one-second resolution) gets a ``304 Not Modified``
    with no body.

Health
    ``GET /health`` answers 200 ``{"status": "ok"}`` while the results
    directory can be read, 503 otherwise, never cached: the probe of a load
    balancer or of Varnish. (A result file named ``health`` at the top of the
    results directory is therefore not reachable.)

Cross-origin reads (CORS)
    For each ``--cors-origin`` the matching ``Origin`` is echoed with
    ``Vary: Origin`` (``*`` answers any origin with ``*``); ``ETag`` and
    ``Last-Modified`` are exposed to scripts, and preflight ``OPTIONS``
    requests are answered. Other origins get no ``Access-Control-Allow-Origin``,
    so browsers keep the document from their scripts.

Collecting results (``PUT``)
    With a ``--put-token``, workers elsewhere publish to this host with
    ``PUT`` and ``Authorization: Bearer <token>`` (the ``http`` publisher).
    The body must be a valid result document of at most ``max_put_bytes``
    bytes, the path a safe ``.json`` path; it is written atomically (temp
    file, fsync, rename) and then served byte for byte. A directory at the
    document's place, or a file where a directory is needed, is a 409.
    Without a token, ``PUT`` is a 405.

Hostile clients
    A connection may wait at most ``--idle-timeout`` seconds (10) for the
    head of its next request — idle and slow-header connections are closed;
    at most ``--max-connections`` are open (by default half the
    file-descriptor limit): when full, the longest-waiting connection makes
    room, or the newcomer gets a 503 when all are busy. Warnings and errors
    a client can cause are rate-limited in the log.

Every error is a small JSON document ``{"error": "..."}``.
"""

from __future__ import annotations

from jobrunner.serve._app import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_PUT_BYTES,
    create_app,
)
from jobrunner.serve._run import run_server

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_PUT_BYTES",
    "create_app",
    "run_server",
]
