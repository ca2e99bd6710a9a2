"""Fixtures of the simulation tests: synthetic load, real weather (TMY3 in pvlib's wheel), run_job.

Helpers are fixtures, not imports, so the tests run under any pytest import mode.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pvlib
import pytest
from jobrunner.testing import JobRun, run_job

from jobrunner_simulation import Simulation


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, whichever configuration file pytest picked up."""
    config.addinivalue_line(
        "markers", "realdata: validates on real electricity demand data (needs pmdarima)"
    )


START = 1_718_841_600  # 2024-06-20 00:00 UTC, near midsummer


def make_household_load_w(days: int, step: int = 900, seed: int = 3) -> np.ndarray:
    """A household's load in W: base load, morning and evening peaks, random appliances."""
    rng = np.random.default_rng(seed)
    per_day = 86400 // step
    hour = (np.arange(days * per_day) % per_day) * 24.0 / per_day
    shape = 250 + 900 * np.exp(-((hour - 19.0) ** 2) / 3.0) + 500 * np.exp(-((hour - 7.0) ** 2))
    appliances = rng.exponential(150.0, len(hour)) * (rng.random(len(hour)) < 0.3)
    return shape + appliances


def make_pairs(values: np.ndarray, step: int = 900, start: int = START) -> list[list[float]]:
    """[[unix_ts, value], ...] from regular values."""
    return [[start + step * i, float(v)] for i, v in enumerate(values)]


def run_simulation_job(input: object, params: dict[str, object]) -> JobRun:
    """Run the job type as the worker would, through jobrunner's public test helper."""
    return run_job(Simulation, input=input, params=params)


@pytest.fixture
def household_load_w() -> Callable[..., np.ndarray]:
    """The synthetic load generator: household_load_w(days, step=900, seed=3)."""
    return make_household_load_w


@pytest.fixture
def pairs() -> Callable[..., list[list[float]]]:
    """pairs(values, step=900, start=START): [[unix_ts, value], ...]."""
    return make_pairs


@pytest.fixture
def run_simulation() -> Callable[[Any, dict[str, Any]], JobRun]:
    """run_simulation(input, params): the job run as the worker would run it."""
    return run_simulation_job


#: The typical meteorological year of Greensboro, NC (TMY3, station 723170), in pvlib's wheel.
TMY3_FILE = pathlib.Path(pvlib.__file__).parent / "data" / "723170TYA.CSV"


def read_greensboro() -> tuple[pd.DataFrame, dict[str, Any]]:
    """The TMY3 year (as 2023), each row labelled with the start of its hour, and the site.

    TMY3 labels each hour by its end, in local standard time: one hour earlier is its start.
    """
    frame, meta = pvlib.iotools.read_tmy3(TMY3_FILE, coerce_year=2023, map_variables=True)
    frame = frame[["ghi", "dni", "dhi", "temp_air", "wind_speed"]].copy()
    frame.index = frame.index - pd.Timedelta(hours=1)
    return frame, meta


def weather_csv(frame: pd.DataFrame) -> bytes:
    """The weather input as the worker hands a text/csv body over: bytes, ISO 8601 times."""
    out = frame.copy()
    out.insert(0, "time", [stamp.isoformat() for stamp in frame.index])
    return out.to_csv(index=False).encode()


@pytest.fixture(scope="session")
def greensboro() -> tuple[pd.DataFrame, dict[str, Any]]:
    """(weather, site) of the TMY3 year shipped in pvlib: rows labelled by their start."""
    return read_greensboro()


@pytest.fixture
def to_csv() -> Callable[[pd.DataFrame], bytes]:
    """to_csv(frame): the weather frame as a CSV body with ISO 8601 times."""
    return weather_csv
