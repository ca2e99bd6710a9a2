"""The results server behind ``jobrunner serve``: result documents over HTTP.

Users' browsers load result documents straight from the workers, cross-origin,
and poll them while a job runs. This module is a plain ASGI application
(:func:`create_app`) run by uvicorn (:func:`run_server`); nginx can do the
same job (``examples/nginx/``), with the same semantics:

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
    404. Symlinks that stay inside are followed.

Caching
    ``Cache-Control`` follows the document's status (:mod:`jobrunner.caching`):
    ``done`` and ``failed`` documents may be cached for long (a day unless
    configured), ``running`` ones for one second, 404s for a few seconds, so
    that an HTTP cache in front of the workers (``examples/varnish/``) absorbs
    the polling. Revalidation is cheap: the strong ``ETag`` is a hash of the
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
    requests are answered. Other origins get no CORS headers, so browsers
    keep the document from their scripts.

Collecting results (``PUT``)
    With a ``--put-token``, workers elsewhere publish to this host with
    ``PUT`` and ``Authorization: Bearer <token>`` (the ``http`` publisher).
    The body must be a valid result document of at most ``max_put_bytes``
    bytes, the path a safe ``.json`` path; it is written atomically (temp
    file, fsync, rename) and then served byte for byte. Without a token,
    ``PUT`` is a 405.

Every error is a small JSON document ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import errno
import hashlib
import hmac
import json
import logging
import mimetypes
import os
import re
import signal
import socket
import stat
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from jobrunner._log import get_logger
from jobrunner.caching import CachePolicy, StatusMemo, cache_control, document_status
from jobrunner.codec import decode_result
from jobrunner.config import Config
from jobrunner.errors import ConfigError
from jobrunner.publish.file import write_atomic
from jobrunner.publish.paths import MAX_NAME_LENGTH, MAX_PATH_LENGTH, is_safe_segment

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_PUT_BYTES",
    "answer_lifespan",
    "create_app",
    "run_server",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
T = TypeVar("T")

_MIB = 1024 * 1024
#: Largest request body ``PUT`` accepts unless told otherwise.
DEFAULT_MAX_PUT_BYTES = 16 * _MIB
#: Largest file ``GET`` reads (files are read whole, to hash them for the ETag).
DEFAULT_MAX_FILE_BYTES = 64 * _MIB
#: Files and bodies above this size are read, hashed and parsed in a thread,
#: so that one large document does not stall the event loop.
_INLINE_BYTES = 256 * 1024
#: How long browsers may cache a preflight answer (seconds).
_PREFLIGHT_MAX_AGE = 86400
#: Seconds in-flight requests get to finish after SIGTERM.
_GRACEFUL_SHUTDOWN = 10

_READ_METHODS = ("GET", "HEAD", "OPTIONS")
_EXPOSE_HEADERS = "ETag, Last-Modified"
_ALLOW_HEADERS = "Authorization, Cache-Control, Content-Type, If-Modified-Since, If-None-Match"
# What a PUT path segment may hold: the file publisher's rules (publish/paths.py).
_ORIGIN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/\s?#]+$")
_TYPES = {".json": "application/json", ".geojson": "application/geo+json"}

log = get_logger(__name__)


class _Refused(Exception):
    """An answer other than success: status, message for the JSON body, extra headers."""

    def __init__(self, status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


class _Disconnected(Exception):
    """The client went away before its request body arrived."""


class _Response:
    """A complete response: status, headers (lower-case names) and body."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: int, headers: list[tuple[str, str]] | None = None, body: bytes = b""
    ) -> None:
        self.status = status
        self.headers = headers if headers is not None else []
        self.body = body


def _error(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> _Response:
    body = json.dumps({"error": message}).encode()
    return _Response(
        status,
        [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            *headers,
        ],
        body,
    )


def _etag(body: bytes) -> str:
    """A strong entity tag: a hash of the content, the same on every replica."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _content_type(name: str) -> str:
    suffix = os.path.splitext(name)[1].lower()
    if suffix in _TYPES:
        return _TYPES[suffix]
    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if guessed is None or encoding is not None:
        return "application/octet-stream"
    return guessed


def _split_path(raw_path: bytes) -> list[str]:
    """Split a raw request path into decoded segments, refusing anything dubious.

    The path is split on ``/`` *before* percent-decoding, so that an encoded
    ``/`` cannot join segments. Nothing is cleaned up: a path that needs it
    is refused. A trailing ``/`` leaves an empty last segment (a directory).

    Raises:
        _Refused: 400 for a malformed or escaping path.
    """
    if not raw_path.startswith(b"/"):
        raise _Refused(400, "the request path must start with '/'")
    if len(raw_path) > 3 * MAX_PATH_LENGTH:
        raise _Refused(400, f"the request path is longer than {MAX_PATH_LENGTH} characters")
    if b"\\" in raw_path or b"%5c" in raw_path.lower():
        raise _Refused(400, "backslashes are not allowed in the path")
    raw_segments = raw_path[1:].split(b"/")
    segments = []
    for index, raw in enumerate(raw_segments):
        try:
            segment = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise _Refused(400, "the path is not valid UTF-8") from None
        last = index == len(raw_segments) - 1
        if "/" in segment:
            raise _Refused(400, "encoded '/' (%2F) is not allowed in the path")
        if segment in (".", "..") or (segment == "" and not last):
            raise _Refused(400, "empty, '.' and '..' path segments are not allowed")
        if any(ord(ch) < 0x20 or ch == "\x7f" for ch in segment):
            raise _Refused(400, "control characters (NUL, ...) are not allowed in the path")
        if len(segment.encode()) > MAX_NAME_LENGTH:
            raise _Refused(400, f"a path segment is longer than {MAX_NAME_LENGTH} bytes")
        segments.append(segment)
    return segments


def _inside(root: str, real: str) -> str | None:
    """Return ``real`` relative to ``root`` when inside it and not dot-named, else None."""
    if real == root or not real.startswith(root.rstrip(os.sep) + os.sep):
        return None
    rel = real[len(root.rstrip(os.sep)) + 1 :]
    if any(part.startswith(".") for part in rel.split(os.sep)):
        return None
    return rel


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


async def _maybe_thread(size: int, func: Callable[..., T], *args: Any) -> T:
    """Call ``func`` inline for small work, in a thread for large (``size`` bytes)."""
    if size <= _INLINE_BYTES:
        return func(*args)
    return await asyncio.to_thread(func, *args)


def _not_modified(headers: dict[str, str], etag: str, mtime: float) -> bool:
    """Evaluate ``If-None-Match`` or, only when absent, ``If-Modified-Since`` (RFC 9110)."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        for candidate in if_none_match.split(","):
            candidate = candidate.strip()
            if candidate.startswith("W/"):  # weak comparison for GET and HEAD
                candidate = candidate[2:]
            if candidate in ("*", etag):
                return True
        return False
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # an invalid date is ignored, as RFC 9110 says
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.timezone.utc)
    return int(mtime) <= since.timestamp()


class ResultsApp:
    """The ASGI application that :func:`create_app` returns."""

    def __init__(
        self,
        results_dir: Path,
        *,
        cors_origins: Sequence[str] = (),
        put_token: str | None = None,
        max_put_bytes: int = DEFAULT_MAX_PUT_BYTES,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        cache_policy: CachePolicy | None = None,
    ) -> None:
        self.root = os.path.realpath(results_dir)
        if not os.path.isdir(self.root):
            raise ConfigError(f"results directory {results_dir} does not exist")
        origins = set()
        for origin in cors_origins:
            if origin != "*" and origin != "null" and not _ORIGIN.fullmatch(origin.rstrip("/")):
                raise ConfigError(
                    f"cors_origin: expected '*' or an origin such as https://portal.example.org, "
                    f"got {origin!r}"
                )
            origins.add(origin.rstrip("/").lower())
        self.cors_any = "*" in origins
        self.cors_origins = frozenset(origins - {"*"})
        if put_token is not None and not put_token:
            raise ConfigError("put_token must not be empty")
        if max_put_bytes < 1 or max_file_bytes < 1:
            raise ConfigError("max_put_bytes and max_file_bytes must be at least 1")
        self.put_token = put_token.encode() if put_token is not None else None
        self.max_put_bytes = max_put_bytes
        self.max_file_bytes = max_file_bytes
        self.methods = (*_READ_METHODS, "PUT") if put_token is not None else _READ_METHODS
        self.allow = ", ".join(self.methods)
        self.cache_policy = cache_policy if cache_policy is not None else CachePolicy()
        self._statuses = StatusMemo()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are switched off in run_server
        method: str = scope["method"]
        headers = _headers(scope)
        try:
            response = await self._handle(method, scope, headers, receive)
        except _Refused as exc:
            response = _error(exc.status, exc.message, exc.headers)
            if exc.status >= 500:
                log.error(
                    "request_failed",
                    method=method,
                    path=scope.get("path"),
                    status=exc.status,
                    error=exc.message,
                )
        except _Disconnected:
            log.info("client_disconnected", method=method, path=scope.get("path"))
            return
        except Exception:
            log.exception("request_failed", method=method, path=scope.get("path"))
            response = _error(500, "internal server error")
        if response.status == 404:
            response.headers = [(k, v) for k, v in response.headers if k != "cache-control"] + [
                ("cache-control", cache_control(self.cache_policy, 404, None))
            ]
        response.headers += self._cors(headers.get("origin"))
        if response.status not in (204, 304):
            response.headers.append(("content-length", str(len(response.body))))
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers
                ],
            }
        )
        body = b"" if method == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})
        log.debug(
            "request_served",
            method=method,
            path=scope.get("path"),
            status=response.status,
            bytes=len(body),
        )

    async def _handle(
        self, method: str, scope: Scope, headers: dict[str, str], receive: Receive
    ) -> _Response:
        if method in ("GET", "HEAD"):
            raw_path = _raw_path(scope)
            if raw_path == b"/health":
                return self._health()
            return await self._get(raw_path, headers)
        if method == "OPTIONS":
            return self._options(headers)
        if method == "PUT" and self.put_token is not None:
            return await self._put(_raw_path(scope), headers, receive, scope)
        if method == "PUT":
            raise _Refused(
                405,
                "PUT is not enabled on this server (it needs a put token)",
                [("allow", self.allow)],
            )
        raise _Refused(405, f"method {method} is not allowed", [("allow", self.allow)])

    # -- reading -----------------------------------------------------------

    async def _get(self, raw_path: bytes, headers: dict[str, str]) -> _Response:
        segments = _split_path(raw_path)
        if not segments or segments[-1] == "":
            raise _Refused(404, "not found (directories are not listed)")
        if any(segment.startswith(".") for segment in segments):
            raise _Refused(404, "not found")
        real = os.path.realpath(os.path.join(self.root, *segments))
        if _inside(self.root, real) is None:
            raise _Refused(404, "not found")
        body, info = await self._read_file(real)
        etag = _etag(body) if len(body) <= _INLINE_BYTES else await asyncio.to_thread(_etag, body)
        known, status = self._statuses.get(etag)
        if not known:
            status = await _maybe_thread(len(body), document_status, body)
            self._statuses.put(etag, status)
        response_headers = [
            ("etag", etag),
            ("last-modified", email.utils.formatdate(info.st_mtime, usegmt=True)),
        ]
        if _not_modified(headers, etag, info.st_mtime):
            response_headers.append(
                ("cache-control", cache_control(self.cache_policy, 304, status))
            )
            return _Response(304, response_headers)
        response_headers.append(("cache-control", cache_control(self.cache_policy, 200, status)))
        response_headers += [
            ("content-type", _content_type(segments[-1])),
            ("x-content-type-options", "nosniff"),
        ]
        return _Response(200, response_headers, body)

    def _health(self) -> _Response:
        """Answer ``/health``: 200 while the results directory can be listed, else 503."""
        healthy = os.path.isdir(self.root) and os.access(self.root, os.R_OK | os.X_OK)
        body = json.dumps({"status": "ok" if healthy else "unhealthy"}).encode()
        if not healthy:
            log.warning("health_failed", results_dir=self.root)
        return _Response(
            200 if healthy else 503,
            [("content-type", "application/json"), ("cache-control", "no-store")],
            body,
        )

    async def _read_file(self, path: str) -> tuple[bytes, os.stat_result]:
        """Read a regular file whole; anything else (directory, FIFO, symlink) is a 404."""
        try:
            # O_NOFOLLOW: ``path`` is already resolved, a symlink here appeared since.
            # O_NONBLOCK: opening a FIFO must not hang the server.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO):
                log.warning("file_unreadable", path=path, error=exc.strerror)
            raise _Refused(404, "not found") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _Refused(404, "not found")
            if info.st_size > self.max_file_bytes:
                log.error(
                    "file_too_large", path=path, bytes=info.st_size, limit=self.max_file_bytes
                )
                raise _Refused(500, f"the file is larger than {self.max_file_bytes} bytes")
            body = await _maybe_thread(info.st_size, _read_whole, fd, info.st_size)
        finally:
            os.close(fd)
        return body, info

    def _options(self, headers: dict[str, str]) -> _Response:
        """Answer ``OPTIONS``: a CORS preflight when it is one, the allowed methods always."""
        response = _Response(204, [("allow", self.allow)])
        origin = headers.get("origin")
        if (
            origin is not None
            and "access-control-request-method" in headers
            and self._origin_allowed(origin)
        ):
            response.headers += [
                ("access-control-allow-methods", self.allow),
                ("access-control-allow-headers", _ALLOW_HEADERS),
                ("access-control-max-age", str(_PREFLIGHT_MAX_AGE)),
            ]
        return response

    def _origin_allowed(self, origin: str) -> bool:
        return self.cors_any or origin.lower() in self.cors_origins

    def _cors(self, origin: str | None) -> list[tuple[str, str]]:
        """CORS headers of every answer, for the request's ``Origin``."""
        if self.cors_any:
            return [
                ("access-control-allow-origin", "*"),
                ("access-control-expose-headers", _EXPOSE_HEADERS),
            ]
        if not self.cors_origins:
            return []
        # The answer depends on Origin even when it carries no CORS headers.
        headers = [("vary", "Origin")]
        if origin is not None and origin.lower() in self.cors_origins:
            headers += [
                ("access-control-allow-origin", origin),
                ("access-control-expose-headers", _EXPOSE_HEADERS),
            ]
        return headers

    # -- writing -----------------------------------------------------------

    async def _put(
        self, raw_path: bytes, headers: dict[str, str], receive: Receive, scope: Scope
    ) -> _Response:
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else None
        self._authorize(headers, peer)
        segments = _split_path(raw_path)
        rel = "/".join(segments)
        for segment in segments:
            if not is_safe_segment(segment):
                raise _Refused(
                    400,
                    f"path segment {segment!r} may hold only letters, digits and ._~@+=,- "
                    "and must not start with a dot",
                )
        if not rel.endswith(".json") or len(rel) > MAX_PATH_LENGTH:
            raise _Refused(
                400,
                f"a result path must end in .json and be at most "
                f"{MAX_PATH_LENGTH} characters, got {rel!r}",
            )
        # Symlinks already on disk are followed (as the file publisher does), but
        # must stay inside the results directory.
        real = os.path.realpath(os.path.join(self.root, *segments))
        if _inside(self.root, real) is None:
            raise _Refused(400, f"result path {rel!r} leads outside the results directory")
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise _Refused(400, "invalid Content-Length")
            if int(length) > self.max_put_bytes:
                raise _Refused(413, f"the body is larger than {self.max_put_bytes} bytes")
        body = await self._read_body(receive)
        try:
            await _maybe_thread(len(body), decode_result, body)
        except ValueError as exc:
            log.warning("put_refused", path=rel, client=peer, status=400, error=str(exc))
            raise _Refused(400, str(exc)) from None
        created = not os.path.lexists(real)
        try:
            await asyncio.to_thread(write_atomic, Path(real), body)
        except OSError as exc:
            log.error("result_write_failed", path=rel, error=exc.strerror or str(exc))
            raise _Refused(500, f"writing the result failed: {exc.strerror or exc}") from None
        log.info("result_stored", path=rel, bytes=len(body), created=created, client=peer)
        response_headers = [("etag", _etag(body)), ("cache-control", "no-store")]
        if created:
            return _Response(201, [*response_headers, ("location", "/" + rel)])
        return _Response(204, response_headers)

    def _authorize(self, headers: dict[str, str], peer: str | None) -> None:
        assert self.put_token is not None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        given = token.strip().encode("latin-1")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, self.put_token):
            reason = "wrong token" if scheme.lower() == "bearer" else "no bearer token"
            log.warning("put_refused", client=peer, status=401, error=reason)
            challenge = 'Bearer realm="jobrunner"'
            if scheme.lower() == "bearer":
                challenge += ', error="invalid_token"'
            raise _Refused(
                401,
                "a valid 'Authorization: Bearer <token>' is required",
                [("www-authenticate", challenge)],
            )

    async def _read_body(self, receive: Receive) -> bytes:
        """Receive the request body, refusing it (413) as soon as it exceeds the limit."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk: bytes = message.get("body", b"")
            if len(body) + len(chunk) > self.max_put_bytes:
                raise _Refused(413, f"the body is larger than {self.max_put_bytes} bytes")
            body += chunk
            if not message.get("more_body", False):
                return bytes(body)


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers by lower-case name; repeated headers joined with commas."""
    out: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def _raw_path(scope: Scope) -> bytes:
    """The request path as sent, before percent-decoding (``path`` when not given)."""
    raw = scope.get("raw_path")
    if raw:
        return bytes(raw).partition(b"?")[0]
    path: str = scope["path"]
    return path.encode("utf-8")


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """Answer an ASGI ``lifespan`` scope: nothing to set up or tear down."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(
    results_dir: Path,
    *,
    cors_origins: Sequence[str] = (),
    put_token: str | None = None,
    max_put_bytes: int = DEFAULT_MAX_PUT_BYTES,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    cache_policy: CachePolicy | None = None,
) -> ASGIApp:
    """Build the ASGI application serving ``results_dir``.

    Args:
        results_dir: the directory whose files are served (it must exist).
        cors_origins: origins whose scripts may read the documents (``*``: any).
        put_token: accept ``PUT`` of result documents with this bearer token;
            ``PUT`` is refused (405) when ``None``.
        max_put_bytes: largest ``PUT`` body accepted (413 above).
        max_file_bytes: largest file served (files are read whole).
        cache_policy: how long caches may keep finished documents and 404s
            (:class:`~jobrunner.caching.CachePolicy`; its defaults when None).

    Returns:
        An ASGI 3 application.

    Raises:
        ConfigError: the directory is missing, or an origin or limit is invalid.
    """
    return ResultsApp(
        results_dir,
        cors_origins=cors_origins,
        put_token=put_token,
        max_put_bytes=max_put_bytes,
        max_file_bytes=max_file_bytes,
        cache_policy=cache_policy,
    )


# -- running under uvicorn ---------------------------------------------------------


class _UvicornLogBridge(logging.Handler):
    """Forwards uvicorn's own (stdlib) warnings and errors as structlog events."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "error" if record.levelno >= logging.ERROR else "warning"
        getattr(log, level)("uvicorn_" + level, message=record.getMessage(), logger=record.name)


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so that a busy port is our error to report."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def run_server(config: Config) -> int:
    """Serve ``config.results_dir`` on ``config.host``:``config.port`` until SIGTERM/SIGINT.

    Uses ``cors_origin``, ``put_token``, ``max_put_bytes``, ``cache_finished``
    and ``cache_not_found`` from ``config``.
    The results directory is created when missing. On SIGTERM or SIGINT the
    server stops accepting connections, lets requests in flight finish (for
    at most a few seconds) and returns 0.

    Returns:
        The exit code: 0 after a clean shutdown, 1 when the server could not
        start (address in use, ...).

    Raises:
        ConfigError: no results directory, or it cannot be created.
    """
    import uvicorn  # the only module importing uvicorn; imported when serving only

    if config.results_dir is None:
        raise ConfigError("jobrunner serve needs --results-dir (the directory to serve)")
    results_dir = Path(config.results_dir)
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create results directory {results_dir}: {exc.strerror}"
        ) from None
    app = create_app(
        results_dir,
        cors_origins=config.cors_origin,
        put_token=config.put_token,
        max_put_bytes=config.max_put_bytes,
        cache_policy=CachePolicy(finished=config.cache_finished, not_found=config.cache_not_found),
    )
    try:
        sock = _bind(config.host, config.port)
    except OSError as exc:
        log.error(
            "serve_failed", host=config.host, port=config.port, error=exc.strerror or str(exc)
        )
        return 1
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,  # logging is configured by the CLI, with structlog
            access_log=False,
            lifespan="on",
            ws="none",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
        )
    )
    # uvicorn re-raises the signal that stopped it once it has shut down;
    # these handlers take it, so that a signal ends in a clean exit 0.
    received: list[int] = []

    def note_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    uvicorn_logger = logging.getLogger("uvicorn")
    bridge = _UvicornLogBridge(logging.WARNING)
    uvicorn_logger.addHandler(bridge)
    propagate, uvicorn_logger.propagate = uvicorn_logger.propagate, False
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, note_signal)
    bound = sock.getsockname()
    log.info(
        "serve_started",
        results_dir=str(results_dir),
        host=bound[0],
        port=bound[1],
        cors_origins=list(config.cors_origin),
        put=config.put_token is not None,
    )
    code = 0
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits when it cannot start
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        uvicorn_logger.removeHandler(bridge)
        uvicorn_logger.propagate = propagate
        sock.close()
    signals = [signal.Signals(sig).name for sig in received]
    log.info("serve_stopped", signal=signals[0] if signals else None, exit_code=code)
    return code
