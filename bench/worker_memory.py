"""Memory of ``jobrunner work --concurrency 2`` with idle children, per process.

    python bench/worker_memory.py                          # this interpreter's jobrunner
    python bench/worker_memory.py --python .venv-core/bin/python
    python bench/worker_memory.py --job                    # also run one echo job, count its events

Starts a beanstalkd on a free loopback port and ``PYTHON -m jobrunner work
--concurrency 2`` against it (JSON logs at ``info``), waits until both
children have reported ready and the processes are idle (waiting on an
empty tube), and prints the RSS of the worker and each child and the total.
Where the kernel has ``/proc/PID/smaps_rollup`` it prints the PSS too
(proportional set size: pages shared between processes counted once, split
between them). The children are started with ``exec`` (``python -m
jobrunner._worker.child_main``), not forked from the worker, so they share
little beyond the interpreter's file-backed pages and RSS is an honest
figure; the PSS column shows how much of it is shared.

``--job`` then serves a small JSON input over HTTP on loopback, puts one
``echo`` job, waits for its result document and counts the events at
``info`` and above that the worker and its child logged for it (the target
is one per state change: ``job_deleted`` for a successful job), and measures
memory again (a child after its first job).

``--python`` points at another virtualenv's interpreter (for example one
holding only ``beanstalk-jobrunner[worker]``); this script itself needs only
the standard library, so it runs under any Python 3.10+.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def put_job(port: int, tube: str, body: bytes) -> None:
    """Put one job with beanstalkd's text protocol (``use``, then ``put``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        sock.sendall(f"use {tube}\r\n".encode())
        reader.readline()
        sock.sendall(b"put 1024 0 60 %d\r\n%s\r\n" % (len(body), body))
        reply = reader.readline()
        if not reply.startswith(b"INSERTED"):
            raise SystemExit(f"beanstalkd refused the job: {reply!r}")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return sorted(found)


def memory(pid: int) -> dict[str, int]:
    """RSS (and PSS where smaps_rollup exists) of one process, in bytes."""
    with open(f"/proc/{pid}/statm") as fh:
        result = {"rss": int(fh.read().split()[1]) * PAGE}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("Pss", "Pss_Anon", "Pss_File"):
                    result[key.lower()] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return result


def mappings(pid: int) -> dict[str, int]:
    """RSS in bytes by kind of mapping: Python objects (anonymous, heap), libraries, ..."""
    kinds: dict[str, int] = {}
    kind = "anonymous"
    with open(f"/proc/{pid}/smaps") as fh:
        for line in fh:
            parts = line.split()
            if not parts:
                continue
            if not parts[0].endswith(":"):
                path = parts[5] if len(parts) > 5 else ""
                if not path or path in ("[heap]", "[stack]") or path.startswith("[anon"):
                    kind = "anonymous (objects, heap, stacks)"
                elif "libpython" in path or "/bin/python" in path:
                    kind = "the interpreter (binary, libpython)"
                elif "libcrypto" in path or "libssl" in path:
                    kind = "OpenSSL (libcrypto, libssl)"
                elif "lib-dynload" in path or "site-packages" in path:
                    kind = "extension modules (.so)"
                else:
                    kind = "other files (libc, locale, ...)"
            elif parts[0] == "Rss:":
                kinds[kind] = kinds.get(kind, 0) + int(parts[1]) * 1024
    return kinds


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


class LogReader(threading.Thread):
    """Collects the worker's (and its children's) JSON log lines from its stderr."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.all: list[dict[str, Any]] = []
        self.other: list[str] = []

    def run(self) -> None:
        for raw in self.stream:
            line = raw.decode(errors="replace").strip()
            try:
                event = json.loads(line)
            except ValueError:
                self.other.append(line)
                continue
            if isinstance(event, dict):
                self.all.append(event)
                self.events.put(event)

    def wait_for(self, name: str, count: int, timeout: float) -> None:
        deadline, seen = time.monotonic() + timeout, 0
        while seen < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"no {count} x {name} within {timeout:.0f} s: {self.other[-5:]}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event.get("event") == name:
                seen += 1


def settle(pids: list[int], seconds: float, timeout: float = 30.0) -> None:
    """Wait until the processes used (almost) no CPU for ``seconds``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_ticks(pids)
        time.sleep(seconds)
        if cpu_ticks(pids) - before <= 2:
            return


def report(title: str, worker: int, pids: list[int], detail: bool = False) -> dict[str, Any]:
    rows = [("worker", worker, memory(worker))]
    rows += [(f"child {i + 1}", pid, memory(pid)) for i, pid in enumerate(pids)]
    has_pss = all("pss" in row[2] for row in rows)
    mb = 2**20
    print(f"\n{title}")
    head = f"  {'process':<10} {'pid':>8} {'RSS':>9}"
    print(head + (f" {'PSS':>9} {'PSS anon':>9}" if has_pss else ""))
    for name, pid, mem in rows:
        line = f"  {name:<10} {pid:>8} {mem['rss'] / mb:>6.1f} MB"
        if has_pss:
            line += f" {mem['pss'] / mb:>6.1f} MB {mem['pss_anon'] / mb:>6.1f} MB"
        print(line)
    total = {key: sum(row[2].get(key, 0) for row in rows) for key in ("rss", "pss", "pss_anon")}
    line = f"  {'total':<10} {'':>8} {total['rss'] / mb:>6.1f} MB"
    if has_pss:
        line += f" {total['pss'] / mb:>6.1f} MB {total['pss_anon'] / mb:>6.1f} MB"
    print(line)
    if not has_pss:
        print("  (no /proc/PID/smaps_rollup on this kernel: RSS only)")
    if detail:
        for name, pid, _mem in rows:
            kinds = mappings(pid)
            print(
                f"  {name}: "
                + ", ".join(
                    f"{kind} {size / mb:.1f}"
                    for kind, size in sorted(kinds.items(), key=lambda kv: -kv[1])
                )
            )
    return {
        "processes": [{"name": name, "pid": pid, **mem} for name, pid, mem in rows],
        "total": total,
    }


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter whose jobrunner runs"
    )
    parser.add_argument("--job", action="store_true", help="then run one echo job")
    parser.add_argument("--settle", type=float, default=1.0, help="idle seconds before measuring")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--detail", action="store_true", help="RSS of each process by kind of mapping (MB)"
    )
    args = parser.parse_args(argv)
    # Absolute, but not resolved: a virtualenv's python is a symlink that must stay one.
    args.python = os.path.abspath(shutil.which(args.python) or args.python)
    beanstalkd = shutil.which("beanstalkd") or "/usr/bin/beanstalkd"
    procs: list[subprocess.Popen[bytes]] = []
    httpd: http.server.ThreadingHTTPServer | None = None
    results: dict[str, Any] = {"python": args.python}
    with tempfile.TemporaryDirectory(prefix="worker-memory-") as tmp:
        work = Path(tmp)
        try:
            bs_port = free_port()
            procs.append(
                subprocess.Popen(
                    [beanstalkd, "-l", "127.0.0.1", "-p", str(bs_port)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait_for_port(bs_port)
            (work / "results").mkdir()
            (work / "inputs").mkdir()
            (work / "inputs" / "in.json").write_text('{"meter": 17, "readings": [[0, 1.5]]}')
            http_port = free_port()
            base_url = f"http://127.0.0.1:{http_port}/results/"
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            for name in list(env):
                if name.startswith("JOBRUNNER_"):
                    del env[name]
            worker = subprocess.Popen(
                [
                    args.python,
                    "-m",
                    "jobrunner",
                    "work",
                    f"--beanstalk=127.0.0.1:{bs_port}",
                    "--tube=memory",
                    "--concurrency=2",
                    f"--results-dir={work / 'results'}",
                    f"--base-url={base_url}",
                    "--allow-host=127.0.0.1",
                    "--log-format=json",
                    "--log-level=info",
                ],
                env=env,
                cwd=work,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            procs.append(worker)
            logs = LogReader(worker.stderr)
            logs.start()
            logs.wait_for("child_started", 2, timeout=60)
            pids = children_of(worker.pid)
            if len(pids) != 2:
                raise SystemExit(f"expected 2 children of the worker, found {pids}")
            settle([worker.pid, *pids], args.settle)
            version = subprocess.run(
                [args.python, "-c", "import sys; print(sys.version.split()[0])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            print(f"python {version} ({args.python})")
            results["idle"] = report("worker + 2 idle children", worker.pid, pids, args.detail)
            if args.job:
                results["job"] = run_job(args, work, bs_port, http_port, base_url, logs)
                settle([worker.pid, *pids], args.settle)
                results["after_job"] = report(
                    "after one echo job", worker.pid, children_of(worker.pid), args.detail
                )
            worker.terminate()
            worker.wait(timeout=30)
        finally:
            if httpd is not None:
                httpd.shutdown()
            for proc in reversed(procs):
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def run_job(
    args: argparse.Namespace,
    work: Path,
    bs_port: int,
    http_port: int,
    base_url: str,
    logs: LogReader,
) -> dict[str, Any]:
    """Run one echo job; return the events at info and above logged for it."""
    handler = functools.partial(_QuietHandler, directory=str(work))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        job_id = str(uuid.uuid4())
        before = len(logs.all)
        body = json.dumps(
            {
                "v": 1,
                "id": job_id,
                "type": "echo",
                "input": f"http://127.0.0.1:{http_port}/inputs/in.json",
                "result": f"{base_url}{job_id}.json",
                "params": {"n": 1},
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        ).encode()
        put_job(bs_port, "memory", body)
        logs.wait_for("job_deleted", 1, timeout=60)
        time.sleep(0.5)  # anything logged after the delete
        result = json.loads((work / "results" / f"{job_id}.json").read_text())
    finally:
        httpd.shutdown()
        httpd.server_close()
    events = logs.all[before:]
    info = [e for e in events if e.get("level") in ("info", "warning", "error", "critical")]
    print(f"\none echo job ({result['status']}): {len(info)} event(s) at info or above:")
    for event in info:
        fields = {k: v for k, v in event.items() if k not in ("event", "timestamp", "level")}
        print(f"  {event.get('level')}: {event.get('event')} {json.dumps(fields, default=str)}")
    return {"status": result["status"], "info_events": info}


if __name__ == "__main__":
    sys.exit(main())
