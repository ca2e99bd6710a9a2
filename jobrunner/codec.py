"""Encoding, decoding and validation of the wire formats.

This module holds the one cattrs converter of the package. Job documents
are untrusted input: :func:`decode_job` checks every field and reports all
problems at once in one :class:`~jobrunner.errors.InvalidJob`, each naming
the field and what was wrong. The JSON Schema files in
``jobrunner/schemas/`` describe the same rules for other languages; a test
keeps schema and code in agreement.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import BaseValidationError

from jobrunner.errors import InvalidJob, InvalidParams
from jobrunner.job import STATUSES, VERSION, ErrorInfo, Job, ResultDocument

__all__ = [
    "MAX_JOB_BYTES",
    "MAX_JSON_DEPTH",
    "converter",
    "decode_job",
    "decode_result",
    "encode_job",
    "encode_result",
    "format_time",
    "job_schema",
    "loads_strict",
    "parse_time",
    "result_schema",
    "structure_params",
]

T = TypeVar("T")

#: beanstalkd's default ``max-job-size``: a larger body is refused by the server.
MAX_JOB_BYTES = 65_535
#: How deeply JSON may nest in job documents and decoded inputs.
MAX_JSON_DEPTH = 64

# Matched with fullmatch: "$" alone also matches before a final newline, and an
# id such as "abc\n" would pass. The JSON Schema spells the same end as "$(?!\n)".
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")
_TYPE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s]+$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_TIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_MAX_URL_LENGTH = 4096
_MAX_TIMEOUT = 7 * 24 * 3600.0
_MAX_ATTEMPTS = 100


def format_time(value: dt.datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC with microseconds and ``Z``."""
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> dt.datetime:
    """Parse an RFC 3339 time (``Z`` or an offset required) to an aware UTC datetime.

    Raises:
        ValueError: when the text is not an RFC 3339 date-time with an offset.
    """
    if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
        raise ValueError(f"must be an RFC 3339 time such as 2026-01-31T12:00:00Z, got {value!r}")
    text = value.replace("z", "Z").replace("t", "T").replace(" ", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # fromisoformat takes at most 6 fractional digits before Python 3.11.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)
    except OverflowError:
        raise ValueError(f"time {value!r} is out of range in UTC (years 1-9999)") from None


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_unstructure_hook(dt.datetime, format_time)
    conv.register_structure_hook(dt.datetime, lambda value, _: parse_time(value))
    conv.register_structure_hook(
        str | dict[str, str], lambda value, _: value if isinstance(value, str) else dict(value)
    )
    # ``Any`` passes through unchanged. A predicate hook, because cattrs refuses
    # ``register_structure_hook(Any, ...)`` on Python 3.10 (Any is no class there).
    conv.register_structure_hook_func(lambda cls: cls is Any, lambda value, _: value)
    # A job type's `data` is JSON already: walking it value by value cost 0.6 s
    # for a 5 MB result. Pass it (and `meta`'s values) through unchanged.
    conv.register_unstructure_hook_func(lambda cls: cls is Any, lambda value: value)
    return conv


#: The one converter for the wire formats.
converter = _make_converter()

#: A stricter twin for job-type ``Params`` classes: unknown keys are errors.
_params_converter = converter.copy(forbid_extra_keys=True, prefer_attrib_converters=True)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


# JSON may spell unpaired UTF-16 surrogates (\ud800) that no UTF-8 text can hold.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_unicode(value: Any, text: str, what: str) -> None:
    if _SURROGATE_ESCAPE.search(text) is None:
        return
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{what} holds an unpaired surrogate escape (\\ud800-\\udfff), "
            "which is not valid Unicode"
        ) from None


def json_depth(value: Any) -> int:
    """Return how deeply containers nest in a decoded JSON value (iteratively)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def loads_strict(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH, what: str = "JSON") -> Any:
    """Decode strict JSON: no NaN/Infinity, bounded nesting, UTF-8 only.

    Raises:
        ValueError: with a message starting with ``what`` saying what was wrong.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    # Cheap pre-check: a document can only nest as deep as it has brackets.
    deep = text.count("[") + text.count("{") > max_depth
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError(f"{what} nests deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None
    if deep and json_depth(value) > max_depth:
        raise ValueError(f"{what} nests deeper than {max_depth} levels")
    _check_unicode(value, text, what)
    return value


# -- job documents ---------------------------------------------------------

_JOB_FIELDS = frozenset(a.name for a in attrs.fields(Job))
_JOB_REQUIRED = ("id", "type", "input", "result", "created")


def _check_url(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, str):
        problems.append(f"{where}: must be a URL string, got {type(value).__name__}")
    elif len(value) > _MAX_URL_LENGTH:
        problems.append(f"{where}: URL longer than {_MAX_URL_LENGTH} characters")
    elif not _URL_RE.fullmatch(value):
        problems.append(
            f"{where}: must be a fully qualified URL such as https://host/path, got {value!r}"
        )


def _check_number(
    doc: Mapping[str, Any], name: str, problems: list[str], *, integer: bool, maximum: float
) -> None:
    value = doc.get(name)
    if value is None:
        return
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        problems.append(f"{name}: must be {kind}, got {value!r}")
    elif not (0 < value <= maximum) or (isinstance(value, float) and not math.isfinite(value)):
        problems.append(f"{name}: must be {kind} above 0 and at most {maximum:g}, got {value!r}")


def validate_job(doc: Any) -> list[str]:
    """Return every problem of a decoded job document (empty when valid)."""
    if not isinstance(doc, dict):
        return [f"job document must be a JSON object, got {type(doc).__name__}"]
    problems = [
        f"{name}: unknown field (extra data belongs in 'meta')"
        for name in sorted(set(doc) - _JOB_FIELDS)
    ]
    problems += [f"{name}: required field missing" for name in _JOB_REQUIRED if name not in doc]
    v = doc.get("v", VERSION)
    if v != VERSION or isinstance(v, bool):
        problems.append(f"v: unsupported version {v!r}, this worker reads version {VERSION}")
    if "id" in doc and not (isinstance(doc["id"], str) and _ID_RE.fullmatch(doc["id"])):
        problems.append(
            "id: must be 1-128 characters of letters, digits and ._:@+- "
            f"starting with a letter or digit, got {doc['id']!r}"
        )
    if "type" in doc and not (isinstance(doc["type"], str) and _TYPE_RE.fullmatch(doc["type"])):
        problems.append(f"type: must be a job type name such as 'echo', got {doc['type']!r}")
    if "input" in doc:
        inp = doc["input"]
        if isinstance(inp, dict):
            if not inp:
                problems.append("input: must name at least one input URL")
            for name, url in inp.items():
                if not _NAME_RE.fullmatch(name):
                    problems.append(f"input: invalid input name {name!r}")
                _check_url(url, f"input.{name}", problems)
        else:
            _check_url(inp, "input", problems)
    if "result" in doc:
        _check_url(doc["result"], "result", problems)
    for name in ("params", "meta"):
        if doc.get(name) is not None and not isinstance(doc[name], dict):
            problems.append(f"{name}: must be a JSON object, got {type(doc[name]).__name__}")
    if doc.get("params", {}) is None:
        problems.append("params: must be a JSON object, got null")
    for name in ("created", "expires"):
        if doc.get(name) is not None or (name == "created" and name in doc):
            try:
                parse_time(doc[name])
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
    _check_number(doc, "timeout", problems, integer=False, maximum=_MAX_TIMEOUT)
    _check_number(doc, "max_attempts", problems, integer=True, maximum=_MAX_ATTEMPTS)
    return problems


def _parse_leniently(body: bytes | str) -> Any:
    """The refused document as plain JSON would read it (NaN and all), or None.

    Only for the failure document: its result URL may still be usable.
    """
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def decode_job(body: bytes | str, *, max_bytes: int = MAX_JOB_BYTES) -> Job:
    """Decode and validate a job document (the raw body of a beanstalkd job).

    Raises:
        InvalidJob: listing every problem found, each naming its field.
    """
    if len(body) > max_bytes:
        raise InvalidJob(
            f"job document is {len(body)} bytes, the limit is {max_bytes}",
            document=_parse_leniently(body),
        )
    try:
        doc = loads_strict(body, what="job document")
    except ValueError as exc:
        raise InvalidJob(str(exc), document=_parse_leniently(body)) from None
    problems = validate_job(doc)
    if problems:
        raise InvalidJob("invalid job document: " + "; ".join(problems), problems, doc)
    return converter.structure(doc, Job)


def job_to_dict(job: Job) -> dict[str, Any]:
    """Return the job as a JSON-ready dict, leaving out unset optional fields."""
    doc: dict[str, Any] = converter.unstructure(job)
    return {k: v for k, v in doc.items() if v is not None}


def encode_job(job: Job) -> bytes:
    """Encode a job document as compact UTF-8 JSON.

    Raises:
        InvalidJob: a string holds an unpaired surrogate, or a number is not finite.
    """
    try:
        text = json.dumps(
            job_to_dict(job), separators=(",", ":"), allow_nan=False, ensure_ascii=False
        )
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJob(
            "job document holds an unpaired surrogate (\\ud800-\\udfff), which is not valid Unicode"
        ) from None
    except ValueError as exc:
        raise InvalidJob(f"job document: {exc} (NaN and Infinity are not JSON)") from None


# -- result documents ------------------------------------------------------


def result_to_dict(doc: ResultDocument) -> dict[str, Any]:
    """Return the result document as a JSON-ready dict without unset members."""
    raw: dict[str, Any] = converter.unstructure(doc)
    out = {k: v for k, v in raw.items() if v is not None or (k == "data" and doc.status == "done")}
    if "provenance" in out:
        prov = {k: v for k, v in out["provenance"].items() if v is not None}
        prov["inputs"] = [{k: v for k, v in i.items() if v is not None} for i in prov["inputs"]]
        out["provenance"] = prov
    return out


def encode_result(doc: ResultDocument) -> bytes:
    """Encode a result document as UTF-8 JSON.

    Raises:
        ValueError: when ``data`` is not strict JSON (NaN, Infinity, objects).
    """
    return json.dumps(
        result_to_dict(doc), separators=(",", ":"), allow_nan=False, default=_json_default
    ).encode()


def _json_default(value: Any) -> Any:
    """Encode the one non-JSON type job types may return in ``data``: datetimes (RFC 3339)."""
    if isinstance(value, dt.datetime):
        return format_time(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def validate_result(doc: Any) -> list[str]:
    """Return every problem of a decoded result document (empty when valid)."""
    if not isinstance(doc, dict):
        return [f"result document must be a JSON object, got {type(doc).__name__}"]
    known = {a.name for a in attrs.fields(ResultDocument)}
    problems = [f"{name}: unknown field" for name in sorted(set(doc) - known)]
    problems += [
        f"{name}: required field missing"
        for name in ("id", "type", "status", "timestamp")
        if name not in doc
    ]
    if doc.get("v", VERSION) != VERSION:
        problems.append(f"v: unsupported version {doc.get('v')!r}")
    for name in ("id", "type"):
        if name in doc and not isinstance(doc[name], str):
            problems.append(f"{name}: must be a string")
    if "status" in doc and doc["status"] not in STATUSES:
        problems.append(f"status: must be one of {', '.join(STATUSES)}, got {doc['status']!r}")
    for name in ("timestamp", "started", "finished"):
        if doc.get(name) is not None or (name == "timestamp" and name in doc):
            try:
                parse_time(doc[name])
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
    progress = doc.get("progress")
    if progress is not None and (
        isinstance(progress, bool)
        or not isinstance(progress, (int, float))
        or not 0 <= progress <= 1
    ):
        problems.append(f"progress: must be a number from 0 to 1, got {progress!r}")
    error = doc.get("error")
    if error is not None and not (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
        and isinstance(error.get("retryable", False), bool)
        and set(error) <= {"code", "message", "retryable"}
    ):
        problems.append("error: must be an object with string 'code' and 'message'")
    if doc.get("status") == "failed" and not isinstance(error, dict):
        problems.append("error: required when status is 'failed'")
    if doc.get("meta") is not None and not isinstance(doc["meta"], dict):
        problems.append("meta: must be a JSON object")
    attempt = doc.get("attempt")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
        problems.append("attempt: must be an integer")
    prov = doc.get("provenance")
    if prov is not None and not (
        isinstance(prov, dict)
        and isinstance(prov.get("job_type"), str)
        and isinstance(prov.get("jobrunner_version"), str)
        and isinstance(prov.get("inputs", []), list)
    ):
        problems.append("provenance: must be an object with 'job_type' and 'jobrunner_version'")
    return problems


def decode_result(body: bytes | str) -> ResultDocument:
    """Decode and validate a result document.

    Raises:
        ValueError: listing every problem found.
    """
    doc = loads_strict(body, what="result document")
    problems = validate_result(doc)
    if problems:
        raise ValueError("invalid result document: " + "; ".join(problems))
    return converter.structure(doc, ResultDocument)


def error_info(code: str, message: str, retryable: bool = False) -> ErrorInfo:
    """Build the ``error`` member of a failed document."""
    return ErrorInfo(code=code, message=message, retryable=retryable)


# -- job-type params -------------------------------------------------------


def _find_invalid_params(exc: BaseException) -> InvalidParams | None:
    if isinstance(exc, InvalidParams):
        return exc
    for sub in getattr(exc, "exceptions", ()):
        found = _find_invalid_params(sub)
        if found is not None:
            return found
    return None


def structure_params(params: Mapping[str, Any], cls: type[T]) -> T:
    """Structure a job's ``params`` into a job type's attrs ``Params`` class.

    Unknown keys, missing keys and wrong types are all reported together.

    Raises:
        InvalidParams: naming each field and what was wrong.
    """
    try:
        return _params_converter.structure(dict(params), cls)
    except InvalidParams:
        raise
    except BaseValidationError as exc:
        own = _find_invalid_params(exc)
        if own is not None:
            raise InvalidParams(own.message) from None
        messages = cattrs.transform_error(exc, path="params")
        raise InvalidParams("; ".join(messages)) from None
    except (TypeError, ValueError) as exc:
        raise InvalidParams(f"params: {exc}") from None


# -- JSON Schema files -----------------------------------------------------


def _schema(name: str) -> dict[str, Any]:
    text = resources.files("jobrunner").joinpath("schemas").joinpath(name).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def job_schema() -> dict[str, Any]:
    """Return the JSON Schema of the job document (``schemas/job.schema.json``)."""
    return _schema("job.schema.json")


def result_schema() -> dict[str, Any]:
    """Return the JSON Schema of the result document (``schemas/result.schema.json``)."""
    return _schema("result.schema.json")


Hook = Callable[[Any, type], Any]
