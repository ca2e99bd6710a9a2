"""The prediction job type end to end: params, input, output document."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from jobrunner import InputInvalid, InvalidParams

from jobrunner_prediction.forecast import BACKTEST_DAYS, METHODS

START = 1_700_006_400  # a Wednesday, 00:00 UTC


def test_forecast_covers_the_horizon_after_the_input(
    load_pairs: list[list[float]], run_prediction: Any
) -> None:
    """A 24h horizon on half-hourly input gives 48 steps starting right after the last reading."""
    result = run_prediction(load_pairs, {"horizon": "24h"})
    data = result.data
    last = load_pairs[-1][0]
    assert [t for t, _ in data["forecast"]] == [last + 1800 * (k + 1) for k in range(48)]
    assert [t for t, _ in data["lower"]] == [t for t, _ in data["forecast"]]
    for (_, low), (_, mid), (_, high) in zip(
        data["lower"], data["forecast"], data["upper"], strict=True
    ):
        assert low < mid < high
    assert data["method"] in ("auto", *METHODS)
    assert data["backtest"]["method"] == data["method"]
    assert data["backtest"]["origins"] == BACKTEST_DAYS and data["backtest"]["steps"] == 48
    assert data["backtest"]["mape"] > 0 and data["backtest"]["mae"] > 0
    assert data["interval"] == 1800 and data["unit"] == "W" and data["level"] == 0.9


def test_holt_winters_reports_its_fitted_parameters(
    load_pairs: list[list[float]], run_prediction: Any
) -> None:
    """method=holt_winters is used as asked and its parameters are in the output."""
    data = run_prediction(load_pairs, {"horizon": 3600 * 6, "method": "holt_winters"}).data
    assert data["method"] == "holt_winters"
    assert set(data["fitted"]) >= {"alpha", "gammas", "phi", "periods"}
    assert len(data["forecast"]) == 12


def test_interval_resamples_and_energy_units_come_back_per_step(
    synthetic_load: Any, run_prediction: Any
) -> None:
    """kWh per 15 minutes forecast at 1h comes back as kWh per hour (four times larger)."""
    values = synthetic_load(14, step=900, noise=0.0) / 4000.0  # kWh per 15 minutes
    pairs = [[START + 900 * i, float(v)] for i, v in enumerate(values)]
    quarter = run_prediction({"readings": pairs, "unit": "kWh"}, {"horizon": "1d"}).data
    hourly = run_prediction(
        {"readings": pairs, "unit": "kWh"}, {"horizon": "1d", "interval": "1h"}
    ).data
    assert len(quarter["forecast"]) == 96 and len(hourly["forecast"]) == 24
    quarter_sum = sum(v for _, v in quarter["forecast"])
    hourly_sum = sum(v for _, v in hourly["forecast"])
    assert hourly_sum == pytest.approx(quarter_sum, rel=0.02)
    assert hourly["unit"] == "kWh"


def test_csv_input_with_gaps_and_duplicates_is_cleaned(
    load_pairs: list[list[float]], run_prediction: Any
) -> None:
    """CSV with shuffled lines, duplicates and a gap forecasts and reports what was cleaned."""
    rows = load_pairs[:100] + load_pairs[110:] + load_pairs[:5]
    rows = rows[::-1]
    body = ("timestamp,power_w\n" + "".join(f"{t},{v}\n" for t, v in rows)).encode()
    data = run_prediction(body, {"horizon": "2h"}).data
    assert data["input"]["duplicates"] == 5
    assert data["input"]["filled_steps"] == 10 and data["input"]["gaps"] == 1
    assert len(data["forecast"]) == 4


def test_progress_is_reported_while_fitting(
    load_pairs: list[list[float]], run_prediction: Any
) -> None:
    """The job reports several progress values, increasing, the last one 1."""
    progress = [fraction for fraction, _ in run_prediction(load_pairs, {"horizon": "1d"}).progress]
    assert len(progress) >= 3 and progress == sorted(progress) and progress[-1] == 1.0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "horizon"),
        ({"horizon": "soon"}, "params.horizon"),
        ({"horizon": -3}, "params.horizon"),
        ({"horizon": "24h", "interval": "7min"}, "params.interval"),
        ({"horizon": "24h", "method": "prophet"}, "params.method"),
        ({"horizon": "24h", "level": 1.5}, "params.level"),
        ({"horizon": "24h", "unit": "horsepower"}, "params.unit"),
        ({"horizon": "1000d", "interval": 60}, "params.horizon"),
        ({"horizon": "24h", "colour": "red"}, "colour"),
        ({"horizon": "24h", "holidays": {"country": "XX"}}, "params.holidays"),
        ({"horizon": "24h", "holidays": {"country": "AU", "subdivision": "ZZ"}}, "params.holidays"),
        ({"horizon": "24h", "holidays": "AU"}, "holidays"),
        ({"horizon": "24h", "timezone": "Mars/Olympus"}, "params.timezone"),
    ],
)
def test_invalid_params_name_the_field(
    load_pairs: list[list[float]], params: dict[str, object], field: str, run_prediction: Any
) -> None:
    """Each kind of bad params is rejected as InvalidParams whose message names the field."""
    with pytest.raises(InvalidParams, match=field):
        run_prediction(load_pairs, params)


def test_input_that_is_not_a_series_is_input_invalid(run_prediction: Any) -> None:
    """An object without readings, or too little data, fails as input_invalid."""
    with pytest.raises(InputInvalid, match="readings"):
        run_prediction({"values": [1, 2]}, {"horizon": "1h"})
    with pytest.raises(InputInvalid, match="too short"):
        run_prediction([[START, 1.0], [START + 1800, 2.0]], {"horizon": "1h"})


def test_output_is_strict_json_without_nan(
    load_pairs: list[list[float]], run_prediction: Any
) -> None:
    """Every number in the output is finite, so the result is strict JSON."""
    data = run_prediction(load_pairs, {"horizon": "1d", "method": "seasonal_naive_day"}).data
    numbers = [v for key in ("forecast", "lower", "upper") for pair in data[key] for v in pair]
    assert all(math.isfinite(v) for v in numbers)


def test_cleaning_and_the_chosen_method_are_logged(
    load_pairs: list[list[float]], run_prediction: Any
) -> None:
    """The job logs what cleaning found and which method it used, as structured events."""
    logs = run_prediction(load_pairs, {"horizon": "1h"}).logs
    events = {entry["event"]: entry for entry in logs}
    assert events["series_cleaned"]["points"] == len(load_pairs)
    assert events["forecast_done"]["method"] in ("auto", *METHODS)
    assert sum(events["forecast_done"]["weights"].values()) == pytest.approx(1.0, abs=1e-3)


def test_result_names_the_combined_methods_weights_and_scores(
    load_pairs: list[list[float]], run_prediction: Any
) -> None:
    """auto's result lists each method used with its weights (mean and per step) and back-test."""
    data = run_prediction(load_pairs, {"horizon": "1d"}).data
    combination = data["combination"]
    assert combination and sum(item["weight"] for item in combination) == pytest.approx(1, abs=1e-3)
    by_step = np.array([item["weight_by_step"] for item in combination])
    assert by_step.shape == (len(combination), len(data["forecast"]))
    np.testing.assert_allclose(by_step.sum(axis=0), 1.0, atol=1e-3)
    np.testing.assert_allclose(by_step.mean(axis=1), [i["weight"] for i in combination], atol=1e-3)
    for item in combination:
        assert item["method"] in METHODS
        assert item["backtest"]["method"] == item["method"]
        assert item["backtest"]["origins"] == BACKTEST_DAYS
    scored = {item["method"] for item in data["candidates"]}
    assert {item["method"] for item in combination} <= scored == set(METHODS)
    if data["method"] == "auto":
        assert set(data["fitted"]) == {item["method"] for item in combination}


def test_a_holiday_in_the_forecast_is_forecast_like_a_sunday(
    synthetic_load: Any, run_prediction: Any
) -> None:
    """With holidays on, a Monday public holiday is forecast at the Sunday level, not a Monday's.

    The synthetic load is 120 W higher on weekends; 2023-12-25 (Christmas, a Monday) follows.
    """
    start = 1_700_438_400  # Monday 2023-11-20 00:00 UTC: five weeks end on Sunday 24 Dec
    values = synthetic_load(35, noise=5.0)
    pairs = [[start + 1800 * i, float(v)] for i, v in enumerate(values)]
    plain = run_prediction(pairs, {"horizon": "1d"}).data
    holiday = run_prediction(
        pairs, {"horizon": "1d", "holidays": {"country": "GB", "subdivision": "ENG"}}
    ).data
    plain_mean = np.mean([v for _, v in plain["forecast"]])
    holiday_mean = np.mean([v for _, v in holiday["forecast"]])
    assert holiday_mean - plain_mean == pytest.approx(120.0, abs=25.0)
    assert holiday["holidays"]["in_forecast"] == [{"date": "2023-12-25", "name": "Christmas Day"}]
    assert plain["holidays"] is None


def test_a_past_holiday_is_not_copied_into_the_following_week(
    synthetic_load: Any, run_prediction: Any
) -> None:
    """A Monday holiday in the input is not copied into the weekly naive forecast of next Monday.

    The input's last Monday (2024-01-01, New Year's Day) looked like a Sunday (+120 W).
    """
    start = 1_702_252_800  # Monday 2023-12-11 00:00 UTC: four weeks end on Sunday 7 Jan 2024
    values = synthetic_load(28, noise=5.0)
    day_of_new_year = 21 * 48
    values[day_of_new_year : day_of_new_year + 48] += 120.0
    pairs = [[start + 1800 * i, float(v)] for i, v in enumerate(values)]
    params: dict[str, Any] = {"horizon": "1d", "method": "seasonal_naive_week"}
    copied = run_prediction(pairs, params).data
    params["holidays"] = {"country": "GB", "subdivision": "ENG"}
    adjusted = run_prediction(pairs, params).data
    copied_mean = np.mean([v for _, v in copied["forecast"]])
    adjusted_mean = np.mean([v for _, v in adjusted["forecast"]])
    assert copied_mean - adjusted_mean == pytest.approx(120.0, abs=25.0)
    assert [d["date"] for d in adjusted["holidays"]["in_input"]] == [
        "2023-12-25",
        "2023-12-26",
        "2024-01-01",
    ]
