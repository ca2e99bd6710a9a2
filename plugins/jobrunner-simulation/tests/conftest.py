"""Synthetic household load for the unit tests (real data is only for tests marked realdata)."""

from __future__ import annotations

import numpy as np

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


def run_simulation(input: object, params: dict[str, object]) -> object:
    """Run the job type as the worker would, through jobrunner's public test helper."""
    from jobrunner_simulation import Simulation

    try:
        from jobrunner.testing import run_job
    except ImportError:  # the core's helper is not there yet: an equivalent stand-in
        return _stand_in_run_job(Simulation, input, params)
    return run_job(Simulation, input=input, params=params)


def _stand_in_run_job(job_type: type, input: object, params: dict[str, object]) -> object:
    import json
    from types import SimpleNamespace

    import structlog
    from jobrunner.codec import structure_params

    progress: list[tuple[float, str | None]] = []
    ctx = SimpleNamespace(
        input=input,
        params=structure_params(params, job_type.Params),
        progress=lambda fraction, message=None: progress.append((fraction, message)),
        log=structlog.get_logger(),
    )
    data = json.loads(json.dumps(job_type()(ctx), allow_nan=False))
    return SimpleNamespace(data=data, progress=progress, logs=[])
