"""Result reads through Varnish next to reads straight from ``jobrunner serve``.

    python bench/varnish.py            # about four minutes
    python bench/varnish.py --quick    # about a minute and a half

Three ``jobrunner serve`` nodes, each with a copy of the same results
directory (as the rsync publisher leaves them), and one ``varnishd`` in front
with ``examples/varnish/jobrunner.vcl`` (its own working directory on
loopback; the system Varnish is not touched). Measured in one run:

* **reads/s**: ``wrk`` reading one finished result document (about 2 KB)
  over 32 kept-alive connections, straight from one ``jobrunner serve`` and
  through Varnish, and the ratio;
* **polling**: many simulated browsers, each watching a job as the portal's
  page does — polling its result URL every second from submission (404
  while queued) through ``running`` (a new document every second) until
  ``done`` — with jobs starting and finishing all the time. Counted: the
  browsers' requests, the requests that reached a node (Varnish's
  ``MAIN.backend_req``), the nodes' share, and the browsers' latency; the same
  load straight against one node for comparison (where every request is a
  node's).

Prints a table and writes ``bench/results/varnish.json``. Needs ``varnishd``
and ``wrk`` (``scripts/setup.sh`` installs Varnish; ``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobrunner.resultsdir import write_atomic  # noqa: E402
from tests.support import ResultsServer, Varnish, varnish_vcl  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def document(job: str, status: str, progress: float | None = None) -> bytes:
    """A result document of realistic size (about 2 KB when done)."""
    doc: dict[str, Any] = {
        "v": 1,
        "id": job,
        "type": "prediction",
        "status": status,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "worker": "node1",
        "attempt": 1,
    }
    if status == "running":
        doc["progress"] = progress
    if status == "done":
        doc["data"] = {"forecast": [round(random.uniform(0, 900), 1) for _ in range(200)]}
    return json.dumps(doc, separators=(",", ":")).encode()


class Nodes:
    """Three ``jobrunner serve`` nodes with identical results directories, Varnish in front."""

    def __init__(self, work: Path) -> None:
        self.dirs = [work / f"node{i}" for i in (1, 2, 3)]
        for path in self.dirs:
            path.mkdir()
        self.servers = [ResultsServer(path) for path in self.dirs]
        self.varnish = Varnish(
            work / "varnish",
            varnish_vcl([s.port for s in self.servers]),
            "-p",
            "thread_pool_min=50",
        )

    def publish(self, name: str, body: bytes) -> None:
        """Write a document on every node, as the file and rsync publishers do."""
        for path in self.dirs:
            write_atomic(path / name, body, fsync=False)  # the reads are measured, not this

    def close(self) -> None:
        self.varnish.stop()
        for server in self.servers:
            server.stop()


def wrk(url: str, seconds: int, connections: int = 32) -> float:
    """Requests per second ``wrk`` reaches on ``url``."""
    binary = shutil.which("wrk")
    if binary is None:
        sys.exit("bench/varnish.py needs wrk: apt-get install wrk")
    out = subprocess.run(
        [binary, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or "Non-2xx" in out:
        sys.exit(f"wrk failed on {url}:\n{out}")
    return float(match.group(1))


def reads_per_second(nodes: Nodes, seconds: int) -> dict[str, float]:
    """wrk on one finished document, straight from a node and through Varnish."""
    nodes.publish("popular.json", document("popular", "done"))
    direct = f"{nodes.servers[0].base_url}popular.json"
    cached = f"{nodes.varnish.base_url}/popular.json"
    httpx.get(cached, timeout=10).raise_for_status()  # in the cache
    wrk(direct, 2)  # warm-up of both
    wrk(cached, 2)
    return {"direct": wrk(direct, seconds), "varnish": wrk(cached, seconds)}


class Browser:
    """One browser tab's kept-alive HTTP/1.1 connection (a small client: the load
    generator must not be the bottleneck on a loaded machine)."""

    def __init__(self, base_url: str) -> None:
        host, _, port = base_url.removeprefix("http://").rstrip("/").partition(":")
        self.host, self.port = host, int(port)
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        """GET ``path``; return the status code and the body."""
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: results.test\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if length is None:
                raise ConnectionError("no Content-Length")
            body = await reader.readexactly(int(length.group(1)))
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            self.close()
            raise ConnectionError(f"GET {path} failed") from None
        return status, body

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def polling(
    nodes: Nodes,
    base_url: str,
    *,
    browsers: int,
    per_job: int,
    seconds: float,
    prefix: str,
    counters: Callable[[], dict[str, int]] | None,
) -> dict[str, Any]:
    """Browsers watching jobs from submission to done; what they asked and what nodes got."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    slots = browsers // per_job
    end = time.monotonic() + seconds
    before = counters() if counters else None

    async def watch(path: str) -> None:
        browser = Browser(base_url)
        await asyncio.sleep(random.uniform(0, 1))
        try:
            while time.monotonic() < end:
                started = time.monotonic()
                try:
                    status, body = await browser.get(path)
                except ConnectionError:  # counted; the page would try again
                    codes[0] = codes.get(0, 0) + 1
                    await asyncio.sleep(1.0)
                    continue
                latencies.append(time.monotonic() - started)
                codes[status] = codes.get(status, 0) + 1
                if status == 200 and b'"status":"done"' in body:
                    return  # the page shows the result and stops polling
                await asyncio.sleep(1.0)
        finally:
            browser.close()

    async def slot(index: int) -> None:
        number = 0
        rng = random.Random(index)
        await asyncio.sleep(rng.uniform(0, 5))
        while time.monotonic() < end:
            number += 1
            name = f"{prefix}-{index}-{number}.json"
            watchers = [asyncio.create_task(watch(f"/{name}")) for _ in range(per_job)]
            await asyncio.sleep(rng.uniform(1, 5))  # queued: 404
            steps = rng.randint(5, 15)  # running: a new document every second
            for step in range(steps):
                if time.monotonic() > end:
                    break
                nodes.publish(name, document(name, "running", step / steps))
                await asyncio.sleep(1.0)
            nodes.publish(name, document(name, "done"))
            await asyncio.gather(*watchers)

    await asyncio.gather(*(slot(i) for i in range(slots)))
    requests = sum(n for code, n in codes.items() if code)
    row: dict[str, Any] = {
        "browsers": browsers,
        "browsers_per_job": per_job,
        "requests": requests,
        "status_codes": codes,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": statistics.quantiles(latencies, n=100)[98] * 1000,
    }
    if counters is not None and before is not None:
        await asyncio.sleep(1.0)  # Varnish's threads publish their counters late
        after = counters()
        row["backend_requests"] = after["MAIN.backend_req"] - before["MAIN.backend_req"]
    else:
        row["backend_requests"] = requests
    row["backend_share"] = row["backend_requests"] / requests
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args()
    read_seconds, poll_seconds = (5, 10) if args.quick else (10, 20)
    work = Path(tempfile.mkdtemp(prefix="jobrunner-bench-varnish-"))
    nodes = Nodes(work)
    try:
        reads = reads_per_second(nodes, read_seconds)
        poll_rows = []
        for browsers, per_job in ((200, 1), (200, 5), (200, 20)):
            for target in ("varnish", "direct"):
                base = (
                    nodes.varnish.base_url
                    if target == "varnish"
                    else nodes.servers[0].base_url.rstrip("/")
                )
                row = asyncio.run(
                    polling(
                        nodes,
                        base,
                        browsers=browsers,
                        per_job=per_job,
                        seconds=poll_seconds,
                        prefix=f"{target}{per_job}",
                        counters=nodes.varnish.counters if target == "varnish" else None,
                    )
                )
                row["target"] = target
                poll_rows.append(row)
    finally:
        nodes.close()
        shutil.rmtree(work, ignore_errors=True)

    print("\nReads of one finished document (wrk, 32 connections)")
    print(f"{'target':<28}{'reads/s':>10}{'ratio':>8}")
    print(f"{'jobrunner serve, straight':<28}{reads['direct']:>10.0f}{1:>8.2f}")
    ratio = reads["varnish"] / reads["direct"]
    print(f"{'Varnish in front of 3 nodes':<28}{reads['varnish']:>10.0f}{ratio:>8.2f}")
    print("\nBrowsers polling their jobs every second, submission to done")
    print(
        f"{'target':<9}{'browsers':>9}{'per job':>8}{'requests':>10}{'to nodes':>10}"
        f"{'share':>8}{'p50 ms':>8}{'p99 ms':>8}"
    )
    for row in poll_rows:
        print(
            f"{row['target']:<9}{row['browsers']:>9}{row['browsers_per_job']:>8}"
            f"{row['requests']:>10}{row['backend_requests']:>10}{row['backend_share']:>8.1%}"
            f"{row['p50_ms']:>8.1f}{row['p99_ms']:>8.1f}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"reads_per_second": reads, "polling": poll_rows, "quick": args.quick}
    (RESULTS / "varnish.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
