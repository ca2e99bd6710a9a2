"""Validation on real half-hourly electricity demand (England & Wales, Taylor 2003).

The data ships inside pmdarima's wheel (``pip install .[realdata]``); the tests
are skipped when it is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from jobrunner_prediction.holtwinters import (
    fit_holt_winters,
)

datasets = pytest.importorskip("pmdarima.datasets", reason="needs the realdata extra (pmdarima)")

pytestmark = pytest.mark.realdata

DAY, WEEK = 48, 336
TRAIN = 8 * WEEK  # Taylor fits on the first 8 weeks and evaluates on the last 4
LEADS = 48


@pytest.fixture(scope="module")
def demand() -> np.ndarray:
    """The 4032 half-hourly demand values in MW from 5 June 2000."""
    return np.asarray(datasets.load_taylor(), dtype=np.float64)


def rolling_mape(y: np.ndarray, forecasts: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """MAPE (%) by lead time 1..LEADS over all forecast origins."""
    actual = y[origins[:, None] + np.arange(1, LEADS + 1)]
    return 100.0 * np.mean(np.abs(forecasts - actual) / actual, axis=0)


def test_holt_winters_beats_seasonal_naive_on_real_demand(demand: np.ndarray) -> None:
    """Fitted on 8 weeks, Holt-Winters forecasts the last 4 weeks better than last week's values.

    Published for this data (Taylor 2003): weekly seasonal naive about 2.2 % mean
    MAPE over 1-48 half-hours, double-seasonal Holt-Winters with AR(1) about 1.2 %
    at 12 hours ahead.
    """
    full = fit_holt_winters(demand[:TRAIN], (DAY, WEEK)).extended(demand)
    origins = np.arange(TRAIN - 1, len(demand) - LEADS)
    holt_winters = rolling_mape(demand, full.forecast_paths(origins, LEADS), origins)
    steps = np.arange(1, LEADS + 1)
    naive = demand[origins[:, None] + steps - WEEK]
    weekly_naive = rolling_mape(demand, naive, origins)
    assert 1.9 < weekly_naive.mean() < 2.5
    assert holt_winters.mean() < 0.7 * weekly_naive.mean()
    assert holt_winters[23] < 1.5
    assert np.all(holt_winters < weekly_naive)
