"""The real-data sample input writer."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType

import pytest

from jobrunner_prediction import sample

pytestmark = pytest.mark.realdata


@pytest.fixture(autouse=True)
def _pmdarima(require_data: Callable[[str], ModuleType]) -> None:
    """The sample reads pmdarima's copy of the data (the realdata extra)."""
    require_data("pmdarima.datasets")


def test_sample_is_a_valid_prediction_input(capsys: pytest.CaptureFixture[str]) -> None:
    """The sample prints 4032 half-hourly readings in MW, a forecastable job input."""
    assert sample.main([]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["unit"] == "MW" and len(document["readings"]) == 4032
    stamps = [t for t, _ in document["readings"]]
    assert stamps[0] == sample.START and stamps[1] - stamps[0] == 1800


def test_household_sample_is_scaled_to_watts() -> None:
    """--household scales the demand to a mean of 400 W."""
    document = sample.taylor_readings(household=True)
    values = [v for _, v in document["readings"]]
    assert document["unit"] == "W"
    assert sum(values) / len(values) == pytest.approx(400.0, rel=1e-3)
