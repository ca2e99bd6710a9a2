"""PV from pvlib: a real year of weather through a job against pvlib's own PVWatts ModelChain.

The weather is the typical meteorological year of Greensboro, NC (TMY3),
shipped inside pvlib's wheel. The reference is ``pvlib.modelchain.ModelChain``
configured with ``with_pvwatts`` for the same site and system, run on the same
hours (labelled at their middle, as pvlib's documentation does for TMY data).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pvlib
import pytest
from pvlib.location import Location
from pvlib.modelchain import ModelChain
from pvlib.pvsystem import PVSystem

from jobrunner_simulation.pv import GAMMA_PDC, INVERTER_EFFICIENCY, on_grid

NO_LOSSES = dict.fromkeys(
    (
        "soiling",
        "shading",
        "snow",
        "mismatch",
        "wiring",
        "connections",
        "lid",
        "nameplate_rating",
        "age",
        "availability",
    ),
    0.0,
)


def unix(index: pd.DatetimeIndex) -> np.ndarray:
    """Unix seconds of a tz-aware index."""
    return ((index - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()


def reference_ac_kwh(
    weather: pd.DataFrame, site: dict[str, Any], params: dict[str, Any]
) -> np.ndarray:
    """pvlib's ModelChain.with_pvwatts, hour by hour, in kWh (rows labelled by their start)."""
    kwp = params["pv_kwp"]
    system = PVSystem(
        surface_tilt=params["tilt"],
        surface_azimuth=params["azimuth"],
        albedo=params["albedo"],
        module_parameters={"pdc0": kwp * 1000.0, "gamma_pdc": GAMMA_PDC},
        inverter_parameters={"pdc0": params["inverter_kw"] * 1000.0 / INVERTER_EFFICIENCY},
        # PVWatts' losses model, its components set so that the total is exactly `losses`.
        losses_parameters={**NO_LOSSES, "soiling": params["losses"]},
        temperature_model_parameters=pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][
            "open_rack_glass_polymer"
        ],
    )
    location = Location(site["latitude"], site["longitude"], altitude=site["altitude"])
    chain = ModelChain.with_pvwatts(system, location)
    middles = weather.copy()
    middles.index = weather.index + pd.Timedelta(minutes=30)
    chain.run_model(middles)
    return np.clip(chain.results.ac.to_numpy(dtype=np.float64), 0.0, None) / 1000.0


@pytest.mark.parametrize(
    "system",
    [
        {"tilt": 30, "azimuth": 180, "losses": 14, "inverter_kw": 5.0, "albedo": 0.25},
        {"tilt": 0, "azimuth": 180, "losses": 14, "inverter_kw": 5.0, "albedo": 0.25},
        # East-facing wall, high losses, a small inverter that clips, bright ground.
        {"tilt": 90, "azimuth": 90, "losses": 20, "inverter_kw": 2.5, "albedo": 0.6},
    ],
)
def test_a_year_of_real_weather_matches_pvlib_pvwatts_within_one_percent(
    system: dict[str, Any],
    greensboro: tuple[pd.DataFrame, dict[str, Any]],
    to_csv: Any,
    household_load_w: Any,
    run_simulation: Any,
) -> None:
    """A TMY3 year through the job: yield within 1 % of pvlib's ModelChain, balance and SoC hold."""
    weather, site = greensboro
    stamps = unix(weather.index)
    load_w = household_load_w(365, step=3600)
    load = [[int(t), float(v)] for t, v in zip(stamps, load_w, strict=True)]
    params = {
        "pv_kwp": 5.0,
        "latitude": site["latitude"],
        "longitude": site["longitude"],
        "altitude": site["altitude"],
        "battery_kwh": 10,
        **system,
    }
    data = run_simulation({"load": load, "weather": to_csv(weather)}, params).data

    reference = reference_ac_kwh(weather, site, params)
    series = {name: np.array([v for _, v in pairs]) for name, pairs in data["series"].items()}
    assert [t for t, _ in data["series"]["pv"]] == stamps.astype(int).tolist()
    assert data["totals"]["pv"] == pytest.approx(reference.sum(), rel=0.01)
    # Not only the sum: each hour is the reference's hour (output rounded to 1e-6 kWh).
    assert np.abs(series["pv"] - reference).max() < 1e-4 * params["pv_kwp"]
    assert data["pv"]["source"] == "weather"
    assert data["pv"]["specific_yield"] == pytest.approx(reference.sum() / 5.0, rel=0.01)
    assert series["pv"].max() <= system["inverter_kw"] + 1e-9  # kWh in an hour = mean kW

    load_kwh = load_w / 1000.0
    gap = (
        load_kwh
        + series["grid_export"]
        + series["battery_charge"]
        - series["pv"]
        - series["grid_import"]
        - series["battery_discharge"]
    )
    assert np.abs(gap).max() < 1e-5
    assert series["soc"].min() >= 0.0 and series["soc"].max() <= 10.0


def test_finer_load_steps_keep_the_weathers_energy(
    greensboro: tuple[pd.DataFrame, dict[str, Any]],
    to_csv: Any,
    household_load_w: Any,
    run_simulation: Any,
) -> None:
    """A 15-minute load with hourly weather gets the same PV energy as an hourly load, per hour."""
    weather, site = greensboro
    june = weather.loc["2023-06-05":"2023-06-11"]
    start = int(unix(june.index)[0])
    place = {"latitude": site["latitude"], "longitude": site["longitude"], "pv_kwp": 4.0}
    hourly = run_simulation(
        {
            "load": [[start + 3600 * i, float(v)] for i, v in enumerate(household_load_w(7, 3600))],
            "weather": to_csv(june),
        },
        place,
    ).data
    quarter = run_simulation(
        {
            "load": [[start + 900 * i, float(v)] for i, v in enumerate(household_load_w(7, 900))],
            "weather": to_csv(june),
        },
        place,
    ).data
    pv_hourly = np.array([v for _, v in hourly["series"]["pv"]])
    pv_quarter = np.array([v for _, v in quarter["series"]["pv"]])
    assert len(pv_quarter) == 4 * len(pv_hourly) == 4 * 168
    assert pv_quarter.reshape(-1, 4).sum(axis=1) == pytest.approx(pv_hourly, abs=1e-5)
    assert quarter["pv"]["weather"] == {
        "rows": 168,
        "interval": 3600.0,
        "start": start,
        "end": start + 168 * 3600,
    }


def test_clear_sky_is_labelled_and_bounds_the_real_weather(
    greensboro: tuple[pd.DataFrame, dict[str, Any]],
    to_csv: Any,
    household_load_w: Any,
    run_simulation: Any,
) -> None:
    """Without weather the job says it used pvlib's clear sky, yielding more than real weather."""
    weather, site = greensboro
    march = weather.loc["2023-03-01":"2023-03-31"]
    start = int(unix(march.index)[0])
    load = [[start + 3600 * i, float(v)] for i, v in enumerate(household_load_w(31, 3600))]
    place = {"latitude": site["latitude"], "longitude": site["longitude"], "pv_kwp": 4.0}
    real = run_simulation({"load": load, "weather": to_csv(march)}, place).data
    clear = run_simulation({"load": load}, place).data
    assert clear["pv"]["source"] == "clear_sky" and "clear_sky" in clear["pv"]
    assert "weather" not in clear["pv"]
    assert clear["totals"]["pv"] > 1.1 * real["totals"]["pv"] > 0


def test_default_azimuth_faces_the_equator(household_load_w: Any, run_simulation: Any) -> None:
    """In the southern hemisphere the default orientation is north (0), which beats south there."""
    july = 1_688_169_600  # 2023-07-01 UTC: winter in Sydney, the sun low in the north
    load = [[july + 3600 * i, float(v)] for i, v in enumerate(household_load_w(7, 3600))]
    place = {"latitude": -33.9, "longitude": 151.2, "pv_kwp": 4.0, "tilt": 35}
    default = run_simulation({"load": load}, place).data
    south = run_simulation({"load": load}, {**place, "azimuth": 180}).data
    assert default["pv"]["azimuth"] == 0.0
    assert default["totals"]["pv"] > 2 * south["totals"]["pv"]


def test_on_grid_keeps_energy_on_finer_coarser_and_shifted_grids() -> None:
    """Resampling PV power to other grids keeps the energy of each covered span."""
    rng = np.random.default_rng(1)
    power = rng.uniform(0.0, 1000.0, 48)  # hourly means over two days
    energy = power.sum() * 3600.0
    finer = on_grid(power, 0.0, 3600.0, 0.0, 900.0, 48 * 4)
    assert finer == pytest.approx(np.repeat(power, 4))
    coarser = on_grid(power, 0.0, 3600.0, 0.0, 7200.0, 24)
    assert coarser == pytest.approx(power.reshape(-1, 2).mean(axis=1))
    shifted = on_grid(power, 0.0, 3600.0, 1800.0, 3600.0, 47)
    assert shifted == pytest.approx((power[:-1] + power[1:]) / 2)
    assert (finer * 900.0).sum() == pytest.approx(energy)
