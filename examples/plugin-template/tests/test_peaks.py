"""The peaks job type, run as a worker would with jobrunner's test helper."""

from __future__ import annotations

import jobrunner
import pytest
from jobrunner.testing import run_job

from jobrunner_template.peaks import Peaks

SERIES = [[0, 1.0], [900, 5.0], [1800, 3.0], [2700, 4.0]]


def test_returns_the_highest_readings_first() -> None:
    """top=2 returns the two highest readings, highest first, and reports progress."""
    run = run_job(Peaks, input=SERIES, params={"top": 2})
    assert run.data == {"peaks": [[900, 5.0], [2700, 4.0]], "readings": 4}
    assert run.progress == [(0.5, "sorting")]
    assert run.logs[-1]["event"] == "peaks_found"


def test_bad_params_fail_as_invalid_params() -> None:
    """A top outside 1..1000 fails like the worker would: InvalidParams naming the field."""
    with pytest.raises(jobrunner.InvalidParams, match=r"params\.top"):
        run_job(Peaks, input=SERIES, params={"top": 0})


def test_bad_input_fails_as_input_invalid() -> None:
    """Input that is not a series fails with input_invalid."""
    with pytest.raises(jobrunner.InputInvalid):
        run_job(Peaks, input={"not": "a series"}, params={})
