"""Unit tests of the cache rules (jobrunner.caching): document status → Cache-Control."""

from __future__ import annotations

import json

import pytest

from jobrunner.caching import (
    RUNNING_MAX_AGE,
    CachePolicy,
    StatusMemo,
    cache_control,
    document_status,
)

# What a done document gets under the default policy.
FINISHED_DAY = "public, max-age=86400, stale-while-revalidate=86400, stale-if-error=86400"
POLICY = CachePolicy(finished=3600, not_found=5)
HOUR = "public, max-age=3600, stale-while-revalidate=3600, stale-if-error=3600"


@pytest.mark.parametrize(
    ("http_status", "status", "expected"),
    [
        (200, "done", HOUR),
        (200, "failed", HOUR),
        (304, "done", HOUR),
        (200, "running", f"public, max-age={RUNNING_MAX_AGE}"),
        (304, "running", f"public, max-age={RUNNING_MAX_AGE}"),
        (200, None, "no-cache"),
        (200, "queued", "no-cache"),
        (404, None, "public, max-age=5"),
        (400, None, "no-store"),
        (405, None, "no-store"),
        (500, "done", "no-store"),
        (503, None, "no-store"),
    ],
)
def test_cache_control_by_status(http_status: int, status: str | None, expected: str) -> None:
    """Finished documents are cached for the configured time, running ones for a second,
    404s briefly, unknown files revalidated, errors never stored."""
    assert cache_control(POLICY, http_status, status) == expected


def test_running_is_at_most_one_second() -> None:
    """A running document never stays in a cache longer than a second."""
    assert RUNNING_MAX_AGE <= 1


def test_zero_durations_switch_caching_off() -> None:
    """0 seconds makes caches revalidate finished documents and not store 404s."""
    off = CachePolicy(finished=0, not_found=0)
    assert cache_control(off, 200, "done") == "no-cache"
    assert cache_control(off, 404, None) == "no-store"


def test_defaults() -> None:
    """By default finished documents are cached for a day and 404s for two seconds."""
    assert cache_control(CachePolicy(), 200, "done") == FINISHED_DAY
    assert cache_control(CachePolicy(), 404, None) == "public, max-age=2"


@pytest.mark.parametrize("value", [-1, 10 * 366 * 86400, 1.5, True, "60"])
def test_policy_refuses_bad_durations(value: object) -> None:
    """Negative, absurdly long, fractional, boolean and text durations are refused."""
    with pytest.raises((TypeError, ValueError)):
        CachePolicy(finished=value)  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        CachePolicy(not_found=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"id":"a","type":"t","status":"done","data":{}}', "done"),
        (b'  \n{"status": "running", "progress": 0.5}', "running"),
        # A "status" inside data or meta is not the document's own.
        (b'{"meta":{"status":"done"},"status":"running"}', "running"),
        (b'{"data":{"status":"done"}}', None),
        (b'{"status": 3}', None),
        (b"[1, 2]", None),
        (b'{"status": "done"', None),  # truncated
        (b"\xff\xfe not json", None),
        (b"", None),
        (b"a,b\n1,2\n", None),
        (b"[" * 100_000 + b"]" * 100_000, None),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, None),  # nesting beyond the parser
    ],
)
def test_document_status(body: bytes, expected: str | None) -> None:
    """Only the top-level status of a JSON object counts; anything else is not a document."""
    assert document_status(body) == expected


def test_document_status_of_real_document() -> None:
    """A document as the worker publishes it yields its status."""
    doc = {"v": 1, "id": "j", "type": "t", "status": "failed", "timestamp": "2026-01-01T00:00:00Z"}
    assert document_status(json.dumps(doc).encode()) == "failed"


def test_status_memo_is_bounded_lru() -> None:
    """The memo answers known ETags and forgets the least recently used beyond its size."""
    memo = StatusMemo(size=2)
    memo.put('"a"', "done")
    memo.put('"b"', None)
    assert memo.get('"a"') == (True, "done")  # "a" is now the most recent
    memo.put('"c"', "running")
    assert memo.get('"b"') == (False, None)
    assert memo.get('"a"') == (True, "done")
    assert memo.get('"c"') == (True, "running")
