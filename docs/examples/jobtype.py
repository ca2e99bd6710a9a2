"""A job type with typed params: the peak of a series of readings."""

from typing import Any

import attrs

from jobrunner import Context, JobType


@attrs.frozen
class PeakParams:
    """What the job's ``params`` may hold; anything else fails the job (``invalid_params``)."""

    top: int = 1


class Peaks(JobType):
    """The ``top`` largest readings of a ``[[timestamp, value], ...]`` input."""

    Params = PeakParams
    accepts = ("application/json",)

    def __call__(self, ctx: Context) -> dict[str, Any]:
        params: PeakParams = ctx.params
        readings: list[list[float]] = ctx.input
        ctx.log.info("readings_loaded", count=len(readings))
        ranked = sorted(readings, key=lambda row: row[1], reverse=True)
        ctx.progress(1.0, "ranked")
        return {"peaks": ranked[: params.top]}
