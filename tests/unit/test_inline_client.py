"""The in-process Client double for web apps' tests: jobs run inline, documents on disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import attrs
import pytest

import jobrunner
from jobrunner.client import AsyncClient, Ticket
from jobrunner.errors import InvalidJob
from jobrunner.testing import InlineClient

BASE = "https://results.test/"


def double(ctx: jobrunner.Context) -> dict[str, float]:
    """Double the input's value, scaled by params.factor."""
    return {"value": ctx.input["value"] * 2 * ctx.params.get("factor", 1)}


class Typed:
    """A class job type with an attrs Params class."""

    @attrs.frozen
    class Params:
        n: int

    def __call__(self, ctx: jobrunner.Context) -> int:
        return int(ctx.params.n) + 1


def broken(ctx: jobrunner.Context) -> None:
    """Raise a plugin error."""
    raise ValueError("nope")


def test_submit_runs_inline_and_publishes_at_the_result_path(tmp_path: Path) -> None:
    """A submitted job runs at once; its done document lies where the result URL maps to
    and status answers done with it."""
    client = InlineClient(
        {"double": double},
        results_dir=tmp_path,
        base_url=BASE,
        inputs={"https://in.test/x": {"value": 21}},
    )
    job = client.submit("double", "https://in.test/x", BASE + "m/17.json", {"factor": 1})
    assert (tmp_path / "m" / "17.json").exists()
    status = client.status(job.ticket)
    assert status.state == "done" and status.final
    assert status.document["data"] == {"value": 42}
    assert status.document["id"] == str(job) and Ticket.parse(job.ticket).server == "inline"


def test_failures_carry_the_workers_codes(tmp_path: Path) -> None:
    """A plugin error, bad params and a missing test input fail with the worker's codes."""
    client = InlineClient(
        {"broken": broken, "typed": Typed, "double": double},
        results_dir=tmp_path,
        base_url=BASE,
        inputs={"https://in.test/x": 1},
    )
    codes = {}
    for name, kind, params, url in (
        ("a", "broken", {}, "https://in.test/x"),
        ("b", "typed", {"n": "many"}, "https://in.test/x"),
        ("c", "double", {}, "https://in.test/missing"),
        ("d", "nope", {}, "https://in.test/x"),
    ):
        job = client.submit(kind, url, BASE + f"{name}.json", params)
        codes[name] = client.status(job.ticket).error["code"]
    assert codes == {
        "a": "plugin_error",
        "b": "invalid_params",
        "c": "input_unavailable",
        "d": "unknown_type",
    }
    ok = client.submit("typed", "https://in.test/x", BASE + "e.json", {"n": 4})
    assert client.status(ok.ticket).document["data"] == 5


def test_manual_mode_keeps_jobs_queued_and_cancels_them(tmp_path: Path) -> None:
    """In manual mode jobs stay queued until run_pending; cancelling a queued job
    publishes the cancelled document and it never runs; a done one is left alone."""
    client = InlineClient(
        {"double": double},
        results_dir=tmp_path,
        base_url=BASE,
        inputs=lambda url: {"value": 1},
        run="manual",
    )
    first = client.submit("double", "https://in.test/x", BASE + "1.json")
    second = client.submit("double", "https://in.test/x", BASE + "2.json")
    assert client.status(first.ticket).state == "queued"
    answer = client.cancel(first.ticket)
    assert answer.outcome == "cancelled" and answer.status.state == "cancelled"
    assert answer.status.error["code"] == "cancelled"
    assert client.run_pending() == 1
    assert client.status(second.ticket).state == "done"
    assert client.cancel(second.ticket).outcome == "finished"
    assert client.status(first.ticket).state == "cancelled"


def test_invalid_jobs_are_refused_like_the_real_client(tmp_path: Path) -> None:
    """The double refuses what the real client refuses, before anything runs."""
    client = InlineClient({"double": double}, results_dir=tmp_path, base_url=BASE)
    with pytest.raises(InvalidJob):
        client.submit("double", "not a url", BASE + "x.json")
    with pytest.raises(InvalidJob, match="job 1"):
        client.submit_many(
            [
                {"type": "double", "input": "https://in.test/x", "result": BASE + "a.json"},
                {"type": "double", "input": "https://in.test/x"},
            ]
        )
    assert list(tmp_path.iterdir()) == []


def test_async_wrapper_and_the_pytest_fixture(jobrunner_inline: InlineClient) -> None:
    """AsyncClient.wrap gives the double the async methods; the jobrunner_inline fixture
    is an InlineClient publishing below a temporary directory."""
    jobrunner_inline.job_types["double"] = double
    jobrunner_inline.inputs = {"https://in.test/x": {"value": 2}}

    async def scenario() -> str:
        client = AsyncClient.wrap(jobrunner_inline)
        job = await client.submit("double", "https://in.test/x", "https://results.test/a.json")
        return (await client.status(job.ticket)).document["data"]["value"]

    assert asyncio.run(scenario()) == 4
    assert jobrunner_inline.path("https://results.test/a.json").exists()
