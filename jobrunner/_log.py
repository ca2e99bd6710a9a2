"""Where every jobrunner module gets its logger: structured events on stdlib ``logging``.

Library code writes ``log = get_logger(__name__)`` at module scope and
``log.info("job_submitted", job_id=..., tube=...)``: snake_case events with
key/value data, bound per unit of work with ``log.bind(...)``. The events
become ordinary :mod:`logging` records of the logger named after the module,
so jobrunner is as quiet as any well-behaved library: the package logger
``jobrunner`` has a :class:`logging.NullHandler`, and nothing is printed until
the application configures logging. Nothing here depends on structlog's
global configuration either, so an application's own ``structlog.configure``
neither silences nor redirects us.

Each record carries its event as a dict in ``record.msg``: a plain
``logging.basicConfig`` shows it as ``job_submitted job_id='...' tube='default'``,
and structlog's :class:`~structlog.stdlib.ProcessorFormatter` (what the
``jobrunner`` command uses, see :mod:`jobrunner.logging`) renders it as the
structured event it is.

:func:`job_context` binds the job's fields to everything logged while a job
runs — by jobrunner, by the job type's plugin and by the libraries it calls
through stdlib ``logging`` — when the application's formatter merges
structlog's context variables (the ``jobrunner`` command's does).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

__all__ = ["Logger", "get_logger", "job_context", "process_job_fields"]

#: What :func:`get_logger` returns (``info``, ``warning``, ``bind``, ... like structlog's).
Logger = structlog.stdlib.BoundLogger


class _Event(dict[str, Any]):
    """An event dict whose ``str()`` is a readable line, for plain stdlib formatters."""

    def __str__(self) -> str:
        data = " ".join(f"{key}={value!r}" for key, value in self.items() if key != "event")
        return f"{self.get('event', '')} {data}".rstrip()


def _to_stdlib(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Hand the event to the stdlib logger as ``record.msg`` (structlog's formatter convention)."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not exc_info or exc_info == (None, None, None):
        exc_info = None
    event = _Event(event_dict)
    if exc_info is not None:
        # ProcessorFormatter reads the traceback from the event; plain formatters from the record.
        event["exc_info"] = exc_info
    return (event,), {"extra": {"_logger": logger, "_name": method_name}, "exc_info": exc_info}


_PROCESSORS: list[Any] = [
    structlog.stdlib.filter_by_level,  # cheap exit when the level is off (the default)
    structlog.contextvars.merge_contextvars,
    _to_stdlib,
]


def get_logger(name: str) -> Logger:
    """Return the structured logger for module ``name`` (pass ``__name__``).

    It writes to the stdlib logger of the same name and is independent of
    structlog's global configuration.
    """
    return structlog.stdlib.BoundLogger(logging.getLogger(name), _PROCESSORS, context={})


# A child process runs one job at a time, so there the job's fields may also be
# attached to records from threads that the plugin starts (context variables do
# not cross into new threads). The worker process runs several jobs at once and
# keeps this off. The mapping is replaced, never mutated, so readers in other
# threads need no lock.
_process_fields: Mapping[str, Any] = {}
_process_wide = False


def use_process_job_context() -> None:
    """Also bind :func:`job_context` fields process-wide (for one-job-at-a-time processes)."""
    global _process_wide
    _process_wide = True


def process_job_fields() -> Mapping[str, Any]:
    """The fields of the job this process is running, when :func:`use_process_job_context` is on."""
    return _process_fields


@contextmanager
def job_context(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` (``job_id``, ``job_type``, ...) to everything logged inside the block."""
    global _process_fields
    with structlog.contextvars.bound_contextvars(**fields):
        if not _process_wide:
            yield
            return
        _process_fields = dict(fields)
        try:
            yield
        finally:
            _process_fields = {}
