"""One slot of the worker: reserve → validate → hand to its child → watch → decide → end.

Runs in the worker, one thread per slot, each with its own queue
connections (reservations belong to the connection that made them) and its
own child process, reached through the small :class:`Child` interface (the
real one is :class:`~jobrunner._worker.child_handle.ChildHandle`; unit tests
use a fake). For each job the slot:

1. takes a :class:`~jobrunner._worker.lease.Lease` (attempt, TTR, priority, tube);
2. decodes and validates the job — once, here — and refuses what need not
   reach a child (invalid, expired, a result URL no publisher may write);
3. hands the structured job to the child and watches it: touches the
   reservation well before the TTR, kills the child past the job's time-out,
   notices a child that dies;
4. turns what ended the run into an event, asks the pure
   :func:`~jobrunner._worker.decide.decide`, publishes the failure document
   the decision names, and ends the lease (delete, release or bury).

**Look-ahead.** When the child reports that a job's result is computed and
its ``done`` document is being published (:class:`~jobrunner._worker.protocol.Publishing`),
the slot reserves the next ready job without waiting, takes it (steps 1
and 2) and puts it into the child's pipe, while the child writes. The child
starts it right after reporting the end of the last one, and the finished
job's queue entry is ended while the child already works on the next one: the
worker's own per-job work is off the child's path. That ``delete`` waits for
the next job's ``Publishing`` and goes in the same round trip as the reserve it
causes, or goes alone after :data:`_DELETE_DEFER` seconds, so a stream of short
jobs costs two beanstalkd round trips each, not three. Only a publication is
waited out this way, never a computation, so a job never waits behind a long
one; and at most one job per slot is held ahead (touched like the running one,
given back at a stop).

Killing a job (:meth:`Slot.stop_job`) kills the child's whole process tree.
A client's cancellation (a marker on the job's server, see
:meth:`jobrunner.queue.Connection.cancel_requested`) is looked for before the
job is handed to the child and about once a second while it runs: the job
then ends as ``cancelled`` (its child and process tree killed), is deleted,
and its markers are cleared.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from jobrunner import codec
from jobrunner._log import get_logger
from jobrunner._worker.child_handle import ChildDied, ChildHandle
from jobrunner._worker.decide import (
    Crashed,
    Decision,
    Done,
    Event,
    Failed,
    Interrupted,
    Retries,
    TimedOut,
    decide,
)
from jobrunner._worker.documents import ResultBuilder, error_of
from jobrunner._worker.lease import Lease
from jobrunner._worker.protocol import Action, Finished, Publishing, RunJob
from jobrunner.errors import InvalidJob, JobCancelled, JobExpired, JobFailure, QueueError
from jobrunner.job import Job, utcnow
from jobrunner.queue import DEFAULT_PRIORITY, Connection, Reserved, cancel_tube

if TYPE_CHECKING:
    from jobrunner._worker.node import Worker

__all__ = ["Child", "Slot"]

log = get_logger(__name__)

#: Longest the slot sleeps between checks while a job runs (signals, time-out).
_POLL = 0.25
#: Seconds between two looks for a cancellation marker while a job runs.
_CANCEL_CHECK = 1.0
#: Seconds to wait before starting a child again after it failed to start.
_CHILD_RESTART_DELAY = 2.0
#: Longest a finished job's delete waits to share a round trip with the next reserve.
_DELETE_DEFER = 0.01
_EVENTS = {Action.DELETE: "job_deleted", Action.RELEASE: "job_released", Action.BURY: "job_buried"}


def _touch_every(ttr: int) -> float:
    """Seconds between touches of a reservation with this TTR."""
    return max(0.5, min(ttr / 2, ttr - 1.5))


class Child(Protocol):
    """What a slot needs of its child process."""

    @property
    def pid(self) -> int | None:
        """The process id, when started."""

    @property
    def alive(self) -> bool:
        """True while the process runs."""

    def start(self) -> None:
        """Start the process and wait until it is ready (raises ChildDied)."""

    def run(self, request: RunJob) -> None:
        """Hand it a job (raises ChildDied)."""

    def wait(self, timeout: float) -> Finished | Publishing | None:
        """The job's end, word that it is being published, or None after ``timeout`` s.

        Raises ChildDied.
        """

    def needs_recycling(self, after: int = 0) -> str | None:
        """Why it should be replaced before the next job (``after`` more jobs), or None."""

    def kill(self) -> None:
        """Stop it now, and everything it started."""

    def stop(self) -> None:
        """Ask it to exit; kill it if it does not."""


@attrs.define(eq=False)
class Taken:
    """A reserved job, its lease taken and its document decoded: ready for a child.

    ``refusal`` is the event that ends it without a child (invalid, expired,
    cancelled, a result URL no publisher may write), or None. ``handed`` is
    when it went to the child (monotonic), or None while it waits.
    """

    lease: Lease
    job: Job | None
    invalid: InvalidJob | None
    refusal: Event | None
    bound: Any
    t0: float
    handed: float | None = None
    timeout: float = 0.0
    sent: bool = False  # in the child's pipe, behind the job it runs now

    @property
    def reserved(self) -> Reserved:
        """The job as reserved."""
        return self.lease.reserved


@attrs.define(eq=False)
class _Ending:
    """A job's decided end, not yet sent to beanstalkd: the lease, the decision, and
    what the job's one log event says."""

    lease: Lease
    decision: Decision
    job_type: str | None
    finished: Finished | None
    duration: float
    bound: Any


class Slot(threading.Thread):  # never name a method like a Thread internal (3.13 added _handle)
    """One job at a time: its own queue connections and its own child process."""

    def __init__(self, node: Worker, index: int, child: Child | None = None) -> None:
        super().__init__(name=f"slot-{index}", daemon=True)
        self.node = node
        self.config = node.config
        self.index = index
        self.connections = [
            Connection(address, watch=self.config.tube) for address in self.config.beanstalk
        ]
        self.child: Child = (
            child
            if child is not None
            else ChildHandle(self.config, index, on_replicate=node.replicate)
        )
        self.child_failures = 0  # consecutive failed starts: the health check reads it
        self.metrics = node.metrics
        self._turn = index  # spreads the slots' blocking reserves over the servers
        self._running: Taken | None = None  # the job in the child
        self._ahead: Taken | None = None  # taken while the child published the last one
        self._deferred: _Ending | None = None  # a done job's delete, waiting for a reserve
        self._deferred_until = 0.0

    @property
    def busy(self) -> bool:
        """True while a job of this slot is in its child."""
        return self._running is not None

    @property
    def current(self) -> dict[str, Any] | None:
        """The job in the child, for /health (job id, type, tube, since), or None."""
        taken = self._running
        if taken is None or taken.job is None:
            return None
        lease = taken.lease
        since = utcnow() - dt.timedelta(seconds=time.monotonic() - taken.t0)
        return {
            "slot": self.index,
            "job_id": taken.job.id,
            "type": taken.job.type,
            "tube": lease.tube,
            "server": lease.reserved.server,
            "beanstalk_id": lease.id,
            "attempt": lease.attempt,
            "since": codec.format_time(since),
        }

    def run(self) -> None:
        """Reserve and run jobs until the worker stops."""
        try:
            while not self.node.stopping.is_set():
                try:
                    self.step()
                except Exception:
                    # A bug here must not silently cost the worker a slot.
                    log.exception("slot_error", slot=self.index)
                    self.node.stopping.wait(1.0)
            # A job taken ahead: watched to its end when in the child, else given back.
            if self._ahead is not None:
                self._handle_taken(self._ahead)
        finally:
            self._conclude_deferred()
            self.child.stop()
            for conn in self.connections:
                conn.close()
            log.debug("slot_stopped", slot=self.index)

    def step(self) -> None:
        """Make sure the child runs, take one job (reserving briefly) and handle it."""
        taken = self._ahead
        if (taken is None or taken.handed is None) and not self._ensure_child():
            if taken is not None:
                # Taken ahead for a child that does not start: give it back at once
                # (released, no delay) rather than hold it untouched.
                taken.refusal = Interrupted("child_lost")
                self._handle_taken(taken)
            return
        if taken is None:
            self._conclude_deferred()
            found = self._reserve()
            if found is None:
                return
            taken = self._take_safely(*found)
            if taken is None:
                return
        self._handle_taken(taken)

    def _take_safely(self, reserved: Reserved, conn: Connection) -> Taken | None:
        try:
            return self._take(reserved, conn)
        except Exception:
            self._bury_unhandled(reserved, conn)
            return None

    def _handle_taken(self, taken: Taken) -> None:
        self._ahead = None
        self.metrics.job_started()
        try:
            self._handle_job(taken)
        except Exception:
            self._bury_unhandled(taken.reserved, taken.lease.conn)
        finally:
            if self._running is taken:
                self._running = None
            self.metrics.job_ended()

    def _bury_unhandled(self, reserved: Reserved, conn: Connection) -> None:
        """Bury a job whose handling failed in jobrunner itself (a bug, not the job's fault).

        Left reserved, it would come back after its TTR and fail the same way for
        ever; buried, an operator sees it in ``jobrunner buried`` and can kick it
        once the worker is fixed.
        """
        log.exception("slot_error", slot=self.index, beanstalk_id=reserved.id)
        self.metrics.job_finished(None, "bury", "internal_error", 0.0)
        if not conn.holds(reserved):
            return
        try:
            conn.bury(reserved.id, DEFAULT_PRIORITY)
        except QueueError as exc:
            log.warning("job_ack_lost", beanstalk_id=reserved.id, action="bury", error=str(exc))
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
            self.metrics.child_restarted("recycle")
        try:
            self.child.start()
        except (ChildDied, OSError) as exc:
            self.child_failures += 1
            log.error("child_start_failed", slot=self.index, error=str(exc))
            self.node.stopping.wait(_CHILD_RESTART_DELAY)
            return False
        self.child_failures = 0
        return True

    # -- queue ---------------------------------------------------------------

    def _reserve(self, wait: int = 1) -> tuple[Reserved, Connection] | None:
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
            job = conn.reserve(timeout=wait)
        except QueueError:
            if wait and all(c.down for c in conns):
                self.node.stopping.wait(0.5)
            return None
        return (job, conn) if job is not None else None

    def _take(self, reserved: Reserved, conn: Connection) -> Taken | None:
        """Decode the job (once, here), take its lease and look for a reason not to run it.

        None when the connection broke after the reserve (beanstalkd gave the job back).
        """
        t0 = time.monotonic()
        job: Job | None = None
        invalid: InvalidJob | None = None
        try:
            job = codec.decode_job(reserved.body)
        except InvalidJob as exc:
            invalid = exc
        try:
            # With the job's stats (attempt, TTR, ...), in the same round trip: has a
            # client asked to cancel it?
            lease = Lease.take(conn, reserved, cancel=cancel_tube(job.id) if job else None)
        except QueueError as exc:
            log.warning("job_reservation_lost", beanstalk_id=reserved.id, error=str(exc))
            return None
        bound = log.bind(
            beanstalk_id=reserved.id,
            server=reserved.server,
            tube=lease.tube,
            attempt=lease.attempt,
            slot=self.index,
        )
        refusal: Event | None = None
        if invalid is not None:
            refusal = Failed(error_of(invalid))
        elif job is not None:
            bound = bound.bind(job_id=job.id, job_type=job.type)
            refusal = self._refusal(job, lease)
        return Taken(lease=lease, job=job, invalid=invalid, refusal=refusal, bound=bound, t0=t0)

    def _refusal(self, job: Job, lease: Lease) -> Event | None:
        """Why the job ends without a child (cancelled, expired, result URL refused), or None."""
        if lease.cancel_requested:
            return Failed(error_of(JobCancelled("cancelled by a client before it ran")))
        if job.expires is not None and job.expires <= utcnow():
            expired = JobExpired(
                f"the job expired at {codec.format_time(job.expires)} "
                "before a worker reserved it; it was not run"
            )
            return Failed(error_of(expired))
        try:
            self.node.publishers.check(job.result)
        except JobFailure as refused:
            return Failed(error_of(refused))
        return None

    def _take_ahead(self) -> None:
        """Reserve and take the next ready job, without waiting, while the child publishes."""
        if self._ahead is not None or self.node.stopping.is_set():
            self._conclude_deferred()
            return
        found: tuple[Reserved, Connection] | None = None
        deferred = self._deferred
        # The last job's delete and this reserve go in one round trip.
        if deferred is not None and self._conclude_deferred(reserve_next=True):
            conn = deferred.lease.conn
            reserved = conn.take_next()
            found = (reserved, conn) if reserved is not None else None
            if found is None and len(self.connections) > 1:
                found = self._reserve(wait=0)  # the other servers may have work
        else:
            found = self._reserve(wait=0)
        if found is not None:
            self._ahead = self._take_safely(*found)

    # -- one job ---------------------------------------------------------------

    def _handle_job(self, taken: Taken) -> None:
        job, lease, bound = taken.job, taken.lease, taken.bound
        finished: Finished | None = None
        event: Event
        if taken.handed is None and self.node.stopping.is_set():
            # Taken while the stop signal came: give it back.
            event = Interrupted("shutdown")
        elif taken.refusal is not None:
            event = taken.refusal
        else:
            assert job is not None
            event, finished = self._run(taken)
        max_attempts = (job.max_attempts if job else None) or self.config.max_attempts
        retries = Retries(
            max_attempts=max_attempts, base=self.config.retry_base, maximum=self.config.retry_max
        )
        stopping = isinstance(event, Crashed) and self._stopping_soon()
        decision = decide(event, attempt=lease.attempt, retries=retries, stopping=stopping)
        if decision.failure is not None or decision.note is not None:
            decision = self._publish(decision, job, taken.invalid, lease, finished, bound)
        self._end(lease, decision, job.type if job else None, finished, taken.t0, bound)
        if job is not None and decision.code == JobCancelled.code:
            self._clear_cancel(lease, job.id, bound)

    def _hand(self, taken: Taken) -> None:
        """Give a taken job to the idle child (raises ChildDied)."""
        self._send(taken)
        self._job_started(taken)

    def _send(self, taken: Taken) -> None:
        """Put a taken job into the child's pipe (raises ChildDied)."""
        assert taken.job is not None
        job, lease = taken.job, taken.lease
        taken.timeout = min(job.timeout or self.config.max_timeout, self.config.max_timeout)
        taken.bound.debug("job_reserved", ttr=lease.ttr, timeout=taken.timeout, pid=self.child.pid)
        request = RunJob(job=job, attempt=lease.attempt, tube=lease.tube, beanstalk_id=lease.id)
        self.child.run(request)
        taken.sent = True

    def _job_started(self, taken: Taken) -> None:
        """The child is on ``taken`` now: its time-out counts from here."""
        taken.handed = time.monotonic()
        self._running = taken

    def _run(self, taken: Taken) -> tuple[Event, Finished | None]:
        """Run the job in the child; the event that ended it, and the child's report."""
        bound = taken.bound
        if taken.handed is None:
            try:
                self._hand(taken)
            except ChildDied as exc:
                # The job never reached the child (it died while idle): not the job's fault.
                bound.warning("child_lost", error=str(exc))
                self.child.kill()
                self.metrics.child_restarted("lost")
                return Interrupted("child_lost"), None
        try:
            ended = self._watch(taken)
        except ChildDied as exc:
            self.stop_job()
            self._unsend_ahead()
            self.metrics.child_restarted("crash")
            return Crashed(str(exc)), None
        if isinstance(ended, Finished):
            self._hand_ahead()
            if ended.error is None:
                return Done(), ended
            return Failed(ended.error, ended.retry_delay), ended
        self._unsend_ahead()  # the child was stopped: what was in its pipe never started
        if isinstance(ended, TimedOut):
            # Stop the child first, so it cannot publish over the failed document.
            self.stop_job()
            bound.warning("job_timeout", timeout=taken.timeout)
            self.metrics.child_restarted("timeout")
        return ended, None

    def _can_take_ahead(self, ahead: Taken | None, after: int) -> bool:
        return (
            ahead is not None
            and ahead.refusal is None
            and not self.node.stopping.is_set()
            and self.child.alive
            and self.child.needs_recycling(after=after) is None
        )

    def _send_ahead(self) -> None:
        """The child publishes: put the job taken ahead into its pipe, to start right after.

        The child reads it as soon as it has reported the end of the job it
        publishes, without waiting for the worker; ``max_jobs_per_child``
        counts it (``after=1``), the memory limit is checked one job later.
        """
        ahead = self._ahead
        if ahead is None or not self._can_take_ahead(ahead, after=1):
            return
        try:
            self._send(ahead)
        except ChildDied:
            pass  # the running job's wait says how the child ended

    def _unsend_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead.sent = False

    def _hand_ahead(self) -> None:
        """The child is free: the job taken ahead starts (or is handed now), before this
        one's queue entry ends."""
        ahead = self._ahead
        if ahead is not None and ahead.sent:
            self._job_started(ahead)  # the child took it from its pipe already
            return
        if ahead is None or not self._can_take_ahead(ahead, after=0):
            return
        try:
            self._hand(ahead)
        except ChildDied as exc:
            # Not handed: the next step starts a child and hands it then.
            ahead.bound.warning("child_lost", error=str(exc))
            self.child.kill()
            self.metrics.child_restarted("lost")

    def stop_job(self) -> None:
        """Stop the job running now: kill the child and everything the job started.

        The slot starts a new child before its next job.
        """
        self.child.kill()

    def _cancelled(self, lease: Lease, job_id: str) -> bool:
        """True when a client asked to cancel the job (a marker on its server)."""
        try:
            return lease.conn.cancel_requested(job_id)
        except QueueError:
            return False  # the connection broke: the job goes back and is checked again

    def _clear_cancel(self, lease: Lease, job_id: str, bound: Any) -> None:
        try:
            lease.conn.clear_cancel(job_id)
        except QueueError as exc:
            bound.warning("job_cancel_marker_left", error=str(exc))

    def _stopping_soon(self, wait: float = 1.0) -> bool:
        """True when the worker is stopping, or starts to within ``wait`` seconds."""
        return self.node.stopping.wait(wait)

    def _watch(self, taken: Taken) -> Finished | Event:
        """Wait for the job's end, touching the reservation and enforcing limits.

        Returns the child's :class:`Finished`, :class:`TimedOut` past the deadline,
        :class:`Interrupted` when the worker is stopping and the job must be
        given back, or a ``cancelled`` :class:`Failed` when a client cancelled
        it (the child is killed in these two cases). When the child reports
        that it publishes, the next job is taken ahead.

        Raises:
            ChildDied: the child exited or was killed while running the job.
        """
        # Touch at half the TTR (at least 1.5 s before it runs out). beanstalkd's
        # DEADLINE_SOON warning only comes as the answer to a reserve on the connection
        # holding the job, and this connection reserves nothing while the job runs, so
        # the schedule itself must keep well ahead of the deadline.
        lease, bound, timeout = taken.lease, taken.bound, taken.timeout
        job_id = taken.job.id if taken.job is not None else ""
        assert taken.handed is not None
        deadline = taken.handed + timeout
        touch_every = _touch_every(lease.ttr)
        next_touch = taken.t0 + touch_every
        next_cancel_check = time.monotonic() + _CANCEL_CHECK
        reservation_lost = False
        node = self.node
        while True:
            now = time.monotonic()
            wake = min(next_touch, deadline, now + _POLL)
            if self._deferred is not None:
                wake = min(wake, self._deferred_until)
            finished = self.child.wait(wake - now)
            if isinstance(finished, Finished):
                return finished
            if isinstance(finished, Publishing):
                self._take_ahead()
                self._send_ahead()
                if self._ahead is not None:
                    touch_every = min(touch_every, _touch_every(self._ahead.lease.ttr))
                    next_touch = min(next_touch, time.monotonic() + touch_every)
                continue
            now = time.monotonic()
            if self._deferred is not None and now >= self._deferred_until:
                self._conclude_deferred()  # no reserve came to share the round trip
            if now >= deadline:
                return TimedOut(timeout)
            if node.aborting.is_set() or (node.stopping.is_set() and now >= node.stop_deadline):
                reason = "second signal" if node.aborting.is_set() else "grace over"
                bound.warning("job_interrupted", reason=reason)
                self.stop_job()
                return Interrupted("shutdown")
            if now >= next_cancel_check:
                next_cancel_check = now + _CANCEL_CHECK
                if self._cancelled(lease, job_id):
                    bound.info("job_cancelling", pid=self.child.pid)
                    self.stop_job()
                    self.metrics.child_restarted("cancelled")
                    stopped = JobCancelled("cancelled by a client while it ran; it was stopped")
                    return Failed(error_of(stopped))
            if now >= next_touch:
                next_touch = now + touch_every
                if self._ahead is not None:
                    self._ahead.lease.touch()  # lost: it is handed out again, and runs there
                if reservation_lost:
                    continue
                if lease.touch():
                    bound.debug("job_touched")
                else:
                    # The job will be handed out again; finish anyway: the result is
                    # the same, and publishing it twice is harmless.
                    bound.warning("job_touch_failed", error=lease.error)
                    reservation_lost = True

    # -- the end -----------------------------------------------------------------

    def _publish(
        self,
        decision: Decision,
        job: Job | None,
        invalid: InvalidJob | None,
        lease: Lease,
        finished: Finished | None,
        bound: Any,
    ) -> Decision:
        """Publish the document the decision names; the decision once that is known."""
        url, builder = self._builder(job, invalid, lease, finished)
        if decision.failure is not None:
            if url is None or builder is None or not decision.publishable:
                return decision.unpublished()  # no usable result URL
            if not self.node.publish_failure(url, builder, decision.failure, bound):
                return decision.unpublished()
        elif decision.note is not None and url is not None and builder is not None:
            self.node.publish_note(url, builder, decision.note, bound)
        return decision

    def _builder(
        self, job: Job | None, invalid: InvalidJob | None, lease: Lease, finished: Finished | None
    ) -> tuple[str | None, ResultBuilder | None]:
        worker = self.config.worker_name
        if job is not None:
            builder = ResultBuilder.for_job(
                job,
                worker=worker,
                attempt=lease.attempt,
                started=finished.started if finished else None,
                provenance=finished.provenance if finished else None,
            )
            return job.result, builder
        # An invalid job: its result URL may still be usable (the document as parsed).
        doc = invalid.document if invalid is not None else None
        if not isinstance(doc, dict) or not isinstance(doc.get("result"), str):
            return None, None
        job_id = doc["id"] if isinstance(doc.get("id"), str) else f"beanstalk-{lease.id}"
        job_type = doc["type"] if isinstance(doc.get("type"), str) else "unknown"
        return doc["result"], ResultBuilder(job_id=job_id, job_type=job_type, worker=worker)

    def _end(
        self,
        lease: Lease,
        decision: Decision,
        job_type: str | None,
        finished: Finished | None,
        t0: float,
        bound: Any,
    ) -> None:
        """End the lease as decided (a done job's delete maybe deferred); log and count it."""
        ending = _Ending(lease, decision, job_type, finished, time.monotonic() - t0, bound)
        self._conclude_deferred()
        ahead, stopping = self._ahead, self.node.stopping.is_set()
        if (
            decision.action is Action.DELETE
            and decision.code is None
            and ahead is not None
            and ahead.handed is not None
            and not stopping
        ):
            # The child already runs the next job: this delete goes with the reserve
            # that job's Publishing causes (see _take_ahead), or alone soon after.
            self._deferred = ending
            self._deferred_until = time.monotonic() + _DELETE_DEFER
            return
        # A delete also reserves this connection's next job (one round trip for both).
        self._conclude(ending, reserve_next=ahead is None and not stopping)

    def _conclude_deferred(self, *, reserve_next: bool = False) -> bool:
        """Send the deferred delete, if any; True when one was sent and succeeded."""
        ending, self._deferred = self._deferred, None
        return ending is not None and self._conclude(ending, reserve_next=reserve_next)

    def _conclude(self, ending: _Ending, *, reserve_next: bool) -> bool:
        """End the lease; log the job's one event and count it. False when the lease was lost."""
        lease, decision, finished, bound = (
            ending.lease,
            ending.decision,
            ending.finished,
            ending.bound,
        )
        fields: dict[str, Any] = {}
        if decision.code:
            fields["code"] = decision.code
        if decision.reason:
            fields["reason"] = decision.reason
        if decision.action is Action.RELEASE:
            fields["delay"] = decision.delay
        if not lease.end(decision.action, decision.delay, reserve_next=reserve_next):
            bound.warning("job_ack_lost", action=decision.action.value, error=lease.error, **fields)
            return False
        if finished is not None:
            fields.update(fetch_s=finished.fetch_s, run_s=finished.run_s)
        error = decision.failure or (finished.error if finished else None)
        if error is not None:
            fields["error"] = error.message
        level = bound.warning if decision.action is Action.BURY else bound.info
        level(_EVENTS[decision.action], duration_s=round(ending.duration, 4), **fields)
        self.metrics.job_finished(
            ending.job_type, decision.action.value, decision.code, ending.duration
        )
        return True
