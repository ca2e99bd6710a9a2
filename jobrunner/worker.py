"""The worker: reserve → hand to a child → keep the reservation alive → delete/release/bury.

``jobrunner work`` runs one :class:`Worker` with ``concurrency`` slots. Each
slot is a thread with its own beanstalkd connections (reservations belong to
the connection that made them) and its own child process
(:mod:`jobrunner.pool`), which fetches, runs and publishes
(:mod:`jobrunner.runner`). The slot thread only talks to the queue and
watches the child:

* while the job runs it ``touch``-es the reservation well before the TTR,
  so a long job is never handed to a second worker;
* past the job's time-out it kills the child and fails the job (``timeout``);
* if the child dies it fails the job (``worker_crash``) and starts a new child;
* the job is deleted only after the child reports its result published.

Start-up: build publishers (bad settings fail here, before any job is
taken), start the slots (each starts its child, then reserves). Shut-down on
SIGTERM/SIGINT: stop reserving, let running jobs finish within ``grace``
seconds, release the rest with no delay so other workers take them at once,
stop the children, exit 0. A second signal releases at once.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from types import FrameType
from typing import Any

from jobrunner import codec
from jobrunner._log import get_logger
from jobrunner.config import Config
from jobrunner.errors import (
    InvalidJob,
    JobFailure,
    JobNotFound,
    JobTimeout,
    QueueError,
    WorkerCrash,
)
from jobrunner.job import utcnow
from jobrunner.metrics import MetricsServer, WorkerMetrics
from jobrunner.pool import ChildDied, ChildProcess
from jobrunner.publish.base import PublisherChain, build_publishers
from jobrunner.queue import DEFAULT_PRIORITY, Connection, Reserved
from jobrunner.results import ResultBuilder
from jobrunner.runner import BURY, DELETE, RELEASE, publish_document

__all__ = ["Worker"]

log = get_logger(__name__)

#: Longest the slot sleeps between checks while a job runs (signals, time-out).
_POLL = 0.25
#: Seconds to wait before starting a child again after it failed to start.
_CHILD_RESTART_DELAY = 2.0


class Worker:
    """A worker node: ``concurrency`` slots reserving from every configured server."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stopping = threading.Event()
        self.aborting = threading.Event()
        self.stop_deadline = float("inf")
        self._signals: list[int] = []  # appended by the signal handler, read by run()
        self.publishers: PublisherChain = build_publishers(config)
        self._publish_lock = threading.Lock()
        self.counters: dict[str, int] = {}
        self._counter_lock = threading.Lock()
        self.metrics = WorkerMetrics(
            reconnects=self._reconnects,
            servers_up=self.servers_reachable,
            queue=self._queue_depth if config.metrics_queue else None,
        )
        # Connections of the metrics scraper's own (reservations stay with the slots).
        self._probes = [Connection(address) for address in config.beanstalk]
        self._probe_lock = threading.Lock()
        self.slots = [Slot(self, index) for index in range(config.concurrency)]

    def count(self, name: str, amount: int = 1) -> None:
        """Add to a named counter (jobs by outcome, child restarts, ...)."""
        with self._counter_lock:
            self.counters[name] = self.counters.get(name, 0) + amount

    # -- metrics and health ---------------------------------------------------

    def _reconnects(self) -> dict[str, int]:
        totals = {address: 0 for address in self.config.beanstalk}
        for slot in self.slots:
            for conn in slot.connections:
                totals[conn.address] += conn.reconnects
        return totals

    def servers_reachable(self) -> int:
        """How many configured servers at least one slot is connected to (or trying)."""
        return sum(
            1
            for index in range(len(self.config.beanstalk))
            if any(not slot.connections[index].down for slot in self.slots)
        )

    def _queue_depth(self) -> list[tuple[tuple[str, str, str], float]]:
        states = ("ready", "reserved", "delayed", "buried")
        samples: list[tuple[tuple[str, str, str], float]] = []
        with self._probe_lock:
            for conn in self._probes:
                for tube in self.config.tube:
                    try:
                        stats = conn.stats_tube(tube)
                    except JobNotFound:  # the tube does not exist yet: empty
                        stats = {}
                    except QueueError:
                        break
                    samples += [
                        ((conn.address, tube, state), float(stats.get(f"current-jobs-{state}", 0)))
                        for state in states
                    ]
        return samples

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy unless no server is reachable, a slot cannot start its child, or
        results failed to publish for several jobs in a row."""
        servers = self.servers_reachable()
        broken = [slot.index for slot in self.slots if slot.child_failures >= 2]
        publishing = self.metrics.publishing_ok()
        details: dict[str, Any] = {
            "servers_up": servers,
            "servers": len(self.config.beanstalk),
            "slots": len(self.slots),
            "busy": sum(1 for slot in self.slots if slot.busy),
            "broken_slots": broken,
            "publishing": publishing,
            "running": [slot.current for slot in self.slots if slot.current is not None],
            "stopping": self.stopping.is_set(),
        }
        return servers > 0 and not broken and publishing, details

    # -- life cycle ----------------------------------------------------------

    def run(self, *, install_signals: bool = True) -> int:
        """Run until stopped by a signal (or :meth:`stop`); return the exit code."""
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        log.info(
            "worker_started",
            servers=list(self.config.beanstalk),
            tubes=list(self.config.tube),
            concurrency=self.config.concurrency,
            publishers=list(self.config.publisher),
            worker=self.config.worker_name,
        )
        server = None
        if self.config.metrics_port is not None:
            server = MetricsServer(
                self.metrics.registry,
                self.health,
                host=self.config.metrics_host,
                port=self.config.metrics_port,
            ).start()
            log.info("metrics_serving", host=self.config.metrics_host, port=server.port)
        for slot in self.slots:
            slot.start()
        while any(slot.is_alive() for slot in self.slots):
            self._handle_signals()
            for slot in self.slots:
                slot.join(timeout=0.1)
                self._handle_signals()
        if server is not None:
            server.stop()
        for conn in self._probes:
            conn.close()
        self.publishers.close()
        log.info("worker_stopped", counters=self.counters)
        return 0

    def stop(self, *, now: bool = False) -> None:
        """Stop reserving; running jobs get ``grace`` seconds (none when ``now``)."""
        if not self.stopping.is_set():
            self.stop_deadline = time.monotonic() + self.config.grace
            self.stopping.set()
            log.info(
                "worker_stopping",
                grace=self.config.grace,
                running=sum(1 for slot in self.slots if slot.busy),
            )
        if now:
            self.aborting.set()
            log.warning("worker_aborting", running=sum(1 for slot in self.slots if slot.busy))

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only record it: a handler that logs or takes locks can deadlock when a second
        # signal interrupts it mid-write (seen: SIGINT, then SIGTERM, a hung worker).
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        """Act on the signals received since the last call (first: stop; next: abort)."""
        while self._signals:
            signum = self._signals.pop(0)
            log.info("signal_received", signal=signal.Signals(signum).name)
            self.stop(now=self.stopping.is_set())

    # -- publication from the worker process (crash, time-out, invalid job) --

    def publish_failure(
        self, url: str, builder: ResultBuilder, failure: JobFailure, bound: Any
    ) -> bool:
        """Publish a ``failed`` document from the worker process; True when it got out."""
        try:
            with self._publish_lock:
                self.publishers.check(url)
                publish_document(
                    self.publishers, url, builder.failed(failure), self.config.max_result_bytes
                )
        except JobFailure as exc:
            bound.warning("failure_publish_failed", code=exc.code, error=exc.message)
            return False
        except Exception as exc:  # a publisher's own bug must not leave the job reserved
            bound.exception("failure_publish_failed", error=f"{type(exc).__name__}: {exc}")
            return False
        return True


class Slot(threading.Thread):  # never name a method like a Thread internal (3.13 added _handle)
    """One job at a time: its own queue connections and its own child process."""

    def __init__(self, worker: Worker, index: int) -> None:
        super().__init__(name=f"slot-{index}", daemon=True)
        self.worker = worker
        self.config = worker.config
        self.index = index
        self.busy = False
        #: The job this slot runs now, for /health (job id, type, tube, since), or None.
        self.current: dict[str, Any] | None = None
        self.connections = [
            Connection(address, watch=self.config.tube) for address in self.config.beanstalk
        ]
        self.child = ChildProcess(self.config, index)
        self.child_failures = 0  # consecutive failed starts: the health check reads it
        self.metrics = worker.metrics
        self._turn = index  # spreads the slots' blocking reserves over the servers

    def run(self) -> None:
        """Reserve and run jobs until the worker stops."""
        try:
            while not self.worker.stopping.is_set():
                try:
                    self._step()
                except Exception:
                    # A bug here must not silently cost the worker a slot.
                    log.exception("slot_error", slot=self.index)
                    self.worker.stopping.wait(1.0)
        finally:
            self.child.stop()
            for conn in self.connections:
                conn.close()
            log.info("slot_stopped", slot=self.index)

    def _step(self) -> None:
        if not self._ensure_child():
            return
        found = self._reserve()
        if found is not None:
            self.busy = True
            self.metrics.job_started()
            try:
                self._handle_job(*found)
            except Exception:
                self._bury_unhandled(*found)
            finally:
                self.busy = False
                self.current = None
                self.metrics.job_ended()

    def _bury_unhandled(self, reserved: Reserved, conn: Connection) -> None:
        """Bury a job whose handling failed in jobrunner itself (a bug, not the job's fault).

        Left reserved, it would come back after its TTR and fail the same way for
        ever; buried, an operator sees it in ``jobrunner buried`` and can kick it
        once the worker is fixed.
        """
        log.exception("slot_error", slot=self.index, beanstalk_id=reserved.id)
        self.worker.count("jobs_unhandled")
        if not conn.holds(reserved):
            return
        try:
            conn.bury(reserved.id, DEFAULT_PRIORITY)
        except QueueError as exc:
            log.warning("job_ack_lost", beanstalk_id=reserved.id, action=BURY, error=str(exc))
            return
        log.warning("job_buried", beanstalk_id=reserved.id, code="internal_error")

    # -- child -----------------------------------------------------------------

    def _ensure_child(self) -> bool:
        reason = self.child.needs_recycling() if self.child.alive else None
        if self.child.alive and reason is None:
            return True
        if reason is not None:
            log.info("child_recycled", slot=self.index, pid=self.child.pid, reason=reason)
            self.child.stop()
            self.worker.count("child_recycles")
            self.metrics.child_restarted("recycle")
        try:
            self.child.start()
        except (ChildDied, OSError) as exc:
            self.child_failures += 1
            log.error("child_start_failed", slot=self.index, error=str(exc))
            self.worker.stopping.wait(_CHILD_RESTART_DELAY)
            return False
        self.child_failures = 0
        return True

    # -- queue ---------------------------------------------------------------

    def _reserve(self) -> tuple[Reserved, Connection] | None:
        conns = self.connections
        if len(conns) == 1:
            order = conns
        else:
            self._turn = (self._turn + 1) % len(conns)
            order = conns[self._turn :] + conns[: self._turn]
            # Take ready work from any server first, then block briefly on one.
            for conn in order[1:]:
                try:
                    job = conn.reserve(timeout=0)
                except QueueError:
                    continue
                if job is not None:
                    return job, conn
        conn = order[0]
        try:
            job = conn.reserve(timeout=1)
        except QueueError:
            if all(c.down for c in conns):
                self.worker.stopping.wait(0.5)
            return None
        return (job, conn) if job is not None else None

    def _ack(
        self,
        conn: Connection,
        reserved: Reserved,
        action: str,
        priority: int,
        delay: int,
        bound: Any,
        t0: float,
        job_type: str = "unknown",
        **fields: Any,
    ) -> None:
        job_id = reserved.id
        if not conn.holds(reserved):
            # The connection broke after the reserve: beanstalkd gave the job back
            # (or, restarted, restored it from its binlog). It runs again and
            # publishes the same result; acting on the id now could hit another job.
            bound.warning("job_ack_lost", action=action, error="reservation lost", **fields)
            self.worker.count("acks_lost")
            return
        try:
            if action == DELETE:
                conn.delete(job_id)
            elif action == RELEASE:
                conn.release(job_id, priority, delay)
            else:
                conn.bury(job_id, priority)
        except QueueError as exc:
            # The reservation went with the connection: beanstalkd hands the job
            # out again and it runs once more, publishing the same result.
            bound.warning("job_ack_lost", action=action, error=str(exc), **fields)
            self.worker.count("acks_lost")
            return
        event = {DELETE: "job_deleted", RELEASE: "job_released", BURY: "job_buried"}[action]
        if action == RELEASE:
            fields["delay"] = delay
        duration = time.monotonic() - t0
        bound.info(event, duration_s=round(duration, 3), **fields)
        self.metrics.job_finished(job_type, action, fields.get("code"), duration)

    # -- one job ---------------------------------------------------------------

    def _handle_job(self, reserved: Reserved, conn: Connection) -> None:
        t0 = time.monotonic()
        try:
            stats = conn.stats_job(reserved.id)
        except QueueError as exc:
            # Only a broken connection gets here, and beanstalkd gave the job back with it.
            log.warning("job_reservation_lost", beanstalk_id=reserved.id, error=str(exc))
            return
        attempt, ttr = int(stats["reserves"]), max(1, int(stats["ttr"]))
        tube, priority = str(stats["tube"]), int(stats["pri"])
        bound = log.bind(
            beanstalk_id=reserved.id,
            server=reserved.server,
            tube=tube,
            attempt=attempt,
            slot=self.index,
        )
        if self.worker.stopping.is_set():
            # The reserve was already under way when the stop signal came: give it back.
            self._ack(conn, reserved, RELEASE, priority, 0, bound, t0, reason="shutdown")
            return
        try:
            job = codec.decode_job(reserved.body)
        except InvalidJob as invalid:
            self._invalid_job(reserved, invalid, bound)
            self.worker.count("jobs_invalid_job")
            self._ack(conn, reserved, BURY, priority, 0, bound, t0, code=invalid.code)
            return
        bound = bound.bind(job_id=job.id, job_type=job.type)
        self.current = {
            "slot": self.index,
            "job_id": job.id,
            "type": job.type,
            "tube": tube,
            "server": reserved.server,
            "beanstalk_id": reserved.id,
            "attempt": attempt,
            "since": codec.format_time(utcnow()),
        }
        max_attempts = job.max_attempts or self.config.max_attempts
        timeout = min(job.timeout or self.config.max_timeout, self.config.max_timeout)
        bound.info(
            "job_reserved", ttr=ttr, timeout=timeout, max_attempts=max_attempts, pid=self.child.pid
        )
        try:
            self.child.send(
                {
                    "body": reserved.body.decode("utf-8"),
                    "attempt": attempt,
                    "max_attempts": max_attempts,
                    "tube": tube,
                }
            )
        except ChildDied as exc:
            # The job never reached the child (it died while idle): not the job's fault.
            bound.warning("child_lost", error=exc.description)
            self.child.kill()
            self.metrics.child_restarted("lost")
            self._ack(
                conn, reserved, RELEASE, priority, 0, bound, t0, job.type, reason="child_lost"
            )
            return
        try:
            reply = self._watch(reserved, conn, ttr, t0 + timeout, bound)
        except ChildDied as exc:
            self.child.kill()
            if self._stopping_soon():
                # systemd's default KillMode=control-group sends SIGTERM to the children
                # too: a child that died in a shutdown did not crash; give the job back.
                bound.warning("job_interrupted", reason="shutdown", error=exc.description)
                self._ack(
                    conn, reserved, RELEASE, priority, 0, bound, t0, job.type, reason="shutdown"
                )
                self.worker.count("jobs_released_on_stop")
                return
            crash = WorkerCrash(
                f"the process running the job died ({exc.description}); "
                "the job type crashed or ran out of memory"
            )
            reply = self._fail_here(job, attempt, crash, bound)
            self.worker.count("child_crashes")
            self.metrics.child_restarted("crash")
        if reply is None:  # shutting down: give the job back at once
            self._ack(conn, reserved, RELEASE, priority, 0, bound, t0, job.type, reason="shutdown")
            self.worker.count("jobs_released_on_stop")
            return
        if reply.get("timeout"):
            # Stop the child first, so it cannot publish over the failed document.
            self.child.kill()
            bound.warning("job_timeout", timeout=timeout)
            self.metrics.child_restarted("timeout")
            failure = JobTimeout(
                f"the job ran longer than its time-out of {timeout:g} s and "
                "was stopped; raise 'timeout' in the job (up to --max-timeout) "
                "or make it faster"
            )
            reply = self._fail_here(job, attempt, failure, bound)
        self.child.jobs_done += 1
        action = reply["action"]
        code = reply.get("code")
        self.worker.count(f"jobs_{code or 'done'}")
        fields = {"code": code} if code else {}
        self._ack(
            conn,
            reserved,
            action,
            priority,
            int(reply.get("delay", 0)),
            bound,
            t0,
            job.type,
            **fields,
        )

    def _stopping_soon(self, wait: float = 1.0) -> bool:
        """True when the worker is stopping, or starts to within ``wait`` seconds."""
        return self.worker.stopping.wait(wait)

    def _watch(
        self, reserved: Reserved, conn: Connection, ttr: int, deadline: float, bound: Any
    ) -> dict[str, Any] | None:
        """Wait for the child's answer, touching the reservation and enforcing limits.

        Returns the child's reply, ``{"timeout": True}`` past the deadline, or
        ``None`` when the worker is stopping and the job must be given back.

        Raises:
            ChildDied: the child exited or was killed while running the job.
        """
        # Touch at half the TTR (at least 1.5 s before it runs out). beanstalkd's
        # DEADLINE_SOON warning only comes as the answer to a reserve on the connection
        # holding the job, and this connection reserves nothing while the job runs, so
        # the schedule itself must keep well ahead of the deadline.
        touch_every = max(0.5, min(ttr / 2, ttr - 1.5))
        next_touch = time.monotonic() + touch_every
        reservation_lost = False
        while True:
            now = time.monotonic()
            wake = min(next_touch, deadline, now + _POLL)
            reply = self.child.wait(wake - now)
            if reply is not None:
                return reply
            now = time.monotonic()
            if now >= deadline:
                return {"timeout": True}
            if self.worker.aborting.is_set() or (
                self.worker.stopping.is_set() and now >= self.worker.stop_deadline
            ):
                bound.warning(
                    "job_interrupted",
                    reason="second signal" if self.worker.aborting.is_set() else "grace over",
                )
                self.child.kill()
                return None
            if now >= next_touch and not reservation_lost:
                next_touch = now + touch_every
                try:
                    if not conn.holds(reserved):
                        raise QueueError("the connection that reserved the job was lost")
                    conn.touch(reserved.id)
                    bound.debug("job_touched")
                except QueueError as exc:
                    # The job will be handed out again; finish anyway: the result is
                    # the same, and publishing it twice is harmless.
                    if not reservation_lost:
                        bound.warning("job_touch_failed", error=str(exc))
                    reservation_lost = True

    def _fail_here(self, job: Any, attempt: int, failure: JobFailure, bound: Any) -> dict[str, Any]:
        bound.warning("job_failed", code=failure.code, error=failure.message)
        builder = ResultBuilder.for_job(job, worker=self.config.worker_name, attempt=attempt)
        published = self.worker.publish_failure(job.result, builder, failure, bound)
        return {"action": BURY, "code": failure.code, "published": published}

    def _invalid_job(self, reserved: Reserved, failure: InvalidJob, bound: Any) -> None:
        """Publish a ``failed`` document for an invalid job where its result URL is usable."""
        bound.warning("job_invalid", error=failure.message)
        try:
            # Leniently: the document was refused, but its result URL may still be usable.
            doc = json.loads(reserved.body)
        except (ValueError, RecursionError):
            return
        if not isinstance(doc, dict) or not isinstance(doc.get("result"), str):
            return
        job_id = doc["id"] if isinstance(doc.get("id"), str) else f"beanstalk-{reserved.id}"
        job_type = doc["type"] if isinstance(doc.get("type"), str) else "unknown"
        builder = ResultBuilder(job_id=job_id, job_type=job_type, worker=self.config.worker_name)
        self.worker.publish_failure(doc["result"], builder, failure, bound)
