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
    ``results-evil`` next to ``results``, is outside). A write holds to this
    at the moment it writes, not only when it was checked: it opens the
    directories of the path one by one from the results directory without
    following symlinks (``O_NOFOLLOW``) and writes and renames relative to
    the directory it holds open. Where a symlink is on the way, the real path
    is resolved and checked, and then opened the same way; a symlink that
    appears meanwhile is refused, never followed.

Atomic writes
    A document is written to a dot-named temp file in its target directory
    (``.jr<pid>_<random>_<n>.tmp``, created exclusively, mode 0644),
    fsync'd, and renamed over the old one (then the directory is fsync'd),
    so a reader sees the old or the new document, never a part. A directory
    standing where the file should go, or a file where a directory is needed,
    is a :class:`PathConflict`: no retry can fix it. Missing directories are
    created.

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
import functools
import itertools
import os
import re
import stat
from collections.abc import Callable, Sequence
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
# A result path the slow parse would return unchanged: safe segments of at most
# MAX_NAME_LENGTH characters, nothing percent-encoded (the URL fast path).
_PLAIN_REL = re.compile(
    r"[A-Za-z0-9_~][A-Za-z0-9._~@+=,-]{0,254}(?:/[A-Za-z0-9_~][A-Za-z0-9._~@+=,-]{0,254})*"
)
# A base URL whose text can be a plain prefix: printable ASCII, no query,
# fragment, percent-encoding, backslash or white space.
_PLAIN_BASE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[!$&-.0-9:;=@-\[\]_a-z~/]*")
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_DIR_NOFOLLOW = _DIR | os.O_NOFOLLOW
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


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
    # The usual URL is the base's text followed by a plain path: nothing to
    # decode, nothing to split; it is taken as it is. Anything else gets the
    # full parse below, which gives the same answer for the usual URL.
    prefix = _plain_prefix(base_url)
    if prefix is not None and url.startswith(prefix):
        rel = url[len(prefix) :]
        if len(rel) <= MAX_PATH_LENGTH and _PLAIN_REL.fullmatch(rel) is not None:
            return rel
    return _parse_result_url(url, base_url)


@functools.lru_cache(maxsize=32)
def _plain_prefix(base_url: str) -> str | None:
    """The text every plain result URL under ``base_url`` starts with, or None.

    None when the base URL holds anything a parse could change (encoded
    characters, a query, white space ...) or is not usable at all.
    """
    prefix = base_url if base_url.endswith("/") else base_url + "/"
    if _PLAIN_BASE.fullmatch(prefix) is None or "//" in prefix.split("://", 1)[1]:
        return None
    try:
        if _parse_result_url(prefix + "x", base_url) != "x":
            return None
    except (ResultRefused, ValueError):
        return None
    return prefix


def _parse_result_url(url: str, base_url: str) -> str:
    """:func:`relative_result_path`, the full parse."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced '[' in the host: "Invalid IPv6 URL"
        raise ResultRefused(f"result URL {url!r} is not a valid URL: {exc}") from None
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

    Missing parent directories are created. Symlinks on the way are followed:
    for paths the caller trusts (a result path from a job goes through
    :meth:`ResultsDir.write`).

    Raises:
        PathConflict: a directory is at ``path``, or a file where a parent
            directory should be.
        OSError: the write failed; no partial file is left at ``path``.
    """
    folder = os.path.dirname(path) or "."
    try:
        try:
            dir_fd = os.open(folder, _DIR)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            dir_fd = os.open(folder, _DIR)
    except (FileExistsError, NotADirectoryError):
        raise PathConflict(
            errno.ENOTDIR, "a file stands where a directory is needed", str(path)
        ) from None
    try:
        name = os.path.basename(path)
        try:
            info = os.stat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISDIR(info.st_mode):
                raise PathConflict(errno.EISDIR, f"a directory stands at {path}", str(path))
        _write_into(dir_fd, name, body, fsync=fsync, shown=str(path))
    finally:
        os.close(dir_fd)


class _TempNames:
    """Names for temp files: ``.jr<pid>_<random>_<n>.tmp``, unique per process.

    The pid and a random part (new after a fork) keep the names of processes
    and hosts sharing a directory apart; the file is created exclusively all
    the same. The litter sweep (:mod:`jobrunner._worker.litter`) knows the
    form, and being dot-named they are never served.
    """

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._count = itertools.count()

    def next(self) -> str:
        pid = os.getpid()
        if pid != self._pid:
            self._prefix = f".jr{pid}_{os.urandom(4).hex()}_"
            self._pid = pid
        return f"{self._prefix}{next(self._count)}.tmp"


_temp_names = _TempNames()


def _write_into(
    dir_fd: int,
    name: str,
    body: bytes,
    *,
    fsync: bool,
    shown: str,
    placed: Callable[[], None] | None = None,
) -> None:
    """Write ``body`` atomically as ``name`` in the open directory ``dir_fd``.

    A new temp file (exclusive, 0644) is written, fsync'd, renamed over
    ``name``, and the directory fsync'd (the fsyncs when ``fsync``). ``shown``
    is the path for messages. ``placed`` is called once the document is in
    place, before the directory's fsync: what it changes on disk goes into
    the same journal commit instead of waiting for the next one.

    Raises:
        PathConflict: a directory stands at ``name``.
        OSError: the write failed; the temp file is gone.
    """
    while True:
        tmp = _temp_names.next()
        try:
            fd = os.open(tmp, _NEW_FILE, 0o644, dir_fd=dir_fd)
            break
        except FileExistsError:  # another process with the same pid and random part
            continue
    try:
        try:
            os.fchmod(fd, 0o644)  # whatever the umask: the results server must read it
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as exc:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        if isinstance(exc, IsADirectoryError):  # a directory appeared meanwhile
            raise PathConflict(errno.EISDIR, f"a directory stands at {shown}", shown) from None
        raise
    if placed is not None:
        placed()
    if fsync:
        os.fsync(dir_fd)


class _SymlinkOnTheWay(Exception):
    """A walk met a symlink: the real path must be resolved and checked first."""


def _unresolved(rel: str) -> UnsafePath:
    return UnsafePath(
        f"{rel!r} leads through a symlink that does not resolve to a place inside the "
        "results directory (a symlink loop, or a symlink that changed meanwhile)"
    )


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

        The marker's directories are opened one by one below the root, as a
        document's are: a symlink anywhere on the marker's path (under
        ``.final`` or at the marker's place) is never followed — an error.

        Raises:
            OSError: the marker cannot be created (``ELOOP``: a symlink is in the way).
        """
        segments = self._marker_segments(rel)
        dir_fd = self._open_marker_parent(rel, segments, create=True)
        assert dir_fd is not None
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open(segments[-1], flags, 0o644, dir_fd=dir_fd))
        finally:
            os.close(dir_fd)

    def unmark_final(self, rel: str) -> None:
        """Remove the final marker of ``rel`` (before a ``running`` document replaces it).

        Follows no symlink on the marker's path (a symlink at the marker's
        place is removed itself, not what it points to).

        Raises:
            OSError: the marker exists and cannot be removed, or a symlink stands
                where one of its directories should be (``ELOOP``).
        """
        segments = self._marker_segments(rel)
        try:
            dir_fd = self._open_marker_parent(rel, segments, create=False)
        except (PathConflict, FileNotFoundError):
            return  # no marker directory there: no marker a server could take
        if dir_fd is None:
            return
        try:
            os.unlink(segments[-1], dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass  # no marker file there: nothing that a server could take for one
        finally:
            os.close(dir_fd)

    def _marker_segments(self, rel: str) -> list[str]:
        segments = rel.split("/")
        check_result_segments(segments)
        return [FINAL_MARKERS, *segments]

    def _open_marker_parent(self, rel: str, segments: list[str], *, create: bool) -> int | None:
        try:
            return self._open_parent(segments, create=create)
        except _SymlinkOnTheWay:
            shown = self.marker(rel)
            raise OSError(
                errno.ELOOP,
                f"a symlink stands on the final marker's path {shown}; markers never "
                "follow one: remove it",
                shown,
            ) from None

    def check(self, rel: str) -> str | None:
        """Check result path ``rel`` before a write: what on disk is in the way, or None.

        The worker's check before a job runs (the write checks again as it
        writes). In the way: a directory at the file's place, or a file where
        one of its directories is needed.

        Raises:
            UnsafePath: ``rel`` is not a result path, or a symlink on disk
                leads out of the directory (or does not resolve).
        """
        segments = rel.split("/")
        check_result_segments(segments)
        try:
            return self._check(segments)
        except _SymlinkOnTheWay:
            pass
        real = self._real_segments(rel)
        try:
            return self._check(real)
        except _SymlinkOnTheWay:
            raise _unresolved(rel) from None

    def write(
        self,
        rel: str,
        body: bytes,
        *,
        fsync: bool = True,
        placed: Callable[[], None] | None = None,
    ) -> bool:
        """Write ``body`` atomically at result path ``rel``; True when the file is new.

        ``placed`` is called once the document is in place (renamed), before
        the directory is fsync'd.

        Raises:
            UnsafePath: ``rel`` is not a result path, or a symlink on disk
                leads out of the directory (or does not resolve).
            PathConflict: a directory or file is in the way (its message says which).
            OSError: the write failed.
        """
        segments = rel.split("/")
        check_result_segments(segments)
        try:
            return self._write(segments, body, fsync, placed)
        except _SymlinkOnTheWay:
            pass
        # A symlink on the way: resolve it, check that it stays inside, and
        # write along the real path, still following no symlink.
        real = self._real_segments(rel)
        try:
            return self._write(real, body, fsync, placed)
        except _SymlinkOnTheWay:
            raise _unresolved(rel) from None

    def _check(self, segments: Sequence[str]) -> str | None:
        try:
            dir_fd = self._open_parent(segments, create=False)
            if dir_fd is None:
                return None  # a directory is missing: nothing below it can be in the way
            try:
                self._is_new(dir_fd, segments)
            finally:
                os.close(dir_fd)
        except PathConflict as exc:
            return exc.strerror
        except OSError:
            return None  # unreadable on the way: the write will say what is wrong
        return None

    def _write(
        self,
        segments: Sequence[str],
        body: bytes,
        fsync: bool,
        placed: Callable[[], None] | None = None,
    ) -> bool:
        dir_fd = self._open_parent(segments, create=True)
        assert dir_fd is not None
        try:
            created = self._is_new(dir_fd, segments)
            shown = os.path.join(self._root, *segments)
            _write_into(dir_fd, segments[-1], body, fsync=fsync, shown=shown, placed=placed)
        finally:
            os.close(dir_fd)
        return created

    def _open_parent(self, segments: Sequence[str], *, create: bool) -> int | None:
        """Open the directory holding ``segments[-1]``, following no symlink below the root.

        Missing directories are created (``create``), or None is returned.

        Raises:
            PathConflict: a file stands where a directory is needed.
            _SymlinkOnTheWay: a symlink stands where a directory is needed.
            OSError: a directory cannot be opened or created.
        """
        dir_fd = os.open(self._root, _DIR_NOFOLLOW)  # a symlink put there later is not followed
        try:
            for depth in range(len(segments) - 1):
                segment = segments[depth]
                try:
                    below = os.open(segment, _DIR_NOFOLLOW, dir_fd=dir_fd)
                except FileNotFoundError:
                    if not create:
                        os.close(dir_fd)
                        return None
                    try:
                        os.mkdir(segment, dir_fd=dir_fd)
                    except FileExistsError:
                        pass  # made by another writer meanwhile (or a file: the open says)
                    below = self._open_below(dir_fd, segments[: depth + 1])
                except OSError as exc:
                    if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    self._not_a_directory(dir_fd, segments[: depth + 1])
                    raise
                os.close(dir_fd)
                dir_fd = below
        except BaseException:
            os.close(dir_fd)
            raise
        return dir_fd

    def _open_below(self, dir_fd: int, segments: Sequence[str]) -> int:
        """Open the directory ``segments[-1]`` in ``dir_fd``, following no symlink."""
        try:
            return os.open(segments[-1], _DIR_NOFOLLOW, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                self._not_a_directory(dir_fd, segments)
            raise

    def _not_a_directory(self, dir_fd: int, segments: Sequence[str]) -> None:
        """Say why ``segments[-1]`` in ``dir_fd`` did not open as a directory; return if unsure.

        Raises:
            _SymlinkOnTheWay: it is a symlink.
            PathConflict: it is a file (or another non-directory).
        """
        try:
            info = os.stat(segments[-1], dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return  # gone meanwhile: the caller's error stands
        if stat.S_ISLNK(info.st_mode):
            raise _SymlinkOnTheWay
        if not stat.S_ISDIR(info.st_mode):
            shown = os.path.join(self._root, *segments)
            raise PathConflict(
                errno.ENOTDIR, f"the file {shown} stands where a directory is needed", shown
            )

    def _is_new(self, dir_fd: int, segments: Sequence[str]) -> bool:
        """True when nothing is at ``segments[-1]`` in ``dir_fd``; a file there is fine.

        Raises:
            PathConflict: a directory is there.
            _SymlinkOnTheWay: a symlink is there.
        """
        try:
            info = os.stat(segments[-1], dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return True
        if stat.S_ISDIR(info.st_mode):
            shown = os.path.join(self._root, *segments)
            raise PathConflict(errno.EISDIR, f"a directory stands at {shown}", shown)
        if stat.S_ISLNK(info.st_mode):
            raise _SymlinkOnTheWay
        return False

    def _real_segments(self, rel: str) -> list[str]:
        """The segments of ``rel``'s real path below the root, symlinks followed.

        Raises:
            UnsafePath: the real path is not inside the directory.
        """
        real = os.path.realpath(os.path.join(self._root, *rel.split("/")))
        if real == self._root or not real.startswith(self._prefix):
            raise UnsafePath(f"{rel!r} leads outside the results directory through a symlink")
        return real[len(self._prefix) :].split(os.sep)
