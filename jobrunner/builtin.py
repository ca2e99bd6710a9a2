"""Job types that ship with jobrunner itself."""

from __future__ import annotations

from typing import Any

from jobrunner.context import Context

__all__ = ["echo"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def echo(ctx: Context) -> Any:
    """Return the decoded input and the params unchanged: a smoke test of the whole path."""
    return {"input": _jsonable(ctx.input), "params": ctx.params}
