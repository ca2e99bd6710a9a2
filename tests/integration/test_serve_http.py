"""The results server over real HTTP: ``jobrunner serve`` and the nginx example.

The read semantics (types, validators, 304, CORS, no listing, no dotfiles, no
escapes) are checked against both servers with the same tests; PUT and the
shutdown on SIGTERM against ``jobrunner serve`` only. Everything listens on
127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobrunner.caching import CachePolicy, cache_control
from tests.support import (
    Beanstalkd,
    Lab,
    free_port,
    jobrunner_cmd,
    put_raw,
    require_binary,
    wait_for,
)

pytestmark = pytest.mark.integration

# What a done document gets under the default policy (pinned in test_caching.py).
FINISHED_DAY = cache_control(CachePolicy(), 200, "done")
ROOT = Path(__file__).resolve().parents[2]
NGINX_EXAMPLE = ROOT / "examples" / "nginx" / "results.conf"
PORTAL = "https://portal.example.org"  # the origin results.conf allows
TOKEN = "integration-token"
DOC = {
    "v": 1,
    "id": "job-7",
    "type": "echo",
    "status": "done",
    "timestamp": "2026-01-31T12:00:00Z",
    "data": [1, 2, 3],
}
BODY = json.dumps(DOC).encode()


def make_results(root: Path) -> Path:
    """A results directory with a document, temp files, a dot directory and escaping links."""
    (root / "results" / "run").mkdir(parents=True)
    results = root / "results"
    (results / "run" / "r.json").write_bytes(BODY)
    (results / "run" / "running.json").write_bytes(
        json.dumps({**DOC, "status": "running"}).encode()
    )
    (results / "run" / ".r.json.tmp").write_bytes(b'{"partial')
    (results / ".r.json.Xy12Ab").write_bytes(b'{"partial')
    (results / ".git").mkdir()
    (results / ".git" / "config.json").write_bytes(b'{"partial": 1}')
    (root / "secret.json").write_bytes(b'{"secret": 1}')
    (results / "leak.json").symlink_to(root / "secret.json")
    (results / "out").symlink_to(root)
    return results


def wait_http(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the server answers HTTP; fail with its log when it exits first."""

    def answering() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}: {log.read_text()}")
        try:
            httpx.get(base_url + "/", timeout=0.5)
        except httpx.TransportError:
            return False
        return True

    wait_for(answering, timeout=15, what=f"HTTP server at {base_url}")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    """Stop a server process and return its exit status (killing it after 10 s)."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def start_jobrunner(results: Path, log: Path, *extra: str) -> tuple[str, subprocess.Popen[bytes]]:
    """Start ``jobrunner serve`` on a free port; return its base URL and process."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            jobrunner_cmd("serve", "--results-dir", str(results), "--port", str(port), *extra),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_http(base_url, process, log)
    except BaseException:
        stop(process)
        raise
    return base_url, process


def nginx_config(prefix: Path, results: Path, port: int) -> Path:
    """A complete nginx.conf for a test run, including the example's server block."""
    server = NGINX_EXAMPLE.read_text()
    server, listens = re.subn(r"(?m)^(\s*)listen\s+8080;", rf"\1listen 127.0.0.1:{port};", server)
    server, roots = re.subn(
        r"(?m)^(\s*)root\s+/srv/jobrunner/results;", rf"\1root {results};", server
    )
    assert (listens, roots) == (1, 1), "results.conf no longer has the expected listen/root"
    (prefix / "results.conf").write_text(server)
    temp = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind}_temp;"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Worker processes run as the invoking user; as root they would fall back
    # to "nobody", which cannot read the test's private temp directory.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\n"
        f"error_log {prefix}/error.log;\n"
        f"pid {prefix}/nginx.pid;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        f"{temp}\n"
        f"    include {prefix}/results.conf;\n"
        "}\n"
    )
    return conf


def nginx_cmd(nginx: str, prefix: Path, conf: Path, *args: str) -> list[str]:
    """The nginx command line with everything kept under ``prefix``."""
    return [nginx, "-p", f"{prefix}/", "-e", f"{prefix}/error.log", "-c", str(conf), *args]


@contextlib.contextmanager
def serving(kind: str, root: Path) -> Iterator[str]:
    """Run a results server of ``kind`` (``jobrunner`` or ``nginx``); yield its base URL."""
    results = make_results(root)
    if kind == "jobrunner":
        base_url, process = start_jobrunner(
            results, root / "serve.log", "--cors-origin", PORTAL, "--put-token", TOKEN
        )
        yield base_url
        assert stop(process) == 0
        return
    nginx = require_binary("nginx")
    prefix = root / "nginx"
    prefix.mkdir()
    port = free_port()
    conf = nginx_config(prefix, results, port)
    check = subprocess.run(nginx_cmd(nginx, prefix, conf, "-t"), capture_output=True, timeout=30)
    assert check.returncode == 0, check.stderr.decode()
    log = prefix / "stderr.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            nginx_cmd(nginx, prefix, conf, "-g", "daemon off;"), stdout=out, stderr=out
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_http(base_url, process, log)
        yield base_url
    finally:
        stop(process, signal.SIGQUIT)  # graceful shutdown


@pytest.fixture(scope="module", params=["jobrunner", "nginx"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A results server (``jobrunner serve`` or nginx with results.conf); its base URL."""
    with serving(request.param, tmp_path_factory.mktemp(request.param)) as base_url:
        yield base_url


def raw_get(base_url: str, target: bytes) -> tuple[int, bytes]:
    """Send a GET with the request target exactly as given; return status and raw answer."""
    port = int(base_url.rsplit(":", 1)[1])
    request = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


# -- the same read semantics on both servers ------------------------------------


def test_get_headers_and_304_over_keepalive(server: str, request: pytest.FixtureRequest) -> None:
    """GET serves JSON with ETag, Last-Modified and a cache lifetime (a day for a done
    document from jobrunner serve, which reads its status; a second from nginx for a
    document without a final marker); both validators give a 304."""
    kind = request.node.callspec.params["server"]
    with httpx.Client(base_url=server, timeout=5) as client:
        r = client.get("/run/r.json")
        assert r.status_code == 200
        assert r.content == BODY
        assert r.headers["content-type"] == "application/json"
        assert (
            r.headers["cache-control"]
            == {
                "jobrunner": FINISHED_DAY,
                "nginx": "public, max-age=1",
            }[kind]
        )
        assert r.headers["content-length"] == str(len(BODY))
        etag, last_modified = r.headers["etag"], r.headers["last-modified"]
        assert etag.startswith('"')
        first = r.extensions["network_stream"].get_extra_info("client_addr")
        r = client.get("/run/r.json", headers={"If-None-Match": etag})
        assert r.status_code == 304 and r.content == b""
        r = client.get("/run/r.json", headers={"If-Modified-Since": last_modified})
        assert r.status_code == 304 and r.content == b""
        head = client.head("/run/r.json")
        assert head.status_code == 200 and head.headers["etag"] == etag
        # All four requests went over one kept-alive connection.
        assert head.extensions["network_stream"].get_extra_info("client_addr") == first


def test_cors_simple_and_preflight(server: str) -> None:
    """The portal origin gets CORS headers and a preflight answer; other origins may not read."""
    with httpx.Client(base_url=server, timeout=5) as client:
        r = client.get("/run/r.json", headers={"Origin": PORTAL})
        assert r.headers["access-control-allow-origin"] == PORTAL
        assert r.headers["access-control-expose-headers"] == "ETag, Last-Modified"
        assert "Origin" in r.headers["vary"]
        preflight = {
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        }
        r = client.options("/run/r.json", headers={"Origin": PORTAL, **preflight})
        assert r.status_code in (200, 204)
        assert r.headers["access-control-allow-origin"] == PORTAL
        assert "GET" in r.headers["access-control-allow-methods"]
        assert "if-none-match" in r.headers["access-control-allow-headers"].lower()
        assert int(r.headers["access-control-max-age"]) > 0
        evil = {"Origin": "https://evil.example.com"}
        for r in (
            client.get("/run/r.json", headers=evil),
            client.options("/run/r.json", headers={**evil, **preflight}),
        ):
            assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    "path",
    [
        "/run/.r.json.tmp",
        "/.r.json.Xy12Ab",
        "/.git/config.json",
        "/%2egit/config.json",
        "/run/",
        "/run",
        "/",
        "/leak.json",
        "/out/secret.json",
        "/missing.json",
    ],
)
def test_not_found(server: str, path: str) -> None:
    """Dotfiles, dot directories, directories, escaping symlinks and missing files are JSON 404s,
    cacheable for two seconds."""
    r = httpx.get(server + path, timeout=5, headers={"Origin": PORTAL})
    assert r.status_code == 404
    assert r.headers["cache-control"] == "public, max-age=2"
    assert r.headers["content-type"] == "application/json"
    assert "error" in r.json()
    assert r.headers["access-control-allow-origin"] == PORTAL


@pytest.mark.parametrize(
    "target",
    [
        b"/../secret.json",
        b"/run/../../secret.json",
        b"/%2e%2e/secret.json",
        b"/run/%2E%2E/%2e%2e/secret.json",
        b"/..%2fsecret.json",
    ],
)
def test_traversal_never_escapes(server: str, target: bytes) -> None:
    """Request targets climbing out with literal or encoded dots never serve outside files."""
    status, answer = raw_get(server, target)
    assert status in (400, 404)
    assert b"secret" not in answer


def test_running_document_cached_one_second(server: str) -> None:
    """A running document may be cached for one second at most, on both servers."""
    r = httpx.get(server + "/run/running.json", timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "running"
    assert r.headers["cache-control"] == "public, max-age=1"


# -- nginx reads the file publisher's final markers --------------------------------------

NGINX_FINISHED = "public, max-age=86400, stale-while-revalidate=86400"


def watch(base_url: str, name: str, want: str, seen: list[tuple[str, str]]) -> str:
    """Poll ``name`` through the server until its status is ``want`` with a settled
    Cache-Control (a final document's marker follows it); record every (status, header)."""

    def settled() -> str | None:
        r = httpx.get(f"{base_url}/{name}", timeout=5)
        if r.status_code != 200:
            return None
        status, header = r.json()["status"], r.headers["cache-control"]
        seen.append((status, header))
        if status != want or (want != "running" and header != NGINX_FINISHED):
            return None
        return header

    result: str = wait_for(settled, timeout=60, what=f"{name} {want} through the server")
    return result


def test_nginx_caches_finished_documents_long_and_running_ones_one_second(
    beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    """Served by nginx with results.conf from a real worker's file publisher, and by a
    peer's nginx from its rsync copy, a running document (also a kicked re-run's, over a
    failed one) always has max-age=1 and a done or failed one the long lifetime; neither
    nginx nor jobrunner serve serve .final/ markers."""
    with serving("nginx", tmp_path) as nginx, serving("nginx", tmp_path / "peer") as peer:
        lab = Lab(tmp_path)
        serve_url, serve = start_jobrunner(lab.results_dir, tmp_path / "serve.log")
        worker = lab.worker(
            beanstalkd.address,
            "--publisher",
            "file",
            "--publisher",
            "rsync",
            "--rsync-peer",
            str(tmp_path / "peer" / "results"),
            concurrency=2,
        )
        seen: list[tuple[str, str]] = []
        try:
            put_raw(beanstalkd.port, lab.body("sleep", "slow", {"seconds": 3}))
            put_raw(beanstalkd.port, lab.body("hang", "stuck", timeout=3))
            for name in ("slow", "stuck"):
                assert watch(nginx, f"{name}.json", "running", seen) == "public, max-age=1"
            assert watch(peer, "stuck.json", "running", seen) == "public, max-age=1"
            for base in (nginx, peer):
                assert watch(base, "slow.json", "done", seen) == NGINX_FINISHED
                assert watch(base, "stuck.json", "failed", seen) == NGINX_FINISHED
            assert (lab.results_dir / ".final" / "stuck.json").is_file()
            for base in (nginx, serve_url):
                r = httpx.get(f"{base}/.final/stuck.json", timeout=5)
                assert r.status_code == 404 and b"stuck" not in r.content
            # The buried job kicked: its re-run's running document replaces the failed one.
            wait_for(
                lambda: beanstalkd.tube_stats().get("current-jobs-buried") == 1, 30, what="buried"
            )
            kicked = subprocess.run(
                jobrunner_cmd("kick", "--beanstalk", beanstalkd.address),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert "kicked 1 job(s)" in kicked.stdout, kicked.stderr
            assert watch(nginx, "stuck.json", "running", seen) == "public, max-age=1"
            assert not (lab.results_dir / ".final" / "stuck.json").exists()
            assert watch(peer, "stuck.json", "running", seen) == "public, max-age=1"
            for base in (nginx, peer):
                assert watch(base, "stuck.json", "failed", seen) == NGINX_FINISHED
        finally:
            assert worker.stop() == 0
            assert stop(serve) == 0
    # Never a running document with the long lifetime, whenever and wherever it was read.
    assert {header for status, header in seen if status == "running"} == {"public, max-age=1"}
    assert {status for status, _ in seen} == {"running", "done", "failed"}


def test_other_methods_are_405(server: str) -> None:
    """DELETE is a 405 with an Allow header, as a JSON error."""
    r = httpx.delete(server + "/run/r.json", timeout=5)
    assert r.status_code == 405
    assert "GET" in r.headers["allow"] and "DELETE" not in r.headers["allow"]
    assert "error" in r.json()


# -- jobrunner serve only --------------------------------------------------------


@pytest.fixture(scope="module")
def jobrunner_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``jobrunner serve`` with PUT enabled (nginx does not take PUT); its base URL."""
    with serving("jobrunner", tmp_path_factory.mktemp("put")) as base_url:
        yield base_url


def test_put_then_get(jobrunner_server: str) -> None:
    """A PUT with the token stores the document (201) and GET returns the same bytes."""
    with httpx.Client(base_url=jobrunner_server, timeout=5) as client:
        body = BODY.replace(b"job-7", b"job-8")
        r = client.put("/w2/job-8.json", content=body, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401
        r = client.put("/w2/job-8.json", content=body, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 201
        got = client.get("/w2/job-8.json")
        assert got.content == body and got.headers["etag"] == r.headers["etag"]
        r = client.put("/w2/job-8.json", content=BODY, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 204
        assert client.get("/w2/job-8.json").content == BODY


def test_put_oversize_chunked_is_413(jobrunner_server: str) -> None:
    """A chunked PUT body over the limit is a 413 and the connection still serves requests."""

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * (1024 * 1024)  # 20 MiB, over the 16 MiB default

    with httpx.Client(base_url=jobrunner_server, timeout=10) as client:
        r = client.put("/big.json", content=chunks(), headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 413
        assert client.get("/big.json").status_code == 404
        assert client.get("/run/r.json").status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_cleanly(tmp_path: Path, sig: int) -> None:
    """SIGTERM or SIGINT stops jobrunner serve within seconds with exit code 0, client open."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "r.json").write_bytes(BODY)
    log = tmp_path / "serve.log"
    base_url, process = start_jobrunner(results, log)
    with httpx.Client(base_url=base_url, timeout=5) as client:
        assert client.get("/r.json").status_code == 200  # leaves an idle connection
        started = time.monotonic()
        process.send_signal(sig)
        try:
            code = process.wait(timeout=8)
        finally:
            stop(process)
    assert code == 0, log.read_text()
    assert time.monotonic() - started < 5
    events = [json.loads(line)["event"] for line in log.read_text().splitlines() if line]
    assert events[0] == "serve_started" and events[-1] == "serve_stopped"


# -- start-up checks and the access log ------------------------------------------------


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``jobrunner serve`` that is expected to exit at once; return how it ended."""
    return subprocess.run(jobrunner_cmd("serve", *args), capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("port", ["0", "99999", "-1", "65536"])
def test_port_out_of_range_is_refused(tmp_path: Path, port: str) -> None:
    """A port outside 1-65535 ends serve with exit 2 and one line naming the setting."""
    done = run_serve("--results-dir", str(tmp_path), "--port", port)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "port" in lines[0] and "65535" in lines[0]


def test_missing_results_dir_is_an_error(tmp_path: Path) -> None:
    """A results directory that does not exist ends serve with exit 2 and one line saying so,
    and nothing is created."""
    missing = tmp_path / "nonexistent"
    done = run_serve("--results-dir", str(missing), "--port", str(free_port()))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0] and "--create-results-dir" in lines[0]
    assert not missing.exists()


def test_create_results_dir_flag(tmp_path: Path) -> None:
    """With --create-results-dir a missing directory is created and served."""
    missing = tmp_path / "new" / "results"
    base_url, process = start_jobrunner(missing, tmp_path / "serve.log", "--create-results-dir")
    try:
        assert missing.is_dir()
        assert httpx.get(base_url + "/x.json", timeout=5).status_code == 404
    finally:
        assert stop(process) == 0


def test_access_log(tmp_path: Path) -> None:
    """--access-log logs each request with client, method, path and status; without it,
    requests are not logged."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "r.json").write_bytes(BODY)
    for flag in ("--access-log", "--no-access-log"):
        log = tmp_path / f"{flag}.log"
        base_url, process = start_jobrunner(results, log, flag)
        try:
            assert httpx.get(base_url + "/r.json?x=1", timeout=5).status_code == 200
            assert httpx.get(base_url + "/nope.json", timeout=5).status_code == 404
        finally:
            assert stop(process) == 0
        events = [json.loads(line) for line in log.read_text().splitlines() if line]
        served = [e for e in events if e["event"] == "request_served"]
        if flag == "--no-access-log":
            assert served == []
            continue
        assert [(e["method"], e["path"], e["status"]) for e in served][-2:] == [
            ("GET", "/r.json?x=1", 200),
            ("GET", "/nope.json", 404),
        ]
        assert served[0]["client"].startswith("127.0.0.1:")


# -- nginx in front of jobrunner serve (examples/nginx/proxy.conf) -----------------------

NGINX_PROXY = ROOT / "examples" / "nginx" / "proxy.conf"


def test_nginx_in_front_of_jobrunner_serve(tmp_path: Path) -> None:
    """With proxy.conf, nginx passes reads (same bytes, ETag, 304, CORS) and token PUTs to
    jobrunner serve, and closes a client that never sends a request."""
    nginx = require_binary("nginx")
    results = make_results(tmp_path)
    serve_url, serve = start_jobrunner(
        results, tmp_path / "serve.log", "--cors-origin", PORTAL, "--put-token", TOKEN
    )
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    proxy = NGINX_PROXY.read_text()
    proxy, listens = re.subn(r"(?m)^(\s*)listen\s+80;", rf"\1listen 127.0.0.1:{port};", proxy)
    proxy, upstreams = re.subn(
        r"(?m)^(\s*)server\s+127\.0\.0\.1:8080;", rf"\1server {serve_url[7:]};", proxy
    )
    assert (listens, upstreams) == (1, 1), "proxy.conf no longer has the expected listen/server"
    proxy = proxy.replace("client_header_timeout 10s;", "client_header_timeout 2s;")
    (prefix / "proxy.conf").write_text(proxy)
    conf = nginx_config(prefix, results, free_port())  # the temp paths and pid file
    conf.write_text(conf.read_text().replace("results.conf", "proxy.conf"))
    check = subprocess.run(nginx_cmd(nginx, prefix, conf, "-t"), capture_output=True, timeout=30)
    assert check.returncode == 0, check.stderr.decode()
    with (prefix / "stderr.log").open("wb") as out:
        process = subprocess.Popen(
            nginx_cmd(nginx, prefix, conf, "-g", "daemon off;"), stdout=out, stderr=out
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_http(base_url, process, prefix / "stderr.log")
        direct = httpx.get(serve_url + "/run/r.json", timeout=5)
        with httpx.Client(base_url=base_url, timeout=5) as client:
            r = client.get("/run/r.json", headers={"Origin": PORTAL})
            assert r.status_code == 200 and r.content == BODY
            assert r.headers["etag"] == direct.headers["etag"]
            assert r.headers["access-control-allow-origin"] == PORTAL
            again = client.get("/run/r.json", headers={"If-None-Match": r.headers["etag"]})
            assert again.status_code == 304
            assert client.get("/run/.r.json.tmp").status_code == 404
            put = client.put(
                "/w/job-9.json", content=BODY, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert put.status_code == 201
            assert (results / "w" / "job-9.json").read_bytes() == BODY
        with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
            assert idle.recv(1) == b""  # closed by nginx after client_header_timeout
    finally:
        stop(process, signal.SIGQUIT)
        assert stop(serve) == 0


def test_head_sends_no_body_on_the_wire(server: str) -> None:
    """A HEAD answer carries GET's Content-Length but no body: a GET pipelined after it on
    the same connection is read intact."""
    port = int(server.rsplit(":", 1)[1])
    request = (
        b"HEAD /run/r.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"GET /run/r.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, get = answer.split(b"HTTP/1.1 ", 2)[1:]
    assert head.startswith(b"200") and get.startswith(b"200")
    assert f"content-length: {len(BODY)}".encode() in head.lower()
    assert head.endswith(b"\r\n\r\n")  # headers only
    assert get.endswith(b"\r\n\r\n" + BODY)
