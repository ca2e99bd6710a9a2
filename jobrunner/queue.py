"""The queue adapter: the only module that imports greenstalk.

:class:`Connection` is one connection to one beanstalkd server. It connects
lazily, takes job bodies as raw bytes (``encoding=None``: a body that is not
UTF-8 must reach our own validation, not fail inside the client after the
reserve), and translates greenstalk and socket errors into
:class:`~jobrunner.errors.QueueError` at this boundary. After an error the
connection is dropped and the next call reconnects, no sooner than the
back-off allows; state changes (down, up again) are logged once each, not
once per attempt.

Reservations belong to the connection that made them: touch, delete,
release and bury must go through the same :class:`Connection`.
"""

from __future__ import annotations

import importlib
import json
import random
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import greenstalk

from jobrunner._log import get_logger
from jobrunner.errors import JobNotFound, QueueError

__all__ = [
    "CANCEL_TUBE_PREFIX",
    "DEFAULT_PRIORITY",
    "DEFAULT_TTR",
    "Connection",
    "PutManyError",
    "Reserved",
    "backoff_delay",
    "cancel_tube",
    "parse_address",
]

DEFAULT_PRIORITY = 2**31
DEFAULT_TTR = 60
#: Socket time-out; longer than any reserve-with-timeout we send.
SOCKET_TIMEOUT = 30.0
_BACKOFF_FIRST = 0.2
_BACKOFF_MAX = 15.0

#: Tubes named ``jobrunner.cancel.<hash of the job id>`` hold cancellation markers.
CANCEL_TUBE_PREFIX = "jobrunner.cancel."

log = get_logger(__name__)


def backoff_delay(failures: int, first: float = _BACKOFF_FIRST, cap: float = _BACKOFF_MAX) -> float:
    """Seconds to wait after ``failures`` failures in a row: doubling, capped, jittered."""
    delay: float = min(cap, first * 2.0 ** max(0, failures - 1))
    jitter: float = random.uniform(0.5, 1.0)
    return delay * jitter


def _parse_stats(body: bytes) -> dict[str, Any]:
    """beanstalkd's YAML stats (``key: value`` lines) as a dict, numbers as ints."""
    stats: dict[str, Any] = {}
    for line in body.decode("ascii", "replace").splitlines()[1:]:
        key, _, value = line.partition(": ")
        stats[key] = int(value) if value.isdigit() else value.strip('"')
    return stats


def _builtin_sha256() -> Callable[[bytes], Any]:
    # CPython's own SHA-256 (module _sha2 from 3.12, _sha256 before): hashlib
    # would load OpenSSL's libcrypto (3 MB of the worker's memory) for this one
    # hash per job. The digest is the same.
    for module in ("_sha2", "_sha256"):
        try:
            sha256: Callable[[bytes], Any] = importlib.import_module(module).sha256
        except (ImportError, AttributeError):
            continue
        return sha256
    import hashlib  # pragma: no cover - another interpreter

    return hashlib.sha256  # pragma: no cover


_sha256 = _builtin_sha256()


def cancel_tube(job_id: str) -> str:
    """The tube holding the cancellation marker of a job.

    Job ids may hold characters tube names may not (``:``, ``@``), so the
    name carries a hash of the id: the client and every worker derive the
    same name from the id alone.
    """
    return CANCEL_TUBE_PREFIX + str(_sha256(job_id.encode()).hexdigest())[:40]


class PutManyError(QueueError):
    """Raised by :meth:`Connection.put_many` when not every body was put.

    ``ids`` holds the beanstalkd id of each body put, ``None`` for the others;
    after a lost connection the bodies sent but not answered count as not put
    (they may still have arrived).
    """

    def __init__(self, message: str, ids: list[int | None]) -> None:
        super().__init__(message)
        self.ids = ids


def _json_string(text: str) -> bytes:
    """``text`` as a JSON string literal (bytes)."""
    return json.dumps(text).encode()


def parse_address(address: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6) into host and port."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@attrs.frozen
class Reserved:
    """A job reserved through one connection."""

    id: int
    body: bytes
    server: str
    #: Which connection of the :class:`Connection` reserved it (see ``holds``).
    generation: int = 0


class Connection:
    """One lazily (re)connected beanstalkd connection.

    Args:
        address: ``HOST:PORT`` of the server.
        watch: tubes to reserve from (``reserve`` is refused when empty).
        use: the tube ``put`` puts into.
    """

    def __init__(self, address: str, *, watch: Sequence[str] = (), use: str = "default") -> None:
        self.address = address
        self.watch = tuple(watch)
        self.use = use
        self._client: greenstalk.Client[bytes] | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._down = False
        self.reconnects = 0
        #: Counts the sockets opened; a reservation lives only as long as its socket.
        self.generation = 0
        #: A job reserved ahead, with a delete (see ``delete``): the next reserve returns it.
        self._next: Reserved | None = None

    # -- connection state ------------------------------------------------

    @property
    def down(self) -> bool:
        """True after a failure, until a call succeeds again."""
        return self._down

    @property
    def retry_in(self) -> float:
        """Seconds until the next connection attempt is allowed (0 when connected)."""
        if self._client is not None:
            return 0.0
        return max(0.0, self._retry_at - time.monotonic())

    def _connect(self) -> greenstalk.Client[bytes]:
        if self._client is not None:
            return self._client
        now = time.monotonic()
        if now < self._retry_at:
            raise QueueError(
                f"beanstalkd {self.address} is down; next try in {self._retry_at - now:.1f} s"
            )
        try:
            sock = socket.create_connection(parse_address(self.address), timeout=SOCKET_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client: greenstalk.Client[bytes] = greenstalk.Client(
                sock, encoding=None, use=self.use, watch=self.watch or "default"
            )
        except (OSError, greenstalk.Error) as exc:
            self._failed(exc)
            raise QueueError(f"cannot connect to beanstalkd {self.address}: {exc}") from exc
        if self._down:
            self.reconnects += 1
            log.info("queue_reconnected", server=self.address, failures=self._failures)
        self._client, self._failures, self._down = client, 0, False
        self.generation += 1
        return client

    def _failed(self, exc: BaseException) -> None:
        self.close()
        self._failures += 1
        self._retry_at = time.monotonic() + backoff_delay(self._failures)
        if not self._down:
            self._down = True
            log.warning(
                "queue_disconnected", server=self.address, error=f"{type(exc).__name__}: {exc}"
            )

    def close(self) -> None:
        """Close the socket; the next call reconnects. Reservations are released."""
        if self._client is not None:
            try:
                self._client.close()
            except OSError:
                pass
            self._client = None
        self._next = None

    def _call(self, method: str, *args: Any) -> Any:
        client = self._connect()
        try:
            return getattr(client, method)(*args)
        except greenstalk.NotFoundError:
            raise JobNotFound(
                f"beanstalkd {self.address}: job not found for {method} (deleted, or the "
                "reservation was lost)"
            ) from None
        except (greenstalk.TimedOutError, greenstalk.DeadlineSoonError):
            raise  # answers to reserve, handled there
        except greenstalk.BeanstalkdError as exc:
            raise QueueError(
                f"beanstalkd {self.address} refused {method}: {type(exc).__name__}"
            ) from exc
        except (OSError, greenstalk.UnknownResponseError, ValueError, IndexError) as exc:
            # EOF shows up as an unknown (empty) response line from greenstalk.
            self._failed(exc)
            raise QueueError(
                f"connection to beanstalkd {self.address} lost during {method}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    # -- worker side -----------------------------------------------------

    def reserve(self, timeout: int) -> Reserved | None:
        """Reserve a job from the watched tubes, waiting up to ``timeout`` seconds.

        Returns ``None`` when no job came in time.

        Raises:
            QueueError: the server is down or the connection broke.
        """
        ahead, self._next = self._next, None
        if ahead is not None and self.holds(ahead):
            return ahead
        try:
            job = self._call("reserve", timeout)
        except greenstalk.TimedOutError:
            return None
        except greenstalk.DeadlineSoonError:  # pragma: no cover - workers reserve nothing
            return None  # while they hold a job; a producer-side reserve can see it
        return Reserved(id=job.id, body=job.body, server=self.address, generation=self.generation)

    def take_next(self) -> Reserved | None:
        """The job the last ``delete(..., reserve_next=True)`` reserved, or None; no round trip."""
        ahead, self._next = self._next, None
        return ahead if ahead is not None and self.holds(ahead) else None

    def holds(self, job: Reserved) -> bool:
        """True while the socket that reserved ``job`` is still the open one.

        After a reconnect the reservation is gone, and the same job id may
        even name another job (a beanstalkd restarted without binlog counts
        ids from 1 again): delete, release, bury and touch must not be sent.
        """
        return self._client is not None and job.generation == self.generation

    def stats_job(self, job_id: int) -> dict[str, Any]:
        """Return beanstalkd's ``stats-job`` of a job (tube, pri, ttr, reserves, ...)."""
        stats: dict[str, Any] = self._call("stats_job", job_id)
        return stats

    def stats_job_and_tube(self, job_id: int, tube: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``stats-job`` of a job and ``stats-tube`` of a tube in one round trip.

        The tube's stats are empty when the tube does not exist.

        Raises:
            JobNotFound: no such job.
            QueueError: the connection broke.
        """
        (status, _, body), (tube_status, _, tube_body) = self._exchange(
            "stats-job", [b"stats-job %d" % job_id, b"stats-tube " + tube.encode("ascii")]
        )
        if status == b"NOT_FOUND":
            raise JobNotFound(f"beanstalkd {self.address}: job {job_id} not found for stats-job")
        if status != b"OK" or body is None:
            raise QueueError(f"beanstalkd {self.address} refused stats-job: {status!r}")
        tube_stats = _parse_stats(tube_body) if tube_status == b"OK" and tube_body else {}
        return _parse_stats(body), tube_stats

    def _exchange(
        self, what: str, lines: Sequence[bytes]
    ) -> list[tuple[bytes, list[bytes], bytes | None]]:
        """Send several commands in one write, then read each answer in turn.

        Returns ``(status, values, body)`` per command; ``body`` for answers that
        carry one (``RESERVED``, ``OK``, ``FOUND``).

        Raises:
            QueueError: the connection broke (it is dropped).
        """
        client = self._connect()
        # greenstalk has no pipelining: write on its socket and read through its
        # buffered reader, so that the client stays usable for the next command.
        sock, reader = client._sock, client._reader
        answers: list[tuple[bytes, list[bytes], bytes | None]] = []
        try:
            sock.sendall(b"".join(line + b"\r\n" for line in lines))
            for _ in lines:
                line = reader.readline()
                if not line.endswith(b"\r\n"):
                    raise EOFError("connection closed by beanstalkd")
                status, *values = line[:-2].split()
                body = None
                if status in (b"RESERVED", b"OK", b"FOUND"):
                    size = int(values[-1])
                    data = reader.read(size + 2)
                    if len(data) != size + 2:
                        raise EOFError("connection closed by beanstalkd in a body")
                    body = data[:-2]
                answers.append((status, values, body))
        except (OSError, EOFError, ValueError, IndexError) as exc:
            self._failed(exc)
            raise QueueError(
                f"connection to beanstalkd {self.address} lost during {what}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return answers

    def touch(self, job_id: int) -> None:
        """Renew the reservation of a job reserved on this connection."""
        self._call("touch", greenstalk.Job(job_id, b""))

    def delete(self, job_id: int, *, reserve_next: bool = False) -> None:
        """Delete a job (reserved on this connection, or buried/ready/delayed).

        With ``reserve_next`` the same write also reserves the next ready job
        without waiting (a worker's next step): the next :meth:`reserve`
        returns it, and a round trip is saved.

        Raises:
            JobNotFound: no such job (or not reserved here).
            QueueError: refused, or the connection broke.
        """
        if not reserve_next or not self.watch:
            self._call("delete", job_id)
            return
        (status, _, _), (reserved, values, body) = self._exchange(
            "delete", [b"delete %d" % job_id, b"reserve-with-timeout 0"]
        )
        if reserved == b"RESERVED" and body is not None:
            self._next = Reserved(
                id=int(values[0]), body=body, server=self.address, generation=self.generation
            )
        if status == b"NOT_FOUND":
            raise JobNotFound(
                f"beanstalkd {self.address}: job not found for delete (deleted, or the "
                "reservation was lost)"
            )
        if status != b"DELETED":
            raise QueueError(f"beanstalkd {self.address} refused delete: {status!r}")

    def release(self, job_id: int, priority: int, delay: int = 0) -> None:
        """Put a reserved job back, ready after ``delay`` seconds."""
        self._call("release", greenstalk.Job(job_id, b""), priority, delay)

    def bury(self, job_id: int, priority: int) -> None:
        """Bury a reserved job: it waits in the tube's dead-letter list for ``kick``."""
        self._call("bury", greenstalk.Job(job_id, b""), priority)

    # -- producer and operator side ---------------------------------------

    def put(
        self,
        body: bytes,
        *,
        tube: str,
        priority: int = DEFAULT_PRIORITY,
        delay: int = 0,
        ttr: int = DEFAULT_TTR,
    ) -> int:
        """Put a job body into ``tube``; return its beanstalkd id."""
        if tube != self.use:
            self._call("use", tube)
            self.use = tube
        job_id: int = self._call("put", body, priority, delay, ttr)
        return job_id

    def put_many(
        self,
        bodies: Sequence[bytes],
        *,
        tube: str,
        priority: int = DEFAULT_PRIORITY,
        delay: int = 0,
        ttr: int = DEFAULT_TTR,
    ) -> list[int]:
        """Put many job bodies pipelined (one write, then the answers); return their ids.

        Keep a batch to about a thousand bodies: the answers wait in the socket's
        receive buffer until every put is written.

        Raises:
            PutManyError: some bodies were refused or the connection broke
                (``ids`` says which were put).
        """
        client = self._connect()
        if tube != self.use:
            self._call("use", tube)
            self.use = tube
        head = b"put %d %d %d " % (priority, delay, ttr)
        payload = b"".join(b"%s%d\r\n%s\r\n" % (head, len(body), body) for body in bodies)
        ids: list[int | None] = []
        refused: list[str] = []
        # greenstalk has no pipelining: write on its socket and read through its
        # buffered reader, so that the client stays usable for the next command.
        sock, reader = client._sock, client._reader
        try:
            sock.sendall(payload)
            for _ in bodies:
                line = reader.readline()
                if not line:
                    raise EOFError("connection closed by beanstalkd")
                word, _, rest = line.strip().partition(b" ")
                if word == b"INSERTED":
                    ids.append(int(rest))
                else:
                    ids.append(None)
                    refused.append(word.decode("ascii", "replace") or "no answer")
        except (OSError, EOFError, ValueError) as exc:
            self._failed(exc)
            ids += [None] * (len(bodies) - len(ids))
            raise PutManyError(
                f"connection to beanstalkd {self.address} lost during put_many: "
                f"{type(exc).__name__}: {exc}",
                ids,
            ) from exc
        if refused:
            raise PutManyError(
                f"beanstalkd {self.address} refused {len(refused)} of {len(bodies)} puts: "
                + ", ".join(sorted(set(refused))),
                ids,
            )
        return [i for i in ids if i is not None]

    # -- cancellation markers ---------------------------------------------

    def request_cancel(self, job_id: str) -> int:
        """Leave a cancellation marker for ``job_id`` (see :func:`cancel_tube`)."""
        body = b'{"cancel": %s}' % _json_string(job_id)
        return self.put(body, tube=cancel_tube(job_id), priority=0, ttr=DEFAULT_TTR)

    def cancel_requested(self, job_id: str) -> bool:
        """True when a cancellation marker for ``job_id`` waits on this server."""
        try:
            stats = self.stats_tube(cancel_tube(job_id))
        except JobNotFound:  # no such tube: nobody asked
            return False
        return int(stats.get("current-jobs-ready", 0)) > 0

    def clear_cancel(self, job_id: str, bound: int = 100) -> int:
        """Delete the cancellation markers of ``job_id``; return how many."""
        tube, cleared = cancel_tube(job_id), 0
        while cleared < bound:
            marker = self.peek_state(tube, "ready")
            if marker is None:
                break
            try:
                self.delete(marker.id)
            except JobNotFound:  # another worker cleared it first
                pass
            cleared += 1
        return cleared

    def peek(self, job_id: int) -> Reserved:
        """Return a job by id without reserving it."""
        job = self._call("peek", job_id)
        return Reserved(id=job.id, body=job.body, server=self.address)

    def peek_state(self, tube: str, state: str) -> Reserved | None:
        """Return the next ``ready``, ``delayed`` or ``buried`` job of a tube, if any."""
        self._call("use", tube)
        self.use = tube
        try:
            job = self._call(f"peek_{state}")
        except JobNotFound:
            return None
        return Reserved(id=job.id, body=job.body, server=self.address)

    def kick(self, tube: str, bound: int) -> int:
        """Kick up to ``bound`` buried (or delayed) jobs of ``tube``; return how many."""
        self._call("use", tube)
        self.use = tube
        kicked: int = self._call("kick", bound)
        return kicked

    def kick_job(self, job_id: int) -> None:
        """Kick one buried or delayed job by id."""
        self._call("kick_job", job_id)

    def pause_tube(self, tube: str, seconds: int) -> None:
        """Pause ``tube``: no job is reserved from it for ``seconds`` (0 resumes it)."""
        self._call("pause_tube", tube, seconds)

    def stats(self) -> dict[str, Any]:
        """Return the server's ``stats``."""
        stats: dict[str, Any] = self._call("stats")
        return stats

    def stats_tube(self, tube: str) -> dict[str, Any]:
        """Return ``stats-tube`` of one tube."""
        stats: dict[str, Any] = self._call("stats_tube", tube)
        return stats

    def tubes(self) -> list[str]:
        """Return the names of the server's tubes."""
        names: list[str] = self._call("tubes")
        return names

    def iter_buried(self, tube: str, window: int = 10000) -> Iterator[Reserved]:
        """Yield the buried jobs of a tube without changing them.

        beanstalkd only peeks at the first buried job (the one buried first,
        not the lowest id), so this walks the job ids outwards from it, down
        then up, with ``stats-job``. A walk stops once the tube's buried count
        is found or after ``window`` ids in a row without a buried job of the
        tube (ids of deleted jobs and of other tubes in between).
        """
        first = self.peek_state(tube, "buried")
        if first is None:
            return
        total = int(self.stats_tube(tube).get("current-jobs-buried", 0))
        yield first
        found = 1
        for step in (-1, 1):
            job_id, since_hit = first.id + step, 0
            while found < total and since_hit < window and job_id > 0:
                try:
                    stats = self.stats_job(job_id)
                except JobNotFound:
                    stats = {}
                if stats.get("tube") == tube and stats.get("state") == "buried":
                    found += 1
                    since_hit = 0
                    try:
                        yield self.peek(job_id)
                    except JobNotFound:  # deleted or kicked in between
                        pass
                else:
                    since_hit += 1
                job_id += step
