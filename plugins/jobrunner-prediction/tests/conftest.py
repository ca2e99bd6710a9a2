"""Synthetic smart-meter series for the unit tests (real data is only for tests marked realdata)."""

from __future__ import annotations

import numpy as np
import pytest
from jobrunner.testing import JobRun, run_job

from jobrunner_prediction import Prediction

START = 1_700_006_400  # a Wednesday, 00:00 UTC


def synthetic_load(days: int, step: int = 1800, noise: float = 20.0, seed: int = 1) -> np.ndarray:
    """Household-like load in W: a daily shape, weekends higher, AR(1) noise."""
    rng = np.random.default_rng(seed)
    per_day = 86400 // step
    t = np.arange(days * per_day)
    hour = (t % per_day) * 24.0 / per_day
    weekday = (t // per_day) % 7
    daily = (
        400 + 300 * np.exp(-((hour - 19.0) ** 2) / 4.0) + 150 * np.exp(-((hour - 7.5) ** 2) / 2.0)
    )
    weekly = np.where(weekday >= 5, 120.0, 0.0)
    shocks = rng.normal(0.0, noise, len(t))
    ar = np.zeros(len(t))
    for i in range(1, len(t)):
        ar[i] = 0.8 * ar[i - 1] + shocks[i]
    return daily + weekly + ar


@pytest.fixture
def load_pairs() -> list[list[float]]:
    """Four weeks of half-hourly synthetic load as [[unix_ts, W], ...]."""
    values = synthetic_load(28)
    return [[START + 1800 * i, float(v)] for i, v in enumerate(values)]


def run_prediction(input: object, params: dict[str, object]) -> JobRun:
    """Run the job type as the worker would, through jobrunner's public test helper."""
    return run_job(Prediction, input=input, params=params)
