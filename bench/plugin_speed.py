"""Speed of the ``prediction`` and ``simulation`` job types.

Prediction: a day ahead from 8 weeks of half-hourly readings (target 1 s)
and from a year of 15-minute readings, 35 040 points (target 3 s), with
``auto`` (back-test of every method over 21 days and combination) and
each method alone, in a warm process as a reused worker child runs them;
plus the one-off import of the plugin in a fresh interpreter (paid once per
child). Simulation: a year of 15-minute readings. NumPy's BLAS threads do not
matter here (no large matrix products); the job types run in this
process as the worker's child process would call them (input already decoded
JSON, params already structured); parsing, cleaning and building the output
are included. Best of several runs, one core.

Targets: forecast a day ahead from 8 weeks in 1 s, from a year in 3 s;
simulate in well under a second.

Run:  pip install ./plugins/jobrunner-prediction ./plugins/jobrunner-simulation
      OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/plugin_speed.py   # one core
"""

from __future__ import annotations

import json
import os
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


def import_seconds() -> float:
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
    cases["simulation, a year of 15 min, pv 5 kWp, battery 10 kWh"] = (
        Simulation(),
        SimulationParams(battery_kwh=10.0, pv_kwp=5.0),
        readings,
        "well < 1 s",
    )
    print(f"{POINTS} readings every {STEP // 60} min ({len(body) / 1e6:.1f} MB of JSON input)")
    print(f"cpu cores visible: {os.cpu_count()}, best of {REPEATS}\n")
    print(f"importing the prediction job type (once per child): {import_seconds():.2f} s\n")
    print(f"{'job':<56}{'wall s':>8}{'cpu s':>8}  target")
    for name, (job_type, params, data, target) in cases.items():
        wall, cpu, out = best_of(lambda: job_type(context(data, params)))  # noqa: B023
        extra = f"  (used {out['method']})" if "method" in out else ""
        print(f"{name:<56}{wall:8.3f}{cpu:8.3f}  {target}{extra}")
    parse_seconds, _, _ = best_of(lambda: json.loads(body))
    print(f"\n(for scale: json.loads of the input alone takes {parse_seconds:.3f} s)")


if __name__ == "__main__":
    main()
