"""examples/django: submit, state, cancel and the result, against the in-process double and
against a real beanstalkd, worker and results server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobrunner.pytest_plugin import JobrunnerStack
from jobrunner.testing import InlineClient
from tests.integration.test_example_web_apps import RESULTS, inline, load_example
from tests.support import wait_for

__all__ = ["inline"]  # the fixture, shared with the Flask and FastAPI tests

pytestmark = pytest.mark.integration
django_test = pytest.importorskip("django.test")


def django_client(client: Any, base_url: str) -> Any:
    """Django's test client on the example app, wired to ``client``."""
    load_example("django").create_app(client, results_base_url=base_url)
    return django_test.Client()


def test_django_app_submits_reports_cancels(inline: InlineClient) -> None:
    """The Django app submits into the user's session, reports queued then done with the
    result URL, cancels a queued job, and hides one user's jobs from another."""
    web = django_client(inline, RESULTS)
    answer = web.post("/jobs", {"type": "echo", "input": "https://in.test/a", "params": "{}"})
    assert answer.status_code == 302
    job_url = answer["Location"]
    assert web.get(job_url).json()["state"] == "queued"
    second = web.post("/jobs", {"type": "echo", "input": "https://in.test/b"})["Location"]
    assert web.post(second + "/cancel").json()["outcome"] == "cancelled"
    inline.run_pending()
    status = web.get(job_url).json()
    assert status["state"] == "done" and status["final"]
    job_id = job_url.rsplit("/", 1)[1]
    assert status["result"] == f"{RESULTS}django/{job_id}.json"
    assert inline.document(status["result"])["data"]["input"] == {"url": "https://in.test/a"}
    assert web.get(second).json()["state"] == "cancelled"
    stranger = django_test.Client()
    assert stranger.get(job_url).status_code == 404
    assert stranger.post(job_url + "/cancel").status_code == 404
    bad = web.post("/jobs", {"type": "echo", "input": "not a url"})
    assert bad.status_code == 400 and "input" in bad.json()["error"]


def test_django_app_with_a_real_stack(jobrunner_stack: JobrunnerStack) -> None:
    """Through a real beanstalkd and worker the Django app's job ends done, its document at
    the result URL."""
    (jobrunner_stack.results_dir / "in.json").write_text(json.dumps({"meter": 17}))
    web = django_client(jobrunner_stack.client, jobrunner_stack.base_url)
    job_url = web.post("/jobs", {"input": jobrunner_stack.result_url("in.json")})["Location"]
    status = wait_for(lambda: (s := web.get(job_url).json())["final"] and s, what="final state")
    assert status["state"] == "done", jobrunner_stack.log()
    path = jobrunner_stack.results_dir / status["result"][len(jobrunner_stack.base_url) :]
    assert json.loads(path.read_text())["data"]["input"] == {"meter": 17}
