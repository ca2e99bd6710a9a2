"""The results directory (jobrunner.resultsdir): result URL → file mapping, staying inside,
atomic writes and conflicts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobrunner.config import load_config
from jobrunner.errors import ConfigError, ResultBlocked, ResultRefused
from jobrunner.publish.file import FilePublisher
from jobrunner.resultsdir import (
    PathConflict,
    ResultsDir,
    UnsafePath,
    is_safe_segment,
    relative_result_path,
    split_url_path,
)
from tests.support import capture_events

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
        "http://results.test:8080/r/a%2fb.json",
        "http://results.test:8080/r/a/%2e/x.json",
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
    tree = ResultsDir(results)
    with pytest.raises(UnsafePath, match="symlink"):
        tree.target("link/x.json")
    os.symlink(outside / "target.json", results / "file.json")
    with pytest.raises(UnsafePath, match="symlink"):
        tree.write("file.json", b"{}")
    assert list(outside.iterdir()) == []


def test_prefix_sibling_is_outside(tmp_path: Path) -> None:
    """A sibling directory sharing the name prefix (results-evil next to results) is outside."""
    (tmp_path / "results").mkdir()
    (tmp_path / "results-evil").mkdir()
    (tmp_path / "results" / "x").symlink_to(tmp_path / "results-evil")
    assert ResultsDir(tmp_path / "results").find(["x", "a.json"]) is None


def test_find_hides_dot_names_and_directories(tmp_path: Path) -> None:
    """Reads of dot-named paths, of symlinks to dot-named files and of directories find nothing."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "r.json").write_text("{}")
    (tmp_path / ".tmp.json").write_text("{")
    (tmp_path / "alias.json").symlink_to(tmp_path / ".tmp.json")
    tree = ResultsDir(tmp_path)
    assert tree.find(["run", "r.json"]) == str((tmp_path / "run" / "r.json").resolve())
    for segments in (["run", ""], [".tmp.json"], ["alias.json"], []):
        assert tree.find(segments) is None, segments


@pytest.mark.parametrize(
    ("raw", "segments"),
    [
        (b"/a/b%20c.json", ["a", "b c.json"]),
        (b"/dir/", ["dir", ""]),
        (b"/", [""]),
    ],
)
def test_split_url_path(raw: bytes, segments: list[str]) -> None:
    """URL paths split on '/' before percent-decoding; a trailing '/' leaves an empty name."""
    assert split_url_path(raw) == segments


@pytest.mark.parametrize(
    "raw",
    [
        b"a.json",
        b"/a/../b",
        b"/%2E%2e/b",
        b"/a%2Fb",
        b"/a\\b",
        b"/a%5cb",
        b"//a",
        b"/a%00",
        b"/%ff",
        b"/" + b"n" * 256,
    ],
)
def test_split_url_path_refuses(raw: bytes) -> None:
    """Relative, climbing, encoded-slash, backslash, NUL, bad UTF-8 and long paths are refused."""
    with pytest.raises(UnsafePath):
        split_url_path(raw)


def test_write_conflicts_are_path_conflicts(tmp_path: Path) -> None:
    """A directory at the file's place, or a file where a directory is needed, is a conflict."""
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "file.json").write_text("{}")
    tree = ResultsDir(tmp_path)
    for rel in ("dir.json", "file.json/x.json", "file.json/a/b.json"):
        with pytest.raises(PathConflict):
            tree.write(rel, b"{}")
    assert tree.write("new/x.json", b"{}") is True
    assert tree.write("new/x.json", b"{}") is False
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["dir.json", "file.json", "new", "x.json"]


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    """A results directory that does not exist is an error unless it is to be created."""
    with pytest.raises(ConfigError, match="does not exist"):
        ResultsDir(tmp_path / "missing")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        ResultsDir(tmp_path / "file")
    assert ResultsDir(tmp_path / "missing", create=True).root == (tmp_path / "missing").resolve()


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


def test_blocked_result_paths_are_permanent_result_blocked(tmp_path: Path) -> None:
    """A directory at the file's place, or a file where a directory is needed, is a
    permanent ResultBlocked from check() and from publish() (a blocker that appeared after
    the check), never a retryable publish failure."""
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


def test_unpaired_surrogate_in_result_url_is_refused() -> None:
    """A result path that is not valid Unicode is refused, not an exception."""
    with pytest.raises(ResultRefused):
        relative_result_path("http://results.test:8080/r/\ud800.json", BASE)


def test_segment_with_trailing_newline_is_not_safe() -> None:
    """A path segment is matched in full: "name\\n" is not a safe segment."""
    assert is_safe_segment("name.json")
    assert not is_safe_segment("name.json\n")


def test_file_publisher_marks_final_documents(tmp_path: Path) -> None:
    """A done/failed document gets the empty marker .final/PATH after it is written; a
    running document (a re-run over a final one) removes the marker first; off by setting."""
    config = load_config(env={}, flags={"results_dir": str(tmp_path), "base_url": BASE})
    publisher = FilePublisher(config)
    marker = tmp_path / ".final" / "a" / "b" / "c.json"
    publisher.publish(BASE + "a/b/c.json", b'{"status":"running"}', final=False)
    assert not marker.exists()
    publisher.publish(BASE + "a/b/c.json", b'{"status":"done"}')
    assert marker.is_file() and marker.read_bytes() == b""
    assert marker.stat().st_mtime_ns >= (tmp_path / "a" / "b" / "c.json").stat().st_mtime_ns
    publisher.publish(BASE + "a/b/c.json", b'{"status":"done"}')  # a re-publication: still there
    assert marker.is_file()
    publisher.publish(BASE + "a/b/c.json", b'{"status":"running"}', final=False)
    assert not marker.exists()
    assert (tmp_path / "a" / "b" / "c.json").read_bytes() == b'{"status":"running"}'
    off = load_config(
        env={}, flags={"results_dir": str(tmp_path), "base_url": BASE, "final_markers": False}
    )
    FilePublisher(off).publish(BASE + "x.json", b'{"status":"done"}')
    assert not (tmp_path / ".final" / "x.json").exists()


def test_final_marker_order_when_the_document_fails_to_write(tmp_path: Path) -> None:
    """A final document that cannot be written leaves no marker; a running one that cannot
    be written has already lost its marker (never a stale marker beside a new document)."""
    config = load_config(env={}, flags={"results_dir": str(tmp_path), "base_url": BASE})
    publisher = FilePublisher(config)
    publisher.publish(BASE + "r.json", b'{"status":"done"}')
    (tmp_path / "blocked.json").mkdir()
    with pytest.raises(ResultBlocked):
        publisher.publish(BASE + "blocked.json", b'{"status":"done"}')
    assert not (tmp_path / ".final" / "blocked.json").exists()
    results = ResultsDir(tmp_path)
    results.unmark_final("r.json")  # idempotent helpers
    results.unmark_final("r.json")
    assert not (tmp_path / ".final" / "r.json").exists()
    with pytest.raises(UnsafePath):
        results.mark_final("../escape.json")


def test_find_never_serves_final_markers(tmp_path: Path) -> None:
    """The results server's lookup hides .final/... like every dot-named path."""
    results = ResultsDir(tmp_path)
    results.mark_final("a/r.json")
    assert (tmp_path / ".final" / "a" / "r.json").is_file()
    assert results.find([".final", "a", "r.json"]) is None


def test_a_blocked_marker_never_fails_the_publication(tmp_path: Path) -> None:
    """A file standing where .final/ should be: final documents are still published (the
    marker's failure is logged as final_marker_failed) and running ones too."""
    config = load_config(env={}, flags={"results_dir": str(tmp_path), "base_url": BASE})
    publisher = FilePublisher(config)
    (tmp_path / ".final").write_text("in the way")
    with capture_events() as events:
        publisher.publish(BASE + "a/r.json", b'{"status":"done"}')
        publisher.publish(BASE + "a/r.json", b'{"status":"running"}', final=False)
    assert (tmp_path / "a" / "r.json").read_bytes() == b'{"status":"running"}'
    failed = [e for e in events if e["event"] == "final_marker_failed"]
    assert len(failed) == 1 and failed[0]["path"] == "a/r.json"
