"""The ``rsync`` publisher: replicate each published document to peer workers.

Used after the ``file`` publisher (``--publisher file --publisher rsync``):
the document the file publisher wrote below ``--results-dir`` is pushed to
every ``--rsync-peer`` in parallel, to the same relative path. A peer is an
rsync daemon URL (``rsync://host[:port]/module/dir``), an ssh destination
(``host:/srv/results``) or a local directory (another file system, an NFS
mount). Behind a load balancer every worker then serves every result.

Atomic on the peer
    rsync writes a dot-named temp file (``.r.json.XXXXXX``) next to the
    target and renames it into place, so a reader sees the old or the new
    document — never ``--inplace``, and never ``--temp-dir`` (a rename across
    file systems is a copy, not atomic). ``--fsync`` is passed when the
    installed rsync knows it (3.2.4 and later), so a final document survives
    a power cut on the peer. Result servers must not serve dot-named files;
    ``jobrunner serve`` and ``examples/nginx`` do not. Every push transfers
    the file (``--ignore-times``): two documents of the same size written in
    the same second must not be mistaken for one.

Never in the job's way
    Pushes run in one background thread per peer; ``publish`` only queues
    them. Pending pushes of the same document are coalesced — a push always
    sends the newest local file, so only the latest state per result URL
    matters. A failed push of a final document (``done``/``failed``) is
    logged and retried with exponential back-off (``--retry-base``,
    ``--retry-max``), at most ``--rsync-retries`` times; a failed push of a
    ``running`` document is dropped (the next document supersedes it). With
    ``--rsync-required``, ``publish`` of a final document waits for every
    peer and raises a retryable :class:`~jobrunner.errors.PublishFailed`
    when one fails, so the job is released and tried again.

rsync's exit codes 23 and 24 (partial transfer) count as failures, as does a
push that takes longer than ``--rsync-timeout`` (the process is killed).

Outlives jobs and restarts
    In ``jobrunner work`` the pushes run in the worker process, not in the
    child that ran the job: the child's publisher only reports the paths it
    wrote (:meth:`RsyncPublisher.forward_to`), so killing a child (time-out,
    recycling) loses nothing. What is pending when the worker itself dies is
    re-derived instead of stored: when a worker starts, and when a peer
    answers again after pushes to it were given up, one catch-up transfer
    (:meth:`RsyncPublisher.catch_up`) sends the whole results directory —
    rsync's own comparison sends only the files the peer lacks or has in an
    older version (``--update``: a newer file on the peer is kept), and
    dot-named temp files are left out.

Final markers travel too
    With ``final_markers`` on (the default), a peer gets each document's
    final marker (``.final/PATH``, see :mod:`jobrunner.resultsdir`) in a
    second transfer *after* the document, so a server there testing for it
    (the nginx example) caches a finished document long, but never an older
    one. Before the first push of a path that is not final, the peer's marker
    is deleted (``--delete-missing-args``) in a transfer of its own, so a
    re-run's ``running`` document never lands next to a stale marker; later
    pushes of the same path skip that. A catch-up sends the markers after
    the documents. It costs one more rsync per final document and per new
    ``running`` path, in the background.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from pathlib import Path

import attrs

from jobrunner._log import get_logger
from jobrunner.config import Config
from jobrunner.errors import ConfigError, PublishFailed
from jobrunner.resultsdir import FINAL_MARKERS, relative_result_path

__all__ = ["CATCH_UP", "RsyncPublisher", "rsync_options"]

#: The pending "path" that stands for the whole results directory (a catch-up).
CATCH_UP = ""
#: Paths per peer remembered as having no final marker there; forgotten beyond this.
_UNMARKED_LIMIT = 10_000
#: How many rsync time-outs a catch-up transfer of the whole directory may take.
_CATCH_UP_TIMEOUTS = 20

log = get_logger(__name__)

#: What rsync's exit codes mean (``man rsync``, EXIT VALUES).
_EXIT_CODES = {
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files or directories",
    5: "error starting the client-server protocol (module or authentication?)",
    10: "error in socket I/O (is the peer up?)",
    11: "error in file I/O",
    12: "error in the rsync protocol data stream",
    23: "partial transfer due to error",
    24: "partial transfer: source files vanished",
    30: "timeout in data send/receive",
    35: "timeout waiting for the daemon connection",
    255: "remote shell (ssh) failed",
}
#: Seconds ``close`` waits, beyond one rsync time-out, for the last pushes.
_CLOSE_MARGIN = 5.0

#: ``run(command, timeout) -> (exit code, stderr)``; exit code None on time-out.
Runner = Callable[[Sequence[str], float], tuple["int | None", str]]


@functools.lru_cache(maxsize=8)
def rsync_options(binary: str) -> frozenset[str]:
    """The long options the installed rsync knows (from ``rsync --help``).

    Raises:
        ConfigError: rsync cannot be run.
    """
    try:
        out = subprocess.run(
            [binary, "--help"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot run {binary} --help: {exc}") from None
    return frozenset(re.findall(r"(--[a-z][a-z-]+)", out.stdout + out.stderr))


def _run_rsync(command: Sequence[str], timeout: float) -> tuple[int | None, str]:
    """Run one rsync command; kill it after ``timeout`` seconds (exit code None)."""
    proc = subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return None, err or ""
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.returncode, err or ""


def _peer_kind(dest: str) -> str:
    """``daemon``, ``ssh`` or ``local``, from rsync's own destination syntax."""
    if dest.startswith("rsync://") or "::" in dest:
        return "daemon"
    if re.match(r"^[^/:]+:", dest):
        return "ssh"
    return "local"


@attrs.define
class _Push:
    """A pending push of one document (by relative path) to one peer."""

    rel: str
    final: bool
    due: float
    attempts: int = 0
    waiters: list[Future[None]] = attrs.Factory(list)


class _Peer:
    """One destination: its pending pushes, coalesced by path, and the thread pushing them."""

    def __init__(
        self,
        dest: str,
        push: Callable[[str, str], None],
        *,
        retries: int,
        backoff: Callable[[int], float],
    ) -> None:
        self.dest = dest
        self._push = push
        self._retries = retries
        self._backoff = backoff
        self._pending: dict[str, _Push] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        #: Pushes to this peer were given up: catch up once it answers again.
        self._lagging = False

    def submit(self, rel: str, final: bool, waiter: Future[None] | None = None) -> None:
        """Queue a push of ``rel``; a pending push of the same path absorbs it."""
        with self._cond:
            if self._closing:
                if waiter is not None:
                    waiter.set_exception(PublishFailed("the rsync publisher is closed"))
                return
            now = time.monotonic()
            task = self._pending.get(rel)
            if task is None:
                task = self._pending[rel] = _Push(rel, final, now)
            else:  # a newer document: push it now, with a fresh count of attempts
                task.final = task.final or final
                task.due = now
                task.attempts = 0
            if waiter is not None:
                task.waiters.append(waiter)
            if self._thread is None:  # started lazily: most processes never publish
                self._thread = threading.Thread(
                    target=self._work, name=f"rsync-peer-{self.dest}", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _next(self) -> _Push | None:
        """Wait for the next due push; None when closing and nothing is left."""
        with self._cond:
            while True:
                if self._pending:
                    task = min(self._pending.values(), key=lambda t: t.due)
                    wait = 0.0 if self._closing else task.due - time.monotonic()
                    if wait <= 0:
                        del self._pending[task.rel]
                        return task
                    self._cond.wait(wait)
                elif self._closing:
                    return None
                else:
                    self._cond.wait()

    def _work(self) -> None:
        while (task := self._next()) is not None:
            task.attempts += 1
            started = time.monotonic()
            try:
                self._push(self.dest, task.rel)
            except PublishFailed as exc:
                for waiter in task.waiters:
                    waiter.set_exception(exc)
                self._failed(task, exc.message)
                continue
            except Exception as exc:  # never let the thread die
                for waiter in task.waiters:
                    waiter.set_exception(PublishFailed(f"{type(exc).__name__}: {exc}"))
                self._failed(task, f"{type(exc).__name__}: {exc}")
                continue
            for waiter in task.waiters:
                waiter.set_result(None)
            if task.rel == CATCH_UP:
                log.info(
                    "rsync_caught_up", peer=self.dest, seconds=round(time.monotonic() - started, 3)
                )
            elif self._lagging:  # the peer answers again: send what it missed meanwhile
                self._lagging = False
                self.submit(CATCH_UP, True)
            log.debug(
                "rsync_pushed",
                peer=self.dest,
                path=task.rel,
                final=task.final,
                attempt=task.attempts,
                seconds=round(time.monotonic() - started, 3),
            )

    def _failed(self, task: _Push, error: str) -> None:
        retry = task.final and task.attempts < self._retries and not self._closing
        delay = self._backoff(task.attempts) if retry else None
        if not task.final:
            log.info(
                "rsync_push_failed",
                peer=self.dest,
                path=task.rel,
                final=False,
                error=error,
                note="status document dropped; the next document supersedes it",
            )
            return
        if delay is None:
            self._lagging = True
            log.error(
                "rsync_push_abandoned",
                peer=self.dest,
                path=task.rel,
                attempts=task.attempts,
                error=error,
            )
            return
        log.warning(
            "rsync_push_failed",
            peer=self.dest,
            path=task.rel,
            final=True,
            attempt=task.attempts,
            error=error,
            retry_in=delay,
        )
        with self._cond:
            if task.rel in self._pending:  # a newer document is queued already
                self._pending[task.rel].final = True
                return
            task.waiters = []
            task.due = time.monotonic() + delay
            self._pending[task.rel] = task
            self._cond.notify()

    def start_closing(self) -> None:
        """Push what is pending once more, without back-off, then let the thread end."""
        with self._cond:
            self._closing = True
            self._cond.notify()

    def join(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic) for the thread; log what is left undone."""
        with self._cond:
            thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            left = [t for t in self._pending.values() if t.final]
            self._pending.clear()
        for task in left:
            log.error("rsync_push_abandoned", peer=self.dest, path=task.rel, error="closing")
        if thread is not None and thread.is_alive():
            log.error("rsync_push_abandoned", peer=self.dest, error="push still running at close")


class RsyncPublisher:
    """Pushes documents written by the file publisher to every ``--rsync-peer``.

    Args:
        config: uses ``rsync_peer`` (required), ``results_dir`` and ``base_url``
            (as the file publisher), ``rsync_timeout``, ``rsync_required``,
            ``rsync_retries``, ``retry_base`` and ``retry_max``.
        run: runs one rsync command (for tests); a real subprocess by default.
            With a ``run`` given, the installed rsync is not probed for ``--fsync``.
        binary: the rsync executable; found on ``PATH`` by default.

    Raises:
        ConfigError: no peers, no results directory or base URL, the ``file``
            publisher not before ``rsync``, or rsync not installed.
    """

    #: It pushes what the publishers before it wrote: when one of them could not
    #: write a document, there is nothing of it to push (see ``publish_failure``).
    follows_previous = True

    def __init__(
        self, config: Config, *, run: Runner | None = None, binary: str | None = None
    ) -> None:
        if not config.rsync_peer:
            raise ConfigError(
                "the rsync publisher needs --rsync-peer DEST (repeatable): an rsync daemon URL "
                "(rsync://host/module/), an ssh destination (host:/dir/) or a directory"
            )
        if config.results_dir is None or config.base_url is None:
            raise ConfigError(
                "the rsync publisher needs --results-dir and --base-url, as the file publisher"
            )
        names = list(config.publisher)
        if "rsync" in names and ("file" not in names or names.index("file") > names.index("rsync")):
            raise ConfigError(
                "the rsync publisher pushes the file the file publisher wrote: "
                "use --publisher file --publisher rsync (in this order)"
            )
        found = binary or shutil.which("rsync")
        if found is None:
            raise ConfigError("the rsync publisher needs rsync installed (apt-get install rsync)")
        self.binary = found
        self.results_dir = Path(os.path.realpath(config.results_dir))
        self.base_url = config.base_url
        self.timeout = config.rsync_timeout
        self.required = config.rsync_required
        self._run: Runner = run or _run_rsync
        # An injected runner (tests) stands for a current rsync: no probing.
        options = rsync_options(self.binary) if run is None else frozenset({"--fsync"})
        self.fsync = "--fsync" in options and config.fsync
        if config.fsync and "--fsync" not in options:
            log.warning(
                "rsync_without_fsync",
                rsync=self.binary,
                note="this rsync has no --fsync (3.2.4+); peers rename without fsync",
            )

        self.markers = config.final_markers and (
            run is not None or "--delete-missing-args" in options
        )
        if config.final_markers and not self.markers:
            log.warning(
                "rsync_without_final_markers",
                rsync=self.binary,
                note="this rsync has no --delete-missing-args (3.1.0+): peers get no final "
                "markers and cache finished documents as briefly as running ones",
            )
        #: Per peer: paths whose marker is known to be absent there (this process's view).
        self._unmarked: dict[str, set[str]] = {}

        def backoff(attempt: int) -> float:
            return float(min(config.retry_max, config.retry_base * 2 ** max(0, attempt - 1)))

        #: Set in child processes: report written paths instead of pushing them.
        self._forward: Callable[[str, bool], None] | None = None
        self.peers = [
            _Peer(
                dest.rstrip("/") + "/",
                self._push,
                retries=config.rsync_retries,
                backoff=backoff,
            )
            for dest in config.rsync_peer
            if dest.strip()
        ]

    def forward_to(self, forward: Callable[[str, bool], None]) -> None:
        """Report each published path to ``forward(rel, final)`` instead of pushing it.

        A child process running jobs does this: the worker, which outlives the
        child, pushes. Final documents under ``--rsync-required`` are still
        pushed here, and waited for, since the job's outcome depends on them.
        """
        self._forward = forward

    def replicate(self, rel: str, final: bool) -> None:
        """Queue the push of result path ``rel`` (already written locally) to every peer."""
        for peer in self.peers:
            peer.submit(rel, final)

    def catch_up(self) -> None:
        """Queue one transfer of the whole results directory to every peer.

        It sends what a peer lacks or holds in an older version; the pushes a
        killed worker left pending are among them.
        """
        for peer in self.peers:
            peer.submit(CATCH_UP, True)

    def command(self, dest: str, rel: str) -> list[str]:
        """The rsync command that pushes ``results_dir/rel`` to ``dest/rel``.

        ``rel`` :data:`CATCH_UP` sends the whole directory, leaving out
        dot-named (temp) files and files newer on the peer; ``.final`` sends
        every final marker; ``.final/PATH`` sends one marker, or deletes it on
        the peer when it is missing here.
        """
        seconds = str(max(1, round(self.timeout)))
        # --relative with "/./": the path after the dot is recreated on the peer
        # (missing directories included), whatever rsync version runs there.
        command = [
            self.binary,
            "--relative",
            "--times",
            "--perms",
            "--chmod=D755,F644",
            f"--timeout={seconds}",
        ]
        if rel == CATCH_UP:
            command += ["--recursive", "--update", "--exclude=.*"]
        elif rel == FINAL_MARKERS:  # every marker, after a catch-up
            command += ["--recursive", "--update"]
            rel += "/"
        elif rel.startswith(FINAL_MARKERS + "/"):  # one marker: copied, or deleted when missing
            command += ["--ignore-times", "--delete-missing-args"]
        else:
            command.append("--ignore-times")
        if self.fsync:
            command.append("--fsync")
        kind = _peer_kind(dest)
        if kind == "daemon":
            command.append(f"--contimeout={seconds}")
        elif kind == "ssh" and "RSYNC_RSH" not in os.environ:
            command += ["--rsh", f"ssh -o BatchMode=yes -o ConnectTimeout={seconds}"]
        return [*command, "--", f"{self.results_dir}/./{rel}", dest]

    def _push(self, dest: str, rel: str) -> None:
        """Push ``rel`` to ``dest``, with its final marker when markers are on."""
        if not self.markers:
            self._transfer(dest, rel)
            return
        unmarked = self._unmarked.setdefault(dest, set())
        marker = f"{FINAL_MARKERS}/{rel}"
        if rel == CATCH_UP:
            self._transfer(dest, rel)
            if os.path.isdir(self.results_dir / FINAL_MARKERS):
                self._transfer(dest, FINAL_MARKERS)
            unmarked.clear()  # the peer may hold any marker now
        elif os.path.lexists(self.results_dir / marker):  # final: document first, marker after
            self._transfer(dest, rel)
            self._transfer(dest, marker)
            unmarked.discard(rel)
        else:  # not final: the peer's marker goes first, once per path
            if rel not in unmarked:
                # rsync sends the missing marker's parents: they must exist here.
                os.makedirs((self.results_dir / marker).parent, exist_ok=True)
                self._transfer(dest, marker)
                if len(unmarked) >= _UNMARKED_LIMIT:
                    unmarked.clear()
                unmarked.add(rel)
            self._transfer(dest, rel)

    def _transfer(self, dest: str, rel: str) -> None:
        """Run one rsync transfer of ``rel`` (see :meth:`command`) to ``dest``."""
        timeout = self.timeout * (_CATCH_UP_TIMEOUTS if rel in (CATCH_UP, FINAL_MARKERS) else 1)
        code, err = self._run(self.command(dest, rel), timeout)
        if code == 0:
            return
        detail = err.strip().splitlines()[-1] if err.strip() else ""
        if code is None:
            reason = f"timed out after {timeout:g} s (--rsync-timeout)"
        else:
            reason = f"exit {code}, {_EXIT_CODES.get(code, 'failed')}"
        raise PublishFailed(f"rsync to {dest} failed: {reason}" + (f": {detail}" if detail else ""))

    def check(self, url: str) -> None:
        """Refuse a result URL outside the base URL (as the file publisher)."""
        relative_result_path(url, self.base_url)

    def publish(self, url: str, body: bytes, *, final: bool = True) -> None:
        """Queue the push of the local document at ``url`` to every peer.

        Returns at once, unless ``--rsync-required`` is set and the document
        is final: then it waits for every peer.

        Raises:
            ResultRefused: the URL is not under the base URL.
            PublishFailed: (``--rsync-required`` only) a peer failed; retryable.
        """
        rel = relative_result_path(url, self.base_url)
        if not (final and self.required):
            if self._forward is not None:
                self._forward(rel, final)
                return
            for peer in self.peers:
                peer.submit(rel, final)
            return
        waiters: list[tuple[str, Future[None]]] = []
        for peer in self.peers:
            waiter: Future[None] = Future()
            peer.submit(rel, final, waiter)
            waiters.append((peer.dest, waiter))
        # A push already running for the same peer goes first: two time-outs at most.
        wait_futures([w for _, w in waiters], timeout=2 * self.timeout + _CLOSE_MARGIN)
        errors = []
        for dest, waiter in waiters:
            if not waiter.done():
                errors.append(f"rsync to {dest} did not finish in time")
            elif waiter.exception() is not None:
                errors.append(str(waiter.exception()))
        if errors:
            raise PublishFailed(
                f"{len(errors)} of {len(waiters)} rsync peer(s) failed "
                f"(--rsync-required): " + "; ".join(errors)
            )

    def close(self) -> None:
        """Push what is still pending (one attempt each), then stop the peer threads."""
        deadline = time.monotonic() + self.timeout + _CLOSE_MARGIN
        for peer in self.peers:
            peer.start_closing()
        for peer in self.peers:
            peer.join(deadline)
