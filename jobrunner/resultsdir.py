"""The results directory: safe relative paths, staying inside, atomic writes.

One module decides which paths below a directory may be read or written,
for everybody who touches the results directory: the ``file`` publisher
(writes), the ``rsync`` and ``http`` publishers (map result URLs to the
same relative paths), the results server (reads, and writes for ``PUT``) and
the input policy (``file:`` inputs must stay inside their directory).

The rules:

Paths are refused, never cleaned up
    A URL path is split on ``/`` *before* percent-decoding, so an encoded
    ``/`` (``%2F``) cannot join segments; it is refused, as are ``.``,
    ``..`` and empty segments (also percent-encoded), backslashes (raw or
    ``%5C``), control characters (NUL, ...), invalid UTF-8, names over
    :data:`MAX_NAME_LENGTH` bytes and paths over :data:`MAX_PATH_LENGTH`.

Result names are plain
    A result file's path segments hold only letters, digits and
    ``._~@+=,-`` and never start with a dot: dot names belong to temp files
    (the atomic writer's ``.xxx.tmp``, rsync's ``.name.XXXXXX``) and are
    never served.

Staying inside
    Symlinks already on disk are followed, and the real path must stay
    inside the directory's real path (a sibling sharing a prefix,
    ``results-evil`` next to ``results``, is outside).

Atomic writes
    A document is written to a dot-named temp file in its target directory,
    fsync'd, and renamed over the old one (then the directory is fsync'd), so
    a reader sees the old or the new document, never a part. A directory
    standing where the file should go, or a file where a directory is needed,
    is a :class:`PathConflict`: no retry can fix it.

Final markers
    An empty file ``.final/PATH`` says the document at ``PATH`` is ``done``
    or ``failed`` and will not change: a server that cannot read the
    document's status (nginx serving the directory) tests for it to send a
    long cache lifetime. It is created after the final document is in place
    and removed before a ``running`` document replaces it (a re-run). Being
    dot-named, the ``.final`` directory itself is never served.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

from jobrunner.errors import ConfigError, ResultRefused

__all__ = [
    "FINAL_MARKERS",
    "MAX_NAME_LENGTH",
    "MAX_PATH_LENGTH",
    "PathConflict",
    "ResultsDir",
    "UnsafePath",
    "is_inside",
    "is_safe_segment",
    "relative_result_path",
    "split_url_path",
    "write_atomic",
]

#: The directory below the results directory holding the final markers.
FINAL_MARKERS = ".final"
#: Longest path segment, in bytes (the usual file-system limit).
MAX_NAME_LENGTH = 255
#: Longest relative path, in characters.
MAX_PATH_LENGTH = 1024
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_~][A-Za-z0-9._~@+=,-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnsafePath(ValueError):
    """A path refused because it could leave the directory or is malformed."""


class PathConflict(OSError):
    """A write target conflicts with the tree: a directory at the file's place,
    or a file where a directory is needed. Retrying cannot fix it."""


def is_safe_segment(segment: str) -> bool:
    """True for a path segment a result file may have: no dot first, a small alphabet."""
    return _SAFE_SEGMENT.fullmatch(segment) is not None


def is_inside(root: Path, real: Path) -> bool:
    """True when the real path ``real`` lies strictly below the real path ``root``."""
    return real != root and root in real.parents


def split_url_path(raw: bytes) -> list[str]:
    """Split a percent-encoded URL path (``/a/b%20c``) into decoded segments.

    The path is split on ``/`` before percent-decoding. A trailing ``/``
    leaves an empty last segment (it names a directory); every other
    segment must be non-empty.

    Raises:
        UnsafePath: naming what is wrong (see the module docstring).
    """
    if not raw.startswith(b"/"):
        raise UnsafePath("the path must start with '/'")
    if len(raw) > 3 * MAX_PATH_LENGTH:
        raise UnsafePath(f"the path is longer than {MAX_PATH_LENGTH} characters")
    if b"\\" in raw or b"%5c" in raw.lower():
        raise UnsafePath("backslashes are not allowed in the path")
    raw_segments = raw[1:].split(b"/")
    segments = []
    for index, raw_segment in enumerate(raw_segments):
        try:
            segment = unquote_to_bytes(raw_segment).decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafePath("the path is not valid UTF-8") from None
        last = index == len(raw_segments) - 1
        if "/" in segment:
            raise UnsafePath("an encoded '/' (%2F) is not allowed in the path")
        if segment in (".", "..") or (segment == "" and not last):
            raise UnsafePath("empty, '.' and '..' path segments are not allowed")
        if _CONTROL.search(segment):
            raise UnsafePath("control characters (NUL, ...) are not allowed in the path")
        if len(segment.encode()) > MAX_NAME_LENGTH:
            raise UnsafePath(f"a path segment is longer than {MAX_NAME_LENGTH} bytes")
        segments.append(segment)
    return segments


def check_result_segments(segments: Sequence[str]) -> str:
    """Check the segments of a result file's path; return the relative path ``a/b.json``.

    Raises:
        UnsafePath: no name, a directory (trailing ``/``), a segment outside
            the result-name alphabet or starting with a dot, or too long.
    """
    rel = "/".join(segments)
    if not segments or segments[-1] == "":
        raise UnsafePath("the path must name a file, not a directory")
    if len(rel) > MAX_PATH_LENGTH:
        raise UnsafePath(f"the path is longer than {MAX_PATH_LENGTH} characters")
    for segment in segments:
        if not is_safe_segment(segment):
            raise UnsafePath(
                f"path segment {segment!r} may hold only letters, digits and ._~@+=,- "
                "and must not start with a dot"
            )
    return rel


def relative_result_path(url: str, base_url: str) -> str:
    """Return the path of result URL ``url`` relative to ``base_url`` (``a/b/r.json``).

    Raises:
        ResultRefused: outside the base URL, a query or fragment, or an
            unsafe path (see the module docstring).
    """
    parts = urlsplit(url)
    base = urlsplit(base_url)
    outside = ResultRefused(
        f"result URL {url!r} is not under the results base URL {base_url!r}; "
        "submit jobs with a result URL below the worker's --base-url"
    )
    if (parts.scheme.lower(), parts.netloc.lower()) != (base.scheme.lower(), base.netloc.lower()):
        raise outside
    if parts.query or parts.fragment:
        raise ResultRefused(f"result URL {url!r} must not have a query or fragment")
    try:
        raw = parts.path.encode("utf-8")
        base_segments = split_url_path(base.path.encode("utf-8") or b"/")
        segments = split_url_path(raw or b"/")
    except (UnsafePath, UnicodeError) as exc:
        reason = str(exc) if isinstance(exc, UnsafePath) else "the path is not valid UTF-8"
        raise ResultRefused(f"result URL {url!r}: {reason}") from None
    if base_segments[-1] == "":
        base_segments.pop()
    if segments[: len(base_segments)] != base_segments:
        raise outside
    try:
        return check_result_segments(segments[len(base_segments) :])
    except UnsafePath as exc:
        raise ResultRefused(f"result URL {url!r}: {exc}") from None


def write_atomic(path: Path, body: bytes, *, fsync: bool = True) -> None:
    """Write ``body`` to ``path`` atomically (temp file, fsync, rename, fsync dir).

    Missing parent directories are created.

    Raises:
        PathConflict: a directory is at ``path``, or a file where a parent
            directory should be.
        OSError: the write failed; no partial file is left at ``path``.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise PathConflict(
            errno.ENOTDIR, "a file stands where a directory is needed", str(path)
        ) from None
    if path.is_dir():
        raise PathConflict(errno.EISDIR, f"a directory stands at {path}", str(path))
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, IsADirectoryError):  # a directory appeared meanwhile
            raise PathConflict(errno.EISDIR, f"a directory stands at {path}", str(path)) from None
        raise
    if fsync:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class ResultsDir:
    """One results directory: where a relative path leads, and atomic writes there.

    The directory's real path is resolved once, not on every call.

    Args:
        path: the directory.
        create: create it (and its parents) when missing.

    Raises:
        ConfigError: the directory does not exist (and ``create`` is false),
            is not a directory, or cannot be created.
    """

    def __init__(self, path: Path | str, *, create: bool = False) -> None:
        self.path = Path(path)
        if create:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create results directory {self.path}: {exc.strerror or exc}"
                ) from None
        if not self.path.is_dir():
            what = "is not a directory" if self.path.exists() else "does not exist"
            raise ConfigError(f"results directory {self.path} {what}")
        self.root = Path(os.path.realpath(self.path))
        self._root = str(self.root)
        self._prefix = self._root.rstrip(os.sep) + os.sep

    def find(self, segments: Sequence[str]) -> str | None:
        """The real path a read of ``segments`` leads to, or None when hidden or outside.

        Hidden: a dot-named segment, in the request or in the real path after
        following symlinks; a trailing ``/`` (directories are not listed).
        Outside: a symlink leading out of the directory. The path is a plain
        string: this runs for every request the results server answers.
        """
        if not segments or segments[-1] == "" or any(s.startswith(".") for s in segments):
            return None
        real = os.path.realpath(os.path.join(self._root, *segments))
        if not real.startswith(self._prefix):
            return None
        if "/." in real[len(self._root) :]:  # a dot-named part after following symlinks
            return None
        return real

    def target(self, rel: str) -> Path:
        """The real path a write of result path ``rel`` (``a/b.json``) goes to.

        Raises:
            UnsafePath: ``rel`` is not a result path, or a symlink on disk
                leads out of the directory.
        """
        check_result_segments(rel.split("/"))
        real = Path(os.path.realpath(self.root.joinpath(*rel.split("/"))))
        if not is_inside(self.root, real):
            raise UnsafePath(f"{rel!r} leads outside the results directory through a symlink")
        return real

    def blocker(self, path: Path) -> str | None:
        """What on disk keeps the real path ``path`` from ever being written, or None.

        A directory at the file's place, or a file where one of its parent
        directories (below the root) is needed.
        """
        if path.is_dir():
            return f"a directory stands at {path}"
        for parent in path.parents:
            if not is_inside(self.root, parent):
                break
            if parent.exists() and not parent.is_dir():
                return f"the file {parent} stands where a directory is needed"
        return None

    def marker(self, rel: str) -> str:
        """The final marker's path for result path ``rel``: ``ROOT/.final/rel``.

        Raises:
            UnsafePath: ``rel`` is not a result path.
        """
        check_result_segments(rel.split("/"))
        return os.path.join(self._root, FINAL_MARKERS, *rel.split("/"))

    def mark_final(self, rel: str) -> None:
        """Create the empty final marker of ``rel`` (after its final document is in place).

        One open and close when the marker's directory exists already.

        Raises:
            OSError: the marker cannot be created.
        """
        path = self.marker(rel)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.close(fd)

    def unmark_final(self, rel: str) -> None:
        """Remove the final marker of ``rel`` (before a ``running`` document replaces it).

        Raises:
            OSError: the marker exists and cannot be removed.
        """
        try:
            os.unlink(self.marker(rel))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass  # no marker file there: nothing that a server could take for one

    def write(self, rel: str, body: bytes, *, fsync: bool = True) -> bool:
        """Write ``body`` atomically at result path ``rel``; True when the file is new.

        Raises:
            UnsafePath: see :meth:`target`.
            PathConflict: a directory or file is in the way (its message says which).
            OSError: the write failed.
        """
        path = self.target(rel)
        blocker = self.blocker(path)
        if blocker is not None:
            raise PathConflict(errno.EEXIST, blocker, str(path))
        created = not os.path.lexists(path)
        try:
            write_atomic(path, body, fsync=fsync)
        except PathConflict as exc:  # something got in the way meanwhile
            raise PathConflict(exc.errno, self.blocker(path) or exc.strerror, str(path)) from None
        return created
