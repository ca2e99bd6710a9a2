"""The prediction job type end to end: params, input, output document."""

from __future__ import annotations

import math
from typing import Any

import pytest
from jobrunner import InputInvalid, InvalidParams

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
    assert data["method"] in ("holt_winters", "seasonal_naive_week", "seasonal_naive_day")
    assert data["backtest"]["method"] == data["method"]
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
    assert events["forecast_done"]["method"] in ("holt_winters", "seasonal_naive_week")
