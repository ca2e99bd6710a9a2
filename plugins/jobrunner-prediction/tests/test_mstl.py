"""The multi-seasonal decomposition and the models of what remains."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from jobrunner_prediction.metrics import mape
from jobrunner_prediction.mstl import decompose, forecast_rest, mstl_forecast
from jobrunner_prediction.naive import seasonal_naive


def seasonal_series(weeks: int = 8, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Hourly: level 100, a daily shape, a weekend dip, a slow trend, optional noise."""
    t = np.arange(weeks * 168)
    daily = 10 * np.sin(2 * np.pi * t / 24)
    weekly = np.where((t // 24) % 7 >= 5, -8.0, 8.0 * 2 / 5)
    trend = 100 + 0.01 * t
    noise_part = np.random.default_rng(seed).normal(0, noise, len(t))
    return trend + daily + weekly + noise_part, daily, weekly, trend


def test_decomposition_recovers_daily_and_weekly_seasons() -> None:
    """On a noiseless series the two seasons and the trend come back nearly exactly."""
    y, daily, weekly, trend = seasonal_series()
    parts = decompose(y, (24, 168))
    assert np.allclose(parts.rest + sum(parts.seasonals), y)
    middle = slice(168, -168)
    combined = parts.seasonals[0] + parts.seasonals[1]
    assert np.abs(combined - daily - weekly)[middle].max() < 1.0
    assert np.abs(parts.rest - trend)[middle].max() < 1.0


def test_an_outlier_day_does_not_bend_the_seasons() -> None:
    """Six hours 50 units off (a heat wave) stay in the rest; the weekly season barely moves."""
    y, _daily, _weekly, _ = seasonal_series(noise=1.0)
    odd = y.copy()
    odd[5 * 168 + 60 : 5 * 168 + 66] += 50.0
    clean = decompose(y, (24, 168)).seasonals[1]
    bent = decompose(odd, (24, 168)).seasonals[1]
    assert np.abs(bent - clean).max() < 3.0


def test_seasonal_forecast_repeats_the_last_cycle_phase_aligned() -> None:
    """The seasons' forecast continues the phase after the last point."""
    y, _daily, _weekly, _ = seasonal_series()
    parts = decompose(y, (24, 168))
    ahead = parts.seasonal_forecast(30)
    t = np.arange(len(y), len(y) + 30)
    expected = 10 * np.sin(2 * np.pi * t / 24) + np.where((t // 24) % 7 >= 5, -8.0, 8.0 * 2 / 5)
    assert np.abs(ahead - expected).max() < 0.5


@pytest.mark.parametrize("model", ["arima", "ets"])
def test_rest_models_follow_the_level(model: str) -> None:
    """Both models forecast a random walk's last level (within its noise), not its mean."""
    rng = np.random.default_rng(2)
    z = np.cumsum(rng.normal(0, 1, 2000)) + 500
    path, fitted = forecast_rest(z, model, 24, 1000)
    assert len(path) == 24 and fitted
    assert abs(path[0] - z[-1]) < 3.0
    assert abs(path.mean() - z[-1]) < 10.0


def test_mstl_arima_beats_weekly_naive_on_noisy_load(synthetic_load: Any) -> None:
    """With noise, MSTL + ARIMA forecasts the next day better than copying last week."""
    y = synthetic_load(42, step=1800, noise=40.0, seed=3)
    ours, naive = [], []
    for end in range(len(y) - 7 * 48, len(y) - 47, 48):
        train, test = y[end - 28 * 48 : end], y[end : end + 48]
        forecast, fitted = mstl_forecast(train, (48, 336), "arima", 48, 14 * 48)
        ours.append(mape(test, forecast))
        naive.append(mape(test, seasonal_naive(train, 336, 48)))
        assert fitted["order"][1] == 1
    assert np.mean(ours) < np.mean(naive)
