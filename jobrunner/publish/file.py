"""The ``file`` publisher: atomic writes below the results directory.

A result URL under ``--base-url`` maps to the same relative path under
``--results-dir``; a results server (``jobrunner serve`` or nginx) makes
the directory visible at the base URL. Which paths are allowed and how a
document is written atomically is :mod:`jobrunner.resultsdir`'s business.

With ``final_markers`` on (the default), a ``done`` or ``failed`` document
also gets its empty marker ``RESULTS/.final/PATH``, created after the
document is in place; a ``running`` document first removes the marker (a
re-run after a kick), so a server testing for the marker (the nginx
example) never caches a ``running`` document for long.
"""

from __future__ import annotations

from pathlib import Path

from jobrunner._log import get_logger
from jobrunner.config import Config
from jobrunner.errors import ConfigError, PublishFailed, ResultBlocked, ResultRefused
from jobrunner.resultsdir import PathConflict, ResultsDir, UnsafePath, relative_result_path

__all__ = ["FilePublisher"]

log = get_logger(__name__)


class FilePublisher:
    """Writes result documents to ``results_dir``, mapped from ``base_url``."""

    def __init__(self, config: Config) -> None:
        if config.results_dir is None or config.base_url is None:
            raise ConfigError(
                "the file publisher needs --results-dir and --base-url "
                "(the URL under which the results directory is served)"
            )
        self.results = ResultsDir(config.results_dir, create=True)
        self.results_dir = self.results.path
        self.base_url = config.base_url
        self.fsync = config.fsync
        self.final_markers = config.final_markers

    def path_for(self, url: str) -> Path:
        """Return the file a result URL maps to.

        Raises:
            jobrunner.errors.ResultRefused: the URL is not under the base URL or unsafe.
        """
        try:
            return self.results.target(relative_result_path(url, self.base_url))
        except UnsafePath as exc:
            raise ResultRefused(f"result URL {url!r}: {exc}") from None

    def check(self, url: str) -> None:
        """Refuse a result URL outside the results directory, or blocked on disk.

        Raises:
            jobrunner.errors.ResultRefused: the URL is not under the base URL or unsafe.
            jobrunner.errors.ResultBlocked: a directory or file stands in the way.
        """
        rel = relative_result_path(url, self.base_url)
        try:
            blocker = self.results.check(rel)
        except UnsafePath as exc:
            raise ResultRefused(f"result URL {url!r}: {exc}") from None
        if blocker is not None:
            raise _blocked(url, blocker)

    def publish(self, url: str, body: bytes, *, final: bool = True) -> None:
        """Write the document atomically at the path the URL maps to.

        Only final documents are fsync'd: a ``running`` document is still
        renamed into place atomically, but losing it in a power cut is harmless.
        ``final`` documents get their final marker once in place (before the
        directory's fsync), others lose it before (see the module's docstring).

        Raises:
            jobrunner.errors.ResultRefused: the URL is unsafe.
            jobrunner.errors.ResultBlocked: a directory or file stands in the way.
            jobrunner.errors.PublishFailed: the write failed.
        """
        rel = relative_result_path(url, self.base_url)

        def mark_final() -> None:
            # Once the document is in place, before its directory's fsync: the marker
            # rides in the same journal commit instead of waiting for the next one
            # (on ext4 that wait was a fifth of a small job's time).
            try:
                self.results.mark_final(rel)
            except OSError as exc:  # the document is out; only its cache lifetime suffers
                log.warning(
                    "final_marker_failed",
                    path=rel,
                    error=exc.strerror or str(exc),
                    note="nginx serves this document as if it were running (max-age=1)",
                )

        try:
            if self.final_markers and not final:
                self.results.unmark_final(rel)
            placed = mark_final if self.final_markers and final else None
            self.results.write(rel, body, fsync=self.fsync and final, placed=placed)
        except UnsafePath as exc:
            raise ResultRefused(f"result URL {url!r}: {exc}") from None
        except PathConflict as exc:
            raise _blocked(url, exc.strerror or str(exc)) from None
        except OSError as exc:
            raise PublishFailed(
                f"writing {self.results.root / rel} failed: {exc.strerror or exc}"
            ) from exc

    def close(self) -> None:
        """Nothing to release."""


def _blocked(url: str, blocker: str) -> ResultBlocked:
    return ResultBlocked(
        f"result URL {url!r} can never be written: {blocker}; remove it from the "
        "results directory or use another result URL"
    )
