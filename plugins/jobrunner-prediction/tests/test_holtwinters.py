"""The block-vectorised multi-seasonal Holt-Winters filter, fit and forecasts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from jobrunner_prediction.holtwinters import fit_holt_winters, initial_state, run_filter
from jobrunner_prediction.metrics import mape
from jobrunner_prediction.naive import seasonal_naive


def reference_filter(y, alpha, gammas, periods, level0, seasonal0):
    """The textbook one-step-at-a-time recursion, to check the block version against."""
    level = level0
    seasonal = [list(s) for s in seasonal0]
    eps = []
    for t, value in enumerate(y):
        base = level + sum(s[t] for s in seasonal)
        err = value - base
        eps.append(err)
        level = level + alpha * err
        for s, gamma in zip(seasonal, gammas, strict=True):
            s.append(s[t] + gamma * (1 - alpha) * err)
    return np.array(eps), level


def test_block_filter_equals_the_step_by_step_recursion(synthetic_load: Any) -> None:
    """Vectorising by blocks of the shortest period gives the same errors and level as a loop."""
    y = synthetic_load(21, step=3600)
    periods = (24, 168)
    init = initial_state(y, periods)
    states = run_filter(y, 0.3, (0.2, 0.1), periods, *init)
    eps, level = reference_filter(y, 0.3, (0.2, 0.1), periods, *init)
    assert np.allclose(states.eps, eps)
    assert states.level[-1] == pytest.approx(level)


def test_pure_seasonal_series_is_forecast_exactly(synthetic_load: Any) -> None:
    """A noiseless repeating week is forecast without error, timestamps aligned to the phase."""
    week = synthetic_load(7, step=3600, noise=0.0)
    y = np.tile(week, 3)
    model = fit_holt_winters(y, (24, 168))
    assert np.allclose(model.forecast(30), week[:30], atol=1e-6)


def test_rolling_forecasts_match_single_origin_forecasts(synthetic_load: Any) -> None:
    """forecast_paths from several origins equals forecast() from each origin."""
    y = synthetic_load(21, step=3600)
    model = fit_holt_winters(y, (24, 168))
    origins = np.array([200, 333, len(y) - 1])
    paths = model.forecast_paths(origins, 30)
    for row, origin in zip(paths, origins, strict=True):
        assert np.allclose(row, model.forecast(30, origin=int(origin)))


def test_fit_beats_seasonal_naive_on_noisy_load_and_stays_in_bounds(synthetic_load: Any) -> None:
    """On noisy synthetic load the fitted model forecasts a day better than last week's values."""
    y = synthetic_load(35, step=1800)
    train, test = y[:-48], y[-48:]
    model = fit_holt_winters(train, (48, 336))
    assert 0 <= model.alpha <= 1 and all(0 <= g <= 1 for g in model.gammas)
    assert -1 < model.phi < 1
    assert mape(test, model.forecast(48)) < mape(test, seasonal_naive(train, 336, 48))


def test_forecast_spread_widens_with_the_horizon(synthetic_load: Any) -> None:
    """The forecast error standard deviation starts at sigma and never shrinks with lead time."""
    model = fit_holt_winters(synthetic_load(21, step=3600), (24, 168))
    sd = model.forecast_sd(48)
    assert sd[0] == pytest.approx(model.sigma)
    assert np.all(np.diff(sd) >= 0)


def test_progress_is_reported_up_to_one(synthetic_load: Any) -> None:
    """Fitting reports increasing progress fractions ending at 1."""
    seen: list[float] = []
    fit_holt_winters(synthetic_load(21, step=3600), (24, 168), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 2


def test_rejects_periods_that_do_not_nest() -> None:
    """Periods must be ascending multiples of the first and the series one longest period long."""
    with pytest.raises(ValueError, match="multiples"):
        fit_holt_winters(np.ones(500), (24, 100))
    with pytest.raises(ValueError, match="at least 168"):
        fit_holt_winters(np.ones(100), (24, 168))


def test_fit_on_the_horizon_does_not_chase_the_last_hour(synthetic_load: Any) -> None:
    """Fitted on day-ahead errors the level adapts slowly; it forecasts a day better than one-step.

    Persistent AR noise tempts a one-step fit into a large alpha that carries
    the last hour's deviation across the whole next day.
    """
    y = synthetic_load(42, step=1800, noise=40.0, seed=5)
    one_step_errors, horizon_errors = [], []
    for end in range(len(y) - 7 * 48, len(y) - 47, 48):
        train, test = y[end - 28 * 48 : end], y[end : end + 48]
        one_step = fit_holt_winters(train, (48, 336))
        horizon = fit_holt_winters(train, (48, 336), horizon=48)
        assert 0 <= horizon.phi <= 0.98 and 0 <= horizon.alpha <= 1
        one_step_errors.append(mape(test, one_step.forecast(48)))
        horizon_errors.append(mape(test, horizon.forecast(48)))
    assert np.mean(horizon_errors) < np.mean(one_step_errors)
