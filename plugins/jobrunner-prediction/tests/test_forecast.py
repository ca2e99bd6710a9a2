"""Method availability, the back-test at the request's time of day, the combination, intervals."""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from jobrunner_prediction import forecast as forecast_module
from jobrunner_prediction.forecast import (
    BACKTEST_DAYS,
    METHODS,
    available_methods,
    backtest_origins,
    predict,
)


def test_methods_available_depend_on_the_data_length() -> None:
    """One day allows daily naive, two days the fitted models, a week weekly naive."""
    assert available_methods(47, 48) == []
    assert available_methods(48, 48) == ["seasonal_naive_day"]
    assert available_methods(96, 48) == [
        "mstl_arima",
        "mstl_ets",
        "holt_winters",
        "seasonal_naive_day",
    ]
    assert available_methods(336, 48) == list(METHODS)


def test_backtest_origins_are_at_the_time_of_day_of_the_request() -> None:
    """Origins are whole days before the end, the horizon always observed, at most 21 days."""
    n, day = 8 * 7 * 48 + 17, 48  # the input ends at an odd time of day
    origins = backtest_origins(n, day, 48, needs=3 * 7 * 48)
    assert len(origins) == BACKTEST_DAYS
    assert np.all((n - 1 - origins) % day == 0)
    assert origins.max() + 48 <= n - 1 and np.all(np.diff(origins) == day)
    longer = backtest_origins(n, day, 60, needs=3 * 7 * 48)
    assert longer.max() + 60 <= n - 1 and (n - 1 - longer.max()) == 2 * day
    short = backtest_origins(10 * 48, day, 48, needs=7 * 48)
    assert short.min() + 1 >= 7 * 48 and len(short) == 3


def test_backtest_paths_use_only_data_before_their_origin(synthetic_load: Any) -> None:
    """Changing the data after a back-test origin leaves that origin's forecast unchanged."""
    y = synthetic_load(35)
    origins = backtest_origins(len(y), 48, 48, needs=21 * 48)
    for method in METHODS:
        paths, _, _ = forecast_module._method_paths(method, y, 48, 48, origins)
        changed = y.copy()
        changed[origins[0] + 1 :] *= 1.5
        again, _, _ = forecast_module._method_paths(method, changed, 48, 48, origins)
        np.testing.assert_allclose(again[0], paths[0], err_msg=method)
        assert not np.allclose(again[-1], paths[-1]), method


def test_auto_combines_the_back_tested_methods(synthetic_load: Any) -> None:
    """auto scores every method on the same origins and returns their per-step weighted mean."""
    y = synthetic_load(42)
    result, used, scores = predict(y, 48, 48)
    assert {score.method for score in scores} == set(METHODS)
    assert all(score.origins == BACKTEST_DAYS and score.steps == 48 for score in scores)
    assert sum(result.weights.values()) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(sum(result.step_weights.values()), np.ones(48))
    assert set(result.step_weights) == set(result.weights)
    best = min(scores, key=lambda score: score.mse)
    assert best.method in result.weights
    assert used is not None and used.origins == BACKTEST_DAYS
    singles = {m: predict(y, 48, 48, m)[0].mean for m in result.weights}
    combined = sum(w * singles[m] for m, w in result.step_weights.items())
    np.testing.assert_allclose(result.mean, combined, rtol=1e-9)
    if len(result.weights) > 1:
        assert result.method == "auto" and set(result.fitted) == set(result.weights)


def test_combination_weights_follow_each_methods_error_at_each_lead_time() -> None:
    """A method best at the first leads and another best at the last share the horizon."""
    rng = np.random.default_rng(5)
    ramp = np.linspace(0.2, 2.0, 48)
    errors = {
        "early": rng.normal(size=(21, 48)) * ramp,  # good at first, poor later
        "late": rng.normal(size=(21, 48)) * ramp[::-1],
        "poor": rng.normal(size=(21, 48)) * 3.0,  # never within the cut-off
    }
    weights = forecast_module._lead_weights(errors, width=2)
    assert set(weights) == {"early", "late"}
    np.testing.assert_allclose(weights["early"] + weights["late"], np.ones(48))
    assert weights["early"][:8].min() == 1.0 and weights["late"][-8:].min() == 1.0
    assert 0.3 < weights["early"][24] < 0.7


def test_combination_gives_no_weight_to_a_method_far_behind() -> None:
    """On a series that repeats its day exactly, only methods with no error get weight."""
    y = np.tile(np.sin(np.linspace(0, 2 * np.pi, 48, endpoint=False)) + 5.0, 42)
    result, used, _ = predict(y, 48, 48)
    assert used is not None and used.mae < 1e-6
    np.testing.assert_allclose(result.mean, y[:48], atol=1e-6)


def test_explicit_method_too_short_is_an_error(synthetic_load: Any) -> None:
    """Asking for weekly naive on three days of data fails with the length needed."""
    with pytest.raises(ValueError, match="at least 336"):
        predict(synthetic_load(3), 48, 48, "seasonal_naive_week")
    with pytest.raises(ValueError, match="unknown method"):
        predict(synthetic_load(3), 48, 48, "prophet")


def test_short_input_forecasts_without_a_backtest(synthetic_load: Any) -> None:
    """Two days of data still forecast (one method, model intervals), with no back-test."""
    result, used, scores = predict(synthetic_load(2), 48, 24)
    assert used is None and scores == [] and len(result.mean) == 24
    assert np.all(result.sd > 0)


@pytest.mark.parametrize("level", [0.8, 0.9, 0.95])
def test_calibrated_intervals_cover_the_level_of_backtest_errors(level: float) -> None:
    """The calibrated sd puts about ``level`` of heavy-tailed errors inside ± z * sd."""
    rng = np.random.default_rng(3)
    errors = rng.standard_t(3, size=(21, 48)) * np.linspace(1.0, 3.0, 48)
    sd = forecast_module._calibrated_sd(errors, level)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    inside = np.mean(np.abs(errors) <= z * sd)
    assert abs(inside - level) < 0.03
    assert np.all(np.diff(sd) >= 0)


def test_interval_grows_with_the_backtest_errors(synthetic_load: Any) -> None:
    """A noisier series gets a wider interval than a calm one."""
    calm, _, _ = predict(synthetic_load(35, noise=5.0), 48, 48, "mstl_arima")
    noisy, _, _ = predict(synthetic_load(35, noise=60.0), 48, 48, "mstl_arima")
    assert np.mean(noisy.sd) > 3 * np.mean(calm.sd)
