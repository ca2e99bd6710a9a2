"""The ``http`` publisher: ``PUT`` the result document to its result URL.

A results host (``jobrunner serve --put-token TOKEN``, or any server that
takes ``PUT`` and writes atomically) collects the documents of many
workers. The publisher PUTs only to the origins listed with
``--put-origin`` and sends ``Authorization: Bearer`` with ``--http-token``;
the result URL itself comes from an untrusted job document, so its path is
held to the same rules as the file publisher's (no ``..``, no dot-named
segments, no query).

How answers map to failures::

    2xx                          published
    3xx                          PublishFailed, permanent (redirects are not followed)
    408, 429, 5xx                PublishFailed, retryable (the host may recover)
    409                          ResultBlocked, permanent (a directory or file in the way)
    other 4xx                    PublishFailed, permanent (token, path or document refused)
    connect/read/write time-out,
    connection error             PublishFailed, retryable

One :class:`httpx.Client` per publisher (that is, per child process) keeps
connections to the results host open across documents and jobs.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from jobrunner import __version__
from jobrunner.config import Config
from jobrunner.errors import ConfigError, PublishFailed, ResultBlocked, ResultRefused
from jobrunner.resultsdir import relative_result_path

__all__ = ["HttpPublisher", "parse_origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Characters of the host's answer quoted in a failure message.
_ANSWER_CHARS = 300


def parse_origin(text: str) -> tuple[str, str, int]:
    """Split an origin such as ``https://results.example:8443`` into (scheme, host, port).

    Raises:
        ValueError: not an http(s) origin (a path, query, fragment or user info
            is not allowed; a trailing ``/`` is).
    """
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("expected an http:// or https:// origin")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("an origin has no path, query or fragment")
    if parts.username is not None or parts.password is not None:
        raise ValueError("an origin has no user name or password (use --http-token)")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid port: {exc}") from None
    if not parts.hostname:
        raise ValueError("the origin has no host")
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


class HttpPublisher:
    """PUTs result documents to allowed origins with a bearer token.

    Args:
        config: uses ``put_origin`` (required), ``http_token`` (required),
            ``http_timeout`` and ``connect_timeout``.
        transport: an httpx transport, for tests (``httpx.MockTransport``).

    Raises:
        ConfigError: no ``--put-origin``, an invalid one, or no ``--http-token``.
    """

    def __init__(self, config: Config, *, transport: httpx.BaseTransport | None = None) -> None:
        if not config.put_origin:
            raise ConfigError(
                "the http publisher needs --put-origin (the origin of the results host, "
                "e.g. https://results.example.org; repeatable)"
            )
        origins = set()
        for origin in config.put_origin:
            try:
                origins.add(parse_origin(origin))
            except ValueError as exc:
                raise ConfigError(f"put_origin: {origin!r}: {exc}") from None
        if not config.http_token:
            raise ConfigError(
                "the http publisher needs --http-token (or JOBRUNNER_HTTP_TOKEN): "
                "the bearer token the results host accepts"
            )
        self.origins = frozenset(origins)
        timeout = httpx.Timeout(
            config.http_timeout, connect=min(config.connect_timeout, config.http_timeout)
        )
        # trust_env=False: no proxy or .netrc from the environment may see the token.
        self.client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            transport=transport,
            headers={
                "authorization": f"Bearer {config.http_token}",
                "content-type": "application/json",
                "user-agent": f"jobrunner/{__version__}",
            },
        )

    def check(self, url: str) -> None:
        """Refuse a result URL whose origin is not allowed, or whose path is unsafe.

        Raises:
            ResultRefused: naming the URL and the allowed origins.
        """
        parts = urlsplit(url)
        try:
            origin = parse_origin(f"{parts.scheme}://{parts.netloc}")
        except ValueError:
            origin = None
        if origin not in self.origins:
            allowed = ", ".join(sorted(f"{s}://{h}:{p}" for s, h, p in self.origins))
            raise ResultRefused(
                f"result URL {url!r} is not on an origin the http publisher may PUT to "
                f"(--put-origin: {allowed})"
            )
        # The path rules of the file publisher: below the origin's root, nothing unsafe.
        relative_result_path(url, f"{parts.scheme}://{parts.netloc}/")

    def publish(self, url: str, body: bytes, *, final: bool = True) -> None:
        """PUT ``body`` to ``url``; the results host writes it atomically.

        Raises:
            ResultRefused: the URL is not allowed.
            ResultBlocked: the host answered 409 (a directory or file in the way).
            PublishFailed: retryable for 408, 429, 5xx and network errors,
                permanent for other 4xx and 3xx answers; the status is in the message.
        """
        self.check(url)
        try:
            response = self.client.put(url, content=body)
        except httpx.TimeoutException as exc:
            raise PublishFailed(f"PUT {url} timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise PublishFailed(f"PUT {url} failed: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        answer = response.text[:_ANSWER_CHARS].strip()
        message = f"PUT {url} answered {status} {response.reason_phrase}"
        if answer:
            message += f": {answer}"
        if status == 409:  # a directory or file stands in the document's way on the host
            raise ResultBlocked(message)
        retryable = status >= 500 or status in (408, 429)
        if status in (401, 403):
            message += " (check --http-token against the results host's --put-token)"
        raise PublishFailed(message, retryable=retryable)

    def close(self) -> None:
        """Close the connections to the results host."""
        self.client.close()
