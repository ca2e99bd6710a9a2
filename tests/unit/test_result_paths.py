"""Result URL → file mapping: everything that could leave the results directory is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobrunner.config import load_config
from jobrunner.errors import ResultRefused
from jobrunner.publish.file import FilePublisher
from jobrunner.publish.paths import relative_result_path, resolve_result_path

BASE = "http://results.test:8080/r/"


@pytest.mark.parametrize(
    ("url", "rel"),
    [
        ("http://results.test:8080/r/a.json", "a.json"),
        ("http://RESULTS.test:8080/r/u42/2026/x.json", "u42/2026/x.json"),
        ("http://results.test:8080/r/with%20space.json", None),
    ],
)
def test_urls_under_base_map_to_relative_paths(url: str, rel: str | None) -> None:
    """A URL under the base maps to the same relative path; odd characters are refused."""
    if rel is None:
        with pytest.raises(ResultRefused):
            relative_result_path(url, BASE)
    else:
        assert relative_result_path(url, BASE) == rel


@pytest.mark.parametrize(
    "url",
    [
        "http://other.test:8080/r/a.json",
        "https://results.test:8080/r/a.json",
        "http://results.test:8080/elsewhere/a.json",
        "http://results.test:8080/r/../etc/passwd",
        "http://results.test:8080/r/%2e%2e/etc/passwd",
        "http://results.test:8080/r/a/%2E%2E/%2e%2e/x.json",
        "http://results.test:8080/r/a\\..\\x.json",
        "http://results.test:8080/r/a%5c..%5cx.json",
        "http://results.test:8080/r/a%00.json",
        "http://results.test:8080/r//etc/passwd",
        "http://results.test:8080/r/.hidden.json",
        "http://results.test:8080/r/dir/",
        "http://results.test:8080/r/",
        "http://results.test:8080/r/a.json?x=1",
        "http://results.test:8080/r/a.json#frag",
        "http://results.test:8080/r/" + "n" * 300 + ".json",
        "http://results.test:8080/r/" + "/".join(["d"] * 600) + "/x.json",
    ],
)
def test_unsafe_result_urls_are_refused(url: str) -> None:
    """Result URLs outside the base or with traversal tricks are refused, never cleaned up."""
    with pytest.raises(ResultRefused):
        relative_result_path(url, BASE)


def test_symlink_leading_out_is_refused(tmp_path: Path) -> None:
    """A symlink inside the results directory that points outside cannot be written through."""
    results, outside = tmp_path / "results", tmp_path / "outside"
    results.mkdir()
    outside.mkdir()
    os.symlink(outside, results / "link")
    with pytest.raises(ResultRefused, match="symlink"):
        resolve_result_path(BASE + "link/x.json", BASE, results)
    os.symlink(outside / "target.json", results / "file.json")
    with pytest.raises(ResultRefused, match="symlink"):
        resolve_result_path(BASE + "file.json", BASE, results)


def test_file_publisher_writes_atomically(tmp_path: Path) -> None:
    """The file publisher creates sub-directories and leaves no temp files behind."""
    config = load_config(env={}, flags={"results_dir": str(tmp_path), "base_url": BASE})
    publisher = FilePublisher(config)
    publisher.publish(BASE + "a/b/c.json", b'{"v":1}')
    publisher.publish(BASE + "a/b/c.json", b'{"v":2}', final=False)
    assert (tmp_path / "a" / "b" / "c.json").read_bytes() == b'{"v":2}'
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["c.json"]
    with pytest.raises(ResultRefused):
        publisher.check(BASE + "../x.json")


def test_unpaired_surrogate_in_result_url_is_refused() -> None:
    """A result path that is not valid Unicode is refused, not an exception."""
    with pytest.raises(ResultRefused):
        relative_result_path("http://results.test:8080/r/\ud800.json", BASE)


def test_segment_with_trailing_newline_is_not_safe() -> None:
    """A path segment is matched in full: "name\\n" is not a safe segment."""
    from jobrunner.publish.paths import is_safe_segment

    assert is_safe_segment("name.json")
    assert not is_safe_segment("name.json\n")


def test_blocked_result_paths_are_permanent_result_blocked(tmp_path: Path) -> None:
    """A directory at the file's place, or a file where a directory is needed, is a
    permanent ResultBlocked from check() and from publish() (a blocker that appeared after
    the check), never a retryable publish failure."""
    from jobrunner.errors import ResultBlocked

    config = load_config(env={}, flags={"results_dir": str(tmp_path), "base_url": BASE})
    publisher = FilePublisher(config)
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "file").write_text("in the way")
    for url, says in (
        (BASE + "dir.json", "a directory stands at"),
        (BASE + "file/x.json", "the file"),
    ):
        with pytest.raises(ResultBlocked, match=says) as info:
            publisher.check(url)
        assert info.value.retryable is False
        with pytest.raises(ResultBlocked, match=says):
            publisher.publish(url, b"{}")
    publisher.check(BASE + "free/x.json")  # not blocked: created on publish
