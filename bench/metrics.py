"""What the metrics cost a worker: prometheus_client's import, resident memory with and
without ``--metrics-port``, and the time one scrape of ``/metrics`` takes.

Every worker builds its metrics (the endpoint is what ``--metrics-port`` adds), so
the first table measures, in a fresh interpreter that has already imported what
a worker needs besides, what importing prometheus_client and building the
worker's registry adds.

Both workers run in the same run against the same local beanstalkd, one slot
each, idle; their resident size (``VmRSS`` of the worker process, its child
not counted) is read after start-up. The difference is what prometheus_client,
its collectors and the HTTP endpoint cost. Scrapes are timed over keep-alive
connections; the median is what counts on a loaded machine.

Run:  python bench/metrics.py [--scrapes 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from jobrunner.testing import free_port, wait_for_port


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


_IMPORT_COST = """
import sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
import http.server, json, threading, jobrunner.config, jobrunner.queue, jobrunner.fetch
import jobrunner.plugins, jobrunner.publish.base
before, t0 = rss(), time.perf_counter()
from jobrunner.metrics import WorkerMetrics
metrics = WorkerMetrics(job_types={"echo"})
metrics.job_finished("echo", "delete", None, 0.1)
metrics.render()
print(rss() - before, (time.perf_counter() - t0) * 1000)
"""


def import_cost(runs: int = 5) -> tuple[float, float]:
    """Median KiB and milliseconds that importing and building the worker's metrics adds."""
    kib, ms = [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORT_COST], capture_output=True, text=True, check=True
        )
        a, b = out.stdout.split()
        kib.append(float(a))
        ms.append(float(b))
    return statistics.median(kib), statistics.median(ms)


def start_worker(address: str, results: str, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "jobrunner", "work", "--beanstalk", address]
    cmd += ["--concurrency", "1", "--results-dir", results, "--base-url", "http://r.test/"]
    env = {**os.environ, "JOBRUNNER_LOG_LEVEL": "warning"}
    return subprocess.Popen([*cmd, *extra], env=env, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()
    binary = shutil.which("beanstalkd")
    if binary is None:
        print("beanstalkd is not installed", file=sys.stderr)
        return 2
    port = free_port()
    queue = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port)])
    workers: list[subprocess.Popen[bytes]] = []
    try:
        wait_for_port(port)
        address = f"127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as results:
            metrics_port = free_port()
            plain = start_worker(address, results)
            measured = start_worker(address, results, "--metrics-port", str(metrics_port))
            workers += [plain, measured]
            wait_for_port(metrics_port, timeout=30)
            time.sleep(3.0)  # both settled: children started, first reserve under way
            base = f"http://127.0.0.1:{metrics_port}/metrics"
            with httpx.Client() as client:
                client.get(base)
                times = []
                for _ in range(args.scrapes):
                    t0 = time.perf_counter()
                    size = len(client.get(base).content)
                    times.append(time.perf_counter() - t0)
            without, with_ = rss_kib(plain.pid), rss_kib(measured.pid)
        kib, ms = import_cost()
        print(f"prometheus_client + the worker's registry: {kib / 1024:+.2f} MiB, {ms:.1f} ms\n")
        print(f"{'worker':<28}{'RSS (MiB)':>12}")
        print(f"{'without --metrics-port':<28}{without / 1024:>12.1f}")
        print(f"{'with --metrics-port':<28}{with_ / 1024:>12.1f}")
        print(f"{'difference':<28}{(with_ - without) / 1024:>+12.1f}")
        print(
            f"\n/metrics: {size} bytes, median {statistics.median(times) * 1000:.2f} ms, "
            f"p95 {sorted(times)[int(0.95 * len(times))] * 1000:.2f} ms over {args.scrapes}"
        )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
        queue.terminate()
        queue.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
