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
    error: str | None = None

    @classmethod
    def take(cls, conn: Connection, reserved: Reserved) -> Lease:
        """Read the job's attempt, TTR, priority and tube (``stats-job``).

        Raises:
            QueueError: the connection broke; beanstalkd gave the job back with it.
        """
        stats = conn.stats_job(reserved.id)
        return cls(
            reserved=reserved,
            conn=conn,
            attempt=int(stats["reserves"]),
            ttr=max(1, int(stats["ttr"])),
            priority=int(stats["pri"]),
            tube=str(stats["tube"]),
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

    def end(self, action: Action, delay: int = 0) -> bool:
        """Delete, release (ready after ``delay`` s) or bury; False when the lease was lost.

        A lost lease means beanstalkd hands the job out again: it runs once
        more and publishes the same result, which is harmless.
        """
        if action is Action.DELETE:
            return self._call("delete")
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
            elif what == "release":
                self.conn.release(self.id, self.priority, delay)
            else:
                self.conn.bury(self.id, self.priority)
        except QueueError as exc:
            self.error = str(exc)
            return False
        return True
