"""Unit tests of following result documents (jobrunner.follow) over httpx.MockTransport."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from jobrunner.errors import ConfigError, ResultUnavailable, WaitTimeout
from jobrunner.follow import (
    ProgressDisplay,
    ResultReader,
    describe,
    follow,
    resolve_result_url,
    summarize,
)

URL = "http://results.test/r/j1.json"


def doc(status: str, **fields: Any) -> dict[str, Any]:
    base = {
        "v": 1,
        "id": "j1",
        "type": "echo",
        "status": status,
        "timestamp": "2026-11-28T12:00:03.000000Z",
        "started": "2026-11-28T12:00:00.000000Z",
        "attempt": 1,
        "worker": "node1",
    }
    return {**base, **fields}


def scripted(answers: list[Any]) -> tuple[ResultReader, list[httpx.Request]]:
    """A reader whose server answers in turn with: None (404), an int (status), a dict (200)."""
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer is None:
            return httpx.Response(404, json={"error": "not found"})
        if isinstance(answer, int):
            return httpx.Response(answer, json={"error": "x"})
        if isinstance(answer, Exception):
            raise answer
        body = json.dumps(answer).encode()
        etag = '"' + str(abs(hash(body))) + '"'
        if request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers={"etag": etag})
        return httpx.Response(200, content=body, headers={"etag": etag})

    return ResultReader(transport=httpx.MockTransport(handler)), requests


def test_follow_reports_each_new_document_until_done() -> None:
    """follow() waits through 404 and network errors, reports each new document once and
    returns the final one; unchanged documents are revalidated with If-None-Match."""
    running = doc("running", progress=0.5)
    reader, requests = scripted(
        [None, httpx.ConnectError("down"), running, running, running, doc("done", data=1)]
    )
    updates: list[dict[str, Any]] = []
    notes: list[str] = []
    final = follow(
        URL, reader=reader, interval=0, on_update=updates.append, on_waiting=notes.append
    )
    assert final["status"] == "done"
    assert [u["status"] for u in updates] == ["running", "done"]
    assert "waiting in the queue" in notes[0]
    assert "cannot read" in notes[1]
    assert any(r.headers.get("if-none-match") for r in requests)


def test_follow_ignores_an_older_jobs_document() -> None:
    """A document of another job at the URL (an earlier run) does not end the wait."""
    reader, _ = scripted([doc("done", id="old"), doc("done")])
    notes: list[str] = []
    final = follow(URL, job_id="j1", reader=reader, interval=0, on_waiting=notes.append)
    assert final["id"] == "j1"
    assert "older result (job old)" in notes[0]


def test_follow_times_out_saying_what_it_saw_last() -> None:
    """follow() raises WaitTimeout naming the last state when no final document comes."""
    reader, _ = scripted([doc("running", progress=0.25, message="fitting")])
    with pytest.raises(WaitTimeout, match=r"last: running 25% fitting"):
        follow(URL, reader=reader, timeout=0.2, interval=0.05)


def test_follow_gives_up_at_once_on_a_client_error() -> None:
    """A 403 (or other 4xx but 404) is not worth waiting for."""
    reader, _ = scripted([403])
    with pytest.raises(ResultUnavailable, match="403"):
        follow(URL, reader=reader, timeout=5, interval=0)


def test_reader_refuses_what_is_not_a_result_document() -> None:
    """A JSON body without 'status' is not a result document."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[1, 2])

    reader = ResultReader(transport=httpx.MockTransport(handler))
    with pytest.raises(ResultUnavailable, match="not a result document"):
        reader.read(URL)


def test_resolve_result_url() -> None:
    """A URL is kept; an ID becomes BASE_URL/ID.json; an ID without a base URL is an error."""
    assert resolve_result_url(URL, None) == URL
    assert resolve_result_url("j1", "http://r.test/results") == "http://r.test/results/j1.json"
    assert resolve_result_url("a b", "http://r.test/") == "http://r.test/a%20b.json"
    with pytest.raises(ConfigError, match="--base-url"):
        resolve_result_url("j1", None)


def test_summaries_and_description() -> None:
    """Summaries name the job, outcome, duration or error; describe() lists the fields."""
    done = doc("done", finished="2026-11-28T12:00:03.500000Z", data={"x": 1})
    assert summarize(done) == "done: job j1 (echo) in 3.5 s, attempt 1 on node1"
    failed = doc("failed", error={"code": "plugin_error", "message": "boom", "retryable": False})
    assert "plugin_error: boom" in summarize(failed)
    text = describe(
        doc("running", progress=0.42, message="step 2"),
        now=dt.datetime(2026, 11, 28, 12, 0, 5, tzinfo=dt.timezone.utc),
    )
    assert "running 42% step 2" in text
    assert "2.0 s ago" in text
    assert '"x": 1' in describe(done)


def _display(tty: bool) -> tuple[ProgressDisplay, io.StringIO]:
    stream = io.StringIO()
    return ProgressDisplay(stream, tty=tty, width=10), stream


@pytest.mark.parametrize("tty", [True, False])
def test_progress_display(tty: bool) -> None:
    """On a terminal one line is redrawn with a bar; otherwise one line per change."""
    display, stream = _display(tty)
    feed: list[Callable[[], None]] = [
        lambda: display.waiting("queued"),
        lambda: display.update(doc("running", progress=0.0)),
        lambda: display.update(doc("running", progress=0.5, message="half")),
        lambda: display.update(doc("running", progress=0.5, message="half")),
        lambda: display.update(doc("running", progress=0.1, attempt=2)),
        lambda: display.update(doc("done")),
    ]
    for step in feed:
        step()
    out = stream.getvalue()
    if tty:
        assert out.count("\r") == 4
        assert "[#####-----]  50%  half" in out
        assert out.endswith("\n")
    else:
        assert out.splitlines() == [
            "waiting: queued",
            "running 0%",
            "running 50%  half",
            "running 10% (attempt 2)",
        ]
