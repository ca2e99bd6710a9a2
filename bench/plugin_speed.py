"""Speed of the ``prediction`` and ``simulation`` job types on a year of 15-minute readings.

A year of 15-minute readings is 35 040 points. NumPy's BLAS threads do not
matter here (no large matrix products); the job types run in this
process as the worker's child process would call them (input already decoded
JSON, params already structured); parsing, cleaning and building the output
are included. Best of several runs, one core.

Targets (issue 6): forecast a day ahead in under a second, simulate in well
under a second.

Run:  pip install ./plugins/jobrunner-prediction ./plugins/jobrunner-simulation
      OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/plugin_speed.py   # one core
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import structlog
from jobrunner_prediction import Prediction, PredictionParams
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


def main() -> None:
    """Time each job on 35 040 points and print the figures."""
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    readings = year_of_load()
    body = json.dumps(readings)
    cases = {
        "prediction, 1 day ahead, method=auto": (
            Prediction(),
            PredictionParams(horizon="1d"),
        ),
        "prediction, 1 day ahead, method=holt_winters": (
            Prediction(),
            PredictionParams(horizon="1d", method="holt_winters"),
        ),
        "prediction, 1 day ahead, method=seasonal_naive_week": (
            Prediction(),
            PredictionParams(horizon="1d", method="seasonal_naive_week"),
        ),
        "simulation, pv_kwp=5, battery 10 kWh": (
            Simulation(),
            SimulationParams(battery_kwh=10.0, pv_kwp=5.0),
        ),
    }
    print(f"{POINTS} readings every {STEP // 60} min ({len(body) / 1e6:.1f} MB of JSON input)")
    print(f"cpu cores visible: {os.cpu_count()}, best of {REPEATS}\n")
    print(f"{'job':<52}{'wall s':>8}{'cpu s':>8}  target")
    for name, (job_type, params) in cases.items():
        wall, cpu, data = best_of(lambda: job_type(context(readings, params)))  # noqa: B023
        target = "< 1 s" if name.startswith("prediction") else "well < 1 s"
        extra = f"  (used {data['method']})" if "method" in data else ""
        print(f"{name:<52}{wall:8.3f}{cpu:8.3f}  {target}{extra}")
    parse_seconds, _, _ = best_of(lambda: json.loads(body))
    print(f"\n(for scale: json.loads of the input alone takes {parse_seconds:.3f} s)")


if __name__ == "__main__":
    main()
