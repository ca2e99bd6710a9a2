"""Periodic jobs: ``jobrunner schedule --config FILE``.

Each ``[[schedule]]`` table of the TOML file plans runs of one job — by a
cron expression (evaluated by `cronsim`, in the schedule's time zone) or
at a fixed interval (anchored at the Unix epoch, so every node plans the
same instants) — and submits each planned run once, with a deterministic
job id ``<name>.<run time, UTC, %Y%m%dT%H%M%SZ>``.

Several schedulers (one per node, for failover) coordinate through the first
configured beanstalkd and nothing else:

* **Leadership.** The tube ``jobrunner.schedule.<group>.lease`` holds one
  *lease* job. The leader keeps it reserved and touches it every
  ``lease_ttr / 3`` seconds; the others block in ``reserve`` on that tube. A
  leader that dies closes its connection and beanstalkd hands the lease to a
  waiting scheduler at once. One that hangs or loses the network stops
  touching it: once the lease is past its TTR (``lease_ttr``, 10 s by
  default) a waiting scheduler takes over — through beanstalkd's own time-out,
  or, where beanstalkd does not give the lease back (1.12 does not always),
  with a fresh lease that the record of submitted runs now names. A leader
  checks that record before it submits and steps down when it names another
  lease. A new holder leads only when it holds the only live lease (two
  schedulers starting on an empty tube may each put one: the extra one is
  given back and deleted by the leader).
* **What was submitted.** After each submission the leader records the
  latest submitted run of every schedule in the tube
  ``jobrunner.schedule.<group>.state`` (a new job each time, the newest the
  most urgent, so ``peek-ready`` reads it; the old one is deleted). A new
  leader continues from there: a run planned while leadership changed
  hands is submitted by the new leader, once. The record is written right
  after the put, so only a leader killed between those two writes can
  cause a run to be submitted twice — with the same job id and result URL.
* **Missed runs** (all schedulers down, or the first start): ``missed =
  "skip"`` (default) submits no run planned more than ``grace`` seconds ago;
  ``missed = "catch_up"`` submits each missed run, oldest first (at most
  ``max_catch_up``). A schedule never seen before starts with the next run.

A beanstalkd restarted without its binlog forgets the record: schedules
then start again from the next run.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from jobrunner._log import get_logger
from jobrunner.codec import format_time, parse_time
from jobrunner.errors import ConfigError, InvalidJob, JobNotFound, QueueError
from jobrunner.queue import Connection, Reserved

__all__ = ["Schedule", "Scheduler", "SchedulerSettings", "load_schedules"]

log = get_logger(__name__)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MAX_PRIORITY = 2**32 - 1
_JOB_KEYS = frozenset(
    ("type", "input", "result", "params", "timeout", "max_attempts", "meta", "expires_after")
)
_QUEUE_KEYS = frozenset(("tube", "priority", "ttr"))
_SCHEDULE_KEYS = frozenset(("name", "cron", "every", "timezone", "missed", "grace", "max_catch_up"))
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _interval(value: Any, where: str) -> float:
    """Seconds from a number or a string like ``90``, ``15m``, ``1h``, ``2d``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower()
        unit = _UNITS.get(text[-1])
        try:
            seconds = float(text[:-1]) * unit if unit else float(text)
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a duration (like 90, 15m, 1h)") from None
    else:
        raise ConfigError(f"{where}: {value!r} is not a duration (like 90, 15m, 1h)")
    if not seconds > 0:
        raise ConfigError(f"{where}: must be above 0, got {value!r}")
    return seconds


@attrs.frozen(kw_only=True)
class Schedule:
    """One periodic job: when it runs and what is submitted."""

    name: str
    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    missed: str = "skip"
    grace: float = 60.0
    max_catch_up: int = 100
    job: Mapping[str, Any] = attrs.field(factory=dict)
    tube: str | None = None
    priority: int | None = None
    ttr: int | None = None

    def runs_after(self, after: dt.datetime) -> Iterator[dt.datetime]:
        """Planned run times strictly after ``after``, in order (aware UTC datetimes)."""
        if self.every is not None:
            step = self.every
            count = int((after - EPOCH).total_seconds() // step) + 1
            while True:
                run = EPOCH + dt.timedelta(seconds=count * step)
                if run > after:
                    yield run
                count += 1
        else:
            from cronsim import CronSim

            zone = ZoneInfo(self.timezone)
            # cronsim works in whole seconds; start from the second after ``after``.
            start = after.astimezone(zone).replace(microsecond=0)
            for run in CronSim(str(self.cron), start):
                run_utc = run.astimezone(dt.timezone.utc)
                if run_utc > after:
                    yield run_utc

    def job_id(self, run: dt.datetime) -> str:
        """The deterministic job id of the run at ``run``."""
        return f"{self.name}.{run.astimezone(dt.timezone.utc):%Y%m%dT%H%M%SZ}"

    def document(self, run: dt.datetime) -> dict[str, Any]:
        """The job document of one run: ``{name}``, ``{id}`` and ``{run:FORMAT}`` filled in.

        ``run`` is formatted in the schedule's time zone.
        """
        local = run.astimezone(ZoneInfo(self.timezone))
        job_id = self.job_id(run)
        fields = {"name": self.name, "id": job_id, "run": local}

        def fill(value: Any) -> Any:
            if isinstance(value, str):
                return value.format(**fields)
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            return value

        spec = dict(self.job)
        expires_after = spec.pop("expires_after", None)
        doc: dict[str, Any] = {
            "v": 1,
            "id": job_id,
            "created": format_time(dt.datetime.now(dt.timezone.utc)),
            "type": spec.pop("type"),
            "input": fill(spec.pop("input")),
            "result": fill(spec.pop("result")),
            "params": fill(spec.pop("params", {})),
        }
        if expires_after is not None:
            doc["expires"] = format_time(run + dt.timedelta(seconds=float(expires_after)))
        doc.update({k: fill(v) for k, v in spec.items()})
        return doc


@attrs.frozen(kw_only=True)
class SchedulerSettings:
    """The ``[scheduler]`` table: which group this scheduler belongs to, and its lease."""

    group: str = "default"
    lease_ttr: int = 10


def load_schedules(path: Path) -> tuple[SchedulerSettings, list[Schedule]]:
    """Read the ``[scheduler]`` and ``[[schedule]]`` tables of a TOML file.

    Every schedule's first run is planned and its job document validated here,
    so a mistake fails at start-up, not at 2 a.m.

    Raises:
        ConfigError: naming the schedule and the problem.
    """
    from jobrunner.client import encode_document
    from jobrunner.config import read_toml_tables

    data = read_toml_tables(path)
    table = data.get("scheduler", {})
    if not isinstance(table, dict) or set(table) - {"group", "lease_ttr"}:
        raise ConfigError(f"{path}: [scheduler] takes group and lease_ttr")
    settings = SchedulerSettings(
        group=str(table.get("group", "default")),
        lease_ttr=int(_interval(table.get("lease_ttr", 10), "[scheduler] lease_ttr")),
    )
    if not _NAME_RE.match(settings.group):
        raise ConfigError(f"{path}: [scheduler] group {settings.group!r}: letters, digits, . _ -")
    raw = data.get("schedule", [])
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: no [[schedule]] tables: nothing to schedule")
    schedules: list[Schedule] = []
    names: set[str] = set()
    for index, entry in enumerate(raw):
        where = f"{path}: schedule {entry.get('name', index)!r}"
        unknown = set(entry) - _JOB_KEYS - _QUEUE_KEYS - _SCHEDULE_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(f"{where}: 'name' is required: letters, digits, . _ - (≤ 64)")
        if name in names:
            raise ConfigError(f"{where}: two schedules are called {name!r}")
        names.add(name)
        if ("cron" in entry) == ("every" in entry):
            raise ConfigError(f"{where}: give either 'cron' or 'every'")
        missed = entry.get("missed", "skip")
        if missed not in ("skip", "catch_up"):
            raise ConfigError(f"{where}: missed must be 'skip' or 'catch_up', got {missed!r}")
        try:
            ZoneInfo(str(entry.get("timezone", "UTC")))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{where}: unknown time zone {entry.get('timezone')!r}") from None
        schedule = Schedule(
            name=name,
            cron=str(entry["cron"]) if "cron" in entry else None,
            every=_interval(entry["every"], f"{where}: every") if "every" in entry else None,
            timezone=str(entry.get("timezone", "UTC")),
            missed=missed,
            grace=_interval(entry.get("grace", 60), f"{where}: grace"),
            max_catch_up=int(entry.get("max_catch_up", 100)),
            job={k: v for k, v in entry.items() if k in _JOB_KEYS},
            tube=entry.get("tube"),
            priority=entry.get("priority"),
            ttr=entry.get("ttr"),
        )
        try:
            first = next(schedule.runs_after(dt.datetime.now(dt.timezone.utc)))
        except Exception as exc:
            raise ConfigError(f"{where}: cron {schedule.cron!r}: {exc}") from None
        for key in ("type", "input", "result"):
            if key not in schedule.job:
                raise ConfigError(f"{where}: '{key}' is required")
        try:
            encode_document(schedule.document(first))
        except (InvalidJob, KeyError, ValueError, IndexError, AttributeError) as exc:
            raise ConfigError(f"{where}: the job is invalid: {exc}") from None
        schedules.append(schedule)
    return settings, schedules


class Scheduler:
    """Submits the planned runs of ``schedules`` while it leads its group.

    Args:
        schedules: what to submit.
        beanstalk: the servers jobs go to; the first one also holds the lease and
            the record of submitted runs.
        tube: the tube of schedules that name none.
        settings: the group and the lease's TTR.
    """

    def __init__(
        self,
        schedules: Sequence[Schedule],
        beanstalk: Sequence[str],
        *,
        tube: str = "default",
        settings: SchedulerSettings | None = None,
    ) -> None:
        from jobrunner.client import Client

        self.schedules = list(schedules)
        self.settings = settings or SchedulerSettings()
        prefix = f"jobrunner.schedule.{self.settings.group}"
        self.lease_tube, self.state_tube = f"{prefix}.lease", f"{prefix}.state"
        self.client = Client(list(beanstalk), tube=tube, retry_for=2.0)
        self.lease_conn = Connection(beanstalk[0], watch=[self.lease_tube])
        self.state_conn = Connection(beanstalk[0])
        self.stopping = threading.Event()
        self.lease: Reserved | None = None
        self._state_id: int | None = None
        self._seq = 0
        self._last: dict[str, dt.datetime] = {}
        self._signals: list[int] = []

    # -- life cycle --------------------------------------------------------------

    def run(self, *, install_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT (or :meth:`stop`); return the exit code."""
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        log.info(
            "scheduler_started",
            group=self.settings.group,
            schedules=[s.name for s in self.schedules],
            server=self.lease_conn.address,
        )
        while not self.stopping.is_set():
            if self._signals:
                log.info("signal_received", signal=signal.Signals(self._signals.pop()).name)
                self.stop()
                break
            try:
                if self.lease is None:
                    self._try_to_lead()
                else:
                    self._lead()
            except QueueError as exc:
                self._step_down(f"beanstalkd: {exc}")
                self.stopping.wait(1.0)
        self._step_down("stopping")
        self.client.close()
        self.lease_conn.close()
        self.state_conn.close()
        log.info("scheduler_stopped", group=self.settings.group)
        return 0

    def stop(self) -> None:
        """Stop at the next step; a leader gives its lease back first."""
        self.stopping.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals.append(signum)  # only record it (see the worker's handler)

    # -- leadership --------------------------------------------------------------

    def _lease_counts(self) -> dict[str, int]:
        try:
            stats = self.state_conn.stats_tube(self.lease_tube)
        except JobNotFound:
            return {"ready": 0, "reserved": 0, "delayed": 0, "buried": 0}
        return {
            k: int(stats.get(f"current-jobs-{k}", 0))
            for k in ("ready", "reserved", "delayed", "buried")
        }

    def _record(self) -> tuple[Reserved | None, dict[str, Any]]:
        """The newest record of submitted runs (and of the leader's lease), parsed."""
        record = self.state_conn.peek_state(self.state_tube, "ready")
        if record is None:
            return None, {}
        try:
            data = json.loads(record.body)
        except ValueError:
            data = None
        return record, data if isinstance(data, dict) else {}

    def _overdue(self, lease_id: Any) -> bool:
        """True when the leader's lease is past its TTR and still reserved.

        beanstalkd should have given it back; 1.12 does not always, so a hung
        leader is recognised here and fenced off instead (see :meth:`_hold`).
        """
        if not isinstance(lease_id, int):
            return False
        try:
            stats = self.state_conn.stats_job(lease_id)
        except JobNotFound:
            return False
        return stats.get("state") == "reserved" and int(stats.get("time-left", 0)) < 0

    def _try_to_lead(self) -> None:
        counts = self._lease_counts()
        _, record = self._record()
        hung = self._overdue(record.get("lease"))
        if sum(counts.values()) == 0 or (hung and not counts["ready"] and not counts["delayed"]):
            self.state_conn.put(
                b"lease", tube=self.lease_tube, priority=0, ttr=self.settings.lease_ttr
            )
            event = "schedule_leader_hung" if hung else "schedule_lease_created"
            log.info(event, group=self.settings.group, lease=record.get("lease"))
        lease = self.lease_conn.reserve(timeout=1)
        if lease is None or self.stopping.is_set():
            if lease is not None:
                self.lease_conn.release(lease.id, 0)
            return
        others = self._lease_counts()["reserved"] - 1
        if hung and record.get("lease") != lease.id:
            others -= 1  # the hung leader's lease: fenced off below
        if others > 0:
            # Two leases (two schedulers started on an empty tube): give this one
            # back, delayed, for the leader to delete; try again a little later.
            self.lease_conn.release(lease.id, 0, delay=1)
            self.stopping.wait(random.uniform(0.5, 1.5))
            return
        self.lease = lease
        self.lease_conn.touch(lease.id)
        self._load_state()
        # The record names this lease from now on: a hung leader that wakes up
        # finds another lease there and steps down before submitting anything.
        self._save_state()
        log.info("schedule_leading", group=self.settings.group, lease=lease.id)

    def _step_down(self, why: str) -> None:
        if self.lease is None:
            return
        lease, self.lease = self.lease, None
        log.info("schedule_leadership_ended", group=self.settings.group, reason=why)
        if self.lease_conn.holds(lease):
            try:
                self.lease_conn.release(lease.id, 0)
            except QueueError:
                pass  # the connection is gone: beanstalkd released it already

    def _hold(self) -> bool:
        """Touch the lease and check the record still names it; False (and no longer
        leading) when it is not ours any more."""
        lease = self.lease
        if lease is None:
            return False
        if not self.lease_conn.holds(lease):
            self._step_down("lease lost with the connection")
            return False
        try:
            self.lease_conn.touch(lease.id)
        except JobNotFound:
            self._step_down("lease expired (TTR)")
            return False
        record, data = self._record()
        if record is not None and record.id != self._state_id and data.get("lease") != lease.id:
            # Another scheduler took over while this one did not touch its lease in
            # time (it hung): this lease is an extra now.
            self.lease = None
            log.warning("schedule_leadership_ended", group=self.settings.group, reason="fenced")
            try:
                self.lease_conn.delete(lease.id)
            except QueueError:
                pass
            return False
        return True

    def _lead(self) -> None:
        if not self._hold():
            return
        counts = self._lease_counts()
        if counts["ready"] or counts["delayed"]:
            self._delete_extra_leases()
        now = dt.datetime.now(dt.timezone.utc)
        for schedule in self.schedules:
            self._submit_due(schedule, now)
        wake = min(
            (self._next_run(s) for s in self.schedules),
            default=now + dt.timedelta(seconds=1),
        )
        pause = (wake - dt.datetime.now(dt.timezone.utc)).total_seconds()
        self.stopping.wait(max(0.0, min(pause, self.settings.lease_ttr / 3, 1.0)))

    def _delete_extra_leases(self) -> None:
        for state in ("ready", "delayed"):
            for _ in range(10):
                extra = self.state_conn.peek_state(self.lease_tube, state)
                if extra is None:
                    break
                try:
                    self.state_conn.delete(extra.id)
                    log.info("schedule_extra_lease_deleted", lease=extra.id)
                except JobNotFound:
                    break

    # -- runs ----------------------------------------------------------------------

    def _next_run(self, schedule: Schedule) -> dt.datetime:
        last = self._last.get(schedule.name) or dt.datetime.now(dt.timezone.utc)
        return next(schedule.runs_after(last))

    def _submit_due(self, schedule: Schedule, now: dt.datetime) -> None:
        last = self._last.get(schedule.name)
        if last is None:
            # Never seen: start with the next run (nothing from the past).
            self._last[schedule.name] = now
            self._save_state()
            return
        due: list[dt.datetime] = []
        for run in schedule.runs_after(last):
            if run > now:
                break
            due.append(run)
            if len(due) > 10 * schedule.max_catch_up:
                break
        if not due:
            return
        if schedule.missed == "skip":
            keep = [r for r in due if (now - r).total_seconds() <= schedule.grace]
        else:
            keep = due[-schedule.max_catch_up :]
        for run in due:
            if run not in keep:
                log.warning("schedule_run_skipped", schedule=schedule.name, run=format_time(run))
        for run in keep:
            if not self._hold():
                return
            doc = schedule.document(run)
            try:
                job = self.client.put_document(
                    doc, tube=schedule.tube, priority=schedule.priority, ttr=schedule.ttr
                )
            except InvalidJob as exc:
                log.error("schedule_run_invalid", schedule=schedule.name, error=str(exc))
            else:
                log.info(
                    "schedule_run_submitted",
                    schedule=schedule.name,
                    run=format_time(run),
                    job_id=str(job),
                    beanstalk_id=job.beanstalk_id,
                )
            self._last[schedule.name] = run
            self._save_state()
        if due and due[-1] not in keep:
            self._last[schedule.name] = due[-1]
            self._save_state()

    # -- the record of submitted runs -------------------------------------------------

    def _load_state(self) -> None:
        record, data = self._record()
        self._last, self._state_id, self._seq = {}, None, 0
        if record is None:
            return
        try:
            self._seq = int(data["seq"])
            self._last = {name: parse_time(when) for name, when in data["last"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("schedule_state_unreadable", error=str(exc))
            return
        self._state_id = record.id

    def _save_state(self) -> None:
        self._seq += 1
        body = json.dumps(
            {
                "seq": self._seq,
                "group": self.settings.group,
                "lease": self.lease.id if self.lease is not None else None,
                "last": {name: format_time(when) for name, when in self._last.items()},
            }
        ).encode()
        new_id = self.state_conn.put(
            body, tube=self.state_tube, priority=max(0, _MAX_PRIORITY - self._seq), ttr=60
        )
        old, self._state_id = self._state_id, new_id
        if old is not None:
            try:
                self.state_conn.delete(old)
            except JobNotFound:
                pass
