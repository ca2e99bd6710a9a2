"""Queue inspection and repair for operators.

Commands: ``stats``, ``peek``, ``buried``, ``kick``, ``delete``, ``purge``,
``pause``, ``resume``. Each works across every configured beanstalkd server
and on the configured tubes only (``--tube``, ``default`` when not given).

A job is named by its job id (the ``id`` of its document, looked up among
the buried jobs of the tubes) or by its beanstalkd id; beanstalkd ids are per
server, so with several servers name one as ``SERVER/ID`` (e.g.
``127.0.0.1:11300/42``). Exit codes: 0 done, 1 a server was unreachable or
the job was not found, 2 bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from jobrunner.config import Config, load_config, settings
from jobrunner.errors import ConfigError, JobNotFound, QueueError, ResultRefused
from jobrunner.queue import Connection, Reserved
from jobrunner.resultsdir import ResultsDir, relative_result_path

__all__ = [
    "Located",
    "Servers",
    "add_commands",
    "buried_jobs",
    "failure_reason",
    "locate",
    "tube_table",
]

#: Shown for a buried job without a readable ``failed`` document (result URL refused,
#: blocked, or not served over HTTP): the worker logged why.
NO_REASON = "no failed document at its result URL; the worker's job_failed event says why"
#: Shown instead when the result URLs were not looked at (no ``--base-url``).
NOT_LOOKED_UP = (
    "not looked up: give --base-url (and --results-dir) to read failed documents; "
    "the worker's job_failed event says why"
)

_TUBE_COLUMNS = (
    ("current-jobs-ready", "ready"),
    ("current-jobs-reserved", "reserved"),
    ("current-jobs-delayed", "delayed"),
    ("current-jobs-buried", "buried"),
    ("current-watching", "watchers"),
    ("total-jobs", "total"),
)


def add_commands(sub: Any, add_settings: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register the queue commands on the CLI's sub-parsers."""
    stats = sub.add_parser("stats", help="server totals and a per-tube table")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="refresh every SECONDS (2 by default) until Ctrl-C",
    )
    stats.add_argument(
        "--all-tubes",
        action="store_true",
        help="every tube of the server, not only the configured ones",
    )
    stats.set_defaults(handler=cmd_stats)

    peek = sub.add_parser("peek", help="show the next ready, delayed or buried job, or a job")
    peek.add_argument(
        "what",
        nargs="?",
        default="ready",
        help="ready, delayed, buried, or a job id (SERVER/ID with several servers)",
    )
    peek.set_defaults(handler=cmd_peek)

    buried = sub.add_parser("buried", help="list buried jobs with their type and reason")
    buried.add_argument("--json", action="store_true", help="print JSON")
    buried.add_argument("--limit", type=int, default=100, help="at most this many per tube")
    buried.set_defaults(handler=cmd_buried)

    kick = sub.add_parser("kick", help="re-queue buried jobs: all, N, or one by id")
    kick.add_argument("count", nargs="?", default="all", help="'all' (default) or a number")
    kick.add_argument(
        "--id",
        dest="job_id",
        metavar="ID",
        help="kick one job: its job id, or its beanstalkd id (SERVER/ID with several servers)",
    )
    kick.set_defaults(handler=cmd_kick)

    delete = sub.add_parser("delete", help="delete a buried job by job id or beanstalkd id")
    delete.add_argument(
        "job_id",
        metavar="ID",
        help="the job id, or the beanstalkd id (SERVER/ID with several servers)",
    )
    delete.add_argument(
        "--force", action="store_true", help="also delete a job that is ready or delayed"
    )
    delete.set_defaults(handler=cmd_delete)

    purge = sub.add_parser("purge", help="delete every job of the tubes (asks first)")
    purge.add_argument(
        "--state",
        choices=("buried", "ready", "delayed", "all"),
        default="all",
        help="which jobs: buried, ready, delayed or all (default)",
    )
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(handler=cmd_purge)

    pause = sub.add_parser("pause", help="stop workers reserving from the tubes for a while")
    pause.add_argument(
        "--seconds",
        type=int,
        default=3600,
        help="how long the tubes stay paused (default 3600; 'resume' ends it early)",
    )
    pause.set_defaults(handler=cmd_pause)

    resume = sub.add_parser("resume", help="end a pause of the tubes")
    resume.set_defaults(handler=cmd_resume)

    for parser in (stats, peek, buried, kick, delete, purge, pause, resume):
        add_settings(parser)


def _config(args: argparse.Namespace) -> Config:
    flags = {s.name: getattr(args, s.name, None) for s in settings()}
    return load_config(flags=flags, config_file=args.config)


def _connections(config: Config) -> list[Connection]:
    return [Connection(address) for address in config.beanstalk]


class Servers:
    """The configured servers; remembers which could not be reached (the exit code says so).

    Args:
        config: the servers to connect to.
        conns: open connections to use instead (the dashboard keeps its own).
    """

    def __init__(self, config: Config, conns: list[Connection] | None = None) -> None:
        self.conns = conns if conns is not None else _connections(config)
        self.down: list[str] = []

    def reachable(self) -> Iterator[Connection]:
        """The connections whose server answers; a warning on stderr for each other."""
        for conn in self.conns:
            try:
                conn.stats()
            except QueueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                self.down.append(conn.address)
                continue
            yield conn

    def exit_code(self) -> int:
        """1 when a server could not be reached (what was printed is incomplete), else 0."""
        if self.down:
            print(
                f"error: {len(self.down)} of {len(self.conns)} server(s) unreachable "
                f"({', '.join(self.down)}): the answer above is incomplete",
                file=sys.stderr,
            )
            return 1
        return 0


def tube_table(conn: Connection, tubes: list[str] | None) -> list[dict[str, Any]]:
    """One row per tube of one server: job counts by state, watchers, total, pause left.

    ``watchers`` counts the connections watching the tube other than this
    one (a fresh connection watches ``default``): each worker slot holds one,
    and so does any other client that watches the tube.
    """
    names = tubes if tubes is not None else sorted(conn.tubes())
    rows = []
    for tube in names:
        try:
            stats = conn.stats_tube(tube)
        except JobNotFound:  # the tube does not exist (yet): nothing in it
            stats = {}
        row: dict[str, Any] = {"server": conn.address, "tube": tube}
        row.update({label: int(stats.get(key, 0)) for key, label in _TUBE_COLUMNS})
        if tube == "default" and stats:
            row["watchers"] = max(0, row["watchers"] - 1)  # our own connection
        row["paused"] = int(stats.get("pause-time-left", 0))
        rows.append(row)
    return rows


def _stats_once(config: Config, conns: list[Connection], all_tubes: bool) -> dict[str, Any]:
    servers, rows = [], []
    for conn in conns:
        try:
            stats = conn.stats()
            rows += tube_table(conn, None if all_tubes else list(config.tube))
        except QueueError as exc:
            servers.append({"server": conn.address, "up": False, "error": str(exc)})
            continue
        servers.append(
            {
                "server": conn.address,
                "up": True,
                **{
                    key: stats.get(key)
                    for key in (
                        "version",
                        "uptime",
                        "current-connections",
                        "current-workers",
                        "current-waiting",
                        "current-jobs-ready",
                        "current-jobs-reserved",
                        "current-jobs-delayed",
                        "current-jobs-buried",
                        "total-jobs",
                        "binlog-current-index",
                    )
                },
            }
        )
    return {"servers": servers, "tubes": rows}


def _print_stats(report: dict[str, Any]) -> None:
    for server in report["servers"]:
        if not server["up"]:
            print(f"{server['server']}: DOWN ({server['error']})")
            continue
        print(
            f"{server['server']}: beanstalkd {server.get('version')}, up "
            f"{server.get('uptime')} s, {server.get('current-connections')} connections "
            f"({server.get('current-waiting')} waiting to reserve), "
            f"{server.get('total-jobs')} jobs put"
        )
    header = ["server", "tube"] + [label for _, label in _TUBE_COLUMNS] + ["paused"]
    widths = [
        max(len(h), *(len(str(r[h])) for r in report["tubes"])) if report["tubes"] else len(h)
        for h in header
    ]
    print()
    print(
        "  ".join(
            h.ljust(w) if i < 2 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    for row in report["tubes"]:
        print(
            "  ".join(
                str(row[h]).ljust(w) if i < 2 else str(row[h]).rjust(w)
                for i, (h, w) in enumerate(zip(header, widths, strict=True))
            )
        )


def cmd_stats(args: argparse.Namespace) -> int:
    """``jobrunner stats``: server totals and the per-tube table across servers."""
    config = _config(args)
    conns = _connections(config)
    while True:
        report = _stats_once(config, conns, args.all_tubes)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            if args.watch:
                print("\x1b[H\x1b[2J", end="")  # clear the screen, like top
                print(
                    time.strftime("%Y-%m-%d %H:%M:%S"), f"(every {args.watch:g} s, Ctrl-C to stop)"
                )
            _print_stats(report)
        if not args.watch:
            down = [s["server"] for s in report["servers"] if not s["up"]]
            if down:
                print(f"error: server(s) unreachable: {', '.join(down)}", file=sys.stderr)
            return 1 if down else 0
        sys.stdout.flush()
        time.sleep(args.watch)


@dataclasses.dataclass
class Located:
    """One job found by :func:`locate`: where it is and what it is."""

    conn: Connection
    id: int  # the beanstalkd id, on conn's server
    tube: str
    state: str
    job_id: str | None
    type: str | None

    def describe(self) -> str:
        """``job ID (type T, tube T, SERVER/N)`` for messages."""
        return (
            f"job {self.job_id or '(no id)'} (type {self.type or '?'}, tube {self.tube}, "
            f"{self.conn.address}/{self.id}, {self.state})"
        )


def _located(conn: Connection, number: int, stats: dict[str, Any]) -> Located:
    try:
        body = json.loads(conn.peek(number).body)
    except (ValueError, JobNotFound):
        body = None
    doc = body if isinstance(body, dict) else {}
    job_id, job_type = doc.get("id"), doc.get("type")
    return Located(
        conn=conn,
        id=number,
        tube=str(stats.get("tube")),
        state=str(stats.get("state")),
        job_id=job_id if isinstance(job_id, str) else None,
        type=job_type if isinstance(job_type, str) else None,
    )


def locate(config: Config, text: str, servers: Servers | None = None) -> Located:
    """Find a job of the configured tubes by beanstalkd id (``N``, ``SERVER/N``) or job id.

    A number is tried as a beanstalkd id first; what is not found that way is
    looked up as the job id among the buried jobs of the tubes.

    Raises:
        JobNotFound: no such job in the configured tubes (the message says
            when the beanstalkd id exists in another tube).
        ConfigError: the beanstalkd id names jobs on several servers.
    """
    servers = servers or Servers(config)
    tubes = list(config.tube)
    server, sep, number = text.rpartition("/")
    elsewhere: list[str] = []
    if number.isdigit() and int(number) < 2**63 and (sep or text.isdigit()):
        conns = [Connection(server)] if sep else servers.conns
        found: list[Located] = []
        for conn in conns:
            try:
                stats = conn.stats_job(int(number))
            except JobNotFound:
                continue
            except QueueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                servers.down.append(conn.address)
                continue
            if stats.get("tube") in tubes:
                found.append(_located(conn, int(number), stats))
            else:
                elsewhere.append(f"{conn.address}/{number} is in tube {stats.get('tube')!r}")
        if len(found) > 1:
            raise ConfigError(
                f"beanstalkd id {number} names a job on several servers: name it as "
                + " or ".join(f"{f.conn.address}/{number}" for f in found)
            )
        if found:
            return found[0]
    if not sep:
        matches = [
            row["located"]
            for row in buried_jobs(config, limit=None, servers=servers, reasons=False)
            if row["job_id"] == text
        ]
        if len(matches) > 1:
            raise ConfigError(
                f"several buried jobs have the id {text!r}: name one by its beanstalkd id, "
                + " or ".join(f"{m.conn.address}/{m.id}" for m in matches)
            )
        if matches:
            return cast(Located, matches[0])
    hint = f"; {', '.join(elsewhere)}: add --tube to act on it" if elsewhere else ""
    raise JobNotFound(
        f"no job {text!r} in tube(s) {', '.join(tubes)}: neither a beanstalkd id there "
        f"nor the job id of a buried job{hint}"
    )


def describe_job(conn: Connection, job: Reserved) -> dict[str, Any]:
    """A job's stats and its body, decoded as JSON when it is JSON."""
    try:
        stats = conn.stats_job(job.id)
    except JobNotFound:
        stats = {}
    try:
        body: Any = json.loads(job.body)
    except ValueError:
        body = job.body.decode("utf-8", errors="replace")
    return {"server": job.server, "id": job.id, "stats": stats, "body": body}


def cmd_peek(args: argparse.Namespace) -> int:
    """``jobrunner peek``: pretty-print the next job in a state, or a job by id."""
    config = _config(args)
    servers = Servers(config)
    if args.what in ("ready", "delayed", "buried"):
        found = False
        for conn in servers.reachable():
            for tube in config.tube:
                job = conn.peek_state(tube, args.what)
                if job is not None:
                    found = True
                    print(json.dumps(describe_job(conn, job), indent=2))
        if not found:
            print(f"no {args.what} job in tube(s) {', '.join(config.tube)}")
        return servers.exit_code()
    located = locate(config, args.what, servers)
    print(json.dumps(describe_job(located.conn, located.conn.peek(located.id)), indent=2))
    return 0


def buried_jobs(
    config: Config,
    limit: int | None = 100,
    *,
    servers: Servers | None = None,
    reasons: bool = True,
) -> list[dict[str, Any]]:
    """Buried jobs of the configured tubes on every reachable server, with type and reason.

    Args:
        config: the servers and tubes.
        limit: at most this many per tube and server (None: all).
        servers: collects the servers that could not be reached.
        reasons: read each job's ``failed`` document for its error (over HTTP).
    """
    servers = servers or Servers(config)
    rows = []
    for conn in servers.reachable():
        for tube in config.tube:
            jobs = []
            for count, job in enumerate(conn.iter_buried(tube)):
                if limit is not None and count >= limit:
                    break
                jobs.append(job)
            for job in sorted(jobs, key=lambda job: job.id):
                info = describe_job(conn, job)
                body = info["body"] if isinstance(info["body"], dict) else {}
                located = _located(conn, job.id, {**info["stats"], "tube": tube})
                reason: str | None = None
                if not body:
                    reason = "invalid job document"
                elif reasons:
                    reason = failure_reason(body.get("result"), config)
                rows.append(
                    {
                        "server": conn.address,
                        "tube": tube,
                        "id": job.id,
                        "job_id": located.job_id,
                        "type": located.type,
                        "result": body.get("result"),
                        "reason": reason,
                        "age": info["stats"].get("age"),
                        "reserves": info["stats"].get("reserves"),
                        "located": located,
                    }
                )
    return rows


#: The most of a failed document :func:`failure_reason` reads.
REASON_BYTES = 1 << 20


def failure_reason(result_url: Any, config: Config) -> str | None:
    """The error of a buried job's ``failed`` document, read without trusting its URL.

    The URL comes from the job document, which anybody who can put a job
    writes, so it is never simply fetched: it is read from ``results_dir`` when
    it maps below ``base_url``; fetched (no redirects, at most
    :data:`REASON_BYTES`, a few seconds in all) when it lies below ``base_url``
    and there is no ``results_dir``; and otherwise not followed (None).
    """
    base = config.base_url
    if not isinstance(result_url, str) or not base:
        return None
    try:
        rel = relative_result_path(result_url, base)
    except ResultRefused:
        return None
    try:
        if config.results_dir is not None:
            path = ResultsDir(config.results_dir).find(rel.split("/"))
            if path is None or os.path.getsize(path) > REASON_BYTES:
                return None
            with open(path, "rb") as fh:
                doc = json.loads(fh.read())
        else:
            doc = json.loads(_bounded_get(result_url))
    except (ConfigError, OSError, ValueError):
        return None
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    return None


def _bounded_get(url: str) -> bytes:
    """GET ``url`` with no redirects, at most :data:`REASON_BYTES` and 5 s in all.

    Raises:
        OSError: any failure (HTTP status, network, size, time).
    """
    import httpx

    deadline = time.monotonic() + 5.0
    body = bytearray()
    try:
        # identity: a compressed body could inflate past the limit within one read.
        with httpx.stream(
            "GET",
            url,
            headers={"Accept-Encoding": "identity"},
            timeout=2.0,
            follow_redirects=False,
            trust_env=False,
        ) as r:
            if r.status_code != 200:
                raise OSError(f"HTTP {r.status_code}")
            for chunk in r.iter_raw():
                body += chunk
                if len(body) > REASON_BYTES or time.monotonic() > deadline:
                    raise OSError("failed document too large or too slow")
    except httpx.HTTPError as exc:
        raise OSError(str(exc)) from exc
    return bytes(body)


def cmd_buried(args: argparse.Namespace) -> int:
    """``jobrunner buried``: list the dead letters with id, type and reason."""
    config = _config(args)
    servers = Servers(config)
    rows = buried_jobs(config, args.limit, servers=servers)
    for row in rows:
        del row["located"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return servers.exit_code()
    if not rows:
        reached = "" if not servers.down else " of the servers reached"
        print(f"no buried jobs in tube(s) {', '.join(config.tube)}{reached}")
    for row in rows:
        print(
            f"{row['server']}/{row['id']}  tube={row['tube']}  type={row['type']}  "
            f"job={row['job_id']}  reserves={row['reserves']}\n"
            f"    reason: {row['reason'] or (NO_REASON if config.base_url else NOT_LOOKED_UP)}"
        )
    return servers.exit_code()


def cmd_kick(args: argparse.Namespace) -> int:
    """``jobrunner kick``: re-queue all buried jobs, N of them, or one by id."""
    config = _config(args)
    servers = Servers(config)
    if args.job_id:
        located = locate(config, args.job_id, servers)
        if located.state not in ("buried", "delayed"):
            print(f"not kicked: {located.describe()} is not buried or delayed", file=sys.stderr)
            return 1
        located.conn.kick_job(located.id)
        print(f"kicked {located.describe()}")
        return 0
    if args.count != "all" and not args.count.isdigit():
        raise ConfigError(f"kick: expected 'all' or a number, got {args.count!r}")
    bound = 2**31 if args.count == "all" else int(args.count)
    total = 0
    for conn in servers.reachable():
        for tube in config.tube:
            try:
                buried = int(conn.stats_tube(tube).get("current-jobs-buried", 0))
            except JobNotFound:  # no such tube: nothing buried in it
                continue
            # beanstalkd's kick moves delayed jobs when none is buried: bound it to
            # the buried ones, so waiting retries keep their back-off.
            wanted = min(bound - total, buried)
            if wanted <= 0:
                continue
            kicked = conn.kick(tube, wanted)
            total += kicked
            if kicked:
                print(f"kicked {kicked} job(s) in {conn.address} tube {tube}")
    print(f"kicked {total} job(s)")
    return servers.exit_code()


def cmd_delete(args: argparse.Namespace) -> int:
    """``jobrunner delete ID``: delete a buried job (others need ``--force``)."""
    config = _config(args)
    located = locate(config, args.job_id)
    if located.state == "reserved":
        print(
            f"not deleted: {located.describe()} is running on a worker; "
            "'jobrunner cancel' stops a running job",
            file=sys.stderr,
        )
        return 1
    if located.state != "buried" and not args.force:
        print(
            f"not deleted: {located.describe()} is not buried; add --force to delete it anyway",
            file=sys.stderr,
        )
        return 1
    located.conn.delete(located.id)
    print(f"deleted {located.describe()}")
    return 0


_STATES = ("ready", "delayed", "buried")


def cmd_purge(args: argparse.Namespace) -> int:
    """``jobrunner purge``: delete every job of the tubes in a state (after confirmation)."""
    config = _config(args)
    servers = Servers(config)
    states = _STATES if args.state == "all" else (args.state,)
    plan: list[tuple[Connection, str, str, int]] = []
    for conn in servers.reachable():
        for tube in config.tube:
            try:
                stats = conn.stats_tube(tube)
            except JobNotFound:
                continue
            for state in states:
                count = int(stats.get(f"current-jobs-{state}", 0))
                if count:
                    plan.append((conn, tube, state, count))
    total = sum(count for *_, count in plan)
    if not total:
        print(f"nothing to purge: no {args.state} jobs in tube(s) {', '.join(config.tube)}")
        return servers.exit_code()
    summary = ", ".join(
        f"{count} {state} in {conn.address} {tube}" for conn, tube, state, count in plan
    )
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"purge would delete {total} job(s) ({summary}); add --yes", file=sys.stderr)
            return 2
        answer = input(f"delete {total} job(s) ({summary})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    deleted = 0
    for conn, tube, state, count in plan:
        gone = 0
        for _ in range(2 * count + 100):  # bounded: jobs put meanwhile may keep coming
            job = conn.peek_state(tube, state)
            if job is None:
                break
            try:
                conn.delete(job.id)
                gone += 1
            except JobNotFound:  # reserved or deleted meanwhile
                continue
        deleted += gone
        print(f"deleted {gone} {state} job(s) in {conn.address} tube {tube}")
    print(f"deleted {deleted} job(s)")
    return servers.exit_code()


_MAX_PAUSE = 2**32 - 1


def _pause(args: argparse.Namespace, seconds: int) -> int:
    config = _config(args)
    servers = Servers(config)
    missing = 0
    for conn in servers.reachable():
        for tube in config.tube:
            try:
                conn.pause_tube(tube, seconds)
            except JobNotFound:
                missing += 1
                print(
                    f"error: tube {tube} does not exist on {conn.address} (no job and no "
                    "worker watching it): nothing to pause or resume",
                    file=sys.stderr,
                )
                continue
            if seconds:
                print(f"paused tube {tube} on {conn.address} for {seconds} s")
            else:
                print(f"resumed tube {tube} on {conn.address}")
    return servers.exit_code() or (1 if missing else 0)


def cmd_pause(args: argparse.Namespace) -> int:
    """``jobrunner pause``: no job is reserved from the tubes for ``--seconds``."""
    if not 0 < args.seconds <= _MAX_PAUSE:
        raise ConfigError(f"pause: --seconds must be 1 to {_MAX_PAUSE}, got {args.seconds}")
    return _pause(args, args.seconds)


def cmd_resume(args: argparse.Namespace) -> int:
    """``jobrunner resume``: end a pause of the tubes at once."""
    return _pause(args, 0)
