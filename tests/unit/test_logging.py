"""Logging: a quiet library on stdlib logging; the CLI renders every record in one format."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import threading

import pytest
import structlog

from jobrunner._log import get_logger, job_context, use_process_job_context
from jobrunner.logging import configure_logging


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_when_not_a_terminal() -> None:
    """Off a terminal every event is one JSON object with event, level, timestamp and data."""
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    log = get_logger("jobrunner.test").bind(job_id="j1")
    log.info("job_deleted", duration_s=0.5)
    log.debug("hidden")
    [event] = _json_lines(stream)
    assert event["event"] == "job_deleted"
    assert event["job_id"] == "j1"
    assert event["duration_s"] == 0.5
    assert event["level"] == "info"
    assert event["logger"] == "jobrunner.test"
    assert str(event["timestamp"]).endswith("Z")


def test_console_lines_on_a_terminal_and_level_filter() -> None:
    """On a terminal events are readable key=value lines; --log-level filters them."""
    stream = _Tty()
    configure_logging("warning", stream=stream)
    log = get_logger("jobrunner.test")
    log.info("not_shown")
    log.warning("job_failed", code="timeout")
    text = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())  # colours on a terminal
    assert "not_shown" not in text
    assert "job_failed" in text and "code=timeout" in text
    assert not text.lstrip().startswith("{")


def test_log_format_json_wins_over_a_terminal() -> None:
    """--log-format json gives JSON lines even on a terminal (docker run -t)."""
    stream = _Tty()
    configure_logging("info", format="json", stream=stream)
    get_logger("jobrunner.test").info("worker_started", slots=2)
    assert _json_lines(stream)[0]["slots"] == 2


def test_log_format_console_wins_off_a_terminal() -> None:
    """--log-format console gives readable lines even when stderr is a pipe."""
    stream = io.StringIO()
    configure_logging("info", format="console", stream=stream)
    get_logger("jobrunner.test").info("worker_started", slots=2)
    assert "worker_started" in stream.getvalue() and "slots=2" in stream.getvalue()
    assert not stream.getvalue().lstrip().startswith("{")


def test_stdlib_and_structlog_records_share_the_format_with_the_job_bound() -> None:
    """A plugin's stdlib and structlog records, and warnings, are JSON lines with the job's id."""
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    with job_context(job_id="j7", job_type="forecast"):
        logging.getLogger("scipy.optimize").warning("did not converge after %d steps", 50)
        structlog.get_logger("plugin").info("rows_read", rows=3)
    import warnings

    warnings.warn("old parameter", UserWarning, stacklevel=1)
    logging.getLogger("urllib3").info("after the job")
    events = _json_lines(stream)
    scipy, plugin, warned, after = events
    assert scipy["event"] == "did not converge after 50 steps"
    assert scipy["level"] == "warning" and scipy["logger"] == "scipy.optimize"
    assert scipy["job_id"] == "j7" and scipy["job_type"] == "forecast"
    assert plugin["event"] == "rows_read" and plugin["rows"] == 3 and plugin["job_id"] == "j7"
    assert "old parameter" in str(warned["event"]) and warned["logger"] == "py.warnings"
    assert "job_id" not in after


def test_exception_traceback_is_part_of_the_json_event() -> None:
    """log.exception puts the traceback into the JSON object, not on lines of its own."""
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        raise ValueError("bad row 7")
    except ValueError:
        get_logger("jobrunner.test").exception("job_handling_failed")
    [event] = _json_lines(stream)
    assert event["level"] == "error"
    assert "ValueError: bad row 7" in str(event["exception"])


def test_process_job_context_reaches_threads_the_plugin_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a child (one job at a time) records from the plugin's own threads carry the job id."""
    import jobrunner._log as _log

    monkeypatch.setattr(_log, "_process_wide", False)
    use_process_job_context()
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    with job_context(job_id="j9"):
        thread = threading.Thread(target=lambda: logging.getLogger("pool").warning("busy"))
        thread.start()
        thread.join()
    logging.getLogger("pool").warning("idle")
    busy, idle = _json_lines(stream)
    assert busy["job_id"] == "j9"
    assert "job_id" not in idle


def test_library_is_silent_without_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    """Unconfigured, the library's events, warnings included, print nothing anywhere."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = []  # as in a fresh application that never configured logging
    try:
        log = get_logger("jobrunner.client")
        log.info("job_submitted", job_id="j1")
        log.warning("queue_disconnected", server="127.0.0.1:11300")
    finally:
        root.handlers[:] = saved
    assert capsys.readouterr() == ("", "")


def test_plain_stdlib_configuration_shows_readable_events() -> None:
    """With logging.basicConfig-style handlers an event reads ``event key=value ...``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("jobrunner")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        get_logger("jobrunner.client").info("job_submitted", job_id="j1", tube="default")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert stream.getvalue() == "INFO jobrunner.client job_submitted job_id='j1' tube='default'\n"


def test_records_name_the_code_that_logged() -> None:
    """Every level method, exception() and log() make records naming the caller's file,
    line and function (what %(pathname)s, %(lineno)d and %(funcName)s show), and level."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("jobrunner.test.caller")
    keep, logger.level = Keep(), logging.DEBUG
    logger.addHandler(keep)
    log = get_logger("jobrunner.test.caller").bind(slot=1)

    def caller() -> list[int]:
        lines = [sys._getframe().f_lineno + 1]
        log.info("one")
        lines.append(sys._getframe().f_lineno + 1)
        log.log(logging.WARNING, "two")
        try:
            raise ValueError("boom")
        except ValueError:
            lines.append(sys._getframe().f_lineno + 1)
            log.exception("three")
        return lines

    try:
        lines = caller()
    finally:
        logger.removeHandler(keep)
        logger.level = logging.NOTSET
    assert [(r.funcName, r.lineno, r.pathname) for r in records] == [
        ("caller", line, __file__) for line in lines
    ]
    assert [r.levelno for r in records] == [logging.INFO, logging.WARNING, logging.ERROR]
    assert records[2].exc_info is not None and records[2].exc_info[0] is ValueError
    assert [r.msg["event"] for r in records] == ["one", "two", "three"]  # type: ignore[index]


def test_unknown_format_is_refused() -> None:
    """A misspelt --log-format is an error, not a silent default."""
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", format="jsonl")


def test_bound_logger_has_structlogs_interface() -> None:
    """bind/unbind/new shape the context, %-args fill the event, exception adds the traceback."""
    stream = io.StringIO()
    configure_logging("debug", format="json", stream=stream)
    log = get_logger("jobrunner.test").bind(job_id="j1", tube="t")
    log.unbind("tube").info("rows_read", rows=3)
    log.try_unbind("missing", "job_id").warning("cache %s is %s", "tiles", "cold")
    log.new(slot=2).debug("slot_idle")
    log.log(logging.ERROR, "job_failed", code="timeout")
    with pytest.raises(KeyError):
        log.unbind("missing")
    try:
        raise OSError("disk full")
    except OSError:
        log.exception("publish_failed")
    rows, cold, idle, failed, published = _json_lines(stream)
    assert (rows["event"], rows["rows"], rows["job_id"]) == ("rows_read", 3, "j1")
    assert "tube" not in rows
    assert cold["event"] == "cache tiles is cold" and "job_id" not in cold
    assert (idle["event"], idle["slot"], idle["level"]) == ("slot_idle", 2, "debug")
    assert "job_id" not in idle
    assert (failed["level"], failed["code"]) == ("error", "timeout")
    assert published["level"] == "error" and "OSError: disk full" in str(published["exception"])


def test_structlog_imported_after_configuration_is_routed_and_json_needs_no_asyncio() -> None:
    """JSON output imports neither structlog nor asyncio; structlog imported later is routed."""
    script = (
        "import sys\n"
        "from jobrunner._log import get_logger, job_context\n"
        "from jobrunner.logging import configure_logging\n"
        "configure_logging('info', format='json')\n"
        "get_logger('jobrunner.test').info('worker_started')\n"
        "print(sorted({'structlog', 'asyncio', 'ssl'} & set(sys.modules)))\n"
        "import structlog\n"
        "with job_context(job_id='j3'):\n"
        "    structlog.get_logger('plugin').info('rows_read', rows=4)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
    started, rows = (json.loads(line) for line in done.stderr.splitlines())
    assert started["event"] == "worker_started"
    assert (rows["event"], rows["rows"], rows["job_id"], rows["logger"]) == (
        "rows_read",
        4,
        "j3",
        "plugin",
    )


def test_httpx_request_lines_only_at_debug() -> None:
    """httpx's line per request is left out at info (one event per job) and shown at debug."""
    stream = io.StringIO()
    configure_logging("info", format="json", stream=stream)
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1/in.json")
    logging.getLogger("httpx").warning("connection reset")
    assert [e["event"] for e in _json_lines(stream)] == ["connection reset"]
    configure_logging("debug", format="json", stream=stream)
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1/in.json")
    assert _json_lines(stream)[-1]["event"] == "HTTP Request: GET http://127.0.0.1/in.json"


def test_structlog_processor_formatter_renders_our_events() -> None:
    """An application's structlog ProcessorFormatter gets jobrunner's events as structured data."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ]
        )
    )
    logger = logging.getLogger("jobrunner")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        get_logger("jobrunner.client").bind(tube="default").info("job_submitted", job_id="j1")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    [event] = _json_lines(stream)
    assert event == {"tube": "default", "event": "job_submitted", "job_id": "j1"}


def test_ctx_log_is_a_structlog_logger_bound_to_the_job() -> None:
    """A job type's ``ctx.log`` is a genuine structlog bound logger (the plugin contract),
    made on first use, whose events reach the same JSON pipeline with the job's fields."""
    from jobrunner.context import Context

    stream = io.StringIO()
    configure_logging("info", format="json", stream=stream)
    bound = get_logger("jobrunner.job").bind(attempt=2)
    ctx = Context(
        job=None,
        input=None,
        params={},
        log=bound,
        progress_callback=lambda fraction, message: None,
        fetch_callback=lambda url: None,
        workdir_factory=lambda: None,
    )
    assert isinstance(ctx.log, structlog.stdlib.BoundLogger)
    assert ctx.log is ctx.log  # made once
    with job_context(job_id="j-7", job_type="echo"):
        ctx.log.bind(rows=3).info("rows_read")
        ctx.log.debug("not_shown")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["rows_read"]
    assert lines[0]["job_id"] == "j-7" and lines[0]["job_type"] == "echo"
    assert lines[0]["attempt"] == 2 and lines[0]["rows"] == 3 and lines[0]["level"] == "info"
