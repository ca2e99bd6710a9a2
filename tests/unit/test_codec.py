"""Job and result documents: validation, encoding, and agreement with the JSON Schemas."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import attrs
import jsonschema
import pytest

from jobrunner import codec
from jobrunner.errors import InvalidJob, InvalidParams
from jobrunner.job import ErrorInfo, ResultDocument

GOOD_JOB: dict[str, Any] = {
    "id": "0b6f9c1e-5d6a-4bb2-9d8e-1c2f3a4b5c6d",
    "type": "prediction",
    "input": "https://data.example.org/meters/17.json",
    "result": "https://worker1.example/results/u42/r.json",
    "created": "2026-11-28T12:00:00Z",
}


def job(**changes: Any) -> dict[str, Any]:
    doc = dict(GOOD_JOB)
    for key, value in changes.items():
        if value is attrs.NOTHING:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


VALID_JOBS = [
    job(),
    job(v=1, params={"horizon": "24h"}, timeout=600, max_attempts=5, meta={"user": 42}),
    job(input={"load": "https://a.example/l.json", "pv": "http://b.example/pv.csv"}),
    job(expires="2026-11-29T00:00:00+01:00", created="2026-11-28T12:00:00.123456789Z"),
    job(expires=None, meta=None),
    job(id="job:42@portal+x", type="my_type.v2"),
]

INVALID_JOBS = [
    job(id=attrs.NOTHING),
    job(type=attrs.NOTHING),
    job(input=attrs.NOTHING),
    job(result=attrs.NOTHING),
    job(created=attrs.NOTHING),
    job(tpye="echo"),
    job(v=2),
    job(id=""),
    job(id="has space"),
    job(id=42),
    job(type="bad/type"),
    job(input="relative/path.json"),
    job(input="not a url"),
    job(input={}),
    job(input={"bad name!": "https://a.example/x"}),
    job(input={"a": 5}),
    job(result="/abs/path.json"),
    job(params=[1, 2]),
    job(params=None),
    job(meta="text"),
    job(created="yesterday"),
    job(created="2026-11-28T12:00:00"),
    job(expires="2026-13-01"),
    job(timeout=0),
    job(timeout=-5),
    job(timeout="10"),
    job(timeout=10**9),
    job(max_attempts=0),
    job(max_attempts=2.5),
    job(max_attempts=True),
    job(max_attempts=10**6),
    # "$" alone matches before a final newline: every name is matched in full.
    job(id="abc\n"),
    job(type="echo\n"),
    job(input={"load\n": "https://a.example/l.json"}),
    job(input="https://a.example/l.json\n"),
    job(result="https://r.example/x.json\n"),
    job(created="2026-11-28T12:00:00Z\n"),
    job(expires="2026-11-29T00:00:00+01:00\n"),
]


@pytest.mark.parametrize("doc", VALID_JOBS)
def test_valid_jobs_pass_model_and_schema(doc: dict[str, Any]) -> None:
    """Documents the model accepts are accepted by the shipped JSON Schema too."""
    decoded = codec.decode_job(json.dumps(doc).encode())
    assert decoded.id == doc["id"]
    jsonschema.validate(doc, codec.job_schema())


@pytest.mark.parametrize("doc", INVALID_JOBS)
def test_invalid_jobs_fail_model_and_schema(doc: dict[str, Any]) -> None:
    """Documents the model refuses are refused by the shipped JSON Schema too."""
    with pytest.raises(InvalidJob):
        codec.decode_job(json.dumps(doc).encode())
    validator = jsonschema.Draft202012Validator(codec.job_schema())
    assert list(validator.iter_errors(doc)), f"schema accepted {doc}"


def test_all_problems_are_reported_at_once_with_field_names() -> None:
    """One InvalidJob lists every problem, each naming its field."""
    bad = {"id": "", "tpye": "echo", "input": "x", "created": "now"}
    with pytest.raises(InvalidJob) as info:
        codec.decode_job(json.dumps(bad))
    problems = info.value.problems
    joined = " | ".join(problems)
    for field in ("tpye", "type", "result", "id", "input", "created"):
        assert any(p.startswith(field + ":") for p in problems), (field, joined)
    assert "meta" in joined  # the unknown field message points to 'meta'


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"\xff\xfe", "UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b"{", "not valid JSON"),
        (b'{"a": NaN}', "NaN"),
        (b"[" * 30_000 + b"]" * 30_000, "deeper"),
        (b" " * (codec.MAX_JOB_BYTES + 1), "limit"),
    ],
)
def test_malformed_bodies_are_invalid_jobs(body: bytes, fragment: str) -> None:
    """Bodies that are not a JSON object end as InvalidJob with a telling message."""
    with pytest.raises(InvalidJob) as info:
        codec.decode_job(body)
    assert fragment in str(info.value)


def test_job_round_trips_through_encoding() -> None:
    """Encoding a decoded job gives back the same document (times normalised to UTC)."""
    doc = job(params={"a": [1, 2]}, meta={"m": True}, expires="2026-11-29T01:00:00+01:00")
    decoded = codec.decode_job(json.dumps(doc))
    again = json.loads(codec.encode_job(decoded))
    assert again["expires"] == "2026-11-29T00:00:00.000000Z"
    assert codec.decode_job(codec.encode_job(decoded)) == decoded


def _result(**fields: Any) -> ResultDocument:
    base: dict[str, Any] = {
        "id": "j1",
        "type": "echo",
        "status": "done",
        "timestamp": dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc),
        "data": {"x": 1},
    }
    base.update(fields)
    return ResultDocument(**base)


@pytest.mark.parametrize(
    "doc",
    [
        _result(),
        _result(status="running", progress=0.5, message="fitting", data=None),
        _result(status="failed", data=None, error=ErrorInfo(code="timeout", message="slow")),
        _result(data=None),
    ],
)
def test_encoded_results_satisfy_schema_and_decode(doc: ResultDocument) -> None:
    """Every result document we encode is valid under the result schema and decodes again."""
    body = codec.encode_result(doc)
    parsed = json.loads(body)
    jsonschema.validate(parsed, codec.result_schema())
    assert parsed["timestamp"] == "2026-11-28T00:00:00.000000Z"
    assert codec.decode_result(body).status == doc.status


@pytest.mark.parametrize(
    "doc",
    [
        {"id": "j", "type": "t", "status": "finished", "timestamp": "2026-01-01T00:00:00Z"},
        {"id": "j", "type": "t", "status": "done"},
        {"id": "j", "type": "t", "status": "failed", "timestamp": "2026-01-01T00:00:00Z"},
        {
            "id": "j",
            "type": "t",
            "status": "running",
            "timestamp": "2026-01-01T00:00:00Z",
            "progress": 2,
        },
        {"id": "j", "type": "t", "status": "done", "timestamp": "x"},
        {"id": "j", "type": "t", "status": "done", "timestamp": "2026-01-01T00:00:00Z", "z": 1},
        [1],
    ],
)
def test_invalid_results_fail_model_and_schema(doc: Any) -> None:
    """Result documents the model refuses are refused by the result schema too."""
    with pytest.raises(ValueError):
        codec.decode_result(json.dumps(doc))
    validator = jsonschema.Draft202012Validator(codec.result_schema())
    assert list(validator.iter_errors(doc))


def test_done_document_data_null_is_kept() -> None:
    """A done document whose data is None still carries ``"data": null``."""
    assert json.loads(codec.encode_result(_result(data=None)))["data"] is None


@attrs.define
class _Params:
    horizon: int
    method: str = "auto"


def test_params_structuring_reports_every_problem() -> None:
    """Unknown and mistyped params are reported together as invalid_params."""
    with pytest.raises(InvalidParams) as info:
        codec.structure_params({"horizon": "soon", "mehtod": "x"}, _Params)
    message = str(info.value)
    assert "horizon" in message
    assert "mehtod" in message


def test_params_structuring_ok() -> None:
    """Valid params become an instance of the Params class, with defaults."""
    assert codec.structure_params({"horizon": 3}, _Params) == _Params(horizon=3)


def test_parse_time_requires_offset() -> None:
    """Times without a UTC offset are refused: a job must not depend on a worker's zone."""
    with pytest.raises(ValueError):
        codec.parse_time("2026-01-01T00:00:00")
    parsed = codec.parse_time("2026-01-01T01:00:00+01:00")
    assert parsed == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


@attrs.define
class _Durations:
    horizon: float = attrs.field(converter=lambda v: float(str(v).rstrip("h")) * 3600)


def test_params_attrs_converters_run_before_type_checks() -> None:
    """A Params field with an attrs converter takes what the converter takes ("24h")."""
    assert codec.structure_params({"horizon": "24h"}, _Durations).horizon == 86400.0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (json.dumps(job(meta={"x": 1}))[:-1].encode() + b', "meta": {"n": 1e400}}', "range"),
        (json.dumps(job(id="\ud800")).encode(), "surrogate"),
        (json.dumps(job(created="0001-01-01T00:00:00+23:59")).encode(), "out of range"),
    ],
)
def test_numbers_unicode_and_times_out_of_range_are_invalid(body: bytes, fragment: str) -> None:
    """1e400 (inf), unpaired surrogates and times outside years 1-9999 in UTC are invalid_job."""
    with pytest.raises(InvalidJob) as info:
        codec.decode_job(body)
    assert fragment in str(info.value)


def test_paired_surrogates_are_fine() -> None:
    """An emoji spelled as a surrogate pair in JSON is valid text."""
    assert codec.loads_strict(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


def test_result_data_passes_through_and_datetimes_become_rfc3339() -> None:
    """A job type's data is encoded as given; datetimes anywhere in it become RFC 3339 UTC."""
    when = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    doc = ResultDocument(
        id="j", type="t", status="done", timestamp=when, data={"rows": [[1, 2.5, "x", None, when]]}
    )
    decoded = json.loads(codec.encode_result(doc))
    assert decoded["data"] == {"rows": [[1, 2.5, "x", None, codec.format_time(when)]]}
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        codec.encode_result(attrs.evolve(doc, data={"bad": {1}}))
