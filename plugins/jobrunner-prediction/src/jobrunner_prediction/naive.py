"""Seasonal naive forecasts: each step repeats the value one season earlier."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["seasonal_naive", "seasonal_naive_sd"]

FloatArray = npt.NDArray[np.float64]


def seasonal_naive(y: FloatArray, period: int, horizon: int) -> FloatArray:
    """Forecast 1..horizon steps after the end of ``y`` with the last season's values.

    Step k takes the value ``period * ceil(k / period)`` steps before it, so a
    horizon longer than one season repeats the last season.

    Raises:
        ValueError: ``y`` is shorter than one period.
    """
    if len(y) < period:
        raise ValueError(f"need at least {period} points, got {len(y)}")
    steps = np.arange(1, horizon + 1)
    back = period * ((steps + period - 1) // period)
    return np.asarray(y[len(y) - 1 + steps - back], dtype=np.float64)


def seasonal_naive_sd(y: FloatArray, period: int, horizon: int) -> FloatArray:
    """Standard deviation of the 1..horizon step errors of :func:`seasonal_naive`.

    The one-season errors ``y_t - y_{t-period}`` give sigma; a step m seasons
    ahead accumulates m such errors, hence ``sigma * sqrt(m)``.
    """
    diffs = y[period:] - y[:-period]
    sigma = float(np.sqrt(np.mean(diffs**2))) if len(diffs) else 0.0
    steps = np.arange(1, horizon + 1)
    return np.asarray(sigma * np.sqrt((steps + period - 1) // period), dtype=np.float64)
