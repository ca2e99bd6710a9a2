"""jobrunner benchmarks, side by side with the raw queue, in one run on one beanstalkd.

    python bench/run.py            # full run (a few minutes)
    python bench/run.py --quick    # under a minute
    python bench/run.py --peers    # then Huey, Dramatiq, Celery and RQ (bench/peers.py)

Prints a table and writes ``bench/results/latest.json``. Measured, all on
loopback, with the same job bodies:

* ``raw``: the limit — bare greenstalk reserve → json.loads → delete loops,
  one process per unit of concurrency;
* ``same work by hand``: the baseline for jobrunner's own cost — two
  processes of a minimal greenstalk + httpx loop doing exactly what ``echo``
  does (reserve, GET the input on a kept-alive connection, write a timestamped
  JSON document to a temp file, fsync, rename, fsync the directory, delete);
  ``jobrunner echo`` at concurrency 2 divided by it is the framework's
  efficiency (target: 0.8 or more), measured in ``--rounds`` paired rounds
  (default 3: by hand, then jobrunner, again and again) and reported as the
  median of the rounds' ratios, so that a load coming and going on a shared
  machine hits both sides alike; workers log at ``info`` (``--log-level``),
  as deployed;
* ``jobrunner``: ``echo`` jobs end to end — reserve, hand to a child process,
  fetch a small JSON input over HTTP (nginx when installed, else
  ``jobrunner serve``), publish the result with the file publisher (temp file,
  fsync, rename), delete — at concurrency 1, 2 and 4, and with two worker
  processes on one tube; jobs/s and the ratio to ``raw`` at the same
  concurrency, measured in the same run;
* latency from ``put`` to the result document being readable, at a low
  steady rate (p50, p90, p99), for jobrunner and for the same work by hand
  (most of it is the two fsyncs, which the disk decides);
* memory: RSS of the worker and its children, idle and under load.

Throughput is timed from the first job finished to the last, so process
start-up is not counted; the queue is filled before the consumers start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import greenstalk

from jobrunner._worker import tree
from jobrunner.testing import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LOG_LEVEL = "info"


class Services:
    """beanstalkd and an input HTTP server, stopped on exit."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[subprocess.Popen[bytes]] = []
        self.bs_port = free_port()
        beanstalkd = shutil.which("beanstalkd") or "/usr/bin/beanstalkd"
        self._start([beanstalkd, "-l", "127.0.0.1", "-p", str(self.bs_port)])
        wait_for_port(self.bs_port)
        self.inputs = work / "inputs"
        self.inputs.mkdir()
        (self.inputs / "in.json").write_text(json.dumps({"meter": 17, "readings": [[0, 1.5]]}))
        self.input_port = free_port()
        self.input_server = self._start_inputs()
        wait_for_port(self.input_port)

    def _start(self, cmd: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def _start_inputs(self) -> str:
        nginx = shutil.which("nginx") or (
            "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
        )
        if nginx:
            prefix = self.work / "nginx"
            prefix.mkdir()
            user = "user root;\n" if os.geteuid() == 0 else ""
            (prefix / "nginx.conf").write_text(
                f"{user}worker_processes 1;\nerror_log {prefix}/error.log;\npid {prefix}/pid;\n"
                "events { worker_connections 256; }\n"
                "http {\n access_log off;\n types { application/json json; }\n"
                f" client_body_temp_path {prefix}/body;\n proxy_temp_path {prefix}/proxy;\n"
                f" fastcgi_temp_path {prefix}/fcgi;\n uwsgi_temp_path {prefix}/uwsgi;\n"
                f" scgi_temp_path {prefix}/scgi;\n keepalive_requests 100000;\n"
                f" server {{ listen 127.0.0.1:{self.input_port}; root {self.inputs}; }}\n}}\n"
            )
            self._start(
                [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"]
            )
            return "nginx"
        self._start(
            [
                sys.executable,
                "-m",
                "jobrunner",
                "serve",
                "--results-dir",
                str(self.inputs),
                "--port",
                str(self.input_port),
            ]
        )
        return "jobrunner serve"

    @property
    def beanstalk(self) -> str:
        return f"127.0.0.1:{self.bs_port}"

    @property
    def input_url(self) -> str:
        return f"http://127.0.0.1:{self.input_port}/in.json"

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def job_body(input_url: str, base_url: str, n: int) -> bytes:
    job_id = str(uuid.uuid4())
    return json.dumps(
        {
            "v": 1,
            "id": job_id,
            "type": "echo",
            "input": input_url,
            "result": f"{base_url}b/{n % 100}/{job_id}.json",
            "params": {"n": n},
            "created": "2026-11-28T12:00:00.000000Z",
        }
    ).encode()


def fill(beanstalk: str, tube: str, bodies: list[bytes]) -> None:
    host, port = beanstalk.split(":")
    with greenstalk.Client((host, int(port)), encoding=None, use=tube) as client:
        for body in bodies:
            client.put(body, ttr=60)


def tube_counts(client: greenstalk.Client[bytes], tube: str) -> tuple[int, int]:
    try:
        stats = client.stats_tube(tube)
    except greenstalk.NotFoundError:
        return 0, 0
    pending = int(stats["current-jobs-ready"]) + int(stats["current-jobs-reserved"])
    return pending, int(stats["total-jobs"])


def time_drain(
    beanstalk: str,
    tube: str,
    total: int,
    timeout: float = 300.0,
    sample: Callable[[], None] | None = None,
) -> float:
    """Seconds from the first job finished to the last; the queue holds ``total`` jobs."""
    host, port = beanstalk.split(":")
    with greenstalk.Client((host, int(port)), encoding=None, use=tube) as client:
        deadline = time.monotonic() + timeout
        first = None
        while time.monotonic() < deadline:
            pending, _ = tube_counts(client, tube)
            now = time.perf_counter()
            if first is None and pending < total:
                first, first_pending = now, pending
            if pending == 0 and first is not None:
                # first_pending jobs finished in (now - first): scale to all of them.
                return (now - first) * total / max(1, first_pending)
            if sample:
                sample()
            time.sleep(0.005)
    raise SystemExit(f"bench: tube {tube} not drained within {timeout} s")


RAW_CONSUMER = """
import json, sys, greenstalk
host, port, tube = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with greenstalk.Client((host, port), encoding=None, watch=tube) as c:
    while True:
        try:
            job = c.reserve(timeout=1)
        except greenstalk.TimedOutError:
            break
        json.loads(job.body)
        c.delete(job)
"""


#: The same work as jobrunner's ``echo`` job, by hand: reserve, GET the input over a
#: kept-alive connection, write a timestamped JSON document to a temp file, fsync it,
#: rename it into place, fsync the directory (as jobrunner's atomic writer does), delete.
SAME_WORK_CONSUMER = """
import datetime, json, os, sys, tempfile, greenstalk, httpx
host, port, tube, results, base = sys.argv[1:6]
port = int(port)
http = httpx.Client()
with greenstalk.Client((host, port), encoding=None, watch=tube) as c:
    while True:
        try:
            job = c.reserve(timeout=1)
        except greenstalk.TimedOutError:
            break
        doc = json.loads(job.body)
        data = http.get(doc["input"]).json()
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = json.dumps({"id": doc["id"], "type": doc["type"], "status": "done",
                           "timestamp": now, "data": {"input": data, "params": doc["params"]}})
        path = os.path.join(results, doc["result"][len(base):])
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=folder)
        os.write(fd, body.encode())
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(folder, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
        c.delete(job)
"""


def bench_same_work(services: Services, work: Path, n: int, concurrency: int) -> float:
    """jobs/s of SAME_WORK_CONSUMER in ``concurrency`` processes."""
    tube = f"same-{concurrency}-{uuid.uuid4().hex[:6]}"
    results = work / tube
    base_url = "http://results.bench/"
    fill(services.beanstalk, tube, [job_body(services.input_url, base_url, i) for i in range(n)])
    host, port = services.beanstalk.split(":")
    cmd = [sys.executable, "-c", SAME_WORK_CONSUMER, host, port, tube, str(results), base_url]
    procs = [subprocess.Popen(cmd) for _ in range(concurrency)]
    seconds = time_drain(services.beanstalk, tube, n)
    for proc in procs:
        proc.wait(timeout=30)
    return n / seconds


def bench_raw(services: Services, n: int, concurrency: int) -> float:
    tube = f"raw-{concurrency}-{uuid.uuid4().hex[:6]}"
    fill(
        services.beanstalk,
        tube,
        [job_body(services.input_url, "http://r.test/", i) for i in range(n)],
    )
    host, port = services.beanstalk.split(":")
    procs = [
        subprocess.Popen([sys.executable, "-c", RAW_CONSUMER, host, port, tube])
        for _ in range(concurrency)
    ]
    seconds = time_drain(services.beanstalk, tube, n)
    for proc in procs:
        proc.wait(timeout=30)
    return n / seconds


def process_tree_rss(pid: int) -> int:
    """RSS in bytes of a process and all its descendants."""
    return sum(_rss(p) for p in [pid, *tree.descendants(pid)])


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


class WorkerProc:
    def __init__(
        self, services: Services, results: Path, base_url: str, tube: str, concurrency: int
    ) -> None:
        # The default level, as an operator runs it: one JSON line per job (to /dev/null).
        env = {**os.environ, "JOBRUNNER_LOG_LEVEL": LOG_LEVEL}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobrunner",
                "work",
                "--beanstalk",
                services.beanstalk,
                "--tube",
                tube,
                "--concurrency",
                str(concurrency),
                "--results-dir",
                str(results),
                "--base-url",
                base_url,
                "--allow-host",
                "127.0.0.1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def warm_up(services: Services, base_url: str, results: Path, tube: str, count: int) -> None:
    """Run ``count`` jobs and wait for them, so every child is started and warm."""
    bodies = [job_body(services.input_url, base_url, i) for i in range(count)]
    fill(services.beanstalk, tube, bodies)
    host, port = services.beanstalk.split(":")
    with greenstalk.Client((host, int(port)), encoding=None, use=tube) as client:
        deadline = time.monotonic() + 60
        while tube_counts(client, tube)[0] and time.monotonic() < deadline:
            time.sleep(0.02)


def bench_jobrunner(
    services: Services, work: Path, n: int, concurrency: int, workers: int = 1
) -> dict[str, Any]:
    tube = f"jr-{concurrency}x{workers}-{uuid.uuid4().hex[:6]}"
    results = work / tube
    base_url = "http://results.bench/"
    procs = [WorkerProc(services, results, base_url, tube, concurrency) for _ in range(workers)]
    try:
        warm_up(services, base_url, results, tube, 4 * concurrency * workers)
        idle = sum(process_tree_rss(p.proc.pid) for p in procs)
        peak = [idle]

        def sample() -> None:
            peak[0] = max(peak[0], sum(process_tree_rss(p.proc.pid) for p in procs))

        fill(
            services.beanstalk, tube, [job_body(services.input_url, base_url, i) for i in range(n)]
        )
        sampler_stop = threading.Event()

        def sampler() -> None:
            while not sampler_stop.wait(0.05):
                sample()

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        seconds = time_drain(services.beanstalk, tube, n)
        sampler_stop.set()
        thread.join()
        return {
            "jobs_per_s": n / seconds,
            "rss_idle_mb": idle / 2**20,
            "rss_peak_mb": peak[0] / 2**20,
        }
    finally:
        for proc in procs:
            proc.stop()


def bench_latency(
    services: Services, work: Path, count: int, rate: float, by_hand: bool = False
) -> dict[str, float]:
    """put → result readable, ``count`` jobs at ``rate``/s: jobrunner, or the same work by hand."""
    tube = f"lat-{uuid.uuid4().hex[:6]}"
    results = work / tube
    base_url = "http://results.bench/"
    host, port = services.beanstalk.split(":")
    worker: WorkerProc | None = None
    consumers: list[subprocess.Popen[bytes]] = []
    if by_hand:
        cmd = [sys.executable, "-c", SAME_WORK_CONSUMER, host, port, tube, str(results), base_url]
        consumers = [subprocess.Popen(cmd) for _ in range(2)]
    else:
        worker = WorkerProc(services, results, base_url, tube, 2)
    try:
        warm_up(services, base_url, results, tube, 8)
        latencies = []
        with greenstalk.Client((host, int(port)), encoding=None, use=tube) as client:
            for _ in range(count):
                job_id = str(uuid.uuid4())
                body = json.dumps(
                    {
                        "v": 1,
                        "id": job_id,
                        "type": "echo",
                        "input": services.input_url,
                        "result": f"{base_url}lat/{job_id}.json",
                        "params": {},
                        "created": "2026-11-28T12:00:00Z",
                    }
                ).encode()
                path = results / "lat" / f"{job_id}.json"
                t0 = time.perf_counter()
                client.put(body, ttr=60)
                deadline = t0 + 10
                while time.perf_counter() < deadline:
                    # A stat per look (no exception, no read) until the file is there: the
                    # watcher takes as little as it can of the two cores it shares.
                    if os.path.exists(path) and json.loads(path.read_bytes())["status"] == "done":
                        break
                    time.sleep(0.0002)
                latencies.append((time.perf_counter() - t0) * 1000)
                time.sleep(max(0.0, 1 / rate - (time.perf_counter() - t0)))
    finally:
        if worker is not None:
            worker.stop()
        for proc in consumers:  # they end one second after the queue is empty
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    return {
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "mean_ms": statistics.fmean(latencies),
        "samples": len(latencies),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    parser.add_argument("--jobs", type=int, help="jobs per throughput measurement")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="paired rounds of the same work by hand and jobrunner echo (ratio: their median)",
    )
    parser.add_argument(
        "--log-level", default="info", help="the workers' log level (default: info, as deployed)"
    )
    parser.add_argument(
        "--peer-rounds", type=int, default=1, help="with --peers: bench/peers.py's --rounds"
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="then run bench/peers.py (Huey, Dramatiq, Celery, RQ side by side; not for CI)",
    )
    args = parser.parse_args(argv)
    global LOG_LEVEL
    LOG_LEVEL = args.log_level
    n = args.jobs or (1000 if args.quick else 5000)
    work = Path(tempfile.mkdtemp(prefix="jobrunner-bench-"))
    services = Services(work)
    rows: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "jobs": n,
        "input_server": services.input_server,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    try:
        raw = {c: bench_raw(services, n, c) for c in (1, 2, 4)}
        for c in (1, 2, 4):
            rows.append(
                {
                    "name": f"raw greenstalk loop, {c} process(es)",
                    "concurrency": c,
                    "jobs_per_s": raw[c],
                    "ratio": 1.0,
                }
            )
        # The headline ratio: rounds of the same work by hand and jobrunner side by side,
        # so that a load coming and going on a shared machine hits both alike.
        pairs = []
        for _ in range(max(1, args.rounds)):
            by_hand = bench_same_work(services, work, n, 2)
            echo = bench_jobrunner(services, work, n, 2)
            pairs.append((by_hand, echo))
        same = statistics.median(p[0] for p in pairs)
        report["rounds"] = [
            {"same_work": a, "jobrunner": b["jobs_per_s"], "ratio": b["jobs_per_s"] / a}
            for a, b in pairs
        ]
        report["echo_vs_same_work"] = statistics.median(r["ratio"] for r in report["rounds"])
        rows.append(
            {
                "name": "same work by hand (greenstalk+httpx), 2 processes",
                "concurrency": 2,
                "jobs_per_s": same,
                "ratio": same / raw[2],
            }
        )
        configs = [(1, 1), (2, 1), (4, 1), (1, 2)] if not args.quick else [(2, 1), (1, 2)]
        for concurrency, workers in configs:
            if (concurrency, workers) == (2, 1):
                # The median round's run (its RSS figures with it).
                ranked = sorted(pairs, key=lambda p: p[1]["jobs_per_s"])
                measured = ranked[len(ranked) // 2][1]
            else:
                measured = bench_jobrunner(services, work, n, concurrency, workers)
            total = concurrency * workers
            label = (
                f"jobrunner echo, concurrency {concurrency}"
                if workers == 1
                else f"jobrunner echo, {workers} workers x {concurrency}"
            )
            rows.append(
                {
                    "name": label,
                    "concurrency": total,
                    **measured,
                    "ratio": measured["jobs_per_s"] / raw[min(total, 4)],
                }
            )
        samples = 100 if args.quick else 300
        report["latency"] = bench_latency(services, work, samples, 50.0)
        report["latency_by_hand"] = bench_latency(services, work, samples, 50.0, by_hand=True)
    finally:
        services.stop()
        shutil.rmtree(work, ignore_errors=True)
    report["rows"] = rows
    print(f"\n{n} jobs per run, input server: {services.input_server}, {os.cpu_count()} CPUs\n")
    print(f"{'configuration':<40} {'jobs/s':>9} {'x raw':>7} {'RSS idle':>9} {'RSS peak':>9}")
    for row in rows:
        idle = f"{row['rss_idle_mb']:.0f} MB" if "rss_idle_mb" in row else ""
        peak = f"{row['rss_peak_mb']:.0f} MB" if "rss_peak_mb" in row else ""
        print(
            f"{row['name']:<40} {row['jobs_per_s']:>9.0f} {row['ratio']:>7.2f} {idle:>9} {peak:>9}"
        )
    if "echo_vs_same_work" in report:
        per_round = ", ".join(f"{r['ratio']:.2f}" for r in report["rounds"])
        print(
            "\njobrunner echo at concurrency 2 / the same work by hand in 2 processes: "
            f"{report['echo_vs_same_work']:.2f} (median of {len(report['rounds'])} paired rounds: "
            f"{per_round}; workers log at {LOG_LEVEL})"
        )
    print()
    for key, label in (("latency", "jobrunner echo"), ("latency_by_hand", "same work by hand")):
        lat = report[key]
        print(
            f"latency put → result readable, {lat['samples']} jobs at 50/s, {label}: "
            f"p50 {lat['p50_ms']:.1f} ms, p90 {lat['p90_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.output}")
    if args.peers:
        # The peers' own table, with jobrunner measured again in the same round.
        peers = [sys.executable, str(Path(__file__).with_name("peers.py"))]
        peers += ["--rounds", str(args.peer_rounds)] + (["--quick"] if args.quick else [])
        return subprocess.call(peers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
