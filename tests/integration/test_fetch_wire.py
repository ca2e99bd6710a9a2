"""The fetcher's HTTP/1.1 client against hand-scripted servers on real sockets (127.0.0.1).

Each server answers with exact bytes, so the tests can send what a
well-behaved framework never would: chunked bodies with extensions and
trailers, informational answers, bodies cut short, heads without end,
garbage, idle connections closed under the client. Every server loop is
bounded (socket time-outs, a stop flag).
"""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobrunner.config import Config
from jobrunner.errors import InputFailed, InputRefused, InputTooLarge
from jobrunner.fetch import Fetcher
from tests.support import RawHandler as Handler
from tests.support import RawServer

pytestmark = pytest.mark.integration

JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


def answer(body: bytes, head: bytes = JSON_HEAD) -> bytes:
    """A complete answer with a Content-Length."""
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def keep_alive(*answers: bytes) -> Handler:
    """Answer each request on a connection with the next of ``answers`` (the last repeats)."""

    def handler(server: RawServer, conn: socket.socket) -> None:
        for i in range(100):
            if server.read_request(conn) is None:
                return
            conn.sendall(answers[min(i, len(answers) - 1)])

    return handler


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Handler) -> RawServer:
        server = RawServer(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def fetcher(**settings: Any) -> Fetcher:
    settings.setdefault("allow_host", ("127.0.0.1",))
    return Fetcher(Config(**settings))


# -- framing -------------------------------------------------------------------------------


def test_chunked_body_with_extensions_and_trailers(
    serve: Callable[[Handler], RawServer],
) -> None:
    """A chunked body (chunk extensions, trailer fields) is decoded, and the connection
    is reused for the next fetch."""
    body = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;name=value\r\n{"a":\r\n'
        b"3\r\n 1}\r\n"
        b"0\r\nX-Checksum: abc\r\n\r\n"
    )
    server = serve(keep_alive(body))
    with fetcher() as f:
        assert f.fetch(server.url()).value == {"a": 1}
        assert f.fetch(server.url()).value == {"a": 1}
    assert server.connections == 1


def test_informational_answers_are_skipped(serve: Callable[[Handler], RawServer]) -> None:
    """100 Continue and 103 Early Hints before the answer are read past."""
    informational = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    server = serve(keep_alive(informational + answer(b'{"ok": true}')))
    with fetcher() as f:
        assert f.fetch(server.url()).value == {"ok": True}


def test_http10_body_until_close(serve: Callable[[Handler], RawServer]) -> None:
    """An HTTP/1.0 answer without a length ends when the server closes; the next fetch
    opens a new connection."""

    def handler(server: RawServer, conn: socket.socket) -> None:
        if server.read_request(conn) is not None:
            conn.sendall(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"v": 10}')

    server = serve(handler)
    with fetcher() as f:
        assert f.fetch(server.url()).value == {"v": 10}
        assert f.fetch(server.url()).value == {"v": 10}
    assert server.connections == 2


def test_gzip_in_chunks_decoded(serve: Callable[[Handler], RawServer]) -> None:
    """A gzip body sent in chunks is decoded, fingerprinted after decoding."""
    packed = gzip.compress(b'{"zipped": [1, 2, 3]}')
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(packed[i : i + 7]), packed[i : i + 7])
        for i in range(0, len(packed), 7)
    )
    head = JSON_HEAD + b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = serve(keep_alive(head + chunks + b"0\r\n\r\n"))
    with fetcher() as f:
        assert f.fetch(server.url()).value == {"zipped": [1, 2, 3]}


def test_endless_chunk_stops_at_the_limit(serve: Callable[[Handler], RawServer]) -> None:
    """A chunk announcing a huge size and streaming without end stops at max_input_bytes."""

    def handler(server: RawServer, conn: socket.socket) -> None:
        if server.read_request(conn) is None:
            return
        conn.sendall(JSON_HEAD + b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFF\r\n")
        for _ in range(1000):  # 16 MiB at most; the client hangs up after 1 MiB
            conn.sendall(b" " * 16384)

    server = serve(handler)
    with fetcher(max_input_bytes=1024 * 1024) as f, pytest.raises(InputTooLarge):
        f.fetch(server.url())


# -- broken answers: retryable failures, and the fetcher goes on -----------------------------

BROKEN = [
    ("body-cut-short", JSON_HEAD + b'Content-Length: 100\r\n\r\n{"a":', "before the body ended"),
    ("not-http", b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP/1.x status line"),
    ("bad-status", b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.x status line"),
    ("header-without-colon", b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", "invalid header line"),
    ("space-before-colon", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\n{}", "invalid header"),
    (
        "lengths-disagree",
        JSON_HEAD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        "invalid Content-Length",
    ),
    ("negative-length", JSON_HEAD + b"Content-Length: -1\r\n\r\n{}", "invalid Content-Length"),
    (
        "transfer-encoding-gzip",
        JSON_HEAD + b"Transfer-Encoding: gzip\r\n\r\n",
        "unsupported Transfer-Encoding",
    ),
    (
        "chunk-size-0x-prefix",
        JSON_HEAD + b"Transfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n",
        "invalid chunk size",
    ),
    (
        "bad-chunk-size",
        JSON_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        "invalid chunk size",
    ),
    (
        "chunk-longer-than-size",
        JSON_HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}}\r\n0\r\n\r\n",
        "longer than its size",
    ),
    (
        "switching-protocols",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
        "switched protocols",
    ),
    ("closed-before-answering", b"", "closed the connection before answering"),
]


@pytest.mark.parametrize(
    ("sent", "says"), [(sent, says) for _, sent, says in BROKEN], ids=[i for i, _, _ in BROKEN]
)
def test_broken_answer_is_retryable_input_failure(
    serve: Callable[[Handler], RawServer], sent: bytes, says: str
) -> None:
    """An answer that is not valid HTTP/1.1 (or ends early) is a retryable InputFailed
    naming the fault, and the same fetcher then fetches from a good server."""

    def handler(server: RawServer, conn: socket.socket) -> None:
        if server.read_request(conn) is not None:
            conn.sendall(sent)
            conn.shutdown(socket.SHUT_WR)

    bad = serve(handler)
    good = serve(keep_alive(answer(b'{"ok": 1}')))
    with fetcher() as f:
        with pytest.raises(InputFailed) as info:
            f.fetch(bad.url())
        assert says in info.value.message
        assert info.value.retryable
        assert f.fetch(good.url()).value == {"ok": 1}


def test_endless_head_is_refused(serve: Callable[[Handler], RawServer]) -> None:
    """A response head that never ends (headers without end) fails after 64 KiB."""

    def handler(server: RawServer, conn: socket.socket) -> None:
        if server.read_request(conn) is None:
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for i in range(1000):  # bounded: the client hangs up after 64 KiB
            conn.sendall(b"X-Filler-%d: %s\r\n" % (i, b"f" * 200))

    server = serve(handler)
    with fetcher() as f, pytest.raises(InputFailed, match="longer than 65536 bytes"):
        f.fetch(server.url())


# -- connections -----------------------------------------------------------------------------


def test_idle_connection_closed_by_server_is_replaced(
    serve: Callable[[Handler], RawServer],
) -> None:
    """A kept-alive connection the server closed while idle is not used again: the next
    fetch opens a new one and succeeds."""

    def handler(server: RawServer, conn: socket.socket) -> None:
        if server.read_request(conn) is not None:
            conn.sendall(answer(b'{"n": 1}'))  # keep-alive by default, then hang up

    server = serve(handler)
    with fetcher() as f:
        assert f.fetch(server.url()).value == {"n": 1}
        for thread in server.threads:
            thread.join(timeout=5)  # the server has closed its end
        assert f.fetch(server.url()).value == {"n": 1}
    assert server.connections == 2


def test_connection_dropped_on_the_next_request_is_retried_once(
    serve: Callable[[Handler], RawServer],
) -> None:
    """A kept-alive connection the server drops on receiving the next request (a
    keep-alive time-out racing the request) is retried once on a new connection."""

    def handler(server: RawServer, conn: socket.socket) -> None:
        if server.read_request(conn) is None:
            return
        conn.sendall(answer(b'{"n": 2}'))
        server.read_request(conn)  # the second request: hang up without answering

    server = serve(handler)
    with fetcher() as f:
        assert f.fetch(server.url()).value == {"n": 2}
        assert f.fetch(server.url()).value == {"n": 2}
    assert server.connections == 2
    assert len(server.requests) == 3


def test_fresh_connection_dropped_is_not_retried(serve: Callable[[Handler], RawServer]) -> None:
    """A new connection closed without an answer is a failure (no endless retrying)."""

    def handler(server: RawServer, conn: socket.socket) -> None:
        server.read_request(conn)

    server = serve(handler)
    with fetcher() as f, pytest.raises(InputFailed, match="before answering"):
        f.fetch(server.url())
    assert server.connections == 1


# -- what is sent ----------------------------------------------------------------------------


def test_request_line_is_percent_encoded(serve: Callable[[Handler], RawServer]) -> None:
    """Spaces, quotes and non-ASCII characters of a URL travel percent-encoded (UTF-8);
    existing escapes are kept; the Host header names the URL's host and port."""
    server = serve(keep_alive(answer(b"{}")))
    with fetcher() as f:
        f.fetch(server.url('/a b/ä/%41?q="x y"&r=%zz#frag'))
    line, *headers = server.requests[0].split(b"\r\n")
    assert line == b"GET /a%20b/%C3%A4/%41?q=%22x%20y%22&r=%25zz HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in headers


@pytest.mark.parametrize("junk", ["\r\nX-Injected: 1", "\n", "\x00", "\t"])
def test_control_characters_in_url_refused_unsent(
    serve: Callable[[Handler], RawServer], junk: str
) -> None:
    """A URL holding CR, LF, NUL or another control character is refused and nothing
    is sent (no header injection)."""
    server = serve(keep_alive(answer(b"{}")))
    with fetcher() as f, pytest.raises(InputRefused, match="not a valid URL"):
        f.fetch(server.url("/in.json" + junk))
    assert server.requests == []


def test_no_cookies_sent(serve: Callable[[Handler], RawServer]) -> None:
    """A cookie a server sets is never sent back, on the same connection or another."""
    server = serve(keep_alive(answer(b"{}", JSON_HEAD + b"Set-Cookie: s=1; Path=/\r\n")))
    with fetcher() as f:
        f.fetch(server.url())
        f.fetch(server.url("/other.json"))
    assert len(server.requests) == 2
    assert all(b"cookie" not in r.lower().split(b"\r\n", 1)[1] for r in server.requests)


def test_redirect_location_in_utf8_is_followed(serve: Callable[[Handler], RawServer]) -> None:
    """A Location header with UTF-8 characters is followed, percent-encoded."""
    redirect = (
        b"HTTP/1.1 302 Found\r\nLocation: /d\xc3\xa9j\xc3\xa0.json\r\nContent-Length: 0\r\n\r\n"
    )
    server = serve(keep_alive(redirect, answer(b'{"moved": true}')))
    with fetcher() as f:
        assert f.fetch(server.url()).value == {"moved": True}
    assert server.requests[1].startswith(b"GET /d%C3%A9j%C3%A0.json HTTP/1.1")
    assert server.connections == 1


_NO_SSL = """
import sys
import jobrunner.config
from jobrunner.fetch import Fetcher
from tests.support import RawHandler as Handler
from tests.support import RawServer

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ssl", "_ssl", "httpx", "httpcore", "h11", "certifi"):
            raise ImportError(f"{name} imported by an http fetch")

for name in ("ssl", "_ssl"):  # loaded by other imports (logging): forget them
    sys.modules.pop(name, None)
sys.meta_path.insert(0, Refuse())
config = jobrunner.config.Config(allow_host=["127.0.0.1"])
print(Fetcher(config).fetch(sys.argv[1]).value)
"""


def test_http_fetch_imports_neither_ssl_nor_httpx(serve: Callable[[Handler], RawServer]) -> None:
    """A child fetching http inputs never imports ssl or httpx (memory: ssl is loaded
    on the first https input only)."""
    server = serve(keep_alive(answer(b'{"plain": "http"}')))
    done = subprocess.run(
        [sys.executable, "-c", _NO_SSL, server.url()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'plain': 'http'}"
