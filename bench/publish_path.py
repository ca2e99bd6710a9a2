"""The publish path alone: µs per result document, hand-written vs jobrunner, in one run.

    python bench/publish_path.py            # a few seconds
    python bench/publish_path.py -n 3000 --rounds 7 --dir /var/www/results-bench

Side by side, on the same file system, with the result URLs the end-to-end
benchmark uses (``b/<n % 100>/<uuid>.json``: a new file in one of 100
directories):

* ``by hand``: what ``bench/run.py``'s same-work loop does — ``makedirs``,
  ``mkstemp``, write, fsync, close, rename, fsync the directory (and the
  same without the two fsyncs);
* ``FilePublisher.publish``: jobrunner's file publisher, a final document
  (its ``.final`` marker included), with ``fsync`` on and off;
* ``FilePublisher.check``: the worker's check of a result URL before it
  hands the job to a child.

Each variant runs ``-n`` publications per round, the variants take turns
for ``--rounds`` rounds, and the median round is shown: wall-clock µs and
CPU µs (user + system of this process) per publication, and the ratio to
the hand-written code doing the same (fsync on or off). With fsync the wall
clock is mostly the disk's; the CPU column is the code's own cost.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import jobrunner
from jobrunner.config import load_config
from jobrunner.publish.file import FilePublisher

BASE = "http://results.bench/"
BODY = b'{"v":1,"id":"x","type":"echo","status":"done","timestamp":"2026-11-28T12:00:00Z"}'


def by_hand(results: str, *, fsync: bool) -> Callable[[str], None]:
    """The same-work loop's publication (bench/run.py), as a function of the URL."""

    def publish(url: str) -> None:
        path = os.path.join(results, url[len(BASE) :])
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=folder)
        os.write(fd, BODY)
        if fsync:
            os.fsync(fd)
        os.close(fd)
        os.replace(tmp, path)
        if fsync:
            dfd = os.open(folder, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)

    return publish


def jobrunner_publish(results: str, *, fsync: bool) -> Callable[[str], None]:
    """FilePublisher.publish of a final document."""
    config = load_config(env={}, flags={"results_dir": results, "base_url": BASE, "fsync": fsync})
    publisher = FilePublisher(config)

    def publish(url: str) -> None:
        publisher.publish(url, BODY)

    return publish


def jobrunner_check(results: str) -> Callable[[str], None]:
    """FilePublisher.check, as the worker calls it before a job runs."""
    config = load_config(env={}, flags={"results_dir": results, "base_url": BASE})
    return FilePublisher(config).check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=300, help="publications per round and variant")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--dir", type=Path, default=None, help="where (default: a temp dir)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="publish-path-", dir=args.dir))
    try:
        variants: dict[str, tuple[Callable[[str], None], str | None]] = {}
        for name, make, reference in (
            ("by hand, fsync", lambda d: by_hand(d, fsync=True), None),
            (
                "FilePublisher.publish, fsync",
                lambda d: jobrunner_publish(d, fsync=True),
                "by hand, fsync",
            ),
            ("by hand, no fsync", lambda d: by_hand(d, fsync=False), None),
            (
                "FilePublisher.publish, no fsync",
                lambda d: jobrunner_publish(d, fsync=False),
                "by hand, no fsync",
            ),
            ("FilePublisher.check (worker)", jobrunner_check, None),
        ):
            folder = work / f"v{len(variants)}"
            folder.mkdir()
            variants[name] = (make(str(folder)), reference)
        wall: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            urls = [f"{BASE}b/{i % 100}/{uuid.uuid4()}.json" for i in range(args.n)]
            for name, (run, _ref) in variants.items():
                c0, t0 = time.process_time(), time.perf_counter()
                for url in urls:
                    run(url)
                t1, c1 = time.perf_counter(), time.process_time()
                wall[name].append((t1 - t0) / args.n * 1e6)
                cpu[name].append((c1 - c0) / args.n * 1e6)
        print(f"jobrunner from {Path(jobrunner.__file__).parent}")
        print(f"{args.n} publications x {args.rounds} rounds in {work} (median round)")
        print(f"{'':34} {'wall µs':>9} {'CPU µs':>9} {'CPU vs by hand':>15}")
        for name, (_run, reference) in variants.items():
            w, c = statistics.median(wall[name]), statistics.median(cpu[name])
            ratio = f"{c / statistics.median(cpu[reference]):.2f}x" if reference else ""
            print(f"{name:34} {w:9.1f} {c:9.1f} {ratio:>15}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
