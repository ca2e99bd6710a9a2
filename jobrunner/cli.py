"""The ``jobrunner`` command: ``main(argv) -> exit code``.

Commands (names and flags are a contract): ``work``, ``submit``,
``status``, ``cancel``, ``schedule``, ``serve``, ``plugins``, ``stats``,
``peek``, ``buried``, ``kick``, ``delete``, ``config``. Every setting flag is generated from
:class:`jobrunner.config.Config` and has a ``JOBRUNNER_*`` environment twin.

Exit codes: 0 success, 1 the operation failed (``submit --wait``: the job
failed; a queue command could not reach a server; ``cancel``: the job had
finished), 2 bad usage or configuration (start-up checks included), 3
``submit --wait`` timed out (``cancel --wait``: the job is still stopping),
141 the reader of the output went away (``jobrunner buried | head``: quiet,
like any Unix tool killed by SIGPIPE).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from jobrunner import __version__
from jobrunner.config import (
    DASHBOARD,
    QUEUE,
    SERVE,
    STATUS,
    SUBMIT,
    WORK,
    Config,
    check_dir_writable,
    check_port_free,
    load_config,
    settings,
)
from jobrunner.errors import ConfigError, InvalidJob, JobRunnerError
from jobrunner.logging import configure_logging

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a tool killed by SIGPIPE


def _add_settings(parser: argparse.ArgumentParser, command: str) -> None:
    group = parser.add_argument_group("settings (flag > JOBRUNNER_* environment > --config file)")
    group.add_argument(
        "--config", metavar="FILE", help="TOML configuration file (or JOBRUNNER_CONFIG)"
    )
    for setting in settings():
        if command not in setting.commands:
            continue
        help_text = f"{setting.help} [{setting.env}]"
        if setting.is_list:
            group.add_argument(
                setting.flag,
                dest=setting.name,
                action="append",
                metavar=setting.metavar or "VALUE",
                help=help_text,
            )
        elif str(setting.kind).startswith("bool"):
            group.add_argument(
                setting.flag,
                dest=setting.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(
                setting.flag,
                dest=setting.name,
                metavar=setting.metavar or setting.name.upper(),
                help=help_text,
            )


def _config(args: argparse.Namespace) -> Config:
    flags = {s.name: getattr(args, s.name, None) for s in settings()}
    return load_config(flags=flags, config_file=args.config)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="jobrunner",
        description="A pluggable job runner on beanstalkd.",
    )
    parser.add_argument("--version", action="version", version=f"jobrunner {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    work = sub.add_parser("work", help="run jobs from the queue")
    _add_settings(work, WORK)
    work.set_defaults(handler=cmd_work)

    submit = sub.add_parser("submit", help="submit a job")
    submit.add_argument("--type", required=True, help="job type, e.g. echo")
    submit.add_argument(
        "--input",
        required=True,
        action="append",
        metavar="URL",
        help="input URL; NAME=URL (repeatable) for several named inputs",
    )
    submit.add_argument("--result", required=True, metavar="URL", help="result URL")
    submit.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter; VALUE is read as JSON when it parses, else text",
    )
    submit.add_argument("--params", metavar="JSON", help="all parameters as a JSON object")
    submit.add_argument("--priority", type=int, help="beanstalkd priority, 0 most urgent")
    submit.add_argument("--delay", type=int, default=0, help="seconds before it may run")
    submit.add_argument("--ttr", type=int, help="beanstalkd time-to-run in seconds")
    submit.add_argument("--timeout", type=float, help="seconds the job may compute")
    submit.add_argument("--max-attempts", type=int, help="attempts for retryable failures")
    submit.add_argument("--meta", metavar="JSON", help="JSON object copied into the result")
    submit.add_argument("--id", help="job id (a UUID4 by default)")
    submit.add_argument(
        "--wait",
        action="store_true",
        help="follow the result URL until the job is done (exit 0) or failed (exit 1), "
        "showing progress on stderr; print the result document",
    )
    submit.add_argument(
        "--wait-timeout",
        type=float,
        metavar="SECONDS",
        help="with --wait: give up after SECONDS (exit 3); no limit by default",
    )
    submit.add_argument(
        "--quiet",
        action="store_true",
        help="with --wait: no progress, print a one-line summary instead of the document",
    )
    _add_settings(submit, SUBMIT)
    submit.set_defaults(handler=cmd_submit)

    status = sub.add_parser(
        "status",
        help="what happened to a job: queued, running, done, failed, cancelled, ...",
    )
    status.add_argument(
        "target",
        metavar="TICKET-URL-or-ID",
        help="the ticket 'submit' printed (asks beanstalkd and the result URL), the result "
        "URL, or a job ID looked up as BASE_URL/ID.json (needs --base-url)",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    _add_settings(status, STATUS)
    status.set_defaults(handler=cmd_status)

    cancel = sub.add_parser(
        "cancel", help="cancel a job: delete it while it waits, stop it while it runs"
    )
    cancel.add_argument("ticket", metavar="TICKET", help="the ticket 'submit' printed")
    cancel.add_argument(
        "--wait",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="wait this long for a running job to be stopped (default 15; 0: do not wait)",
    )
    cancel.add_argument("--json", action="store_true", help="print JSON")
    _add_settings(cancel, STATUS)
    cancel.set_defaults(handler=cmd_cancel)

    schedule = sub.add_parser(
        "schedule",
        help="submit periodic jobs (cron expressions, intervals); one leader among many",
        description="Submit the [[schedule]] jobs of the --config file. Several schedulers "
        "of one group elect a leader through beanstalkd; the others take over when it dies.",
    )
    schedule.add_argument(
        "--next",
        type=int,
        metavar="N",
        help="print the next N planned runs of each schedule and exit (submits nothing)",
    )
    _add_settings(schedule, QUEUE)
    schedule.set_defaults(handler=cmd_schedule)

    serve = sub.add_parser("serve", help="serve result documents over HTTP")
    _add_settings(serve, SERVE)
    serve.set_defaults(handler=cmd_serve)

    plugins = sub.add_parser("plugins", help="list installed job types and publishers")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(handler=cmd_plugins)

    config = sub.add_parser("config", help="print the effective settings (secrets masked)")
    config.add_argument("--json", action="store_true", help="print JSON")
    for command in (WORK, SERVE):
        for setting in settings():
            if command in setting.commands and setting.flag not in config._option_string_actions:
                config.add_argument(
                    setting.flag,
                    dest=setting.name,
                    action="append" if setting.is_list else "store",
                    help=argparse.SUPPRESS,
                )
    config.add_argument("--config", metavar="FILE", help="TOML configuration file")
    config.set_defaults(handler=cmd_config)

    dashboard = sub.add_parser(
        "dashboard", help="serve a read-only web page of the queues, workers and results"
    )
    _add_settings(dashboard, DASHBOARD)
    dashboard.set_defaults(handler=cmd_dashboard)

    from jobrunner import admin

    admin.add_commands(sub, lambda p: _add_settings(p, QUEUE))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jobrunner`` command line; return the exit code."""
    try:
        try:
            code = _run(argv)
        finally:
            sys.stdout.flush()  # here, where a closed pipe can still be caught
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    return code


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Events go to stderr from the start; commands with a --log-level reconfigure.
    configure_logging("warning")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"jobrunner {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except JobRunnerError as exc:
        print(f"jobrunner {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        extra = _EXTRAS.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        extra = _COMMAND_EXTRAS.get(args.command, extra)
        print(
            f"jobrunner {args.command}: needs {exc.name}, which comes with the "
            f"'{extra}' extra: pip install 'beanstalk-jobrunner[{extra}]'",
            file=sys.stderr,
        )
        return EXIT_USAGE


# Optional dependencies, by the extra that installs them (setup.cfg); the
# commands that run a service need that service's whole extra.
_EXTRAS = {
    "httpx": "status",
    "stevedore": "worker",
    "cronsim": "worker",
    "prometheus_client": "worker",
    "uvicorn": "serve",
    "starlette": "serve",
    "numpy": "timeseries",
}
_COMMAND_EXTRAS = {
    "work": "worker",
    "schedule": "worker",
    "serve": "serve",
    "dashboard": "dashboard",
}


def _silence_stdout() -> None:
    """Point stdout at /dev/null: the reader left, and the interpreter's last flush at exit
    must not print a BrokenPipeError of its own."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no real file (tests capture it)
        pass
    finally:
        os.close(devnull)


# -- commands ------------------------------------------------------------------


def _require(*modules: str) -> None:
    """Raise :class:`ModuleNotFoundError` for the first of ``modules`` not installed.

    Checked without importing them: the worker imports some only when a job
    needs them (stevedore, at the first job of a type) or a setting asks for
    them (prometheus_client, for ``--metrics-port``), and a missing extra
    must show at start, not in a job.
    """
    import importlib.util

    for name in modules:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def cmd_work(args: argparse.Namespace) -> int:
    """``jobrunner work``: run the worker until SIGTERM/SIGINT."""
    _require("stevedore", "prometheus_client", "httpx")  # the 'worker' extra
    config = _config(args)
    configure_logging(config.log_level, format=config.log_format)
    # Start-up checks: what would otherwise fail every job, or the worker later.
    if config.results_dir is not None and "file" in config.publisher:
        check_dir_writable(config.results_dir, "results_dir")
    check_port_free(config.metrics_host, config.metrics_port, "metrics_port")
    from jobrunner._worker.node import Worker

    return Worker(config).run()


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _json_object(text: str | None, flag: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{flag}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{flag}: must be a JSON object")
    return value


def submit_arguments(args: argparse.Namespace) -> tuple[str | dict[str, str], dict[str, Any]]:
    """The input and params of ``jobrunner submit`` from its flags."""
    params = _json_object(args.params, "--params")
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param: expected KEY=VALUE, got {item!r}")
        params[key] = _parse_value(value)
    inputs: str | dict[str, str]
    if len(args.input) == 1 and "://" in args.input[0].split("=", 1)[0]:
        inputs = args.input[0]
    else:
        inputs = {}
        for item in args.input:
            name, sep, url = item.partition("=")
            if not sep:
                raise ConfigError(f"--input: with several inputs use NAME=URL, got {item!r}")
            inputs[name] = url
    return inputs, params


def cmd_submit(args: argparse.Namespace) -> int:
    """``jobrunner submit``: validate and put one job; print its id."""
    config = _config(args)
    configure_logging(config.log_level, format=config.log_format)
    from jobrunner.client import Client

    inputs, params = submit_arguments(args)
    with Client(list(config.beanstalk), tube=config.tube[0]) as client:
        try:
            job_id = client.submit(
                args.type,
                inputs,
                args.result,
                params,
                priority=args.priority,
                delay=args.delay,
                ttr=args.ttr,
                timeout=args.timeout,
                max_attempts=args.max_attempts,
                meta=_json_object(args.meta, "--meta") or None,
                id=args.id,
            )
        except InvalidJob as exc:
            print(f"jobrunner submit: refused: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if not args.wait:
        print(job_id)
        print(f"ticket {job_id.ticket}", file=sys.stderr)
        return EXIT_OK
    return _wait_for_result(job_id, args.result, timeout=args.wait_timeout, quiet=args.quiet)


def _wait_for_result(job_id: str, url: str, *, timeout: float | None, quiet: bool) -> int:
    """``submit --wait``: follow ``url`` to the final document of ``job_id``."""
    from jobrunner.errors import WaitTimeout
    from jobrunner.follow import ProgressDisplay, follow, summarize

    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--wait-timeout must be above 0, got {timeout:g}")
    if not quiet:
        print(f"submitted {job_id}; waiting for {url}", file=sys.stderr)
    display = None if quiet else ProgressDisplay(sys.stderr)
    try:
        doc = follow(
            url,
            job_id=job_id,
            timeout=timeout,
            on_update=display.update if display else None,
            on_waiting=display.waiting if display else None,
        )
    except WaitTimeout as exc:
        if display:
            display.finish()
        print(f"jobrunner submit: {exc}", file=sys.stderr)
        print(f"jobrunner submit: the job may still run; 'jobrunner status {url}'", file=sys.stderr)
        return EXIT_TIMEOUT
    if display:
        display.finish()
    if quiet:
        print(summarize(doc))
    else:
        print(json.dumps(doc, indent=2))
    if doc.get("status") == "done":
        return EXIT_OK
    error = doc.get("error")
    if not isinstance(error, dict):
        error = {}
    print(
        f"jobrunner submit: job {job_id} failed: {error.get('code')}: {error.get('message')}",
        file=sys.stderr,
    )
    return EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    """``jobrunner status``: a job's state (with a ticket) or its current result document."""
    config = _config(args)
    configure_logging(config.log_level, format=config.log_format)
    from jobrunner.client import Ticket

    if Ticket.looks_like(args.target):
        return _ticket_status(args.target, as_json=args.json)
    from jobrunner.follow import ResultReader, describe, resolve_result_url

    url = resolve_result_url(args.target, config.base_url)
    with ResultReader() as reader:
        doc = reader.read(url)
    if doc is None:
        print(
            f"jobrunner status: no result document at {url} yet "
            "(the job may still wait in the queue, or the URL is wrong; "
            "give the ticket 'submit' printed to ask beanstalkd too)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(json.dumps(doc, indent=2) if args.json else describe(doc))
    return EXIT_OK


def _ticket(text: str) -> Any:
    from jobrunner.client import Ticket

    try:
        return Ticket.parse(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _ticket_status(text: str, *, as_json: bool) -> int:
    from jobrunner.client import Client
    from jobrunner.follow import describe

    ticket = _ticket(text)
    with Client(ticket.server) as client:
        status = client.status(ticket)
    if as_json:
        print(json.dumps(status.as_dict(), indent=2))
    else:
        print(_status_line(status))
        if status.document is not None:
            print(describe(status.document))
    return EXIT_FAILED if status.state == "unknown" else EXIT_OK


def _status_line(status: Any) -> str:
    where = f" in tube {status.tube}" if status.tube else ""
    progress = (
        f" {round(100 * status.progress)}%"
        if status.state == "running" and status.progress is not None
        else ""
    )
    cancel = " (cancel requested)" if status.cancel_requested and status.state == "running" else ""
    return f"{status.state}{progress}{cancel}: job {status.job_id}{where}, result {status.result}"


def cmd_cancel(args: argparse.Namespace) -> int:
    """``jobrunner cancel``: cancel a waiting or running job; leave a finished one alone."""
    config = _config(args)
    configure_logging(config.log_level, format=config.log_format)
    from jobrunner.client import Client

    if args.wait < 0:
        raise ConfigError(f"--wait must not be negative, got {args.wait:g}")
    ticket = _ticket(args.ticket)
    with Client(ticket.server) as client:
        done = client.cancel(ticket, wait=args.wait)
    if args.json:
        print(
            json.dumps(
                {"outcome": done.outcome, "message": done.message, "status": done.status.as_dict()},
                indent=2,
            )
        )
    else:
        print(done.message)
    if done.outcome == "cancelled":
        return EXIT_OK
    if done.outcome == "stopping":
        return EXIT_TIMEOUT if args.wait > 0 else EXIT_OK
    return EXIT_FAILED


def cmd_schedule(args: argparse.Namespace) -> int:
    """``jobrunner schedule``: run the scheduler (or show the next planned runs)."""
    from pathlib import Path

    from jobrunner.schedule import Scheduler, load_schedules

    config = _config(args)
    configure_logging(config.log_level, format=config.log_format)
    path = args.config or os.environ.get("JOBRUNNER_CONFIG")
    if not path:
        raise ConfigError("schedule needs --config FILE with [[schedule]] tables")
    settings, schedules = load_schedules(Path(path))
    if args.next is not None:
        import datetime as dt

        from jobrunner.codec import format_time

        now = dt.datetime.now(dt.timezone.utc)
        for item in schedules:
            runs = item.runs_after(now)
            for _ in range(max(0, args.next)):
                run = next(runs)
                print(f"{item.name:<24} {format_time(run)}  {item.job_id(run)}")
        return EXIT_OK
    scheduler = Scheduler(schedules, list(config.beanstalk), tube=config.tube[0], settings=settings)
    return scheduler.run()


def cmd_serve(args: argparse.Namespace) -> int:
    """``jobrunner serve``: serve the results directory over HTTP."""
    config = _config(args)
    if config.results_dir is None:
        raise ConfigError("serve needs --results-dir (or JOBRUNNER_RESULTS_DIR)")
    configure_logging(config.log_level, format=config.log_format)
    check_port_free(config.host, config.port, "port")
    from jobrunner.serve import run_server

    return run_server(config)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """``jobrunner dashboard``: the operator's web page until SIGTERM/SIGINT."""
    config = _config(args)
    configure_logging(config.log_level, format=config.log_format)
    check_port_free(config.dashboard_host, config.dashboard_port, "dashboard_port")
    from jobrunner.dashboard import run_dashboard

    return run_dashboard(config)


def cmd_plugins(args: argparse.Namespace) -> int:
    """``jobrunner plugins``: installed job types and publishers, load errors included."""
    from jobrunner.plugins import JOB_TYPES, PUBLISHERS, list_plugins

    groups = {"job types": list_plugins(JOB_TYPES), "publishers": list_plugins(PUBLISHERS)}
    if args.json:
        print(
            json.dumps(
                {
                    name: [
                        {
                            "name": p.name,
                            "target": p.target,
                            "distribution": p.distribution,
                            "version": p.version,
                            "error": p.error,
                            "summary": p.summary,
                        }
                        for p in infos
                    ]
                    for name, infos in groups.items()
                },
                indent=2,
            )
        )
    else:
        for title, infos in groups.items():
            print(f"{title} ({len(infos)}):")
            for info in infos:
                origin = f"{info.distribution} {info.version}" if info.distribution else ""
                if info.ok:
                    print(f"  {info.name:<16} {origin:<32} {info.summary or ''}".rstrip())
                else:
                    print(f"  {info.name:<16} {origin:<32} FAILED TO LOAD: {info.error}")
    return EXIT_FAILED if any(not p.ok for infos in groups.values() for p in infos) else EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    """``jobrunner config``: the effective settings, where each came from, secrets masked."""
    config = _config(args)
    values = config.as_dict(mask=True)
    if args.json:
        print(
            json.dumps(
                {
                    name: {"value": value, "source": config.sources.get(name)}
                    for name, value in values.items()
                },
                indent=2,
            )
        )
        return EXIT_OK
    width = max(len(name) for name in values)
    for name, value in values.items():
        shown = ",".join(str(v) for v in value) if isinstance(value, list) else value
        print(f"{name:<{width}}  {shown!s:<40}  ({config.sources.get(name, 'default')})")
    return EXIT_OK
