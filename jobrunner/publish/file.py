"""The ``file`` publisher: atomic writes below the results directory.

A result URL under ``--base-url`` maps to the same relative path under
``--results-dir``; a results server (``jobrunner serve`` or nginx) makes
the directory visible at the base URL. Each write goes to a dot-named temp
file in the target directory, is fsync'd, then renamed over the old
document, so a reader sees the old or the new document, never a part.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from jobrunner.config import Config
from jobrunner.errors import ConfigError, PublishFailed, ResultBlocked
from jobrunner.publish.paths import ResultPaths

__all__ = ["FilePublisher", "write_atomic"]


def write_atomic(path: Path, body: bytes, *, fsync: bool = True) -> None:
    """Write ``body`` to ``path`` atomically (temp file, fsync, rename, fsync dir).

    Raises:
        OSError: the write failed; no partial file is left at ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if fsync:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class FilePublisher:
    """Writes result documents to ``results_dir``, mapped from ``base_url``."""

    def __init__(self, config: Config) -> None:
        if config.results_dir is None or config.base_url is None:
            raise ConfigError(
                "the file publisher needs --results-dir and --base-url "
                "(the URL under which the results directory is served)"
            )
        self.results_dir = Path(config.results_dir)
        self.base_url = config.base_url
        self.fsync = config.fsync
        try:
            self.results_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create results directory {self.results_dir}: {exc.strerror}"
            ) from None
        self._paths = ResultPaths(self.base_url, self.results_dir)

    def path_for(self, url: str) -> Path:
        """Return the file a result URL maps to.

        Raises:
            jobrunner.errors.ResultRefused: the URL is not under the base URL or unsafe.
        """
        return self._paths.resolve(url)

    def check(self, url: str) -> None:
        """Refuse a result URL outside the results directory, or blocked on disk.

        Raises:
            jobrunner.errors.ResultRefused: the URL is not under the base URL or unsafe.
            jobrunner.errors.ResultBlocked: a directory or file stands in the way.
        """
        path = self.path_for(url)
        blocker = self._blocker(path)
        if blocker is not None:
            raise self._blocked(url, path, blocker)

    def _blocker(self, path: Path) -> str | None:
        """What on disk keeps ``path`` from ever being written, or None."""
        if path.is_dir():
            return f"a directory stands at {path}"
        root = self._paths.root  # the real path, as ``path`` is
        for parent in path.parents:
            if parent == root or root not in parent.parents:
                break
            if parent.exists() and not parent.is_dir():
                return f"the file {parent} stands where a directory is needed"
        return None

    def _blocked(self, url: str, path: Path, blocker: str) -> ResultBlocked:
        return ResultBlocked(
            f"result URL {url!r} can never be written: {blocker}; remove it from the "
            "results directory or use another result URL"
        )

    def publish(self, url: str, body: bytes, *, final: bool = True) -> None:
        """Write the document atomically at the path the URL maps to.

        Only final documents are fsync'd: a ``running`` document is still
        renamed into place atomically, but losing it in a power cut is harmless.
        """
        path = self.path_for(url)
        try:
            write_atomic(path, body, fsync=self.fsync and final)
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            blocker = self._blocker(path) or f"{exc.strerror} ({exc.filename})"
            raise self._blocked(url, path, blocker) from None
        except OSError as exc:
            raise PublishFailed(f"writing {path} failed: {exc.strerror or exc}") from exc

    def close(self) -> None:
        """Nothing to release."""
