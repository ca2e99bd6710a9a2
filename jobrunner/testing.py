"""Test helpers for plugin authors: run a job type without a queue or a worker.

>>> from jobrunner.testing import run_job
>>> run = run_job(MyType, input=[[0, 1.0], [900, 2.0]], params={"horizon": "1h"})
>>> run.data, run.progress, run.logs

:func:`run_job` does what the worker's child process does around a job
type — instantiates a class, structures ``params`` into its ``Params``
class (raising :class:`~jobrunner.errors.InvalidParams` exactly like the
worker), gives it a :class:`~jobrunner.context.Context`, and checks that
the returned data is strict JSON — and records progress and log events.
"""

from __future__ import annotations

import inspect
import json
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from jobrunner import codec
from jobrunner.context import Context
from jobrunner.errors import InputUnavailable, InvalidParams
from jobrunner.job import Job, utcnow

__all__ = ["JobRun", "RecordingLogger", "free_port", "make_job", "run_job", "wait_for_port"]


class RecordingLogger:
    """A structlog-like logger that records events as dicts in ``events``."""

    def __init__(
        self, events: list[dict[str, Any]] | None = None, context: dict[str, Any] | None = None
    ) -> None:
        self.events = events if events is not None else []
        self._context = dict(context or {})

    def bind(self, **values: Any) -> RecordingLogger:
        """Return a logger with more context bound (sharing the event list)."""
        return RecordingLogger(self.events, {**self._context, **values})

    def _log(self, level: str, event: str, **values: Any) -> None:
        self.events.append({**self._context, **values, "event": event, "log_level": level})

    def debug(self, event: str, **values: Any) -> None:
        """Record a debug event."""
        self._log("debug", event, **values)

    def info(self, event: str, **values: Any) -> None:
        """Record an info event."""
        self._log("info", event, **values)

    def warning(self, event: str, **values: Any) -> None:
        """Record a warning event."""
        self._log("warning", event, **values)

    def error(self, event: str, **values: Any) -> None:
        """Record an error event."""
        self._log("error", event, **values)

    def exception(self, event: str, **values: Any) -> None:
        """Record an error event (without a traceback)."""
        self._log("error", event, **values)


@attrs.frozen(kw_only=True)
class JobRun:
    """What :func:`run_job` observed."""

    data: Any
    progress: list[tuple[float, str | None]]
    logs: list[dict[str, Any]]
    job: Job


def make_job(
    job_type: str = "test",
    *,
    input: str | dict[str, str] = "https://inputs.test/in",
    params: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Job:
    """Build a valid :class:`~jobrunner.job.Job` for tests."""
    return Job(
        id=fields.pop("id", str(uuid.uuid4())),
        type=job_type,
        input=input,
        result=fields.pop("result", "https://results.test/r.json"),
        params=dict(params or {}),
        created=fields.pop("created", utcnow()),
        **fields,
    )


def run_job(
    job_type: Any,
    *,
    input: Any = None,
    params: Mapping[str, Any] | None = None,
    job: Job | None = None,
    fetch: Mapping[str, Any] | Callable[[str], Any] | None = None,
) -> JobRun:
    """Run a job type (class or function) on a decoded input, as a worker would.

    Args:
        job_type: the object your entry point names.
        input: the decoded input the job type receives as ``ctx.input``.
        params: the job's params, structured into the job type's ``Params``.
        job: the job document to expose as ``ctx.job`` (one is made up otherwise).
        fetch: what ``ctx.fetch(url)`` returns: a mapping of URL to decoded value,
            or a function; unknown URLs fail with ``input_unavailable``.

    Raises:
        InvalidParams: params that the worker would refuse.
        AssertionError: the returned data is not strict JSON.
        Exception: whatever the job type raises (e.g. :class:`jobrunner.Retry`).
    """
    params = dict(params or {})
    job = job or make_job(getattr(job_type, "__name__", "test").lower(), params=params)
    params_cls = getattr(job_type, "Params", None)
    value: Any = params
    if params_cls is not None:
        try:
            value = codec.structure_params(params, params_cls)
        except InvalidParams:
            raise
        except Exception as exc:
            raise InvalidParams(f"params: {type(exc).__name__}: {exc}") from None
    runner: Callable[[Context], Any] = job_type() if inspect.isclass(job_type) else job_type  # type: ignore[assignment]
    progress: list[tuple[float, str | None]] = []
    logger = RecordingLogger().bind(job_id=job.id, job_type=job.type)

    def do_fetch(url: str) -> Any:
        if callable(fetch):
            return fetch(url)
        if fetch is not None and url in fetch:
            return fetch[url]
        raise InputUnavailable(f"run_job: no test input for {url!r} (pass fetch={{url: value}})")

    workdir = Path(tempfile.mkdtemp(prefix="jobrunner-test-"))
    try:
        ctx = Context(
            job=job,
            input=input,
            params=value,
            log=logger,
            workdir_factory=lambda: workdir,
            progress_callback=lambda f, m: progress.append((f, m)),
            fetch_callback=do_fetch,
        )
        data = runner(ctx)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    try:
        data = json.loads(json.dumps(data, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"the job type returned data that is not strict JSON: {exc}") from None
    return JobRun(data=data, progress=progress, logs=logger.events, job=job)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` (loopback by default) that nobody listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    """Wait until a server accepts connections on ``host:port``.

    Raises:
        TimeoutError: nothing accepted within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on {host}:{port} after {timeout:g} s"
                ) from None
            time.sleep(0.02)
