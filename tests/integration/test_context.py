"""What a job type gets besides its input: ctx.fetch under the same policy, ctx.workdir,
ctx.params structured into its Params class — through a real worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobrunner import Client
from tests.support import (
    Beanstalkd,
    ResultsServer,
    Worker,
    install_fake_plugin,
    pythonpath_env,
    wait_for_status,
)

pytestmark = pytest.mark.integration

CODE = '''
import os

import attrs
import jobrunner


def more(ctx):
    """Fetch a second document named in params and use the scratch directory."""
    extra = ctx.fetch(ctx.params["extra"])
    scratch = ctx.workdir / "scratch.txt"
    scratch.write_text("x")
    return {"input": ctx.input, "extra": extra, "workdir": str(ctx.workdir),
            "existed": scratch.exists(), "attempt": ctx.attempt}


@attrs.define
class Params:
    factor: float
    label: str = "none"


class Scale(jobrunner.JobType):
    """Multiply a number by params.factor."""

    Params = Params

    def __call__(self, ctx):
        assert isinstance(ctx.params, Params)
        return {"value": ctx.input["n"] * ctx.params.factor, "label": ctx.params.label}
'''


@pytest.fixture
def worker(
    tmp_path: Path, beanstalkd: Beanstalkd, results_server: ResultsServer
) -> Iterator[Worker]:
    site = install_fake_plugin(
        tmp_path / "site",
        "jrctxjobs",
        CODE,
        {"jobrunner.job_types": {"more": "jrctxjobs:more", "scale": "jrctxjobs:Scale"}},
    )
    worker = Worker(
        beanstalkd.address,
        results_server.results_dir,
        results_server.base_url,
        env=pythonpath_env(site),
    )
    yield worker
    worker.stop()


def test_fetch_and_workdir(
    worker: Worker, beanstalkd: Beanstalkd, results_server: ResultsServer
) -> None:
    """ctx.fetch decodes another document; ctx.workdir exists during the job and is
    removed after it; a refused URL given to ctx.fetch fails the job with input_refused."""
    base = results_server.base_url
    (results_server.results_dir / "in.json").write_text(json.dumps({"a": 1}))
    (results_server.results_dir / "extra.json").write_text(json.dumps([1, 2, 3]))
    with Client(beanstalkd.address) as client:
        client.submit("more", base + "in.json", base + "ok.json", {"extra": base + "extra.json"})
        client.submit(
            "more",
            base + "in.json",
            base + "refused.json",
            {"extra": "http://10.0.0.1/secret.json"},
        )
    doc = wait_for_status(results_server.results_dir / "ok.json")
    assert doc["status"] == "done", doc
    assert doc["data"]["input"] == {"a": 1}
    assert doc["data"]["extra"] == [1, 2, 3]
    assert doc["data"]["existed"] is True
    assert not Path(doc["data"]["workdir"]).exists()
    refused = wait_for_status(results_server.results_dir / "refused.json")
    assert refused["status"] == "failed"
    assert refused["error"]["code"] == "input_refused"


def test_params_class_structures_and_refuses(
    worker: Worker, beanstalkd: Beanstalkd, results_server: ResultsServer
) -> None:
    """A JobType's attrs Params receives typed params; a wrong type or an unknown key is
    invalid_params, naming the field, and the job is buried."""
    base = results_server.base_url
    (results_server.results_dir / "n.json").write_text(json.dumps({"n": 4}))
    with Client(beanstalkd.address) as client:
        client.submit("scale", base + "n.json", base + "good.json", {"factor": 2.5})
        client.submit(
            "scale", base + "n.json", base + "bad.json", {"factor": "lots", "lable": "typo"}
        )
    good = wait_for_status(results_server.results_dir / "good.json")
    assert good["data"] == {"value": 10.0, "label": "none"}
    bad = wait_for_status(results_server.results_dir / "bad.json")
    assert bad["error"]["code"] == "invalid_params"
    assert "factor" in bad["error"]["message"]
    assert "lable" in bad["error"]["message"]
    worker.wait_event("job_buried", code="invalid_params")
