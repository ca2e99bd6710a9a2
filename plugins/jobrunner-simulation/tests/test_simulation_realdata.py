"""Validation on real electricity demand: England & Wales half-hourly demand (Taylor 2003).

The national demand (MW) is scaled to a household's size (mean 0.4 kW) and
simulated with a clear-sky PV model for England over the 12 summer weeks of
2000. The data ships inside pmdarima's wheel (``pip install .[realdata]``);
the test is skipped when it is not installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

datasets = pytest.importorskip("pmdarima.datasets", reason="needs the realdata extra (pmdarima)")

pytestmark = pytest.mark.realdata

MONDAY_5_JUNE_2000 = 960163200


def test_balance_and_bounds_hold_on_real_demand(run_simulation: Any) -> None:
    """Twelve weeks of real half-hourly demand: balance at every step, soc within capacity."""
    demand_mw = np.asarray(datasets.load_taylor(), dtype=np.float64)
    load_w = demand_mw / demand_mw.mean() * 400.0
    readings = [[MONDAY_5_JUNE_2000 + 1800 * i, float(v)] for i, v in enumerate(load_w)]
    params = {
        "battery_kwh": 5,
        "max_charge_kw": 2.5,
        "max_discharge_kw": 2.5,
        "pv_kwp": 3,
        "latitude": 52.5,
        "longitude": -1.5,
    }
    data = run_simulation({"load": {"readings": readings, "unit": "W"}}, params).data
    series = {name: np.array([v for _, v in pairs]) for name, pairs in data["series"].items()}
    load_kwh = load_w * 0.5 / 1000
    gap = (
        load_kwh
        + series["grid_export"]
        + series["battery_charge"]
        - series["pv"]
        - series["grid_import"]
        - series["battery_discharge"]
    )
    assert len(gap) == 4032 and np.abs(gap).max() < 1e-5
    assert series["soc"].min() >= 0 and series["soc"].max() <= 5
    totals = data["totals"]
    assert totals["load"] == pytest.approx(0.4 * 24 * 84, rel=1e-6)
    # Clear-sky summer PV of 3 kWp yields well over the load's 806 kWh in 12 weeks.
    assert totals["pv"] > totals["load"]
    assert 0.5 < totals["self_sufficiency"] < 1.0
    assert 40 < totals["cycles"] < 84
