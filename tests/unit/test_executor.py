"""The child's JobExecutor: what it publishes and what it reports for each way a job ends."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from jobrunner import Retry, codec
from jobrunner._worker.executor import JobExecutor
from jobrunner._worker.protocol import Finished, RunJob
from jobrunner.config import load_config
from jobrunner.errors import PublishFailed
from jobrunner.plugins import LoadedJobType
from jobrunner.publish.base import PublisherChain
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


def _run(
    executor: JobExecutor, tmp_path: Path, job_type: str, attempt: int = 1, **fields: Any
) -> Finished:
    body = job_body(job_type, "http://r.test/x.json", (tmp_path / "in.json").as_uri(), **fields)
    request = RunJob(job=codec.decode_job(body), attempt=attempt, tube="default", beanstalk_id=1)
    return executor.execute(request)


def test_quick_job_publishes_only_done_and_deletes(
    executor: JobExecutor, recorder: Recorder, tmp_path: Path
) -> None:
    """A job done before --running-delay publishes only its final document, then deletes."""
    finished = _run(executor, tmp_path, "echo")
    assert finished.error is None and finished.fetch_s is not None and finished.rss > 0
    assert [d["status"] for d in recorder.docs] == ["done"]


def test_running_document_at_once_with_zero_delay(recorder: Recorder, tmp_path: Path) -> None:
    """With --running-delay 0 a running document is published before the job runs."""
    (tmp_path / "in.json").write_text("[1]")
    config = load_config(flags={"allow_file_inputs": str(tmp_path), "running_delay": 0}, env={})
    executor = JobExecutor(config, publishers=PublisherChain([recorder]))
    _run(executor, tmp_path, "echo", attempt=2)
    assert [(d["status"], d["attempt"]) for d in recorder.docs] == [("running", 2), ("done", 2)]


def test_slow_job_shows_running_before_done(
    executor: JobExecutor, recorder: Recorder, tmp_path: Path
) -> None:
    """A job still running after --running-delay shows a running document, then done."""

    def slow(ctx: Any) -> Any:
        time.sleep(0.6)
        return 1

    _add(executor, "slow", slow)
    _run(executor, tmp_path, "slow")
    assert [d["status"] for d in recorder.docs] == ["running", "done"]
    assert recorder.docs[0]["progress"] == 0


def test_retry_is_reported_with_the_job_types_delay(
    executor: JobExecutor, recorder: Recorder, tmp_path: Path
) -> None:
    """Retry is reported as a retryable retry_requested with the job type's delay, and the
    child publishes nothing for it (the worker decides and publishes)."""

    def later(ctx: Any) -> Any:
        raise Retry("upstream busy", delay=90)

    _add(executor, "later", later)
    finished = _run(executor, tmp_path, "later")
    assert finished.error is not None and finished.error.code == "retry_requested"
    assert finished.error.retryable and finished.error.message == "upstream busy"
    assert finished.retry_delay == 90
    assert recorder.docs == []


def test_failed_publication_is_reported_retryable(
    executor: JobExecutor, recorder: Recorder, tmp_path: Path
) -> None:
    """A done document that cannot be published is reported as retryable publish_failed."""
    recorder.fail_final = True
    finished = _run(executor, tmp_path, "echo")
    assert finished.error is not None and finished.error.code == "publish_failed"
    assert finished.error.retryable and "disk full" in finished.error.message


def test_plugin_error_is_reported_with_provenance(
    executor: JobExecutor, recorder: Recorder, tmp_path: Path
) -> None:
    """An exception from the job type is a permanent plugin_error, reported with the start
    time and the inputs' fingerprints for the worker's failure document."""

    def broken(ctx: Any) -> Any:
        raise KeyError("x")

    _add(executor, "broken", broken)
    finished = _run(executor, tmp_path, "broken")
    assert finished.error is not None and finished.error.code == "plugin_error"
    assert finished.error.message == "KeyError: 'x'" and not finished.error.retryable
    assert finished.started is not None and finished.provenance is not None
    assert len(finished.provenance.inputs) == 1 and finished.provenance.inputs[0].sha256
    assert recorder.docs == []


def test_progress_never_waits_for_a_slow_publisher() -> None:
    """ctx.progress returns while a running document is still being published, the latest
    value gets out, and nothing is published after close()."""
    import threading

    from jobrunner._worker.documents import ResultBuilder
    from jobrunner._worker.progress import ProgressReporter

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
    finished = _run(executor, tmp_path, "csv_only")
    assert finished.error is not None and finished.error.code == "input_invalid"
    assert "application/json" in finished.error.message


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
