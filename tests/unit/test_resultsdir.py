"""The results directory (jobrunner.resultsdir): result URL → file mapping, staying inside,
atomic writes and conflicts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobrunner.config import load_config
from jobrunner.errors import ConfigError, PublishFailed, ResultBlocked, ResultRefused
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
        "http://[results.test:8080/r/a.json",
        "http://[zz]:8080/r/a.json",
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


@pytest.mark.parametrize("where", [".final", ".final/a"])
def test_final_markers_never_follow_a_symlink(tmp_path: Path, where: str) -> None:
    """A symlink under .final (or .final itself) leading out of the directory: a final
    document is still published, but no marker is created through the link, and a
    running document's unmark deletes nothing through it (its publication fails)."""
    root, outside = tmp_path / "results", tmp_path / "outside"
    root.mkdir()
    (outside / "a").mkdir(parents=True)
    (outside / "a" / "r.json").write_text("not ours")
    (outside / "r.json").write_text("not ours")
    link = root / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside if where == ".final" else outside / "a")
    config = load_config(env={}, flags={"results_dir": str(root), "base_url": BASE})
    publisher = FilePublisher(config)
    with capture_events() as events:
        publisher.publish(BASE + "a/new.json", b'{"status":"done"}')
    assert (root / "a" / "new.json").read_bytes() == b'{"status":"done"}'
    assert sorted(p.name for p in outside.rglob("*")) == ["a", "r.json", "r.json"]
    failed = [e for e in events if e["event"] == "final_marker_failed"]
    assert len(failed) == 1 and "symlink" in failed[0]["error"]
    with pytest.raises(PublishFailed, match="symlink"):
        publisher.publish(BASE + "a/r.json", b'{"status":"running"}', final=False)
    assert (outside / "a" / "r.json").read_text() == "not ours"
    results = ResultsDir(root)
    with pytest.raises(OSError, match="symlink"):
        results.mark_final("a/r.json")
    with pytest.raises(OSError, match="symlink"):
        results.unmark_final("a/r.json")
    assert (outside / "a" / "r.json").read_text() == "not ours"


# -- the write path: no symlink followed out, at the moment of writing -----------------------


def test_symlinks_inside_the_directory_are_followed(tmp_path: Path) -> None:
    """A symlinked directory or file that stays inside is written through, to its real
    place; the symlinks themselves stay symlinks."""
    (tmp_path / "2026").mkdir()
    (tmp_path / "latest").symlink_to("2026")
    (tmp_path / "2026" / "real.json").write_text("{}")
    (tmp_path / "alias.json").symlink_to("2026/real.json")
    tree = ResultsDir(tmp_path)
    assert tree.check("latest/new/x.json") is None
    assert tree.write("latest/new/x.json", b"1") is True
    assert (tmp_path / "2026" / "new" / "x.json").read_bytes() == b"1"
    assert tree.write("alias.json", b"2") is False
    assert (tmp_path / "2026" / "real.json").read_bytes() == b"2"
    assert (tmp_path / "alias.json").is_symlink() and (tmp_path / "latest").is_symlink()


def test_a_symlink_swapped_in_after_the_check_is_refused_at_write(tmp_path: Path) -> None:
    """A directory replaced by a symlink leading out between the check and the write: the
    write refuses it and nothing is written outside."""
    results, outside = tmp_path / "results", tmp_path / "outside"
    results.mkdir()
    outside.mkdir()
    (results / "d").mkdir()
    tree = ResultsDir(results)
    assert tree.check("d/x.json") is None
    (results / "d").rmdir()
    (results / "d").symlink_to(outside)
    with pytest.raises(UnsafePath, match="symlink"):
        tree.write("d/x.json", b"{}")
    with pytest.raises(UnsafePath, match="symlink"):
        tree.check("d/x.json")
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in results.iterdir()) == ["d"]  # no temp file left


def test_a_symlink_loop_on_the_way_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    """A symlink loop where a directory or the file is needed is refused (UnsafePath naming
    the symlink) by the check and the write, and nothing is left behind."""
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.json").symlink_to("x.json")
    tree = ResultsDir(tmp_path)
    for rel in ("loop/x.json", "a/x.json"):
        with pytest.raises(UnsafePath, match="symlink"):
            tree.check(rel)
        with pytest.raises(UnsafePath, match="symlink"):
            tree.write(rel, b"{}")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "loop", "x.json"]


def test_the_results_directory_swapped_for_a_symlink_is_not_followed(tmp_path: Path) -> None:
    """The results directory replaced by a symlink after start: writes fail, nothing lands
    where the symlink points."""
    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    results.mkdir()
    elsewhere.mkdir()
    tree = ResultsDir(results)
    results.rename(tmp_path / "old")
    results.symlink_to(elsewhere)
    with pytest.raises(OSError):
        tree.write("x.json", b"{}")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("blocker", "rel", "says"),
    [
        ("file", "file/x.json", "the file {root}/file stands where a directory is needed"),
        ("file", "file/a/b/x.json", "the file {root}/file stands where a directory is needed"),
        ("a/file", "a/file/x.json", "the file {root}/a/file stands where a directory is needed"),
        ("dir", "dir", "a directory stands at {root}/dir"),
        ("fifo", "fifo/x.json", "the file {root}/fifo stands where a directory is needed"),
    ],
)
def test_conflicts_name_what_is_in_the_way(
    tmp_path: Path, blocker: str, rel: str, says: str
) -> None:
    """A file (or FIFO) where a directory is needed, or a directory at the file's place, is a
    PathConflict from write() and a message from check(), naming the path in the way."""
    target = tmp_path / blocker
    target.parent.mkdir(parents=True, exist_ok=True)
    if blocker == "dir":
        target.mkdir()
    elif blocker == "fifo":
        os.mkfifo(target)
    else:
        target.write_text("in the way")
    tree = ResultsDir(tmp_path)
    message = says.format(root=tree.root)
    assert tree.check(rel) == message
    with pytest.raises(PathConflict) as info:
        tree.write(rel, b"{}")
    assert info.value.strerror == message
    assert not [p for p in tmp_path.rglob(".*")]  # no temp file left


def test_written_files_are_world_readable_whatever_the_umask(tmp_path: Path) -> None:
    """A document is published with mode 0644 even under umask 077 (the results server may
    run as another user), and is complete."""
    old = os.umask(0o077)
    try:
        ResultsDir(tmp_path).write("a/r.json", b'{"v":1}')
    finally:
        os.umask(old)
    path = tmp_path / "a" / "r.json"
    assert path.stat().st_mode & 0o777 == 0o644
    assert path.read_bytes() == b'{"v":1}'


KILLED_WRITER = """
import os, signal, sys
from jobrunner.resultsdir import ResultsDir
def kill(fd):
    os.kill(os.getpid(), signal.SIGKILL)
os.fsync = kill
ResultsDir(sys.argv[1]).write("a/r.json", b'{"partial": true}')
"""


def test_a_write_killed_before_its_rename_leaves_litter_the_sweep_removes(tmp_path: Path) -> None:
    """A writer killed between writing its temp file and renaming it leaves a dot-named temp
    file that is never served and that the worker's litter sweep recognises and removes."""
    import subprocess
    import sys

    from jobrunner._worker.litter import is_litter, remove_litter

    run = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], timeout=60)
    assert run.returncode == -9
    left = list((tmp_path / "a").iterdir())
    assert len(left) == 1 and left[0].name.startswith(".jr"), left
    assert is_litter(left[0].name)
    assert ResultsDir(tmp_path).find(["a", left[0].name]) is None
    assert remove_litter(tmp_path, min_age=0)[0] == 1
    assert list((tmp_path / "a").iterdir()) == []


@pytest.mark.parametrize(
    "base",
    [
        BASE,
        "http://results.test:8080/r",
        "http://results.test/",
        "https://h/a/b/",
        "http://h",
        "http://H/R/",
        "http://h/a%20b/",
        "http://h/a/../b/",
        "http://h/r//",
        "http://u:p@h/r/",
        "http://[::1]:8080/r/",
    ],
)
@pytest.mark.parametrize(
    "tail",
    [
        "a.json",
        "u42/2026/x.json",
        "a/b/c/d/e/f.json",
        "~x/@y+z=w,v-u.json",
        "a..b/x.json",
        "x.json.",
        ".hidden.json",
        "a/.hidden/x.json",
        "a//x.json",
        "a/./x.json",
        "a/../x.json",
        "with%20space.json",
        "a%2fb.json",
        "%41.json",
        "a.json?x=1",
        "a.json#f",
        "a\\b.json",
        "a\n.json",
        "a.json\n",
        "a\t.json",
        " a.json",
        "a/",
        "",
        "n" * 255 + ".json",
        "n" * 250 + ".json",
        "/".join(["d"] * 600) + "/x.json",
        "/".join(["d" * 200] * 5) + "/x.json",
        "\u00e9.json",
    ],
)
def test_the_quick_url_path_agrees_with_the_full_parse(base: str, tail: str) -> None:
    """relative_result_path's shortcut for plain URLs gives exactly what the full parse
    gives (the same path, or a refusal), for plain and tricky result URLs alike."""
    from jobrunner.resultsdir import _parse_result_url

    url = (base if base.endswith("/") else base + "/") + tail
    for candidate in (url, url.upper(), url.replace("http", "HTTP", 1)):
        try:
            expected: str | None = _parse_result_url(candidate, base)
        except ResultRefused:
            expected = None
        try:
            got: str | None = relative_result_path(candidate, base)
        except ResultRefused:
            got = None
        assert got == expected, candidate


@pytest.mark.parametrize(
    "rel",
    [
        "n" * 250 + ".json",  # 255 bytes: the longest name; the temp file's name does not grow
        "~x/y@z+w=v,u-t.json",
        "x.json.",
        "a..b/c..json",
        "/".join(["d"] * 100) + "/deep.json",
    ],
)
def test_odd_but_valid_result_names_are_written_where_they_say(tmp_path: Path, rel: str) -> None:
    """Unusual result names the rules allow (the longest name, every allowed punctuation
    mark, trailing and doubled dots, deep paths) are published at exactly that path, with
    their final marker, and leave no temp file."""
    config = load_config(env={}, flags={"results_dir": str(tmp_path), "base_url": BASE})
    publisher = FilePublisher(config)
    publisher.check(BASE + rel)
    publisher.publish(BASE + rel, b'{"v":1}')
    assert (tmp_path / rel).read_bytes() == b'{"v":1}'
    assert (tmp_path / ".final" / rel).is_file()
    assert [p for p in tmp_path.rglob(".*") if p.name != ".final"] == []
