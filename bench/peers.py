"""Peers side by side: Huey, Dramatiq, Celery and RQ against jobrunner, in one run.

    python bench/peers.py              # 5000 echo jobs per peer, concurrency 2
    python bench/peers.py --quick      # 1000 jobs, a few minutes once the venvs exist
    python bench/peers.py --rounds 3   # everything three times, medians reported

Not part of CI: it needs apt (``redis-server``, installed when missing and
running as root) and PyPI (one virtualenv per peer, pinned by
``bench/peers/requirements-<peer>.txt``, created once under
``~/.cache/jobrunner-bench/venvs`` — ``JOBRUNNER_BENCH_CACHE`` moves it — and
reused). Everything listens on 127.0.0.1 only: its own ``redis-server``
(no persistence) on a free port, and ``bench/run.py``'s beanstalkd and input
server.

Every peer does the same work as jobrunner's ``echo`` job
(``bench/peers/same_work.py``): GET the input from ``bench/run.py``'s input
server over a kept-alive connection (httpx), write a timestamped JSON
result document to a temp file, fsync, rename, fsync the directory, and only
then acknowledge. The queue is filled first (``N`` tasks from a producer in
the peer's virtualenv), then its worker starts at the same concurrency, with
processes where the peer has them:

* Huey: ``huey_consumer -k process -w 2`` (Redis storage, blocking pop);
* Dramatiq: ``--processes 2 --threads 1`` (two processes, like the others,
  rather than its threads); a message is acknowledged after the actor;
* Celery: ``worker -P prefork -c 2``, ``acks_late=True``, no result backend,
  default prefetch;
* RQ: two ``rq worker`` processes (forking a work horse per job), and two
  with ``--worker-class rq.worker.SimpleWorker`` (no fork).

Throughput is timed from the first job finished to the last, so start-up is
not counted, by polling the peer's keys in Redis: Huey's queue list,
Dramatiq's unacknowledged messages, Celery's list plus its unacked hash, RQ's
finished and failed registries. Memory is the peak RSS of the worker's process
tree. jobrunner is measured in the same run with ``bench/run.py``'s
``bench_jobrunner`` at the same concurrency, also *lean* (``file:`` input,
``fsync = false``), and the raw greenstalk loop is shown as the queue's own
limit. jobrunner
``echo`` runs first and last in each round; ratios are to the mean of those
two figures, so drift of a shared machine shows. Run it with jobrunner
installed (``python`` of the project's virtualenv). Writes
``bench/results/peers.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

# bench/ is sys.path[0] when this file runs as a script: reuse the lead benchmark's parts.
from run import RESULTS, Services, bench_jobrunner, bench_raw, process_tree_rss

from jobrunner.testing import free_port

HERE = Path(__file__).resolve().parent
PEER_DIR = HERE / "peers"
CACHE = Path(os.environ.get("JOBRUNNER_BENCH_CACHE", "~/.cache/jobrunner-bench")).expanduser()


# -- Redis: our own server and a tiny client for the few read commands we need ------------------


class RedisServer:
    """A throw-away ``redis-server`` on 127.0.0.1, no persistence."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.log = open(work / "redis.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                ensure_redis_server(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(work),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.command("PING") == "PONG":
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"peers: redis-server did not start (see {work / 'redis.log'})")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *args: str) -> Any:
        return self.pipeline([list(args)])[0]

    def pipeline(self, commands: list[list[str]]) -> list[Any]:
        """Send RESP commands on a fresh connection; integers, simple and bulk strings only."""
        out = b"".join(
            f"*{len(cmd)}\r\n".encode()
            + b"".join(f"${len(a.encode())}\r\n{a}\r\n".encode() for a in cmd)
            for cmd in commands
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(out)
            reader = sock.makefile("rb")
            replies: list[Any] = []
            for _ in commands:
                line = reader.readline().rstrip(b"\r\n")
                kind, rest = line[:1], line[1:].decode()
                if kind == b":":
                    replies.append(int(rest))
                elif kind == b"+":
                    replies.append(rest)
                elif kind == b"$":
                    replies.append(None if rest == "-1" else reader.read(int(rest) + 2)[:-2])
                else:
                    raise RuntimeError(f"redis: unexpected reply {line!r}")
            return replies

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def ensure_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("peers: redis-server is missing: sudo apt-get install -y redis-server")
    print("peers: installing redis-server with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=env, timeout=600
    )
    return shutil.which("redis-server") or "/usr/bin/redis-server"


# -- peers ------------------------------------------------------------------------------------


def llen(*keys: str) -> list[list[str]]:
    return [["LLEN", key] for key in keys]


@dataclass(frozen=True)
class Peer:
    """One row: which virtualenv, how to start its worker(s), how to count what is left."""

    label: str
    venv: str
    workers: Callable[[Path, str], list[list[str]]]
    pending_commands: list[list[str]]
    pending: Callable[[list[int], int], int]
    setup: str

    @property
    def module(self) -> str:
        return f"peer_{self.venv}"


def rq_workers(worker_class: str | None) -> Callable[[Path, str], list[list[str]]]:
    def commands(bindir: Path, url: str) -> list[list[str]]:
        extra = ["--worker-class", worker_class] if worker_class else []
        return [
            [str(bindir / "rq"), "worker", "--url", url, "--quiet", *extra, "bench"]
            for _ in range(2)
        ]

    return commands


def peers(concurrency: int) -> list[Peer]:
    c = str(concurrency)
    # RQ keeps finished and failed jobs in registries (result_ttl 500 s): count exactly.
    rq_pending: Callable[[list[int], int], int] = lambda r, total: total - r[0] - r[1]  # noqa: E731
    rq_keys = [["ZCARD", "rq:finished:bench"], ["ZCARD", "rq:failed:bench"]]
    return [
        Peer(
            "Huey (Redis)",
            "huey",
            lambda bindir, url: [
                [str(bindir / "huey_consumer"), "peer_huey.huey", "-k", "process", "-w", c, "-q"]
            ],
            llen("huey.redis.bench"),
            lambda r, total: r[0],
            f"huey_consumer -k process -w {c}",
        ),
        Peer(
            "Dramatiq (Redis)",
            "dramatiq",
            lambda bindir, url: [
                [str(bindir / "dramatiq"), "peer_dramatiq", "--processes", c, "--threads", "1"]
            ],
            # Message bodies stay in this hash until acknowledged.
            [["HLEN", "dramatiq:default.msgs"]],
            lambda r, total: r[0],
            f"dramatiq --processes {c} --threads 1",
        ),
        Peer(
            "Celery (Redis)",
            "celery",
            lambda bindir, url: [
                [
                    str(bindir / "celery"),
                    "-A",
                    "peer_celery",
                    "worker",
                    "-P",
                    "prefork",
                    "-c",
                    c,
                    "-l",
                    "warning",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ]
            ],
            # Waiting in the list, or prefetched by the worker and not yet acknowledged.
            [["LLEN", "celery"], ["HLEN", "unacked"]],
            lambda r, total: r[0] + r[1],
            f"celery worker -P prefork -c {c}",
        ),
        Peer(
            "RQ (Redis), forking",
            "rq",
            rq_workers(None),
            rq_keys,
            rq_pending,
            "2 x rq worker",
        ),
        Peer(
            "RQ (Redis), SimpleWorker",
            "rq",
            rq_workers("rq.worker.SimpleWorker"),
            rq_keys,
            rq_pending,
            "2 x rq worker --worker-class rq.worker.SimpleWorker",
        ),
    ]


def venv_for(name: str) -> Path:
    """The peer's virtualenv, created or brought up to date with its requirements file."""
    requirements = PEER_DIR / f"requirements-{name}.txt"
    wanted = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()
    venv = CACHE / "venvs" / name
    stamp = venv / "jobrunner-bench.stamp"
    if stamp.exists() and stamp.read_text() == wanted:
        return venv
    print(f"peers: creating {venv} ({requirements.name})", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "-r", str(requirements)],
        check=True,
        timeout=900,
    )
    stamp.write_text(wanted)
    return venv


def peer_env(redis: RedisServer, input_url: str, results: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env["PYTHONPATH"] = str(PEER_DIR)
    env["BENCH_REDIS_URL"] = redis.url
    # The same work as jobrunner's echo job (peers/same_work.py): this input, results here.
    env["BENCH_INPUT_URL"] = input_url
    env["BENCH_RESULTS"] = str(results)
    return env


@contextmanager
def started(
    commands: list[list[str]], env: dict[str, str], log: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start the worker commands, each in its own process group; stop them all on exit."""
    procs: list[subprocess.Popen[bytes]] = []
    with open(log, "wb") as out:
        try:
            for cmd in commands:
                procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=PEER_DIR,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            yield procs
        finally:
            stop_groups(procs)


def stop_groups(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (warm shutdown), then SIGKILL whatever is left of each group we started."""
    for proc in procs:
        if proc.poll() is None:
            with_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        # Children (prefork pool, work horses) may outlive the parent: kill the whole group.
        with_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def with_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def drain(
    redis: RedisServer,
    peer: Peer,
    total: int,
    procs: list[subprocess.Popen[bytes]],
    timeout: float,
) -> float:
    """Seconds from the first job finished to the last (scaled as in ``run.time_drain``)."""
    deadline = time.monotonic() + timeout
    first = first_pending = None
    zero_since = None
    while time.monotonic() < deadline:
        left = peer.pending(redis.pipeline(peer.pending_commands), total)
        now = time.perf_counter()
        if first is None and left < total:
            first, first_pending = now, left
        if left == 0 and first is not None:
            # Seen empty twice 20 ms apart: a job between "taken" and "counted" is not missed.
            zero_since = zero_since or now
            if now - zero_since >= 0.02:
                # first_pending jobs finished in (zero_since - first): scale to all of them.
                return (zero_since - first) * total / max(1, first_pending or 0)
        else:
            zero_since = None
        if all(proc.poll() is not None for proc in procs):
            raise RuntimeError("the worker exited before the queue was drained")
        time.sleep(0.005)
    raise RuntimeError(f"not drained within {timeout:.0f} s")


def bench_peer(
    redis: RedisServer, peer: Peer, n: int, work: Path, timeout: float, input_url: str
) -> dict[str, Any]:
    venv = venv_for(peer.venv)
    bindir = venv / "bin"
    env = peer_env(redis, input_url, work / f"results-{peer.venv}-{time.monotonic_ns()}")
    redis.command("FLUSHALL")
    producer = f"import sys, {peer.module}; {peer.module}.enqueue(int(sys.argv[1]))"
    t0 = time.perf_counter()
    subprocess.run(
        [str(bindir / "python"), "-c", producer, str(n)],
        cwd=PEER_DIR,
        env=env,
        check=True,
        timeout=300,
    )
    enqueue_s = time.perf_counter() - t0
    left = peer.pending(redis.pipeline(peer.pending_commands), n)
    if left != n:
        raise RuntimeError(f"the producer queued {left} jobs, not {n}")
    log = work / f"{peer.venv}-{len(list(work.glob('*.log')))}.log"
    peak = [0]
    with started(peer.workers(bindir, redis.url), env, log) as procs:
        stop = threading.Event()

        def sampler() -> None:
            while not stop.wait(0.05):
                rss = sum(process_tree_rss(proc.pid) for proc in procs)
                peak[0] = max(peak[0], rss)

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        try:
            seconds = drain(redis, peer, n, procs, timeout)
        except RuntimeError as exc:
            tail = " | ".join(log.read_text(errors="replace").splitlines()[-5:])
            raise RuntimeError(f"{exc}; worker log: {tail[-400:]}") from None
        finally:
            stop.set()
            thread.join()
    # A task the worker cannot import is dropped with an error, and would look fast.
    lines = log.read_text(errors="replace").splitlines()
    problems = [line for line in lines if "Traceback" in line or "ERROR" in line]
    if problems:
        raise RuntimeError(f"the worker logged errors: {problems[0][:300]}")
    return {
        "jobs_per_s": n / seconds,
        "rss_peak_mb": peak[0] / 2**20,
        "enqueue_jobs_per_s": n / enqueue_s,
        "setup": peer.setup,
        "version": installed_version(bindir, peer.venv),
    }


def installed_version(bindir: Path, dist: str) -> str:
    out = subprocess.run(
        [
            str(bindir / "python"),
            "-c",
            f"import importlib.metadata as m; print(m.version({dist!r}))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip()


# -- jobrunner -------------------------------------------------------------------------------


@contextmanager
def environ(**values: str) -> Iterator[None]:
    """Set environment variables for the worker processes started inside the block."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def bench_jobrunner_lean(services: Services, work: Path, n: int, c: int) -> dict[str, Any]:
    """``echo`` with a ``file:`` input and no fsync: the nearest jobrunner has to a no-op."""
    inputs = services.inputs
    lean = SimpleNamespace(beanstalk=services.beanstalk, input_url=(inputs / "in.json").as_uri())
    with environ(JOBRUNNER_ALLOW_FILE_INPUTS=str(inputs), JOBRUNNER_FSYNC="false"):
        return bench_jobrunner(lean, work, n, c)  # type: ignore[arg-type]


# -- main ------------------------------------------------------------------------------------


def git_describe() -> str:
    """The commit measured, with ``-dirty`` when the work tree has changes (none if no git)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return ""
    return out.stdout.strip()


def interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def measure_round(
    services: Services,
    redis: RedisServer,
    work: Path,
    chosen: list[Peer],
    n: int,
    c: int,
    timeout: float,
) -> list[dict[str, Any]]:
    """One row per configuration; jobrunner echo first and last, ratios to their mean."""
    echo = "jobrunner echo, HTTP input + fsync"
    echo_setup = f"jobrunner work --concurrency {c}"
    rows = [
        {"name": f"{echo} (first)", "setup": echo_setup, **bench_jobrunner(services, work, n, c)},
        {
            "name": "jobrunner echo lean, file: input, no fsync",
            "setup": f"{echo_setup}, JOBRUNNER_FSYNC=false, file: input",
            **bench_jobrunner_lean(services, work, n, c),
        },
        {
            "name": f"raw greenstalk loop, {c} processes",
            "setup": "reserve, json.loads, delete (bench/run.py)",
            "jobs_per_s": bench_raw(services, n, c),
        },
    ]
    for peer in chosen:
        print(f"peers: {peer.label}", flush=True)
        try:
            rows.append(
                {
                    "name": peer.label,
                    **bench_peer(redis, peer, n, work, timeout, services.input_url),
                }
            )
        except (RuntimeError, subprocess.SubprocessError) as exc:
            print(f"peers: {peer.label} failed: {exc}", flush=True)
            rows.append({"name": peer.label, "setup": peer.setup, "error": str(exc)})
    # Measured again at the end: the two figures show how much the machine drifted.
    rows.append(
        {"name": f"{echo} (last)", "setup": echo_setup, **bench_jobrunner(services, work, n, c)}
    )
    reference = (rows[0]["jobs_per_s"] + rows[-1]["jobs_per_s"]) / 2
    for row in rows:
        if "jobs_per_s" in row:
            row["ratio"] = row["jobs_per_s"] / reference
    return rows


def summarise(rounds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Median jobs/s and ratio over the rounds, highest peak RSS."""
    summary = []
    for same in zip(*rounds, strict=True):
        ok = [row for row in same if "error" not in row]
        row = {"name": same[0]["name"], "setup": same[0]["setup"], "rounds": list(same)}
        if not ok:
            row["error"] = same[0]["error"]
        else:
            row["jobs_per_s"] = statistics.median(r["jobs_per_s"] for r in ok)
            row["ratio"] = statistics.median(r["ratio"] for r in ok)
            if any("rss_peak_mb" in r for r in ok):
                row["rss_peak_mb"] = max(r.get("rss_peak_mb", 0.0) for r in ok)
            if len(ok) < len(same):
                row["failed_rounds"] = len(same) - len(ok)
        summary.append(row)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1000 jobs per measurement")
    parser.add_argument("--jobs", type=int, help="jobs per measurement (default 5000)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat everything; medians are reported"
    )
    parser.add_argument(
        "--only", nargs="+", metavar="PEER", help="huey, dramatiq, celery, rq (default all)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "peers.json")
    args = parser.parse_args(argv)
    n = args.jobs or (1000 if args.quick else 5000)
    c = args.concurrency
    # The slowest peer (RQ forking) does ~65 jobs/s on 2 cores: allow for a slower machine.
    timeout = max(120.0, n / 10)
    signal.signal(signal.SIGINT, interrupt)  # also when started in the background
    signal.signal(signal.SIGTERM, interrupt)
    chosen = [p for p in peers(c) if not args.only or p.venv in args.only]
    for venv in dict.fromkeys(p.venv for p in chosen):
        venv_for(venv)  # before anything is timed or started

    commit = git_describe()  # before the run: what was measured
    work = Path(tempfile.mkdtemp(prefix="jobrunner-peers-"))
    rounds: list[list[dict[str, Any]]] = []
    services = redis = None
    try:
        services = Services(work)
        redis = RedisServer(work)
        for number in range(1, args.rounds + 1):
            print(f"peers: round {number}/{args.rounds}, {n} jobs, concurrency {c}", flush=True)
            rounds.append(measure_round(services, redis, work, chosen, n, c, timeout))
    except KeyboardInterrupt:
        print("\npeers: interrupted, stopping everything", flush=True)
        return 130
    finally:
        if redis:
            redis.stop()
        if services:
            services.stop()
        shutil.rmtree(work, ignore_errors=True)

    rows = summarise(rounds)
    median = f"medians of {len(rounds)} rounds" if len(rounds) > 1 else "one round"
    print(
        f"\n{n} jobs per row, concurrency {c}, {os.cpu_count()} CPUs, loopback, {median};"
        " ratio = jobs/s / mean of jobrunner echo's first and last figure in the same round"
    )
    print(f"{'configuration':<44} {'jobs/s':>8} {'ratio':>6} {'RSS peak':>9}")
    for row in rows:
        if "error" in row:
            print(f"{row['name']:<44} failed: {row['error'][:60]}")
            continue
        peak = f"{row['rss_peak_mb']:.0f} MB" if "rss_peak_mb" in row else ""
        print(f"{row['name']:<44} {row['jobs_per_s']:>8.0f} {row['ratio']:>6.2f} {peak:>9}")
    print(
        "\nEvery peer does echo's work (bench/peers/same_work.py): HTTP fetch of the input, a"
        "\nresult document per job (temp file, fsync, rename, directory fsync), then the"
        "\nacknowledgement; lean skips the HTTP fetch and the fsync. RSS: the worker's whole tree"
        "\n(pages shared after fork counted in each process), peak while draining."
    )
    report = {
        "jobs": n,
        "concurrency": c,
        "rounds": len(rounds),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "jobrunner_commit": commit,
        "redis": subprocess.run(
            [ensure_redis_server(), "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip(),
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
