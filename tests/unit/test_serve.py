"""Unit tests of the results server (jobrunner.serve), driven in-process over ASGI."""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import socket
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from jobrunner.caching import CachePolicy, cache_control
from jobrunner.config import Config
from jobrunner.errors import ConfigError
from jobrunner.serve import create_app, run_server
from tests.support import asgi_request as request
from tests.support import capture_events

# What a done document gets under the default policy (pinned in test_caching.py).
FINISHED_DAY = cache_control(CachePolicy(), 200, "done")
PORTAL = "https://portal.example.org"
TOKEN = "s3cret-token"
DOC = {
    "v": 1,
    "id": "job-1",
    "type": "echo",
    "status": "done",
    "timestamp": "2026-01-31T12:00:00.000000Z",
    "data": {"answer": 42},
}
BODY = json.dumps(DOC, indent=1).encode() + b"\n"


def raw_request(
    app: Any, method: str, raw_path: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> tuple[int, dict[str, str], bytes]:
    """Call the ASGI app with a request path exactly as a client could send it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1"), errors="surrogateescape"),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": list(headers),
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, body = sent[0], sent[1]
    head = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], head, body["body"]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A results directory holding run/r.json, a text file and dot-named temp files."""
    root = tmp_path / "results"
    (root / "run").mkdir(parents=True)
    (root / "run" / "r.json").write_bytes(BODY)
    (root / "notes.txt").write_text("hello\n")
    (root / "blob.bin").write_bytes(b"\x00\x01")
    (root / ".r.json.tmp").write_bytes(b'{"partial"')
    (root / "run" / ".r.json.Ab12Cd").write_bytes(b'{"partial"')
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.json").write_bytes(BODY)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.json").write_bytes(b'{"secret": true}')
    return root


@pytest.fixture
def app(results: Path) -> Any:
    """The app serving ``results`` with one allowed CORS origin and PUT enabled."""
    return create_app(results, cors_origins=[PORTAL], put_token=TOKEN, max_put_bytes=4096)


# -- GET and HEAD -------------------------------------------------------------


def test_get_serves_json_with_caching_headers(app: Any) -> None:
    """GET of a done .json document returns its bytes as application/json, with validators,
    cacheable for a day."""
    r = request(app, "GET", "/run/r.json")
    assert r.status_code == 200
    assert r.content == BODY
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == FINISHED_DAY
    assert r.headers["content-length"] == str(len(BODY))
    assert r.headers["etag"].startswith('"') and not r.headers["etag"].startswith("W/")
    assert email.utils.parsedate_to_datetime(r.headers["last-modified"]) is not None
    assert r.headers["x-content-type-options"] == "nosniff"


def test_get_other_types(app: Any) -> None:
    """Non-JSON files get a guessed type, unknown ones application/octet-stream."""
    assert request(app, "GET", "/notes.txt").headers["content-type"].startswith("text/plain")
    assert request(app, "GET", "/blob.bin").headers["content-type"] == "application/octet-stream"


def test_query_string_is_ignored(app: Any) -> None:
    """A cache-busting query string still serves the file."""
    assert request(app, "GET", "/run/r.json?_=12345").content == BODY


def test_head_has_get_headers_without_body(app: Any) -> None:
    """HEAD answers GET's headers, Content-Length included, with an empty body."""
    get = request(app, "GET", "/run/r.json")
    head = request(app, "HEAD", "/run/r.json")
    assert head.status_code == 200
    assert head.content == b""
    for name in ("etag", "last-modified", "content-length", "content-type", "cache-control"):
        assert head.headers[name] == get.headers[name]


def test_if_none_match_gives_304(app: Any) -> None:
    """If-None-Match with the current ETag (alone, in a list, or weak) is a 304 without body."""
    etag = request(app, "GET", "/run/r.json").headers["etag"]
    for value in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        r = request(app, "GET", "/run/r.json", headers={"If-None-Match": value})
        assert r.status_code == 304, value
        assert r.content == b""
        assert r.headers["etag"] == etag
        assert r.headers["cache-control"] == FINISHED_DAY
    r = request(app, "GET", "/run/r.json", headers={"If-None-Match": '"stale"'})
    assert r.status_code == 200 and r.content == BODY


def test_if_modified_since_gives_304(app: Any) -> None:
    """If-Modified-Since at or after Last-Modified is a 304; earlier or invalid is a 200."""
    last_modified = request(app, "GET", "/run/r.json").headers["last-modified"]
    r = request(app, "GET", "/run/r.json", headers={"If-Modified-Since": last_modified})
    assert r.status_code == 304 and r.content == b""
    early = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert (
        request(app, "GET", "/run/r.json", headers={"If-Modified-Since": early}).status_code == 200
    )
    r = request(app, "GET", "/run/r.json", headers={"If-Modified-Since": "yesterday"})
    assert r.status_code == 200


def test_if_none_match_takes_precedence(app: Any) -> None:
    """A non-matching If-None-Match wins over a matching If-Modified-Since (RFC 9110)."""
    last_modified = request(app, "GET", "/run/r.json").headers["last-modified"]
    headers = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert request(app, "GET", "/run/r.json", headers=headers).status_code == 200


def test_etag_follows_content(results: Path, tmp_path: Path) -> None:
    """The ETag changes with the content and is the same for the same bytes on another replica."""
    app = create_app(results)
    before = request(app, "GET", "/run/r.json").headers["etag"]
    replica = tmp_path / "replica"
    replica.mkdir()
    (replica / "r.json").write_bytes(BODY)
    assert request(create_app(replica), "GET", "/r.json").headers["etag"] == before
    (results / "run" / "r.json").write_bytes(BODY.replace(b"42", b"43"))
    assert request(app, "GET", "/run/r.json").headers["etag"] != before


def test_missing_file_is_json_404(app: Any) -> None:
    """A missing file is a 404 with a JSON error body."""
    r = request(app, "GET", "/run/nope.json")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert "error" in r.json()


def test_no_directory_listing(app: Any) -> None:
    """Directories, with or without a trailing slash, and the root are 404s, never listings."""
    for path in ("/", "/run", "/run/"):
        r = request(app, "GET", path)
        assert r.status_code == 404, path
        assert b"r.json" not in r.content


def test_dotfiles_are_never_served(app: Any) -> None:
    """Dot-named files (writer and rsync temp files) and dot-named directories are 404s."""
    for path in ("/.r.json.tmp", "/run/.r.json.Ab12Cd", "/.hidden/x.json", "/%2ehidden/x.json"):
        r = request(app, "GET", path)
        assert r.status_code == 404, path
        assert b"partial" not in r.content


@pytest.mark.parametrize(
    ("raw_path", "status"),
    [
        (b"/../outside/secret.json", 400),
        (b"/run/../../outside/secret.json", 400),
        (b"/%2e%2e/outside/secret.json", 400),
        (b"/%2E%2E/outside/secret.json", 400),
        (b"/run/%2e%2e%2f%2e%2e%2foutside/secret.json", 400),
        (b"/..%2foutside%2fsecret.json", 400),
        (b"/run%2fr.json", 400),
        (b"/..\\outside\\secret.json", 400),
        (b"/%5c..%5coutside/secret.json", 400),
        (b"/run/r.json%00.txt", 400),
        (b"/run/./r.json", 400),
        (b"//run/r.json", 400),
        (b"/%ff.json", 400),
    ],
)
def test_traversal_attempts_are_refused(app: Any, raw_path: bytes, status: int) -> None:
    """Paths with .., encoded dots or slashes, backslashes, NUL or bad UTF-8 never serve a file."""
    code, headers, body = raw_request(app, "GET", raw_path)
    assert code == status
    assert b"secret" not in body and b"answer" not in body
    assert headers["content-type"] == "application/json"
    assert "error" in json.loads(body)


def test_symlink_leading_out_is_404(results: Path, tmp_path: Path) -> None:
    """A symlinked file or directory pointing outside the results directory is a 404."""
    (results / "leak.json").symlink_to(tmp_path / "outside" / "secret.json")
    (results / "out").symlink_to(tmp_path / "outside")
    app = create_app(results)
    for path in ("/leak.json", "/out/secret.json"):
        r = request(app, "GET", path)
        assert r.status_code == 404, path
        assert b"secret" not in r.content


def test_symlink_inside_is_followed_but_not_to_dotfiles(results: Path) -> None:
    """A symlink staying inside serves its target, unless the target is dot-named."""
    (results / "latest.json").symlink_to(results / "run" / "r.json")
    (results / "sneaky.json").symlink_to(results / ".r.json.tmp")
    app = create_app(results)
    assert request(app, "GET", "/latest.json").content == BODY
    assert request(app, "GET", "/sneaky.json").status_code == 404


def test_fifo_is_404_without_hanging(results: Path) -> None:
    """A named pipe in the directory is a 404 and does not block the server."""
    os.mkfifo(results / "pipe.json")
    assert request(create_app(results), "GET", "/pipe.json").status_code == 404


def test_file_over_limit_is_refused(results: Path) -> None:
    """A file larger than max_file_bytes is not read into memory but answered with an error."""
    app = create_app(results, max_file_bytes=10)
    r = request(app, "GET", "/run/r.json")
    assert r.status_code == 500
    assert "larger" in r.json()["error"]


def test_large_file_is_served_whole(results: Path) -> None:
    """A file above the inline threshold (read in a thread) is served byte for byte."""
    big = b"[" + b"1," * 400_000 + b"1]"
    (results / "big.json").write_bytes(big)
    r = request(create_app(results), "GET", "/big.json")
    assert r.status_code == 200 and r.content == big


def test_other_methods_are_405_with_allow(app: Any, results: Path) -> None:
    """POST, DELETE and PATCH are 405 with an Allow header and change nothing."""
    for method in ("POST", "DELETE", "PATCH"):
        r = request(app, method, "/run/r.json")
        assert r.status_code == 405, method
        assert r.headers["allow"] == "GET, HEAD, OPTIONS, PUT"
        assert "error" in r.json()
    assert (results / "run" / "r.json").read_bytes() == BODY


# -- CORS ---------------------------------------------------------------------


def test_cors_allowed_origin_is_echoed(app: Any) -> None:
    """An allowed Origin is echoed with Vary: Origin and the validators exposed."""
    r = request(app, "GET", "/run/r.json", headers={"Origin": PORTAL})
    assert r.headers["access-control-allow-origin"] == PORTAL
    assert "Origin" in r.headers["vary"]
    assert r.headers["access-control-expose-headers"] == "ETag, Last-Modified"


def test_cors_on_304_and_errors(app: Any) -> None:
    """304s and error answers carry the CORS headers too, so scripts can see the status."""
    etag = request(app, "GET", "/run/r.json").headers["etag"]
    r = request(app, "GET", "/run/r.json", headers={"Origin": PORTAL, "If-None-Match": etag})
    assert r.status_code == 304 and r.headers["access-control-allow-origin"] == PORTAL
    r = request(app, "GET", "/nope.json", headers={"Origin": PORTAL})
    assert r.status_code == 404 and r.headers["access-control-allow-origin"] == PORTAL


def test_cors_other_origin_gets_no_cors_headers(app: Any) -> None:
    """An origin not configured is not allowed to read (but the answer varies by Origin)."""
    r = request(app, "GET", "/run/r.json", headers={"Origin": "https://evil.example.com"})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    assert "Origin" in r.headers["vary"]


def test_cors_answers_vary_by_origin_even_without_one(app: Any, results: Path) -> None:
    """With a list of origins every answer says Vary: Origin, also to a request without
    Origin: a shared cache (Varnish) must not serve that copy to the portal's scripts."""
    for r in (request(app, "GET", "/run/r.json"), request(app, "GET", "/nope.json")):
        assert "Origin" in r.headers["vary"]


def test_cors_without_configuration(results: Path) -> None:
    """Without --cors-origin no CORS headers are sent at all."""
    r = request(create_app(results), "GET", "/run/r.json", headers={"Origin": PORTAL})
    assert not [h for h in r.headers if h.startswith("access-control-")]


def test_cors_star_allows_any_origin(results: Path) -> None:
    """With '*' any origin gets Access-Control-Allow-Origin: *."""
    app = create_app(results, cors_origins=["*"])
    r = request(app, "GET", "/run/r.json", headers={"Origin": "https://anywhere.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["access-control-expose-headers"] == "ETag, Last-Modified"


def test_cors_preflight_allowed(app: Any) -> None:
    """A preflight from an allowed origin is answered with methods, headers and a max age."""
    r = request(
        app,
        "OPTIONS",
        "/run/r.json",
        headers={
            "Origin": PORTAL,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == PORTAL
    methods = {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "HEAD", "OPTIONS", "PUT"}
    allowed = r.headers["access-control-allow-headers"].lower()
    for name in ("if-none-match", "authorization", "content-type"):
        assert name in allowed
    assert int(r.headers["access-control-max-age"]) > 0


def test_cors_preflight_without_put(results: Path) -> None:
    """Without a put token the preflight does not offer PUT."""
    app = create_app(results, cors_origins=["*"])
    r = request(
        app,
        "OPTIONS",
        "/r.json",
        headers={"Origin": PORTAL, "Access-Control-Request-Method": "GET"},
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert "PUT" not in r.headers["access-control-allow-methods"]
    plain = request(app, "OPTIONS", "/r.json")
    assert plain.status_code == 204 and plain.headers["allow"] == "GET, HEAD, OPTIONS"


def test_cors_preflight_other_origin(app: Any) -> None:
    """A preflight from an origin not allowed gets no Access-Control-Allow-Origin."""
    r = request(
        app,
        "OPTIONS",
        "/run/r.json",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers


def test_invalid_cors_origin_is_config_error(results: Path) -> None:
    """A CORS origin that is not '*' or scheme://host[:port] is refused at start."""
    with pytest.raises(ConfigError, match="cors_origin"):
        create_app(results, cors_origins=["portal.example.org/path"])


# -- PUT ----------------------------------------------------------------------


def auth(token: str = TOKEN) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def all_files(root: Path) -> set[str]:
    """Every file below ``root`` (dot-named included), relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_put_disabled_without_token(results: Path) -> None:
    """Without a put token PUT is a 405 whose Allow lacks PUT, and nothing is written."""
    app = create_app(results)
    r = request(app, "PUT", "/new.json", content=BODY, headers=auth())
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"
    assert not (results / "new.json").exists()


@pytest.mark.parametrize(
    "headers",
    [{}, auth("wrong"), {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"}],
)
def test_put_needs_the_token(app: Any, results: Path, headers: dict[str, str]) -> None:
    """PUT without the right bearer token is a 401 with WWW-Authenticate and writes nothing."""
    r = request(app, "PUT", "/new.json", content=BODY, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert not (results / "new.json").exists()


def test_put_stores_then_get_returns_same_bytes(app: Any, results: Path) -> None:
    """A PUT creates the file (201, sub-directories too) and GET returns the same bytes and ETag."""
    r = request(app, "PUT", "/w1/2026/job-1.json", content=BODY, headers=auth())
    assert r.status_code == 201
    assert r.headers["location"] == "/w1/2026/job-1.json"
    got = request(app, "GET", "/w1/2026/job-1.json")
    assert got.content == BODY
    assert got.headers["etag"] == r.headers["etag"]


def test_put_replaces(app: Any, results: Path) -> None:
    """A PUT over an existing document is a 204 and the new bytes are served."""
    new = BODY.replace(b"42", b"43")
    r = request(app, "PUT", "/run/r.json", content=new, headers=auth())
    assert r.status_code == 204
    assert request(app, "GET", "/run/r.json").content == new


def test_put_is_atomic_and_leaves_no_temp_files(app: Any, results: Path) -> None:
    """After PUTs only the documents exist: no temp files are left behind."""
    before = all_files(results)
    for _ in range(3):
        assert request(app, "PUT", "/a/b.json", content=BODY, headers=auth()).is_success
    assert all_files(results) == before | {"a/b.json"}


def test_put_oversize_by_content_length(app: Any, results: Path) -> None:
    """A declared Content-Length over max_put_bytes is a 413 and nothing is written."""
    r = request(app, "PUT", "/big.json", content=b" " * 5000, headers=auth())
    assert r.status_code == 413
    assert "error" in r.json()
    assert not (results / "big.json").exists()


async def _chunks(count: int, size: int, pulled: list[int]) -> AsyncIterator[bytes]:
    """A streamed body of ``count`` chunks; ``pulled`` gets one entry per chunk read."""
    for index in range(count):
        pulled.append(index)
        yield b" " * size


def test_put_oversize_streamed_stops_reading(app: Any, results: Path) -> None:
    """A chunked body is refused with 413 as soon as it passes the limit, unread beyond."""
    pulled: list[int] = []
    r = request(app, "PUT", "/big.json", content=_chunks(10_000, 1024, pulled), headers=auth())
    assert r.status_code == 413
    assert len(pulled) <= 4096 // 1024 + 2
    assert not (results / "big.json").exists()


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", json.dumps({**DOC, "status": "bogus"}).encode(), b'{"id": "x"}'],
)
def test_put_invalid_document_is_400(app: Any, results: Path, body: bytes) -> None:
    """A body that is not a valid result document is a 400 with a JSON error and not stored."""
    r = request(app, "PUT", "/bad.json", content=body, headers=auth())
    assert r.status_code == 400
    assert "result document" in r.json()["error"]
    assert not (results / "bad.json").exists()


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/r.txt",
        b"/.r.json",
        b"/.hidden/r.json",
        b"/a/../r.json",
        b"/%2e%2e/r.json",
        b"/a%2fr.json",
        b"/a\\r.json",
        b"/dir/",
        b"/sp ace.json",
    ],
)
def test_put_unsafe_path_is_400(app: Any, results: Path, raw_path: bytes) -> None:
    """PUT to a path that is not a safe .json path is a 400 and writes nothing."""
    before = all_files(results)

    async def go() -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []
        body = [{"type": "http.request", "body": BODY, "more_body": False}]
        scope = {
            "type": "http",
            "method": "PUT",
            "path": unquote(raw_path.decode()),
            "raw_path": raw_path,
            "query_string": b"",
            "headers": [(b"authorization", f"Bearer {TOKEN}".encode())],
        }

        async def receive() -> dict[str, Any]:
            return body.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent[0]["status"], sent[1]["body"]

    status, body = asyncio.run(go())
    assert status == 400
    assert "error" in json.loads(body)
    assert all_files(results) == before


def test_put_through_symlink_leading_out_is_refused(
    app: Any, results: Path, tmp_path: Path
) -> None:
    """PUT below a symlinked directory that points outside is a 400 and writes nothing outside."""
    (results / "out").symlink_to(tmp_path / "outside")
    r = request(app, "PUT", "/out/new.json", content=BODY, headers=auth())
    assert r.status_code == 400
    assert not (tmp_path / "outside" / "new.json").exists()


@pytest.mark.parametrize("blocked", ["dir.json", "file.json/r.json"])
def test_put_that_can_never_be_written_is_409_before_its_body(
    app: Any, results: Path, blocked: str
) -> None:
    """A directory at the document's place, or a file where one of its directories must
    be: 409 at once, the streamed body left unread, the answer naming no server path."""
    (results / "dir.json").mkdir()
    (results / "file.json").write_text("{}")
    pulled: list[int] = []
    with capture_events() as logs:
        r = request(app, "PUT", "/" + blocked, content=_chunks(100, 16, pulled), headers=auth())
    assert r.status_code == 409
    assert not pulled
    assert blocked in r.json()["error"] and str(results) not in r.json()["error"]
    assert r.headers["connection"] == "close"
    refused = [e for e in logs if e["event"] == "put_refused"]
    assert refused and refused[0]["status"] == 409 and str(results) in refused[0]["error"]


def test_put_write_failure_is_500(app: Any, results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing disk write is a 500 with a JSON error and a result_write_failed event."""

    def full_disk(dir_fd: int, name: str, body: bytes, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("jobrunner.resultsdir._write_into", full_disk)
    with capture_events() as logs:
        r = request(app, "PUT", "/new.json", content=BODY, headers=auth())
    assert r.status_code == 500
    assert "No space left" in r.json()["error"]
    assert "result_write_failed" in [e["event"] for e in logs]
    assert not (results / "new.json").exists()


def test_unexpected_error_is_json_500(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception becomes a JSON 500 and a request_failed event, not a crash."""

    def broken(body: bytes) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr("jobrunner.serve._files.etag_of", broken)
    with capture_events() as logs:
        r = request(app, "GET", "/run/r.json")
    assert r.status_code == 500
    assert r.json() == {"error": "internal server error"}
    assert "request_failed" in [e["event"] for e in logs]


def test_head_of_error_has_no_body(app: Any) -> None:
    """HEAD of a missing file is a 404 without a body."""
    r = request(app, "HEAD", "/nope.json")
    assert r.status_code == 404 and r.content == b""


# -- run_server ---------------------------------------------------------------


def test_run_server_needs_results_dir() -> None:
    """run_server without a results directory is a configuration error."""
    with pytest.raises(ConfigError, match="results-dir"):
        run_server(Config(results_dir=None))


def test_run_server_port_in_use_returns_1(tmp_path: Path) -> None:
    """A port already in use ends run_server with exit code 1 and a serve_failed event."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = Config(results_dir=tmp_path, host="127.0.0.1", port=port)
        with capture_events() as logs:
            assert run_server(config) == 1
    assert [e["event"] for e in logs] == ["serve_failed"]
