"""Queue inspection and repair for operators: ``stats``, ``peek``, ``buried``, ``kick``, ``delete``.

Each command works across every configured beanstalkd server. Job ids are
per server: with several servers, name one as ``SERVER/ID`` (e.g.
``127.0.0.1:11300/42``) or pass ``--beanstalk`` with that server only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from jobrunner.config import Config, load_config, settings
from jobrunner.errors import ConfigError, JobNotFound, QueueError
from jobrunner.queue import Connection, Reserved

__all__ = ["add_commands", "buried_jobs", "tube_table"]

_TUBE_COLUMNS = (
    ("current-jobs-ready", "ready"),
    ("current-jobs-reserved", "reserved"),
    ("current-jobs-delayed", "delayed"),
    ("current-jobs-buried", "buried"),
    ("current-watching", "watching"),
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
    kick.add_argument("--id", dest="job_id", help="kick one job (SERVER/ID with several servers)")
    kick.set_defaults(handler=cmd_kick)

    delete = sub.add_parser("delete", help="delete a buried job by id")
    delete.add_argument("job_id", help="job id (SERVER/ID with several servers)")
    delete.add_argument(
        "--force", action="store_true", help="also delete a job that is ready or delayed"
    )
    delete.set_defaults(handler=cmd_delete)

    for parser in (stats, peek, buried, kick, delete):
        add_settings(parser)


def _config(args: argparse.Namespace) -> Config:
    flags = {s.name: getattr(args, s.name, None) for s in settings()}
    return load_config(flags=flags, config_file=args.config)


def _connections(config: Config) -> list[Connection]:
    return [Connection(address) for address in config.beanstalk]


def _reachable(conns: list[Connection]) -> Iterator[Connection]:
    for conn in conns:
        try:
            conn.stats()
        except QueueError as exc:
            print(f"warning: {exc}", file=sys.stderr)
            continue
        yield conn


def tube_table(conn: Connection, tubes: list[str] | None) -> list[dict[str, Any]]:
    """One row per tube of one server: ready, reserved, delayed, buried, watching, total."""
    names = tubes if tubes is not None else sorted(conn.tubes())
    rows = []
    for tube in names:
        try:
            stats = conn.stats_tube(tube)
        except JobNotFound:  # the tube does not exist (yet): nothing in it
            stats = {}
        row: dict[str, Any] = {"server": conn.address, "tube": tube}
        row.update({label: int(stats.get(key, 0)) for key, label in _TUBE_COLUMNS})
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
            f"{server.get('uptime')} s, {server.get('current-connections')} connections, "
            f"{server.get('current-workers')} workers, {server.get('total-jobs')} jobs put"
        )
    header = ["server", "tube"] + [label for _, label in _TUBE_COLUMNS]
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
            return 0 if any(s["up"] for s in report["servers"]) else 1
        sys.stdout.flush()
        time.sleep(args.watch)


def _split_id(config: Config, text: str) -> tuple[list[str], int]:
    server, sep, number = text.rpartition("/")
    if not number.isdigit():
        raise ConfigError(f"expected a beanstalkd job id (a number, or SERVER/ID), got {text!r}")
    servers = [server] if sep else list(config.beanstalk)
    return servers, int(number)


def _find_job(config: Config, text: str) -> tuple[Connection, Reserved]:
    servers, job_id = _split_id(config, text)
    if len(servers) > 1:
        raise ConfigError(f"several servers are configured: name the job as SERVER/{job_id}")
    conn = Connection(servers[0])
    return conn, conn.peek(job_id)


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
    if args.what in ("ready", "delayed", "buried"):
        found = False
        for conn in _reachable(_connections(config)):
            for tube in config.tube:
                job = conn.peek_state(tube, args.what)
                if job is not None:
                    found = True
                    print(json.dumps(describe_job(conn, job), indent=2))
        if not found:
            print(f"no {args.what} job in tube(s) {', '.join(config.tube)}")
        return 0
    conn, job = _find_job(config, args.what)
    print(json.dumps(describe_job(conn, job), indent=2))
    return 0


def buried_jobs(config: Config, limit: int = 100) -> list[dict[str, Any]]:
    """Buried jobs of the configured tubes on every server, with type and reason."""
    rows = []
    for conn in _reachable(_connections(config)):
        for tube in config.tube:
            jobs = []
            for count, job in enumerate(conn.iter_buried(tube)):
                if count >= limit:
                    break
                jobs.append(job)
            for job in sorted(jobs, key=lambda job: job.id):
                info = describe_job(conn, job)
                body = info["body"] if isinstance(info["body"], dict) else {}
                rows.append(
                    {
                        "server": conn.address,
                        "tube": tube,
                        "id": job.id,
                        "job_id": body.get("id"),
                        "type": body.get("type"),
                        "result": body.get("result"),
                        "reason": _reason(body.get("result")) if body else "invalid job document",
                        "age": info["stats"].get("age"),
                        "reserves": info["stats"].get("reserves"),
                    }
                )
    return rows


def _reason(result_url: Any) -> str | None:
    """The error of the job's failed result document, read from its result URL."""
    if not isinstance(result_url, str) or not result_url.startswith(("http://", "https://")):
        return None
    import httpx

    try:
        response = httpx.get(result_url, timeout=2.0)
        doc = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    return None


def cmd_buried(args: argparse.Namespace) -> int:
    """``jobrunner buried``: list the dead letters with id, type and reason."""
    config = _config(args)
    rows = buried_jobs(config, args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no buried jobs in tube(s) {', '.join(config.tube)}")
    for row in rows:
        print(
            f"{row['server']}/{row['id']}  tube={row['tube']}  type={row['type']}  "
            f"job={row['job_id']}  reserves={row['reserves']}\n    reason: {row['reason']}"
        )
    return 0


def cmd_kick(args: argparse.Namespace) -> int:
    """``jobrunner kick``: re-queue all buried jobs, N of them, or one by id."""
    config = _config(args)
    if args.job_id:
        servers, job_id = _split_id(config, args.job_id)
        for server in servers:
            try:
                Connection(server).kick_job(job_id)
            except JobNotFound:
                continue
            print(f"kicked {server}/{job_id}")
            return 0
        print(f"job {args.job_id} is not buried or delayed", file=sys.stderr)
        return 1
    if args.count != "all" and not args.count.isdigit():
        raise ConfigError(f"kick: expected 'all' or a number, got {args.count!r}")
    bound = 2**31 if args.count == "all" else int(args.count)
    total = 0
    for conn in _reachable(_connections(config)):
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
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """``jobrunner delete ID``: delete a buried job (others need ``--force``)."""
    config = _config(args)
    conn, job = _find_job(config, args.job_id)
    state = conn.stats_job(job.id).get("state")
    if state != "buried" and not args.force:
        print(
            f"job {args.job_id} is {state}, not buried; add --force to delete it anyway",
            file=sys.stderr,
        )
        return 1
    conn.delete(job.id)
    print(f"deleted {conn.address}/{job.id}")
    return 0
