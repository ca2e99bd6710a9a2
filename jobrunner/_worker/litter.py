"""Temp files a killed publication left in the results directory (worker, at start).

A document is written to a dot-named temp file and renamed into place
(:func:`jobrunner.resultsdir.write_atomic`); rsync does the same on a peer
(``.name.XXXXXX``). A process killed between the two steps leaves the temp
file behind for good. The results server never serves dot-named files; the
worker removes them when it starts; one younger than :data:`MIN_AGE`
seconds may belong to another worker on the same host writing right now,
so it is looked at again once it is that old.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from jobrunner._log import get_logger

__all__ = ["MIN_AGE", "is_litter", "remove_litter", "sweep_litter"]

log = get_logger(__name__)

#: Seconds a temp file must be old before it counts as litter (no write takes that long).
MIN_AGE = 60.0
# The atomic writer's temp names (".jr<pid>_<random>_<n>.tmp"; older releases' mkstemp
# ".xxxxxxxx.tmp"), rsync's (".name.json.XXXXXX").
_LITTER = re.compile(r"^\.(?:[A-Za-z0-9_]+\.tmp|.+\.[A-Za-z0-9]{6})\Z")


def is_litter(name: str) -> bool:
    """True for the name of an interrupted write's temp file."""
    return _LITTER.match(name) is not None


def remove_litter(root: Path | str, min_age: float = MIN_AGE) -> tuple[int, int, list[str]]:
    """Remove interrupted writes' temp files below ``root`` older than ``min_age`` seconds.

    Returns how many files and bytes were removed, and the younger temp files
    left. Symlinks are not followed; a file that cannot be removed is logged.
    """
    removed = size = 0
    young: list[str] = []
    limit = time.time() - min_age
    stack = [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                if not (is_litter(entry.name) and entry.is_file(follow_symlinks=False)):
                    continue
                info = entry.stat(follow_symlinks=False)
                if info.st_mtime > limit:
                    young.append(entry.path)
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("results_litter_kept", path=entry.path, error=str(exc))
                continue
            removed += 1
            size += info.st_size
    return removed, size, young


def sweep_litter(root: Path | str, min_age: float = MIN_AGE) -> int:
    """Remove the temp files of interrupted writes below ``root``; log the count.

    Runs once at worker start (in a thread of its own); temp files too young
    to judge are looked at again when they are ``min_age`` seconds old, and
    removed if still there.
    """
    removed, size, young = remove_litter(root, min_age)
    if removed:
        log.info("results_litter_removed", count=removed, bytes=size, results_dir=str(root))
    if not young:
        return removed
    time.sleep(min_age)
    late = size = 0
    for path in young:
        try:
            size = os.stat(path, follow_symlinks=False).st_size
            os.unlink(path)
        except OSError:
            continue  # renamed into place, or removed: it was a live write
        late += 1
    if late:
        log.info("results_litter_removed", count=late, bytes=size, results_dir=str(root))
    return removed + late
