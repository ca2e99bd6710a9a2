"""Fetching job inputs: the input policy applied to every connection and every redirect.

Threat model: input URLs come from untrusted job documents, and so do the
answers of the servers they name. A :class:`Fetcher` therefore applies the
:class:`~jobrunner.policy.UrlPolicy` to the first URL and to every redirect
hop (redirects are followed here, not by the HTTP client), connects only to
addresses the policy checked (the connection is opened by resolving,
checking and connecting in one step, so there is no DNS-rebinding window,
while the ``Host`` header and TLS SNI / certificate checks keep the original
name), bounds every fetch in size (counted after content decoding, which is
done here in pieces of at most 64 KiB, so a gzip bomb stops at the limit
having cost no more memory than the limit itself) and in time (connect and
read time-outs plus a total deadline, so a server dripping a byte a second
fails too), and decodes JSON strictly (no NaN, bounded nesting). Proxy
environment variables are ignored, and no cookies are kept or sent.

The HTTP client is :mod:`jobrunner._http1`, a small HTTP/1.1 client with
keep-alive connections (``ssl`` is imported on the first ``https`` input
only). Its errors are translated here; nothing above catches them::

    4xx answer (but 408, 429)             InputUnavailable   permanent
    5xx, 408, 429, time-out, deadline,
      connection or protocol error        InputFailed        retryable
    body over max_input_bytes             InputTooLarge      permanent
    undecodable body (JSON, gzip),
      stacked or unknown Content-Encoding InputInvalid       permanent
    refused by the URL policy             InputRefused       permanent

One :class:`Fetcher` (one connection pool) lives in each child process, so
keep-alive connections are reused across jobs.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import stat
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from jobrunner import __version__, _http1
from jobrunner._log import get_logger
from jobrunner.codec import loads_strict
from jobrunner.config import Config
from jobrunner.errors import (
    ConfigError,
    InputFailed,
    InputInvalid,
    InputRefused,
    InputTooLarge,
    InputUnavailable,
    JobFailure,
)
from jobrunner.job import InputProvenance
from jobrunner.policy import Target, UrlPolicy

if TYPE_CHECKING:
    import concurrent.futures
    import ssl

    import httpx

__all__ = ["FetchedInput", "Fetcher", "is_json_type"]

log = get_logger(__name__)

_REDIRECTS = (301, 302, 303, 307, 308)
_RETRYABLE_4XX = (408, 429)  # "request timeout" and "too many requests": try again later
_DRAIN_BYTES = 64 * 1024  # read this much of an unused body so the connection is reused
_MAX_THREADS = 8
_ACCEPT = "application/json, */*;q=0.5"
_ENCODINGS = ("gzip", "deflate")  # what we decode (zlib); br, zstd and others are refused
_INFLATE_PIECE = 64 * 1024  # most bytes one decompression step may produce
_HEADERS = {
    "User-Agent": f"jobrunner/{__version__}",
    "Accept": _ACCEPT,
    "Accept-Encoding": "gzip, deflate",
}


def is_json_type(content_type: str | None) -> bool:
    """True for ``application/json`` and structured ``*/*+json`` media types."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.endswith("+json") and "/" in media)


@attrs.frozen(kw_only=True)
class FetchedInput:
    """One fetched input: the body as received, its decoded value and fingerprints.

    Attributes:
        url: the URL as the job named it (before redirects).
        body: the body after content decoding (gzip, deflate).
        content_type: the ``Content-Type`` the server sent (for ``file:``
            URLs, guessed from the file name), or None.
        value: parsed JSON for JSON content types, else ``body``.
        sha256: hex SHA-256 of ``body``.
        etag, last_modified: the validators the server sent, if any.
    """

    url: str
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    content_type: str | None
    value: Any = attrs.field(repr=False)
    sha256: str
    etag: str | None = None
    last_modified: str | None = None

    def provenance(self, name: str | None) -> InputProvenance:
        """The result document's record of this input, under input ``name``."""
        return InputProvenance(
            url=self.url,
            sha256=self.sha256,
            name=name,
            etag=self.etag,
            last_modified=self.last_modified,
        )


# -- the fetcher ---------------------------------------------------------------------


class Fetcher:
    """Fetches input URLs under the input policy; one per (child) process.

    Holds one pool of keep-alive connections, reused across fetches and
    jobs, and a small thread pool for jobs with several inputs.

    Args:
        config: the worker's settings (``allow_host``, ``allow_file_inputs``,
            ``max_redirects``, ``max_input_bytes``, ``connect_timeout``,
            ``read_timeout``, ``fetch_timeout``).
        transport: an httpx transport to answer requests instead of the
            network (tests: ``httpx.MockTransport``). Its connections are out
            of our hands, so each hop's host is then resolved and checked
            before the request.
        resolver: resolves ``(host, port)`` to IP address strings;
            ``getaddrinfo`` when None.
        ssl_context: the TLS settings for ``https`` inputs; when None,
            certificates are verified against certifi's CA bundle (the
            system's if certifi is missing), created on the first ``https``
            connection.

    Raises:
        ConfigError: an invalid ``allow_host`` entry.
    """

    def __init__(
        self,
        config: Config,
        *,
        transport: httpx.BaseTransport | None = None,
        resolver: Callable[[str, int], list[str]] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._config = config
        try:
            self._policy = UrlPolicy(
                config.allow_host,
                allow_file_inputs=config.allow_file_inputs,
                resolver=resolver,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self._pinned = transport is None
        self._client: _http1.Pool | _HttpxClient
        if transport is None:
            lines = "".join(f"{name}: {value}\r\n" for name, value in _HEADERS.items())
            self._client = _http1.Pool(self._connect, lines, ssl_context)
        else:
            self._client = _HttpxClient(transport)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def policy(self) -> UrlPolicy:
        """The input URL policy this fetcher enforces."""
        return self._policy

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool and the thread pool."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    # -- public API ------------------------------------------------------------

    def check_url(self, url: str) -> None:
        """Apply the input policy to ``url`` without connecting (to fail early).

        Host names are resolved and every address is checked; a name that
        does not resolve is not a policy matter and is left for :meth:`fetch`.

        Raises:
            InputRefused: naming the URL, the address and the rule.
        """
        if _scheme(url) == "file":
            self._policy.file_path(url)
            return
        target = self._parse(url, None)[1]
        try:
            self._policy.resolve(target)
        except OSError:
            pass

    def fetch(self, url: str) -> FetchedInput:
        """Fetch one input URL and decode it.

        Returns:
            The body, its decoded value (JSON for JSON content types, else
            bytes) and its fingerprints.

        Raises:
            InputRefused: the URL or a redirect is refused by the policy.
            InputUnavailable: the server answered 4xx (or too many redirects).
            InputFailed: 5xx, time-out, deadline or connection error (retryable).
            InputTooLarge: the decoded body exceeds ``max_input_bytes``.
            InputInvalid: a JSON body that is not strict JSON.
        """
        if _scheme(url) == "file":
            return self._fetch_file(url)
        return self._fetch_http(url)

    def fetch_all(self, urls: Mapping[str | None, str]) -> dict[str | None, FetchedInput]:
        """Fetch several named inputs concurrently (one input: in this thread).

        Returns:
            The fetched inputs by name, in the order of ``urls``.

        Raises:
            JobFailure: the failure of the first input that failed permanently,
                else of the first that failed; its message names the input.
        """
        if len(urls) <= 1:
            return {name: self.fetch(url) for name, url in urls.items()}
        executor = self._pool()
        futures = {name: executor.submit(self.fetch, url) for name, url in urls.items()}
        results: dict[str | None, FetchedInput] = {}
        failures: list[tuple[str | None, JobFailure]] = []
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except JobFailure as exc:
                failures.append((name, exc))
        if failures:
            permanent = [(n, e) for n, e in failures if not e.retryable]
            name, failure = (permanent or failures)[0]
            raise type(failure)(f"input {name!r}: {failure.message}") from failure
        return results

    # -- http(s) -----------------------------------------------------------------

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        import concurrent.futures  # most jobs have one input: no threads

        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=_MAX_THREADS, thread_name_prefix="jobrunner-fetch"
                )
            return self._executor

    def _parse(self, url: str, job_url: str | None) -> tuple[_http1.Url, Target]:
        """Parse and statically check ``url``; ``job_url`` is set when it is a redirect target."""
        try:
            parsed = _http1.parse_url(url)
        except _http1.BadHost as exc:
            raise InputRefused(f"input URL {url!r} refused: not a valid URL ({exc})") from None
        except ValueError as exc:
            if job_url is not None:
                raise InputUnavailable(
                    f"input {job_url}: redirect to an invalid URL {url!r} ({exc})"
                ) from None
            raise InputRefused(f"input URL {url!r} refused: not a valid URL ({exc})") from None
        target = self._policy.check_target(
            url,
            scheme=parsed.scheme,
            host=parsed.host,
            port=parsed.port,
            credentials=parsed.credentials,
            redirect=job_url is not None,
        )
        return parsed, target

    def _connect(self, url: _http1.Url, deadline: float, timeout: float) -> socket.socket:
        """Open a connection for ``url``: resolve, check every address, connect to a checked one.

        Raises:
            InputRefused: the host or one of its addresses is refused.
            _http1.WireError: the name does not resolve, or no address accepts.
        """
        target = self._policy.check_target(
            url.text, scheme=url.scheme, host=url.host, port=url.port
        )
        try:
            addresses = self._policy.resolve(target)
        except OSError as exc:
            raise _http1.WireError(f"cannot resolve {url.host} ({exc})") from exc
        last: OSError | None = None
        for address in addresses:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _http1.TimedOut("the fetch deadline passed while connecting")
            try:
                return _http1.open_socket(str(address), target.port, min(timeout, left))
            except TimeoutError as exc:
                last = exc
                if len(addresses) == 1:
                    raise _http1.TimedOut(
                        f"cannot connect to {address} port {target.port} in time"
                    ) from exc
            except OSError as exc:
                last = exc
        assert last is not None  # resolve() returns at least one address
        shown = ", ".join(str(a) for a in addresses)
        raise _http1.WireError(
            f"cannot connect to {url.host} ({shown}) port {target.port} ({_describe(last)})"
        ) from last

    def _fetch_http(self, url: str) -> FetchedInput:
        config = self._config
        deadline = time.monotonic() + config.fetch_timeout
        current = url
        hop = 0
        try:
            for hop in range(config.max_redirects + 1):
                parsed, target = self._parse(current, url if hop else None)
                if not self._pinned:
                    self._resolve_unpinned(target)
                if time.monotonic() >= deadline:
                    raise self._deadline_failure(url)
                answer = self._client.get(
                    parsed, deadline, config.connect_timeout, config.read_timeout
                )
                try:
                    status = answer.status
                    log.debug("input_answer", url=current, status=status)
                    location = answer.headers.get("location")
                    if status in _REDIRECTS and location:
                        self._drain(answer, deadline)
                        try:
                            current = _http1.join_url(current, location)
                        except ValueError as exc:
                            raise InputUnavailable(
                                f"input {url}: redirect to an invalid URL {location!r} ({exc})"
                            ) from None
                        continue
                    if not 200 <= status < 300:
                        self._drain(answer, deadline)
                        raise self._status_failure(url, current, answer)
                    return self._read(url, answer, deadline)
                finally:
                    answer.close()
        except InputRefused as exc:
            if hop == 0:
                raise
            raise InputRefused(f"input {url} redirects to a refused URL: {exc.message}") from None
        except _http1.TimedOut as exc:
            if time.monotonic() >= deadline:
                raise self._deadline_failure(url) from exc.__cause__ or exc
            raise InputFailed(
                f"input {url}: the server did not answer in time ({exc}); the job will be retried"
            ) from exc.__cause__ or exc
        except _http1.WireError as exc:
            raise InputFailed(f"input {url}: {exc}; the job will be retried") from (
                exc.__cause__ or exc
            )
        except zlib.error as exc:
            raise InputInvalid(
                f"input {url}: the body cannot be decoded ({exc}); "
                "the server sent a corrupt compressed body"
            ) from exc
        raise InputUnavailable(
            f"input {url}: more than {config.max_redirects} redirects (last to {current}); "
            "use the final URL in the job or raise --max-redirects"
        )

    def _resolve_unpinned(self, target: Target) -> None:
        try:
            self._policy.resolve(target)
        except OSError as exc:
            raise InputFailed(
                f"input {target.url}: cannot resolve host {target.host!r} ({exc}); "
                "the job will be retried"
            ) from exc

    def _deadline_failure(self, url: str) -> InputFailed:
        return InputFailed(
            f"input {url}: the fetch did not complete within the "
            f"{self._config.fetch_timeout:g} s deadline (fetch_timeout); the server is too slow, "
            "the job will be retried"
        )

    def _status_failure(self, url: str, current: str, answer: _http1.Answer) -> JobFailure:
        code = answer.status
        status = f"HTTP {code} {answer.reason}".rstrip()
        where = url if current == url else f"{url} (redirected to {current})"
        if code >= 500 or code in _RETRYABLE_4XX:
            return InputFailed(
                f"input {where}: the server answered {status}; the job will be retried"
            )
        if code >= 400:
            return InputUnavailable(
                f"input {where}: the server answered {status}; check the input URL "
                "(the job is not retried)"
            )
        return InputUnavailable(
            f"input {where}: unexpected answer {status} (not a 2xx or a redirect with Location)"
        )

    def _drain(self, answer: _http1.Answer, deadline: float) -> None:
        """Read a short unused body so that the connection can be reused."""
        length = answer.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > _DRAIN_BYTES):
            return  # closing is cheaper than reading
        seen = 0
        try:
            for chunk in answer.pieces():
                seen += len(chunk)
                if seen > _DRAIN_BYTES or time.monotonic() > deadline:
                    return
        except _http1.WireError:
            return  # the connection is dropped; the next request opens another

    def _read(self, url: str, answer: _http1.Answer, deadline: float) -> FetchedInput:
        limit = self._config.max_input_bytes
        headers = answer.headers
        length = headers.get("content-length", "")
        encodings = [
            value.strip().lower()
            for value in headers.get("content-encoding", "").split(",")
            if value.strip().lower() not in ("", "identity")
        ]
        # One gzip or deflate layer only: stacked layers multiply the inflation
        # of a single network chunk (a few KiB could become gigabytes before the
        # size check sees them), and unknown ones would reach the job undecoded.
        if len(encodings) > 1 or (encodings and encodings[0] not in _ENCODINGS):
            raise InputInvalid(
                f"input {url}: unsupported Content-Encoding "
                f"{headers.get('content-encoding')!r}; "
                "only a single gzip or deflate encoding is accepted"
            )
        if not encodings and length.isdigit() and int(length) > limit:
            raise self._too_large(url, f"it announces {int(length)} bytes")
        chunks: list[bytes] = []
        size = 0
        # Raw bytes, decoded here in bounded pieces: 64 KiB of gzip can inflate
        # to 64 MiB in one step, before any size check.
        raw = answer.pieces()
        pieces = _inflate(raw, encodings[0]) if encodings else raw
        for chunk in pieces:
            size += len(chunk)
            if size > limit:
                raise self._too_large(url, f"more than {limit} bytes after decoding")
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise self._deadline_failure(url)
        return _decoded(
            url,
            chunks[0] if len(chunks) == 1 else b"".join(chunks),
            headers.get("content-type"),
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
        )

    def _too_large(self, url: str, detail: str) -> InputTooLarge:
        limit = self._config.max_input_bytes
        return InputTooLarge(
            f"input {url} is too large: {detail}, the limit is {limit} bytes "
            "(max_input_bytes); use a smaller input or raise --max-input-bytes"
        )

    # -- file: -----------------------------------------------------------------

    def _fetch_file(self, url: str) -> FetchedInput:
        path = self._policy.file_path(url)
        limit = self._config.max_input_bytes
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise InputUnavailable(f"input {url}: no such file {path}") from None
        except PermissionError:
            raise InputUnavailable(f"input {url}: the worker may not read {path}") from None
        except OSError as exc:
            # A name too long, a loop of links, a directory in the way: no retry can help.
            if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EISDIR):
                raise InputUnavailable(f"input {url}: cannot open {path}: {exc.strerror}") from None
            raise InputFailed(f"input {url}: cannot open {path}: {exc.strerror}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise InputUnavailable(f"input {url}: {path} is not a regular file")
        with os.fdopen(fd, "rb") as fh:
            if info.st_size > limit:
                raise self._too_large(url, f"the file has {info.st_size} bytes")
            try:
                body = fh.read(limit + 1)
            except OSError as exc:
                raise InputFailed(f"input {url}: cannot read {path}: {exc.strerror}") from None
        if len(body) > limit:
            raise self._too_large(url, f"the file has more than {limit} bytes")
        import mimetypes  # file: inputs only

        content_type, _ = mimetypes.guess_type(Path(path).name)
        return _decoded(
            url,
            body,
            content_type,
            etag=None,
            last_modified=_http_date(info.st_mtime),
        )


def _inflate(raw: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """Decode a gzip or deflate body in pieces of at most ``_INFLATE_PIECE`` bytes.

    ``deflate`` is tried as zlib-wrapped data first and then as a raw deflate
    stream, as browsers do, since servers send both.

    Raises:
        zlib.error: the body is not valid compressed data.
    """
    wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    first = True
    for chunk in raw:
        data = chunk
        while data:
            try:
                piece = inflater.decompress(data, _INFLATE_PIECE)
            except zlib.error:
                if not (first and encoding == "deflate"):
                    raise
                inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                piece = inflater.decompress(data, _INFLATE_PIECE)
            first = False
            data = inflater.unconsumed_tail
            if piece:
                yield piece
            if inflater.eof:
                break
    tail = inflater.flush()
    if tail:
        yield tail


def _decoded(
    url: str, body: bytes, content_type: str | None, *, etag: str | None, last_modified: str | None
) -> FetchedInput:
    value: Any = body
    if is_json_type(content_type):
        try:
            value = loads_strict(body, what=f"input {url}")
        except ValueError as exc:
            raise InputInvalid(
                f"{exc}; fix the input, or serve it with a non-JSON content type "
                "to receive it as bytes"
            ) from None
    return FetchedInput(
        url=url,
        body=body,
        content_type=content_type,
        value=value,
        sha256=hashlib.sha256(body).hexdigest(),
        etag=etag,
        last_modified=last_modified,
    )


def _scheme(url: str) -> str:
    head, sep, _ = url.partition(":")
    return head.strip().lower() if sep else ""


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _http_date(timestamp: float) -> str:
    """``Last-Modified`` style: ``Wed, 21 Oct 2015 07:28:00 GMT``."""
    import email.utils  # file: inputs only

    return email.utils.formatdate(timestamp, usegmt=True)


# -- an httpx transport in place of the network (tests) ----------------------------------


class _HttpxClient:
    """Answers requests with an httpx transport (``httpx.MockTransport`` in tests).

    Sends what the network client would send (the same URL and headers) and
    reads the answer as raw bytes; httpx's errors become the client's own.
    """

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self._transport = transport

    def get(
        self, url: _http1.Url, deadline: float, connect_timeout: float, read_timeout: float
    ) -> _http1.Answer:
        import httpx

        request = httpx.Request(
            "GET", f"{url.scheme}://{url.authority}{url.target}", headers=_HEADERS
        )
        try:
            response = self._transport.handle_request(request)
        except httpx.TimeoutException as exc:
            raise _http1.TimedOut(_describe(exc)) from exc
        except httpx.HTTPError as exc:
            raise _http1.WireError(_describe(exc)) from exc
        return _HttpxAnswer(response)

    def close(self) -> None:
        self._transport.close()


class _HttpxAnswer(_http1.Answer):
    def __init__(self, response: httpx.Response) -> None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in response.headers.raw:
            name = raw_name.decode("latin-1").lower()
            value = _http1.header_text(raw_value)
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        super().__init__(response.status_code, response.reason_phrase, headers)
        self._response = response

    def pieces(self) -> Iterator[bytes]:
        import httpx

        stream: Any = self._response.stream
        try:
            yield from stream
        except httpx.TimeoutException as exc:
            raise _http1.TimedOut(_describe(exc)) from exc
        except httpx.HTTPError as exc:
            raise _http1.WireError(_describe(exc)) from exc

    def close(self) -> None:
        self._response.close()
