"""Tariffs: flat and time-of-use prices, the costs with and without PV and battery."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from jobrunner import InvalidParams

from jobrunner_simulation.tariff import costs, parse_tariff

MONDAY = 1_685_923_200  # 2023-06-05 00:00 UTC, a Monday


def test_time_of_use_prices_follow_local_hour_and_weekday() -> None:
    """A 7 x 24 table is read at the local hour and weekday of each time (Monday first)."""
    table = [[100.0 * day + hour for hour in range(24)] for day in range(7)]
    tariff = parse_tariff({"import": table, "export": 0.05, "timezone": "Europe/Berlin"})
    assert tariff is not None
    # Monday 00:00 UTC is Monday 02:00 in Berlin (summer time); Sunday 23:30 UTC is Monday 01:30.
    stamps = np.array([MONDAY, MONDAY + 6 * 86400 + 23.5 * 3600, MONDAY + 2 * 86400 + 15 * 3600])
    buy, sell = tariff.prices_at(stamps)
    assert buy.tolist() == [2.0, 1.0, 217.0]
    assert sell.tolist() == [0.05, 0.05, 0.05]


def test_hourly_list_repeats_every_day() -> None:
    """24 prices apply to every day of the week."""
    tariff = parse_tariff({"import": [0.2] * 7 + [0.4] * 17})
    assert tariff is not None
    buy, sell = tariff.prices_at(np.array([MONDAY + 3 * 3600, MONDAY + 5 * 86400 + 8 * 3600]))
    assert buy.tolist() == [0.2, 0.4]
    assert sell.tolist() == [0.0, 0.0]  # no export price: exports earn nothing


def test_costs_by_hand() -> None:
    """Four steps worked out by hand: the costs and the battery's saving per year."""
    tariff = parse_tariff({"import": [0.3] * 12 + [0.5] * 12, "export": 0.1})
    assert tariff is not None
    stamps = MONDAY + np.array([10, 11, 12, 13]) * 3600.0  # two cheap hours, two dear ones
    load = np.array([1.0, 1.0, 2.0, 2.0])
    pv = np.array([3.0, 0.0, 0.0, 1.0])
    grid_import = np.array([0.0, 0.0, 0.5, 1.0])
    grid_export = np.array([1.0, 0.0, 0.0, 0.0])
    result = costs(tariff, stamps, 3600.0, load, pv, grid_import, grid_export)
    assert result["cost_without_pv"] == pytest.approx(0.3 * 2 + 0.5 * 4)
    # Without the battery: export 2 at 0.1, import 1 at 0.3, 2 + 1 at 0.5.
    assert result["cost_with_pv"] == pytest.approx(-0.2 + 0.3 + 1.5)
    assert result["cost_with_pv_battery"] == pytest.approx(-0.1 + 0.75)
    assert result["battery_saving"] == pytest.approx(1.6 - 0.65)
    assert result["battery_saving_per_year"] == pytest.approx(0.95 * 365.25 * 6)


def test_job_totals_carry_the_costs(household_load_w: Any, run_simulation: Any, pairs: Any) -> None:
    """A job with a tariff adds the four costs; a bigger battery saves more, none saves nothing."""
    load = pairs(household_load_w(7))
    tariff = {"import": 0.30, "export": 0.08}
    base = {"pv_kwp": 5, "tariff": tariff}
    none = run_simulation(load, {**base, "battery_kwh": 0}).data["totals"]
    small = run_simulation(load, {**base, "battery_kwh": 2}).data["totals"]
    large = run_simulation(load, {**base, "battery_kwh": 10}).data["totals"]
    assert none["cost_without_pv"] == pytest.approx(0.30 * none["load"], rel=1e-6)
    assert none["battery_saving"] == pytest.approx(0.0, abs=1e-6)
    assert none["cost_with_pv"] == pytest.approx(none["cost_with_pv_battery"], abs=1e-6)
    assert large["cost_with_pv"] == pytest.approx(small["cost_with_pv"], rel=1e-9)
    assert 0 < small["battery_saving"] < large["battery_saving"]
    assert large["battery_saving_per_year"] == pytest.approx(
        large["battery_saving"] * 365.25 / 7, rel=1e-6
    )
    assert large["cost_with_pv_battery"] == pytest.approx(
        0.30 * large["grid_import"] - 0.08 * large["grid_export"], rel=1e-6
    )
    plain = run_simulation(load, {"pv_kwp": 5}).data["totals"]
    assert "cost_without_pv" not in plain


@pytest.mark.parametrize(
    ("tariff", "field"),
    [
        (0.3, r"params\.tariff: expected an object"),
        ({"export": 0.1}, r"params\.tariff\.import: the import price is required"),
        ({"import": "cheap"}, r"params\.tariff\.import: a price must be a number"),
        ({"import": True}, r"params\.tariff\.import: a price must be a number"),
        ({"import": 1e9}, r"params\.tariff\.import: a price must be a number between"),
        ({"import": [0.3] * 23}, r"params\.tariff\.import: expected a number, a list of 24"),
        ({"import": [[0.3] * 24] * 6}, r"params\.tariff\.import: expected .* got a list of 6"),
        ({"import": [[0.3] * 24] * 6 + [[0.3] * 23]}, r"params\.tariff\.import\[6\]: expected 24"),
        ({"import": [0.3] * 23 + [None]}, r"params\.tariff\.import\[23\]: a price"),
        ({"import": 0.3, "export": [0.1] * 25}, r"params\.tariff\.export: expected"),
        ({"import": 0.3, "timezone": "Mars/Olympus"}, r"params\.tariff\.timezone: unknown"),
        ({"import": 0.3, "timezone": "../../etc/passwd"}, r"params\.tariff\.timezone: unknown"),
        ({"import": 0.3, "timezone": 1}, r"params\.tariff\.timezone: expected an IANA"),
        ({"import": 0.3, "currency": "EUR"}, r"params\.tariff: unknown field 'currency'"),
    ],
)
def test_bad_tariffs_are_invalid_params_naming_the_field(
    tariff: Any, field: str, household_load_w: Any, run_simulation: Any, pairs: Any
) -> None:
    """Each kind of bad tariff fails as invalid_params naming the field."""
    with pytest.raises(InvalidParams, match=field) as failure:
        run_simulation(pairs(household_load_w(1)), {"pv_kwp": 4, "tariff": tariff})
    assert failure.value.code == "invalid_params"
