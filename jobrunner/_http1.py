"""A small HTTP/1.1 client for fetching job inputs (internal; used by :mod:`jobrunner.fetch`).

It does what an input fetch needs and nothing else: ``GET`` requests over
keep-alive connections reused per origin, bodies framed by
``Content-Length``, ``chunked`` or the end of the connection, and TLS
(``ssl`` is imported on the first ``https`` connection, not before). No
cookies, no proxies, no authentication, no HTTP/2, and no redirects: the
caller follows redirects itself so that its URL policy sees every hop.

The caller opens connections (:class:`Pool` takes a ``connect`` function):
that is where :mod:`jobrunner.fetch` resolves the host, checks each address
against the input policy and connects to a checked address, so a connection
in the pool only ever leads to an address that was checked when it was
opened.

Every socket operation is bounded by the read (or connect) time-out and by
the caller's overall deadline. Errors raised here, all :class:`WireError`::

    TimedOut       a connect, read or write time-out, or the deadline passed
    WireError      cannot connect, connection reset or closed early,
                   a response that is not valid HTTP/1.x

The exception that caused one (an ``OSError``, an ``ssl`` error) is chained
as ``__cause__``.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import ssl

__all__ = [
    "Answer",
    "BadHost",
    "Pool",
    "TimedOut",
    "Url",
    "WireError",
    "default_ssl_context",
    "header_text",
    "join_url",
    "open_socket",
    "parse_url",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_HEAD = 64 * 1024  # status line and headers of one response
_MAX_CHUNK_LINE = 4 * 1024  # a chunk-size line with its extensions
_RECV = 64 * 1024
_MAX_IDLE_PER_ORIGIN = 8
_MAX_IDLE = 20
_KEEPALIVE_EXPIRY = 30.0  # seconds an idle connection is kept

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What may stand unencoded in a path or a query (RFC 3986: pchar, plus "/" and "?");
# anything else, and a "%" not starting an escape, is percent-encoded as UTF-8.
_UNSAFE = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]|%(?![0-9A-Fa-f]{2})")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class WireError(Exception):
    """A connection could not be made or used, or the answer was not valid HTTP/1.x."""


class TimedOut(WireError):
    """A connect, read or write time-out, or the caller's deadline passed."""


class BadHost(ValueError):
    """A URL's host is not a valid (international) host name."""


class _Stale(WireError):
    """A reused connection was closed by the server before it answered (try a fresh one)."""


# -- URLs ----------------------------------------------------------------------------------


class Url(NamedTuple):
    """A parsed ``http``/``https`` URL, as the request will use it.

    Attributes:
        text: the URL as given (for messages and redirects).
        scheme: lower-case scheme.
        host: lower-case host, international names in ASCII (IDNA), IPv6
            without brackets.
        port: the explicit port, or None for the scheme's default.
        target: the request target (path and query, percent-encoded).
        credentials: the URL carries ``user:password@``.
    """

    text: str
    scheme: str
    host: str
    port: int | None
    target: str
    credentials: bool

    @property
    def origin(self) -> tuple[str, str, int]:
        """``(scheme, host, port)``: what a reusable connection is keyed by."""
        return (self.scheme, self.host, self.port or _DEFAULT_PORTS.get(self.scheme, 0))

    @property
    def authority(self) -> str:
        """The ``Host`` header: host (IPv6 in brackets) and a port other than the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port is None or self.port == _DEFAULT_PORTS.get(self.scheme):
            return host
        return f"{host}:{self.port}"


def _quote(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8", "surrogatepass"))


def _idna(host: str) -> str:
    """Spell an international host name in ASCII, and check its ``xn--`` labels.

    Uses the ``idna`` package (IDNA 2008, as browsers and httpx do) when it
    is installed, else Python's IDNA 2003 codec.

    Raises:
        BadHost: a name that is not valid IDNA.
    """
    idna: Any
    try:
        import idna
    except ImportError:  # pragma: no cover - idna comes with httpx
        idna = None
    try:
        if not host.isascii():
            if idna is not None:
                return str(idna.encode(host).decode("ascii"))
            return host.encode("idna").decode("ascii")
        for label in host.split("."):
            if label.startswith("xn--"):
                if idna is not None:
                    idna.decode(label)
                else:  # pragma: no cover
                    label.encode("ascii").decode("idna")
    except UnicodeError as exc:  # idna.IDNAError is a UnicodeError
        raise BadHost(f"host {host!r} is not a valid host name: {exc}") from None
    return host


def parse_url(text: str) -> Url:
    """Parse an absolute URL strictly, the way the request will use it.

    The host is lower-cased and spelled in ASCII; the path and query are
    percent-encoded where they hold characters a request line may not carry.

    Raises:
        BadHost: an international host name that is not valid IDNA.
        ValueError: anything else that makes it no URL (control characters,
            no ``//`` after ``http:``, an invalid port or IPv6 address).
    """
    if _CONTROL.search(text):
        raise ValueError("it holds control characters")
    parts = urllib.parse.urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in _DEFAULT_PORTS and not text[len(scheme) + 1 :].startswith("//"):
        raise ValueError(f"no '//' after '{scheme}:'")
    _userinfo, at, hostport = parts.netloc.rpartition("@")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("an unclosed '[' in the host")
        host, rest = hostport[1:end].lower(), hostport[end + 1 :]
        if "%" in host:
            raise ValueError(f"IPv6 zone identifiers are not supported ([{host}])")
        try:
            socket.inet_pton(socket.AF_INET6, host)
        except (OSError, ValueError):
            raise ValueError(f"invalid IPv6 address [{host}]") from None
        if rest and not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after the IPv6 address")
        port_text: str | None = rest[1:] if rest else None
    else:
        host, colon, port_text = hostport.partition(":")
        if not colon:
            port_text = None
        if "[" in host or "]" in host:
            raise ValueError("'[' or ']' in a host that is not an IPv6 address")
        host = host.lower()
        if host and (not host.isascii() or "xn--" in host):
            host = _idna(host)
    port: int | None = None
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()):
            raise ValueError(f"port {port_text!r} is not a number")
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError(f"port {port} is not 1-65535")
    path = parts.path or "/"
    target = path + "?" + parts.query if parts.query else path
    if _UNSAFE.search(target):
        target = _UNSAFE.sub(_quote, target)
    return Url(text, scheme, host, port, target, bool(at))


def join_url(base: str, location: str) -> str:
    """Resolve a redirect's ``Location`` against the URL that answered.

    A ``Location`` with a scheme is absolute (RFC 3986, strict): ``http:x``
    is not resolved as a relative reference.

    Raises:
        ValueError: a ``Location`` holding control characters.
    """
    if _CONTROL.search(location):
        raise ValueError("it holds control characters")
    if _SCHEME.match(location):
        return location
    return urllib.parse.urljoin(base, location)


# -- connections ---------------------------------------------------------------------------


def open_socket(address: str, port: int, timeout: float) -> socket.socket:
    """Connect a TCP socket to one IP address (no name resolution).

    Raises:
        OSError: the connection failed or timed out.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((address, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def default_ssl_context() -> ssl.SSLContext:
    """The TLS settings for inputs: certificates verified against certifi's CA bundle
    (the system's when certifi is not installed), host names checked, HTTP/1.1 by ALPN.
    Environment variables (``SSL_CERT_FILE``) are not read."""
    import ssl

    try:
        import certifi

        cafile: str | None = certifi.where()
    except ImportError:  # pragma: no cover - certifi comes with httpx
        cafile = None
    context = ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _left(deadline: float, timeout: float) -> float:
    """The time-out of one socket operation: ``timeout``, clamped to the deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimedOut("the fetch deadline passed")
    return left if left < timeout else timeout


class _Connection:
    """One open connection and the bytes read from it but not yet used."""

    __slots__ = ("buffer", "idle_since", "origin", "sock")

    def __init__(self, sock: socket.socket, origin: tuple[str, str, int]) -> None:
        self.sock = sock
        self.origin = origin
        self.buffer = b""
        self.idle_since = 0.0

    def recv(self, deadline: float, timeout: float) -> bytes:
        sock = self.sock
        sock.settimeout(_left(deadline, timeout))
        try:
            return sock.recv(_RECV)
        except TimeoutError as exc:
            raise TimedOut(f"no answer within the read time-out ({exc or 'timed out'})") from exc
        except OSError as exc:
            raise WireError(f"the connection failed while reading ({_describe(exc)})") from exc

    def send(self, data: bytes, deadline: float, timeout: float) -> None:
        sock = self.sock
        sock.settimeout(_left(deadline, timeout))
        try:
            sock.sendall(data)
        except TimeoutError as exc:
            raise TimedOut("the request could not be sent within the time-out") from exc
        except OSError as exc:
            raise WireError(f"the connection failed while sending ({_describe(exc)})") from exc

    def usable(self, now: float) -> bool:
        """True when an idle connection may carry another request."""
        if now - self.idle_since > _KEEPALIVE_EXPIRY or self.buffer:
            return False
        sock: Any = self.sock
        if getattr(sock, "pending", None) is not None and sock.pending():
            return False
        try:
            # Readable while idle: the server closed it (or sent bytes nobody asked for).
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:  # pragma: no cover - closing never matters here
            pass


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


class Answer:
    """A response whose head has been read; the body is read with :meth:`pieces`.

    Attributes:
        status: the status code.
        reason: the reason phrase the server sent (may be empty).
        headers: lower-case header names to values (repeated headers joined
            with ``", "``).
    """

    def __init__(self, status: int, reason: str, headers: dict[str, str]) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers

    def pieces(self) -> Iterator[bytes]:
        """The body as it arrives, undecoded (no content decoding)."""
        raise NotImplementedError

    def close(self) -> None:
        """Give the connection back for reuse if the body was read to its end, else close it."""


class _WireAnswer(Answer):
    def __init__(
        self,
        pool: Pool,
        conn: _Connection,
        status: int,
        reason: str,
        headers: dict[str, str],
        *,
        keep_alive: bool,
        length: int | None,
        chunked: bool,
        deadline: float,
        timeout: float,
    ) -> None:
        super().__init__(status, reason, headers)
        self._pool = pool
        self._conn: _Connection | None = conn
        self._keep_alive = keep_alive and (chunked or length is not None)
        self._length = length
        self._chunked = chunked
        self._deadline = deadline
        self._timeout = timeout
        self._complete = length == 0

    def pieces(self) -> Iterator[bytes]:
        conn = self._conn
        if conn is None or self._complete:
            return
        if self._chunked:
            yield from self._chunks(conn)
        elif self._length is not None:
            yield from self._sized(conn, self._length)
        else:
            yield from self._until_close(conn)
        self._complete = True

    def _more(self, conn: _Connection) -> bytes:
        data = conn.recv(self._deadline, self._timeout)
        if not data:
            raise WireError("the server closed the connection before the body ended")
        return data

    def _sized(self, conn: _Connection, length: int) -> Iterator[bytes]:
        data, conn.buffer = conn.buffer, b""
        while True:
            if len(data) >= length:
                conn.buffer = data[length:]
                if data[:length]:
                    yield data[:length]
                return
            if data:
                length -= len(data)
                yield data
            data = self._more(conn)

    def _until_close(self, conn: _Connection) -> Iterator[bytes]:
        data, conn.buffer = conn.buffer, b""
        while data:
            yield data
            data = conn.recv(self._deadline, self._timeout)

    def _line(self, conn: _Connection) -> bytes:
        data = conn.buffer
        while True:
            end = data.find(b"\n")
            if end >= 0:
                conn.buffer = data[end + 1 :]
                return data[:end].rstrip(b"\r")
            if len(data) > _MAX_CHUNK_LINE:
                raise WireError("a chunk-size line is too long")
            data += self._more(conn)

    def _chunks(self, conn: _Connection) -> Iterator[bytes]:
        while True:
            line = self._line(conn)
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise WireError(f"invalid chunk size {bytes(line[:40])!r}")
            size = int(size_text, 16)
            if size == 0:
                trailers = 0
                while self._line(conn):  # trailer fields, ignored
                    trailers += 1
                    if trailers > 100:
                        raise WireError("too many trailer fields")
                return
            yield from self._sized(conn, size)
            if self._line(conn):
                raise WireError("a chunk is longer than its size")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._complete and self._keep_alive and not conn.buffer:
            self._pool.put(conn)
        else:
            conn.close()


# -- the pool ------------------------------------------------------------------------------

#: Opens a TCP connection for a URL: ``connect(url, deadline, timeout)``.
Connect = Callable[[Url, float, float], socket.socket]


class Pool:
    """Keep-alive connections by origin, opened through ``connect``.

    Args:
        connect: opens a TCP socket for a URL (the caller resolves and checks
            the address); raises :class:`WireError`.
        headers: request header lines sent with every request (after ``Host``),
            each ending in CRLF.
        ssl_context: the TLS settings; :func:`default_ssl_context` when first needed.
    """

    def __init__(
        self,
        connect: Connect,
        headers: str,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._connect = connect
        self._headers = headers
        self._ssl_context = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()

    def get(self, url: Url, deadline: float, connect_timeout: float, read_timeout: float) -> Answer:
        """Send ``GET url`` and read the answer's head.

        A reused connection that turns out to be closed by the server before
        any byte of the answer arrives is replaced by a new one, once.

        Raises:
            WireError: including :class:`TimedOut`.
        """
        request = (
            f"GET {url.target} HTTP/1.1\r\nHost: {url.authority}\r\n{self._headers}\r\n"
        ).encode("ascii")
        conn = self._checkout(url.origin)
        if conn is not None:
            try:
                return self._exchange(conn, request, deadline, read_timeout, reused=True)
            except _Stale:
                conn.close()
        conn = self._open(url, deadline, connect_timeout)
        return self._exchange(conn, request, deadline, read_timeout, reused=False)

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def put(self, conn: _Connection) -> None:
        """Keep a connection whose last answer was read to its end."""
        conn.idle_since = time.monotonic()
        surplus: list[_Connection] = []
        with self._lock:
            conns = self._idle.setdefault(conn.origin, [])
            conns.append(conn)
            if len(conns) > _MAX_IDLE_PER_ORIGIN:
                surplus.append(conns.pop(0))
            if sum(len(c) for c in self._idle.values()) > _MAX_IDLE:
                oldest = min((c for c in self._idle.values() if c), key=lambda c: c[0].idle_since)
                surplus.append(oldest.pop(0))
        for extra in surplus:
            extra.close()

    def _checkout(self, origin: tuple[str, str, int]) -> _Connection | None:
        now = time.monotonic()
        while True:
            with self._lock:
                conns = self._idle.get(origin)
                if not conns:
                    return None
                conn = conns.pop()
            if conn.usable(now):
                return conn
            conn.close()

    def _open(self, url: Url, deadline: float, timeout: float) -> _Connection:
        sock = self._connect(url, deadline, timeout)
        if url.scheme == "https":
            sock = self._tls(sock, url, deadline, timeout)
        return _Connection(sock, url.origin)

    def _tls(self, sock: socket.socket, url: Url, deadline: float, timeout: float) -> socket.socket:
        import ssl

        try:
            if self._ssl_context is None:
                self._ssl_context = default_ssl_context()
            sock.settimeout(_left(deadline, timeout))
            # The URL's own name: SNI and the certificate check are for it, not for
            # the address the connection was pinned to.
            return self._ssl_context.wrap_socket(sock, server_hostname=url.host)
        except TimeoutError as exc:
            sock.close()
            raise TimedOut("the TLS handshake did not complete within the time-out") from exc
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise WireError(f"TLS with {url.host} failed ({_describe(exc)})") from exc
        except BaseException:
            sock.close()
            raise

    def _exchange(
        self, conn: _Connection, request: bytes, deadline: float, timeout: float, *, reused: bool
    ) -> Answer:
        try:
            try:
                conn.send(request, deadline, timeout)
            except TimedOut:
                raise
            except WireError as exc:
                if reused:
                    raise _Stale(str(exc)) from exc.__cause__
                raise
            while True:
                answer = self._head(conn, deadline, timeout, reused=reused)
                if answer is not None:
                    return answer
                reused = False  # an informational answer came: the connection is alive
        except BaseException:
            conn.close()
            raise

    def _head(
        self, conn: _Connection, deadline: float, timeout: float, *, reused: bool
    ) -> Answer | None:
        """Read one response head; None for an informational (1xx) answer."""
        data = conn.buffer
        start = 0
        while True:
            found = _HEAD_END.search(data, start)
            if found is not None:
                break
            if len(data) > _MAX_HEAD:
                raise WireError(f"the response head is longer than {_MAX_HEAD} bytes")
            start = max(0, len(data) - 3)
            try:
                more = conn.recv(deadline, timeout)
            except TimedOut:
                raise
            except WireError as exc:
                if reused and not data:
                    raise _Stale(str(exc)) from exc.__cause__
                raise
            if not more:
                if reused and not data:
                    raise _Stale("the server closed the idle connection")
                raise WireError("the server closed the connection before answering")
            data += more
        head, conn.buffer = data[: found.start()], data[found.end() :]
        lines = head.split(b"\n")
        status_line = lines[0].rstrip(b"\r")
        version, _, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise WireError(f"not an HTTP/1.x status line: {bytes(status_line[:60])!r}")
        status = int(code)
        headers: dict[str, str] = {}
        name = ""
        for raw in lines[1:]:
            line = raw.rstrip(b"\r")
            if line[:1] in (b" ", b"\t"):  # obsolete line folding: continues the last value
                if not name:
                    raise WireError("a folded header line without a header")
                headers[name] += " " + header_text(line.strip(b" \t"))
                continue
            field, colon, value = line.partition(b":")
            if not colon or not _TOKEN.fullmatch(field):
                raise WireError(f"an invalid header line {bytes(line[:60])!r}")
            name = field.decode("ascii").lower()
            text = header_text(value.strip(b" \t"))
            headers[name] = f"{headers[name]}, {text}" if name in headers else text
        if 100 <= status < 200:
            if status == 101:
                raise WireError("the server switched protocols (101)")
            return None
        return self._framed(conn, status, header_text(reason), headers, version, deadline, timeout)

    def _framed(
        self,
        conn: _Connection,
        status: int,
        reason: str,
        headers: dict[str, str],
        version: bytes,
        deadline: float,
        timeout: float,
    ) -> Answer:
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep_alive = "close" not in tokens and (version == b"HTTP/1.1" or "keep-alive" in tokens)
        length: int | None = None
        chunked = False
        if status in (204, 304):
            length = 0
        elif "transfer-encoding" in headers:
            codings = [c.strip().lower() for c in headers["transfer-encoding"].split(",")]
            if codings != ["chunked"]:
                raise WireError(f"unsupported Transfer-Encoding {headers['transfer-encoding']!r}")
            chunked = True
        elif "content-length" in headers:
            values = {v.strip() for v in headers["content-length"].split(",")}
            if len(values) != 1 or not all(v.isascii() and v.isdigit() for v in values):
                raise WireError(f"invalid Content-Length {headers['content-length']!r}")
            length = int(values.pop())
        return _WireAnswer(
            self,
            conn,
            status,
            reason,
            headers,
            keep_alive=keep_alive,
            length=length,
            chunked=chunked,
            deadline=deadline,
            timeout=timeout,
        )


def header_text(value: bytes) -> str:
    """A header value as text: ASCII, else UTF-8, else Latin-1."""
    if value.isascii():
        return value.decode("ascii")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
