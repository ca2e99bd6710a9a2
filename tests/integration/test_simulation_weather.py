"""A year of real weather through a real worker: the ``simulation`` job type against pvlib.

Real pieces only: beanstalkd, ``jobrunner serve`` for the inputs (a load
series as JSON and the TMY3 weather of Greensboro, NC — the file shipped in
pvlib's wheel — as CSV) and for the results, and ``jobrunner work`` with the
simulation plugin in its child process. The published PV must match pvlib's
own ``ModelChain.with_pvwatts`` for the same system within 1 %, the energy
must balance and the state of charge stay in bounds at every step; a bad
weather file fails that job alone.

Skipped locally when the simulation plugin (and with it pvlib) is missing;
under ``CI=true`` that is a failure.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobrunner import Client
from tests.support import IN_CI, Beanstalkd, ResultsServer, Worker, wait_for_status

pytestmark = pytest.mark.integration

SYSTEM = {"pv_kwp": 4.0, "tilt": 25.0, "azimuth": 200.0, "losses": 14.0, "battery_kwh": 8.0}


@pytest.fixture(scope="module")
def greensboro() -> tuple[Any, dict[str, Any]]:
    """The TMY3 year (as 2023) with each row labelled by the start of its hour, and the site."""
    if importlib.util.find_spec("jobrunner_simulation") is None:
        message = (
            "the simulation plugin is not installed: pip install -e plugins/jobrunner-simulation"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    import pandas as pd
    import pvlib

    path = Path(pvlib.__file__).parent / "data" / "723170TYA.CSV"
    frame, meta = pvlib.iotools.read_tmy3(path, coerce_year=2023, map_variables=True)
    frame = frame[["ghi", "dni", "dhi", "temp_air", "wind_speed"]]
    frame.index = frame.index - pd.Timedelta(hours=1)  # TMY3 labels the end of each hour
    return frame, meta


def pvlib_pvwatts_kwh(frame: Any, meta: dict[str, Any]) -> float:
    """The year's AC energy from pvlib's ModelChain.with_pvwatts for SYSTEM (kWh)."""
    import pandas as pd
    import pvlib
    from pvlib.modelchain import ModelChain

    # PVWatts' loss components all 0 but one, so that the total is exactly SYSTEM's losses.
    losses = dict.fromkeys(inspect.signature(pvlib.pvsystem.pvwatts_losses).parameters, 0.0)
    system = pvlib.pvsystem.PVSystem(
        surface_tilt=SYSTEM["tilt"],
        surface_azimuth=SYSTEM["azimuth"],
        albedo=0.25,
        module_parameters={"pdc0": 4000.0, "gamma_pdc": -0.0037},
        inverter_parameters={"pdc0": 4000.0 / 0.96},
        losses_parameters={**losses, "soiling": SYSTEM["losses"]},
        temperature_model_parameters=pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][
            "open_rack_glass_polymer"
        ],
    )
    site = pvlib.location.Location(meta["latitude"], meta["longitude"], altitude=meta["altitude"])
    chain = ModelChain.with_pvwatts(system, site)
    chain.run_model(frame.set_axis(frame.index + pd.Timedelta(minutes=30)))
    return float(chain.results.ac.clip(lower=0).sum()) / 1000.0


def test_a_year_of_tmy3_weather_through_a_worker_matches_pvlib(
    greensboro: tuple[Any, dict[str, Any]],
    beanstalkd: Beanstalkd,
    results_server: ResultsServer,
    inputs_server: ResultsServer,
) -> None:
    """The worker's published year matches pvlib's PVWatts within 1 %; balance and SoC hold."""
    frame, meta = greensboro
    starts = [int(stamp.timestamp()) for stamp in frame.index]
    hour = np.arange(len(starts)) % 24
    load_w = 300 + 800 * np.exp(-((hour - 19) ** 2) / 4) + 400 * np.exp(-((hour - 7) ** 2))
    load = {"unit": "W", "readings": [[t, float(w)] for t, w in zip(starts, load_w, strict=True)]}
    (inputs_server.results_dir / "load.json").write_text(json.dumps(load))
    weather = frame.copy()
    weather.insert(0, "time", [stamp.isoformat() for stamp in frame.index])
    (inputs_server.results_dir / "weather.csv").write_text(weather.to_csv(index=False))
    broken = weather.drop(columns=["dhi"])
    (inputs_server.results_dir / "broken.csv").write_text(broken.to_csv(index=False))
    params = {
        **SYSTEM,
        "latitude": meta["latitude"],
        "longitude": meta["longitude"],
        "altitude": meta["altitude"],
        "tariff": {"import": 0.3, "export": 0.05, "timezone": "America/New_York"},
    }
    worker = Worker(beanstalkd.address, results_server.results_dir, results_server.base_url)
    try:
        with Client(beanstalkd.address) as client:
            for name, weather_file in (("bad", "broken.csv"), ("year", "weather.csv")):
                client.submit(
                    "simulation",
                    {
                        "load": inputs_server.base_url + "load.json",
                        "weather": inputs_server.base_url + weather_file,
                    },
                    results_server.base_url + f"{name}.json",
                    params,
                )
        bad = wait_for_status(results_server.results_dir / "bad.json", timeout=60)
        doc = wait_for_status(results_server.results_dir / "year.json", timeout=60)
    finally:
        worker.stop()
    assert bad["status"] == "failed"
    assert bad["error"]["code"] == "input_invalid"
    assert "input.weather: missing column dhi" in bad["error"]["message"]

    assert doc["status"] == "done", doc
    data = doc["data"]
    reference = pvlib_pvwatts_kwh(frame, meta)
    assert data["totals"]["pv"] == pytest.approx(reference, rel=0.01)
    assert data["pv"]["source"] == "weather" and data["pv"]["weather"]["rows"] == 8760
    series = {name: np.array([v for _, v in pairs]) for name, pairs in data["series"].items()}
    gap = (
        series["load"]
        + series["grid_export"]
        + series["battery_charge"]
        - series["pv"]
        - series["grid_import"]
        - series["battery_discharge"]
    )
    assert len(gap) == 8760 and np.abs(gap).max() < 1e-5
    assert series["load"].sum() == pytest.approx(load_w.sum() / 1000.0, rel=1e-6)
    assert series["soc"].min() >= 0.0 and series["soc"].max() <= SYSTEM["battery_kwh"]
    totals = data["totals"]
    assert totals["cost_with_pv_battery"] < totals["cost_with_pv"] < totals["cost_without_pv"]
    names = {item["name"] for item in doc["provenance"]["inputs"]}
    assert names == {"load", "weather"}
