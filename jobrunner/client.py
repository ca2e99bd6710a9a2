"""The submit API for web servers: :class:`Client`.

>>> client = Client(beanstalk="127.0.0.1:11300")
>>> job_id = client.submit("prediction", "https://data.example/meter/17.json",
...                        "https://results.example/r/17.json", {"horizon": "24h"})

A job is validated before it is put, so a bad job is refused here, at the
web server, with a clear :class:`~jobrunner.errors.InvalidJob` — not buried
later on a worker. With several beanstalkd servers a job's home server is
chosen by its id (stable), and the client fails over to the next server
when that one is down.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from jobrunner import codec
from jobrunner._log import get_logger
from jobrunner.errors import InvalidJob, QueueError
from jobrunner.job import Job, utcnow
from jobrunner.queue import DEFAULT_PRIORITY, DEFAULT_TTR, Connection

__all__ = ["Client", "Submitted"]

log = get_logger(__name__)


class Submitted(str):
    """The job id returned by :meth:`Client.submit`, with where the job went.

    It is a ``str`` (the job id); ``server`` and ``beanstalk_id`` tell where it
    was put, for ``jobrunner peek``.
    """

    server: str
    beanstalk_id: int


class Client:
    """Submits jobs to one or several beanstalkd servers.

    Args:
        beanstalk: ``HOST:PORT`` or a list of them.
        tube: default tube for :meth:`submit`.
        priority: default beanstalkd priority (0 is most urgent).
        ttr: default time-to-run in seconds (workers keep it alive while a job runs).
        max_job_bytes: largest job document accepted (beanstalkd's ``-z``, 65 535 by default).

    Safe to share between threads.
    """

    def __init__(
        self,
        beanstalk: str | Sequence[str] = "127.0.0.1:11300",
        *,
        tube: str = "default",
        priority: int = DEFAULT_PRIORITY,
        ttr: int = DEFAULT_TTR,
        max_job_bytes: int = codec.MAX_JOB_BYTES,
    ) -> None:
        addresses = [beanstalk] if isinstance(beanstalk, str) else list(beanstalk)
        if not addresses:
            raise ValueError("Client needs at least one beanstalkd address")
        self.connections = [Connection(address, use=tube) for address in addresses]
        self.tube = tube
        self.priority = priority
        self.ttr = ttr
        self.max_job_bytes = max_job_bytes
        self._lock = threading.Lock()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        for conn in self.connections:
            conn.close()

    def submit(
        self,
        type: str,
        input: str | Mapping[str, str],
        result: str,
        params: Mapping[str, Any] | None = None,
        *,
        tube: str | None = None,
        priority: int | None = None,
        delay: int = 0,
        ttr: int | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        expires: dt.datetime | None = None,
        meta: Mapping[str, Any] | None = None,
        id: str | None = None,
    ) -> Submitted:
        """Validate and put a job; return its id.

        Args:
            type: the job type (an entry point name in ``jobrunner.job_types``).
            input: fully qualified input URL, or a mapping of input name to URL.
            result: fully qualified URL where the result document will appear.
            params: the job type's parameters.
            tube, priority, delay, ttr: beanstalkd ``put`` arguments.
            timeout: seconds the computation may take (capped by the worker).
            max_attempts: attempts for retryable failures.
            expires: after this time the job is not run any more.
            meta: free-form data copied into the result document.
            id: the job id; a UUID4 by default.

        Raises:
            InvalidJob: the job document is invalid (every problem listed).
            QueueError: no beanstalkd server accepted the job.
        """
        doc: dict[str, Any] = {
            "v": 1,
            "id": id or str(uuid.uuid4()),
            "type": type,
            "input": input if isinstance(input, str) else dict(input),
            "result": result,
            "params": dict(params or {}),
            "created": codec.format_time(utcnow()),
        }
        optional = {
            "timeout": timeout,
            "max_attempts": max_attempts,
            "meta": meta,
            "expires": codec.format_time(expires) if expires else None,
        }
        doc.update(
            {
                k: (dict(v) if isinstance(v, Mapping) else v)
                for k, v in optional.items()
                if v is not None
            }
        )
        return self.put_document(doc, tube=tube, priority=priority, delay=delay, ttr=ttr)

    def put_document(
        self,
        doc: Mapping[str, Any],
        *,
        tube: str | None = None,
        priority: int | None = None,
        delay: int = 0,
        ttr: int | None = None,
    ) -> Submitted:
        """Validate and put a complete job document (a dict); return its id.

        Raises:
            InvalidJob: the document is invalid.
            QueueError: no server accepted it.
        """
        problems = codec.validate_job(dict(doc))
        if problems:
            raise InvalidJob("invalid job document: " + "; ".join(problems), problems)
        job: Job = codec.converter.structure(dict(doc), Job)
        body = codec.encode_job(job)
        if len(body) > self.max_job_bytes:
            raise InvalidJob(
                f"job document is {len(body)} bytes, beanstalkd takes at most "
                f"{self.max_job_bytes}; pass large data by URL in 'input', not in 'params'"
            )
        for field, value, low, high in (
            ("priority", priority, 0, 2**32 - 1),
            ("delay", delay, 0, 2**32 - 1),
            ("ttr", ttr, 1, 2**32 - 1),
        ):
            if value is not None and not low <= value <= high:
                raise InvalidJob(f"{field}: must be from {low} to {high}, got {value}")
        return self._put(
            job.id,
            body,
            tube or self.tube,
            self.priority if priority is None else priority,
            delay,
            self.ttr if ttr is None else ttr,
        )

    def _put(
        self, job_id: str, body: bytes, tube: str, priority: int, delay: int, ttr: int
    ) -> Submitted:
        # A job's home server is chosen from its id, so retries of a submit land alike.
        n = len(self.connections)
        home = int.from_bytes(hashlib.sha1(job_id.encode()).digest()[:4], "big") % n
        errors = []
        with self._lock:
            for step in range(n):
                conn = self.connections[(home + step) % n]
                try:
                    beanstalk_id = conn.put(
                        body, tube=tube, priority=priority, delay=delay, ttr=ttr
                    )
                except QueueError as exc:
                    errors.append(str(exc))
                    continue
                submitted = Submitted(job_id)
                submitted.server = conn.address
                submitted.beanstalk_id = beanstalk_id
                log.debug(
                    "job_submitted",
                    job_id=job_id,
                    server=conn.address,
                    tube=tube,
                    beanstalk_id=beanstalk_id,
                    failed_over=step > 0,
                )
                return submitted
        raise QueueError("no beanstalkd server accepted the job: " + "; ".join(errors))
