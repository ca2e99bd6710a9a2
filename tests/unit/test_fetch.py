"""Fetcher behaviour against httpx.MockTransport: redirects, status mapping, limits, decoding.

No network: every host resolves through a stub resolver to a public
documentation-free address, and every request is answered by a handler.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobrunner.config import Config
from jobrunner.errors import (
    ConfigError,
    InputFailed,
    InputInvalid,
    InputRefused,
    InputTooLarge,
    InputUnavailable,
)
from jobrunner.fetch import FetchedInput, Fetcher, is_json_type
from jobrunner.job import InputProvenance

PUBLIC = "93.184.216.34"
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that records the URLs requested."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.urls: list[str] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        self.requests.append(request)
        return self.handler(request)


def public_resolver(host: str, port: int) -> list[str]:
    """Every name is public, except the ones the tests point inward."""
    if host.startswith("inward."):
        return ["10.9.8.7"]
    if host.startswith("nxdomain."):
        raise OSError("Name or service not known")
    return [PUBLIC]


def make(handler: Handler, **settings: Any) -> Fetcher:
    return Fetcher(
        Config(**settings), transport=httpx.MockTransport(handler), resolver=public_resolver
    )


def json_response(value: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(200, json={"ok": True} if value is None else value, headers=headers)


# -- decoding and fingerprints -------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/geo+json",
        "Application/JSON",
        "application/vnd.api+json",
    ],
)
def test_json_content_types_are_parsed(content_type: str) -> None:
    """application/json and */*+json bodies are decoded into JSON values."""
    body = b'{"meters": [1, 2.5, null], "name": "\xc3\xa9"}'
    with make(
        lambda r: httpx.Response(200, content=body, headers={"Content-Type": content_type})
    ) as f:
        got = f.fetch("https://data.example/in")
    assert got.value == {"meters": [1, 2.5, None], "name": "é"}
    assert got.content_type == content_type


@pytest.mark.parametrize(
    "content_type",
    ["text/csv", "application/octet-stream", "text/plain", "application/jsonx", "json", None],
)
def test_other_content_types_are_bytes(content_type: str | None) -> None:
    """Non-JSON content types (or none) give the body as bytes."""
    headers = {"Content-Type": content_type} if content_type else {}
    with make(lambda r: httpx.Response(200, content=b"a,b\n1,2\n", headers=headers)) as f:
        got = f.fetch("https://data.example/in.csv")
    assert got.value == b"a,b\n1,2\n"
    assert isinstance(got.value, bytes)


def test_is_json_type() -> None:
    """is_json_type accepts JSON media types with parameters and rejects look-alikes."""
    assert is_json_type("application/json;charset=utf-8")
    assert is_json_type("application/problem+json")
    assert not is_json_type("text/json-ish")
    assert not is_json_type("+json")
    assert not is_json_type(None)


def test_validators_and_sha256_captured() -> None:
    """ETag, Last-Modified and the body's SHA-256 are kept and go into provenance."""
    body = b'{"x": 1}'
    headers = {
        "Content-Type": "application/json",
        "ETag": '"v42"',
        "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT",
    }
    with make(lambda r: httpx.Response(200, content=body, headers=headers)) as f:
        got = f.fetch("https://data.example/in.json")
    assert got.sha256 == hashlib.sha256(body).hexdigest()
    assert got.body == body
    assert got.etag == '"v42"'
    assert got.last_modified == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert got.provenance("meters") == InputProvenance(
        url="https://data.example/in.json",
        sha256=got.sha256,
        name="meters",
        etag='"v42"',
        last_modified="Wed, 21 Oct 2015 07:28:00 GMT",
    )
    assert got.provenance(None).name is None


def test_missing_validators_are_none() -> None:
    """Without ETag / Last-Modified headers the fields are None."""
    with make(lambda r: json_response()) as f:
        got = f.fetch("https://data.example/in.json")
    assert got.etag is None
    assert got.last_modified is None


def test_gzip_body_decoded_and_fingerprinted_after_decoding() -> None:
    """A gzip-encoded body is decompressed; body and SHA-256 are of the decoded bytes."""
    plain = b'{"values": [' + b",".join(b"1" for _ in range(1000)) + b"]}"
    with make(
        lambda r: httpx.Response(
            200,
            stream=httpx.ByteStream(gzip.compress(plain)),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
    ) as f:
        got = f.fetch("https://data.example/in.json")
    assert got.body == plain
    assert got.sha256 == hashlib.sha256(plain).hexdigest()
    assert len(got.value["values"]) == 1000


def test_deeply_nested_json_is_invalid_not_recursion_error() -> None:
    """100 000 levels of nesting raise InputInvalid, not RecursionError."""
    body = b"[" * 100_000 + b"]" * 100_000
    f = make(
        lambda r: httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
    )
    with pytest.raises(InputInvalid, match="nests deeper"):
        f.fetch("https://data.example/deep.json")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"x": NaN}', "NaN"),
        (b"[Infinity]", "Infinity"),
        (b'{"x": 1', "not valid JSON"),
        (b'{"x": "\xff"}', "UTF-8"),
    ],
)
def test_invalid_json_is_input_invalid(body: bytes, words: str) -> None:
    """Bad JSON (syntax, NaN/Infinity, bad UTF-8) is a permanent InputInvalid naming the URL."""
    f = make(
        lambda r: httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
    )
    with pytest.raises(InputInvalid) as info:
        f.fetch("https://data.example/bad.json")
    assert words in info.value.message
    assert "https://data.example/bad.json" in info.value.message
    assert not info.value.retryable


def test_corrupt_gzip_is_input_invalid() -> None:
    """A body that claims gzip but is not is InputInvalid."""
    f = make(
        lambda r: httpx.Response(
            200, stream=httpx.ByteStream(b"not gzip at all"), headers={"Content-Encoding": "gzip"}
        )
    )
    with pytest.raises(InputInvalid, match="decoded"):
        f.fetch("https://data.example/x")


def test_request_headers() -> None:
    """Requests identify jobrunner and prefer JSON."""
    recorder = Recorder(lambda r: json_response())
    with make(recorder) as f:
        f.fetch("https://data.example/in.json")
    headers = recorder.requests[0].headers
    assert headers["User-Agent"].startswith("jobrunner/")
    assert "application/json" in headers["Accept"]


# -- size limit ----------------------------------------------------------------------------


def test_body_over_limit_is_too_large() -> None:
    """A body above max_input_bytes raises InputTooLarge naming the limit and the setting."""
    f = make(lambda r: httpx.Response(200, content=b"x" * 2001), max_input_bytes=2000)
    with pytest.raises(InputTooLarge) as info:
        f.fetch("https://data.example/big")
    assert "2000" in info.value.message
    assert "max-input-bytes" in info.value.message


def test_body_at_limit_is_fine() -> None:
    """A body of exactly max_input_bytes is accepted."""
    with make(lambda r: httpx.Response(200, content=b"x" * 2000), max_input_bytes=2000) as f:
        assert len(f.fetch("https://data.example/big").body) == 2000


def test_announced_length_over_limit_fails_before_reading() -> None:
    """A Content-Length above the limit fails without reading the body."""

    class Endless(httpx.SyncByteStream):
        read = 0

        def __iter__(self) -> Iterator[bytes]:
            for _ in range(1000):
                Endless.read += 1
                yield b"x" * 1000

    f = make(
        lambda r: httpx.Response(200, headers={"Content-Length": "1000000"}, stream=Endless()),
        max_input_bytes=1000,
    )
    with pytest.raises(InputTooLarge, match="announces 1000000"):
        f.fetch("https://data.example/big")
    assert Endless.read == 0


def test_streamed_body_stops_at_limit() -> None:
    """A chunked body without length stops being read just past the limit."""
    produced = []

    class Stream(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            for i in range(10_000):
                produced.append(i)
                yield b"y" * 1024

    f = make(lambda r: httpx.Response(200, stream=Stream()), max_input_bytes=10 * 1024)
    with pytest.raises(InputTooLarge):
        f.fetch("https://data.example/stream")
    assert len(produced) <= 12


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
    ],
)
def test_compression_bomb_stops_at_decoded_limit(
    encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    """A small compressed body inflating past the limit is InputTooLarge (decoded bytes count)."""
    bomb = compress(b"\0" * (50 * 1024 * 1024))
    assert len(bomb) < 100 * 1024
    f = make(
        lambda r: httpx.Response(
            200,
            stream=httpx.ByteStream(bomb),
            headers={"Content-Encoding": encoding, "Content-Type": "application/json"},
        ),
        max_input_bytes=1024 * 1024,
    )
    with pytest.raises(InputTooLarge, match="after decoding"):
        f.fetch("https://data.example/bomb.json")


# -- status mapping ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 451])
def test_4xx_is_input_unavailable(status: int) -> None:
    """A 4xx answer is a permanent InputUnavailable whose message has URL and status."""
    f = make(lambda r: httpx.Response(status))
    with pytest.raises(InputUnavailable) as info:
        f.fetch("https://data.example/missing.json")
    assert f"HTTP {status}" in info.value.message
    assert "https://data.example/missing.json" in info.value.message
    assert not info.value.retryable


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_5xx_and_try_later_statuses_are_input_failed(status: int) -> None:
    """5xx, 408 and 429 are retryable InputFailed with the status in the message."""
    f = make(lambda r: httpx.Response(status))
    with pytest.raises(InputFailed) as info:
        f.fetch("https://data.example/in.json")
    assert f"HTTP {status}" in info.value.message
    assert info.value.retryable


@pytest.mark.parametrize("status", [304, 300])
def test_odd_3xx_is_input_unavailable(status: int) -> None:
    """A 3xx that is not a redirect with Location is a permanent failure."""
    f = make(lambda r: httpx.Response(status))
    with pytest.raises(InputUnavailable, match=f"HTTP {status}"):
        f.fetch("https://data.example/x")


@pytest.mark.parametrize(
    ("exc", "word"),
    [
        (httpx.ConnectTimeout("slow"), "in time"),
        (httpx.ReadTimeout("slow"), "in time"),
        (httpx.ConnectError("refused"), "refused"),
        (httpx.ReadError("reset"), "reset"),
        (httpx.RemoteProtocolError("closed early"), "closed early"),
    ],
)
def test_transport_errors_are_input_failed(exc: Exception, word: str) -> None:
    """Time-outs, connection and protocol errors become retryable InputFailed, chained."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    f = make(handler)
    with pytest.raises(InputFailed) as info:
        f.fetch("https://data.example/x")
    assert word in info.value.message
    assert "https://data.example/x" in info.value.message
    assert info.value.__cause__ is exc


def test_unresolvable_host_is_input_failed() -> None:
    """A name that does not resolve is a retryable InputFailed."""
    f = make(lambda r: json_response())
    with pytest.raises(InputFailed, match="cannot resolve"):
        f.fetch("https://nxdomain.example/x")


# -- deadline ------------------------------------------------------------------------------


def test_slow_drip_hits_deadline() -> None:
    """A body trickling in slower than fetch_timeout fails at the deadline, retryably."""

    class Drip(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            for _ in range(100):
                time.sleep(0.05)
                yield b"x"

    with make(lambda r: httpx.Response(200, stream=Drip()), fetch_timeout=0.3) as f:
        start = time.monotonic()
        with pytest.raises(InputFailed) as info:
            f.fetch("https://data.example/drip")
    assert "deadline" in info.value.message
    assert "fetch_timeout" in info.value.message
    assert time.monotonic() - start < 1.5


def test_deadline_covers_redirect_hops() -> None:
    """The deadline is for the whole fetch, redirects included."""

    def handler(request: httpx.Request) -> httpx.Response:
        time.sleep(0.15)
        return httpx.Response(302, headers={"Location": "/again"})

    f = make(handler, fetch_timeout=0.3, max_redirects=10)
    with pytest.raises(InputFailed, match="deadline"):
        f.fetch("https://data.example/start")


# -- redirects -----------------------------------------------------------------------------


def test_redirect_chain_followed() -> None:
    """Relative and absolute redirects are followed; url stays the job's URL."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/a":
            return httpx.Response(301, headers={"Location": "/b"})
        if path == "/b":
            return httpx.Response(302, headers={"Location": "https://mirror.example/c"})
        if path == "/c":
            return httpx.Response(307, headers={"Location": "d?x=1"})
        return json_response({"at": str(request.url)})

    recorder = Recorder(handler)
    with make(recorder) as f:
        got = f.fetch("https://data.example/a")
    assert got.value == {"at": "https://mirror.example/d?x=1"}
    assert got.url == "https://data.example/a"
    assert recorder.urls == [
        "https://data.example/a",
        "https://data.example/b",
        "https://mirror.example/c",
        "https://mirror.example/d?x=1",
    ]


def test_too_many_redirects() -> None:
    """More than max_redirects hops is a permanent failure naming the setting."""
    recorder = Recorder(lambda r: httpx.Response(302, headers={"Location": "/loop"}))
    f = make(recorder, max_redirects=3)
    with pytest.raises(InputUnavailable, match="more than 3 redirects"):
        f.fetch("https://data.example/loop")
    assert len(recorder.urls) == 4


def test_zero_redirects_allowed() -> None:
    """max_redirects=0 refuses the first redirect."""
    f = make(lambda r: httpx.Response(302, headers={"Location": "/x"}), max_redirects=0)
    with pytest.raises(InputUnavailable, match="redirects"):
        f.fetch("https://data.example/")


@pytest.mark.parametrize(
    ("location", "word"),
    [
        ("http://10.0.0.1/", "private"),
        ("http://127.0.0.1:8080/admin", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[::1]/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://inward.example/", "private"),
        ("ftp://data.example/x", "scheme"),
    ],
)
def test_redirect_to_refused_url_is_never_requested(location: str, word: str) -> None:
    """A redirect to a refused URL raises InputRefused naming both URLs; it is not requested."""
    recorder = Recorder(lambda r: httpx.Response(302, headers={"Location": location}))
    f = make(recorder)
    with pytest.raises(InputRefused) as info:
        f.fetch("https://data.example/start")
    assert recorder.urls == ["https://data.example/start"]
    assert "https://data.example/start" in info.value.message
    assert word in info.value.message


def test_redirect_to_file_refused_even_when_file_inputs_enabled(tmp_path: Path) -> None:
    """file: is never a redirect target."""
    (tmp_path / "x.json").write_text("{}")
    recorder = Recorder(
        lambda r: httpx.Response(302, headers={"Location": f"file://{tmp_path}/x.json"})
    )
    f = make(recorder, allow_file_inputs=tmp_path)
    with pytest.raises(InputRefused, match="scheme 'file'"):
        f.fetch("https://data.example/start")


def test_redirect_policy_follows_allow_list() -> None:
    """With an allow-list, a redirect to an unlisted host is refused."""
    recorder = Recorder(
        lambda r: httpx.Response(302, headers={"Location": "https://evil.example/"})
    )
    f = make(recorder, allow_host=("data.example",))
    with pytest.raises(InputRefused, match="not on the allow-list"):
        f.fetch("https://data.example/start")
    assert recorder.urls == ["https://data.example/start"]


# -- policy at the entry ------------------------------------------------------------------


def test_first_url_checked_before_request() -> None:
    """A refused input URL is never requested."""
    recorder = Recorder(lambda r: json_response())
    with make(recorder) as f:
        for url in (
            "http://127.0.0.1/",
            "http://inward.example/",
            "gopher://x/",
            "https://u:p@data.example/",
        ):
            with pytest.raises(InputRefused):
                f.fetch(url)
    assert recorder.urls == []


def test_check_url_fails_early_without_request() -> None:
    """check_url applies the policy (with resolution) and makes no request."""
    recorder = Recorder(lambda r: json_response())
    with make(recorder) as f:
        f.check_url("https://data.example/x")
        f.check_url("https://nxdomain.example/x")  # not a policy matter
        with pytest.raises(InputRefused, match=r"10\.9\.8\.7"):
            f.check_url("https://inward.example/x")
        with pytest.raises(InputRefused, match="allow-file-inputs"):
            f.check_url("file:///etc/passwd")
    assert recorder.urls == []


def test_invalid_allow_host_is_config_error() -> None:
    """A malformed --allow-host entry is reported as a ConfigError."""
    with pytest.raises(ConfigError, match="allow_host"):
        make(lambda r: json_response(), allow_host=("10.0.0.0/99",))


# -- file: inputs --------------------------------------------------------------------------


def test_file_input_read_and_decoded(tmp_path: Path) -> None:
    """A file below allow_file_inputs is read; .json files are parsed; mtime is Last-Modified."""
    (tmp_path / "in.json").write_bytes(b'{"a": [1]}')
    (tmp_path / "in.csv").write_bytes(b"a\n1\n")
    with make(lambda r: json_response(), allow_file_inputs=tmp_path) as f:
        got = f.fetch(f"file://{tmp_path}/in.json")
        csv = f.fetch(f"file://{tmp_path}/in.csv")
    assert got.value == {"a": [1]}
    assert got.sha256 == hashlib.sha256(b'{"a": [1]}').hexdigest()
    assert got.last_modified is not None and got.last_modified.endswith("GMT")
    assert csv.value == b"a\n1\n"


def test_file_input_limits_and_errors(tmp_path: Path) -> None:
    """file: inputs obey the size limit, and missing files or directories are unavailable."""
    (tmp_path / "big.bin").write_bytes(b"z" * 101)
    (tmp_path / "deep.json").write_bytes(b"[" * 5000 + b"]" * 5000)
    (tmp_path / "dir").mkdir()
    f = make(lambda r: json_response(), allow_file_inputs=tmp_path, max_input_bytes=100)
    with pytest.raises(InputTooLarge):
        f.fetch(f"file://{tmp_path}/big.bin")
    with pytest.raises(InputUnavailable, match="no such file"):
        f.fetch(f"file://{tmp_path}/missing.json")
    with pytest.raises(InputUnavailable, match="not a regular file"):
        f.fetch(f"file://{tmp_path}/dir")
    f = make(lambda r: json_response(), allow_file_inputs=tmp_path)
    with pytest.raises(InputInvalid, match="nests deeper"):
        f.fetch(f"file://{tmp_path}/deep.json")


def test_file_input_refused_when_disabled_or_outside(tmp_path: Path) -> None:
    """file: URLs are refused when disabled and outside the directory."""
    (tmp_path / "in.json").write_text("{}")
    f = make(lambda r: json_response())
    with pytest.raises(InputRefused, match="disabled"):
        f.fetch(f"file://{tmp_path}/in.json")
    f = make(lambda r: json_response(), allow_file_inputs=tmp_path / "sub")
    with pytest.raises(InputRefused, match="outside"):
        f.fetch(f"file://{tmp_path}/in.json")


# -- several inputs ------------------------------------------------------------------------


def test_fetch_all_runs_inputs_concurrently() -> None:
    """Named inputs are fetched in parallel threads (a barrier only opens for all three)."""
    barrier = threading.Barrier(3, timeout=5)

    def handler(request: httpx.Request) -> httpx.Response:
        barrier.wait()
        return json_response({"path": request.url.path})

    with make(handler) as f:
        got = f.fetch_all(
            {"a": "https://d.example/a", "b": "https://d.example/b", "c": "https://d.example/c"}
        )
    assert list(got) == ["a", "b", "c"]
    assert got["b"].value == {"path": "/b"}
    assert all(isinstance(v, FetchedInput) for v in got.values())


def test_fetch_all_single_input_in_calling_thread() -> None:
    """One input (key None) is fetched in the caller's thread, without the pool."""
    threads = []

    def handler(request: httpx.Request) -> httpx.Response:
        threads.append(threading.current_thread())
        return json_response()

    with make(handler) as f:
        got = f.fetch_all({None: "https://d.example/in.json"})
        assert f._executor is None
    assert list(got) == [None]
    assert threads == [threading.current_thread()]


def test_fetch_all_prefers_permanent_failure() -> None:
    """When inputs fail differently the permanent failure is raised, naming the input."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if request.url.path == "/a" else 404)

    f = make(handler)
    with pytest.raises(InputUnavailable) as info:
        f.fetch_all({"a": "https://d.example/a", "b": "https://d.example/b"})
    assert info.value.message.startswith("input 'b':")
    assert "HTTP 404" in info.value.message


def test_fetch_all_retryable_failure() -> None:
    """When the only failure is retryable, it is raised as retryable."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503) if request.url.path == "/a" else json_response()

    f = make(handler)
    with pytest.raises(InputFailed, match="input 'a'"):
        f.fetch_all({"a": "https://d.example/a", "b": "https://d.example/b"})


def test_fetch_all_empty() -> None:
    """No inputs, no fetches."""
    with make(lambda r: json_response()) as f:
        assert f.fetch_all({}) == {}


def test_cookies_are_not_kept_between_fetches() -> None:
    """A cookie set while fetching one input is never sent with a later request."""
    recorder = Recorder(lambda r: json_response(**{"Set-Cookie": "session=abc; Path=/"}))
    with make(recorder) as f:
        f.fetch("https://data.example/a")
        f.fetch("https://data.example/b")
    assert "cookie" not in recorder.requests[1].headers


@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip,deflate", "br", "zstd", "compress"])
def test_stacked_or_unknown_content_encoding_refused(encoding: str) -> None:
    """Stacked encodings (a multiplying bomb) and unknown ones are InputInvalid before decoding."""
    bomb = gzip.compress(gzip.compress(b"\0" * (50 * 1024 * 1024)))
    f = make(
        lambda r: httpx.Response(
            200, stream=httpx.ByteStream(bomb), headers={"Content-Encoding": encoding}
        ),
        max_input_bytes=1024 * 1024,
    )
    with pytest.raises(InputInvalid, match="Content-Encoding"):
        f.fetch("https://data.example/bomb")


def test_identity_encoding_accepted() -> None:
    """An explicit identity encoding is the plain body."""
    f = make(
        lambda r: httpx.Response(200, content=b"abc", headers={"Content-Encoding": "identity"})
    )
    assert f.fetch("https://data.example/x").body == b"abc"


def test_accept_encoding_is_gzip_and_deflate_only() -> None:
    """Only the encodings the size check can bound are asked for."""
    recorder = Recorder(lambda r: json_response())
    make(recorder).fetch("https://data.example/x")
    assert recorder.requests[0].headers["Accept-Encoding"] == "gzip, deflate"


# -- host names the resolver cannot take ---------------------------------------------------

BAD_HOST_NAMES = [
    ("http://a..b.example/x.json", "empty label"),
    ("http://.x.example/x.json", "empty label"),
    ("http://" + "a" * 64 + ".example/x.json", "more than DNS allows (63)"),
    ("http://" + ".".join(["abcdefghi"] * 26) + "/x.json", "more than DNS allows (253)"),
    ("http://a%20b.example/x.json", "characters other than"),
]


@pytest.mark.parametrize(("url", "says"), BAD_HOST_NAMES)
def test_bad_host_name_is_refused_not_a_crash(url: str, says: str) -> None:
    """An input URL whose host cannot be looked up is InputRefused (the real resolver's
    UnicodeError never escapes), before anything is requested."""
    with Fetcher(Config()) as f, pytest.raises(InputRefused) as info:
        f.fetch(url)
    assert "not a valid host name" in info.value.message
    assert says in info.value.message


@pytest.mark.parametrize(("location", "says"), BAD_HOST_NAMES)
def test_redirect_to_bad_host_name_is_refused(location: str, says: str) -> None:
    """A redirect to a host name the resolver cannot take is InputRefused, not a crash."""
    recorder = Recorder(lambda r: httpx.Response(302, headers={"Location": location}))
    fetcher = Fetcher(Config(), transport=httpx.MockTransport(recorder))
    with fetcher as f, pytest.raises(InputRefused, match="redirects to a refused URL") as info:
        f.fetch("http://93.184.216.34/start")
    assert says in info.value.message
    assert recorder.urls == ["http://93.184.216.34/start"]


def test_system_resolver_turns_idna_errors_into_oserror() -> None:
    """The system resolver reports a name the IDNA codec refuses as OSError, like a name
    that does not resolve."""
    from jobrunner.policy import system_resolver

    with pytest.raises(OSError, match="not a valid host name"):
        system_resolver("a..b.example", 80)


# -- bounded decompression -----------------------------------------------------------------


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS | 16, zlib.MAX_WBITS, -zlib.MAX_WBITS])
def test_inflate_yields_small_pieces(wbits: int) -> None:
    """gzip, zlib-wrapped and raw deflate bodies decode in pieces of at most 64 KiB each,
    whatever the size of the network chunks."""
    from jobrunner.fetch import _inflate

    plain = bytes(range(256)) * 4096 + b"\0" * (4 * 1024 * 1024)
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    body = packer.compress(plain) + packer.flush()
    encoding = "gzip" if wbits > zlib.MAX_WBITS else "deflate"
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    pieces = list(_inflate(chunks, encoding))
    assert b"".join(pieces) == plain
    assert max(len(p) for p in pieces) <= 64 * 1024


def test_inflate_refuses_corrupt_data() -> None:
    """Data that is neither zlib nor raw deflate is a decoding error."""
    from jobrunner.fetch import _inflate

    with pytest.raises(zlib.error):
        list(_inflate([b"\xff" * 100], "deflate"))
    with pytest.raises(zlib.error):
        list(_inflate([b"not gzip at all"], "gzip"))


def test_raw_deflate_body_over_the_network_stream_is_decoded() -> None:
    """A raw deflate body streamed by the transport is decoded (as browsers do)."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = packer.compress(b'{"raw": true}') + packer.flush()
    f = make(
        lambda r: httpx.Response(
            200,
            stream=httpx.ByteStream(body),
            headers={"Content-Encoding": "deflate", "Content-Type": "application/json"},
        )
    )
    assert f.fetch("https://data.example/raw.json").value == {"raw": True}


@pytest.mark.parametrize("host", ["xn--", "xn--a.example", "xn--ls8h.example"])
def test_malformed_punycode_is_refused_in_urls_and_redirects(host: str) -> None:
    """A malformed international name (an xn-- label that is no valid Punycode) is
    InputRefused as an input URL and as a redirect target; httpx's IDNA error never
    escapes (it killed the child)."""
    with Fetcher(Config()) as f, pytest.raises(InputRefused, match="not a valid URL"):
        f.fetch(f"http://{host}/x.json")
    location = f"http://{host}/x.json".encode()
    recorder = Recorder(lambda r: httpx.Response(302, headers=[(b"Location", location)]))
    fetcher = Fetcher(Config(), transport=httpx.MockTransport(recorder))
    with fetcher as f, pytest.raises(InputRefused, match="not a valid host name"):
        f.fetch("http://93.184.216.34/start")


def test_redirect_location_httpx_cannot_parse_is_a_job_failure() -> None:
    """A Location header httpx itself refuses while reading the answer is a permanent
    input failure naming the input, not an exception that kills the child."""
    location = "http:\\\\][::1]~ß/:99999/ä".encode()
    recorder = Recorder(lambda r: httpx.Response(302, headers=[(b"Location", location)]))
    fetcher = Fetcher(Config(), transport=httpx.MockTransport(recorder))
    with fetcher as f, pytest.raises(InputUnavailable, match="redirect to an invalid URL"):
        f.fetch("http://93.184.216.34/start")
