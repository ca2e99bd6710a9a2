"""Forecast accuracy measures."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["mae", "mape"]

FloatArray = npt.NDArray[np.float64]


def mape(actual: FloatArray, forecast: FloatArray) -> float | None:
    """Mean absolute percentage error in percent, over the non-zero actual values.

    Returns None when every actual value is zero (the measure is undefined).
    """
    actual = np.asarray(actual, dtype=np.float64)
    forecast = np.asarray(forecast, dtype=np.float64)
    scale = float(np.max(np.abs(actual))) if actual.size else 0.0
    usable = np.abs(actual) > 1e-9 * scale
    if scale == 0.0 or not usable.any():
        return None
    ratio = np.abs(forecast[usable] - actual[usable]) / np.abs(actual[usable])
    return float(100.0 * np.mean(ratio))


def mae(actual: FloatArray, forecast: FloatArray) -> float:
    """Mean absolute error, in the unit of the series."""
    return float(np.mean(np.abs(np.asarray(forecast) - np.asarray(actual))))
