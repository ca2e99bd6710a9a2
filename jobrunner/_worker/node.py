"""The worker node: its slots, signals, health and metrics, and the publishers it owns.

Runs in the worker process. ``jobrunner work`` runs one :class:`Worker`
with ``concurrency`` slots (:class:`~jobrunner._worker.slot.Slot`), each a
thread with its own queue connections and its own child process.

Start-up: build the publishers (bad settings fail here, before any job is
taken), start the slots (each starts its child, then reserves). Shut-down
on SIGTERM/SIGINT: stop reserving, let running jobs finish within ``grace``
seconds, release the rest with no delay so other workers take them at once,
stop the children, exit 0. A second signal releases at once.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any, Protocol, runtime_checkable

from jobrunner._log import get_logger
from jobrunner._worker import tree
from jobrunner._worker.child_handle import sweep_strays
from jobrunner._worker.documents import ResultBuilder, publish_failure, publish_note
from jobrunner._worker.litter import sweep_litter
from jobrunner._worker.slot import Slot
from jobrunner.config import Config
from jobrunner.errors import JobNotFound, QueueError
from jobrunner.job import ErrorInfo
from jobrunner.metrics import MetricsServer, WorkerMetrics
from jobrunner.publish.base import PublisherChain, build_publishers
from jobrunner.queue import Connection

__all__ = ["Worker"]

log = get_logger(__name__)

#: Seconds between sweeps for processes that dead children left behind.
_SWEEP_EVERY = 2.0


@runtime_checkable
class Replicator(Protocol):
    """A publisher that copies written files elsewhere in the background (rsync)."""

    def replicate(self, rel: str, final: bool) -> None:
        """Queue the push of result path ``rel``."""

    def catch_up(self) -> None:
        """Queue a transfer of whatever the destinations lack."""


class Worker:
    """A worker node: ``concurrency`` slots reserving from every configured server."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stopping = threading.Event()
        self.aborting = threading.Event()
        self.stop_deadline = float("inf")
        self._signals: list[int] = []  # appended by the signal handler, read by run()
        self.publishers: PublisherChain = build_publishers(config)
        # Publishers that replicate written files (rsync): the children report to us.
        self._replicators: list[Replicator] = [
            p  # type: ignore[misc]
            for p in self.publishers.publishers
            if isinstance(p, Replicator)
        ]
        self._publish_lock = threading.Lock()  # publishers serve one thread at a time
        self.metrics = WorkerMetrics(
            reconnects=self._reconnects,
            servers_up=self.servers_reachable,
            queue=self._queue_depth if config.metrics_queue else None,
            children=self._child_pids,
            export=config.metrics_port is not None,
        )
        # Connections of the metrics scraper's own (reservations stay with the slots).
        self._probes = [Connection(address) for address in config.beanstalk]
        self._probe_lock = threading.Lock()
        self.slots = [Slot(self, index) for index in range(config.concurrency)]

    # -- metrics and health ---------------------------------------------------

    def _reconnects(self) -> dict[str, int]:
        totals = {address: 0 for address in self.config.beanstalk}
        for slot in self.slots:
            for conn in slot.connections:
                totals[conn.address] += conn.reconnects
        return totals

    def _child_pids(self) -> dict[int, int]:
        """The pid of each slot's child process, for the child memory metric."""
        pids = {slot.index: slot.child.pid for slot in self.slots}
        return {index: pid for index, pid in pids.items() if pid is not None}

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
        if self.config.results_dir is not None:
            threading.Thread(
                target=sweep_litter, args=(self.config.results_dir,), name="litter", daemon=True
            ).start()
        for publisher in self._replicators:
            publisher.catch_up()  # what a killed predecessor left unpushed
        # Orphans of a child that died are handed to us, not to init: see sweep_strays.
        tree.set_subreaper()
        for slot in self.slots:
            slot.start()
        next_sweep = time.monotonic() + _SWEEP_EVERY
        while any(slot.is_alive() for slot in self.slots):
            self._handle_signals()
            for slot in self.slots:
                slot.join(timeout=0.1)
                self._handle_signals()
            if time.monotonic() >= next_sweep:
                sweep_strays()
                next_sweep = time.monotonic() + _SWEEP_EVERY
        if server is not None:
            server.stop()
        for conn in self._probes:
            conn.close()
        self.publishers.close()
        sweep_strays()
        log.info("worker_stopped")
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

    # -- publication from the worker process ------------------------------------

    def replicate(self, paths: tuple[str, ...], final: bool) -> None:
        """Hand result files a child wrote to the replicating publishers (rsync)."""
        for publisher in self._replicators:
            for rel in paths:
                publisher.replicate(rel, final)

    def publish_failure(
        self, url: str, builder: ResultBuilder, error: ErrorInfo, bound: Any
    ) -> bool:
        """Publish a ``failed`` document; True when it got out (never raises)."""
        with self._publish_lock:
            return publish_failure(
                self.publishers,
                url,
                builder,
                error,
                max_bytes=self.config.max_result_bytes,
                bound=bound,
            )

    def publish_note(self, url: str, builder: ResultBuilder, message: str, bound: Any) -> bool:
        """Publish a ``running`` document saying a retry is coming (never raises)."""
        with self._publish_lock:
            return publish_note(
                self.publishers,
                url,
                builder,
                message,
                max_bytes=self.config.max_result_bytes,
                bound=bound,
            )
