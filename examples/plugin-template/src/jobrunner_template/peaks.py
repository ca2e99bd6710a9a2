"""The ``peaks`` job type: the highest readings of a ``[[unix_ts, value], ...]`` series."""

from __future__ import annotations

from typing import Any

import attrs
import jobrunner


@attrs.frozen(kw_only=True)
class PeaksParams:
    """Params of a ``peaks`` job: ``top``, how many of the highest readings to return."""

    top: int = attrs.field(default=3)

    @top.validator
    def _check_top(self, _: attrs.Attribute[Any], value: int) -> None:
        if not 1 <= value <= 1000:
            # Name the field and say what was wrong: the message goes into the result document.
            raise jobrunner.InvalidParams(f"params.top: must be between 1 and 1000, got {value}")


class Peaks(jobrunner.JobType):
    """Return the ``top`` highest readings, highest first, as ``{"peaks": [[ts, value], ...]}``."""

    Params = PeaksParams

    def __call__(self, ctx: jobrunner.Context) -> dict[str, Any]:
        """Run one job: ``ctx.input`` is the decoded input, ``ctx.params`` a PeaksParams."""
        readings = ctx.input
        if not isinstance(readings, list) or not all(
            isinstance(r, list) and len(r) == 2 and all(isinstance(x, (int, float)) for x in r)
            for r in readings
        ):
            raise jobrunner.InputInvalid("input: expected [[unix_ts, value], ...]")
        ctx.progress(0.5, "sorting")
        peaks = sorted(readings, key=lambda reading: reading[1], reverse=True)[: ctx.params.top]
        ctx.log.info("peaks_found", readings=len(readings), peaks=len(peaks))
        # Return plain JSON values: the worker publishes them as the result's "data".
        return {"peaks": peaks, "readings": len(readings)}
