"""examples/flask and examples/fastapi: submit, live status, cancel and the result link,
against the in-process double and against a real beanstalkd, worker and results server."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from jobrunner import AsyncClient
from jobrunner.pytest_plugin import JobrunnerStack
from jobrunner.testing import InlineClient
from tests.support import wait_for

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RESULTS = "https://results.test/"


def load_example(name: str) -> ModuleType:
    """Import examples/<name>/app.py under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"example_{name}_app", EXAMPLES / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def echo_double(ctx: Any) -> Any:
    """The echo job type, for the double."""
    return {"input": ctx.input, "params": ctx.params}


@pytest.fixture
def inline(tmp_path: Path) -> InlineClient:
    """A manual-mode double: jobs stay queued until run_pending()."""
    return InlineClient(
        {"echo": echo_double},
        results_dir=tmp_path,
        base_url=RESULTS,
        inputs=lambda url: {"url": url},
        run="manual",
    )


# -- Flask ------------------------------------------------------------------------


def test_flask_app_submits_follows_cancels_and_links(inline: InlineClient) -> None:
    """The Flask app submits into the user's session, reports queued then done with the
    result link, cancels a queued job, and hides one user's jobs from another."""
    app = load_example("flask").create_app(inline, results_base_url=RESULTS)
    web = app.test_client()
    answer = web.post("/jobs", data={"type": "echo", "input": "https://in.test/a", "params": "{}"})
    assert answer.status_code == 303
    page_url = answer.headers["location"]
    job_id = page_url.rsplit("/", 1)[1]
    assert web.get(page_url + "/status").get_json()["state"] == "queued"
    second = web.post("/jobs", data={"type": "echo", "input": "https://in.test/b"})
    cancelled = web.post(second.headers["location"] + "/cancel").get_json()
    assert cancelled["outcome"] == "cancelled"
    assert cancelled["status"]["error"]["code"] == "cancelled"
    inline.run_pending()
    status = web.get(page_url + "/status").get_json()
    assert status["state"] == "done" and status["final"]
    assert status["result"] == f"{RESULTS}web/{job_id}.json"
    page = web.get(page_url).get_data(as_text=True)
    assert status["result"] in page and "Cancel" in page
    assert inline.document(status["result"])["data"]["input"] == {"url": "https://in.test/a"}
    stranger = app.test_client()
    assert stranger.get(page_url + "/status").status_code == 404
    assert stranger.post(page_url + "/cancel").status_code == 404
    bad = web.post("/jobs", data={"type": "echo", "input": "not a url"})
    assert bad.status_code == 400 and "input" in bad.get_data(as_text=True)


def test_flask_app_with_a_real_stack(jobrunner_stack: JobrunnerStack) -> None:
    """Through a real beanstalkd and worker the Flask app's job ends done, its document at
    the linked URL; a delayed job is cancelled from the page."""
    (jobrunner_stack.results_dir / "in.json").write_text(json.dumps({"meter": 17}))
    app = load_example("flask").create_app(
        jobrunner_stack.client, results_base_url=jobrunner_stack.base_url
    )
    web = app.test_client()
    url = web.post("/jobs", data={"input": jobrunner_stack.result_url("in.json")}).headers[
        "location"
    ]
    status = wait_for(
        lambda: (s := web.get(url + "/status").get_json())["final"] and s, what="a final state"
    )
    assert status["state"] == "done", jobrunner_stack.log()
    path = jobrunner_stack.results_dir / status["result"][len(jobrunner_stack.base_url) :]
    assert json.loads(path.read_text())["data"]["input"] == {"meter": 17}
    later = web.post(
        "/jobs", data={"input": jobrunner_stack.result_url("in.json"), "delay": "3600"}
    ).headers["location"]
    assert web.get(later + "/status").get_json()["state"] == "delayed"
    assert web.post(later + "/cancel").get_json()["outcome"] == "cancelled"
    assert web.get(later + "/status").get_json()["state"] == "cancelled"


# -- FastAPI ----------------------------------------------------------------------


def test_fastapi_app_submits_streams_cancels(inline: InlineClient) -> None:
    """The FastAPI app answers a ticket and URLs (201), the state as JSON and as a
    server-sent event stream that ends at the final state, and cancels a queued job."""
    from fastapi.testclient import TestClient

    app = load_example("fastapi").create_app(AsyncClient.wrap(inline), results_base_url=RESULTS)
    with TestClient(app) as web:
        assert "EventSource" in web.get("/").text
        created = web.post("/jobs", json={"input": "https://in.test/a", "params": {"n": 1}})
        assert created.status_code == 201
        job = created.json()
        assert job["result"] == f"{RESULTS}api/{job['job_id']}.json"
        assert web.get(job["status_url"]).json()["state"] == "queued"
        other = web.post("/jobs", json={"input": "https://in.test/b"}).json()
        assert web.delete(other["status_url"]).json()["outcome"] == "cancelled"
        inline.run_pending()
        events = web.get(job["status_url"] + "/events").text
        states = [json.loads(line[6:])["state"] for line in events.splitlines() if line]
        assert states == ["done"]
        assert web.get(other["status_url"]).json()["state"] == "cancelled"
        assert web.post("/jobs", json={"input": "nope"}).status_code == 422
        assert web.get("/jobs/not-a-ticket").status_code == 404


def test_fastapi_app_with_a_real_stack(jobrunner_stack: JobrunnerStack) -> None:
    """Through a real beanstalkd and worker the event stream goes to done; the document
    is at the result URL."""
    from fastapi.testclient import TestClient

    (jobrunner_stack.results_dir / "in.json").write_text(json.dumps({"meter": 3}))
    client = AsyncClient(jobrunner_stack.beanstalk)
    app = load_example("fastapi").create_app(client, results_base_url=jobrunner_stack.base_url)
    with TestClient(app) as web:
        job = web.post("/jobs", json={"input": jobrunner_stack.result_url("in.json")}).json()
        events = web.get(job["status_url"] + "/events").text
        states = [json.loads(line[6:])["state"] for line in events.splitlines() if line]
        assert states[-1] == "done", jobrunner_stack.log()
        path = jobrunner_stack.results_dir / job["result"][len(jobrunner_stack.base_url) :]
        assert json.loads(path.read_text())["data"]["input"] == {"meter": 3}
