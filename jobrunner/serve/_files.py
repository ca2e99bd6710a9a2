"""Reading: ``GET`` and ``HEAD`` of result documents, with content-hash ETags and 304s."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import errno
import mimetypes
import os
import stat
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from jobrunner.caching import CachePolicy, StatusMemo, cache_control, document_status
from jobrunner.resultsdir import ResultsDir, UnsafePath, split_url_path
from jobrunner.serve._http import Refused, etag_of, respond
from jobrunner.serve._logs import log

__all__ = ["INLINE_BYTES", "get", "health", "raw_path", "segments_of"]

T = TypeVar("T")

#: Files and bodies above this size are read, hashed and parsed in a thread,
#: so that one large document does not stall the event loop.
INLINE_BYTES = 256 * 1024
_MIB = 1024 * 1024
_TYPES = {".json": "application/json", ".geojson": "application/geo+json"}


async def maybe_thread(size: int, func: Callable[..., T], *args: Any) -> T:
    """Call ``func`` inline for small work, in a thread for large (``size`` bytes)."""
    if size <= INLINE_BYTES:
        return func(*args)
    return await asyncio.to_thread(func, *args)


def raw_path(request: Request) -> bytes:
    """The request path as sent, before percent-decoding (``path`` when not given)."""
    raw = request.scope.get("raw_path")
    if raw:
        return bytes(raw).partition(b"?")[0]
    path: str = request.scope["path"]
    return path.encode("utf-8")


def segments_of(request: Request) -> list[str]:
    """The decoded path segments of the request.

    Raises:
        Refused: 400 for a path that is malformed or tries to leave the directory.
    """
    try:
        return split_url_path(raw_path(request))
    except UnsafePath as exc:
        raise Refused(400, f"bad request path: {exc}") from None


def content_type(name: str) -> str:
    """The media type of a file, by its suffix."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in _TYPES:
        return _TYPES[suffix]
    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if guessed is None or encoding is not None:
        return "application/octet-stream"
    return guessed


def not_modified(request: Request, etag: str, mtime: float) -> bool:
    """Evaluate ``If-None-Match`` or, only when absent, ``If-Modified-Since`` (RFC 9110)."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        for candidate in if_none_match.split(","):
            candidate = candidate.strip()
            if candidate.startswith("W/"):  # weak comparison for GET and HEAD
                candidate = candidate[2:]
            if candidate in ("*", etag):
                return True
        return False
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # an invalid date is ignored, as RFC 9110 says
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.timezone.utc)
    return int(mtime) <= since.timestamp()


def _read_whole(fd: int, size: int) -> bytes:
    """Read ``size`` bytes from ``fd`` (fewer when the file was truncated meanwhile)."""
    chunks = []
    left = size
    while left > 0:
        chunk = os.read(fd, min(left, 4 * _MIB))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


async def read_file(path: str, max_bytes: int) -> tuple[bytes, os.stat_result]:
    """Read a regular file whole; anything else (directory, FIFO, symlink) is a 404.

    Raises:
        Refused: 404 when not a readable regular file, 500 above ``max_bytes``.
    """
    try:
        # O_NOFOLLOW: ``path`` is already resolved, a symlink here appeared since.
        # O_NONBLOCK: opening a FIFO must not hang the server.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO):
            log.warning("file_unreadable", path=path, error=exc.strerror)
        raise Refused(404, "not found") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(404, "not found")
        if info.st_size > max_bytes:
            log.error("file_too_large", path=path, bytes=info.st_size, limit=max_bytes)
            raise Refused(500, f"the file is larger than {max_bytes} bytes")
        body = await maybe_thread(info.st_size, _read_whole, fd, info.st_size)
    finally:
        os.close(fd)
    return body, info


async def get(
    request: Request,
    results: ResultsDir,
    max_file_bytes: int,
    cache: CachePolicy,
    statuses: StatusMemo,
) -> Response:
    """Answer ``GET`` or ``HEAD`` of one file below ``results``.

    ``Cache-Control`` follows the status of the document (:mod:`jobrunner.caching`);
    ``statuses`` remembers it by ETag, so each distinct document is parsed once.

    Raises:
        Refused: 400 for a bad path, 404 for anything not served.
    """
    segments = segments_of(request)
    real = results.find(segments)
    if real is None:
        raise Refused(404, "not found (directories and dot-named files are not served)")
    body, info = await read_file(real, max_file_bytes)
    etag = await maybe_thread(len(body), etag_of, body)
    known, status = statuses.get(etag)
    if not known:
        status = await maybe_thread(len(body), document_status, body)
        statuses.put(etag, status)
    headers = [
        ("etag", etag),
        ("last-modified", email.utils.formatdate(info.st_mtime, usegmt=True)),
    ]
    if not_modified(request, etag, info.st_mtime):
        headers.append(("cache-control", cache_control(cache, 304, status)))
        return respond(request, 304, headers)
    headers.append(("cache-control", cache_control(cache, 200, status)))
    headers += [
        ("content-type", content_type(segments[-1])),
        ("x-content-type-options", "nosniff"),
    ]
    return respond(request, 200, headers, body)


async def health(request: Request) -> Response:
    """Answer ``/health``: 200 while the results directory can be listed, else 503.

    The probe of a load balancer or of Varnish; never cached.
    """
    root = request.app.state.settings.results.root
    healthy = os.path.isdir(root) and os.access(root, os.R_OK | os.X_OK)
    if not healthy:
        log.warning("health_failed", results_dir=str(root))
    body = b'{"status": "ok"}' if healthy else b'{"status": "unhealthy"}'
    headers = [("content-type", "application/json"), ("cache-control", "no-store")]
    return respond(request, 200 if healthy else 503, headers, body)
