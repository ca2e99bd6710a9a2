"""Submission speed from one process to one local beanstalkd: ``Client.submit_many``
side by side with one ``Client.submit`` per job and with raw greenstalk puts of
ready-made bodies (no validation: the queue's own ceiling).

Every row puts the same number of valid job documents into a fresh tube on the
same beanstalkd in the same run; the ratios are what counts on a loaded machine.
Target (issue 15): submit_many ≥ 5,000 jobs/s.

Run:  python bench/submit.py [--jobs 20000]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable

import greenstalk

from jobrunner.client import Client, job_document
from jobrunner.codec import converter, encode_job
from jobrunner.job import Job
from jobrunner.logging import configure_logging
from jobrunner.testing import free_port, wait_for_port


def specs(n: int, tag: str) -> list[dict[str, object]]:
    """``n`` job specs like a nightly forecast run: one per meter."""
    return [
        {
            "type": "prediction",
            "input": f"https://data.example/meters/{i}.json",
            "result": f"https://results.example/{tag}/{i}.json",
            "params": {"horizon": "24h", "meter": i},
            "id": f"{tag}-{i}-{uuid.uuid4().hex[:8]}",
        }
        for i in range(n)
    ]


def timed(run: Callable[[], object]) -> float:
    """Seconds one call of ``run`` takes."""
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """Run the three rows and print jobs/s and the ratio to one submit per job."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    args = parser.parse_args(argv)
    n = args.jobs
    configure_logging("warning")
    port = free_port()
    binary = shutil.which("beanstalkd") or "/usr/bin/beanstalkd"
    server = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port)])
    try:
        wait_for_port(port)
        address = f"127.0.0.1:{port}"
        rows: list[tuple[str, float]] = []
        with Client(address) as client:
            one_by_one = specs(n, "single")
            rows.append(
                (
                    "Client.submit, one per job",
                    timed(lambda: [client.submit(tube="b-single", **s) for s in one_by_one]),  # type: ignore[arg-type]
                )
            )
            bulk = specs(n, "bulk")
            rows.append(
                ("Client.submit_many", timed(lambda: client.submit_many(bulk, tube="b-bulk")))
            )
        bodies = [
            encode_job(converter.structure(job_document(**s), Job))  # type: ignore[arg-type]
            for s in specs(n, "raw")
        ]
        raw = greenstalk.Client(("127.0.0.1", port), encoding=None, use="b-raw")
        rows.append(
            ("raw greenstalk put, bodies ready", timed(lambda: [raw.put(b) for b in bodies]))
        )
        raw.close()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"stats\r\n")
            sock.recv(4096)
        base = rows[0][1]
        print(f"{n} jobs per row, one process, one local beanstalkd")
        print(f"{'row':<36} {'jobs/s':>10} {'vs submit':>10}")
        for name, seconds in rows:
            print(f"{name:<36} {n / seconds:>10,.0f} {base / seconds:>9.1f}x")
        bulk_rate = n / rows[1][1]
        print(f"submit_many target 5,000 jobs/s: {'met' if bulk_rate >= 5000 else 'NOT met'}")
        return 0 if bulk_rate >= 5000 else 1
    finally:
        server.terminate()
        server.wait(5)


if __name__ == "__main__":
    raise SystemExit(main())
