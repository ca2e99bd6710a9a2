"""Back-test, combine and run forecasting methods on a regular series (NumPy/SciPy, no jobrunner).

How ``auto`` works (and how any single method is scored):

1. **Back-test as the request.** Forecast origins are at the same time of day
   as the request (the end of the input), one a day for up to
   :data:`BACKTEST_DAYS` days back, each forecasting the requested horizon
   from the data before it. Errors are measured over that horizon.
2. **Combine, lead time by lead time.** Every method the input is long
   enough for is back-tested on the same origins; the forecast is their
   weighted mean, with weights for each step of the horizon inversely
   proportional to each method's back-test mean squared error at that lead
   time (smoothed over an hour either side; methods much worse than the best
   at that lead get none). Methods differ most by lead time: one that
   follows the last hours closely wins the first hours and may lose the
   evening. Combining diverse methods is more accurate and more stable from
   day to day than picking one winner.
3. **Honest intervals.** The interval comes from the back-test errors of
   what is returned (the combination, or the method asked for): their spread
   at each lead time, scaled so that the requested share of the back-test
   errors falls inside.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from jobrunner_prediction.daytypes import Calendar, holiday_offsets
from jobrunner_prediction.holtwinters import fit_holt_winters
from jobrunner_prediction.metrics import mae, mape
from jobrunner_prediction.mstl import mstl_forecast
from jobrunner_prediction.naive import seasonal_naive, seasonal_naive_sd

__all__ = [
    "AUTO",
    "BACKTEST_DAYS",
    "METHODS",
    "Backtest",
    "Forecast",
    "available_methods",
    "backtest_origins",
    "predict",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Progress = Callable[[float], None]

#: The methods, in the order ``auto`` prefers them when none can be back-tested.
METHODS: tuple[str, ...] = (
    "mstl_arima",
    "mstl_ets",
    "holt_winters",
    "seasonal_naive_week",
    "seasonal_naive_day",
)
AUTO = "auto"

#: Back-test origins (days), at most: enough for stable scores, few enough to stay fast.
BACKTEST_DAYS = 21
#: Fewest back-test origins worth combining on.
MIN_BACKTEST_DAYS = 3
#: Methods are fitted on this many recent weeks at most: older demand says little
#: about tomorrow, and a bounded window keeps a year of 15-minute data fast.
FIT_WEEKS = 12
FIT_MAX_POINTS = 50_000
#: Holt-Winters' parameters are fitted on this many recent weeks (its states run on all).
HW_FIT_WEEKS = 8
#: A method whose back-test MSE at a lead time is this many times the best one's
#: gets no weight there.
WEIGHT_CUTOFF = 1.3
#: Back-test MSEs are smoothed over this many steps a day either side of each lead.
WEIGHT_SMOOTH_PER_DAY = 1 / 24
#: Weights are proportional to the back-test MSE to this (negative) power.
WEIGHT_POWER = 1.0


@dataclass(frozen=True)
class Backtest:
    """Accuracy of a method over ``origins`` back-test origins of ``steps`` steps each."""

    method: str
    steps: int
    origins: int
    mape: float | None
    mae: float
    mse: float

    def score(self) -> float:
        """MAPE, or MAE where MAPE is undefined."""
        return self.mape if self.mape is not None else self.mae

    def to_json(self) -> dict[str, Any]:
        """The back-test as plain JSON values (MAE in the series' unit)."""
        return {
            "method": self.method,
            "steps": self.steps,
            "origins": self.origins,
            "mape": None if self.mape is None else round(self.mape, 4),
            "mae": self.mae,
        }


@dataclass(frozen=True)
class Forecast:
    """Forecasts for steps 1..horizon after the series, with their error standard deviation.

    ``sd`` is calibrated so that ``mean ± z(level) * sd`` is the interval at the
    level asked for. ``step_weights`` gives each combined method's weight at each
    step of the horizon (they sum to 1 at every step), ``weights`` their means.
    """

    method: str
    mean: FloatArray
    sd: FloatArray
    fitted: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    step_weights: dict[str, FloatArray] = field(default_factory=dict)


def _needs(method: str, day: int) -> int:
    """Fewest points ``method`` works with, for ``day`` steps per day."""
    return {
        "seasonal_naive_day": day,
        "seasonal_naive_week": 7 * day,
        "holt_winters": 2 * day,
        "mstl_arima": 2 * day,
        "mstl_ets": 2 * day,
    }[method]


def available_methods(n: int, day: int) -> list[str]:
    """The methods that can forecast a series of ``n`` points with ``day`` steps per day."""
    return [method for method in METHODS if n >= _needs(method, day)]


def _periods(n: int, day: int) -> tuple[int, ...]:
    """Daily and weekly seasons with two weeks of data or more, else the daily one only."""
    return (day, 7 * day) if n >= 14 * day else (day,)


def _window(n: int, day: int) -> int:
    """How many recent points a method is fitted on."""
    return max(2 * 7 * day, min(FIT_WEEKS * 7 * day, FIT_MAX_POINTS)) if n >= 14 * day else n


def backtest_origins(n: int, day: int, horizon: int, needs: int) -> IntArray:
    """Back-test origins: indices of the last point used, at the request's time of day.

    One a day back from the end, the first whose horizon ends inside the data,
    for up to :data:`BACKTEST_DAYS` days, each leaving ``needs`` points to fit
    on. Returned oldest first; empty when not even one fits.
    """
    first_back = -(-horizon // day)  # days back so that the whole horizon is observed
    origins = n - 1 - day * np.arange(first_back, first_back + BACKTEST_DAYS)
    origins = origins[origins + 1 >= needs]
    return np.asarray(origins[::-1], dtype=np.int64)


def _seasonal_naive_paths(
    y: FloatArray, origins: IntArray, period: int, horizon: int
) -> FloatArray:
    steps = np.arange(1, horizon + 1)
    return np.asarray(
        y[origins[:, None] + steps - period * ((steps + period - 1) // period)], dtype=np.float64
    )


def _method_paths(
    method: str, y: FloatArray, day: int, horizon: int, origins: IntArray
) -> tuple[FloatArray, FloatArray, dict[str, Any]]:
    """Forecasts from each origin (data up to it only) and from the end of ``y``.

    Returns the back-test paths (len(origins), horizon), the final forecast and
    the fitted parameters of the final model.
    """
    n = len(y)
    if method in ("seasonal_naive_day", "seasonal_naive_week"):
        period = day if method == "seasonal_naive_day" else 7 * day
        paths = _seasonal_naive_paths(y, origins, period, horizon)
        return paths, seasonal_naive(y, period, horizon), {"period": period}
    if method == "holt_winters":
        # Parameters are fitted once, on the data before the first back-test origin
        # (all of it without a back-test); the states then run on to the end, so the
        # back-test and the forecast share one model and nothing peeks ahead.
        fit_end = int(origins[0]) + 1 if len(origins) else n
        periods = _periods(fit_end, day)
        span = min(_window(fit_end, day), fit_end, HW_FIT_WEEKS * 7 * day)
        offset = fit_end - span
        model = fit_holt_winters(y[offset:fit_end], periods, horizon=horizon)
        full = model.extended(y[offset:])
        paths = (
            full.forecast_paths(origins - offset, horizon)
            if len(origins)
            else np.zeros((0, horizon))
        )
        fitted = {**model.fitted_params, "points": span}
        return paths, full.forecast(horizon), fitted
    model_name = "arima" if method == "mstl_arima" else "ets"

    def one(end: int) -> tuple[FloatArray, dict[str, object]]:
        span = min(_window(end, day), end)
        periods = _periods(span, day)
        fit_points = min(span, 4 * 7 * day)
        return mstl_forecast(y[end - span : end], periods, model_name, horizon, fit_points)

    paths = np.array([one(int(o) + 1)[0] for o in origins]).reshape(len(origins), horizon)
    final, fitted = one(n)
    return paths, final, fitted


def _score(method: str, actual: FloatArray, paths: FloatArray) -> Backtest:
    err = actual - paths
    return Backtest(
        method,
        actual.shape[1],
        actual.shape[0],
        mape(actual.ravel(), paths.ravel()),
        mae(actual, paths),
        float(np.mean(err**2)),
    )


def _smooth_leads(values: FloatArray, width: int) -> FloatArray:
    """Mean of ``values`` over ``width`` leads either side, truncated at the ends."""
    width = min(width, (len(values) - 1) // 2)
    if width <= 0:
        return np.asarray(values, dtype=np.float64)
    kernel = np.ones(2 * width + 1)
    total = np.convolve(values, kernel, mode="same")
    return np.asarray(total / np.convolve(np.ones_like(values), kernel, mode="same"))


def _lead_weights(errors: dict[str, FloatArray], width: int) -> dict[str, FloatArray]:
    """Per-lead inverse-MSE weights from back-test errors (origins, horizon) by method.

    At each lead the MSE (smoothed over ``width`` leads either side) of every
    method is compared with the best one's; those within ``WEIGHT_CUTOFF`` times
    it get weights proportional to ``MSE ** -WEIGHT_POWER``, the others none.
    Methods with no weight at any lead are left out.
    """
    names = list(errors)
    mse = np.stack([_smooth_leads(np.mean(e**2, axis=0), width) for e in errors.values()])
    best = mse.min(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        # mse == 0 only where the best is 0 too: those exact methods share the lead.
        ratio = np.where(mse > 0.0, best / mse, 1.0)
    raw = np.where(mse <= WEIGHT_CUTOFF * best, ratio**WEIGHT_POWER, 0.0)
    weights = raw / raw.sum(axis=0)
    return {name: weights[i] for i, name in enumerate(names) if weights[i].any()}


def _calibrated_sd(errors: FloatArray, level: float) -> FloatArray:
    """Per-lead standard deviations from back-test errors, scaled to cover ``level``.

    The root mean square error at each lead is smoothed across neighbouring
    leads (a few origins give noisy per-lead figures) and made non-decreasing;
    then one factor makes ``level`` of the standardised errors fall within
    ``± z(level)``.
    """
    rms = np.sqrt(np.mean(errors**2, axis=0))
    smooth = _smooth_leads(rms, max(1, errors.shape[1] // 12))
    smooth = np.maximum.accumulate(np.maximum(smooth, 1e-12))
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    # Fewer back-test values than this make the empirical quantile unreliable.
    if errors.size < 50:
        return np.asarray(smooth, dtype=np.float64)
    quantile = float(np.quantile(np.abs(errors) / smooth, level))
    return np.asarray(smooth * quantile / z, dtype=np.float64)


def _model_sd(method: str, y: FloatArray, day: int, horizon: int) -> FloatArray:
    """Error standard deviations without a back-test: those of the weekly or daily naive."""
    period = 7 * day if len(y) >= 14 * day else day
    return seasonal_naive_sd(y[-FIT_WEEKS * 7 * day :], period, horizon)


def predict(
    y: FloatArray,
    day: int,
    horizon: int,
    method: str = AUTO,
    progress: Progress | None = None,
    *,
    level: float = 0.9,
    calendar: Calendar | None = None,
) -> tuple[Forecast, Backtest | None, list[Backtest]]:
    """Back-test, combine (for ``auto``) and run methods.

    Args:
        y: the regular series.
        day: steps per day.
        horizon: steps to forecast.
        method: ``auto`` or one of :data:`METHODS`.
        progress: called with 0..1 as the work advances.
        level: coverage the returned ``sd`` is calibrated for.
        calendar: weekdays and public holidays of the history and the horizon;
            holidays are treated like Sundays.

    Returns:
        The forecast, the back-test of what is returned (None if the series is
        too short to hold out a day), and the back-tests of every method tried.

    Raises:
        ValueError: unknown method, or ``y`` too short for it (or for any, with ``auto``).
    """
    if method != AUTO and method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    candidates = available_methods(n, day) if method == AUTO else [method]
    if not candidates:
        raise ValueError(f"need at least {day} points (one day), got {n}")
    if method != AUTO and n < _needs(method, day):
        raise ValueError(f"{method} needs at least {_needs(method, day)} points, got {n}")

    adjusted, future_offset, holiday_info = y, np.zeros(horizon), None
    if calendar is not None:
        adjusted, future_offset, holiday_info = holiday_offsets(y, calendar, day, horizon)

    needs = max(
        3 * 7 * day if n >= 5 * 7 * day else 2 * day, max(_needs(m, day) for m in candidates)
    )
    origins = backtest_origins(n, day, horizon, needs)
    if method == AUTO and len(origins) < MIN_BACKTEST_DAYS:
        origins = origins[:0]
    if method == AUTO and not len(origins):
        candidates = candidates[:1]
    actual = adjusted[origins[:, None] + np.arange(1, horizon + 1)]

    results: dict[str, tuple[FloatArray, FloatArray, dict[str, Any]]] = {}
    for i, candidate in enumerate(candidates):
        results[candidate] = _method_paths(candidate, adjusted, day, horizon, origins)
        if progress is not None:
            progress(0.95 * (i + 1) / len(candidates))
    scores = (
        [_score(m, actual, paths) for m, (paths, _, _) in results.items()] if len(origins) else []
    )

    if len(origins) and method == AUTO:
        errors = {m: actual - paths for m, (paths, _, _) in results.items()}
        weights = _lead_weights(errors, round(WEIGHT_SMOOTH_PER_DAY * day))
    else:
        weights = {candidates[0]: np.ones(horizon)}
    name = AUTO if len(weights) > 1 else next(iter(weights))
    mean = sum((w * results[m][1] for m, w in weights.items()), np.zeros(horizon))
    used: Backtest | None = None
    if len(origins):
        paths = sum((w * results[m][0] for m, w in weights.items()), np.zeros_like(actual))
        used = _score(name, actual, paths)
        sd = _calibrated_sd(actual - paths, level)
    else:
        sd = _model_sd(name, adjusted, day, horizon)
    fitted: dict[str, Any] = (
        {m: results[m][2] for m in weights} if name == AUTO else dict(results[name][2])
    )
    if holiday_info is not None:
        fitted["holidays"] = holiday_info
    if progress is not None:
        progress(1.0)
    means = {m: round(float(np.mean(w)), 4) for m, w in weights.items()}
    forecast = Forecast(name, mean + future_offset, sd, fitted, means, weights)
    return forecast, used, scores
