"""The ASGI application: Starlette routing and CORS around the read and write sides."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from jobrunner.caching import CachePolicy, StatusMemo, cache_control
from jobrunner.errors import ConfigError
from jobrunner.resultsdir import ResultsDir
from jobrunner.serve import _files, _put
from jobrunner.serve._http import error_response, respond
from jobrunner.serve._logs import log

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_PUT_BYTES",
    "create_app",
]

_MIB = 1024 * 1024
#: Largest request body ``PUT`` accepts unless told otherwise.
DEFAULT_MAX_PUT_BYTES = 16 * _MIB
#: Largest file ``GET`` reads (files are read whole, to hash them for the ETag).
DEFAULT_MAX_FILE_BYTES = 64 * _MIB
#: Seconds a ``PUT`` body may take to arrive, once its headers are in.
DEFAULT_BODY_TIMEOUT = 60.0
#: How long browsers may cache a preflight answer (seconds).
_PREFLIGHT_MAX_AGE = 86400
_ALLOW_HEADERS = ["Authorization", "Cache-Control", "If-Modified-Since", "If-None-Match"]
_EXPOSE_HEADERS = ["ETag", "Last-Modified"]
_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s?#]+")


@attrs.frozen
class _Settings:
    """What the endpoint needs, fixed when the application is built."""

    results: ResultsDir
    put_token: bytes | None
    max_put_bytes: int
    max_file_bytes: int
    body_timeout: float
    allow: str
    cache: CachePolicy
    statuses: StatusMemo  # document status by ETag: each document is parsed once


def _origins(cors_origins: Sequence[str]) -> list[str]:
    """Normalised CORS origins (``*`` stays), refusing anything that is not an origin."""
    origins = []
    for origin in cors_origins:
        trimmed = origin.rstrip("/")
        if origin != "*" and trimmed != "null" and not _ORIGIN.fullmatch(trimmed):
            raise ConfigError(
                f"cors_origin: expected '*' or an origin such as https://portal.example.org, "
                f"got {origin!r}"
            )
        origins.append(trimmed.lower() if origin != "*" else "*")
    return origins


async def _endpoint(request: Request) -> Response:
    """Every path: dispatch on the method; errors become JSON documents."""
    settings: _Settings = request.app.state.settings
    method = request.method
    try:
        if method in ("GET", "HEAD"):
            return await _files.get(
                request,
                settings.results,
                settings.max_file_bytes,
                settings.cache,
                settings.statuses,
            )
        if method == "PUT" and settings.put_token is not None:
            return await _put.put(
                request,
                settings.results,
                settings.put_token,
                settings.max_put_bytes,
                settings.body_timeout,
            )
        # OPTIONS without a CORS preflight (CORSMiddleware answers those).
        return respond(request, 204, [("allow", settings.allow)])
    except HTTPException:
        raise
    except ClientDisconnect:
        log.limited_info("client_disconnected", method=method, path=request.url.path)
        return respond(request, 400, [("connection", "close")])
    except Exception:
        log.exception("request_failed", method=method, path=request.url.path)
        return error_response(request, 500, "internal server error")


async def _http_error(request: Request, exc: Exception) -> Response:
    """Render an ``HTTPException`` (ours, or routing's 405) as a JSON error."""
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 405:
        settings: _Settings = request.app.state.settings
        message = f"method {request.method} is not allowed"
        if request.method == "PUT":
            message = "PUT is not enabled on this server (it needs a put token)"
        headers = {"allow": settings.allow}  # routing's own Allow is in a different case
    else:
        headers = dict(exc.headers or {})
    if exc.status_code == 404:  # "not published yet": caches may keep that briefly
        settings = request.app.state.settings
        headers["cache-control"] = cache_control(settings.cache, 404, None)
    if exc.status_code >= 500:
        log.error("request_failed", method=request.method, path=request.url.path, error=message)
    return error_response(request, exc.status_code, message, headers.items())


def create_app(
    results_dir: Path,
    *,
    cors_origins: Sequence[str] = (),
    put_token: str | None = None,
    max_put_bytes: int = DEFAULT_MAX_PUT_BYTES,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    cache_policy: CachePolicy | None = None,
) -> Starlette:
    """Build the ASGI application serving ``results_dir``.

    Args:
        results_dir: the directory whose files are served (it must exist).
        cors_origins: origins whose scripts may read the documents (``*``: any).
        put_token: accept ``PUT`` of result documents with this bearer token;
            ``PUT`` is refused (405) when ``None``.
        max_put_bytes: largest ``PUT`` body accepted (413 above).
        max_file_bytes: largest file served (files are read whole).
        body_timeout: seconds a ``PUT`` body may take to arrive (408 after).
        cache_policy: how long caches may keep finished documents and 404s
            (:class:`~jobrunner.caching.CachePolicy`; its defaults when None).

    Returns:
        An ASGI 3 application.

    Raises:
        ConfigError: the directory is missing, or an origin or limit is invalid.
    """
    results = ResultsDir(results_dir)
    if put_token is not None and not put_token:
        raise ConfigError("put_token must not be empty")
    if max_put_bytes < 1 or max_file_bytes < 1:
        raise ConfigError("max_put_bytes and max_file_bytes must be at least 1")
    if body_timeout <= 0:
        raise ConfigError("body_timeout must be above 0")
    methods = ["GET", "HEAD", "OPTIONS"] + (["PUT"] if put_token is not None else [])
    settings = _Settings(
        results=results,
        put_token=put_token.encode() if put_token is not None else None,
        max_put_bytes=max_put_bytes,
        max_file_bytes=max_file_bytes,
        body_timeout=body_timeout,
        allow=", ".join(methods),
        cache=cache_policy if cache_policy is not None else CachePolicy(),
        statuses=StatusMemo(),
    )
    middleware = []
    origins = _origins(cors_origins)
    if origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=methods,
                allow_headers=_ALLOW_HEADERS,
                expose_headers=_EXPOSE_HEADERS,
                max_age=_PREFLIGHT_MAX_AGE,
            )
        )
    app = Starlette(
        routes=[
            Route("/health", _files.health, methods=["GET", "HEAD"]),
            Route("/{path:path}", _endpoint, methods=methods),
        ],
        middleware=middleware,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.settings = settings
    return app
