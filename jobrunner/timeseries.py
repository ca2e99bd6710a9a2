"""Smart-meter series for job types: parse the input, clean it, put it on a regular grid.

A toolkit for plugin authors (the ``prediction`` and ``simulation`` job
types use it); it needs NumPy — ``pip install 'jobrunner[timeseries]'`` —
and the worker itself never imports it.

The input is ``[[unix_ts, value], ...]``, ``{"readings": [[...]], "unit": "W"}``
or CSV bytes (``timestamp,value`` per line; a header line, ``;`` or tab as the
delimiter and a decimal comma with ``;`` are accepted). Timestamps are unix
seconds (milliseconds are recognised by their size) or ISO 8601 strings
(naive ones are UTC). ``null`` or non-finite values are missing readings.

Each reading is the value of the step that *starts* at its timestamp. Power
units (W, kW, MW) are averaged when several readings fall into one step;
energy units (Wh, kWh, MWh: energy per reading) are turned into mean power
over each reading's span first, so that resampling keeps energy: see
:func:`to_watts` and :func:`from_watts`.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from jobrunner.errors import InputInvalid

__all__ = [
    "ENERGY_UNITS",
    "POWER_UNITS",
    "Readings",
    "RegularSeries",
    "from_watts",
    "parse_readings",
    "regularize",
    "to_watts",
]

FloatArray = npt.NDArray[np.float64]

#: Power units and their size in W.
POWER_UNITS: dict[str, float] = {"W": 1.0, "kW": 1e3, "MW": 1e6}
#: Energy units (energy per reading) and their size in Wh.
ENERGY_UNITS: dict[str, float] = {"Wh": 1.0, "kWh": 1e3, "MWh": 1e6}

_FORMAT_HINT = 'expected [[unix_ts, value], ...], {"readings": [[unix_ts, value], ...]} or CSV'
# Unix seconds stay below 1e11 until the year 5138; larger stamps are milliseconds.
_MILLISECONDS_ABOVE = 1e11
# Runs of missing steps longer than this are filled from the day before, not by a line.
_LINEAR_FILL_MAX_SECONDS = 3600.0


@dataclass(frozen=True)
class Readings:
    """Raw readings as parsed, in input order: timestamps (s) and values."""

    ts: FloatArray
    values: FloatArray
    unit: str | None = None


@dataclass(frozen=True)
class RegularSeries:
    """A cleaned series on a regular grid: value ``values[i]`` covers ``[start + i*step, +step)``.

    Attributes:
        start: unix time of the first step (a multiple of ``step``).
        step: grid spacing in seconds.
        values: one value per step, no gaps (filled steps are marked in ``filled``).
        filled: True where no reading fell into the step and the value was filled in.
        stats: what cleaning did (readings, duplicates, missing values, own spacing, gaps).
    """

    start: float
    step: float
    values: FloatArray
    filled: npt.NDArray[np.bool_]
    stats: dict[str, Any]

    @property
    def timestamps(self) -> FloatArray:
        """Unix time of the start of each step."""
        return self.start + self.step * np.arange(len(self.values), dtype=np.float64)

    @property
    def end(self) -> float:
        """Unix time just after the last step."""
        return self.start + self.step * len(self.values)


def parse_readings(raw: object, *, name: str = "input") -> Readings:
    """Parse a decoded job input into :class:`Readings`.

    Args:
        raw: parsed JSON (a list of pairs or a dict with ``readings``) or CSV bytes/text.
        name: how the input is named in error messages.

    Raises:
        jobrunner.InputInvalid: the input is not a series of ``[timestamp, value]`` readings.
    """
    unit: str | None = None
    if isinstance(raw, dict):
        if "readings" not in raw:
            raise InputInvalid(f"{name}: {_FORMAT_HINT}; the object has no 'readings'")
        unit_field = raw.get("unit")
        if unit_field is not None and not isinstance(unit_field, str):
            raise InputInvalid(f"{name}.unit: must be a string such as 'W', got {unit_field!r}")
        unit = unit_field
        raw = raw["readings"]
        name = f"{name}.readings"
    if isinstance(raw, (bytes, bytearray, str)):
        ts, values = _parse_csv(raw, name)
    elif isinstance(raw, list):
        ts, values = _parse_pairs(raw, name)
    else:
        raise InputInvalid(f"{name}: {_FORMAT_HINT}, got {type(raw).__name__}")
    if len(ts) and np.nanmedian(np.abs(ts)) > _MILLISECONDS_ABOVE:
        ts = ts / 1000.0
    return Readings(ts=ts, values=values, unit=unit)


def _parse_pairs(items: list[Any], name: str) -> tuple[FloatArray, FloatArray]:
    # Fast path: numbers only (the common case, and 35 040 readings parse in milliseconds).
    try:
        array = np.asarray(items, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is not None and array.ndim == 2 and array.shape[1] >= 2:
        return np.ascontiguousarray(array[:, 0]), np.ascontiguousarray(array[:, 1])
    if array is not None and array.size == 0:
        return np.empty(0), np.empty(0)
    ts = np.empty(len(items))
    values = np.empty(len(items))
    for i, item in enumerate(items):
        if not isinstance(item, (list, tuple)) or len(item) < 2:
            raise InputInvalid(f"{name}[{i}]: expected [unix_ts, value], got {item!r:.80}")
        ts[i] = _parse_time(item[0], f"{name}[{i}][0]")
        values[i] = _parse_value(item[1], f"{name}[{i}][1]")
    return ts, values


def _parse_time(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise InputInvalid(f"{where}: expected a unix timestamp or ISO 8601 time, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise InputInvalid(f"{where}: timestamp must be finite, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InputInvalid(
                f"{where}: expected a unix timestamp or ISO 8601 time, got {value!r:.40}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        return moment.timestamp()
    raise InputInvalid(f"{where}: expected a unix timestamp or ISO 8601 time, got {value!r:.40}")


def _parse_value(value: object, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise InputInvalid(f"{where}: expected a number or null, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "" or text.lower() in ("nan", "null", "na"):
            return math.nan
        try:
            return float(text)
        except ValueError:
            pass
    raise InputInvalid(f"{where}: expected a number or null, got {value!r:.40}")


def _parse_csv(raw: bytes | bytearray | str, name: str) -> tuple[FloatArray, FloatArray]:
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = bytes(raw).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputInvalid(f"{name}: CSV must be UTF-8 text ({exc})") from None
    else:
        text = raw
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise InputInvalid(f"{name}: {_FORMAT_HINT}; the body is empty")
    sample = lines[1] if len(lines) > 1 else lines[0]
    delimiter = max((";", "\t", ","), key=sample.count)
    decimal_comma = delimiter == ";"
    ts: list[float] = []
    values: list[float] = []
    for number, row in enumerate(csv.reader(lines, delimiter=delimiter), start=1):
        if len(row) < 2:
            raise InputInvalid(f"{name}: CSV line {number}: expected 'timestamp{delimiter}value'")
        cell = row[1].replace(",", ".") if decimal_comma else row[1]
        try:
            stamp = _parse_time(row[0], f"{name}: CSV line {number}")
            value = _parse_value(cell, f"{name}: CSV line {number}")
        except InputInvalid:
            if number == 1:  # a header line
                continue
            raise
        ts.append(stamp)
        values.append(value)
    return np.asarray(ts, dtype=np.float64), np.asarray(values, dtype=np.float64)


def check_unit(unit: str, where: str) -> str:
    """Return ``unit`` if it is a known power or energy unit, else raise InputInvalid."""
    if unit not in POWER_UNITS and unit not in ENERGY_UNITS:
        known = ", ".join([*POWER_UNITS, *ENERGY_UNITS])
        raise InputInvalid(f"{where}: unknown unit {unit!r}; use one of {known}")
    return unit


def to_watts(ts: FloatArray, values: FloatArray, unit: str) -> FloatArray:
    """Convert sorted readings in ``unit`` to mean power in W.

    Energy readings are divided by their span: the time to the next reading
    (the median spacing for the last one).
    """
    if unit in POWER_UNITS:
        return values * POWER_UNITS[unit]
    spans = np.diff(ts)
    typical = float(np.median(spans)) if len(spans) else 3600.0
    spans = np.append(spans, typical)
    return values * ENERGY_UNITS[unit] * 3600.0 / spans


def from_watts(watts: FloatArray, unit: str, step: float) -> FloatArray:
    """Convert mean power in W per step back to ``unit`` (energy per step for energy units)."""
    if unit in POWER_UNITS:
        return watts / POWER_UNITS[unit]
    return watts * step / 3600.0 / ENERGY_UNITS[unit]


def own_spacing(ts: FloatArray) -> float:
    """Return the typical spacing of sorted timestamps: the median positive difference."""
    spans = np.diff(ts)
    spans = spans[spans > 0]
    if not len(spans):
        raise InputInvalid("input: needs at least two readings at different times")
    return float(np.median(spans))


def regularize(
    readings: Readings, *, step: float | None = None, unit: str = "W", max_steps: int = 2_000_000
) -> RegularSeries:
    """Clean readings and resample them to a regular grid of mean power in W.

    Sorts by time, drops duplicate timestamps (the last reading wins) and
    missing values, averages the readings that fall into one step, and fills
    steps without readings: by linear interpolation, or from the same time a
    day earlier for runs longer than an hour. Filled steps are flagged.

    Args:
        readings: the parsed readings.
        step: grid spacing in seconds; defaults to the readings' own spacing
            (their median difference).
        unit: the unit of the readings' values (see :data:`POWER_UNITS`, :data:`ENERGY_UNITS`).
        max_steps: refuse grids longer than this (a guard against a tiny step).

    Raises:
        jobrunner.InputInvalid: fewer than two usable readings, or a grid that is too long.
    """
    ts, values = readings.ts, readings.values
    count = len(ts)
    order = np.argsort(ts, kind="stable")
    ts, values = ts[order], values[order]
    # Keep the last of equal timestamps: a re-sent reading corrects the earlier one.
    last = np.append(ts[1:] != ts[:-1], True) if count else np.empty(0, dtype=bool)
    duplicates = int(count - np.count_nonzero(last))
    ts, values = ts[last], values[last]
    usable = np.isfinite(values)
    missing = int(len(values) - np.count_nonzero(usable))
    ts, values = ts[usable], values[usable]
    if len(ts) < 2:
        raise InputInvalid(f"input: needs at least two readings with values, got {len(ts)}")
    spacing = own_spacing(ts)
    watts = to_watts(ts, values, unit)
    if step is None:
        step = spacing
    start = math.floor(ts[0] / step) * step
    length = math.floor((ts[-1] - start) / step) + 1
    if length > max_steps:
        raise InputInvalid(
            f"input: {length} steps of {step:g} s is more than {max_steps}; "
            "choose a longer interval"
        )
    bins = np.minimum(((ts - start) // step).astype(np.int64), length - 1)
    counts = np.bincount(bins, minlength=length)
    sums = np.bincount(bins, weights=watts, minlength=length)
    empty = counts == 0
    grid = np.divide(sums, counts, out=np.zeros(length), where=~empty)
    grid = _fill(grid, empty, step)
    # Only steps inside a real gap are flagged: a coarse input on a finer grid is no gap.
    gap_after = np.flatnonzero(np.diff(ts) > 2.0 * spacing)
    gaps = [[float(ts[i]), float(ts[i + 1])] for i in gap_after]
    filled = np.zeros(length, dtype=bool)
    for begin, end in gaps:
        first = math.ceil((begin - start) / step + 1e-9)
        filled[first : int((end - start) // step)] = True
    filled &= empty
    stats = {
        "readings": count,
        "duplicates": duplicates,
        "missing_values": missing,
        "own_interval": spacing,
        "gaps": len(gaps),
        "filled_steps": int(np.count_nonzero(filled)),
    }
    return RegularSeries(
        start=float(start), step=float(step), values=grid, filled=filled, stats=stats
    )


def _fill(grid: FloatArray, empty: npt.NDArray[np.bool_], step: float) -> FloatArray:
    if not empty.any():
        return grid
    index = np.arange(len(grid))
    known = ~empty
    grid = grid.copy()
    grid[empty] = np.interp(index[empty], index[known], grid[known])
    day = round(86400.0 / step)
    longest_linear = max(1, int(_LINEAR_FILL_MAX_SECONDS // step))
    for first, stop in _runs(empty):
        if stop - first <= longest_linear or first < day:
            continue
        # Long outage: repeat the day before (itself possibly filled), which keeps the daily shape.
        for begin in range(first, stop, day):
            end = min(begin + day, stop)
            grid[begin:end] = grid[begin - day : end - day]
    return grid


def _runs(mask: npt.NDArray[np.bool_]) -> Sequence[tuple[int, int]]:
    """Return (first, stop) index pairs of the runs of True in ``mask``."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
