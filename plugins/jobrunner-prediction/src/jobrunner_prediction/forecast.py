"""Choose, back-test and run a forecasting method on a regular series (NumPy only, no jobrunner)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from jobrunner_prediction.holtwinters import fit_holt_winters
from jobrunner_prediction.metrics import mae, mape
from jobrunner_prediction.naive import seasonal_naive, seasonal_naive_sd

__all__ = [
    "AUTO",
    "METHODS",
    "Backtest",
    "Forecast",
    "available_methods",
    "backtest",
    "forecast",
    "predict",
]

FloatArray = npt.NDArray[np.float64]
Progress = Callable[[float], None]

#: The methods, in the order ``auto`` prefers them when none can be back-tested.
METHODS: tuple[str, ...] = ("holt_winters", "seasonal_naive_week", "seasonal_naive_day")
AUTO = "auto"

# Holt-Winters is fitted on the most recent weeks only: older demand says little
# about tomorrow, and a bounded window keeps a year of 15-minute data well under a second.
FIT_WEEKS = 6
FIT_MAX_POINTS = 50_000
# Widening prediction intervals after the back-test stops here.
MAX_SPREAD_SCALE = 3.0


@dataclass(frozen=True)
class Forecast:
    """Forecasts for steps 1..horizon after the series, with their error standard deviation."""

    method: str
    mean: FloatArray
    sd: FloatArray
    fitted: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Backtest:
    """Accuracy of a method on the last ``steps`` points, from ``origins`` forecast origins.

    ``spread_ratio`` is the root mean square of the errors divided by the
    method's own error standard deviation for each lead time: above 1 the
    method's prediction intervals were too narrow there.
    """

    method: str
    steps: int
    origins: int
    mape: float | None
    mae: float
    spread_ratio: float = 1.0

    def score(self) -> float:
        """What ``auto`` minimises: MAPE, or MAE where MAPE is undefined."""
        return self.mape if self.mape is not None else self.mae


def _needs(method: str, day: int) -> int:
    """Fewest points ``method`` works with, for ``day`` steps per day."""
    return {"seasonal_naive_day": day, "seasonal_naive_week": 7 * day, "holt_winters": 2 * day}[
        method
    ]


def available_methods(n: int, day: int) -> list[str]:
    """The methods that can forecast a series of ``n`` points with ``day`` steps per day."""
    return [method for method in METHODS if n >= _needs(method, day)]


def _holt_winters_window(y: FloatArray, day: int) -> tuple[FloatArray, tuple[int, ...]]:
    week = 7 * day
    periods = (day, week) if len(y) >= 2 * week else (day,)
    cycle = periods[-1]
    span = max(2 * cycle, min(FIT_WEEKS * week, FIT_MAX_POINTS))
    return y[-span:], periods


def forecast(
    method: str, y: FloatArray, day: int, horizon: int, progress: Progress | None = None
) -> Forecast:
    """Forecast ``horizon`` steps after ``y`` with one method.

    Args:
        method: one of :data:`METHODS`.
        y: the regular series.
        day: steps per day (the daily period; a week is seven of them).
        horizon: number of steps to forecast.
        progress: called with 0..1 while fitting.

    Raises:
        ValueError: unknown method, or ``y`` too short for it.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    if len(y) < _needs(method, day):
        raise ValueError(f"{method} needs at least {_needs(method, day)} points, got {len(y)}")
    if method == "holt_winters":
        window, periods = _holt_winters_window(y, day)
        model = fit_holt_winters(window, periods, progress=progress)
        fitted = {**model.fitted_params, "points": len(window)}
        return Forecast(method, model.forecast(horizon), model.forecast_sd(horizon), fitted)
    period = day if method == "seasonal_naive_day" else 7 * day
    sd = seasonal_naive_sd(y[-FIT_WEEKS * 7 * day :], period, horizon)
    if progress is not None:
        progress(1.0)
    return Forecast(method, seasonal_naive(y, period, horizon), sd, {"period": period})


def backtest(
    method: str,
    y: FloatArray,
    day: int,
    horizon: int,
    evaluated: int,
    progress: Progress | None = None,
) -> Backtest | None:
    """Score ``method`` on the last ``evaluated`` points of ``y``, fitted on the ones before.

    Forecasts of ``horizon`` steps (fewer if ``evaluated`` is shorter) start from
    every quarter of a day in that stretch, with the states updated by the
    observations as they come and the parameters fixed: one odd day does not
    decide the score. Returns None when what is left for fitting is too short.
    """
    n = len(y)
    train_end = n - evaluated
    if evaluated < 1 or train_end < _needs(method, day):
        return None
    lead = min(horizon, evaluated)
    origins = np.arange(train_end - 1, n - lead, max(1, day // 4))
    steps = np.arange(1, lead + 1)
    if method == "holt_winters":
        window, periods = _holt_winters_window(y[:train_end], day)
        offset = train_end - len(window)
        model = fit_holt_winters(window, periods, progress=progress)
        sd = model.forecast_sd(lead)
        paths = model.extended(y[offset:]).forecast_paths(origins - offset, lead)
    else:
        period = day if method == "seasonal_naive_day" else 7 * day
        sd = seasonal_naive_sd(y[max(0, train_end - FIT_WEEKS * 7 * day) : train_end], period, lead)
        paths = y[origins[:, None] + steps - period * ((steps + period - 1) // period)]
        if progress is not None:
            progress(1.0)
    actual = y[origins[:, None] + steps]
    errors = actual - paths
    usable = sd > 0
    ratio = float(np.sqrt(np.mean((errors[:, usable] / sd[usable]) ** 2))) if usable.any() else 1.0
    return Backtest(
        method,
        evaluated,
        len(origins),
        mape(actual.ravel(), paths.ravel()),
        mae(actual, paths),
        ratio,
    )


def backtest_steps(n: int, day: int, horizon: int) -> int:
    """How many final points a back-test holds out.

    The horizon plus up to a week more of forecast origins, as long as three
    weeks remain for fitting; at least a day, and never all but a day.
    """
    extra = min(7 * day, max(0, n - horizon - 21 * day))
    return min(max(horizon + extra, day), n - day)


def predict(
    y: FloatArray, day: int, horizon: int, method: str = AUTO, progress: Progress | None = None
) -> tuple[Forecast, Backtest | None, list[Backtest]]:
    """Back-test, choose (for ``auto``) and run a method.

    Returns:
        The forecast, the back-test of the method used (None if the series is
        too short to hold out a part), and every back-test ``auto`` compared.

    Raises:
        ValueError: ``y`` is too short for the requested method (or for any, with ``auto``).
    """
    candidates = available_methods(len(y), day) if method == AUTO else [method]
    if not candidates:
        raise ValueError(f"need at least {day} points (one day), got {len(y)}")

    def part(low: float, high: float) -> Progress | None:
        if progress is None:
            return None
        report = progress
        return lambda fraction: report(low + (high - low) * fraction)

    steps = backtest_steps(len(y), day, horizon)
    scores: list[Backtest] = []
    for i, candidate in enumerate(candidates):
        share = 0.5 / len(candidates)
        score = backtest(candidate, y, day, horizon, steps, part(i * share, (i + 1) * share))
        if score is not None:
            scores.append(score)
    if method == AUTO:
        chosen = min(scores, key=Backtest.score).method if scores else candidates[0]
    else:
        chosen = method
    used = next((score for score in scores if score.method == chosen), None)
    result = forecast(chosen, y, day, horizon, part(0.5, 1.0))
    if used is not None and used.spread_ratio > 1.0:
        # The back-test saw larger errors than the method expects: widen the intervals
        # to match (never narrow them on the strength of one week).
        scale = min(used.spread_ratio, MAX_SPREAD_SCALE)
        fitted = {**result.fitted, "interval_scale": round(scale, 4)}
        result = Forecast(result.method, result.mean, result.sd * scale, fitted)
    return result, used, scores
