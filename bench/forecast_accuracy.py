"""Forecast accuracy of the ``prediction`` job type on real electricity demand.

Data: half-hourly electricity demand of England & Wales, 5 June to 27 August
2000 (12 weeks, 4032 values, MW), from Taylor (2003); it ships inside the
pmdarima wheel. Set-up as in the paper: parameters fitted on the first 8
weeks, forecasts from every half-hour of the last 4 weeks for lead times 1-48
half-hours, states updated with each new observation.

Also shown: the plugin as a job would run it (``predict(..., "holt_winters")``:
back-test, re-fit on its recent-weeks window, forecast) at each midnight of
the test weeks, with the coverage of its 90 % prediction interval.

Run:  pip install ./plugins/jobrunner-prediction[realdata]
      python bench/forecast_accuracy.py
"""

from __future__ import annotations

import sys
import time
from statistics import NormalDist

import numpy as np
from jobrunner_prediction.forecast import predict
from jobrunner_prediction.holtwinters import (
    HoltWinters,
    fit_holt_winters,
)

DAY, WEEK = 48, 336
TRAIN = 8 * WEEK
LEADS = np.arange(1, 49)
SHOWN = (1, 2, 4, 8, 12, 24, 36, 48)
# Figures published for this data (Taylor 2003), as quoted in issue 6.
PUBLISHED = {"seasonal_naive_week_mean": 2.2, "holt_winters_ar_12h": 1.2}


def load() -> np.ndarray:
    """Return the 4032 half-hourly demand values (MW)."""
    try:
        from pmdarima.datasets import load_taylor
    except ImportError:
        sys.exit("needs pmdarima: pip install './plugins/jobrunner-prediction[realdata]'")
    return np.asarray(load_taylor(), dtype=np.float64)


def mape_by_lead(y: np.ndarray, forecasts: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """MAPE in percent for each lead time, averaged over the origins."""
    actual = y[origins[:, None] + LEADS]
    return 100.0 * np.mean(np.abs(forecasts - actual) / actual, axis=0)


def seasonal_naive_paths(y: np.ndarray, origins: np.ndarray, period: int) -> np.ndarray:
    """Seasonal naive forecasts 1..48 steps from each origin."""
    back = period * ((LEADS + period - 1) // period)
    return y[origins[:, None] + LEADS - back]


def holt_winters_taylor(y: np.ndarray, origins: np.ndarray) -> tuple[np.ndarray, HoltWinters]:
    """Fit on the first 8 weeks, then forecast from every origin with the states updated."""
    model = fit_holt_winters(y[:TRAIN], (DAY, WEEK))
    return model.extended(y).forecast_paths(origins, len(LEADS)), model


def plugin_daily_refit(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The job type's own path: at each midnight of the test weeks, back-test (which
    calibrates the interval), re-fit on the recent weeks and forecast 48 steps ahead.

    Returns the forecasts, their origins, the seconds per fit and forecast, and
    the share of actual values inside the 90 % prediction interval.
    """
    origins = np.arange(TRAIN - 1, len(y) - len(LEADS), DAY)
    started = time.perf_counter()
    results = [predict(y[: t + 1], DAY, len(LEADS), "holt_winters")[0] for t in origins]
    seconds = (time.perf_counter() - started) / len(origins)
    paths = np.array([result.mean for result in results])
    spread = np.array([result.sd for result in results]) * NormalDist().inv_cdf(0.95)
    actual = y[origins[:, None] + LEADS]
    coverage = float(np.mean(np.abs(actual - paths) <= spread))
    return paths, origins, seconds, coverage


def main() -> None:
    """Print MAPE by lead time for each method next to the published figures."""
    y = load()
    origins = np.arange(TRAIN - 1, len(y) - len(LEADS))
    rows = {
        "seasonal naive (week)": mape_by_lead(y, seasonal_naive_paths(y, origins, WEEK), origins),
        "seasonal naive (day)": mape_by_lead(y, seasonal_naive_paths(y, origins, DAY), origins),
    }
    paths, model = holt_winters_taylor(y, origins)
    rows["holt_winters (8-wk fit)"] = mape_by_lead(y, paths, origins)
    daily_paths, daily_origins, seconds, coverage = plugin_daily_refit(y)
    rows["holt_winters (job, daily refit)"] = mape_by_lead(y, daily_paths, daily_origins)

    print("England & Wales half-hourly demand, Jun-Aug 2000 (Taylor 2003), 4032 points")
    print(f"fit on weeks 1-8, MAPE % over the last 4 weeks ({len(origins)} forecast origins)")
    print(
        f"holt_winters fitted: alpha={model.alpha:.3f} "
        f"gammas={tuple(round(g, 3) for g in model.gammas)} phi={model.phi:.3f}"
    )
    print()
    label = "lead (half-hours)"
    print(f"{label:<33}" + "".join(f"{lead:>7}" for lead in SHOWN) + f"{'mean':>8}")
    for name, mape in rows.items():
        cells = "".join(f"{mape[lead - 1]:7.2f}" for lead in SHOWN)
        print(f"{name:<33}{cells}{mape.mean():8.2f}")
    published = ["" for _ in SHOWN]
    published[SHOWN.index(24)] = f"{PUBLISHED['holt_winters_ar_12h']:.1f}"
    print(
        f"{'published: DSHW + AR(1)':<33}"
        + "".join(f"{cell:>7}" for cell in published)
        + f"{'':>8}"
    )
    naive_published = PUBLISHED["seasonal_naive_week_mean"]
    print(f"{'published: seasonal naive (week)':<33}{'':>56}{naive_published:8.1f}")
    print()
    week_mean = rows["seasonal naive (week)"].mean()
    hw_mean = rows["holt_winters (8-wk fit)"].mean()
    print(
        f"holt_winters vs weekly seasonal naive, mean MAPE: {hw_mean:.2f} % vs {week_mean:.2f} % "
        f"({'ahead' if hw_mean < week_mean else 'BEHIND'}); 12 h ahead: "
        f"{rows['holt_winters (8-wk fit)'][23]:.2f} % (published about 1.2 %)"
    )
    print(f"job path: 90 % prediction interval covered {100 * coverage:.1f} % of actual values")
    print(f"job path: back-test, fit and forecast {1000 * seconds:.0f} ms per origin")


if __name__ == "__main__":
    main()
