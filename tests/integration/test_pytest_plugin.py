"""The jobrunner_stack pytest fixture: a real beanstalkd, worker and results server."""

from __future__ import annotations

import json

import pytest

from jobrunner.pytest_plugin import JobrunnerStack
from tests.support import wait_for

pytestmark = pytest.mark.integration


def test_stack_runs_a_job_end_to_end(jobrunner_stack: JobrunnerStack) -> None:
    """A job submitted through the stack's client runs on its worker, reading an input
    from its results server, and status shows the done document."""
    (jobrunner_stack.results_dir / "in.json").write_text(json.dumps({"meter": 17}))
    job = jobrunner_stack.client.submit(
        "echo", jobrunner_stack.result_url("in.json"), jobrunner_stack.result_url("out.json")
    )
    status = wait_for(
        lambda: (s := jobrunner_stack.client.status(job.ticket)).final and s,
        what="the job's final state",
    )
    assert status.state == "done", jobrunner_stack.log()
    assert status.document["data"]["input"] == {"meter": 17}
