"""JobExecutor outcomes: delete, release with back-off, bury, expired; the back-off itself."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from jobrunner import Retry
from jobrunner.config import load_config
from jobrunner.errors import PublishFailed
from jobrunner.plugins import LoadedJobType
from jobrunner.publish.base import PublisherChain
from jobrunner.runner import BURY, DELETE, RELEASE, JobExecutor, Outcome, backoff_delay
from tests.support import job_body


class Recorder:
    """A publisher that keeps every document; fails final ones while ``fail_final`` is set."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []
        self.fail_final = False

    def check(self, url: str) -> None:
        pass

    def publish(self, url: str, body: bytes, *, final: bool = True) -> None:
        if final and self.fail_final:
            raise PublishFailed("disk full")
        self.docs.append(json.loads(body))

    def close(self) -> None:
        pass


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def executor(tmp_path: Path, recorder: Recorder) -> JobExecutor:
    (tmp_path / "in.json").write_text("[1]")
    config = load_config(
        flags={"allow_file_inputs": str(tmp_path), "retry_base": 4, "retry_max": 20}, env={}
    )
    executor = JobExecutor(config, publishers=PublisherChain([recorder]))
    return executor


def _add(executor: JobExecutor, name: str, run: Any) -> None:
    executor.registry._loaded[name] = LoadedJobType(
        name=name, run=run, params_cls=None, distribution=None, version=None
    )


def _body(tmp_path: Path, job_type: str, **fields: Any) -> bytes:
    return job_body(job_type, "http://r.test/x.json", (tmp_path / "in.json").as_uri(), **fields)


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    """The delay is about base * 2**(attempt-1), between half and all of it, capped, >= 1 s."""
    for _ in range(200):
        assert 5 <= backoff_delay(1, 10, 3600) <= 10
        assert 20 <= backoff_delay(3, 10, 3600) <= 40
        assert 30 <= backoff_delay(12, 10, 60) <= 60
        assert backoff_delay(1, 0.1, 1) == 1


def test_outcome_json_drops_empty_fields() -> None:
    """An outcome crosses the pipe without None fields."""
    assert Outcome(action=DELETE, published=True).to_json() == {
        "action": "delete",
        "delay": 0,
        "published": True,
    }


def test_quick_job_publishes_only_done_and_deletes(
    executor: JobExecutor, recorder: Recorder, tmp_path: Path
) -> None:
    """A job done before --running-delay publishes only its final document, then deletes."""
    outcome = executor.execute(_body(tmp_path, "echo"), attempt=1, max_attempts=3)
    assert outcome.action == DELETE and outcome.published
    assert [d["status"] for d in recorder.docs] == ["done"]


def test_running_document_at_once_with_zero_delay(recorder: Recorder, tmp_path: Path) -> None:
    """With --running-delay 0 a running document is published before the job runs."""
    (tmp_path / "in.json").write_text("[1]")
    config = load_config(flags={"allow_file_inputs": str(tmp_path), "running_delay": 0}, env={})
    executor = JobExecutor(config, publishers=PublisherChain([recorder]))
    executor.execute(_body(tmp_path, "echo"), attempt=2, max_attempts=3)
    assert [(d["status"], d["attempt"]) for d in recorder.docs] == [("running", 2), ("done", 2)]


def test_slow_job_shows_running_before_done(
    executor: JobExecutor, recorder: Recorder, tmp_path: Path
) -> None:
    """A job still running after --running-delay shows a running document, then done."""

    def slow(ctx: Any) -> Any:
        time.sleep(0.6)
        return 1

    _add(executor, "slow", slow)
    executor.execute(_body(tmp_path, "slow"), attempt=1, max_attempts=3)
    assert [d["status"] for d in recorder.docs] == ["running", "done"]
    assert recorder.docs[0]["progress"] == 0


def test_retry_releases_with_backoff_then_exhausts(
    executor: JobExecutor, recorder: Recorder, tmp_path: Path
) -> None:
    """Retry releases with the back-off until the last attempt, which buries with
    retries_exhausted and the last error."""

    def flaky(ctx: Any) -> Any:
        raise Retry("upstream busy")

    _add(executor, "flaky", flaky)
    first = executor.execute(_body(tmp_path, "flaky"), attempt=1, max_attempts=3)
    assert first.action == RELEASE and 2 <= first.delay <= 4
    assert first.code == "retry_requested"
    second = executor.execute(_body(tmp_path, "flaky"), attempt=2, max_attempts=3)
    assert second.action == RELEASE and 4 <= second.delay <= 8
    last = executor.execute(_body(tmp_path, "flaky"), attempt=3, max_attempts=3)
    assert last.action == BURY and last.code == "retries_exhausted"
    assert "retry_requested: upstream busy" in (last.message or "")
    assert recorder.docs[-1]["error"]["code"] == "retries_exhausted"


def test_retry_delay_from_the_job_type_wins(executor: JobExecutor, tmp_path: Path) -> None:
    """Retry(delay=...) sets the release delay, even above --retry-max."""

    def later(ctx: Any) -> Any:
        raise Retry("later", delay=90)

    _add(executor, "later", later)
    outcome = executor.execute(_body(tmp_path, "later"), attempt=1, max_attempts=3)
    assert (outcome.action, outcome.delay) == (RELEASE, 90)


def test_failed_publication_is_retried(
    executor: JobExecutor, recorder: Recorder, tmp_path: Path
) -> None:
    """A done document that cannot be published releases the job for a retry."""
    recorder.fail_final = True
    outcome = executor.execute(_body(tmp_path, "echo"), attempt=1, max_attempts=3)
    assert outcome.action == RELEASE and outcome.code == "publish_failed"
    last = executor.execute(_body(tmp_path, "echo"), attempt=3, max_attempts=3)
    assert last.action == BURY and not last.published


def test_plugin_error_buries(executor: JobExecutor, recorder: Recorder, tmp_path: Path) -> None:
    """An exception from the job type is a permanent plugin_error."""

    def broken(ctx: Any) -> Any:
        raise KeyError("x")

    _add(executor, "broken", broken)
    outcome = executor.execute(_body(tmp_path, "broken"), attempt=1, max_attempts=3)
    assert outcome.action == BURY and outcome.code == "plugin_error"
    assert recorder.docs[-1]["error"]["message"] == "KeyError: 'x'"


def test_expired_job_is_deleted_without_running(
    executor: JobExecutor, recorder: Recorder, tmp_path: Path
) -> None:
    """A job past its expires time is not run: failed/expired is published, the job deleted."""
    body = _body(tmp_path, "echo", expires="2000-01-01T00:00:00Z")
    outcome = executor.execute(body, attempt=1, max_attempts=3)
    assert outcome.action == DELETE and outcome.code == "expired" and outcome.published
    assert [d["status"] for d in recorder.docs] == ["failed"]


def test_progress_never_waits_for_a_slow_publisher() -> None:
    """ctx.progress returns while a running document is still being published, the latest
    value gets out, and nothing is published after close()."""
    import threading

    from jobrunner.results import ResultBuilder
    from jobrunner.runner import ProgressReporter

    entered, release = threading.Event(), threading.Event()
    published: list[float] = []

    def slow_publish(doc: Any) -> None:
        entered.set()
        release.wait(10)
        published.append(doc.progress)

    builder = ResultBuilder(job_id="j", job_type="t", worker="w")
    reporter = ProgressReporter(slow_publish, builder, interval=0.05)
    reporter(0.1)
    assert entered.wait(10)  # the first value is being published, and blocks
    for fraction in (0.2, 0.5, 0.9):
        reporter(fraction)  # must not block behind the publisher
    release.set()
    deadline = time.monotonic() + 10
    while published[-1:] != [0.9] and time.monotonic() < deadline:
        time.sleep(0.01)
    reporter.close()
    assert published[0] == 0.1 and published[-1] == 0.9
    count = len(published)
    reporter(1.0)
    time.sleep(0.2)
    assert len(published) == count


def test_input_of_a_type_the_job_type_does_not_take_is_input_invalid(
    executor: JobExecutor, recorder: Recorder, tmp_path: Path
) -> None:
    """A job type declaring ``accepts`` refuses other content types with input_invalid."""
    executor.registry._loaded["csv_only"] = LoadedJobType(
        name="csv_only",
        run=lambda ctx: 1,
        params_cls=None,
        distribution=None,
        version=None,
        accepts=("text/csv", "text/plain"),
    )
    outcome = executor.execute(_body(tmp_path, "csv_only"), attempt=1, max_attempts=3)
    assert outcome.action == BURY and outcome.code == "input_invalid"
    assert "application/json" in (outcome.message or "")
    assert recorder.docs[-1]["error"]["code"] == "input_invalid"


@pytest.mark.parametrize(
    ("accepts", "content_type", "taken"),
    [
        (None, "application/octet-stream", True),
        (("application/json",), "application/json; charset=utf-8", True),
        (("text/*",), "text/csv", True),
        (("text/*",), "application/json", False),
        (("*/*+json",), "application/geo+json", True),
        (("text/csv",), None, False),
    ],
)
def test_takes_matches_media_types(
    accepts: tuple[str, ...] | None, content_type: str | None, taken: bool
) -> None:
    """``accepts`` patterns: exact types, ``type/*`` and ``*/*+suffix``, parameters ignored."""
    job_type = LoadedJobType(
        name="t",
        run=lambda ctx: 1,
        params_cls=None,
        distribution=None,
        version=None,
        accepts=accepts,
    )
    assert job_type.takes(content_type) is taken
