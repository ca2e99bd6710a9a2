"""Unit tests of the http publisher (jobrunner.publish.http) over httpx.MockTransport."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from jobrunner.config import Config
from jobrunner.errors import ConfigError, PublishFailed, ResultRefused
from jobrunner.publish.http import HttpPublisher, parse_origin

ORIGIN = "https://results.example.org"
TOKEN = "t0ken"
BODY = b'{"v": 1, "id": "j1", "type": "echo", "status": "done", "timestamp": "x"}'


def make(handler: Callable[[httpx.Request], httpx.Response], **settings: object) -> HttpPublisher:
    values: dict[str, object] = {"put_origin": (ORIGIN,), "http_token": TOKEN}
    values.update(settings)
    return HttpPublisher(Config(**values), transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def test_put_sends_body_token_and_content_type() -> None:
    """A publish is one PUT of the exact bytes with the bearer token and a JSON type."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201)

    publisher = make(handler)
    publisher.publish(ORIGIN + "/results/a/r.json", BODY)
    publisher.publish(ORIGIN + "/results/a/r.json", BODY, final=False)
    assert [r.method for r in seen] == ["PUT", "PUT"]
    assert seen[0].url == ORIGIN + "/results/a/r.json"
    assert seen[0].content == BODY
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert seen[0].headers["content-type"] == "application/json"
    publisher.close()


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.org/r.json",
        "http://results.example.org/r.json",  # same host, other scheme
        "https://results.example.org:8443/r.json",  # other port
        "https://user@results.example.org/r.json",
        "https://results.example.org/a/../r.json",
        "https://results.example.org/.hidden.json",
        "https://results.example.org/r.json?x=1",
        "https://results.example.org/dir/",
    ],
)
def test_check_refuses_other_origins_and_unsafe_paths(url: str) -> None:
    """check() refuses a result URL off the allowed origins or with an unsafe path."""
    publisher = make(lambda r: httpx.Response(500))
    with pytest.raises(ResultRefused):
        publisher.check(url)
    with pytest.raises(ResultRefused):
        publisher.publish(url, BODY)


def test_origin_matching_normalises_default_port_and_case() -> None:
    """An allowed origin matches with an explicit default port and in any case."""
    publisher = make(lambda r: httpx.Response(204), put_origin=("HTTPS://Results.Example.org/",))
    publisher.check("https://results.example.org:443/r.json")
    publisher.check("https://RESULTS.example.org/x/r.json")


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_server_errors_are_retryable(status: int) -> None:
    """5xx (and 408, 429) answers are retryable publish_failed failures naming the status."""
    publisher = make(lambda r: httpx.Response(status, json={"error": "busy"}))
    with pytest.raises(PublishFailed) as info:
        publisher.publish(ORIGIN + "/r.json", BODY)
    assert info.value.retryable
    assert info.value.code == "publish_failed"
    assert str(status) in info.value.message


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 301])
def test_client_errors_are_permanent(status: int) -> None:
    """4xx and 3xx answers are permanent publish_failed failures with the status and answer."""
    publisher = make(
        lambda r: httpx.Response(status, json={"error": "nope"}, headers={"location": "/x"})
    )
    with pytest.raises(PublishFailed) as info:
        publisher.publish(ORIGIN + "/r.json", BODY)
    assert not info.value.retryable
    assert f"answered {status}" in info.value.message
    assert "nope" in info.value.message
    assert TOKEN not in info.value.message


def test_connection_errors_and_timeouts_are_retryable() -> None:
    """A refused connection or a time-out is a retryable failure."""
    for exc in (httpx.ConnectError("refused"), httpx.ReadTimeout("slow")):

        def handler(request: httpx.Request, exc: Exception = exc) -> httpx.Response:
            raise exc

        with pytest.raises(PublishFailed) as info:
            make(handler).publish(ORIGIN + "/r.json", BODY)
        assert info.value.retryable


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"put_origin": ()}, "--put-origin"),
        ({"put_origin": ("ftp://x",)}, "put_origin"),
        ({"put_origin": ("https://x/path",)}, "put_origin"),
        ({"http_token": None}, "--http-token"),
    ],
)
def test_missing_or_invalid_settings_are_config_errors(
    settings: dict[str, object], needle: str
) -> None:
    """Without an origin or a token the publisher cannot be built; the error says which."""
    with pytest.raises(ConfigError, match=needle):
        make(lambda r: httpx.Response(200), **settings)


def test_needs_no_results_dir() -> None:
    """The http publisher alone works without --results-dir and --base-url."""
    publisher = make(lambda r: httpx.Response(204), results_dir=None, base_url=None)
    publisher.publish(ORIGIN + "/r.json", BODY)


def test_parse_origin() -> None:
    """Origins are split into scheme, lower-case host and port (default filled in)."""
    assert parse_origin("http://127.0.0.1:8080") == ("http", "127.0.0.1", 8080)
    assert parse_origin("https://A.example/") == ("https", "a.example", 443)
    with pytest.raises(ValueError):
        parse_origin("https://a.example/results")
