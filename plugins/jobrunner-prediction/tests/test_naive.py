"""Seasonal naive forecasts and their error spread."""

from __future__ import annotations

import numpy as np
import pytest

from jobrunner_prediction.naive import seasonal_naive, seasonal_naive_sd


def test_repeats_the_last_season_beyond_one_period() -> None:
    """Step k takes the value whole seasons back, so long horizons repeat the last season."""
    y = np.arange(12, dtype=float)
    assert seasonal_naive(y, 4, 6).tolist() == [8.0, 9.0, 10.0, 11.0, 8.0, 9.0]


def test_error_spread_grows_with_whole_seasons() -> None:
    """The standard deviation is sigma within the first season and sigma*sqrt(2) in the second."""
    y = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
    sd = seasonal_naive_sd(y, 2, 4)
    assert sd.tolist() == pytest.approx([1.0, 1.0, np.sqrt(2), np.sqrt(2)])


def test_too_short_series_is_refused() -> None:
    """Fewer points than one period cannot give a seasonal naive forecast."""
    with pytest.raises(ValueError, match="at least 4"):
        seasonal_naive(np.ones(3), 4, 1)
