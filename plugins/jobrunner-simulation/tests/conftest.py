"""Synthetic household load for the unit tests (real data is only for tests marked realdata)."""

from __future__ import annotations

import numpy as np
from jobrunner.testing import JobRun, run_job

from jobrunner_simulation import Simulation

START = 1_718_841_600  # 2024-06-20 00:00 UTC, near midsummer


def household_load_w(days: int, step: int = 900, seed: int = 3) -> np.ndarray:
    """A household's load in W: base load, morning and evening peaks, random appliances."""
    rng = np.random.default_rng(seed)
    per_day = 86400 // step
    hour = (np.arange(days * per_day) % per_day) * 24.0 / per_day
    shape = 250 + 900 * np.exp(-((hour - 19.0) ** 2) / 3.0) + 500 * np.exp(-((hour - 7.0) ** 2))
    appliances = rng.exponential(150.0, len(hour)) * (rng.random(len(hour)) < 0.3)
    return shape + appliances


def pairs(values: np.ndarray, step: int = 900, start: int = START) -> list[list[float]]:
    """[[unix_ts, value], ...] from regular values."""
    return [[start + step * i, float(v)] for i, v in enumerate(values)]


def run_simulation(input: object, params: dict[str, object]) -> JobRun:
    """Run the job type as the worker would, through jobrunner's public test helper."""
    return run_job(Simulation, input=input, params=params)
