"""Mapping result URLs to files under the results directory, safely.

A result URL is untrusted (it comes from the job document). It must lie
under the configured base URL, and its path is refused — never "cleaned
up" — when it holds anything that could lead out of the results directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from jobrunner.errors import ResultRefused

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_PATH_LENGTH",
    "ResultPaths",
    "is_safe_segment",
    "relative_result_path",
    "resolve_result_path",
]

MAX_NAME_LENGTH = 255
MAX_PATH_LENGTH = 1024
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_~][A-Za-z0-9._~@+=,-]*$")


def is_safe_segment(segment: str) -> bool:
    """True for a path segment a result file may have: no dot first, a small alphabet."""
    return bool(_SAFE_SEGMENT.fullmatch(segment))


def _split_base(base_url: str) -> tuple[str, str, str]:
    base = urlsplit(base_url)
    path = base.path if base.path.endswith("/") else base.path + "/"
    return base.scheme.lower(), base.netloc.lower(), path


def relative_result_path(url: str, base_url: str) -> str:
    """Return the path of ``url`` relative to ``base_url`` (``a/b/r.json``).

    Raises:
        ResultRefused: outside the base URL, or a path that is unsafe: ``..``
            (also percent-encoded), backslashes, NUL or control characters,
            empty or dot-named segments, query or fragment, overlong names.
    """
    parts = urlsplit(url)
    scheme, netloc, base_path = _split_base(base_url)
    if (parts.scheme.lower(), parts.netloc.lower()) != (scheme, netloc):
        raise ResultRefused(
            f"result URL {url!r} is not under the results base URL {base_url!r}; "
            "submit jobs with a result URL below the worker's --base-url"
        )
    if parts.query or parts.fragment:
        raise ResultRefused(f"result URL {url!r} must not have a query or fragment")
    raw = parts.path
    try:
        unquote(raw, errors="strict").encode("utf-8")
    except UnicodeError:
        raise ResultRefused(f"result URL {url!r}: the path is not valid UTF-8") from None
    if "\\" in raw or "%5c" in raw.lower():
        raise ResultRefused(f"result URL {url!r}: backslashes are not allowed in the path")
    path = unquote(raw)
    if not path.startswith(base_path):
        raise ResultRefused(
            f"result URL {url!r} is not under the results base URL {base_url!r}; "
            "submit jobs with a result URL below the worker's --base-url"
        )
    rel = path[len(base_path) :]
    if len(rel) > MAX_PATH_LENGTH:
        raise ResultRefused(f"result URL {url!r}: path longer than {MAX_PATH_LENGTH} characters")
    if not rel or rel.endswith("/"):
        raise ResultRefused(f"result URL {url!r} must name a file, not a directory")
    for segment in rel.split("/"):
        if segment in ("", ".", ".."):
            raise ResultRefused(
                f"result URL {url!r}: path segment {segment!r} is not allowed "
                "(no empty, '.' or '..' segments)"
            )
        if any(ord(ch) < 0x20 or ch == "\x7f" for ch in segment):
            raise ResultRefused(f"result URL {url!r}: control characters (NUL, ...) in the path")
        if len(segment.encode()) > MAX_NAME_LENGTH:
            raise ResultRefused(
                f"result URL {url!r}: a path segment is longer than {MAX_NAME_LENGTH} bytes"
            )
        if not is_safe_segment(segment):
            raise ResultRefused(
                f"result URL {url!r}: segment {segment!r} may hold only letters, digits and "
                "._~@+=,- and must not start with a dot"
            )
    return rel


def resolve_result_path(url: str, base_url: str, results_dir: Path) -> Path:
    """Map a result URL to its file below ``results_dir``.

    Symlinks already on disk are followed and must stay inside the directory.

    Raises:
        ResultRefused: see :func:`relative_result_path`, or a symlink escape.
    """
    rel = relative_result_path(url, base_url)
    return _inside(url, rel, Path(os.path.realpath(results_dir)))


def _inside(url: str, rel: str, root: Path) -> Path:
    target = root.joinpath(*rel.split("/"))
    # realpath follows any symlink on the way (parents and the file itself).
    real = Path(os.path.realpath(target))
    if real != target and root not in real.parents:
        raise ResultRefused(
            f"result URL {url!r} leads outside the results directory through a symlink"
        )
    return real


class ResultPaths:
    """:func:`resolve_result_path` for one base URL and results directory.

    The directory's own real path is resolved once, not on every publication.
    """

    def __init__(self, base_url: str, results_dir: Path) -> None:
        self.base_url = base_url
        self.root = Path(os.path.realpath(results_dir))

    def resolve(self, url: str) -> Path:
        """The file below the results directory that ``url`` maps to.

        Raises:
            ResultRefused: see :func:`resolve_result_path`.
        """
        return _inside(url, relative_result_path(url, self.base_url), self.root)
