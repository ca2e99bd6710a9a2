"""The ``prediction`` job type: forecast a smart-meter series with prediction intervals."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
from jobrunner import Context, InputInvalid, InvalidParams, JobType
from jobrunner.timeseries import (
    check_unit,
    from_watts,
    own_spacing,
    parse_readings,
    regularize,
)

from jobrunner_prediction.daytypes import build_calendar
from jobrunner_prediction.durations import format_duration
from jobrunner_prediction.forecast import Backtest, predict
from jobrunner_prediction.params import MAX_HORIZON_STEPS, PredictionParams, divides_day

__all__ = ["Prediction", "default_interval"]

_DAY = 86400
# Whole divisors of a day, for snapping an input's own spacing to a usable step.
_DAY_DIVISORS = np.array([d for d in range(1, _DAY + 1) if _DAY % d == 0], dtype=np.float64)


def default_interval(spacing: float) -> float:
    """Return the step that divides a day evenly and is nearest to ``spacing`` (log scale)."""
    if spacing < 1.0:
        return spacing if divides_day(spacing) else 1.0
    nearest = np.argmin(np.abs(np.log(_DAY_DIVISORS / spacing)))
    return float(_DAY_DIVISORS[nearest])


def _pairs(timestamps: npt.NDArray[np.float64], values: npt.NDArray[np.float64]) -> list[Any]:
    stamps = [int(t) if float(t).is_integer() else float(t) for t in timestamps.tolist()]
    return [[t, v] for t, v in zip(stamps, np.round(values, 6).tolist(), strict=True)]


class Prediction(JobType):
    """Forecast a smart-meter series: point forecast, prediction interval and back-test.

    Input: ``[[unix_ts, value], ...]``, ``{"readings": [...], "unit": "kW"}`` or CSV.
    Params: :class:`~jobrunner_prediction.params.PredictionParams`.
    Output: ``forecast``, ``lower``, ``upper`` (``[[unix_ts, value], ...]`` in the
    input's unit), ``method``, ``fitted``, ``backtest``, plus ``interval``,
    ``unit``, ``level`` and ``input`` (what cleaning did).
    """

    Params = PredictionParams
    #: JSON (``[[ts, value], ...]`` or ``{"readings": ...}``) or CSV inputs.
    accepts = ("application/json", "*/*+json", "text/csv", "text/plain")

    def __call__(self, ctx: Context) -> dict[str, Any]:
        """Run one prediction job."""
        params: PredictionParams = ctx.params
        readings = parse_readings(ctx.input)
        unit = check_unit(params.unit or readings.unit or "W", "input.unit")
        if params.interval is not None:
            step = float(params.interval)
        else:
            finite = readings.ts[np.isfinite(readings.values)]
            step = default_interval(own_spacing(np.unique(finite)))
        horizon = math.ceil(float(params.horizon) / step - 1e-9)
        if horizon > MAX_HORIZON_STEPS:
            raise InvalidParams(
                f"params.horizon: {format_duration(float(params.horizon))} is more than "
                f"{MAX_HORIZON_STEPS} steps of {format_duration(step)}; use a longer interval"
            )
        series = regularize(readings, step=step, unit=unit)
        day = round(_DAY / step)
        ctx.log.info("series_cleaned", points=len(series.values), interval=step, **series.stats)
        calendar = None
        if params.holidays is not None:
            calendar = build_calendar(
                series.start,
                step,
                len(series.values) + horizon,
                params.holidays.country,
                params.holidays.subdivision,
                params.timezone,
            )
        try:
            result, used, scores = predict(
                series.values,
                day,
                horizon,
                params.method,
                progress=ctx.progress,
                level=params.level,
                calendar=calendar,
            )
        except ValueError as exc:
            raise InputInvalid(
                f"input: too short for {params.method} at a {format_duration(step)} interval "
                f"({format_duration(len(series.values) * step)} of data): {exc}"
            ) from None
        z = NormalDist().inv_cdf(0.5 + params.level / 2.0)
        stamps = series.end + step * np.arange(horizon, dtype=np.float64)
        ctx.log.info("forecast_done", method=result.method, weights=result.weights, horizon=horizon)

        def out(watts: npt.NDArray[np.float64]) -> list[Any]:
            return _pairs(stamps, from_watts(watts, unit, step))

        def backtest_json(score: Backtest) -> dict[str, Any]:
            error = float(from_watts(np.array([score.mae]), unit, step)[0])
            return {**score.to_json(), "mae": round(error, 6)}

        def in_unit(fitted: dict[str, Any]) -> dict[str, Any]:
            if "sigma" in fitted:
                sigma = float(from_watts(np.array([fitted["sigma"]]), unit, step)[0])
                return {**fitted, "sigma": round(sigma, 6)}
            return fitted

        fitted = dict(result.fitted)
        holidays = fitted.pop("holidays", None)
        if result.method == "auto":
            fitted = {name: in_unit(value) for name, value in fitted.items()}
        else:
            fitted = in_unit(fitted)
        by_method = {score.method: score for score in scores}
        combination = [
            {
                "method": name,
                "weight": weight,
                "weight_by_step": np.round(result.step_weights[name], 4).tolist(),
                "backtest": backtest_json(by_method[name]) if name in by_method else None,
            }
            for name, weight in sorted(result.weights.items(), key=lambda item: -item[1])
        ]
        return {
            "forecast": out(result.mean),
            "lower": out(result.mean - z * result.sd),
            "upper": out(result.mean + z * result.sd),
            "method": result.method,
            "combination": combination,
            "fitted": fitted,
            "backtest": backtest_json(used) if used is not None else None,
            "candidates": [backtest_json(score) for score in scores],
            "interval": step,
            "unit": unit,
            "level": params.level,
            "holidays": holidays,
            "input": {**series.stats, "start": series.start, "end": series.end},
        }
