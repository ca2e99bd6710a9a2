"""Speed of the ``prediction`` and ``simulation`` job types on a year of readings.

A year of 15-minute readings is 35 040 points. NumPy's BLAS threads do not
matter here (no large matrix products); the job types run in this
process as the worker's child process would call them (input already decoded
JSON, params already structured); parsing, cleaning and building the output
are included. Best of several runs, one core.

Prediction: a day ahead from 8 weeks of half-hourly readings (target 1 s)
and from a year of 15-minute readings (target 3 s), with ``auto`` (back-test
of every method over 21 days, then their combination), each method alone,
and ``auto`` with public holidays, in a warm process as a reused worker child
runs them; plus the one-off import of the prediction job type in a fresh
interpreter (paid once per child).

Targets: forecast a day ahead within those limits; simulate a year with PV
from pvlib in at most 1 s at hourly steps and at most 3 s at 15-minute steps
in a warm child (one that has run a job before, so pvlib is imported). The
weather is the TMY3 year of Greensboro, NC shipped in pvlib's wheel, handed
over as the CSV body the worker would pass on; for 15-minute weather each
hour is repeated four times. Also measured: what pvlib adds to a child's
first job (its import, in a fresh interpreter) and to the install.

Run:  pip install ./plugins/jobrunner-prediction ./plugins/jobrunner-simulation
      OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/plugin_speed.py   # one core
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import structlog
from jobrunner_prediction import Prediction, PredictionParams
from jobrunner_prediction.params import HolidayRegion
from jobrunner_simulation import Simulation, SimulationParams

STEP = 900
POINTS = 365 * 96
START = 1_704_067_200  # 2024-01-01 00:00 UTC
REPEATS = 5


def year_of_load() -> list[list[float]]:
    """A synthetic household load in W: daily and weekly shape, seasons, noise."""
    rng = np.random.default_rng(7)
    t = np.arange(POINTS)
    hour = (t % 96) / 4.0
    weekend = ((t // 96) % 7) >= 5
    season = 1.0 + 0.3 * np.cos(2 * np.pi * t / POINTS)
    shape = 250 + 900 * np.exp(-((hour - 19) ** 2) / 3) + 500 * np.exp(-((hour - 7) ** 2))
    load = season * (shape + 150 * weekend) + rng.gamma(2.0, 60.0, POINTS)
    return [[START + STEP * i, round(float(v), 1)] for i, v in enumerate(load)]


def greensboro_weather(step: int) -> tuple[bytes, dict[str, Any], int]:
    """The TMY3 year (as 2023) as a weather CSV at ``step`` seconds, the site, and the start."""
    import pandas as pd
    import pvlib

    path = pathlib.Path(pvlib.__file__).parent / "data" / "723170TYA.CSV"
    frame, meta = pvlib.iotools.read_tmy3(path, coerce_year=2023, map_variables=True)
    frame = frame[["ghi", "dni", "dhi", "temp_air", "wind_speed"]]
    frame.index = frame.index - pd.Timedelta(hours=1)  # TMY3 labels the end of each hour
    repeat = 3600 // step
    start = int(frame.index[0].timestamp())
    table = frame.loc[frame.index.repeat(repeat)].copy()
    table.insert(0, "time", start + step * np.arange(len(table)))
    site = {"latitude": meta["latitude"], "longitude": meta["longitude"], "altitude": 273.0}
    return table.to_csv(index=False).encode(), site, start


def load_at(start: int, step: int) -> list[list[float]]:
    """The synthetic year of load, on a grid of ``step`` seconds from ``start``."""
    points = 365 * 86400 // step
    rng = np.random.default_rng(7)
    hour = (np.arange(points) * step % 86400) / 3600.0
    shape = 250 + 900 * np.exp(-((hour - 19) ** 2) / 3) + 500 * np.exp(-((hour - 7) ** 2))
    load = shape + rng.gamma(2.0, 60.0, points)
    return [[start + step * i, round(float(v), 1)] for i, v in enumerate(load)]


def pvlib_import_seconds() -> float:
    """Best of three: importing pvlib (pandas, SciPy, h5py, ...) in a fresh interpreter."""
    code = (
        "import time, numpy; t = time.perf_counter(); import pvlib, pvlib.modelchain; "
        "print(time.perf_counter() - t)"
    )
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout
        )
        for _ in range(3)
    ]
    return min(runs)


def installed_megabytes(names: list[str]) -> dict[str, float]:
    """Size on disk of installed distributions, MB."""
    sizes = {}
    for name in names:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        total = 0
        for file in dist.files or []:
            path = pathlib.Path(str(dist.locate_file(file)))
            if path.is_file():
                total += path.stat().st_size
        sizes[name] = total / 1e6
    return sizes


def context(input: Any, params: Any) -> SimpleNamespace:
    """What a job type uses of the worker's context."""
    return SimpleNamespace(
        input=input,
        params=params,
        progress=lambda fraction, message=None: None,
        log=structlog.get_logger(),
    )


def best_of(run: Callable[[], Any]) -> tuple[float, float, Any]:
    """Best wall time and best CPU time of REPEATS runs, and the last result.

    CPU time (this process) is the steadier figure on a machine that is busy
    with other work; wall time is what a job waits.
    """
    walls, cpus = [], []
    result = None
    for _ in range(REPEATS):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


def eight_weeks_half_hourly() -> list[list[float]]:
    """The same load, half-hourly means over 8 weeks (2 688 points)."""
    year = np.array([v for _, v in year_of_load()])
    half_hours = year[: 56 * 96].reshape(-1, 2).mean(axis=1)
    return [[START + 1800 * i, round(float(v), 1)] for i, v in enumerate(half_hours)]


def prediction_import_seconds() -> float:
    """Seconds to import the prediction job type in a fresh interpreter (best of 3)."""
    code = (
        "import time; t = time.perf_counter(); import jobrunner_prediction.jobtype; "
        "print(time.perf_counter() - t)"
    )
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(3)
    ]
    return min(runs)


def main() -> None:
    """Time each job and print the figures."""
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    readings = year_of_load()
    weeks = eight_weeks_half_hourly()
    body = json.dumps(readings)
    region = HolidayRegion(country="DE", subdivision="BY")
    cases: dict[str, tuple[Any, Any, Any, str]] = {}
    for label, data, target in (
        ("8 weeks of 30 min", weeks, "<= 1 s"),
        ("a year of 15 min", readings, "<= 3 s"),
    ):
        for method in ("auto", "mstl_arima", "mstl_ets", "holt_winters", "seasonal_naive_week"):
            cases[f"prediction, {label}, {method}"] = (
                Prediction(),
                PredictionParams(horizon="1d", method=method),
                data,
                target,
            )
        cases[f"prediction, {label}, auto + holidays"] = (
            Prediction(),
            PredictionParams(horizon="1d", holidays=region, timezone="Europe/Berlin"),
            data,
            target,
        )
    cases["simulation, a year of 15 min, pv_kwp=5, battery 10 kWh"] = (
        Simulation(),
        SimulationParams(battery_kwh=10.0, pv_kwp=5.0),
        readings,
        "well < 1 s",
    )
    print(f"{POINTS} readings every {STEP // 60} min ({len(body) / 1e6:.1f} MB of JSON input)")
    print(f"cpu cores visible: {os.cpu_count()}, best of {REPEATS}\n")
    seconds = prediction_import_seconds()
    print(f"prediction job type import in a fresh interpreter (once per child): {seconds:.2f} s\n")
    print(f"{'job':<56}{'wall s':>8}{'cpu s':>8}  target")
    for name, (job_type, params, data, target) in cases.items():
        wall, cpu, out = best_of(lambda: job_type(context(data, params)))  # noqa: B023
        extra = f"  (used {out['method']})" if "method" in out else ""
        print(f"{name:<56}{wall:8.3f}{cpu:8.3f}  {target}{extra}")
    parse_seconds, _, _ = best_of(lambda: json.loads(body))
    print(f"\n(for scale: json.loads of the input alone takes {parse_seconds:.3f} s)")
    pv_from_pvlib()


def pv_from_pvlib() -> None:
    """A year with PV from pvlib and real weather, hourly and every 15 minutes; pvlib's costs."""
    print("\nsimulation with PV from pvlib (TMY3 Greensboro, 5 kWp, 30 deg south, battery 10 kWh)")
    print(
        f"{'job (warm child: pvlib imported, one job run before)':<52}{'wall s':>8}{'cpu s':>8}"
        "  target"
    )
    tariff = {"import": [0.25] * 7 + [0.35] * 10 + [0.45] * 4 + [0.30] * 3, "export": 0.08}
    for step, target in ((3600, "<= 1 s"), (900, "<= 3 s")):
        weather, site, start = greensboro_weather(step)
        load = load_at(start, step)
        params = SimulationParams(
            pv_kwp=5.0, tilt=30.0, azimuth=180.0, battery_kwh=10.0, tariff=tariff, **site
        )
        job = Simulation()
        inputs = {"load": load, "weather": weather}
        job(context(inputs, params))  # warm: the child's first job
        wall, cpu, data = best_of(lambda: job(context(inputs, params)))  # noqa: B023
        name = f"{len(load)} steps of {step // 60} min, weather CSV {len(weather) / 1e6:.1f} MB"
        print(f"{name:<52}{wall:8.3f}{cpu:8.3f}  {target}")
        print(
            f"{'':<4}yield {data['pv']['specific_yield']:.0f} kWh/kWp, battery saves "
            f"{data['totals']['battery_saving_per_year']:.0f} per year at the tariff"
        )
    print(f"\npvlib import in a fresh interpreter (once per child): {pvlib_import_seconds():.2f} s")
    sizes = installed_megabytes(
        [
            "pvlib",
            "pandas",
            "scipy",
            "h5py",
            "pytz",
            "tzdata",
            "requests",
            "urllib3",
            "charset-normalizer",
            "idna",
            "certifi",
        ]
    )
    listed = ", ".join(f"{name} {size:.0f}" for name, size in sizes.items())
    print(f"installed with pvlib (MB): {listed}; total {sum(sizes.values()):.0f} MB")


if __name__ == "__main__":
    main()
