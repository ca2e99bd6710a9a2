"""Fetcher against a real HTTP server (uvicorn on 127.0.0.1): policy, pinning, reuse, limits.

All traffic goes to 127.0.0.1 or ::1; every server loop is bounded. Connection
attempts are recorded by wrapping the function that opens the fetcher's
sockets, so the tests can show that a refused address is never connected to.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from jobrunner import _http1
from jobrunner.config import Config
from jobrunner.errors import InputFailed, InputRefused, InputTooLarge, InputUnavailable
from jobrunner.fetch import Fetcher
from jobrunner.testing import free_port
from tests.support import answer_lifespan

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
BIG = b"b" * (2 * MIB)
BOMB = gzip.compress(b"\0" * (20 * MIB))


class InputsApp:
    """A tiny ASGI app serving the inputs the tests need; records client ports and Host headers."""

    def __init__(self) -> None:
        self.client_ports: list[int] = []
        self.hosts: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        path = scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.client_ports.append(scope["client"][1])
        self.hosts.append(headers.get("host", ""))

        async def answer(status: int, body: bytes = b"", **extra: str) -> None:
            head = [(k.replace("_", "-").encode(), v.encode()) for k, v in extra.items()]
            head.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": head})
            await send({"type": "http.response.body", "body": body})

        if path == "/json":
            body = b'{"meters": [1, 2, 3], "host": "%s"}' % headers.get("host", "").encode()
            await answer(
                200,
                body,
                content_type="application/json",
                etag='"e1"',
                last_modified="Wed, 21 Oct 2015 07:28:00 GMT",
            )
        elif path == "/csv":
            await answer(200, b"t,kwh\n0,1.5\n", content_type="text/csv")
        elif path == "/redirect-json":
            await answer(302, b"moved", location="/json")
        elif path == "/redirect-private":
            await answer(302, location="http://10.0.0.1/")
        elif path == "/redirect-metadata":
            await answer(301, location="http://169.254.169.254/latest/meta-data/")
        elif path == "/404":
            await answer(404, b"not here", content_type="text/plain")
        elif path == "/500":
            await answer(500, b"boom", content_type="text/plain")
        elif path == "/big":
            await answer(200, BIG, content_type="application/octet-stream")
        elif path == "/bomb":
            await answer(200, BOMB, content_type="application/json", content_encoding="gzip")
        elif path == "/drip":
            gone = asyncio.Event()

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                gone.set()

            watcher = asyncio.create_task(watch())
            start = [(b"content-type", b"application/octet-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": start})
            for _ in range(50):  # at most 5 s; the client gives up after 1 s and hangs up
                await asyncio.sleep(0.1)
                if gone.is_set():
                    return
                await send({"type": "http.response.body", "body": b"x", "more_body": True})
            watcher.cancel()
            await send({"type": "http.response.body", "body": b""})
        else:
            await answer(404)


class Server:
    """uvicorn serving :class:`InputsApp` in a thread."""

    def __init__(self, host: str = "127.0.0.1", **ssl: Any) -> None:
        self.app = InputsApp()
        self.host = host
        self.port = free_port(host)
        config = uvicorn.Config(
            self.app,
            host=host,
            port=self.port,
            log_level="warning",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=1,
            **ssl,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def url(self, path: str, host: str | None = None) -> str:
        shown = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"http://{shown}:{self.port}{path}"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server().start()
    yield srv
    srv.stop()


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection attempt the fetcher makes, as (address, port)."""
    seen: list[tuple[str, int]] = []
    original = _http1.open_socket

    def recording(address: str, port: int, timeout: float) -> socket.socket:
        seen.append((address, port))
        return original(address, port, timeout)

    monkeypatch.setattr(_http1, "open_socket", recording)
    return seen


class Resolver:
    """A stub resolver with a table that tests may change; records the lookups."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise OSError(f"unknown host {host}")
        return list(self.table[host])


def loopback_fetcher(resolver: Resolver | None = None, **settings: Any) -> Fetcher:
    settings.setdefault("allow_host", ("127.0.0.1",))
    return Fetcher(Config(**settings), resolver=resolver)


# -- content -------------------------------------------------------------------------------


def test_json_and_csv_inputs(server: Server) -> None:
    """JSON is parsed with its validators captured; CSV comes as bytes."""
    with loopback_fetcher() as fetcher:
        got = fetcher.fetch(server.url("/json"))
        csv = fetcher.fetch(server.url("/csv"))
    assert got.value["meters"] == [1, 2, 3]
    assert got.etag == '"e1"'
    assert got.last_modified == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert len(got.sha256) == 64
    assert csv.value == b"t,kwh\n0,1.5\n"


def test_redirect_on_same_server(server: Server) -> None:
    """A relative redirect is followed and the job's URL is kept in the result."""
    with loopback_fetcher() as fetcher:
        got = fetcher.fetch(server.url("/redirect-json"))
    assert got.value["meters"] == [1, 2, 3]
    assert got.url == server.url("/redirect-json")


def test_fetch_all_over_real_connections(server: Server) -> None:
    """Several named inputs are fetched together and come back under their names."""
    with loopback_fetcher() as fetcher:
        got = fetcher.fetch_all(
            {"a": server.url("/json"), "b": server.url("/csv"), "c": server.url("/redirect-json")}
        )
    assert got["a"].value["meters"] == [1, 2, 3]
    assert got["b"].value.startswith(b"t,kwh")
    assert got["c"].sha256 == got["a"].sha256


# -- connection reuse ----------------------------------------------------------------------


def test_connection_reused_across_fetches(server: Server, connects: list[tuple[str, int]]) -> None:
    """Sequential fetches to one server share one keep-alive connection, errors included."""
    ports_before = len(server.app.client_ports)
    with loopback_fetcher() as fetcher:
        for _ in range(5):
            fetcher.fetch(server.url("/json"))
        with pytest.raises(InputUnavailable):
            fetcher.fetch(server.url("/404"))
        with pytest.raises(InputFailed):
            fetcher.fetch(server.url("/500"))
        fetcher.fetch(server.url("/redirect-json"))
        fetcher.fetch(server.url("/json"))
    ports = server.app.client_ports[ports_before:]
    assert len(ports) == 10
    assert len(set(ports)) == 1, "the server saw more than one connection"
    assert connects == [("127.0.0.1", server.port)]


def test_many_fetches_one_connection(server: Server, connects: list[tuple[str, int]]) -> None:
    """Hundreds of fetches in a row open a single connection (the per-child fast path)."""
    with loopback_fetcher() as fetcher:
        start = time.perf_counter()
        for _ in range(300):
            fetcher.fetch(server.url("/json"))
        elapsed = time.perf_counter() - start
    assert len(connects) == 1
    assert elapsed < 30  # generous: about 1 ms a fetch on a laptop


# -- policy over the network ----------------------------------------------------------------


def test_loopback_refused_without_allow_list(
    server: Server, connects: list[tuple[str, int]]
) -> None:
    """Without --allow-host, the server on 127.0.0.1 (or localhost) is refused, unconnected."""
    with Fetcher(Config()) as fetcher:
        with pytest.raises(InputRefused) as info:
            fetcher.fetch(server.url("/json"))
        assert "loopback" in info.value.message
        assert "--allow-host" in info.value.message
        with pytest.raises(InputRefused, match="loopback"):
            fetcher.fetch(server.url("/json", host="localhost"))
    assert connects == []


@pytest.mark.parametrize("entry", ["localhost", "127.0.0.0/8"])
def test_allow_host_localhost_or_cidr(server: Server, entry: str) -> None:
    """--allow-host localhost or 127.0.0.0/8 opens the loopback server (README demo)."""
    resolver = Resolver({"localhost": ["127.0.0.1"]})
    with loopback_fetcher(resolver, allow_host=(entry,)) as fetcher:
        assert fetcher.fetch(server.url("/json", host="localhost")).value["meters"] == [1, 2, 3]


@pytest.mark.parametrize(
    ("path", "address"),
    [("/redirect-private", "10.0.0.1"), ("/redirect-metadata", "169.254.169.254")],
)
def test_redirect_to_refused_address_not_connected(
    server: Server, connects: list[tuple[str, int]], path: str, address: str
) -> None:
    """A redirect to a private or metadata address is refused by policy without connecting."""
    with loopback_fetcher() as fetcher, pytest.raises(InputRefused) as info:
        fetcher.fetch(server.url(path))
    assert address in info.value.message
    assert server.url(path) in info.value.message
    assert [host for host, _ in connects] == ["127.0.0.1"]


def test_dns_pinning_keeps_host_name(server: Server, connects: list[tuple[str, int]]) -> None:
    """A name resolving to an allowed address is fetched from the checked address,
    with the original name in the Host header, resolved once for a reused connection."""
    resolver = Resolver({"inputs.test": ["127.0.0.1"]})
    with loopback_fetcher(resolver) as fetcher:
        got = fetcher.fetch(server.url("/json", host="inputs.test"))
        fetcher.fetch(server.url("/json", host="inputs.test"))
        fetcher.fetch(server.url("/csv", host="inputs.test"))
    assert got.value["host"] == f"inputs.test:{server.port}"
    assert server.app.hosts[-1] == f"inputs.test:{server.port}"
    assert connects == [("127.0.0.1", server.port)]
    assert resolver.calls == ["inputs.test"]


def test_no_rebinding_between_check_and_connect(
    server: Server, connects: list[tuple[str, int]]
) -> None:
    """If DNS changes after check_url, the connection uses the new answer only after checking it."""
    resolver = Resolver({"rebind.test": ["127.0.0.1"]})
    with loopback_fetcher(resolver) as fetcher:
        fetcher.check_url(server.url("/json", host="rebind.test"))  # passes: 127.0.0.1
        resolver.table["rebind.test"] = ["10.0.0.1"]  # the attacker's DNS changes its answer
        with pytest.raises(InputRefused, match=r"10\.0\.0\.1"):
            fetcher.fetch(server.url("/json", host="rebind.test"))
    assert connects == []


def test_first_allowed_address_connected_in_order(
    server: Server, connects: list[tuple[str, int]]
) -> None:
    """With several checked addresses, a refused connection falls through to the next one."""
    dead = free_port()  # nobody listens on this port of 127.0.0.2
    resolver = Resolver({"multi.test": ["127.0.0.2", "127.0.0.1"]})
    with loopback_fetcher(resolver, allow_host=("127.0.0.0/8",)) as fetcher:
        with pytest.raises(InputFailed):
            fetcher.fetch(f"http://multi.test:{dead}/json")
        assert fetcher.fetch(server.url("/json", host="multi.test")).value["meters"]
    assert ("127.0.0.2", dead) in connects


# -- status, size and time -----------------------------------------------------------------


def test_status_mapping(server: Server) -> None:
    """404 is a permanent InputUnavailable, 500 a retryable InputFailed, both naming the status."""
    with loopback_fetcher() as fetcher:
        with pytest.raises(InputUnavailable, match="HTTP 404"):
            fetcher.fetch(server.url("/404"))
        with pytest.raises(InputFailed, match="HTTP 500") as info:
            fetcher.fetch(server.url("/500"))
    assert info.value.retryable


def test_big_body_and_bomb_refused(server: Server) -> None:
    """A body over max_input_bytes and a gzip bomb both stop at the limit."""
    with loopback_fetcher(max_input_bytes=MIB) as fetcher:
        with pytest.raises(InputTooLarge, match="max_input_bytes"):
            fetcher.fetch(server.url("/big"))
        with pytest.raises(InputTooLarge, match="after decoding"):
            fetcher.fetch(server.url("/bomb"))
    with loopback_fetcher(max_input_bytes=4 * MIB) as fetcher:
        assert len(fetcher.fetch(server.url("/big")).body) == len(BIG)


def test_slow_drip_fails_at_deadline(server: Server) -> None:
    """A body dripping a byte every 0.1 s fails at the 1 s total deadline, retryably."""
    with loopback_fetcher(fetch_timeout=1.0, read_timeout=30.0) as fetcher:
        start = time.monotonic()
        with pytest.raises(InputFailed) as info:
            fetcher.fetch(server.url("/drip"))
        elapsed = time.monotonic() - start
    assert "deadline" in info.value.message
    assert 0.8 < elapsed < 3.0


def test_header_drip_fails_at_deadline(connects: list[tuple[str, int]]) -> None:
    """A server dripping its status line and headers byte by byte also fails at the deadline."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:  # bounded: 10 s at most
                if stop.is_set():
                    break
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    break
                time.sleep(0.1)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        with loopback_fetcher(fetch_timeout=1.0, read_timeout=30.0) as fetcher:
            start = time.monotonic()
            with pytest.raises(InputFailed, match="deadline"):
                fetcher.fetch(f"http://127.0.0.1:{port}/")
            assert time.monotonic() - start < 3.0
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


def test_connection_refused_is_retryable() -> None:
    """Nothing listening is a retryable InputFailed."""
    with loopback_fetcher() as fetcher, pytest.raises(InputFailed) as info:
        fetcher.fetch(f"http://127.0.0.1:{free_port()}/")
    assert info.value.retryable


# -- IPv6 and TLS ----------------------------------------------------------------------------


def test_ipv6_loopback() -> None:
    """A server on ::1 is refused by default and fetched when --allow-host ::1 is set."""
    try:
        server = Server("::1").start()
    except (OSError, RuntimeError):
        pytest.skip("no IPv6 loopback here")
    try:
        with Fetcher(Config()) as fetcher, pytest.raises(InputRefused, match="loopback"):
            fetcher.fetch(server.url("/json"))
        with Fetcher(Config(allow_host=("::1",))) as fetcher:
            assert fetcher.fetch(server.url("/json")).value["meters"] == [1, 2, 3]
    finally:
        server.stop()


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls_sni_and_verification_use_original_name(
    tmp_path: Path, connects: list[tuple[str, int]]
) -> None:
    """Over TLS to a pinned 127.0.0.1 the certificate is verified for the URL's name."""
    import ssl

    cert, key = _certificate(tmp_path, "inputs.test")
    server = Server(ssl_certfile=str(cert), ssl_keyfile=str(key)).start()
    context = ssl.create_default_context(cafile=str(cert))
    resolver = Resolver({"inputs.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    config = Config(allow_host=("127.0.0.1",))
    try:
        with Fetcher(config, resolver=resolver, ssl_context=context) as fetcher:
            got = fetcher.fetch(f"https://inputs.test:{server.port}/json")
            assert got.value["host"] == f"inputs.test:{server.port}"
            with pytest.raises(InputFailed, match=r"(?i)certificate"):
                fetcher.fetch(f"https://other.test:{server.port}/json")
    finally:
        server.stop()
    assert {host for host, _ in connects} == {"127.0.0.1"}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls_verified_by_default(tmp_path: Path) -> None:
    """Without a TLS context of its own, the fetcher verifies certificates (certifi's CA
    bundle): a self-signed server is a retryable certificate failure, not a fetch."""
    cert, key = _certificate(tmp_path, "inputs.test")
    server = Server(ssl_certfile=str(cert), ssl_keyfile=str(key)).start()
    resolver = Resolver({"inputs.test": ["127.0.0.1"]})
    try:
        with loopback_fetcher(resolver) as fetcher:
            with pytest.raises(InputFailed, match=r"(?i)certificate verify failed") as info:
                fetcher.fetch(f"https://inputs.test:{server.port}/json")
            assert info.value.retryable
    finally:
        server.stop()
