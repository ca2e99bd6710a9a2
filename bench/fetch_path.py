"""The input fetch path alone: CPU per fetch of a small JSON input, side by side in one run.

    python bench/fetch_path.py             # about half a minute
    python bench/fetch_path.py --rounds 9 --fetches 3000

Starts an input server on loopback (nginx when installed, else ``jobrunner
serve``, as ``bench/run.py`` does) and fetches its small JSON input over one
kept-alive connection, again and again, with:

* ``http.client``: the standard library's client, a persistent
  ``HTTPConnection`` and ``json.loads`` (no policy, no limits): the floor;
* ``httpx.Client().get``: what the same-work baseline of ``bench/run.py``
  does;
* ``previous Fetcher``: jobrunner's fetcher before its own HTTP/1.1 client
  (``httpx.Client`` over a pinned httpcore transport), loaded from git
  history when this is a git checkout (``--previous REV`` picks another);
* ``Fetcher``: jobrunner's fetcher as installed — URL parsing, the input
  policy, its HTTP/1.1 client, size and time limits, strict JSON, SHA-256.

Rounds alternate between the clients so that the load of a shared machine
falls on all of them alike. Printed: CPU µs per fetch of this process (the
server's CPU is not counted) and wall µs per fetch, medians over the rounds,
and the ratio of CPU to ``httpx.Client().get``.

Then, in fresh interpreters: the modules and the resident memory a child
process pays for one ``http`` fetch (is ``ssl`` or ``httpx`` imported?).
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FETCH_PY = "jobrunner/fetch.py"
sys.path.insert(0, str(ROOT / "bench"))

import run  # noqa: E402  (bench/run.py: the input server, as the main benchmark starts it)

from jobrunner.config import Config  # noqa: E402
from jobrunner.fetch import Fetcher  # noqa: E402


def previous_source(rev: str | None) -> str | None:
    """``jobrunner/fetch.py`` at ``rev`` (default: its last version built on httpx),
    or None outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    try:
        if rev is None:
            removed = git("log", "-n1", "--format=%H", "-S", "_PinnedTransport", "--", FETCH_PY)
            if not removed.strip():
                return None
            rev = removed.strip() + "^"
        source = git("show", f"{rev}:{FETCH_PY}")
    except (OSError, subprocess.SubprocessError):
        return None
    return source if "import httpx" in source else None


def clients(url: str, port: int, previous: Path | None) -> dict[str, Callable[[], object]]:
    """The fetch functions to compare, each already warm (one connection open)."""
    import http.client

    import httpx

    out: dict[str, Callable[[], object]] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port)
    path = url.split(str(port), 1)[1]

    def stdlib() -> object:
        conn.request("GET", path, headers={"Accept-Encoding": "gzip, deflate"})
        response = conn.getresponse()
        return json.loads(response.read())

    out["http.client (floor)"] = stdlib
    client = httpx.Client()
    out["httpx.Client().get"] = lambda: client.get(url).json()
    config = Config(allow_host=("127.0.0.1",))
    if previous is not None:
        sys.path.insert(0, str(previous))
        old = importlib.import_module("previous_fetch").Fetcher(config)
        out["previous Fetcher (httpx)"] = lambda: old.fetch(url).value
    new = Fetcher(config)
    out["Fetcher"] = lambda: new.fetch(url).value
    for fetch in out.values():
        for _ in range(200):
            fetch()
    return out


def measure(
    fns: dict[str, Callable[[], object]], rounds: int, n: int
) -> dict[str, tuple[float, float]]:
    """Median CPU and wall µs per fetch of each client, rounds interleaved."""
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    wall: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fetch in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                fetch()
            cpu[name].append((time.process_time() - c0) / n * 1e6)
            wall[name].append((time.perf_counter() - w0) / n * 1e6)
    return {name: (statistics.median(cpu[name]), statistics.median(wall[name])) for name in fns}


_IMPORTS = """
import os, sys, importlib
sys.path[:0] = {path!r}
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
import jobrunner, jobrunner.config
base, before = rss(), set(sys.modules)
config = jobrunner.config.Config(allow_host=["127.0.0.1"])
importlib.import_module({module!r}).Fetcher(config).fetch({url!r})
added = set(sys.modules) - before
print(rss() - base, len(added), "ssl" in added, "httpx" in added, "ssl" in before)
"""


def child_cost(url: str, module: str, path: list[str]) -> list[str] | None:
    """What one fetch adds to a fresh interpreter that has imported jobrunner: RSS,
    modules, whether ssl and httpx are among them, and whether ssl was loaded before."""
    code = _IMPORTS.format(path=path, module=module, url=url)
    try:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        ).stdout.split()
    except subprocess.SubprocessError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fetches", type=int, default=2000, help="fetches per client per round")
    parser.add_argument("--previous", metavar="REV", help="git revision of the previous fetcher")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="jobrunner-fetch-bench-"))
    previous: Path | None = None
    source = previous_source(args.previous)
    if source is not None:
        previous = work / "previous"
        previous.mkdir()
        (previous / "previous_fetch.py").write_text(source)
    services = run.Services(work)
    try:
        url = services.input_url
        print(f"input server: {services.input_server}, {url}")
        fns = clients(url, services.input_port, previous)
        figures = measure(fns, args.rounds, args.fetches)
        base = figures["httpx.Client().get"][0]
        print(f"\n{'client':28} {'CPU µs/fetch':>13} {'wall µs/fetch':>14} {'CPU vs httpx':>13}")
        for name, (cpu, wall) in figures.items():
            print(f"{name:28} {cpu:13.1f} {wall:14.1f} {cpu / base:12.2f}x")
        print("\nwhat the fetch path adds to a fresh interpreter after `import jobrunner`:")
        rows = [("Fetcher", "jobrunner.fetch", [])]
        if previous is not None:
            rows.insert(0, ("previous Fetcher (httpx)", "previous_fetch", [str(previous)]))
        for label, module, path in rows:
            cost = child_cost(url, module, path)
            if cost is None:
                print(f"  {label:28} (failed)")
                continue
            print(
                f"  {label:28} RSS +{int(cost[0]) / 2**20:4.1f} MiB, {cost[1]:>3} modules, "
                f"imports ssl: {_yes(cost[2])}, httpx: {_yes(cost[3])}"
            )
        if cost is not None and cost[4] == "True":
            print("  (ssl is already loaded by `import jobrunner` here, by another import)")
    finally:
        services.stop()
    return 0


def _yes(flag: str) -> str:
    return "yes" if flag == "True" else "no"


if __name__ == "__main__":
    sys.exit(main())
