"""Results-server throughput: ``jobrunner serve`` against nginx on the same directory.

    python bench/serve.py            # 3 rounds of 5 s per server and case
    python bench/serve.py --quick    # 1 round of 3 s

Both servers serve one results directory on loopback: nginx with
``examples/nginx/results.conf`` (one worker process, so both use one core),
``jobrunner serve`` with its defaults. wrk keeps its connections alive and
asks for the same result document, as browsers polling a running job do:

* ``GET``: the whole document (4 KiB of JSON), answered 200;
* ``revalidate``: ``If-None-Match`` with the server's current ``ETag``,
  answered 304 without a body — what a poll costs while the document is
  unchanged.

Rounds alternate between the servers, so a busy machine slows both alike;
the table shows the median requests per second and the ratio
``jobrunner serve / nginx``, measured side by side in this run. Writes
``bench/results/serve.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from jobrunner.testing import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
NGINX_EXAMPLE = ROOT / "examples" / "nginx" / "results.conf"
DOC_PATH = "/bench/job-1.json"
CONNECTIONS = 32


def document() -> bytes:
    """A result document of about 4 KiB, like a small forecast."""
    series = [
        {"t": f"2026-01-01T{h:02d}:{m:02d}:00Z", "kw": round(h * 0.37 + m / 60, 3)}
        for h in range(24)
        for m in (0, 30)
    ]
    doc = {
        "v": 1,
        "id": "job-1",
        "type": "echo",
        "status": "done",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {"series": series[:80]},
    }
    return json.dumps(doc).encode()


def nginx_config(prefix: Path, results: Path, port: int) -> Path:
    """nginx.conf for the bench: the example's server block, one worker, logs in ``prefix``."""
    server = NGINX_EXAMPLE.read_text()
    server = re.sub(r"(?m)^(\s*)listen\s+8080;", rf"\1listen 127.0.0.1:{port};", server)
    server = re.sub(r"(?m)^(\s*)root\s+/srv/jobrunner/results;", rf"\1root {results};", server)
    (prefix / "results.conf").write_text(server)
    temp = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind}_temp;"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\nerror_log {prefix}/error.log;\npid {prefix}/nginx.pid;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n{temp}\n    include {prefix}/results.conf;\n}}\n"
    )
    return conf


def wrk(wrk_bin: str, url: str, seconds: float, headers: dict[str, str]) -> float:
    """Requests per second wrk measured against ``url`` (keep-alive connections)."""
    cmd = [wrk_bin, "-t2", f"-c{CONNECTIONS}", f"-d{seconds:g}s", url]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if found is None or ("Non-2xx" in done.stdout and not headers):
        raise RuntimeError(f"wrk failed: {done.stdout}{done.stderr}")
    return float(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 3 s")
    args = parser.parse_args(argv)
    rounds, seconds = (1, 3.0) if args.quick else (3, 5.0)
    wrk_bin = shutil.which("wrk")
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if wrk_bin is None or nginx is None:
        print(
            "bench/serve.py needs wrk and nginx (apt-get install wrk nginx-light)", file=sys.stderr
        )
        return 2
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="jobrunner-bench-serve-") as tmp:
        work = Path(tmp)
        results = work / "results"
        (results / "bench").mkdir(parents=True)
        (results / DOC_PATH.lstrip("/")).write_bytes(document())
        log = (work / "servers.log").open("wb")
        try:
            ports = {"jobrunner serve": free_port(), "nginx": free_port()}
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "jobrunner",
                        "serve",
                        "--results-dir",
                        str(results),
                        "--port",
                        str(ports["jobrunner serve"]),
                        "--log-level",
                        "warning",
                    ],
                    stdout=log,
                    stderr=log,
                )
            )
            prefix = work / "nginx"
            prefix.mkdir()
            conf = nginx_config(prefix, results, ports["nginx"])
            procs.append(
                subprocess.Popen(
                    [
                        nginx,
                        "-p",
                        f"{prefix}/",
                        "-e",
                        f"{prefix}/error.log",
                        "-c",
                        str(conf),
                        "-g",
                        "daemon off;",
                    ],
                    stdout=log,
                    stderr=log,
                )
            )
            for port in ports.values():
                wait_for_port(port, timeout=20)
            etags = {}
            for name, port in ports.items():
                r = httpx.get(f"http://127.0.0.1:{port}{DOC_PATH}", timeout=5)
                r.raise_for_status()
                etags[name] = r.headers["etag"]
                again = httpx.get(
                    f"http://127.0.0.1:{port}{DOC_PATH}",
                    timeout=5,
                    headers={"If-None-Match": etags[name]},
                )
                assert again.status_code == 304, (name, again.status_code)
            cases = {"GET": False, "revalidate (304)": True}
            rates: dict[str, dict[str, list[float]]] = {
                case: {name: [] for name in ports} for case in cases
            }
            for _ in range(rounds):
                for case, conditional in cases.items():
                    for name, port in ports.items():
                        headers = {"If-None-Match": etags[name]} if conditional else {}
                        url = f"http://127.0.0.1:{port}{DOC_PATH}"
                        rates[case][name].append(wrk(wrk_bin, url, seconds, headers))
                        time.sleep(0.2)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            log.close()
    table = {}
    print(
        f"{'case':<18} {'jobrunner serve':>16} {'nginx':>10} {'ratio':>7}   "
        f"(requests/s, median of {rounds} x {seconds:g} s, {CONNECTIONS} keep-alive connections)"
    )
    for case, by_server in rates.items():
        ours = statistics.median(by_server["jobrunner serve"])
        theirs = statistics.median(by_server["nginx"])
        table[case] = {"jobrunner_serve": ours, "nginx": theirs, "ratio": ours / theirs}
        print(f"{case:<18} {ours:>16.0f} {theirs:>10.0f} {ours / theirs:>7.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve.json").write_text(
        json.dumps(
            {
                "rounds": rounds,
                "seconds": seconds,
                "connections": CONNECTIONS,
                "cases": table,
                "samples": rates,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
