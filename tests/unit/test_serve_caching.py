"""The results server's cache headers and health answer, driven in-process over ASGI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from jobrunner.caching import CachePolicy, cache_control
from jobrunner.config import load_config
from jobrunner.errors import ConfigError
from jobrunner.serve import create_app
from tests.support import asgi_request as request

# What a done document gets under the default policy (pinned in test_caching.py).
FINISHED_DAY = cache_control(CachePolicy(), 200, "done")
PORTAL = "https://portal.example.org"


def document(status: str, **extra: Any) -> bytes:
    """A result document with ``status``, as a worker publishes it."""
    doc = {"v": 1, "id": "j", "type": "t", "status": status, "timestamp": "2026-01-01T00:00:00Z"}
    return json.dumps({**doc, **extra}, separators=(",", ":")).encode()


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A results directory with a done, a failed, a running document and a CSV file."""
    root = tmp_path / "results"
    root.mkdir()
    (root / "done.json").write_bytes(document("done", data={"status": "running"}))
    (root / "failed.json").write_bytes(
        document("failed", error={"code": "plugin_error", "message": "x", "retryable": False})
    )
    (root / "running.json").write_bytes(document("running", progress=0.5))
    (root / "input.csv").write_bytes(b"a,b\n1,2\n")
    return root


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/done.json", FINISHED_DAY),
        (
            "/failed.json",
            FINISHED_DAY,
        ),
        ("/running.json", "public, max-age=1"),
        ("/input.csv", "no-cache"),
        ("/missing.json", "public, max-age=2"),
        ("/", "public, max-age=2"),
    ],
)
def test_cache_control_follows_document_status(results: Path, path: str, expected: str) -> None:
    """GET and HEAD say how long caches may keep the answer, from the document's status."""
    app = create_app(results)
    assert request(app, "GET", path).headers["cache-control"] == expected
    assert request(app, "HEAD", path).headers["cache-control"] == expected


def test_304_repeats_cache_control(results: Path) -> None:
    """A revalidation's 304 carries the same Cache-Control as the 200, so caches refresh."""
    app = create_app(results)
    for name in ("done.json", "running.json"):
        first = request(app, "GET", f"/{name}")
        again = request(app, "GET", f"/{name}", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        assert again.headers["cache-control"] == first.headers["cache-control"]


def test_running_then_done_changes_the_header(results: Path) -> None:
    """A document replaced running → done is answered with the finished document's header."""
    app = create_app(results)
    path = results / "job.json"
    path.write_bytes(document("running", progress=0.1))
    assert request(app, "GET", "/job.json").headers["cache-control"] == "public, max-age=1"
    path.write_bytes(document("done", data=[1]))
    answer = request(app, "GET", "/job.json")
    assert answer.json()["status"] == "done"
    assert answer.headers["cache-control"] == FINISHED_DAY


def test_configured_policy(results: Path) -> None:
    """The configured durations are used; 0 switches caching off."""
    app = create_app(results, cache_policy=CachePolicy(finished=600, not_found=0))
    assert (
        request(app, "GET", "/done.json").headers["cache-control"]
        == "public, max-age=600, stale-while-revalidate=600, stale-if-error=600"
    )
    assert request(app, "GET", "/nope.json").headers["cache-control"] == "no-store"
    off = create_app(results, cache_policy=CachePolicy(finished=0))
    assert request(off, "GET", "/done.json").headers["cache-control"] == "no-cache"


def test_errors_other_than_404_are_never_stored(results: Path) -> None:
    """A 400 (escaping path) and a 405 are no-store, whatever the policy."""
    app = create_app(results)
    assert request(app, "GET", "/%2e%2e/x.json").headers["cache-control"] == "no-store"
    assert request(app, "DELETE", "/done.json").headers["cache-control"] == "no-store"


def test_404_keeps_cors_and_vary(results: Path) -> None:
    """A cacheable 404 still carries the CORS headers and Vary: Origin, so caches split it."""
    app = create_app(results, cors_origins=[PORTAL])
    answer = request(app, "GET", "/nope.json", headers={"Origin": PORTAL})
    assert answer.status_code == 404
    assert answer.headers["access-control-allow-origin"] == PORTAL
    assert answer.headers["vary"] == "Origin"
    assert answer.headers["cache-control"] == "public, max-age=2"


def test_health_ok(results: Path) -> None:
    """/health answers 200 {"status": "ok"}, never cached, on GET and HEAD."""
    app = create_app(results)
    answer = request(app, "GET", "/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-type"] == "application/json"
    assert request(app, "HEAD", "/health").status_code == 200


def test_health_fails_without_results_directory(results: Path) -> None:
    """/health answers 503 once the results directory is gone (a lost disk, an unmounted share)."""
    app = create_app(results)
    shutil.rmtree(results)
    answer = request(app, "GET", "/health")
    assert answer.status_code == 503
    assert answer.json() == {"status": "unhealthy"}
    assert answer.headers["cache-control"] == "no-store"


def test_health_is_exact(results: Path) -> None:
    """Only /health itself is the health answer: /health/x and /health.json are files."""
    app = create_app(results)
    assert request(app, "GET", "/health/x").status_code == 404
    (results / "health.json").write_bytes(document("done"))
    assert request(app, "GET", "/health.json").json()["status"] == "done"


def test_cache_settings_from_flags_and_env() -> None:
    """cache_finished and cache_not_found come from flags or JOBRUNNER_CACHE_* variables."""
    config = load_config(env={"JOBRUNNER_CACHE_FINISHED": "60"}, flags={"cache_not_found": 0})
    assert (config.cache_finished, config.cache_not_found) == (60, 0)
    default = load_config(env={})
    assert (default.cache_finished, default.cache_not_found) == (86400, 2)


@pytest.mark.parametrize("name", ["JOBRUNNER_CACHE_FINISHED", "JOBRUNNER_CACHE_NOT_FOUND"])
def test_negative_cache_setting_is_refused(name: str) -> None:
    """A negative duration is a configuration error naming the setting."""
    setting = name.removeprefix("JOBRUNNER_").lower()
    with pytest.raises(ConfigError, match=setting):
        load_config(env={name: "-5"})
