"""The simulation job type end to end: inputs, units, params and the output document."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from jobrunner import InputInvalid, InvalidParams

START = 1_718_841_600  # 2024-06-20 00:00 UTC

SERIES = ("soc", "grid_import", "grid_export", "battery_charge", "battery_discharge")


def column(data: dict, name: str) -> np.ndarray:
    """The values of one output series."""
    return np.array([v for _, v in data["series"][name]])


def test_modelled_pv_balances_energy_at_every_step(
    household_load_w: Any, run_simulation: Any, pairs: Any
) -> None:
    """With pv_kwp the output balances at each step, keeps soc in bounds and covers each step."""
    load = household_load_w(7)
    params = {"battery_kwh": 3, "max_charge_kw": 2, "max_discharge_kw": 2, "pv_kwp": 5}
    data = run_simulation(pairs(load), params).data
    for name in SERIES:
        assert [t for t, _ in data["series"][name]] == [START + 900 * i for i in range(len(load))]
    load_kwh = load * 0.25 / 1000
    pv = column(data, "pv")
    gap = (
        load_kwh
        + column(data, "grid_export")
        + column(data, "battery_charge")
        - pv
        - column(data, "grid_import")
        - column(data, "battery_discharge")
    )
    assert np.abs(gap).max() < 1e-5  # output is rounded to 1e-6 kWh
    soc = column(data, "soc")
    assert soc.min() >= 0 and soc.max() <= 3
    totals = data["totals"]
    assert totals["load"] == pytest.approx(load_kwh.sum(), rel=1e-6)
    assert 0 < totals["self_sufficiency"] < 1 and 0 < totals["self_consumption"] <= 1
    assert totals["cycles"] > 3  # a sunny June week cycles the battery about daily
    assert data["pv"]["source"] == "clear_sky"


def test_named_pv_input_in_kw_is_used_instead_of_the_model(
    household_load_w: Any, run_simulation: Any, pairs: Any
) -> None:
    """A 'pv' input series (here kW, like the load) drives the simulation, unit applied to both."""
    load_kw = household_load_w(2) / 1000
    stamps = START + 900.0 * np.arange(len(load_kw))
    day_fraction = (stamps + 450) % 86400 / 86400
    pv_kw = 3.0 * np.clip(np.sin(2 * np.pi * (day_fraction - 0.25)), 0.0, None)
    inputs = {"load": pairs(load_kw), "pv": pairs(pv_kw)}
    data = run_simulation(inputs, {"unit": "kW", "battery_kwh": 0}).data
    assert data["pv"] == {"source": "input"}
    assert column(data, "pv") == pytest.approx(pv_kw * 0.25, abs=1e-6)
    assert data["totals"]["battery_charge"] == 0
    assert data["totals"]["load"] == pytest.approx(load_kw.sum() * 0.25, rel=1e-6)


def test_energy_unit_per_step_is_taken_as_is(run_simulation: Any, pairs: Any) -> None:
    """Load in Wh per 15 minutes is summed as energy: 96 steps of 250 Wh make 24 kWh."""
    data = run_simulation(pairs(np.full(96, 250.0)), {"unit": "Wh", "pv_kwp": 0}).data
    assert data["totals"]["load"] == pytest.approx(24.0)
    assert data["totals"]["grid_import"] == pytest.approx(24.0 - 0.9**0.5 * 5.0, rel=1e-6)


def test_progress_is_reported_up_to_one(
    household_load_w: Any, run_simulation: Any, pairs: Any
) -> None:
    """The job reports increasing progress that ends at 1."""
    progress = [f for f, _ in run_simulation(pairs(household_load_w(2)), {"pv_kwp": 4}).progress]
    assert len(progress) >= 5 and progress == sorted(progress) and progress[-1] == 1.0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pv_kwp": 4, "efficiency": 0}, "params.efficiency"),
        ({"pv_kwp": 4, "efficiency": 1.2}, "params.efficiency"),
        ({"pv_kwp": 4, "initial_soc": -0.1}, "params.initial_soc"),
        ({"pv_kwp": 4, "battery_kwh": -1}, "params.battery_kwh"),
        ({"pv_kwp": 4, "max_charge_kw": "fast"}, "max_charge_kw"),
        ({"pv_kwp": -4}, "params.pv_kwp"),
        ({"pv_kwp": 4, "unit": "MJ"}, "params.unit"),
        ({"pv_kwp": 4, "latitude": 100}, "params.latitude"),
        ({"pv_kwp": 4, "colour": "red"}, "colour"),
        ({}, "params.pv_kwp"),
    ],
)
def test_invalid_params_name_the_field(
    params: dict[str, object], field: str, household_load_w: Any, run_simulation: Any, pairs: Any
) -> None:
    """Each kind of bad params fails as InvalidParams naming the field."""
    with pytest.raises(InvalidParams, match=field):
        run_simulation(pairs(household_load_w(1)), params)


def test_inputs_that_do_not_fit_are_input_invalid(
    household_load_w: Any, run_simulation: Any, pairs: Any
) -> None:
    """Wrong input names, negative load and a PV series not spanning the load are refused."""
    load = pairs(household_load_w(2))
    with pytest.raises(InputInvalid, match="'load'"):
        run_simulation({"consumption": load}, {"pv_kwp": 1})
    with pytest.raises(InputInvalid, match="negative"):
        run_simulation(pairs(-household_load_w(1)), {"pv_kwp": 1})
    with pytest.raises(InputInvalid, match=r"input\.pv: covers"):
        run_simulation({"load": load, "pv": load[:50]}, {})
