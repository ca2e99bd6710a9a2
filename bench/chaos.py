"""Chaos run: N jobs across K workers while workers are killed at random and beanstalkd restarts.

One command, from the repository root (needs beanstalkd on the PATH)::

    python bench/chaos.py --jobs 500 --workers 4 --kills 20

It starts a real beanstalkd with a binlog and K ``jobrunner work`` processes
(the test job types of ``tests/support.py``), submits N ``count_runs`` jobs
(each sleeps a little, then appends its id to a runs file), and while they
run it kills a random busy worker with SIGKILL every ``--interval`` seconds
(starting a replacement each time) and kills and restarts beanstalkd once,
half-way through the kills. Then it waits until the queue is drained and
prints::

    submitted 500 / done 500 / failed 0 / lost 0 / ran twice 9

*lost* counts jobs without a final result document (the one thing that must
never happen); *ran twice* counts jobs whose computation completed more than
once (allowed: results are at-least-once and idempotent). It also checks that
no child process of a killed worker outlived it (*orphans*). Exit status 1
when anything is lost or failed, or a child was orphaned.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobrunner.queue import Connection
from tests.support import Beanstalkd, Lab, Worker, pid_alive, read_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500, help="jobs submitted (500)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (4)")
    parser.add_argument("--concurrency", type=int, default=2, help="slots per worker (2)")
    parser.add_argument("--kills", type=int, default=20, help="workers killed with -9 (20)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between kills")
    parser.add_argument("--job-seconds", type=float, default=1.0, help="longest job sleep (1.0)")
    parser.add_argument("--ttr", type=int, default=5, help="beanstalkd TTR of each job")
    parser.add_argument("--timeout", type=float, default=600, help="give up after seconds")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument("--keep", type=Path, default=None, help="work in DIR and keep it")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        return run(args, rng, args.keep)
    with tempfile.TemporaryDirectory(prefix="jobrunner-chaos-") as tmp:
        return run(args, rng, Path(tmp))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, rng: random.Random, root: Path) -> int:
    t0 = time.monotonic()
    lab = Lab(root)
    bsd = Beanstalkd(binlog_dir=root / "binlog").start()
    env = {"JOBRUNNER_LOG_LEVEL": "debug", "JOBRUNNER_GRACE": "5"}  # job_reserved is debug
    concurrency = args.concurrency

    def start_worker() -> Worker:
        return lab.worker(bsd.address, concurrency=concurrency, env=env)

    workers = [start_worker() for _ in range(args.workers)]
    all_workers = list(workers)
    names = [f"c{n:05d}" for n in range(args.jobs)]
    producer = Connection(bsd.address)
    for name in names:
        body = lab.body("count_runs", name, {"seconds": rng.uniform(0, args.job_seconds)})
        producer.put(body, tube="default", ttr=args.ttr)
    producer.close()
    log(f"submitted {len(names)} jobs to {args.workers} workers x {concurrency} slots")

    kills = orphans = restarts = 0
    restart_at = max(1, args.kills // 2)
    deadline = time.monotonic() + args.timeout
    while kills < args.kills and time.monotonic() < deadline:
        time.sleep(args.interval * rng.uniform(0.5, 1.5))
        busy = [w for w in workers if _busy(w)] or workers
        victim = rng.choice(busy)
        children = [e["pid"] for e in victim.find("child_started")]
        victim.signal(signal.SIGKILL)
        victim.wait(timeout=10)
        kills += 1
        workers.remove(victim)
        orphans += _orphans(children)
        log(f"kill {kills}: worker {victim.pid} ({'busy' if _busy(victim) else 'idle'})")
        if kills == restart_at and restarts == 0:
            bsd.stop(signal.SIGKILL)
            time.sleep(1.0)
            bsd.start()
            restarts += 1
            log("beanstalkd killed and restarted on its binlog")
        workers.append(start_worker())
        all_workers.append(workers[-1])

    log("chaos over; waiting for the queue to drain")
    while time.monotonic() < deadline:
        stats = bsd.tube_stats()
        pending = sum(
            stats.get(f"current-jobs-{state}", 0) for state in ("ready", "reserved", "delayed")
        )
        if stats and pending == 0:
            break
        time.sleep(0.5)
    for worker in workers:
        worker.stop()

    statuses = collections.Counter()
    for name in names:
        doc = read_json(lab.result(name))
        statuses[doc.get("status") if isinstance(doc, dict) else None] += 1
    runs = collections.Counter(row[0] for row in lab.runs("end"))
    done, failed = statuses["done"], statuses["failed"]
    lost = len(names) - done - failed
    twice = sum(1 for count in runs.values() if count > 1)
    buried = bsd.tube_stats().get("current-jobs-buried", 0)
    bsd.stop()
    elapsed = time.monotonic() - t0
    print(
        f"submitted {len(names)} / done {done} / failed {failed} / lost {lost} / "
        f"ran twice {twice}   (workers {args.workers}x{concurrency}, kills {kills}, "
        f"beanstalkd restarts {restarts}, buried {buried}, orphans {orphans}, "
        f"worker processes {len(all_workers)}, {elapsed:.0f} s)"
    )
    if args.keep is not None:
        summary = {"done": done, "failed": failed, "lost": lost, "ran_twice": twice}
        (root / "summary.json").write_text(json.dumps(summary))
    return 1 if lost or failed or orphans or kills < args.kills else 0


def _busy(worker: Worker) -> bool:
    """True when the worker has reserved more jobs than it finished with."""
    started = len(worker.find("job_reserved"))
    ended = sum(len(worker.find(e)) for e in ("job_deleted", "job_released", "job_buried"))
    return started > ended


def _orphans(children: list[int]) -> int:
    """How many of a killed worker's children are still alive 5 s later."""
    deadline = time.monotonic() + 5.0
    alive = [pid for pid in children if pid_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if pid_alive(pid)]
    return len(alive)


if __name__ == "__main__":
    sys.exit(main())
