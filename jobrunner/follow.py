"""Reading and following result documents: ``jobrunner status`` and ``submit --wait``.

A result URL serves the job's current document: nothing (404) while the job
waits in the queue, ``running`` with ``progress`` while it runs, then
``done`` or ``failed``. :func:`follow` polls the URL (with ``If-None-Match``,
so an unchanged document costs a 304) until a final document of the
expected job appears; :class:`ProgressDisplay` shows the way there as a
progress bar on a terminal and as plain lines otherwise.

::

    JobRunnerError
    └── ResultUnavailable          the document cannot be read (4xx, not JSON, ...)
        └── WaitTimeout (TimeoutError)   no final document within the time-out
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import quote

import httpx

from jobrunner import __version__
from jobrunner.codec import parse_time
from jobrunner.errors import ConfigError, ResultUnavailable, WaitTimeout

__all__ = [
    "FINAL_STATES",
    "ProgressDisplay",
    "ResultReader",
    "describe",
    "follow",
    "resolve_result_url",
    "summarize",
]

FINAL_STATES = ("done", "failed")
#: Seconds between two polls of the result URL.
DEFAULT_INTERVAL = 0.5


def resolve_result_url(target: str, base_url: str | None) -> str:
    """The result URL of ``target``: a URL as given, or a job ID as ``BASE_URL/ID.json``.

    Raises:
        ConfigError: an ID without a base URL.
    """
    if "://" in target:
        return target
    if not base_url:
        raise ConfigError(
            f"{target!r} is not a URL: give the result URL, or --base-url "
            "(JOBRUNNER_BASE_URL) to look a job ID up as BASE_URL/ID.json"
        )
    return base_url.rstrip("/") + "/" + quote(target, safe="") + ".json"


class ResultReader:
    """Reads result documents over HTTP, one connection pool for many reads.

    Args:
        timeout: seconds for one request.
        transport: an httpx transport, for tests.
    """

    def __init__(self, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None):
        self.client = httpx.Client(
            timeout=timeout,
            follow_redirects=True,
            transport=transport,
            headers={"accept": "application/json", "user-agent": f"jobrunner/{__version__}"},
        )
        self._cache: dict[str, tuple[str, dict[str, Any]]] = {}

    def __enter__(self) -> ResultReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self.client.close()

    def read(self, url: str) -> dict[str, Any] | None:
        """The document at ``url``, or None when there is none yet (404, 410).

        Raises:
            ResultUnavailable: a network error, another 4xx or 5xx answer, or a
                body that is not a JSON object (the message says which).
        """
        headers = {}
        cached = self._cache.get(url)
        if cached is not None:
            headers["if-none-match"] = cached[0]
        try:
            response = self.client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise ResultUnavailable(f"cannot read {url}: {type(exc).__name__}: {exc}") from None
        if response.status_code == 304 and cached is not None:
            return cached[1]
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            raise ResultUnavailable(
                f"{url} answered {response.status_code} {response.reason_phrase}"
                + (f": {response.text[:200].strip()}" if response.text.strip() else ""),
                status=response.status_code,
            )
        try:
            doc = response.json()
        except ValueError:
            raise ResultUnavailable(f"{url} is not a JSON document") from None
        if not isinstance(doc, dict) or "status" not in doc:
            raise ResultUnavailable(f"{url} is not a result document (no 'status')")
        etag = response.headers.get("etag")
        if etag:
            self._cache[url] = (etag, doc)
        return doc


def follow(
    url: str,
    *,
    job_id: str | None = None,
    timeout: float | None = None,
    interval: float = DEFAULT_INTERVAL,
    reader: ResultReader | None = None,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    on_waiting: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Poll ``url`` until a final (``done`` or ``failed``) document appears; return it.

    Args:
        job_id: only documents of this job count; an older job's document at the
            same URL is treated as "not yet".
        timeout: give up after this many seconds (None: wait as long as it takes).
        interval: seconds between polls.
        reader: the reader to use (one is made and closed otherwise).
        on_update: called with each new document (``running`` ones included).
        on_waiting: called with a note while there is no document of the job yet,
            and while the URL cannot be read (network errors are retried).

    Raises:
        WaitTimeout: no final document within ``timeout``; says what was seen last.
        ResultUnavailable: the URL answers with a 4xx other than 404 (not worth retrying).
    """
    own = reader is None
    reader = reader or ResultReader()
    deadline = None if timeout is None else time.monotonic() + timeout
    last: dict[str, Any] | None = None
    note = "no result document yet: the job is waiting in the queue"
    try:
        while True:
            try:
                doc = reader.read(url)
            except ResultUnavailable as exc:
                if exc.status is not None and 400 <= exc.status < 500:
                    raise
                doc, note = None, f"cannot read the result yet ({exc})"
            if doc is not None and job_id is not None and doc.get("id") != job_id:
                note = f"an older result (job {doc.get('id')}) is at the URL; waiting"
                doc = None
            if doc is None:
                if on_waiting is not None:
                    on_waiting(note)
            elif doc != last:
                last = doc
                if on_update is not None:
                    on_update(doc)
            if last is not None and last.get("status") in FINAL_STATES:
                return last
            if deadline is not None and time.monotonic() >= deadline:
                seen = _short_state(last) if last is not None else note
                raise WaitTimeout(f"no final result at {url} after {timeout:g} s; last: {seen}")
            pause = interval
            if deadline is not None:
                pause = max(0.0, min(interval, deadline - time.monotonic()))
            time.sleep(pause)
    finally:
        if own:
            reader.close()


# -- showing documents -----------------------------------------------------------


def _percent(doc: dict[str, Any]) -> int | None:
    progress = doc.get("progress")
    if isinstance(progress, (int, float)) and not isinstance(progress, bool):
        return round(100 * min(1.0, max(0.0, float(progress))))
    return None


def _short_state(doc: dict[str, Any]) -> str:
    status = str(doc.get("status"))
    parts = [status]
    percent = _percent(doc)
    if status == "running" and percent is not None:
        parts.append(f"{percent}%")
    if doc.get("message"):
        parts.append(str(doc["message"]))
    if status == "failed" and isinstance(doc.get("error"), dict):
        parts.append(f"{doc['error'].get('code')}: {doc['error'].get('message')}")
    return " ".join(parts)


def _time(value: Any) -> dt.datetime | None:
    try:
        return parse_time(value)
    except (TypeError, ValueError):
        return None


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def summarize(doc: dict[str, Any]) -> str:
    """One line about a document: ``done: job … (type) in 3.2 s, attempt 1 on node1``."""
    status = doc.get("status")
    head = f"{status}: job {doc.get('id')} ({doc.get('type')})"
    started, finished = _time(doc.get("started")), _time(doc.get("finished"))
    where = f"attempt {doc.get('attempt')} on {doc.get('worker')}"
    if status == "failed" and isinstance(doc.get("error"), dict):
        error = doc["error"]
        return f"{head}: {error.get('code')}: {error.get('message')} ({where})"
    if status == "done" and started and finished:
        return f"{head} in {_duration((finished - started).total_seconds())}, {where}"
    return f"{head}: {_short_state(doc)} ({where})"


def describe(doc: dict[str, Any], *, now: dt.datetime | None = None) -> str:
    """A readable multi-line rendering of a result document (``jobrunner status``)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    rows: list[tuple[str, str]] = [
        ("job", str(doc.get("id"))),
        ("type", str(doc.get("type"))),
        ("status", _short_state(doc)),
    ]
    if doc.get("attempt") is not None or doc.get("worker"):
        rows.append(("attempt", f"{doc.get('attempt')} on {doc.get('worker')}"))
    for key in ("started", "finished", "timestamp"):
        when = _time(doc.get(key))
        if when is not None:
            ago = _duration(max(0.0, (now - when).total_seconds()))
            label = "updated" if key == "timestamp" else key
            rows.append((label, f"{doc[key]} ({ago} ago)"))
    started, finished = _time(doc.get("started")), _time(doc.get("finished"))
    if started and finished:
        rows.append(("took", _duration((finished - started).total_seconds())))
    provenance = doc.get("provenance")
    if isinstance(provenance, dict) and provenance.get("plugin"):
        rows.append(("plugin", f"{provenance.get('plugin')} {provenance.get('plugin_version')}"))
    if doc.get("meta"):
        rows.append(("meta", json.dumps(doc["meta"], sort_keys=True)))
    if "data" in doc:
        text = json.dumps(doc["data"], sort_keys=True)
        rows.append(("data", text if len(text) <= 200 else text[:200] + f"… ({len(text)} chars)"))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


class ProgressDisplay:
    """Shows a job's way to its final state on ``stream`` (stderr).

    On a terminal: one line redrawn in place, with a bar. Otherwise: a plain
    line whenever the state changes (status, whole percent, message, attempt).
    """

    def __init__(self, stream: TextIO, *, tty: bool | None = None, width: int = 30) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.width = width
        self._last_line: str | None = None
        self._drawn = False

    def _emit(self, line: str) -> None:
        if line == self._last_line:
            return
        self._last_line = line
        if self.tty:
            columns = shutil.get_terminal_size((80, 24)).columns
            self.stream.write("\r" + line[: max(10, columns - 1)] + "\x1b[K")
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def waiting(self, note: str) -> None:
        """No document of the job yet (queued, or the URL cannot be read)."""
        self._emit(f"waiting: {note}")

    def update(self, doc: dict[str, Any]) -> None:
        """A new document was read."""
        status = doc.get("status")
        if status in FINAL_STATES:
            self.finish()
            return
        percent = _percent(doc)
        attempt = f" (attempt {doc['attempt']})" if doc.get("attempt", 1) != 1 else ""
        message = f"  {doc['message']}" if doc.get("message") else ""
        if self.tty:
            filled = int(self.width * (percent or 0) / 100)
            bar = "#" * filled + "-" * (self.width - filled)
            shown = f"{percent:3d}%" if percent is not None else "   ?"
            self._emit(f"{status} [{bar}] {shown}{attempt}{message}")
        else:
            shown = f" {percent}%" if percent is not None else ""
            self._emit(f"{status}{shown}{attempt}{message}")

    def finish(self) -> None:
        """End the in-place line (on a terminal), so that what follows starts afresh."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
