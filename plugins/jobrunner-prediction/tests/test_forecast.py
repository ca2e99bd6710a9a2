"""Method availability, back-tests and the auto choice."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from jobrunner_prediction.forecast import (
    available_methods,
    backtest,
    backtest_steps,
    forecast,
    predict,
)


def test_methods_available_depend_on_the_data_length() -> None:
    """One day allows daily naive, two days Holt-Winters, a week weekly naive."""
    assert available_methods(47, 48) == []
    assert available_methods(48, 48) == ["seasonal_naive_day"]
    assert available_methods(96, 48) == ["holt_winters", "seasonal_naive_day"]
    assert available_methods(336, 48) == [
        "holt_winters",
        "seasonal_naive_week",
        "seasonal_naive_day",
    ]


def test_holt_winters_uses_only_daily_season_on_short_data(synthetic_load: Any) -> None:
    """With less than two weeks the model drops the weekly season."""
    result = forecast("holt_winters", synthetic_load(5), 48, 24)
    assert result.fitted["periods"] == [48]
    assert len(result.mean) == len(result.sd) == 24


def test_backtest_scores_the_held_out_tail() -> None:
    """A back-test forecasts the last steps from the rest: a perfect repeat scores zero."""
    y = np.tile(np.arange(1.0, 49.0), 3)
    score = backtest("seasonal_naive_day", y, 48, 48, 48)
    assert score is not None and score.mape == 0.0 and score.mae == 0.0 and score.origins == 1
    assert backtest("seasonal_naive_week", y, 48, 48, 48) is None


def test_backtest_uses_many_origins_over_the_last_week(synthetic_load: Any) -> None:
    """With enough data the back-test covers a week of origins, one every quarter day."""
    y = synthetic_load(35)
    steps = backtest_steps(len(y), 48, 48)
    assert steps == 48 + 336
    score = backtest("holt_winters", y, 48, 48, steps)
    assert score is not None and score.origins == 29 and score.steps == steps
    assert backtest_steps(3 * 48, 48, 48) == 48  # short input: just the horizon
    assert backtest_steps(60, 48, 48) == 12  # tiny input: all but a day


def test_auto_picks_the_best_back_tested_method(synthetic_load: Any) -> None:
    """auto returns the method with the lowest back-test MAPE among those it compared."""
    y = synthetic_load(28)
    result, used, scores = predict(y, 48, 48)
    assert {score.method for score in scores} == {
        "holt_winters",
        "seasonal_naive_week",
        "seasonal_naive_day",
    }
    assert used is not None and used.method == result.method
    assert used.mape == min(score.mape for score in scores)


def test_explicit_method_too_short_is_an_error(synthetic_load: Any) -> None:
    """Asking for weekly naive on three days of data fails with the length needed."""
    with pytest.raises(ValueError, match="at least 336"):
        predict(synthetic_load(3), 48, 48, "seasonal_naive_week")


def test_intervals_widen_when_the_back_test_errs_more_than_expected(synthetic_load: Any) -> None:
    """A drift in the last week makes the back-test err; the forecast spread grows to match."""
    y = synthetic_load(35)
    calm, _, _ = predict(y, 48, 48, "seasonal_naive_day")
    shifted = y.copy()
    shifted[-336:] += np.linspace(0.0, 800.0, 336)
    result, used, _ = predict(shifted, 48, 48, "seasonal_naive_day")
    assert used is not None and used.spread_ratio > 1.0
    assert result.fitted["interval_scale"] == pytest.approx(min(used.spread_ratio, 3.0), rel=1e-3)
    assert "interval_scale" not in calm.fitted or calm.fitted["interval_scale"] < 1.5
