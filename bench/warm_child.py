"""Speed of the ``simulation`` and ``prediction`` job types through a real worker's child.

    python bench/warm_child.py              # 1 cold + 5 warm runs of each case
    python bench/warm_child.py --repeats 3  # 1 cold + 3 warm

Everything is real and on loopback: a beanstalkd, ``jobrunner serve`` serving
the inputs, and ``jobrunner work --concurrency 1`` publishing with the file
publisher. For each case a fresh worker is started, so its first job runs in a
cold child (the plugin, pandas and pvlib are imported during that job); the
same job is then submitted again, one at a time, and runs in the now warm
child. Reported per case, for the cold run and min/median/max of the warm
runs:

* ``compute``: ``finished`` minus ``started`` of the result document — the
  attempt as the worker times it: the input fetched over HTTP and decoded,
  the job type's work, the result built;
* ``put→readable``: wall time from ``put`` until the ``done`` document is in
  the results directory (adds the queue, the hand-off to the child and the
  publishing).

Cases and the targets of their issues:

* simulation (5 kWp, 30° south, 10 kWh battery, tariff) on the TMY3 year of
  Greensboro, NC shipped in pvlib's wheel: hourly (8760 steps, ≤ 1 s), and
  every 15 minutes (35 040 steps, each hour's weather repeated four times,
  ≤ 3 s); a synthetic household load;
* prediction, a day ahead (``method=auto``), on the England & Wales
  half-hourly demand of Taylor (2003) shipped in pmdarima's wheel: its first
  8 weeks (2688 values, ≤ 1 s), and a year every 15 minutes (35 040 values:
  the 12 weeks interpolated to 15 minutes and repeated, whole weeks, to fill
  the year; ≤ 3 s).

Needs the plugins with their ``realdata`` extras (``scripts/setup.sh``
installs them). Writes ``bench/results/warm_child.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import numpy as np

from jobrunner import Client
from jobrunner.testing import free_port, wait_for_port

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASE_URL = "http://results.bench/"
JOBRUNNER = [sys.executable, "-m", "jobrunner"]
JOB_DEADLINE = 180.0
COLD_LABEL = "  cold (the child's first job)"  # seconds one job may take before the bench gives up


def greensboro(step: int) -> tuple[str, list[list[float]], dict[str, float]]:
    """The TMY3 weather as CSV at ``step`` seconds, a household load on the same grid, the site."""
    import pandas as pd
    import pvlib

    path = pathlib.Path(pvlib.__file__).parent / "data" / "723170TYA.CSV"
    frame, meta = pvlib.iotools.read_tmy3(path, coerce_year=2023, map_variables=True)
    frame = frame[["ghi", "dni", "dhi", "temp_air", "wind_speed"]]
    frame.index = frame.index - pd.Timedelta(hours=1)  # TMY3 labels the end of each hour
    start = int(frame.index[0].timestamp())
    table = frame.loc[frame.index.repeat(3600 // step)].copy()
    table.insert(0, "time", start + step * np.arange(len(table)))
    hour = (np.arange(len(table)) * step % 86400) / 3600.0
    rng = np.random.default_rng(7)
    shape = 250 + 900 * np.exp(-((hour - 19) ** 2) / 3) + 500 * np.exp(-((hour - 7) ** 2))
    load = shape + rng.gamma(2.0, 60.0, len(table))
    readings = [[start + step * i, round(float(w), 1)] for i, w in enumerate(load)]
    site = {"latitude": meta["latitude"], "longitude": meta["longitude"], "altitude": 273.0}
    return table.to_csv(index=False), readings, site


def taylor(step: int, points: int) -> dict[str, Any]:
    """Taylor's half-hourly demand (MW) at ``step`` seconds, ``points`` values from its start."""
    from pmdarima.datasets import load_taylor

    half_hourly = np.asarray(load_taylor(), dtype=np.float64)  # 12 weeks from 2000-06-05
    if step == 1800:
        values = half_hourly
    else:  # linear in between; the last value's half-hour is closed with the first's
        ring = np.append(half_hourly, half_hourly[0])
        values = np.interp(
            np.arange(len(half_hourly) * 1800 // step) * step / 1800.0, np.arange(len(ring)), ring
        )
    repeated = np.resize(values, points)  # 12 weeks again and again: whole weeks
    start = 960_159_600  # 2000-06-05 00:00 BST
    return {
        "unit": "MW",
        "readings": [[start + step * i, round(float(v), 1)] for i, v in enumerate(repeated)],
    }


def cases(inputs: pathlib.Path) -> list[dict[str, Any]]:
    """Write every case's inputs into ``inputs``; return the cases."""
    tariff = {"import": [0.25] * 7 + [0.35] * 10 + [0.45] * 4 + [0.30] * 3, "export": 0.08}
    found = []
    for step, steps, target in ((3600, "hourly", 1.0), (900, "15 min", 3.0)):
        weather, load, site = greensboro(step)
        (inputs / f"weather-{step}.csv").write_text(weather)
        (inputs / f"load-{step}.json").write_text(json.dumps({"unit": "W", "readings": load}))
        found.append(
            {
                "name": f"simulation, a year {steps} ({len(load)} steps)",
                "type": "simulation",
                "input": {"load": f"load-{step}.json", "weather": f"weather-{step}.csv"},
                "params": {
                    "pv_kwp": 5.0,
                    "tilt": 30.0,
                    "azimuth": 180.0,
                    "battery_kwh": 10.0,
                    "tariff": tariff,
                    **site,
                },
                "target": target,
            }
        )
    for step, points, label, target in (
        (1800, 8 * 7 * 48, "8 weeks half-hourly", 1.0),
        (900, 365 * 96, "a year 15 min", 3.0),
    ):
        (inputs / f"demand-{step}.json").write_text(json.dumps(taylor(step, points)))
        found.append(
            {
                "name": f"prediction 1 day ahead, {label} ({points} values)",
                "type": "prediction",
                "input": f"demand-{step}.json",
                "params": {"horizon": "1d"},
                "target": target,
            }
        )
    return found


def stamp(text: str) -> float:
    """Unix seconds of an ISO 8601 time of a result document."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Bench:
    """beanstalkd and the inputs server for the whole run; a worker per case."""

    def __init__(self, work: pathlib.Path) -> None:
        self.work = work
        self.procs: list[subprocess.Popen[bytes]] = []
        self.bs_port = free_port()
        beanstalkd = shutil.which("beanstalkd") or "/usr/bin/beanstalkd"
        self.start([beanstalkd, "-l", "127.0.0.1", "-p", str(self.bs_port)])
        wait_for_port(self.bs_port)
        self.inputs = work / "inputs"
        self.inputs.mkdir()
        self.in_port = free_port()
        self.start(
            [
                *JOBRUNNER,
                "serve",
                "--results-dir",
                str(self.inputs),
                "--port",
                str(self.in_port),
                "--host",
                "127.0.0.1",
            ]
        )
        wait_for_port(self.in_port, timeout=30)

    def start(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, **kwargs)
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop_one(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            self.stop_one(proc)

    def run_case(self, case: dict[str, Any], repeats: int) -> dict[str, Any]:
        """A fresh worker; the case's job 1 + ``repeats`` times, one at a time."""
        tube = f"warm-{uuid.uuid4().hex[:8]}"
        results = self.work / tube
        log_path = self.work / f"{tube}.log"
        with log_path.open("wb") as log:
            worker = self.start(
                [
                    *JOBRUNNER,
                    "work",
                    "--beanstalk",
                    self.beanstalk,
                    "--tube",
                    tube,
                    "--concurrency",
                    "1",
                    "--results-dir",
                    str(results),
                    "--base-url",
                    BASE_URL,
                    "--allow-host",
                    "127.0.0.1",
                    "--log-format",
                    "json",
                    "--log-level",
                    "info",
                ],
                stderr=log,
            )
        url = f"http://127.0.0.1:{self.in_port}/"
        job_input = case["input"]
        job_input = (
            {name: url + path for name, path in job_input.items()}
            if isinstance(job_input, dict)
            else url + job_input
        )
        runs = []
        try:
            wait_started(log_path, worker)
            with Client(self.beanstalk) as client:
                for n in range(repeats + 1):
                    path = results / f"{n}.json"
                    cpu_before = children_cpu(worker.pid)
                    began, put_at = time.perf_counter(), time.time()
                    client.submit(
                        case["type"], job_input, f"{BASE_URL}{n}.json", case["params"], tube=tube
                    )
                    seen, doc = wait_final(path, worker)
                    readable = seen - began
                    if doc["status"] != "done":
                        raise SystemExit(f"bench: {case['name']}: job failed: {doc['error']}")
                    compute = stamp(doc["finished"]) - stamp(doc["started"])
                    cpu_after = children_cpu(worker.pid)
                    cpu = sum(t - cpu_before.get(pid, 0.0) for pid, t in cpu_after.items())
                    runs.append(
                        {
                            "id": doc["id"],
                            "compute_s": compute,
                            "readable_s": readable,
                            "child_cpu_s": cpu,
                            "to_started_s": stamp(doc["started"]) - put_at,
                            "result_mb": path.stat().st_size / 1e6,
                        }
                    )
        finally:
            self.stop_one(worker, timeout=60)
        events = [
            json.loads(line) for line in log_path.read_bytes().splitlines() if line[:1] == b"{"
        ]
        children = [e for e in events if e.get("event") == "child_started"]
        # The worker's one event per job (job_deleted; job_published before 0.3) gives the
        # child's split: fetching, running, and the rest (hand-off, publishing, delete).
        ends = {
            e.get("job_id"): e
            for e in events
            if e.get("event") in ("job_deleted", "job_published") and "fetch_s" in e
        }
        for run in runs:
            end = ends.get(run["id"], {})
            total = end.get("duration_s", end.get("total_s"))
            if total is not None and end.get("run_s") is not None:
                run.update(fetch_s=end["fetch_s"], run_s=end["run_s"], total_s=total)
        return {
            "name": case["name"],
            "type": case["type"],
            "target_s": case["target"],
            "cold": runs[0],
            "warm": runs[1:],
            "children_started": len(children),
        }

    @property
    def beanstalk(self) -> str:
        return f"127.0.0.1:{self.bs_port}"


def wait_started(log_path: pathlib.Path, worker: subprocess.Popen[bytes]) -> None:
    """Wait (bounded) until the worker logs ``worker_started``: its start is not timed."""
    deadline = time.monotonic() + 60
    while b'"worker_started"' not in log_path.read_bytes():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench: the worker did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.05)


def children_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each child process of ``pid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for children in pathlib.Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            try:
                fields = pathlib.Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            found[int(child)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def wait_final(path: pathlib.Path, worker: subprocess.Popen[bytes]) -> tuple[float, dict[str, Any]]:
    """When the final (``done`` or ``failed``) document at ``path`` was first seen, and it.

    Polls the document's first bytes only (``status`` comes before ``data``), so that
    reading a large result while waiting does not slow the worker down; bounded.
    """
    deadline = time.monotonic() + JOB_DEADLINE
    while time.monotonic() < deadline:
        try:
            with path.open("rb") as fh:
                head = fh.read(512)
        except FileNotFoundError:
            head = b""
        if b'"status":"done"' in head or b'"status":"failed"' in head:
            seen = time.perf_counter()
            doc: dict[str, Any] = json.loads(path.read_bytes())
            return seen, doc
        if worker.poll() is not None:
            raise SystemExit(f"bench: the worker exited with {worker.returncode}")
        time.sleep(0.002)
    raise SystemExit(f"bench: no final result at {path} within {JOB_DEADLINE:.0f} s")


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="warm runs per case (default 5)")
    parser.add_argument(
        "--output", type=pathlib.Path, default=ROOT / "bench" / "results" / "warm_child.json"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    work = pathlib.Path(tempfile.mkdtemp(prefix="jobrunner-warm-"))
    bench = Bench(work)
    rows = []
    try:
        for case in cases(bench.inputs):
            print(f"running: {case['name']} ...", file=sys.stderr, flush=True)
            rows.append(bench.run_case(case, args.repeats))
    finally:
        bench.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nthrough jobrunner work --concurrency 1 on loopback, {os.cpu_count()} CPUs, "
        f"1 cold + {args.repeats} warm runs per case; seconds, warm as min / median / max\n"
    )
    print(f"{'':<40}{'compute':>20}{'child CPU':>20}{'put→readable':>20}")
    for row in rows:
        cold, warm = row["cold"], row["warm"]
        target = row["target_s"]
        print(f"{row['name']} — target ≤ {target:g} s in a warm child")
        print(
            f"{COLD_LABEL:<40}{cold['compute_s']:>20.2f}"
            f"{cold['child_cpu_s']:>20.2f}{cold['readable_s']:>20.2f}"
        )
        print(
            f"{'  warm, min / median / max':<40}"
            f"{spread([r['compute_s'] for r in warm]):>20}"
            f"{spread([r['child_cpu_s'] for r in warm]):>20}"
            f"{spread([r['readable_s'] for r in warm]):>20}"
        )
        verdicts = [
            f"{label} {'yes' if statistics.median(r[key] for r in warm) <= target else 'NO'}"
            for label, key in (("compute", "compute_s"), ("put→readable", "readable_s"))
        ]
        recycled = row["children_started"] != 1
        note = f"; {row['children_started']} children started" if recycled else ""
        print(f"  warm median within the target: {', '.join(verdicts)}{note}")
    print(
        "\nwhere a warm job's time goes (medians, s; from the worker's log): put until the "
        "attempt started, fetch + decode the inputs, run the job type, the rest (publish the "
        "result document, hand-off, delete)"
    )
    print(f"{'case':<48}{'put→started':>12}{'fetch':>8}{'run':>8}{'rest':>9}{'result':>10}")
    for row in rows:
        warm = [r for r in row["warm"] if "total_s" in r]
        if not warm:
            continue
        fetch = statistics.median(r["fetch_s"] for r in warm)
        run = statistics.median(r["run_s"] for r in warm)
        publish = statistics.median(r["total_s"] - r["fetch_s"] - r["run_s"] for r in warm)
        size = statistics.median(r["result_mb"] for r in warm)
        queued = statistics.median(r["to_started_s"] for r in warm)
        print(
            f"{row['name']:<48}{queued:>12.2f}{fetch:>8.2f}{run:>8.2f}{publish:>9.2f}"
            f"{size:>7.1f} MB"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "rows": rows}
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
