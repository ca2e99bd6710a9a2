"""Writing: ``PUT`` of result documents by workers holding the bearer token."""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import Response

from jobrunner.codec import decode_result
from jobrunner.resultsdir import PathConflict, ResultsDir, UnsafePath, check_result_segments
from jobrunner.serve._files import maybe_thread, segments_of
from jobrunner.serve._http import Headers, Refused, etag_of, respond
from jobrunner.serve._logs import log

__all__ = ["put"]

# The body was not read to its end: the connection cannot carry another request.
_CLOSE = ("connection", "close")


def _peer(request: Request) -> str | None:
    client = request.client
    return f"{client.host}:{client.port}" if client else None


def authorize(request: Request, token: bytes) -> None:
    """Check ``Authorization: Bearer <token>`` in constant time.

    Raises:
        Refused: 401 with a ``WWW-Authenticate`` challenge.
    """
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    bearer = scheme.lower() == "bearer"
    if bearer and hmac.compare_digest(given.strip().encode("latin-1"), token):
        return
    reason = "wrong token" if bearer else "no bearer token"
    log.warning("put_refused", client=_peer(request), status=401, error=reason)
    challenge = 'Bearer realm="jobrunner"' + (', error="invalid_token"' if bearer else "")
    raise Refused(
        401,
        "a valid 'Authorization: Bearer <token>' is required",
        [("www-authenticate", challenge), _CLOSE],
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """Receive the request body, refusing it (413) as soon as it exceeds ``limit``."""
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise Refused(413, f"the body is larger than {limit} bytes", [_CLOSE])
        body += chunk
    return bytes(body)


def _conflict(request: Request, rel: str, blocker: str, headers: Headers = ()) -> Refused:
    """409 for a path that can never be written; the log says what is in the way."""
    log.warning("put_refused", path=rel, client=_peer(request), status=409, error=blocker)
    # The message names no server path: only what the client sent.
    return Refused(
        409,
        f"{rel} cannot be written: a directory stands at its place, "
        "or a file where one of its directories must be",
        headers,
    )


async def put(
    request: Request, results: ResultsDir, token: bytes, max_bytes: int, body_timeout: float
) -> Response:
    """Store the body of a ``PUT`` atomically at its path below ``results``.

    Raises:
        Refused: 401 (token), 400 (path or document), 408 (body too slow),
            409 (a directory or file in the way), 413 (too large), 500 (disk).
        ClientDisconnect: the client went away before its body arrived.
    """
    authorize(request, token)
    try:
        rel = check_result_segments(segments_of(request))
        if not rel.endswith(".json"):
            raise UnsafePath(f"a result path must end in .json, got {rel!r}")
        # Before reading the body: a symlink leading out (400), or a path that can
        # never be written (409). The write checks again as it writes.
        blocker = results.check(rel)
    except UnsafePath as exc:
        raise Refused(400, str(exc), [_CLOSE]) from None
    if blocker is not None:
        raise _conflict(request, rel, blocker, [_CLOSE])
    length = request.headers.get("content-length")
    if length is not None and not length.isdigit():
        raise Refused(400, "invalid Content-Length", [_CLOSE])
    if length is not None and int(length) > max_bytes:
        raise Refused(413, f"the body is larger than {max_bytes} bytes", [_CLOSE])
    try:
        body = await asyncio.wait_for(_read_body(request, max_bytes), body_timeout)
    except asyncio.TimeoutError:
        log.warning("put_refused", path=rel, client=_peer(request), status=408, error="slow body")
        raise Refused(408, f"the body did not arrive within {body_timeout:g} s", [_CLOSE]) from None
    try:
        await maybe_thread(len(body), decode_result, body)
    except ValueError as exc:
        log.warning("put_refused", path=rel, client=_peer(request), status=400, error=str(exc))
        raise Refused(400, str(exc)) from None
    try:
        created = await asyncio.to_thread(results.write, rel, body)
    except UnsafePath as exc:  # a symlink appeared meanwhile
        raise Refused(400, str(exc)) from None
    except PathConflict as exc:
        raise _conflict(request, rel, exc.strerror or str(exc)) from None
    except OSError as exc:
        log.error("result_write_failed", path=rel, error=exc.strerror or str(exc))
        raise Refused(500, f"writing the result failed: {exc.strerror or exc}") from None
    log.info("result_stored", path=rel, bytes=len(body), created=created, client=_peer(request))
    headers = [("etag", etag_of(body)), ("cache-control", "no-store")]
    if created:
        return respond(request, 201, [*headers, ("location", "/" + rel)], b"")
    return respond(request, 204, headers)
