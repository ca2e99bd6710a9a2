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
* ``console``: readable ``key=value`` lines;
* ``auto`` (the default): console on a terminal, JSON otherwise.

The worker's child processes call it too, with the worker's settings, and
write to the same stderr.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from jobrunner._log import process_job_fields

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


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing (tests swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _add_process_job_fields(
    logger: Any, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    for key, value in process_job_fields().items():
        event_dict.setdefault(key, value)
    return event_dict


def _add_logger_name(
    logger: Any, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    record = event_dict.get("_record")
    if record is not None:
        event_dict.setdefault("logger", record.name)
    return event_dict


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs (recognised when configuring again)."""


def configure_logging(
    level: str = "info", *, format: str = "auto", stream: TextIO | None = None
) -> None:
    """Send every log record of this process to ``stream`` in one format.

    Replaces the root logger's handlers; calling it again reconfigures.

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``; applies to
            every logger (jobrunner's, plugins', libraries').
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
    renderer: Any
    if as_json:
        renderer = structlog.processors.JSONRenderer(separators=(",", ":"), default=str)
        tail: list[Any] = [structlog.processors.format_exc_info]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=target.isatty())
        tail = []
    formatter = structlog.stdlib.ProcessorFormatter(
        # Records from stdlib loggers (plugins, libraries, warnings): the job's
        # fields come from the context of the thread that logs.
        foreign_pre_chain=[structlog.contextvars.merge_contextvars],
        processors=[
            _add_process_job_fields,
            _add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
        ],
    )
    handler = _Handler(target)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level.lower()])
    logging.captureWarnings(True)
    # Code that uses structlog directly (a plugin may) goes the same way.
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
