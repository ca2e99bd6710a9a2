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

Each record carries its event as a dict in ``record.msg`` (structlog's
convention for records it hands to stdlib): a plain ``logging.basicConfig``
shows it as ``job_submitted job_id='...' tube='default'``, and structlog's
:class:`~structlog.stdlib.ProcessorFormatter` renders it as the structured
event it is; so does the ``jobrunner`` command (see :mod:`jobrunner.logging`).

:class:`BoundLogger` has the interface of structlog's bound loggers
(``bind``, ``unbind``, ``new``, ``info``, ``exception``, ...) but is written
here, on stdlib :mod:`logging` alone: importing structlog imports
:mod:`asyncio` (and with it :mod:`ssl`), several megabytes in every worker
and child process, which never run a coroutine.

:func:`job_context` binds the job's fields to everything logged while a job
runs — by jobrunner, by the job type's plugin and by the libraries it calls
through stdlib ``logging`` — for formatters that merge :func:`job_fields`
(the ``jobrunner`` command's does) or structlog's context variables.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = [
    "BoundLogger",
    "Logger",
    "get_logger",
    "job_context",
    "job_fields",
    "process_job_fields",
]


class _Event(dict[str, Any]):
    """An event dict whose ``str()`` is a readable line, for plain stdlib formatters."""

    def __str__(self) -> str:
        data = " ".join(f"{key}={value!r}" for key, value in self.items() if key != "event")
        return f"{self.get('event', '')} {data}".rstrip()


_NO_FIELDS: Mapping[str, Any] = {}
# The fields of the job the current thread (or task) works on; see job_context.
_job_fields: ContextVar[Mapping[str, Any]] = ContextVar("jobrunner_job_fields", default=_NO_FIELDS)


def _exc_info(value: Any) -> Any:
    """``exc_info=`` as the stdlib wants it: a (type, value, traceback) tuple, or None."""
    if value is True:
        value = sys.exc_info()
    elif isinstance(value, BaseException):
        value = (type(value), value, value.__traceback__)
    if not value or value == (None, None, None):
        return None
    return value


class BoundLogger:
    """A structured logger bound to key/value context, writing stdlib :mod:`logging` records.

    The interface of structlog's bound loggers: ``log.bind(job_id=...)``
    returns a new logger with more context; ``log.info("event_name", key=value)``
    logs an event (``debug``, ``info``, ``warning``, ``error``, ``critical``,
    ``exception`` — the latter with the current traceback —, and
    ``log(level, ...)``). Positional arguments are %-formatted into the event,
    ``exc_info=`` works as in stdlib logging. Nothing is built when the
    level is off.
    """

    __slots__ = ("_context", "_logger")

    def __init__(self, logger: logging.Logger, context: Mapping[str, Any] | None = None) -> None:
        self._logger = logger
        self._context: dict[str, Any] = dict(context or {})

    def __repr__(self) -> str:
        return f"<BoundLogger(name={self._logger.name!r}, context={self._context!r})>"

    @property
    def name(self) -> str:
        """The stdlib logger's name."""
        return self._logger.name

    # -- context -------------------------------------------------------------------

    def bind(self, **new_values: Any) -> BoundLogger:
        """Return a logger with ``new_values`` added to the context."""
        return BoundLogger(self._logger, {**self._context, **new_values})

    def new(self, **new_values: Any) -> BoundLogger:
        """Return a logger with only ``new_values`` as context."""
        return BoundLogger(self._logger, new_values)

    def unbind(self, *keys: str) -> BoundLogger:
        """Return a logger without ``keys``.

        Raises:
            KeyError: one of the keys is not bound.
        """
        context = dict(self._context)
        for key in keys:
            del context[key]
        return BoundLogger(self._logger, context)

    def try_unbind(self, *keys: str) -> BoundLogger:
        """Like :meth:`unbind`, without complaint about keys that are not bound."""
        return BoundLogger(self._logger, {k: v for k, v in self._context.items() if k not in keys})

    # -- levels --------------------------------------------------------------------

    def isEnabledFor(self, level: int) -> bool:
        """Whether an event at ``level`` would be logged."""
        return self._logger.isEnabledFor(level)

    def getEffectiveLevel(self) -> int:
        """The stdlib logger's effective level."""
        return self._logger.getEffectiveLevel()

    # -- events --------------------------------------------------------------------

    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log ``event`` with ``kw`` at debug level."""
        self._emit(logging.DEBUG, "debug", event, args, kw)

    def info(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log ``event`` with ``kw`` at info level."""
        self._emit(logging.INFO, "info", event, args, kw)

    def warning(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log ``event`` with ``kw`` at warning level."""
        self._emit(logging.WARNING, "warning", event, args, kw)

    warn = warning

    def error(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log ``event`` with ``kw`` at error level."""
        self._emit(logging.ERROR, "error", event, args, kw)

    def critical(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log ``event`` with ``kw`` at critical level."""
        self._emit(logging.CRITICAL, "critical", event, args, kw)

    fatal = critical

    def exception(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log ``event`` with ``kw`` at error level, with the exception being handled."""
        kw.setdefault("exc_info", True)
        self._emit(logging.ERROR, "exception", event, args, kw)

    def log(self, level: int, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log ``event`` with ``kw`` at the numeric ``level``."""
        name = logging.getLevelName(level)
        self._emit(level, name.lower() if isinstance(name, str) else "log", event, args, kw)

    def _emit(
        self, level: int, method: str, event: str | None, args: tuple[Any, ...], kw: dict[str, Any]
    ) -> None:
        logger = self._logger
        if not logger.isEnabledFor(level):  # the cheap exit: nothing is built
            return
        exc_info = _exc_info(kw.pop("exc_info", None))
        fields = _Event(self._context)
        if args and isinstance(event, str):
            try:
                event = event % args
            except (TypeError, ValueError):  # a log call must not raise
                event = f"{event} {args!r}"
        fields["event"] = event
        fields.update(kw)
        for key, value in _job_fields.get().items():
            fields.setdefault(key, value)
        if exc_info is not None:
            # structlog's ProcessorFormatter reads the traceback from the event,
            # plain formatters from the record.
            fields["exc_info"] = exc_info
        # The record names the caller of info() (two frames up), as stacklevel=3 would;
        # taken directly, without the stdlib's walk that tests every frame's file name.
        caller = sys._getframe(2)
        code = caller.f_code
        record = logger.makeRecord(
            logger.name,
            level,
            code.co_filename,
            caller.f_lineno,
            fields,
            (),
            exc_info,
            code.co_name,
            {"_logger": logger, "_name": method},
        )
        logger.handle(record)


#: What :func:`get_logger` returns.
Logger = BoundLogger


def _to_stdlib(
    logger: Any, method_name: str, event_dict: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """structlog's last processor: the event as ``record.msg``, as :class:`BoundLogger` logs it."""
    exc_info = _exc_info(event_dict.pop("exc_info", None))
    fields = _Event(event_dict)
    for key, value in _job_fields.get().items():
        fields.setdefault(key, value)
    if exc_info is not None:
        fields["exc_info"] = exc_info
    return (fields,), {"exc_info": exc_info, "extra": {"_logger": logger, "_name": method_name}}


def as_structlog(logger: BoundLogger) -> Any:
    """A structlog bound logger with ``logger``'s stdlib logger and context.

    What job types get as ``ctx.log``: a genuine ``structlog.stdlib.BoundLogger``,
    independent of structlog's global configuration, whose events become the
    same stdlib records as :class:`BoundLogger`'s. structlog (and the asyncio
    it imports) is loaded here, so only processes whose job types log pay for it.
    """
    import structlog

    processors: list[Any] = [structlog.stdlib.filter_by_level, _to_stdlib]
    return structlog.stdlib.BoundLogger(logger._logger, processors, dict(logger._context))


def get_logger(name: str) -> BoundLogger:
    """Return the structured logger for module ``name`` (pass ``__name__``).

    It writes to the stdlib logger of the same name and is independent of
    structlog's global configuration.
    """
    return BoundLogger(logging.getLogger(name))


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


def job_fields() -> Mapping[str, Any]:
    """The fields :func:`job_context` bound in the current thread (or task)."""
    return _job_fields.get()


@contextmanager
def job_context(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` (``job_id``, ``job_type``, ...) to everything logged inside the block."""
    global _process_fields
    token = _job_fields.set({**_job_fields.get(), **fields})
    try:
        with ExitStack() as stack:
            # Code that uses structlog with its own configuration sees them too.
            structlog_contextvars = sys.modules.get("structlog.contextvars")
            if structlog_contextvars is not None:
                stack.enter_context(structlog_contextvars.bound_contextvars(**fields))
            if not _process_wide:
                yield
                return
            _process_fields = dict(fields)
            try:
                yield
            finally:
                _process_fields = {}
    finally:
        _job_fields.reset(token)
