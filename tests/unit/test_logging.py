"""Logging: structured events, JSON lines off a terminal, readable lines on one."""

from __future__ import annotations

import io
import json
import re

import structlog

from jobrunner.logging import configure_logging


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_when_not_a_terminal() -> None:
    """Off a terminal every event is one JSON object with event, level, timestamp and data."""
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    log = structlog.get_logger("test").bind(job_id="j1")
    log.info("job_deleted", duration_s=0.5)
    log.debug("hidden")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "job_deleted"
    assert event["job_id"] == "j1"
    assert event["duration_s"] == 0.5
    assert event["level"] == "info"
    assert event["timestamp"].endswith("Z")


def test_console_lines_on_a_terminal_and_level_filter() -> None:
    """On a terminal events are readable key=value lines; --log-level filters them."""
    stream = _Tty()
    configure_logging("warning", stream=stream)
    log = structlog.get_logger("test")
    log.info("not_shown")
    log.warning("job_failed", code="timeout")
    text = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())  # colours on a terminal
    assert "not_shown" not in text
    assert "job_failed" in text and "code=timeout" in text
    assert not text.lstrip().startswith("{")
