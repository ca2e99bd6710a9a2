"""A job's reservation, held by one slot: touch it while the job runs, then end it.

Runs in the worker. A :class:`Lease` keeps together what belongs together
— the reserved job, the connection that reserved it (reservations belong to
their connection) and that connection's generation, the job's priority, TTR,
tube and attempt — and offers the four things a worker does with it.

Every ending is safe to call on a lost reservation: when the connection
broke after the reserve, beanstalkd has given the job back already (or,
restarted, restored it from its binlog), and acting on the id now could hit
another job; the lease then does nothing and says so (``False``).
"""

from __future__ import annotations

from typing import Any

import attrs

from jobrunner._worker.protocol import Action
from jobrunner.errors import QueueError
from jobrunner.queue import Connection, Reserved

__all__ = ["Lease"]


@attrs.define(kw_only=True)
class Lease:
    """The reservation of one job through one connection.

    Attributes:
        reserved: the job as reserved (id, body, server, generation).
        conn: the connection that reserved it.
        attempt: beanstalkd's count of reserves of this job (1 on the first).
        ttr: the job's time-to-run in seconds.
        priority: the job's priority (kept when released or buried).
        tube: the tube it came from.
        error: why the last ending or touch failed, once one did.
    """

    reserved: Reserved
    conn: Connection
    attempt: int
    ttr: int
    priority: int
    tube: str
    cancel_requested: bool = False
    error: str | None = None

    @classmethod
    def take(cls, conn: Connection, reserved: Reserved, *, cancel: str | None = None) -> Lease:
        """Read the job's attempt, TTR, priority and tube (``stats-job``).

        With ``cancel`` (the job's cancellation tube), whether a client asked to
        cancel the job is read in the same round trip.

        Raises:
            QueueError: the connection broke; beanstalkd gave the job back with it.
        """
        marker: dict[str, Any] = {}
        if cancel is None:
            stats = conn.stats_job(reserved.id)
        else:
            stats, marker = conn.stats_job_and_tube(reserved.id, cancel)
        return cls(
            reserved=reserved,
            conn=conn,
            attempt=int(stats["reserves"]),
            ttr=max(1, int(stats["ttr"])),
            priority=int(stats["pri"]),
            tube=str(stats["tube"]),
            cancel_requested=int(marker.get("current-jobs-ready", 0)) > 0,
        )

    @property
    def id(self) -> int:
        """The beanstalkd job id."""
        return self.reserved.id

    @property
    def held(self) -> bool:
        """True while the connection that reserved the job is still the open one."""
        return self.conn.holds(self.reserved)

    def touch(self) -> bool:
        """Renew the reservation; False (with :attr:`error`) when it is lost."""
        return self._call("touch")

    def end(self, action: Action, delay: int = 0, *, reserve_next: bool = False) -> bool:
        """Delete, release (ready after ``delay`` s) or bury; False when the lease was lost.

        A lost lease means beanstalkd hands the job out again: it runs once
        more and publishes the same result, which is harmless. With
        ``reserve_next`` a delete also reserves the connection's next job in
        the same round trip (see :meth:`jobrunner.queue.Connection.delete`).
        """
        if action is Action.DELETE:
            return self._call("delete_next" if reserve_next else "delete")
        if action is Action.RELEASE:
            return self._call("release", delay)
        return self._call("bury")

    def _call(self, what: str, delay: int = 0) -> bool:
        if not self.held:
            self.error = "reservation lost with its connection"
            return False
        try:
            if what == "touch":
                self.conn.touch(self.id)
            elif what == "delete":
                self.conn.delete(self.id)
            elif what == "delete_next":
                self.conn.delete(self.id, reserve_next=True)
            elif what == "release":
                self.conn.release(self.id, self.priority, delay)
            else:
                self.conn.bury(self.id, self.priority)
        except QueueError as exc:
            self.error = str(exc)
            return False
        return True
