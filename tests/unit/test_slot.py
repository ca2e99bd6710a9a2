"""A slot driven through a fake child: real beanstalkd and file publisher, no child process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobrunner._worker.child_handle import ChildDied
from jobrunner._worker.node import Worker
from jobrunner._worker.protocol import Finished, Publishing, RunJob
from jobrunner._worker.slot import Slot
from jobrunner.config import load_config
from jobrunner.job import ErrorInfo
from tests.support import Beanstalkd, job_body, put_raw, wait_for

BASE = "http://r.test/"
IN = "http://in.test/x"

#: What the fake child does with a job: a Finished, "hang", "die", "publish-then-die" or "lost".
Script = Callable[[RunJob], "Finished | str"]


class FakeChild:
    """A child that answers from a script, in this process; counts kills.

    Like a real child it takes jobs from a pipe in order: a job sent while
    another one publishes runs after it.
    """

    def __init__(self, script: Script, publishing: bool = False) -> None:
        self.script = script
        self.publishing = publishing  # say Publishing before a done Finished, as a child does
        self._said_publishing = False
        self.requests: list[RunJob] = []
        self.kills = 0
        self._alive = False
        self._pipe: list[Finished | str] = []  # answers of the jobs sent, in order
        self.start_fails = False

    @property
    def pid(self) -> int | None:
        return 4242 if self._alive else None

    @property
    def alive(self) -> bool:
        return self._alive

    def start(self) -> None:
        if self.start_fails:
            raise ChildDied("child did not start within 60 s")
        self._alive = True
        self._pipe = []

    def run(self, request: RunJob) -> None:
        answer = self.script(request)
        if answer == "lost":
            self._alive = False
            raise ChildDied("pipe closed")
        self.requests.append(request)
        self._pipe.append(answer)

    def wait(self, timeout: float) -> Finished | Publishing | None:
        answer = self._pipe[0] if self._pipe else None
        if answer == "publish-then-die" and self.publishing and not self._said_publishing:
            self._said_publishing = True
            return Publishing()
        if answer in ("die", "publish-then-die"):
            self._alive = False
            raise ChildDied("child process 4242 died: signal SIGSEGV (11)")
        if isinstance(answer, Finished):
            if self.publishing and answer.error is None and not self._said_publishing:
                self._said_publishing = True
                return Publishing()
            self._pipe.pop(0)
            self._said_publishing = False
            return answer
        time.sleep(min(timeout, 0.05))  # "hang"
        return None

    def needs_recycling(self, after: int = 0) -> str | None:
        return None

    def kill(self) -> None:
        self.kills += 1
        self._alive = False
        self._pipe = []

    def stop(self) -> None:
        self._alive = False


@pytest.fixture
def node(beanstalkd: Beanstalkd, tmp_path: Path) -> Iterator[Worker]:
    config = load_config(
        env={},
        flags={
            "beanstalk": [beanstalkd.address],
            "results_dir": str(tmp_path / "results"),
            "base_url": BASE,
            "concurrency": 1,
            "max_attempts": 3,
            "retry_base": 4,
            "retry_max": 8,
        },
    )
    worker = Worker(config)
    yield worker
    worker.publishers.close()


def _slot(node: Worker, script: Script, publishing: bool = False) -> tuple[Slot, FakeChild]:
    child = FakeChild(script, publishing)
    return Slot(node, 0, child=child), child


def _step_until_taken(slot: Slot, beanstalkd: Beanstalkd) -> None:
    """Run slot steps until the queue holds nothing ready or reserved."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        slot.step()
        stats = beanstalkd.tube_stats()
        if not stats.get("current-jobs-ready") and not stats.get("current-jobs-reserved"):
            return
    raise AssertionError("the job was not handled")


def _doc(tmp_path: Path, name: str) -> Any:
    return json.loads((tmp_path / "results" / name).read_bytes())


def _counted(node: Worker, outcome: str, job_type: str = "echo") -> float:
    return node.metrics.value("jobrunner_jobs_total", type=job_type, outcome=outcome) or 0


def test_done_deletes_the_job(node: Worker, beanstalkd: Beanstalkd) -> None:
    """A child reporting done gets the job deleted and counted; it received the decoded job
    with beanstalkd's attempt count."""
    slot, child = _slot(node, lambda request: Finished())
    put_raw(beanstalkd.port, job_body("echo", BASE + "a.json", IN, job_id="a"))
    _step_until_taken(slot, beanstalkd)
    assert beanstalkd.tube_stats()["total-jobs"] == 1
    assert beanstalkd.tube_stats().get("current-jobs-buried", 0) == 0
    assert [(r.job.id, r.attempt, r.tube) for r in child.requests] == [("a", 1, "default")]
    assert _counted(node, "done") == 1


def test_retryable_failure_releases_with_backoff_and_a_note(
    node: Worker, beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    """A retryable failure releases the job with the back-off and publishes a running
    document saying a retry is coming."""
    error = ErrorInfo(code="input_failed", message="HTTP 503", retryable=True)
    slot, _ = _slot(node, lambda request: Finished(error=error))
    put_raw(beanstalkd.port, job_body("echo", BASE + "r.json", IN, job_id="r"))
    _step_until_taken(slot, beanstalkd)
    assert beanstalkd.tube_stats()["current-jobs-delayed"] == 1
    doc = _doc(tmp_path, "r.json")
    assert doc["status"] == "running" and "retrying in" in doc["message"]
    assert _counted(node, "released") == 1
    assert node.metrics.value("jobrunner_retries_total", type="echo") == 1


def test_a_child_dying_mid_job_fails_it_with_worker_crash(
    node: Worker, beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    """A child that dies while running the job is killed (its tree), the job gets a failed
    worker_crash document and is buried."""
    slot, child = _slot(node, lambda request: "die")
    put_raw(beanstalkd.port, job_body("echo", BASE + "c.json", IN, job_id="c"))
    _step_until_taken(slot, beanstalkd)
    assert beanstalkd.tube_stats()["current-jobs-buried"] == 1
    doc = _doc(tmp_path, "c.json")
    assert doc["status"] == "failed" and doc["error"]["code"] == "worker_crash"
    assert "SIGSEGV" in doc["error"]["message"] and doc["attempt"] == 1
    assert child.kills == 1
    assert node.metrics.value("jobrunner_child_restarts_total", reason="crash") == 1


def test_a_job_past_its_timeout_is_killed_and_buried(
    node: Worker, beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    """A child that does not answer within the job's time-out is killed; the job is failed
    with timeout and buried."""
    slot, child = _slot(node, lambda request: "hang")
    put_raw(beanstalkd.port, job_body("echo", BASE + "t.json", IN, job_id="t", timeout=0.3))
    _step_until_taken(slot, beanstalkd)
    assert beanstalkd.tube_stats()["current-jobs-buried"] == 1
    assert _doc(tmp_path, "t.json")["error"]["code"] == "timeout"
    assert child.kills == 1


@pytest.mark.parametrize(
    ("fields", "code", "state"),
    [
        ({"expires": "2000-01-01T00:00:00Z"}, "expired", None),
        ({"meta": "not an object"}, "invalid_job", "current-jobs-buried"),
    ],
)
def test_refused_before_the_child(
    node: Worker,
    beanstalkd: Beanstalkd,
    tmp_path: Path,
    fields: dict[str, Any],
    code: str,
    state: str | None,
) -> None:
    """Expired and invalid jobs never reach the child: a failed document at the result URL
    (read from the refused document), then deleted (expired) or buried."""
    slot, child = _slot(node, lambda request: Finished())
    put_raw(beanstalkd.port, job_body("echo", BASE + "x.json", IN, job_id="x", **fields))
    _step_until_taken(slot, beanstalkd)
    assert child.requests == []
    doc = _doc(tmp_path, "x.json")
    assert doc["status"] == "failed" and doc["error"]["code"] == code and doc["id"] == "x"
    stats = beanstalkd.tube_stats()
    assert stats.get("current-jobs-buried", 0) == (1 if state else 0)


def test_a_child_lost_before_the_job_gives_it_back(node: Worker, beanstalkd: Beanstalkd) -> None:
    """A child found dead when handed the job releases it at once, unpublished, and is
    replaced."""
    answers = iter(["lost", Finished()])
    slot, child = _slot(node, lambda request: next(answers))
    put_raw(beanstalkd.port, job_body("echo", BASE + "l.json", IN, job_id="l"))
    _step_until_taken(slot, beanstalkd)
    assert [r.attempt for r in child.requests] == [2]
    assert node.metrics.value("jobrunner_child_restarts_total", reason="lost") == 1
    assert _counted(node, "released") == 1 and _counted(node, "done") == 1


def test_grace_over_gives_the_running_job_back(node: Worker, beanstalkd: Beanstalkd) -> None:
    """When the worker is stopping and the grace is over, the running job's child is killed
    and the job released without delay."""
    slot, child = _slot(node, lambda request: "hang")
    put_raw(beanstalkd.port, job_body("echo", BASE + "g.json", IN, job_id="g"))
    node.stop_deadline = time.monotonic()
    node.stopping.set()
    slot.child.start()
    found = slot._reserve()
    assert found is not None
    slot._handle_job(slot._take(*found))
    assert beanstalkd.tube_stats()["current-jobs-ready"] == 1
    # Reserved while stopping: given back untouched, the child never got it.
    assert child.requests == [] and child.kills == 0
    node.stopping.clear()
    node.aborting.set()
    put_raw(beanstalkd.port, job_body("echo", BASE + "g.json", IN, job_id="g2"))
    found = slot._reserve()
    assert found is not None
    slot._handle_job(slot._take(*found))
    assert child.kills == 1 and len(child.requests) == 1


def test_a_bug_while_handling_buries_the_job_instead_of_leaving_it_reserved(
    node: Worker, beanstalkd: Beanstalkd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception in the worker's own code buries the job (no poison job that
    returns after every TTR) and the slot goes on."""
    slot, _ = _slot(node, lambda request: Finished())

    def broken(body: bytes) -> None:
        raise RuntimeError("a bug in decoding")

    monkeypatch.setattr("jobrunner._worker.slot.codec.decode_job", broken)
    put_raw(beanstalkd.port, job_body("echo", BASE + "b.json", IN), ttr=2)
    _step_until_taken(slot, beanstalkd)
    assert beanstalkd.tube_stats().get("current-jobs-buried") == 1
    assert _counted(node, "internal_error", "other") == 1


def test_the_next_job_is_taken_while_the_child_publishes_and_handed_at_once(
    node: Worker, beanstalkd: Beanstalkd
) -> None:
    """When the child says it publishes, the slot takes the next ready job; at the first
    job's end that job goes to the child before the first one's queue entry is ended, and
    it is held (reserved) meanwhile, never released. The first job's delete waits for the
    reserve the second one's publication causes, and both go in one round trip."""
    slot, child = _slot(node, lambda request: Finished(), publishing=True)
    for name in ("one", "two", "three"):
        put_raw(beanstalkd.port, job_body("echo", BASE + f"{name}.json", IN, job_id=name))
    slot.child.start()
    slot.step()  # runs "one"; takes "two" ahead and hands it over at "one"'s end
    assert [r.job.id for r in child.requests] == ["one", "two"]
    stats = beanstalkd.tube_stats()
    assert stats["current-jobs-reserved"] == 2 and stats.get("cmd-delete", 0) == 0
    assert slot.busy and slot.current is not None and slot.current["job_id"] == "two"
    slot.step()  # "two" publishes: "one" is deleted and "three" reserved, in one exchange
    stats = beanstalkd.tube_stats()
    assert stats["cmd-delete"] == 1 and stats["current-jobs-reserved"] == 2
    assert [r.job.id for r in child.requests] == ["one", "two", "three"]
    slot.step()  # watches "three" to its end: nothing ahead, deleted at once
    stats = beanstalkd.tube_stats()
    assert stats.get("current-jobs-reserved", 0) == 0 and stats["cmd-delete"] == 3
    assert [r.attempt for r in child.requests] == [1, 1, 1]  # nothing given back, taken again
    assert _counted(node, "done") == 3 and not slot.busy


def test_a_deferred_delete_goes_alone_when_the_next_job_runs_long(
    node: Worker, beanstalkd: Beanstalkd
) -> None:
    """A done job whose delete waits for the next job's publication is deleted within
    _DELETE_DEFER anyway when that job computes for long (it never waits behind it)."""
    answers: dict[str, Finished | str] = {"one": Finished(), "two": "hang"}
    slot, _child = _slot(node, lambda request: answers[request.job.id], publishing=True)
    for name in ("one", "two"):
        put_raw(beanstalkd.port, job_body("echo", BASE + f"{name}.json", IN, job_id=name))
    slot.child.start()
    slot.step()  # "one" done, "two" handed; "one"'s delete deferred
    assert beanstalkd.tube_stats()["current-jobs-reserved"] == 2
    stepping = threading.Thread(target=slot.step)  # watches "two", which hangs
    stepping.start()
    try:
        wait_for(lambda: beanstalkd.tube_stats().get("cmd-delete") == 1, 5, what="the delete")
        assert beanstalkd.tube_stats()["current-jobs-reserved"] == 1  # "two" still runs
        assert _counted(node, "done") == 1
    finally:
        node.stop_deadline = time.monotonic()
        node.stopping.set()
        stepping.join(timeout=10)
    assert beanstalkd.tube_stats()["current-jobs-ready"] == 1  # "two" given back at the stop


def test_a_deferred_delete_is_sent_before_the_slot_ends(
    node: Worker, beanstalkd: Beanstalkd
) -> None:
    """The worker stopping with a delete deferred still sends it: the done job never runs
    again."""
    slot, _child = _slot(node, lambda request: Finished(), publishing=True)
    for name in ("one", "two"):
        put_raw(beanstalkd.port, job_body("echo", BASE + f"{name}.json", IN, job_id=name))
    slot.child.start()
    slot.step()
    assert slot._deferred is not None
    node.stop_deadline = time.monotonic() + 30
    node.stopping.set()
    slot.run()  # "two" is in the child already: watched to its end, then the slot ends
    stats = beanstalkd.tube_stats()
    assert stats["cmd-delete"] == 2 and stats.get("current-jobs-reserved", 0) == 0
    assert _counted(node, "done") == 2


def test_a_job_taken_ahead_is_given_back_when_the_worker_stops(
    node: Worker, beanstalkd: Beanstalkd
) -> None:
    """A job taken ahead while the stop signal comes is released at once, untouched by the
    child, and counts no failure."""
    slot, child = _slot(node, lambda request: Finished(), publishing=True)
    for name in ("one", "two"):
        put_raw(beanstalkd.port, job_body("echo", BASE + f"{name}.json", IN, job_id=name))
    slot.child.start()
    original = slot._take_ahead

    def take_then_stop() -> None:
        original()
        node.stop_deadline = time.monotonic() + 30
        node.stopping.set()

    slot._take_ahead = take_then_stop  # type: ignore[method-assign]
    slot.step()
    assert [r.job.id for r in child.requests] == ["one"]
    assert slot._ahead is not None and slot._ahead.handed is None
    slot.run()  # stopping: the job ahead is given back, the slot ends
    stats = beanstalkd.tube_stats()
    assert stats["current-jobs-ready"] == 1 and stats.get("current-jobs-reserved", 0) == 0
    assert _counted(node, "done") == 1 and _counted(node, "released") == 1


def test_no_job_is_taken_ahead_of_a_failure_or_without_the_publishing_word(
    node: Worker, beanstalkd: Beanstalkd
) -> None:
    """A child that fails a job (it never says it publishes) keeps the plain order: the next
    job is reserved only after the failed one's queue entry ended."""
    error = ErrorInfo(code="plugin_error", message="boom", retryable=False)
    slot, child = _slot(node, lambda request: Finished(error=error), publishing=True)
    for name in ("one", "two"):
        put_raw(beanstalkd.port, job_body("echo", BASE + f"{name}.json", IN, job_id=name))
    slot.child.start()
    slot.step()
    assert [r.job.id for r in child.requests] == ["one"] and not slot.busy
    assert beanstalkd.tube_stats()["current-jobs-buried"] == 1


def test_a_job_sent_ahead_survives_the_crash_of_the_job_before_it(
    node: Worker, beanstalkd: Beanstalkd
) -> None:
    """A job put into the child's pipe while the child published, whose child then died,
    never started: it goes to the fresh child and runs once, with its first attempt."""
    answers = {"one": "publish-then-die", "two": Finished()}
    slot, child = _slot(node, lambda request: answers[request.job.id], publishing=True)
    for name in ("one", "two"):
        put_raw(beanstalkd.port, job_body("echo", BASE + f"{name}.json", IN, job_id=name))
    _step_until_taken(slot, beanstalkd)
    assert [r.job.id for r in child.requests] == ["one", "two", "two"]  # sent, then handed
    assert [r.attempt for r in child.requests] == [1, 1, 1]
    assert beanstalkd.tube_stats()["current-jobs-buried"] == 1  # "one": worker_crash
    assert _counted(node, "done") == 1 and _counted(node, "worker_crash") == 1


def test_a_job_taken_ahead_is_given_back_when_the_next_child_does_not_start(
    node: Worker, beanstalkd: Beanstalkd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job taken ahead whose child must be replaced and then fails to start is released
    at once (ready for another worker), not held untouched while the slot retries."""
    monkeypatch.setattr("jobrunner._worker.slot._CHILD_RESTART_DELAY", 0.01)
    error = ErrorInfo(code="input_failed", message="HTTP 404", retryable=False)
    answers = {"one": "publish-then-die", "two": Finished(error=error)}
    slot, child = _slot(node, lambda request: answers[request.job.id], publishing=True)
    for name in ("one", "two"):
        put_raw(beanstalkd.port, job_body("echo", BASE + f"{name}.json", IN, job_id=name))
    slot.child.start()
    child.start_fails = True
    slot.step()  # "one" publishes, "two" is taken ahead, then the child dies
    assert slot._ahead is not None and slot._ahead.handed is None
    slot.step()  # no child: "two" goes back
    assert slot._ahead is None
    stats = beanstalkd.tube_stats()
    assert stats["current-jobs-ready"] == 1 and stats.get("current-jobs-reserved", 0) == 0
    assert [r.job.id for r in child.requests] == ["one", "two"]  # "two" sent, never started
    assert _counted(node, "released") == 1
