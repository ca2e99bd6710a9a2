"""Fetching job inputs: the only module that talks httpx for inputs.

Threat model: input URLs come from untrusted job documents, and so do the
answers of the servers they name. A :class:`Fetcher` therefore applies the
:class:`~jobrunner.policy.UrlPolicy` to the first URL and to every redirect
hop (redirects are followed here, not by httpx), connects only to addresses
the policy checked (its network backend resolves, checks and connects in one
step, so there is no DNS-rebinding window, while the ``Host`` header and TLS
SNI / certificate checks keep the original name), bounds every fetch in size
(counted after content decoding, which is done here in pieces of at most
64 KiB, so a gzip bomb stops at the limit having cost no more memory than
the limit itself) and in
time (connect and read time-outs plus a total deadline, so a server dripping
a byte a second fails too), and decodes JSON strictly (no NaN, bounded
nesting). Proxy environment variables are ignored.

httpx exceptions are translated here; nothing above catches them::

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

import concurrent.futures
import contextlib
import email.utils
import errno
import hashlib
import http.cookiejar
import mimetypes
import os
import stat
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import httpcore
import httpx

from jobrunner import __version__
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

__all__ = ["FetchedInput", "Fetcher", "is_json_type"]

_REDIRECTS = (301, 302, 303, 307, 308)
_RETRYABLE_4XX = (408, 429)  # "request timeout" and "too many requests": try again later
_DRAIN_BYTES = 64 * 1024  # read this much of an unused body so the connection is reused
_MAX_THREADS = 8
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0)
_ACCEPT = "application/json, */*;q=0.5"
_ENCODINGS = ("gzip", "deflate")  # what we decode (zlib); br, zstd and others are refused
_INFLATE_PIECE = 64 * 1024  # most bytes one decompression step may produce
_NO_COOKIES = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])


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


# -- the pinned network backend ---------------------------------------------------


class _Current(threading.local):
    """What the current thread is fetching: the URL (for messages) and its deadline."""

    url: str | None = None
    deadline: float | None = None


def _remaining(current: _Current, timeout: float | None) -> float | None:
    """Clamp a socket time-out to the time left before the current fetch's deadline."""
    if current.deadline is None:
        return timeout
    left = current.deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("fetch deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose reads and writes never outlast the current fetch's deadline.

    httpx has no total deadline: a server sending a header byte every few
    seconds never trips the read time-out. Clamping each socket operation to
    the time left bounds the whole exchange, headers included.
    """

    def __init__(self, inner: httpcore.NetworkStream, current: _Current) -> None:
        self._inner = inner
        self._current = current

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(self._current, timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(self._current, timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, _remaining(self._current, timeout)
        )
        return _DeadlineStream(inner, self._current)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Resolves, checks and connects in one step: connections go to checked addresses only.

    httpcore calls :meth:`connect_tcp` with the host of the URL it was given
    (the very host the ``Host`` header and TLS SNI use) whenever the pool has
    no reusable connection; reused connections lead to addresses checked when
    they were opened.
    """

    def __init__(self, policy: UrlPolicy, current: _Current) -> None:
        self._policy = policy
        self._current = current
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        url = self._current.url or f"//{host}:{port}"
        target = self._policy.check_target(url, scheme="http", host=host, port=port)
        try:
            addresses = self._policy.resolve(target)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=_remaining(self._current, timeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            return _DeadlineStream(stream, self._current)
        assert last is not None  # resolve() returns at least one address
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - never configured
        raise httpcore.ConnectError("unix sockets are not used for inputs")

    def sleep(self, seconds: float) -> None:  # pragma: no cover - retries are off
        time.sleep(seconds)


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport, its connection pool given the pinned network backend.

    ``httpx.HTTPTransport`` takes no network backend, but its pool is an
    ``httpcore.ConnectionPool``, which does; we swap the pool and keep
    httpx's request/response and exception mapping. The integration tests
    (DNS pinning, connection reuse) guard this against httpx changes.
    """

    def __init__(self, backend: httpcore.NetworkBackend, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


# -- the fetcher ---------------------------------------------------------------------


class Fetcher:
    """Fetches input URLs under the input policy; one per (child) process.

    Holds one ``httpx.Client`` whose connections are reused across fetches
    and jobs, and a small thread pool for jobs with several inputs.

    Args:
        config: the worker's settings (``allow_host``, ``allow_file_inputs``,
            ``max_redirects``, ``max_input_bytes``, ``connect_timeout``,
            ``read_timeout``, ``fetch_timeout``).
        transport: an httpx transport to use instead of the network (tests:
            ``httpx.MockTransport``). Its connections are out of our hands,
            so each hop's host is then resolved and checked before the request.
        resolver: resolves ``(host, port)`` to IP address strings;
            ``getaddrinfo`` when None.

    Raises:
        ConfigError: an invalid ``allow_host`` entry.
    """

    def __init__(
        self,
        config: Config,
        *,
        transport: httpx.BaseTransport | None = None,
        resolver: Callable[[str, int], list[str]] | None = None,
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
        self._current = _Current()
        self._pinned = transport is None
        if transport is None:
            transport = _PinnedTransport(_PinnedBackend(self._policy, self._current), _LIMITS)
        self._client = httpx.Client(
            transport=transport,
            trust_env=False,
            # No cookie jar: cookies set while fetching one job's input must
            # not travel with another job's requests.
            cookies=http.cookiejar.CookieJar(policy=_NO_COOKIES),
            follow_redirects=False,
            timeout=self._timeout(config.fetch_timeout),
            headers={
                "User-Agent": f"jobrunner/{__version__}",
                "Accept": _ACCEPT,
                "Accept-Encoding": "gzip, deflate",
            },
        )
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
        target = self._target(url, redirect=False)
        with contextlib.suppress(OSError):
            self._policy.resolve(target)

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
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=_MAX_THREADS, thread_name_prefix="jobrunner-fetch"
                )
            return self._executor

    def _timeout(self, left: float) -> httpx.Timeout:
        connect = min(self._config.connect_timeout, left)
        read = min(self._config.read_timeout, left)
        return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)

    def _parse(self, url: str, *, redirect: bool) -> tuple[httpx.URL, Target]:
        try:
            parsed = httpx.URL(url)
            port = parsed.port
            _ = parsed.host  # decodes IDNA: a malformed A-label (xn--...) raises here
        except (httpx.InvalidURL, TypeError, UnicodeError) as exc:
            raise InputRefused(f"input URL {url!r} refused: not a valid URL ({exc})") from None
        if port is not None and not 0 < port < 65536:
            raise InputRefused(
                f"input URL {url!r} refused: not a valid URL (port {port} is not 1-65535)"
            )
        target = self._policy.check_target(
            url,
            scheme=parsed.scheme,
            host=parsed.raw_host.decode("ascii"),
            port=port,
            credentials=bool(parsed.userinfo),
            redirect=redirect,
        )
        return parsed, target

    def _target(self, url: str, *, redirect: bool) -> Target:
        return self._parse(url, redirect=redirect)[1]

    def _fetch_http(self, url: str) -> FetchedInput:
        config = self._config
        deadline = time.monotonic() + config.fetch_timeout
        current = url
        hop = 0
        try:
            for hop in range(config.max_redirects + 1):
                parsed, target = self._parse(current, redirect=hop > 0)
                if not self._pinned:
                    self._resolve_unpinned(target)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._deadline_failure(url)
                self._current.url, self._current.deadline = current, deadline
                request = self._client.build_request("GET", parsed, timeout=self._timeout(left))
                response = self._client.send(request, stream=True)
                try:
                    status = response.status_code
                    location = response.headers.get("Location")
                    if status in _REDIRECTS and location:
                        self._drain(response, deadline)
                        try:
                            current = str(parsed.join(location))
                        except httpx.InvalidURL as exc:
                            raise InputUnavailable(
                                f"input {url}: redirect to an invalid URL {location!r} ({exc})"
                            ) from None
                        continue
                    if not 200 <= status < 300:
                        self._drain(response, deadline)
                        raise self._status_failure(url, current, response)
                    return self._read(url, response, deadline)
                finally:
                    response.close()
        except InputRefused as exc:
            if hop == 0:
                raise
            raise InputRefused(f"input {url} redirects to a refused URL: {exc.message}") from None
        except httpx.TimeoutException as exc:
            if time.monotonic() >= deadline:
                raise self._deadline_failure(url) from exc
            raise InputFailed(
                f"input {url}: the server did not answer in time ({_describe(exc)}); "
                "the job will be retried"
            ) from exc
        except httpx.DecodingError as exc:
            raise InputInvalid(
                f"input {url}: the body cannot be decoded ({_describe(exc)}); "
                "the server sent a corrupt compressed body"
            ) from exc
        except httpx.TransportError as exc:
            raise InputFailed(f"input {url}: {_describe(exc)}; the job will be retried") from exc
        except httpx.HTTPError as exc:  # none other is expected; retrying is the safe side
            raise InputFailed(f"input {url}: {_describe(exc)}; the job will be retried") from exc
        except httpx.InvalidURL as exc:  # raised by httpx reading a redirect's Location
            raise InputUnavailable(f"input {url}: redirect to an invalid URL ({exc})") from None
        except UnicodeError as exc:
            # httpx reads the Location of every redirect answer while receiving it, and
            # decoding a malformed international name there (xn--...) raises UnicodeError.
            raise InputRefused(
                f"input {url} redirects to a refused URL: not a valid host name "
                f"({type(exc).__name__}: {exc})"
            ) from None
        finally:
            self._current.url = self._current.deadline = None
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

    def _status_failure(self, url: str, current: str, response: httpx.Response) -> JobFailure:
        status = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
        where = url if current == url else f"{url} (redirected to {current})"
        if response.status_code >= 500 or response.status_code in _RETRYABLE_4XX:
            return InputFailed(
                f"input {where}: the server answered {status}; the job will be retried"
            )
        if response.status_code >= 400:
            return InputUnavailable(
                f"input {where}: the server answered {status}; check the input URL "
                "(the job is not retried)"
            )
        return InputUnavailable(
            f"input {where}: unexpected answer {status} (not a 2xx or a redirect with Location)"
        )

    def _drain(self, response: httpx.Response, deadline: float) -> None:
        """Read a short unused body so that the connection can be reused."""
        length = response.headers.get("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > _DRAIN_BYTES):
            return  # closing is cheaper than reading
        seen = 0
        try:
            for chunk in response.iter_raw():
                seen += len(chunk)
                if seen > _DRAIN_BYTES or time.monotonic() > deadline:
                    return
        except (httpx.HTTPError, httpx.StreamError):
            return  # the connection is dropped; the next request opens another

    def _read(self, url: str, response: httpx.Response, deadline: float) -> FetchedInput:
        limit = self._config.max_input_bytes
        length = response.headers.get("Content-Length", "")
        encodings = [
            value.strip().lower()
            for value in response.headers.get_list("Content-Encoding", split_commas=True)
            if value.strip().lower() not in ("", "identity")
        ]
        # One gzip or deflate layer only: stacked layers multiply the inflation
        # of a single network chunk (a few KiB could become gigabytes before the
        # size check sees them), and unknown ones would reach the job undecoded.
        if len(encodings) > 1 or (encodings and encodings[0] not in _ENCODINGS):
            raise InputInvalid(
                f"input {url}: unsupported Content-Encoding "
                f"{response.headers.get('Content-Encoding')!r}; "
                "only a single gzip or deflate encoding is accepted"
            )
        if not encodings and length.isdigit() and int(length) > limit:
            raise self._too_large(url, f"it announces {int(length)} bytes")
        chunks: list[bytes] = []
        size = 0
        # Raw bytes, decoded here: httpx would inflate each network chunk in one
        # step, and 64 KiB of gzip can inflate to 64 MiB before any size check.
        pieces: Iterable[bytes]
        if response.is_stream_consumed:  # read whole by the transport (httpx.MockTransport)
            pieces = [response.content]
        else:
            raw = response.iter_raw()
            pieces = _inflate(raw, encodings[0]) if encodings else raw
        for chunk in pieces:
            size += len(chunk)
            if size > limit:
                raise self._too_large(url, f"more than {limit} bytes after decoding")
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise self._deadline_failure(url)
        headers = response.headers
        return _decoded(
            url,
            b"".join(chunks),
            headers.get("Content-Type"),
            etag=headers.get("ETag"),
            last_modified=headers.get("Last-Modified"),
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
        content_type, _ = mimetypes.guess_type(Path(path).name)
        return _decoded(
            url,
            body,
            content_type,
            etag=None,
            last_modified=email.utils.formatdate(info.st_mtime, usegmt=True),
        )


def _inflate(raw: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """Decode a gzip or deflate body in pieces of at most ``_INFLATE_PIECE`` bytes.

    ``deflate`` is tried as zlib-wrapped data first and then as a raw deflate
    stream, as httpx (and browsers) do, since servers send both.

    Raises:
        httpx.DecodingError: the body is not valid compressed data.
    """
    wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    first = True
    try:
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
    except zlib.error as exc:
        raise httpx.DecodingError(str(exc)) from exc


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
