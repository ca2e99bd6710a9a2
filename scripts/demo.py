"""The main job end to end; run through scripts/demo.sh (which sets everything up)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO

from jobrunner.testing import free_port, wait_for_port

JOBRUNNER = [sys.executable, "-m", "jobrunner"]


def fetch_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


def demo_input(inputs: Path) -> tuple[str, str, dict]:
    """The job type, input file name and params of the demo job.

    A real prediction on real smart-meter-like demand data when the prediction
    plugin and its data set are installed; the built-in echo job otherwise.
    """
    try:
        from jobrunner_prediction.sample import taylor_readings  # type: ignore[import-not-found]

        series = taylor_readings()
    except ImportError:  # the plugin or its data set (pmdarima) is not installed
        print("demo: the prediction plugin or its data set is missing; running echo instead")
        (inputs / "hello.json").write_text(json.dumps({"hello": "world"}))
        return "echo", "hello.json", {"demo": True}
    (inputs / "demand.json").write_text(json.dumps(series))
    return "prediction", "demand.json", {"horizon": "24h", "method": "auto"}


def buried_jobs(port: int) -> int:
    """How many jobs beanstalkd holds buried (0 when it cannot be asked)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            reader = sock.makefile("rb")
            sock.sendall(b"stats\r\n")
            header = reader.readline().split()
            body = reader.read(int(header[1])) if header[:1] == [b"OK"] else b""
    except (OSError, ValueError, IndexError):
        return 0
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("current-jobs-buried:"):
            return int(line.split(":")[1])
    return 0


def name_of(proc: subprocess.Popen[bytes]) -> str:
    """``beanstalkd``, ``jobrunner serve`` or ``jobrunner work``."""
    args = [str(a) for a in proc.args]  # type: ignore[union-attr,unused-ignore]
    return f"jobrunner {args[3]}" if args[:3] == JOBRUNNER else Path(args[0]).name


def fail(reason: str, work: Path, log: IO[bytes]) -> int:
    """Say why the demo failed, show the services' last log lines, keep their directory."""
    log.flush()
    path = work / "services.log"
    tail = path.read_text(errors="replace").splitlines()[-25:]
    print(f"demo: {reason}; the services' last log lines:")
    for line in tail:
        print("  " + line)
    (work / "KEEP").touch()
    print(f"demo: the whole log stays in {path}")
    return 1


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="jobrunner-demo-"))
    results, inputs = work / "results", work / "inputs"
    results.mkdir()
    inputs.mkdir()
    bs_port, results_port, inputs_port = free_port(), free_port(), free_port()
    beanstalk = f"127.0.0.1:{bs_port}"
    base_url = f"http://127.0.0.1:{results_port}/"
    procs: list[subprocess.Popen[bytes]] = []
    log = open(work / "services.log", "wb")  # noqa: SIM115 - closed in finally

    def start(cmd: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        procs.append(proc)
        return proc

    try:
        beanstalkd = shutil.which("beanstalkd") or "/usr/bin/beanstalkd"
        (work / "binlog").mkdir()
        start([beanstalkd, "-l", "127.0.0.1", "-p", str(bs_port), "-b", str(work / "binlog")])
        wait_for_port(bs_port)
        start(
            [
                *JOBRUNNER,
                "serve",
                "--results-dir",
                str(results),
                "--port",
                str(results_port),
                "--cors-origin",
                "*",
            ]
        )
        start([*JOBRUNNER, "serve", "--results-dir", str(inputs), "--port", str(inputs_port)])
        wait_for_port(results_port)
        wait_for_port(inputs_port)
        job_type, input_name, params = demo_input(inputs)
        start(
            [
                *JOBRUNNER,
                "work",
                "--beanstalk",
                beanstalk,
                "--results-dir",
                str(results),
                "--base-url",
                base_url,
                "--allow-host",
                "127.0.0.1",
                "--concurrency",
                "2",
            ]
        )
        result_url = base_url + "demo/result.json"
        submit = subprocess.run(
            [
                *JOBRUNNER,
                "submit",
                "--beanstalk",
                beanstalk,
                "--type",
                job_type,
                "--input",
                f"http://127.0.0.1:{inputs_port}/{input_name}",
                "--result",
                result_url,
                "--params",
                json.dumps(params),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        print(f"submitted {job_type} job {submit.stdout.strip()}")
        print(f"result URL: {result_url}")
        deadline = time.monotonic() + 120
        doc = None
        while time.monotonic() < deadline:
            doc = fetch_json(result_url)
            if doc and doc.get("status") in ("done", "failed"):
                break
            if doc:
                print(f"  status {doc['status']} progress {doc.get('progress')}")
            # A job buried without a failed document (or a dead worker) ends the wait at once.
            stopped = [name_of(p) for p in procs if p.poll() is not None]
            if stopped or buried_jobs(bs_port):
                what = f"{', '.join(stopped)} stopped" if stopped else "the job was buried"
                return fail(f"{what} before a final result", work, log)
            time.sleep(0.5)
        if not doc or doc.get("status") not in ("done", "failed"):
            return fail("no final result within 120 s", work, log)
        summary = {
            k: doc[k]
            for k in ("id", "type", "status", "timestamp", "attempt", "worker", "error")
            if doc.get(k) is not None
        }
        print("result document:", json.dumps(summary, indent=2))
        data = doc.get("data") or {}
        if job_type == "prediction" and isinstance(data, dict):
            forecast = data.get("forecast") or []
            print(
                f"forecast: {len(forecast)} points with method {data.get('method')}, "
                f"back-test MAPE {data.get('backtest', {}).get('mape', float('nan')):.2f} %"
            )
            for ts, value in forecast[:: max(1, len(forecast) // 8)]:
                print(f"  {time.strftime('%Y-%m-%d %H:%M', time.gmtime(ts))} UTC  {value:10.1f}")
        else:
            print("data:", json.dumps(data)[:400])
        if doc["status"] != "done":
            return fail("the job failed", work, log)
        return 0
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        if os.environ.get("KEEP_DEMO") != "1" and not (work / "KEEP").exists():
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
