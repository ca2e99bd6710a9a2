"""The one place that configures log output — called by the ``jobrunner`` command only.

Library code never configures anything: it logs through stdlib
:mod:`logging` (see :mod:`jobrunner._log`) and is silent until the
application sets logging up. The command line is an application, and
:func:`configure_logging` sets up the process's root logger with one
handler, so that every record — jobrunner's own events, the job type
plugin's ``logging.warning(...)``, the records of the libraries it calls
(urllib3, scipy, ...), Python warnings, and code that uses structlog
directly — leaves the process in one format:

* ``json``: one JSON object per line (``event``, ``level``, ``timestamp``,
  ``logger`` and the event's data, with the job's ``job_id`` and
  ``job_type`` bound while a job runs), for ``journalctl -o cat | jq``;
* ``console``: readable ``key=value`` lines (structlog's console renderer);
* ``auto`` (the default): console on a terminal, JSON otherwise.

The worker's child processes call it too, with the worker's settings, and
write to the same stderr.

JSON lines are rendered here with the standard :mod:`json` module, and
structlog is imported only when it is needed — for console output, or when
a plugin imports it (it is then configured to send its events through the
same handler, at the moment it is imported). Importing structlog imports
:mod:`asyncio` and :mod:`ssl`; a worker and its children logging JSON (under
systemd, in a container) do without both.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TextIO

from jobrunner._log import job_fields, process_job_fields

__all__ = ["FORMATS", "LEVELS", "configure_logging"]

#: The values of ``--log-format``.
FORMATS = ("auto", "json", "console")
#: The values of ``--log-level``.
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Libraries that log each request at info: one line per input fetched would be
# a second event per job. Quieter by one level unless --log-level debug.
_CHATTY = ("httpx", "httpcore")


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing (tests swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _timestamp(created: float) -> str:
    """RFC 3339 UTC with microseconds and ``Z``, like structlog's ``TimeStamper(fmt="iso")``."""
    # isoformat ends in "+00:00" for UTC; it is a third of strftime's cost.
    stamp = dt.datetime.fromtimestamp(created, dt.timezone.utc).isoformat(timespec="microseconds")
    return stamp[:-6] + "Z"


def _format_exception(exc_info: Any) -> str:
    return "".join(traceback.format_exception(*exc_info)).rstrip("\n")


Render = Callable[[dict[str, Any], Any], str]


def _render_json(event: dict[str, Any], exc_info: Any) -> str:
    if exc_info is not None:
        event["exception"] = _format_exception(exc_info)
    return json.dumps(event, separators=(",", ":"), default=str)


def _console_renderer(colors: bool) -> Render:
    import structlog  # only for console output: it imports asyncio

    renderer = structlog.dev.ConsoleRenderer(colors=colors)

    def render(event: dict[str, Any], exc_info: Any) -> str:
        if exc_info is not None:
            event["exc_info"] = exc_info
        return str(renderer(None, str(event.get("level", "")), event))

    return render


class _Formatter(logging.Formatter):
    """Turns every record into one event dict and renders it (JSON or console)."""

    def __init__(self, render: Render) -> None:
        super().__init__()
        self._render = render

    def format(self, record: logging.LogRecord) -> str:
        # jobrunner's events, and structlog's (ProcessorFormatter.wrap_for_formatter), are
        # dicts; a plain stdlib record (a plugin's, a library's, a warning) is text.
        msg = record.msg
        event = dict(msg) if isinstance(msg, dict) else {"event": record.getMessage()}
        exc_info = event.pop("exc_info", None)
        if exc_info is True:
            exc_info = sys.exc_info()
        elif isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        if not exc_info or exc_info == (None, None, None):
            exc_info = record.exc_info or None
        # The job's fields: of this thread's job, else of the process's (a child
        # runs one job at a time, and its plugin's threads log for it too).
        for key, value in job_fields().items():
            event.setdefault(key, value)
        for key, value in process_job_fields().items():
            event.setdefault(key, value)
        structlog_contextvars = sys.modules.get("structlog.contextvars")
        if structlog_contextvars is not None:
            for key, value in structlog_contextvars.get_contextvars().items():
                event.setdefault(key, value)
        event.setdefault("logger", record.name)
        event["level"] = record.levelname.lower()
        event["timestamp"] = _timestamp(record.created)
        if record.stack_info:
            event["stack"] = record.stack_info
        return self._render(event, exc_info)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs (recognised when configuring again)."""


def _configure_structlog(structlog: Any) -> None:
    """Send events of code that uses structlog directly through the root logger's handler."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


class _ConfigureStructlogOnImport:
    """A meta path finder that configures structlog right after its first import.

    It finds nothing itself: for ``structlog`` it asks the other finders and
    wraps the loader so that :func:`_configure_structlog` runs once the
    package is loaded; then it leaves ``sys.meta_path``.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> Any:
        if fullname != "structlog":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:  # pragma: no cover - another thread got here first
            return None
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _LoaderThenConfigure(spec.loader)  # type: ignore[assignment]  # duck-typed
        return spec


class _LoaderThenConfigure:
    """Loads like ``loader``, then configures structlog and puts ``loader`` back in place."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        _configure_structlog(module)


def configure_logging(
    level: str = "info", *, format: str = "auto", stream: TextIO | None = None
) -> None:
    """Send every log record of this process to ``stream`` in one format.

    Replaces the root logger's handlers; calling it again reconfigures.

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``; applies to
            every logger (jobrunner's, plugins', libraries'), except that at
            ``info`` httpx's per-request lines are left for ``debug``.
        format: ``json``, ``console``, or ``auto`` — console when ``stream``
            is a terminal, JSON otherwise.
        stream: where lines go (the current ``sys.stderr`` by default).

    Raises:
        ValueError: an unknown level or format.
    """
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {format!r}")
    target: Any = stream or _CurrentStderr()
    as_json = format == "json" or (format == "auto" and not target.isatty())
    render = _render_json if as_json else _console_renderer(colors=target.isatty())
    handler = _Handler(target)
    handler.setFormatter(_Formatter(render))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = LEVELS[level.lower()]
    root.setLevel(numeric)
    for name in _CHATTY:
        chatty = logging.getLogger(name)
        chatty.setLevel(
            logging.NOTSET if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
        )
    logging.captureWarnings(True)
    # Code that uses structlog directly (a plugin may) goes the same way: now,
    # or when it first imports structlog.
    structlog = sys.modules.get("structlog")
    if structlog is not None:
        _configure_structlog(structlog)
    elif not any(isinstance(f, _ConfigureStructlogOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _ConfigureStructlogOnImport())
