"""The cost of logging one job at ``info``: jobrunner's JSON path against structlog's.

    python bench/log_rendering.py

One "job" logs what a slot logs for a successful job at ``info``: one
``job_reserved`` event at debug (filtered out) and one ``job_deleted`` event
with the job's fields, rendered as a JSON line into memory. Measured side
by side, in interleaved rounds:

* ``jobrunner``: :func:`jobrunner.logging.configure_logging` with JSON
  output and a logger from :func:`jobrunner._log.get_logger` (what the
  worker and its children use);
* ``structlog``: the pipeline jobrunner used before, built here with
  structlog on the same root handler — ``structlog.stdlib.BoundLogger`` with
  ``filter_by_level``, ``merge_contextvars`` and the hand-over to stdlib,
  and a ``ProcessorFormatter`` adding the logger name, level and an ISO
  timestamp and rendering with ``JSONRenderer``.

Prints microseconds of CPU per job for each and their ratio. Both run in
one process, where structlog is imported: there jobrunner's formatter also
merges structlog's context variables (as in a child whose job type imports
structlog), so its figure is the less favourable one; a worker process that
never imports structlog is cheaper still.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from jobrunner._log import get_logger, job_context
from jobrunner.logging import configure_logging

JOB_ID = "d868dc91-1567-4068-aec5-fa6f1255f3f9"


Variant = tuple[Callable[[], None], Callable[[], None]]  # (install on the root logger, one job)


def jobrunner_variant(stream: io.StringIO) -> Variant:
    log = get_logger("bench.job").bind(beanstalk_id=1, tube="default", attempt=1, slot=0)

    def install() -> None:
        configure_logging("info", format="json", stream=stream)

    def job() -> None:
        with job_context(job_id=JOB_ID, job_type="echo"):
            log.debug("job_reserved", ttr=60)
            log.info("job_deleted", duration_s=0.05, fetch_s=0.01, run_s=0.0001)

    return install, job


def _to_stdlib(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    # As jobrunner's structlog processor did: the event dict becomes record.msg.
    return (dict(event_dict),), {"extra": {"_logger": logger, "_name": method_name}}


def _add_logger_name(logger: Any, method_name: str, event_dict: Any) -> Any:
    record = event_dict.get("_record")
    if record is not None:
        event_dict.setdefault("logger", record.name)
    return event_dict


def structlog_variant(stream: io.StringIO) -> Variant:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.contextvars.merge_contextvars],
        processors=[
            _add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(separators=(",", ":"), default=str),
        ],
    )
    processors: list[Any] = [
        structlog.stdlib.filter_by_level,
        structlog.contextvars.merge_contextvars,
        _to_stdlib,
    ]
    log = structlog.stdlib.BoundLogger(logging.getLogger("bench.job"), processors, context={})
    log = log.bind(beanstalk_id=1, tube="default", attempt=1, slot=0)

    def install() -> None:
        configure_logging("info", format="json", stream=stream)  # the root handler and level
        for handler in logging.getLogger().handlers:
            handler.setFormatter(formatter)

    def job() -> None:
        with structlog.contextvars.bound_contextvars(job_id=JOB_ID, job_type="echo"):
            log.debug("job_reserved", ttr=60)
            log.info("job_deleted", duration_s=0.05, fetch_s=0.01, run_s=0.0001)

    return install, job


def per_job(job: Callable[[], None], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        job()
    return (time.process_time() - start) / n


def main() -> int:
    streams = {"jobrunner": io.StringIO(), "structlog": io.StringIO()}
    variants = {
        "jobrunner": jobrunner_variant(streams["jobrunner"]),
        "structlog": structlog_variant(streams["structlog"]),
    }
    n, rounds = 5000, 5
    best = {name: float("inf") for name in variants}
    for _ in range(rounds):
        for name, (install, job) in variants.items():
            install()
            per_job(job, 200)  # warm up
            best[name] = min(best[name], per_job(job, n))
    print(f"one job at info (best of {rounds} rounds of {n}); the lines written:")
    for name, stream in streams.items():
        print(f"  {name}: {stream.getvalue().splitlines()[-1]}")
    for name, seconds in best.items():
        print(f"  {name:<10} {seconds * 1e6:6.1f} µs CPU per job")
    print(f"  structlog / jobrunner: {best['structlog'] / best['jobrunner']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
