"""Small HTTP helpers shared by the read and write sides: responses, errors, ETags."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["Refused", "error_response", "etag_of", "respond"]

Headers = Iterable[tuple[str, str]]


class Refused(HTTPException):
    """An answer other than success: status, message for the JSON body, extra headers."""

    def __init__(self, status: int, message: str, headers: Headers = ()) -> None:
        super().__init__(status, message, dict(headers) or None)


def etag_of(body: bytes) -> str:
    """A strong entity tag: a hash of the content, the same on every replica."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def respond(
    request: Request, status: int, headers: Headers = (), body: bytes | None = None
) -> Response:
    """A complete response; for ``HEAD`` the same headers (Content-Length too) without body."""
    head = dict(headers)
    if body is not None and status not in (204, 304):
        head["content-length"] = str(len(body))
    if request.method == "HEAD":
        body = None
    return Response(body, status, head)


def error_response(request: Request, status: int, message: str, headers: Headers = ()) -> Response:
    """The JSON error document ``{"error": message}`` every failure answers."""
    return respond(
        request,
        status,
        [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            *headers,
        ],
        json.dumps({"error": message}).encode(),
    )
